// A chat room as a module of handlers (onOpen, onMessage, onClose): registerWebsocket()
// takes the module namespace as it is (see ./server.mjs). Connect to /ws/chat?user=NAME&room=NAME; the room
// defaults to "chat", and every notice carries the number of members online.

function roomOf (session) {
  return session.room(session.getParameter('room') || 'chat')
}

export function onOpen (session) {
  const username = session.getParameter('user') || 'anonymous'
  session.setAttribute('username', username)
  const room = roomOf(session).join()
  session.send(JSON.stringify({ type: 'welcome', id: session.id, room: room.getName(), online: room.members() }))
  room.broadcastExcept(JSON.stringify({
    type: 'join',
    user: username,
    online: room.members()
  }))
}

export function onMessage (session, message) {
  const username = session.getAttribute('username')
  roomOf(session).broadcastExcept(JSON.stringify({
    type: 'message',
    from: username,
    text: message,
    timestamp: Date.now()
  }))
}

export function onClose (session) {
  const username = session.getAttribute('username')
  const room = roomOf(session)
  room.broadcastExcept(JSON.stringify({
    type: 'leave',
    user: username,
    // Still a member: room.leave() is called automatically after onClose returns.
    online: room.members() - 1
  }))
}

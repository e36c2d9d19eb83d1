// The chat room of examples/chat, for servers that share their rooms through Redis: the same
// protocol (its schemas) and the same messages, but every member count is the room's count on
// every server (room.clusterMembers()), not this server's (room.members()). Messages need no
// change: broadcastExceptJson() already reaches the members on the other servers.
export { onInvalidMessage, onMessage, schema } from '../chat/chat.mjs'

function roomOf (session) {
  return session.room(session.query.room ?? 'chat')
}

/**
 * Members of the room on every server. While Redis is away the count cannot be read (and
 * broadcasts reach this server's members only): say so in the log and count this server's.
 */
async function online (session, room) {
  try {
    return await room.clusterMembers()
  } catch (error) {
    session.log.warn({ err: error }, 'no cluster count while Redis is away; counting this server only')
    return room.members()
  }
}

export async function onOpen (session) {
  const username = session.query.user
  session.setAttribute('username', username)
  const room = roomOf(session).join()
  // clusterMembers() first waits for this server's subscription to the room: once it has
  // answered, this session counts everywhere and receives what the other servers send.
  const count = await online(session, room)
  session.sendJson({ type: 'welcome', id: session.id, room: room.getName(), online: count })
  room.broadcastExceptJson({ type: 'join', user: username, online: count })
}

export async function onClose (session) {
  const room = roomOf(session)
  // Still a member until this handler has finished: the count includes this session.
  const count = await online(session, room) - 1
  room.broadcastExceptJson({ type: 'leave', user: session.getAttribute('username'), online: count })
}

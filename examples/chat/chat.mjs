// A chat room as a module: its handlers (onOpen, onMessage, onInvalidMessage, onClose) and
// the schemas of its protocol. registerWebsocket() takes the module namespace as it is (see
// ./server.mjs). Connect to /ws/chat?user=NAME&room=NAME (the room defaults to "chat") and
// send { "type": "message", "text": "..." } as JSON text; every notice the server sends
// back carries the number of members online.
import { Type } from '@sinclair/typebox'

export const schema = {
  // Checked before the upgrade: a handshake without ?user= is refused with a 400.
  querystring: Type.Object({
    user: Type.String({ minLength: 1 }),
    room: Type.Optional(Type.String({ minLength: 1 }))
  }),
  // What clients send. Anything else goes to onInvalidMessage, not onMessage.
  message: Type.Object({
    type: Type.Literal('message'),
    text: Type.String({ minLength: 1, maxLength: 2000 })
  }),
  // What the server sends. sendJson() and broadcast*Json() write through it, so a field it
  // does not name never leaves the server.
  outbound: Type.Union([
    Type.Object({ type: Type.Literal('welcome'), id: Type.String(), room: Type.String(), online: Type.Integer() }),
    Type.Object({ type: Type.Literal('join'), user: Type.String(), online: Type.Integer() }),
    Type.Object({ type: Type.Literal('message'), from: Type.String(), text: Type.String(), timestamp: Type.Integer() }),
    Type.Object({ type: Type.Literal('leave'), user: Type.String(), online: Type.Integer() }),
    Type.Object({ type: Type.Literal('error'), reason: Type.String() })
  ])
}

function roomOf (session) {
  return session.room(session.query.room ?? 'chat')
}

export function onOpen (session) {
  const username = session.query.user
  session.setAttribute('username', username)
  const room = roomOf(session).join()
  session.sendJson({ type: 'welcome', id: session.id, room: room.getName(), online: room.members() })
  room.broadcastExceptJson({ type: 'join', user: username, online: room.members() })
}

export function onMessage (session, message) {
  // The client's message, stamped after the spread so that a client cannot pass for another.
  // Whatever else it put in stays here: schema.outbound names what goes out.
  roomOf(session).broadcastExceptJson({
    ...message,
    from: session.getAttribute('username'),
    timestamp: Date.now()
  })
}

export function onInvalidMessage (session, error) {
  // To this client only, which stays connected: a typo in a client is not worth a reconnection.
  session.sendJson({ type: 'error', reason: error.message })
}

export function onClose (session) {
  const room = roomOf(session)
  room.broadcastExceptJson({
    type: 'leave',
    user: session.getAttribute('username'),
    // Still a member: room.leave() is called automatically after onClose returns.
    online: room.members() - 1
  })
}

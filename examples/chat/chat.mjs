// A chat room as a module: its handlers (onOpen, onMessage, onInvalidMessage) and the schemas
// of its protocol. registerWebsocket() takes the module namespace as it is (see ./server.mjs).
// Connect to /ws/chat?user=NAME&room=NAME (the room defaults to "chat") and send
// { "type": "message", "text": "..." } as JSON text. The welcome lists who is online; then
// `presence` notices (./presence.mjs, an option of the plugin) tell who joined and who left.
import { Type } from '@sinclair/typebox'
import { memberOf } from './presence.mjs'

/** A member of the room: its session id, and its user name (two tabs of one user are two members). */
const Member = Type.Object({ id: Type.String(), user: Type.String() })

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
    Type.Object({ type: Type.Literal('welcome'), id: Type.String(), room: Type.String(), online: Type.Array(Member) }),
    Type.Object({ type: Type.Literal('message'), from: Type.String(), text: Type.String(), timestamp: Type.Integer() }),
    Type.Object({ type: Type.Literal('error'), reason: Type.String() }),
    // Broadcast by ./presence.mjs through app.websocketRooms, whose broadcastJson() does not
    // use this schema: it is listed here because it is part of the protocol.
    Type.Object({ type: Type.Literal('presence'), joined: Type.Array(Member), left: Type.Array(Member) })
  ])
}

function roomOf (session) {
  return session.room(session.query.room ?? 'chat')
}

export async function onOpen (session) {
  const user = session.query.user
  session.setAttribute('username', user)
  // Before joining: every presence entry of this session, in every room, carries the name.
  session.setPresence({ user })
  const room = roomOf(session).join()
  // Every member, on every server with the Redis adapter, this session included. Notices may
  // reach this session before its welcome (then the page merges both by session id).
  const { members, complete } = await room.presence()
  if (!complete) session.log.warn('Redis is away: the welcome lists this server\'s members only')
  session.sendJson({ type: 'welcome', id: session.id, room: room.getName(), online: members.map(memberOf) })
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

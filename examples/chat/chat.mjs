// A chat room as a module: its handlers (onOpen, onInvalidMessage, onError), its message
// route and the schemas of its protocol. registerWebsocket() takes the module namespace as it
// is (see ./server.mjs, which registers the plugin with the history option that publish() and
// recover() need). Connect to /ws/chat?user=NAME&room=NAME (the room defaults to "chat") and
// send { "type": "chat.send", "id": 1, "data": { "text": "..." } } as JSON text: the reply,
// { "type": "reply", "id": 1, "data": { "epoch", "offset" } }, says where the message went
// in the room (without an id, no reply). The welcome lists who is online and
// the room's last messages; then `presence` notices (./presence.mjs, an option of the
// plugin) tell who joined and who left, and each message comes with its position in the
// room (epoch, offset). Each welcome carries the session's resume token (the plugin's resume
// option, ./server.mjs): a client back from a drop or a server restart sends it
// (&resume=TOKEN) and is the same session again, what it missed delivered before its welcome.
// It also sends the position of the last message it has (&epoch=E&offset=N): when the session
// could not be resumed, it gets the messages it missed from there, or, when the history no
// longer has them all, the last messages again.
import { Type } from '@sinclair/typebox'
import { memberOf } from './presence.mjs'

/** A member of the room: its session id, and its user name (two tabs of one user are two members). */
const Member = Type.Object({ id: Type.String(), user: Type.String() })

/** A chat message as every member gets it (the sender too), at its position in the room. */
const Said = Type.Object({
  type: Type.Literal('message'),
  epoch: Type.String(),
  offset: Type.Integer(),
  from: Type.String(),
  text: Type.String(),
  timestamp: Type.Integer()
})

/** How many of the room's last messages a welcome that starts afresh holds. */
const LAST = 50

export const schema = {
  // Checked before the upgrade: a handshake without ?user= is refused with a 400.
  querystring: Type.Object({
    user: Type.String({ minLength: 1 }),
    room: Type.Optional(Type.String({ minLength: 1 })),
    // A client back from a drop: the position of the last message it has (both, or neither).
    // Held to what a position can be (an epoch is a few URL-safe characters; an offset, a safe
    // integer): anything else is refused here with a 400, where recover() would throw.
    epoch: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' })),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }))
  }),
  // What the server sends. sendJson() and broadcast*Json() write through it, so a field it
  // does not name never leaves the server.
  outbound: Type.Union([
    // resumed: the messages missed (since the session's connection was lost, or since the
    // position the client sent) came just before, in order; `id` says which: the same session
    // id as before, or a new one. Otherwise `messages` are the room's last ones, up to `offset`
    // in `epoch`, and replace what the client has. `resume` is the token to come back with
    // (a new one in each welcome: a token is used once).
    Type.Object({
      type: Type.Literal('welcome'),
      id: Type.String(),
      room: Type.String(),
      online: Type.Array(Member),
      resumed: Type.Boolean(),
      resume: Type.Optional(Type.String()),
      epoch: Type.Optional(Type.String()),
      offset: Type.Optional(Type.Integer()),
      messages: Type.Optional(Type.Array(Said))
    }),
    // Published by chat.send with JSON.stringify (publish() takes the text it is to send):
    // it is listed here because it is part of the protocol.
    Said,
    Type.Object({ type: Type.Literal('error'), reason: Type.String() }),
    // Broadcast by ./presence.mjs through app.websocketRooms, whose broadcastJson() does not
    // use this schema either.
    Type.Object({ type: Type.Literal('presence'), joined: Type.Array(Member), left: Type.Array(Member) })
  ])
}

// The session's room, named once at its first open: a resumed session is in it still, whatever
// room its new handshake names.
function roomOf (session) {
  return session.room(session.getAttribute('room'))
}

/** The welcome's fields for a session in `room`: who is online, and the token to resume with. */
async function greeting (session, room) {
  // Every member, on every server with the Redis adapter, this session included. Notices may
  // reach this session before its welcome (then the page merges both by session id).
  const { members, complete } = await room.presence()
  if (!complete) session.log.warn('Redis is away: the welcome lists this server\'s members only')
  return {
    type: 'welcome',
    id: session.id,
    room: room.getName(),
    online: members.map(memberOf),
    ...(session.resumeToken === null ? {} : { resume: session.resumeToken })
  }
}

export async function onOpen (session) {
  try {
    // The same session as before its connection was lost (the same id, name and room): what
    // it missed was delivered before this, in order. A new token for next time, and who is
    // online now.
    if (session.resumed) session.sendJson({ ...await greeting(session, roomOf(session)), resumed: true })
    else await enter(session)
  } catch (error) {
    // With the Redis adapter, the history lives in Redis: while it is away, the client is
    // asked to come back later (it reconnects with backoff) rather than start without it.
    if (error.code !== 'FST_WS_ROOMS_REDIS_UNAVAILABLE') throw error
    session.log.warn({ err: error }, 'no history: closing with 1013')
    session.close(1013, 'the room\'s history is unavailable: try again later')
  }
}

/** A new session joins its room: from the client's position when it sent one, else afresh. */
async function enter (session) {
  const { user, epoch, offset } = session.query
  session.setAttribute('username', user)
  session.setAttribute('room', session.query.room ?? 'chat')
  // Before joining: every presence entry of this session, in every room, carries the name.
  session.setPresence({ user })
  const room = roomOf(session)
  // Back from a drop, with a session that could not be resumed (gone with a server that
  // kept it in memory, or its window passed): recover() joins and sends the messages
  // published since the client's position, in order, then the live ones, none twice; or,
  // when the history no longer has them all (or was lost: another epoch), sends none and
  // says so. It takes a safe integer only: the schema's bounds refuse the others, but for
  // "Infinity", which Ajv's coercion lets through any number schema; that one gets the
  // room's last messages.
  const resumed = epoch !== undefined && Number.isSafeInteger(offset) && (await room.recover({ epoch, offset })).recovered
  // Otherwise, as on a first visit, the room's last messages and their position. Live ones
  // published meanwhile may reach the client before its welcome: it orders them by offset.
  const last = resumed ? null : await room.join().history({ limit: LAST })
  session.sendJson({
    ...await greeting(session, room),
    resumed,
    ...(last === null ? {} : { epoch: last.epoch, offset: last.offset, messages: last.messages.map(({ message }) => JSON.parse(message)) })
  })
}

/** What clients send: a message route per type. Anything else goes to onInvalidMessage (or, with an id, an error reply). */
export const messages = {
  'chat.send': {
    schema: Type.Object({ text: Type.String({ minLength: 1, maxLength: 2000 }) }),
    // The message's position in the room: the page shows "sent" when it comes.
    reply: Type.Object({ epoch: Type.String(), offset: Type.Integer() }),
    async handler (session, data) {
      const from = session.getAttribute('username')
      const timestamp = Date.now()
      try {
        // To every member, the sender too: each gets the message at its position, so every page
        // shows the room's messages in the same order. Only the fields named here go out (not
        // what else the client put in its message), and the sender is the session's user.
        return await roomOf(session).publish(({ epoch, offset }) =>
          JSON.stringify({ type: 'message', epoch, offset, from, text: data.text, timestamp }))
      } catch (error) {
        // Redis away, or too many publishes waiting for it on this server: the sender is told,
        // in an error reply (with an id), else by onError below.
        if (error.code !== 'FST_WS_ROOMS_REDIS_UNAVAILABLE' && error.code !== 'FST_WS_ROOMS_PUBLISH_BACKLOG') throw error
        throw Object.assign(new Error('not sent: the room\'s history is unavailable, try again'), { code: 'NOT_SENT', statusCode: 503 })
      }
    }
  }
}

export function onInvalidMessage (session, error) {
  // To this client only, which stays connected: a typo in a client is not worth a reconnection.
  session.sendJson({ type: 'error', reason: error.message })
}

export function onError (session, error) {
  // A chat.send without an id that could not be published: told as an invalid one is. Any other
  // failure is a bug: logged, and the session closed with 1011, as without onError.
  if (error.code !== 'NOT_SENT') throw error
  session.sendJson({ type: 'error', reason: error.message })
}

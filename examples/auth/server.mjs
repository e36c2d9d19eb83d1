// Only clients with a valid token get a session. The token is checked in a preValidation
// hook, before the upgrade: without one, the client gets a 401 and no socket is opened. The
// user id the hook found is kept in the session's attributes, so a message's sender comes
// from the token, not from anything the client claims. `npm run example:auth`, then connect
// to ws://127.0.0.1:3000/ws?token=alice-token (or bob-token), or send the token as a header:
// `Authorization: Bearer alice-token`.
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'
import { isMain, run, ws } from '../run.mjs'

/** Demo tokens and their users. A real app verifies a signed token instead (e.g. @fastify/jwt). */
const demoTokens = new Map([['alice-token', 'alice'], ['bob-token', 'bob']])

/** The bearer token of the Authorization header, else the ?token= of the URL. */
function tokenOf (request) {
  const header = request.headers.authorization
  if (header !== undefined) return /^Bearer (.+)$/i.exec(header)?.[1]
  // Browsers cannot set headers on a WebSocket, hence the query string (mind that URLs get logged).
  return request.query.token
}

export async function build (options = {}) {
  const { tokens = demoTokens, ...fastifyOptions } = options
  const app = Fastify(fastifyOptions)
  await app.register(websocketRooms)
  app.decorateRequest('userId', null)

  app.registerWebsocket('/ws', {
    // An ordinary Fastify route hook: replying from it refuses the upgrade with that status.
    preValidation: async (request, reply) => {
      const userId = tokens.get(tokenOf(request))
      if (userId === undefined) {
        return reply.code(401).header('www-authenticate', 'Bearer')
          .send({ statusCode: 401, error: 'Unauthorized', message: 'a valid token is required' })
      }
      request.userId = userId
    },
    onConnected: (session) => {
      const userId = session.request.userId
      session.setAttribute('userId', userId)
      const room = session.room('members').join()
      session.writeText(JSON.stringify({ type: 'hello', userId, online: room.members() }))
    },
    handleText: (session, text) => {
      session.room('members').broadcast(JSON.stringify({ type: 'message', from: session.getAttribute('userId'), text }))
    }
  })
  return app
}

if (isMain(import.meta.url)) {
  await run('auth', build, (base) => [`${ws(base)}/ws?token=alice-token`, `${ws(base)}/ws?token=bob-token`])
}

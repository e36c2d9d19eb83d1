// Only clients that prove who they are get a session, checked in a preValidation hook, before
// the upgrade: without a valid proof, the client gets a 401 and no socket is opened. The user
// id the hook found is kept in the session's attributes, so a message's sender comes from the
// proof, not from anything the client claims. Two proofs, one route each:
// - /ws: a token, as `Authorization: Bearer alice-token` or ?token=alice-token. `npm run
//   example:auth`, then connect to ws://127.0.0.1:3000/ws?token=alice-token (or bob-token).
// - /ws/cookie: a signed session cookie (@fastify/cookie), set by POST /login. Browsers cannot
//   set headers on a WebSocket, but they send the page's cookies with the handshake:
//   curl -c jar -H 'content-type: application/json' -d '{"token":"alice-token"}' http://127.0.0.1:3000/login
//   then connect to ws://127.0.0.1:3000/ws/cookie with that cookie (a page served by the app
//   just calls new WebSocket('/ws/cookie') after logging in).
import Fastify from 'fastify'
import fastifyCookie from '@fastify/cookie'
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

/** The user of a valid signed `user` cookie, else null (no cookie, or one whose signature does not match). */
function cookieUserOf (request) {
  const cookie = request.cookies.user
  if (cookie === undefined) return null
  const { valid, value } = request.unsignCookie(cookie)
  return valid ? value : null
}

function unauthorized (reply, message) {
  return reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message })
}

/** What a member does once its session is open, whichever way it proved who it is. */
const memberHandlers = {
  onConnected: (session) => {
    const userId = session.request.userId
    session.setAttribute('userId', userId)
    const room = session.room('members').join()
    session.writeText(JSON.stringify({ type: 'hello', userId, online: room.members() }))
  },
  handleText: (session, text) => {
    session.room('members').broadcast(JSON.stringify({ type: 'message', from: session.getAttribute('userId'), text }))
  }
}

export async function build (options = {}) {
  const {
    tokens = demoTokens,
    // A real app reads its secret from the environment, and keeps it out of the code.
    cookieSecret = process.env.COOKIE_SECRET ?? 'a demo secret: set COOKIE_SECRET in a real app',
    ...fastifyOptions
  } = options
  const app = Fastify(fastifyOptions)
  await app.register(fastifyCookie, { secret: cookieSecret })
  await app.register(websocketRooms)
  app.decorateRequest('userId', null)

  app.registerWebsocket('/ws', {
    // An ordinary Fastify route hook: replying from it refuses the upgrade with that status.
    preValidation: async (request, reply) => {
      const userId = tokens.get(tokenOf(request))
      if (userId === undefined) {
        reply.header('www-authenticate', 'Bearer')
        return unauthorized(reply, 'a valid token is required')
      }
      request.userId = userId
    },
    ...memberHandlers
  })

  // Logging in sets the signed cookie; the handshake of /ws/cookie checks its signature.
  app.post('/login', async (request, reply) => {
    const userId = tokens.get(request.body?.token)
    if (userId === undefined) return unauthorized(reply, 'a valid token is required')
    reply.setCookie('user', userId, { signed: true, httpOnly: true, sameSite: 'strict', path: '/' })
    return { userId }
  })

  app.registerWebsocket('/ws/cookie', {
    // A browser sends its cookies with a handshake from any site: accept only pages of this
    // server's own origin (cross-site WebSocket hijacking). Clients without Origin pass.
    allowedOrigins: (origin, request) => URL.canParse(origin) && new URL(origin).host === request.headers.host,
    preValidation: async (request, reply) => {
      const userId = cookieUserOf(request)
      if (userId === null) return unauthorized(reply, 'a valid session cookie is required')
      request.userId = userId
    },
    ...memberHandlers
  })
  return app
}

if (isMain(import.meta.url)) {
  await run('auth', build, (base) => [`${ws(base)}/ws?token=alice-token`, `${ws(base)}/ws?token=bob-token`, `${base}/login`, `${ws(base)}/ws/cookie`])
}

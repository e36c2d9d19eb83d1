// The chat room (./chat.mjs) as a complete app: `npm start`, then open http://127.0.0.1:3000/
// in two browser tabs (the page uses the browser's own WebSocket, no client library), or
// connect any WebSocket client to ws://127.0.0.1:3000/ws/chat?user=NAME&room=NAME.
// PORT and HOST change where it listens. Stop it and start it again while a page is open:
// the page reconnects by itself at once (the server closes with 1012, service restart), and,
// the sessions and the history being in this process, reloads the room. A page whose
// connection drops while the server runs comes back as the same session.
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'
import { isMain, run, ws } from '../run.mjs'
import { onPresence } from './presence.mjs'

/**
 * Each room's last 100 messages, each kept 10 minutes at most: what a page that reconnects
 * can get back (./chat.mjs). In this process, at most 100 × the rooms published to in the
 * last 10 minutes; examples/cluster keeps the same in Redis.
 */
export const history = { size: 100, ttl: 600_000 }

/**
 * A session whose connection is lost is kept for a minute: a page back within it with its
 * token (./chat.mjs sends it in each welcome) is the same session, in the same room, and gets
 * what it missed meanwhile. app.close() closes the sessions with 1012 (service restart).
 */
export const resume = { window: 60_000 }

/** The app; `history` and `resume` change the options above (the tests make them short), the rest goes to Fastify. */
export async function build (options = {}) {
  const { history: kept = history, resume: resuming = resume, ...fastifyOptions } = options
  const app = Fastify(fastifyOptions)
  // One notice per room and presenceInterval (250 ms by default), however many came and went.
  await app.register(websocketRooms, { onPresence, history: kept, resume: resuming })

  const page = await readFile(new URL('./index.html', import.meta.url))
  app.get('/', (request, reply) => reply.type('text/html; charset=utf-8').send(page))

  // The module carries its schemas (the handshake's, and the messages' both ways) with its
  // handlers, so that examples/cluster speaks the same protocol by registering it too.
  app.registerWebsocket('/ws/chat', await import('./chat.mjs'))
  return app
}

if (isMain(import.meta.url)) {
  await run('chat', build, (base) => [`${base}/`, `${ws(base)}/ws/chat?user=NAME&room=NAME`])
}

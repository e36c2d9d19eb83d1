// The chat room (./chat.mjs) as a complete app: `npm start`, then open http://127.0.0.1:3000/
// in two browser tabs (the page uses the browser's own WebSocket, no client library), or
// connect any WebSocket client to ws://127.0.0.1:3000/ws/chat?user=NAME&room=NAME.
// PORT and HOST change where it listens.
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'
import { isMain, run, ws } from '../run.mjs'
import { onPresence } from './presence.mjs'

export async function build (options = {}) {
  const app = Fastify(options)
  // One notice per room and presenceInterval (250 ms by default), however many came and went.
  await app.register(websocketRooms, { onPresence })

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

// This plugin: every session joins room 'bench'; 'P…' is broadcast to the room but the
// sender, 'E…' is echoed. /ws has no schema; /ws-q validates ?user= with TypeBox before the
// upgrade (the handshake benchmark runs both). The heartbeat is off so no pings interfere.
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'
import { serve } from '../lib/serve.mjs'

const P = 0x50 // 'P'

const handlers = {
  onConnected (session) {
    session.room('bench').join()
  },
  handleText (session, text) {
    if (text.charCodeAt(0) === P) session.room('bench').broadcastExcept(text)
    else session.send(text)
  }
}

await serve(async () => {
  const app = Fastify({ logger: false })
  await app.register(websocketRooms, { heartbeatInterval: 0 })
  app.registerWebsocket('/ws', handlers)
  app.registerWebsocket('/ws-q', {
    ...handlers,
    schema: { querystring: Type.Object({ user: Type.String() }) }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app.server.address().port
})

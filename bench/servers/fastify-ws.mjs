// @fastify/websocket used the naive way: an array of sockets, the message decoded to a string
// and socket.send(text) called for each socket.
import websocket from '@fastify/websocket'
import Fastify from 'fastify'
import { serve } from '../lib/serve.mjs'

const sockets = []

await serve(async () => {
  const app = Fastify({ logger: false })
  await app.register(websocket)
  app.get('/ws', { websocket: true }, (socket) => {
    sockets.push(socket)
    socket.on('message', (data) => {
      const text = data.toString()
      if (text[0] === 'P') {
        for (const other of sockets) {
          if (other !== socket) other.send(text)
        }
      } else {
        socket.send(text)
      }
    })
    socket.on('close', () => {
      sockets.splice(sockets.indexOf(socket), 1)
    })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app.server.address().port
})

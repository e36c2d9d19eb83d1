// Socket.IO 4 with rooms, WebSocket transport only: every socket joins 'bench'; 'P…' goes to
// the room but the sender (socket.to('bench').emit), 'E…' back to the sender. Pings are
// pushed out of the way (pingInterval of an hour). 'echo' events are acknowledged with their data
// (a client's emitWithAck). BENCH_SIO_DEFLATE=1 turns permessage-deflate
// on (perMessageDeflate: true: Engine.IO's default threshold of 1024 bytes, ws's other defaults).
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { serve } from '../lib/serve.mjs'

await serve(async () => {
  const server = createServer()
  const io = new Server(server, {
    transports: ['websocket'],
    allowUpgrades: false,
    serveClient: false,
    perMessageDeflate: process.env.BENCH_SIO_DEFLATE === '1',
    httpCompression: false,
    pingInterval: 3_600_000,
    pingTimeout: 3_600_000
  })
  io.on('connection', (socket) => {
    socket.join('bench')
    socket.on('msg', (text) => {
      if (text[0] === 'P') socket.to('bench').emit('msg', text)
      else socket.emit('msg', text)
    })
    // Request/reply: the client's emitWithAck('echo', data), answered with its data.
    socket.on('echo', (data, ack) => { ack(data) })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server.address().port
})

// Raw ws, the ceiling of this stack: a Set of sockets and a broadcast loop, in three flavours
// (BENCH_WS_BROADCAST), all forwarding the received Buffer as is (no decode, no re-encode):
//   send (default, column "ws"): public API only, the same Buffer given to every send().
//   frame (column "ws+frame"): the frame is built once with ws's Sender.frame() (public) and
//     written with ws's internal `_sender.sendFrame()`: what the ws maintainers suggest in
//     websockets/ws#617 and what Socket.IO's adapter does. Not public API.
//   cork (column "ws+cork"): the frame built once and written straight to ws's TCP socket
//     (internal `_socket`), corked until the end of the tick, so the broadcasts of one tick
//     leave as one write per socket (as uWebSockets does). Not public API; valid here because
//     permessage-deflate is off and nothing else writes through ws's sender meanwhile but
//     echo replies, which go through the same TCP socket in order.
// BENCH_WS_DEFLATE turns permessage-deflate on for the compressed fan-out, ws compressing
// each message once per socket (with 'send'): 'default' is perMessageDeflate: true (ws's
// defaults: the server keeps its context, a 1024-byte threshold that then does not apply),
// 'no-context-takeover' is { serverNoContextTakeover: true }, the setting compression: 'shared' uses.
// BENCH_WS_HEARTBEAT (ms) adds the heartbeat of ws's README: one setInterval pings every
// client and terminates one whose pong to the previous ping has not come (isAlive).
import { createServer } from 'node:http'
import { Sender, WebSocket, WebSocketServer } from 'ws'
import { serve } from '../lib/serve.mjs'

const P = 0x50 // 'P'
const OPEN = WebSocket.OPEN
const TEXT = { binary: false }
const FRAME_OPTIONS = { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false }

const clients = new Set()

function broadcastSend (data, sender) {
  for (const client of clients) {
    if (client !== sender && client.readyState === OPEN) client.send(data, TEXT)
  }
}

function broadcastFrame (data, sender) {
  const frame = [Buffer.concat(Sender.frame(data, FRAME_OPTIONS))]
  for (const client of clients) {
    if (client !== sender && client.readyState === OPEN) client._sender.sendFrame(frame)
  }
}

let corked = []

function uncorkAll () {
  const sockets = corked
  corked = []
  for (const socket of sockets) socket.uncork()
}

function broadcastCork (data, sender) {
  const frame = Buffer.concat(Sender.frame(data, FRAME_OPTIONS))
  for (const client of clients) {
    if (client === sender || client.readyState !== OPEN) continue
    const tcp = client._socket
    if (tcp.writableCorked === 0) {
      tcp.cork()
      if (corked.push(tcp) === 1) process.nextTick(uncorkAll)
    }
    tcp.write(frame)
  }
}

const broadcast = { send: broadcastSend, frame: broadcastFrame, cork: broadcastCork }[process.env.BENCH_WS_BROADCAST ?? 'send']
if (broadcast === undefined) throw new Error(`BENCH_WS_BROADCAST: unknown mode ${process.env.BENCH_WS_BROADCAST}`)

function onMessage (data, isBinary) {
  if (isBinary) return
  if (data[0] === P) broadcast(data, this)
  else this.send(data, TEXT)
}

function onClose () {
  clients.delete(this)
}

function onPong () {
  this.isAlive = true
}

const heartbeatInterval = Number(process.env.BENCH_WS_HEARTBEAT ?? 0)
if (heartbeatInterval > 0) {
  setInterval(() => {
    for (const client of clients) {
      if (client.isAlive === false) {
        client.terminate()
        continue
      }
      client.isAlive = false
      client.ping()
    }
  }, heartbeatInterval)
}

await serve(async () => {
  const server = createServer()
  const deflate = { default: true, 'no-context-takeover': { serverNoContextTakeover: true } }[process.env.BENCH_WS_DEFLATE ?? ''] ?? false
  const wss = new WebSocketServer({ server, clientTracking: false, perMessageDeflate: deflate })
  wss.on('connection', (socket) => {
    clients.add(socket)
    socket.on('message', onMessage)
    socket.on('close', onClose)
    if (heartbeatInterval > 0) {
      socket.isAlive = true
      socket.on('pong', onPong)
    }
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server.address().port
})

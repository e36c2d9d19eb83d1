// The load generator: one process, forked by bench/run.mjs, driving one server at a time
// through IPC commands (connect, fanout, echo, handshakes, close). It is built not to be the
// bottleneck: raw TCP clients (net.connect) that write the HTTP upgrade themselves, read into
// one shared buffer (net's `onread`, no allocation per read) and parse frames only as far as
// needed to count messages and read the send time out of the payload.
//
// Payloads: 'P<publisher>,<seq>,<µs>' (fan-out) and 'E<client>,<seq>,<µs>' (echo), where µs
// is this process's monotonic clock (performance.now() in µs): every latency is measured
// against the same clock. With protocol 'sio' the same text travels as a Socket.IO event,
// '42["msg","P…"]', over Engine.IO v4 (open '0{…}', connect '40', ping '2' / pong '3').
//
// Compressed fan-out: receivers may offer permessage-deflate ('connect' with deflate: true)
// and a fan-out message may carry a JSON body of about 2 KiB after its 'P…' header. Compressed
// frames are inflated: with server_no_context_takeover every receiver gets the same bytes for
// a message, so the last few are inflated once and recognised by their bytes; with context
// takeover (ws's default) each receiver's window is kept and given to zlib as the dictionary.
//
// Pings are answered with a pong at once (a server's heartbeat keeps these clients), and
// counted: 'beat' resolves once every client has been pinged since it was called, the end of
// one beat of the server's heartbeat (bench/idle.mjs). 'connect' may spread its clients over
// several source addresses of 127.0.0.0/8 ('sources'), for more connections than one address
// has ephemeral ports.
import net from 'node:net'
import { constants as zlibConstants, inflateRawSync } from 'node:zlib'
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Histogram } from './lib/histogram.mjs'

const HOST = '127.0.0.1'
let port = 0
let protocol = 'ws' // 'ws' (plain WebSocket text frames) or 'sio' (Socket.IO v5 over Engine.IO v4)
let serverPid = 0
let clockTicks = 100

const HTTP = 0
const OPEN = 1
const READY = 2
const CLOSED = 3

const CH_P = 0x50
const CH_E = 0x45
const CH_BRACE = 0x7b // '{'
const SIO_EVENT_PREFIX = '42["msg","' // the Socket.IO event the servers emit and listen to
const SIO_PAYLOAD_OFFSET = SIO_EVENT_PREFIX.length

// One buffer for every read of every socket: the callback parses synchronously and copies
// what it keeps (a partial frame) before returning.
const SHARED = Buffer.allocUnsafe(256 * 1024)
const HEADER_END = Buffer.from('\r\n\r\n')
const CLOSE_FRAME = Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]) // 1000, zero mask key

let nowUs = 0 // the clock, read once per read callback
let disconnected = 0 // clients the server closed while the benchmark still used them
let pings = 0 // pings received (and answered) since the start
const beat = { round: 0, pinged: 0, expected: 0, resolve: null }

const connections = { recv: [], pub: [], echo: [] }

// ---------------------------------------------------------------------------------------
// Frames. Client frames must be masked; a zero masking key is valid and costs no XOR.

function frame (text, opcode = 0x81) {
  const length = text.length // ASCII only
  let buffer
  let at
  if (length < 126) {
    buffer = Buffer.allocUnsafe(6 + length)
    buffer[1] = 0x80 | length
    at = 2
  } else {
    buffer = Buffer.allocUnsafe(8 + length)
    buffer[1] = 0x80 | 126
    buffer.writeUInt16BE(length, 2)
    at = 4
  }
  buffer[0] = opcode
  buffer.writeUInt32BE(0, at)
  buffer.write(text, at + 4, 'latin1')
  return buffer
}

function sendText (conn, text) {
  conn.socket.write(frame(protocol === 'sio' ? `42["msg",${JSON.stringify(text)}]` : text))
}

function sendRaw (conn, text) {
  conn.socket.write(frame(text))
}

// ---------------------------------------------------------------------------------------
// Connections

function upgradeRequest (path, deflate) {
  return `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    (deflate ? 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n' : '') +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
}

function pathFor (path) {
  return protocol === 'sio' ? '/socket.io/?EIO=4&transport=websocket' : path
}

/** Opens one client; resolves once it is in the room (after 101, or after Socket.IO's '40' ack). */
function open (role, id, path, deflate = false, localAddress = undefined, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const conn = {
      role,
      id,
      state: HTTP,
      pending: null,
      lastSeq: -1,
      seq: 0,
      socket: null,
      onReady: null,
      onClosed: null,
      inflate: null, // { shared, window }: permessage-deflate was negotiated
      pingRound: 0 // the beat.round in which it was last pinged
    }
    const timer = setTimeout(() => fail(new Error(`${role} #${id}: not ready after ${timeoutMs} ms`)), timeoutMs)
    function fail (error) {
      clearTimeout(timer)
      conn.state = CLOSED
      conn.socket.destroy()
      reject(error)
    }
    conn.onReady = () => {
      clearTimeout(timer)
      resolve(conn)
    }
    conn.fail = fail
    conn.socket = net.connect({
      host: HOST,
      port,
      localAddress,
      noDelay: true,
      onread: { buffer: SHARED, callback: (n) => onRead(conn, n) }
    })
    conn.socket.on('connect', () => conn.socket.write(upgradeRequest(pathFor(path), deflate)))
    conn.socket.on('error', (error) => {
      if (conn.state !== READY && conn.state !== CLOSED) fail(error)
    })
    conn.socket.on('close', () => {
      if (conn.state !== READY && conn.state !== CLOSED) fail(new Error(`${role} #${id}: closed during the handshake`))
      if (conn.state === READY && role !== 'hs') disconnected++
      conn.state = CLOSED
      conn.onClosed?.()
    })
  })
}

function ready (conn) {
  conn.state = READY
  conn.onReady()
}

function onRead (conn, n) {
  nowUs = performance.now() * 1000
  let buffer = SHARED
  let end = n
  if (conn.pending !== null) {
    buffer = Buffer.concat([conn.pending, SHARED.subarray(0, n)])
    end = buffer.length
    conn.pending = null
  }
  let at = 0
  if (conn.state === HTTP) {
    const headerEnd = buffer.subarray(0, end).indexOf(HEADER_END)
    if (headerEnd === -1) {
      conn.pending = Buffer.from(buffer.subarray(0, end))
      return
    }
    const status = buffer.toString('latin1', 0, Math.min(end, 40)).split('\r\n')[0]
    if (!status.startsWith('HTTP/1.1 101')) {
      conn.fail(new Error(`upgrade refused: ${status}`))
      return
    }
    const extensions = /\r\nsec-websocket-extensions: *([^\r]*)/i.exec(buffer.toString('latin1', 0, headerEnd))?.[1]
    if (extensions?.startsWith('permessage-deflate')) conn.inflate = { shared: extensions.includes('server_no_context_takeover'), window: null }
    at = headerEnd + 4
    conn.state = OPEN
    if (protocol === 'ws') ready(conn)
  }
  parseFrames(conn, buffer, at, end)
}

function parseFrames (conn, buffer, at, end) {
  while (end - at >= 2) {
    const b0 = buffer[at]
    let length = buffer[at + 1] & 0x7f
    let header = 2
    if (length === 126) {
      if (end - at < 4) break
      length = buffer.readUInt16BE(at + 2)
      header = 4
    } else if (length === 127) {
      if (end - at < 10) break
      length = buffer.readUIntBE(at + 4, 6)
      header = 10
    }
    if (end - at < header + length) break
    const start = at + header
    at = start + length
    const opcode = b0 & 0x0f
    if (opcode === 1 && (b0 & 0x40) !== 0) {
      const data = inflate(conn, buffer, start, at)
      if (protocol === 'ws') onText(conn, data, 0, data.length)
      else onEngineIo(conn, data, 0, data.length)
    } else if (opcode === 1) {
      if (protocol === 'ws') onText(conn, buffer, start, at)
      else onEngineIo(conn, buffer, start, at)
    } else if (opcode === 9) {
      const pong = frame(buffer.toString('latin1', start, at), 0x8a)
      conn.socket.write(pong)
      onPing(conn)
    } else if (opcode === 8) {
      conn.onCloseFrame?.()
    }
  }
  if (at < end) conn.pending = Buffer.from(buffer.subarray(at, end))
}

function onPing (conn) {
  pings++
  if (conn.pingRound === beat.round) return
  conn.pingRound = beat.round
  if (++beat.pinged === beat.expected && beat.resolve !== null) beat.resolve()
}

/** Resolves once every open client has been pinged since the call (or rejects after timeoutMs). */
function waitForBeat ({ timeoutMs = 120_000 }) {
  const clients = connections.recv.length + connections.pub.length + connections.echo.length
  beat.round++
  beat.pinged = 0
  beat.expected = clients
  const began = performance.now()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      beat.resolve = null
      reject(new Error(`beat: ${beat.pinged} of ${clients} clients pinged in ${timeoutMs} ms (${disconnected} disconnected)`))
    }, timeoutMs)
    beat.resolve = () => {
      clearTimeout(timer)
      beat.resolve = null
      resolve({ clients, pings, disconnected, waitedMs: performance.now() - began })
    }
  })
}

const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])
const WINDOW = 32 * 1024
/** The last messages inflated for receivers that share them: [compressed, inflated]. */
const recentlyInflated = []

/** The text of a compressed message (RFC 7692 7.2.2: the tail put back, then inflated). */
function inflate (conn, buffer, start, end) {
  const length = end - start
  const state = conn.inflate
  if (state.shared) {
    for (const [compressed, inflated] of recentlyInflated) {
      if (compressed.length === length && buffer.compare(compressed, 0, length, start, end) === 0) return inflated
    }
  }
  const input = Buffer.allocUnsafe(length + 4)
  buffer.copy(input, 0, start, end)
  DEFLATE_TAIL.copy(input, length)
  const options = { finishFlush: zlibConstants.Z_SYNC_FLUSH }
  if (!state.shared && state.window !== null) options.dictionary = state.window
  const inflated = inflateRawSync(input, options)
  if (state.shared) {
    if (recentlyInflated.unshift([input.subarray(0, length), inflated]) > 16) recentlyInflated.pop()
  } else {
    const window = state.window === null ? inflated : Buffer.concat([state.window, inflated])
    state.window = window.length > WINDOW ? Buffer.from(window.subarray(window.length - WINDOW)) : window
  }
  return inflated
}

function onEngineIo (conn, buffer, start, end) {
  const type = buffer[start]
  if (type === 0x34) { // '4': a Socket.IO packet
    const packet = buffer[start + 1]
    if (packet === 0x32) onText(conn, buffer, start + SIO_PAYLOAD_OFFSET, end) // '42["msg","…
    else if (packet === 0x33) onAck(conn, buffer, start + 2, end) // '43<id>[{…}]': an emitWithAck's answer
    else if (packet === 0x30 && conn.state === OPEN) ready(conn) // '40{"sid":…}': in the namespace, and the room
    else if (packet === 0x34) conn.fail(new Error('Socket.IO connect error: ' + buffer.toString('latin1', start, end)))
  } else if (type === 0x30) { // '0{…}': Engine.IO open; connect to the main namespace
    sendRaw(conn, '40')
  } else if (type === 0x32) { // '2': ping
    sendRaw(conn, '3')
  }
}

/** A Socket.IO acknowledgement: '43<id>[<data>]', the data of the echo's request. */
function onAck (conn, buffer, start, end) {
  let at = start
  while (buffer[at] !== 0x5b) at++ // '['
  const [data] = JSON.parse(buffer.toString('utf8', at, end))
  echo.reply(conn, data.seq, data.sent)
}

// 'P<publisher>,<seq>,<µs>' or 'E<client>,<seq>,<µs>', parsed in place; or JSON: an echo, a
// reply ({"type":"reply","id","data"}), or a fan-out message as an event ({"type":"said","data":{"text":"P…"}}).
function onText (conn, buffer, start, end) {
  const kind = buffer[start]
  if (kind === CH_BRACE) {
    const message = JSON.parse(buffer.toString('utf8', start, end))
    if (message.type === 'said') {
      const [, seq, sent] = message.data.text.split(',')
      fanout.deliver(conn, Number(seq), Number(sent))
      return
    }
    const body = message.type === 'reply' ? message.data : message
    echo.reply(conn, body.seq, body.sent)
    return
  }
  let at = start + 1
  while (buffer[at] !== 0x2c) at++
  at++
  let seq = 0
  let digit
  while ((digit = buffer[at] - 48) >= 0 && digit <= 9) {
    seq = seq * 10 + digit
    at++
  }
  at++
  let sent = 0
  while (at < end && (digit = buffer[at] - 48) >= 0 && digit <= 9) {
    sent = sent * 10 + digit
    at++
  }
  if (kind === CH_P) fanout.deliver(conn, seq, sent)
  else if (kind === CH_E) echo.reply(conn, seq, sent)
}

// ---------------------------------------------------------------------------------------
// Measurements

function processTicks (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime
}

/** Busy ticks of the whole machine (every CPU), steal included: to see what else was running. */
function machineTicks () {
  const fields = readFileSync('/proc/stat', 'latin1').slice(0, 200).split('\n')[0].trim().split(/\s+/).map(Number)
  // cpu user nice system idle iowait irq softirq steal …
  return fields[1] + fields[2] + fields[3] + fields[6] + fields[7] + fields[8]
}

function startMeter () {
  return { wall: performance.now(), server: processTicks(serverPid), self: processTicks(process.pid), machine: machineTicks() }
}

function stopMeter (meter) {
  const seconds = (performance.now() - meter.wall) / 1000
  const server = processTicks(serverPid) - meter.server
  const self = processTicks(process.pid) - meter.self
  const others = machineTicks() - meter.machine - server - self
  const serverCpuSeconds = server / clockTicks
  return {
    seconds,
    serverCpuSeconds,
    serverCpuPct: 100 * serverCpuSeconds / seconds,
    loadCpuPct: 100 * self / clockTicks / seconds,
    otherCpuPct: Math.max(0, 100 * others / clockTicks / seconds)
  }
}

const ms = (us) => us === null ? null : us / 1000

// ---------------------------------------------------------------------------------------
// Fan-out: one publisher, N receivers, all in room 'bench'. A message is complete once all N
// receivers have it. 'window' keeps `window` messages outstanding (the server sets the
// pace); 'paced' publishes at a fixed rate.

const MAX_SEQ = 1 << 21

const fanout = {
  received: new Int32Array(MAX_SEQ),
  expected: 0,
  nextSeq: 0,
  complete: 0,
  measureFrom: Infinity,
  histogram: new Histogram(),
  deliveries: 0,
  outOfOrder: 0,
  onComplete: null,

  deliver (conn, seq, sent) {
    if (conn.role !== 'recv') return
    if (seq <= conn.lastSeq) this.outOfOrder++
    conn.lastSeq = seq
    if (seq >= this.measureFrom) {
      this.deliveries++
      this.histogram.record(nowUs - sent)
    }
    if (++this.received[seq] === this.expected) {
      this.complete++
      this.onComplete?.(seq)
    }
  },

  /** JSON bodies sent after the header, by turns (none: the header alone). */
  bodies: [],

  publish () {
    const seq = this.nextSeq++
    const header = `P0,${seq},${Math.round(performance.now() * 1000)}`
    sendText(connections.pub[0], this.bodies.length === 0 ? header : header + ' ' + this.bodies[seq % this.bodies.length])
  },

  /** Resolves when every message sent so far is complete, or false after timeoutMs. */
  async drain (timeoutMs) {
    const deadline = performance.now() + timeoutMs
    while (this.complete < this.nextSeq) {
      if (performance.now() > deadline) return false
      await sleep(2)
    }
    return true
  },

  /** Sends `count` messages, at most `window` outstanding, then waits for them. */
  async burst (count, window, timeoutMs) {
    const last = this.nextSeq + count
    this.onComplete = () => {
      if (this.nextSeq < last) this.publish()
    }
    for (let i = 0; i < window && this.nextSeq < last; i++) this.publish()
    const drained = await this.drain(timeoutMs)
    this.onComplete = null
    return drained
  }
}

async function runFanout ({ mode, window, rate, warmup, durationMs, drainMs, messageBytes = 0 }) {
  if (connections.pub.length !== 1) throw new Error('fanout needs one publisher')
  const n = connections.recv.length
  const bodies = messageBytes === 0 ? [] : jsonBodies(messageBytes - 22, 64) // 22: about the header's length ('P0,123,1764633600123 ')
  Object.assign(fanout, { expected: n, nextSeq: 0, complete: 0, measureFrom: Infinity, deliveries: 0, outOfOrder: 0, histogram: new Histogram(), bodies })
  fanout.received.fill(0)
  for (const conn of connections.recv) conn.lastSeq = -1

  // Warm-up; it also proves that every receiver is in the room before measuring.
  if (!await fanout.burst(warmup, Math.min(window, warmup), drainMs)) {
    throw new Error(`warm-up: only ${fanout.complete} of ${warmup} messages reached all ${n} receivers`)
  }

  const first = fanout.nextSeq
  fanout.measureFrom = first
  const bytesBefore = bytesRead(connections.recv)
  const meter = startMeter()
  const stopAt = performance.now() + durationMs
  if (mode === 'window') {
    fanout.onComplete = () => {
      if (performance.now() < stopAt) fanout.publish()
    }
    for (let i = 0; i < window; i++) fanout.publish()
    while (performance.now() < stopAt) await sleep(5)
    fanout.onComplete = null
  } else {
    // Paced: catch up with the schedule on every tick, so timer jitter does not lower the rate.
    const start = performance.now()
    while (performance.now() < stopAt) {
      const due = Math.floor((performance.now() - start) * rate / 1000) + 1
      while (fanout.nextSeq - first < due) fanout.publish()
      await sleep(Math.max(1, Math.floor(1000 / rate / 2)))
    }
  }
  const published = performance.now()
  const drained = await fanout.drain(drainMs)
  const drainSeconds = (performance.now() - published) / 1000
  const measured = stopMeter(meter)
  const bytes = bytesRead(connections.recv) - bytesBefore

  const messages = fanout.nextSeq - first
  let lost = 0
  let duplicated = 0
  for (let seq = first; seq < fanout.nextSeq; seq++) {
    const got = fanout.received[seq]
    if (got < n) lost += n - got
    else if (got > n) duplicated += got - n
  }
  return {
    receivers: n,
    messages,
    deliveries: fanout.deliveries,
    deliveriesPerSec: fanout.deliveries / measured.seconds,
    deliveriesPerCpuSec: measured.serverCpuSeconds > 0 ? fanout.deliveries / measured.serverCpuSeconds : null,
    // What the receivers read (frames, headers included), per message each received.
    bytesPerDelivery: fanout.deliveries > 0 ? bytes / fanout.deliveries : null,
    messageBytes: messageBytes === 0 ? null : Buffer.byteLength(`P0,${first},${Math.round(performance.now() * 1000)} ${bodies[0]}`),
    compressedReceivers: connections.recv.filter((conn) => conn.inflate !== null).length,
    p50: ms(fanout.histogram.percentile(0.5)),
    p99: ms(fanout.histogram.percentile(0.99)),
    lost,
    duplicated,
    outOfOrder: fanout.outOfOrder,
    drained,
    drainSeconds,
    // Paced: the server kept up when the last message was out to everyone within 1.5 periods.
    behind: mode === 'paced' ? drainSeconds > 1.5 / rate : undefined,
    disconnected,
    ...measured
  }
}

function bytesRead (conns) {
  let total = 0
  for (const conn of conns) total += conn.socket.bytesRead
  return total
}

const WORDS = ('the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not ' +
  'what all were we when your can said there use an each which she do how their if will up other about out many then them ' +
  'these so some her would make like him into time has look two more write go see number no way could people my than first ' +
  'water been call who oil its now find long down day did get come made may part server room chart price update status').split(' ')

/**
 * `count` JSON texts of about `size` bytes each, as an app sends them: an update with a list
 * of records whose keys repeat and whose values (ids, times, prices, words) vary.
 */
function jsonBodies (size, count) {
  let state = 0x9e3779b9
  const random = () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 4294967296
  }
  const pick = (list) => list[Math.floor(random() * list.length)]
  const bodies = []
  for (let b = 0; b < count; b++) {
    const items = []
    let text = ''
    for (;;) {
      const words = Array.from({ length: 4 + Math.floor(random() * 8) }, () => pick(WORDS)).join(' ')
      items.push({ id: 100_000 + Math.floor(random() * 900_000), user: `user${Math.floor(random() * 500)}`, at: 1_764_633_600_000 + Math.floor(random() * 86_400_000), price: Math.round(random() * 1_000_000) / 100, change: Math.round((random() - 0.5) * 1000) / 100, status: pick(['open', 'closed', 'pending']), text: words })
      const next = JSON.stringify({ type: 'update', channel: 'bench', items })
      if (next.length > size) break
      text = next
    }
    // A note of words brings it to `size` exactly.
    let note = ''
    while (note.length < size) note += pick(WORDS) + ' '
    const short = size - text.length - ',"note":""'.length
    bodies.push(short > 0 ? `${text.slice(0, -1)},"note":"${note.slice(0, short)}"}` : text)
  }
  return bodies
}

// ---------------------------------------------------------------------------------------
// Echo: every client keeps one message in flight.

const echo = {
  running: false,
  measuring: false,
  roundTrips: 0,
  histogram: new Histogram(),

  /** Send JSON objects ({ type, client, seq, sent }) rather than 'E…' texts. */
  json: false,
  /** Send requests that ask for a reply: {"type":"echo","id","data"} (ws), emitWithAck's packet (sio). */
  request: false,

  send (conn) {
    const sent = Math.round(performance.now() * 1000)
    if (this.request) {
      const seq = conn.seq++
      const data = `{"client":${conn.id},"seq":${seq},"sent":${sent}}`
      if (protocol === 'sio') sendRaw(conn, `42${seq}["echo",${data}]`)
      else sendText(conn, `{"type":"echo","id":${seq},"data":${data}}`)
    } else if (this.json) {
      sendText(conn, `{"type":"echo","client":${conn.id},"seq":${conn.seq++},"sent":${sent}}`)
    } else {
      sendText(conn, `E${conn.id},${conn.seq++},${sent}`)
    }
  },

  reply (conn, seq, sent) {
    if (conn.role !== 'echo') return
    conn.inFlight = false
    if (this.measuring) {
      this.roundTrips++
      this.histogram.record(nowUs - sent)
    }
    if (this.running) {
      conn.inFlight = true
      this.send(conn)
    }
  }
}

async function runEcho ({ warmupMs, durationMs, json = false, request = false }) {
  const clients = connections.echo
  echo.json = json
  echo.request = request
  echo.running = true
  echo.measuring = false
  for (const conn of clients) {
    conn.inFlight = true
    echo.send(conn)
  }
  await sleep(warmupMs)
  echo.roundTrips = 0
  echo.histogram = new Histogram()
  echo.measuring = true
  const meter = startMeter()
  await sleep(durationMs)
  const roundTrips = echo.roundTrips
  const histogram = echo.histogram
  const measured = stopMeter(meter)
  echo.measuring = false
  echo.running = false
  const deadline = performance.now() + 5000
  while (clients.some((conn) => conn.inFlight) && performance.now() < deadline) await sleep(5)
  return {
    clients: clients.length,
    roundTrips,
    roundTripsPerSec: roundTrips / measured.seconds,
    roundTripsPerCpuSec: measured.serverCpuSeconds > 0 ? roundTrips / measured.serverCpuSeconds : null,
    p50: ms(histogram.percentile(0.5)),
    p99: ms(histogram.percentile(0.99)),
    unanswered: clients.filter((conn) => conn.inFlight).length,
    disconnected,
    ...measured
  }
}

// ---------------------------------------------------------------------------------------
// Handshakes: `concurrency` workers, each in a loop of connect, upgrade (and, for Socket.IO,
// the namespace connect), close frame, wait for the server's close frame.

function handshakeOnce (path, id) {
  return open('hs', id, path).then((conn) => new Promise((resolve) => {
    let done = false
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(timer)
      conn.socket.destroy()
      resolve()
    }
    const timer = setTimeout(finish, 5000)
    conn.onCloseFrame = finish
    conn.onClosed = finish
    conn.socket.write(CLOSE_FRAME)
  }))
}

async function runHandshakes ({ path, count, concurrency }) {
  let started = 0
  let failed = 0
  let firstError = null
  const meter = startMeter()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (started < count) {
      const id = started++
      try {
        await handshakeOnce(path, id)
      } catch (error) {
        failed++
        firstError ??= String(error.message)
      }
    }
  }))
  const measured = stopMeter(meter)
  const done = count - failed
  return {
    path,
    handshakes: done,
    failed,
    firstError,
    handshakesPerSec: done / measured.seconds,
    handshakesPerCpuSec: measured.serverCpuSeconds > 0 ? done / measured.serverCpuSeconds : null,
    ...measured
  }
}

// ---------------------------------------------------------------------------------------
// Commands from bench/run.mjs

async function connectMany ({ role, count, path, concurrency = 200, deflate = false, sources = 1 }) {
  const list = connections[role]
  const base = list.length
  let next = 0
  const start = performance.now()
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const id = base + next++
      list.push(await open(role, id, path, deflate, sources > 1 ? `127.0.0.${1 + id % sources}` : undefined))
    }
  }))
  return { role, count: list.length, compressed: list.filter((conn) => conn.inflate !== null).length, seconds: (performance.now() - start) / 1000 }
}

async function closeMany ({ role, count = Infinity, settleMs = 0 }) {
  const list = connections[role]
  const closing = list.splice(Math.max(0, list.length - count))
  for (const conn of closing) {
    conn.state = CLOSED
    conn.socket.destroy()
  }
  if (settleMs > 0) await sleep(settleMs)
  return { role, closed: closing.length, left: list.length }
}

const commands = {
  init (options) {
    port = options.port
    protocol = options.protocol
    serverPid = options.serverPid
    clockTicks = options.clockTicks
    return {}
  },
  connect: connectMany,
  close: closeMany,
  fanout: runFanout,
  echo: runEcho,
  handshakes: runHandshakes,
  beat: waitForBeat,
  exit () {
    setImmediate(() => process.exit(0))
    return {}
  }
}

process.on('disconnect', () => process.exit(0))
process.on('message', (message) => {
  const command = commands[message?.cmd]
  if (command === undefined) return
  Promise.resolve()
    .then(() => command(message))
    .then(
      (result) => process.send({ id: message.id, result }),
      (error) => process.send({ id: message.id, error: String(error?.stack ?? error) }))
})
process.send({ type: 'ready' })

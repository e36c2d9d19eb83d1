// Soak: does the server's memory come back after churn and broadcast storms?
//
//   npm run soak                      (builds, then node --expose-gc bench/soak.mjs)
//   SOAK_CLIENTS=5000 SOAK_ROOMS=50 SOAK_CYCLES=5 SOAK_SECONDS=120 npm run soak
//
// The server (Fastify + this plugin, from dist/ through the package name) runs in a child
// process, so the clients' memory does not pollute its figures; it reports its memory over
// IPC after forcing GC. The parent opens SOAK_CLIENTS connections with a light raw-TCP client
// (handshake, masked frames out, a minimal frame parser in), each in one of SOAK_ROOMS rooms
// and in "lobby", then runs cycles of:
//   1. churn: 20% of the clients leave (half cut the TCP connection, half close cleanly)
//      while the server broadcasts binary noise, and as many new clients connect;
//   2. a server-side storm: text broadcasts to every room and to the lobby, counted;
//   3. a client storm: 10% of the clients send messages the server broadcasts to their
//      room, counted;
//   4. forced GC in the server, then RSS, heapUsed, sessions and rooms.
// It stops by itself after SOAK_CYCLES cycles or SOAK_SECONDS seconds, closes everything and
// prints a Markdown table and a verdict: does heapUsed come back to within a band of the
// baseline (measured after the initial connect) after each cycle? Traffic is on 127.0.0.1.
// SOAK_SNAPSHOTS=1 also writes server heap snapshots (baseline and last cycle) to the cwd.
// The report also goes to bench/results-soak.md.
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import { connect as tcpConnect } from 'node:net'
import { fileURLToPath } from 'node:url'

const env = (name, fallback) => {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number`)
  return value
}

const CLIENTS = env('SOAK_CLIENTS', 5000)
const ROOMS = env('SOAK_ROOMS', 50)
const CYCLES = env('SOAK_CYCLES', 5)
const SECONDS = env('SOAK_SECONDS', 120)
const CHURN = 0.2
const SENDERS = 0.1
const SERVER_ROUNDS = 10
const CLIENT_MESSAGES = 4
const MESSAGE_BYTES = 200
const CONNECT_CONCURRENCY = 200
/** heapUsed within this fraction of the baseline, or within BAND_BYTES of it, is "back". */
const BAND = 0.15
const BAND_BYTES = 4 * 1024 * 1024

// -------------------------------------------------------------------------------------------
// The server, in the child process.

async function runServer () {
  const { default: Fastify } = await import('fastify')
  const { default: websocketRooms } = await import('fastify-websocket-rooms')
  const v8 = await import('node:v8')
  const app = Fastify({ logger: false })
  await app.register(websocketRooms)
  app.registerWebsocket('/soak', {
    onConnected (session) {
      const room = session.getParameter('room') ?? 'r0'
      session.setAttribute('room', room)
      session.room(room).join()
      session.room('lobby').join()
    },
    handleText (session, text) {
      // "B...": broadcast to the sender's room (the sender too); anything else is echoed.
      if (text.charCodeAt(0) === 66) session.room(session.getAttribute('room')).broadcast(text)
      else session.send(text)
    },
    handleBinary (session, data) {
      session.send(data)
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  process.on('disconnect', () => process.exit(1)) // the parent is gone

  const turn = () => new Promise((resolve) => setImmediate(resolve))

  async function storm ({ rounds, bytes, binary }) {
    const message = binary ? randomBytes(bytes) : 'S' + 'x'.repeat(bytes - 1)
    const rooms = app.websocketRooms.roomNames()
    for (let i = 0; i < rounds; i++) {
      for (const name of rooms) app.websocketRooms.room(name).broadcast(message)
      await turn()
    }
    return { rooms: rooms.length }
  }

  async function measure ({ snapshot }) {
    // Several collections, with turns between them for finalizers and weak callbacks.
    for (let i = 0; i < 4; i++) {
      globalThis.gc()
      await turn()
    }
    const memory = process.memoryUsage()
    const file = snapshot ? v8.writeHeapSnapshot(`soak-server-${Date.now()}.heapsnapshot`) : null
    return { ...memory, sessions: app.websocketSessions.size, rooms: app.websocketRooms.roomNames().length, stats: app.websocketRooms.stats(), snapshot: file }
  }

  const commands = {
    storm,
    measure,
    counts: async () => ({ sessions: app.websocketSessions.size, rooms: app.websocketRooms.roomNames().length }),
    close: async () => {
      await app.close()
      return {}
    }
  }
  process.on('message', async ({ id, command, args }) => {
    try {
      process.send({ id, result: await commands[command](args ?? {}) })
    } catch (error) {
      process.send({ id, error: String(error?.stack ?? error) })
    }
    if (command === 'close') process.disconnect()
  })
  if (typeof globalThis.gc !== 'function') throw new Error('the server needs --expose-gc')
  process.send({ ready: true, port: app.server.address().port })
}

// -------------------------------------------------------------------------------------------
// The parent: light clients, cycles, the report.

async function runParent () {
  const started = Date.now()
  const deadline = started + SECONDS * 1000
  const child = fork(fileURLToPath(import.meta.url), ['--server'], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  // The hard stop: whatever happens, the run ends shortly after the time cap.
  const hardStop = setTimeout(() => {
    console.error(`soak: still running ${SECONDS + 30} s after start; stopping`)
    child.kill('SIGKILL')
    process.exit(2)
  }, (SECONDS + 30) * 1000)
  hardStop.unref()

  const pending = new Map()
  let nextId = 0
  const ready = new Promise((resolve, reject) => {
    child.on('message', (message) => {
      if (message.ready) return resolve(message.port)
      const request = pending.get(message.id)
      pending.delete(message.id)
      if (message.error !== undefined) request.reject(new Error(`server: ${message.error}`))
      else request.resolve(message.result)
    })
    child.once('exit', (code, signal) => {
      const error = new Error(`the server exited (${code ?? signal})`)
      reject(error)
      for (const request of pending.values()) request.reject(error)
    })
  })
  const ask = (command, args) => new Promise((resolve, reject) => {
    const id = nextId++
    pending.set(id, { resolve, reject })
    child.send({ id, command, args })
  })

  const port = await ready
  const counters = { text: 0, binary: 0, opened: 0, failed: 0 }
  const clients = new Set()
  const roomSizes = new Map()
  let roomTurn = 0

  /** Waits (polling) until condition() holds; fails past the time cap or `ms`. */
  async function waitFor (what, condition, ms = 30_000) {
    const limit = Math.min(Date.now() + ms, deadline + 10_000)
    while (!(await condition())) {
      if (Date.now() > limit) throw new Error(`soak: timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  async function openClients (n) {
    let next = 0
    const worker = async () => {
      while (next < n) {
        next++
        const room = `r${roomTurn++ % ROOMS}`
        try {
          const client = await LightClient.open(port, room, counters)
          clients.add(client)
          roomSizes.set(room, (roomSizes.get(room) ?? 0) + 1)
          client.closed.then(() => {
            clients.delete(client)
            roomSizes.set(room, roomSizes.get(room) - 1)
          })
        } catch (error) {
          counters.failed++
          if (counters.failed <= 3) console.error(`soak: connect failed: ${error.message}`)
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(n, CONNECT_CONCURRENCY) }, worker))
  }

  const expectCounts = (what) => waitFor(what, async () => {
    const { sessions, rooms } = await ask('counts')
    const occupied = [...roomSizes.values()].filter((size) => size > 0).length
    return sessions === clients.size && rooms === (clients.size === 0 ? 0 : occupied + 1)
  })

  const pickSome = (fraction) => [...clients].sort(() => Math.random() - 0.5).slice(0, Math.round(clients.size * fraction))
  const rows = []
  const MB = (bytes) => (bytes / 1048576).toFixed(1)

  function row (label, m, extra = {}) {
    rows.push({ label, ...extra, heapUsed: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers, sessions: m.sessions, rooms: m.rooms })
    console.error(`soak: ${label}: heapUsed ${MB(m.heapUsed)} MB, rss ${MB(m.rss)} MB, sessions ${m.sessions}, rooms ${m.rooms}${extra.seconds === undefined ? '' : `, ${extra.seconds} s`}`)
  }

  /** Why the run ended before its last cycle, if it did; `failed` when that was an error. */
  let stopped = null
  let failed = false
  const snapshots = []
  try {
    let t0 = Date.now()
    await openClients(CLIENTS)
    if (clients.size !== CLIENTS) throw new Error(`soak: only ${clients.size} of ${CLIENTS} clients connected`)
    await expectCounts('every session and room after the initial connect')
    const baseline = await ask('measure', { snapshot: process.env.SOAK_SNAPSHOTS === '1' })
    if (baseline.snapshot) snapshots.push(baseline.snapshot)
    row('baseline', baseline, { seconds: ((Date.now() - t0) / 1000).toFixed(1) })

    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      if (Date.now() > deadline) {
        stopped = `time cap of ${SECONDS} s reached before cycle ${cycle}`
        break
      }
      t0 = Date.now()
      // 1. Churn under binary noise.
      const noise = ask('storm', { rounds: 3, bytes: MESSAGE_BYTES, binary: true })
      const leaving = pickSome(CHURN)
      leaving.forEach((client, i) => (i % 2 === 0 ? client.destroy() : client.close()))
      await Promise.all(leaving.map((client) => client.closed))
      await openClients(leaving.length)
      await noise
      await expectCounts(`every session and room after the churn of cycle ${cycle}`)

      // 2. Server-side storm: every client gets SERVER_ROUNDS messages from its room and as many from the lobby.
      let before = counters.text
      const serverExpected = clients.size * SERVER_ROUNDS * 2
      await ask('storm', { rounds: SERVER_ROUNDS, bytes: MESSAGE_BYTES, binary: false })
      await waitFor(`the server storm of cycle ${cycle}`, () => counters.text - before >= serverExpected)
      const serverDelivered = counters.text - before

      // 3. Client storm: each message comes back to every member of the sender's room.
      before = counters.text
      let clientExpected = 0
      const payload = 'B' + 'y'.repeat(MESSAGE_BYTES - 1)
      for (const sender of pickSome(SENDERS)) {
        for (let i = 0; i < CLIENT_MESSAGES; i++) sender.sendText(payload)
        clientExpected += CLIENT_MESSAGES * roomSizes.get(sender.room)
      }
      await waitFor(`the client storm of cycle ${cycle}`, () => counters.text - before >= clientExpected)
      const clientDelivered = counters.text - before

      const m = await ask('measure', { snapshot: process.env.SOAK_SNAPSHOTS === '1' && cycle === CYCLES })
      if (m.snapshot) snapshots.push(m.snapshot)
      row(`cycle ${cycle}`, m, {
        seconds: ((Date.now() - t0) / 1000).toFixed(1),
        churned: leaving.length,
        delivered: `${serverDelivered + clientDelivered}/${serverExpected + clientExpected}`
      })
    }

    // Everyone leaves: half cleanly, half cut off. The registry must empty.
    const all = [...clients]
    all.forEach((client, i) => (i % 2 === 0 ? client.close() : client.destroy()))
    await Promise.all(all.map((client) => client.closed))
    await expectCounts('no session and no room once every client is gone')
    row('all clients gone', await ask('measure', {}))
  } catch (error) {
    stopped = error.message
    failed = true
    for (const client of clients) client.destroy()
  }

  await ask('close').catch(() => {})
  await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))
  clearTimeout(hardStop)
  const healthy = report(rows, stopped, Date.now() - started, counters, snapshots)
  // A run cut short by the time cap is no failure; an error, a leak or a lost message is.
  process.exitCode = healthy && !failed ? 0 : 1
}

function report (rows, stopped, elapsed, counters, snapshots) {
  const MB = (bytes) => (bytes / 1048576).toFixed(1)
  const baseline = rows.find((r) => r.label === 'baseline')
  const cycles = rows.filter((r) => r.label.startsWith('cycle'))
  const band = baseline === undefined ? 0 : Math.max(BAND * baseline.heapUsed, BAND_BYTES)
  const lines = [
    '',
    `Soak: ${CLIENTS} clients, ${ROOMS} rooms + lobby, ${CYCLES} cycles (cap ${SECONDS} s), node ${process.version}, ${os.availableParallelism()} CPU(s), ${new Date().toISOString()}, ${(elapsed / 1000).toFixed(1)} s in all`,
    '',
    '| point | heapUsed MB | vs baseline | heapTotal MB | RSS MB | external MB | sessions | rooms | churned | delivered | s |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
  ]
  for (const r of rows) {
    const delta = baseline === undefined ? '' : `${r.heapUsed >= baseline.heapUsed ? '+' : ''}${MB(r.heapUsed - baseline.heapUsed)} (${((r.heapUsed / baseline.heapUsed - 1) * 100).toFixed(1)}%)`
    lines.push(`| ${r.label} | ${MB(r.heapUsed)} | ${r.label === 'baseline' ? '' : delta} | ${MB(r.heapTotal)} | ${MB(r.rss)} | ${MB(r.external)} | ${r.sessions} | ${r.rooms} | ${r.churned ?? ''} | ${r.delivered ?? ''} | ${r.seconds ?? ''} |`)
  }
  lines.push('')
  let healthy = false
  if (baseline === undefined || cycles.length === 0) {
    lines.push(`Verdict: no cycle completed${stopped === null ? '' : ` (${stopped})`}.`)
  } else {
    const outside = cycles.filter((r) => Math.abs(r.heapUsed - baseline.heapUsed) > band)
    const slope = cycles.length > 1 ? (cycles[cycles.length - 1].heapUsed - cycles[0].heapUsed) / (cycles.length - 1) : 0
    const undelivered = cycles.filter((r) => { const [got, expected] = r.delivered.split('/').map(Number); return got !== expected })
    lines.push(`Verdict: heapUsed ${outside.length === 0 ? 'returned' : 'did NOT return'} to within ±${MB(band)} MB (max of ${BAND * 100}% and ${MB(BAND_BYTES)} MB) of the ${MB(baseline.heapUsed)} MB baseline after ${cycles.length - outside.length} of ${cycles.length} cycle${cycles.length === 1 ? '' : 's'}` +
      `${outside.length === 0 ? '' : ` (outside: ${outside.map((r) => r.label).join(', ')})`}; drift from cycle 1 to cycle ${cycles.length}: ${slope >= 0 ? '+' : ''}${MB(slope)} MB per cycle.`)
    lines.push(`Every storm message was delivered exactly: ${undelivered.length === 0 ? 'yes' : `no (${undelivered.map((r) => r.label).join(', ')})`}. Failed connects: ${counters.failed}.`)
    healthy = outside.length === 0 && undelivered.length === 0 && counters.failed === 0
  }
  if (stopped !== null) lines.push(`Stopped: ${stopped}.`)
  if (snapshots.length > 0) lines.push(`Heap snapshots: ${snapshots.join(', ')}`)
  console.log(lines.join('\n'))
  writeFileSync(new URL('./results-soak.md', import.meta.url), `# Soak\n${lines.join('\n')}\n`)
  return healthy
}

// -------------------------------------------------------------------------------------------
// A light WebSocket client: a raw TCP handshake, masked frames out, a minimal parser in.

const EMPTY = Buffer.alloc(0)

/** A client frame, masked with a zero key (masking is then the identity; the server only needs the bit). */
function clientFrame (opcode, payload) {
  const length = payload.length
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(header + 4 + length)
  frame[0] = 0x80 | opcode
  if (header === 2) {
    frame[1] = 0x80 | length
  } else if (header === 4) {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 0x80 | 127
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  frame.writeUInt32BE(0, header)
  payload.copy(frame, header + 4)
  return frame
}

class LightClient {
  constructor (socket, room, counters) {
    this.socket = socket
    this.room = room
    this.counters = counters
    this.buffer = EMPTY
    this.closeSent = false
    this.closed = new Promise((resolve) => socket.once('close', resolve))
    socket.on('error', () => {})
  }

  static open (port, room, counters) {
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ host: '127.0.0.1', port })
      const client = new LightClient(socket, room, counters)
      let head = EMPTY
      const onData = (chunk) => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk])
        const end = head.indexOf('\r\n\r\n')
        if (end === -1) return
        socket.off('data', onData)
        socket.off('close', onClose)
        if (!head.subarray(0, 13).toString().startsWith('HTTP/1.1 101')) {
          socket.destroy()
          reject(new Error(`handshake refused: ${head.subarray(0, end).toString().split('\r\n')[0]}`))
          return
        }
        socket.on('data', (data) => client.receive(data))
        if (head.length > end + 4) client.receive(head.subarray(end + 4))
        resolve(client)
      }
      const onClose = () => reject(new Error('closed during the handshake'))
      socket.on('data', onData)
      socket.on('close', onClose)
      socket.write(`GET /soak?room=${room} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    })
  }

  receive (chunk) {
    const buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    let at = 0
    while (buffer.length - at >= 2) {
      let length = buffer[at + 1] & 0x7f
      let header = 2
      if (length === 126) {
        if (buffer.length - at < 4) break
        length = buffer.readUInt16BE(at + 2)
        header = 4
      } else if (length === 127) {
        if (buffer.length - at < 10) break
        length = Number(buffer.readBigUInt64BE(at + 2))
        header = 10
      }
      if (buffer.length - at < header + length) break
      const opcode = buffer[at] & 0x0f
      if (opcode === 0x1) {
        this.counters.text++
      } else if (opcode === 0x2) {
        this.counters.binary++
      } else if (opcode === 0x9) {
        // The server's heartbeat: answer, or be cut off.
        this.write(clientFrame(0xa, buffer.subarray(at + header, at + header + length)))
      } else if (opcode === 0x8) {
        if (!this.closeSent) this.write(clientFrame(0x8, buffer.subarray(at + header, at + header + Math.min(length, 2))))
        this.closeSent = true
        this.socket.end()
      }
      at += header + length
    }
    this.buffer = at === buffer.length ? EMPTY : buffer.subarray(at)
  }

  write (frame) {
    if (this.socket.writable) this.socket.write(frame)
  }

  sendText (text) {
    this.write(clientFrame(0x1, Buffer.from(text)))
  }

  /** Starts the close handshake; `closed` resolves once the server has answered and ended. */
  close () {
    if (this.closeSent) return
    this.closeSent = true
    this.write(clientFrame(0x8, Buffer.from([0x03, 0xe8])))
  }

  destroy () {
    this.socket.destroy()
  }
}

// Last, once every class above is defined.
if (process.argv[2] === '--server') {
  await runServer()
} else {
  await runParent()
}

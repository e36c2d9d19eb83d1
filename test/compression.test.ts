// compression: 'shared' (lib/transport/deflate.ts): the server answers every permessage-deflate
// offer with server_no_context_takeover, and a broadcast is deflated once and written as the
// same compressed frame to every member that negotiated it, the plain frame to the others.
// Real clients (ws with and without window-size requests, ws without compression, and a raw
// client whose inflater keeps its context across messages, as a browser's may) get every
// message exactly as sent and in order, interleaved with direct sends and pings. And the
// backpressure bound with compression, ws's per-member one too: readers in a process of their
// own that read everything are not cut for what waits for ws's deflate; one that reads nothing is.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { createInterface } from 'node:readline'
import { constants, createInflateRaw } from 'node:zlib'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import { test, type Test } from 'tap'
import WebSocket from 'ws'
import websocketRooms from 'fastify-websocket-rooms'
import type { WebsocketRoomsOptions } from 'fastify-websocket-rooms'
import { DEFLATE_BACKLOG } from '../lib/session/session'
import { probeDeflate } from '../lib/transport/deflate'
import { Client, build, connect, listen } from './helpers'
import { RawClient, opcodes, type ServerFrame } from './raw-client'
import { Events, until } from './signals'

type AnyClass = new (...args: any[]) => any

/** ws's PerMessageDeflate class, as the server's sockets use it (not exported by ws). */
function perMessageDeflateOf (socket: WebSocket): AnyClass {
  return (socket as any)._extensions['permessage-deflate'].constructor
}

/** A ws client that also keeps the server's answer to its extension offer and counts pings. */
class DeflateClient extends Client {
  extensions: string | undefined
  pings = 0
  constructor (url: string, perMessageDeflate: WebSocket.ClientOptions['perMessageDeflate']) {
    super(url, { perMessageDeflate })
    this.ws.on('upgrade', (response) => { this.extensions = response.headers['sec-websocket-extensions'] })
    this.ws.on('ping', () => { this.pings++ })
  }
}

async function deflateClient (base: string, path: string, perMessageDeflate: WebSocket.ClientOptions['perMessageDeflate']): Promise<DeflateClient> {
  const client = new DeflateClient(base + path, perMessageDeflate)
  await client.opened
  return client
}

/**
 * Inflates a raw client's frames with one inflater for the whole connection that keeps its
 * context (the window) from message to message: what RFC 7692 lets a client do when the
 * server keeps none, and the strictest reading of the compressed stream.
 */
function contextInflater (): (frame: ServerFrame) => Promise<Buffer> {
  const inflate = createInflateRaw()
  let chain: Promise<unknown> = Promise.resolve()
  const one = (payload: Buffer): Promise<Buffer> => new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const onData = (chunk: Buffer): void => { chunks.push(chunk) }
    inflate.on('data', onData)
    inflate.once('error', reject)
    inflate.write(Buffer.concat([payload, Buffer.from([0x00, 0x00, 0xff, 0xff])]))
    inflate.flush(constants.Z_SYNC_FLUSH, () => {
      inflate.off('data', onData)
      inflate.off('error', reject)
      resolve(Buffer.concat(chunks))
    })
  })
  return (frame) => {
    const result = chain.then(() => frame.rsv === 0b100 ? one(frame.payload) : frame.payload)
    chain = result.catch(() => {})
    return result
  }
}

/** A message of `size` bytes that compresses as JSON does: repeated keys, varying values. */
function jsonOf (size: number, seed: number): string {
  let text = '['
  for (let i = 0; text.length < size; i++) text += `{"id":${seed * 1000 + i},"user":"user${(i * 7919 + seed) % 97}","text":"message ${i} of ${seed}"},`
  return text.slice(0, size)
}

function binaryOf (size: number, seed: number): Buffer {
  const data = Buffer.alloc(size)
  for (let i = 0; i < size; i++) data[i] = (i % 251) ^ (seed * 31 + (i >> 7)) & 0xff
  return data
}

type Expected = { binary: boolean, data: string | Buffer }

const SIZES = [0, 10, 1023, 1024, 1025, 5000, 70_000, 200_000]

/**
 * Registers /ws: on "go", for each size, a text broadcast, a direct send (big enough that ws
 * compresses it, asynchronously: the sender is busy meanwhile), a binary broadcast and a
 * ping to every session, all in one turn. Returns what every member is expected to get, after "ready".
 */
function burstRoute (app: Awaited<ReturnType<typeof build>>): { sender: Expected[], other: Expected[], pings: number } {
  const sender: Expected[] = []
  const other: Expected[] = []
  for (const [i, size] of SIZES.entries()) {
    const text = jsonOf(size, i)
    const direct = `direct ${i} ${jsonOf(1500, 100 + i)}`
    const binary = binaryOf(size, i)
    sender.push({ binary: false, data: text }, { binary: false, data: direct }, { binary: true, data: binary })
    other.push({ binary: false, data: text }, { binary: true, data: binary })
  }
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('mixed').join()
      session.send('ready')
    },
    handleText (session, text) {
      if (text !== 'go') return
      const room = session.room('mixed')
      for (const [i, size] of SIZES.entries()) {
        room.broadcast(jsonOf(size, i))
        session.send(`direct ${i} ${jsonOf(1500, 100 + i)}`)
        room.broadcast(binaryOf(size, i))
        for (const member of app.websocketSessions.values()) member.socket.ping()
      }
    }
  })
  return { sender, other, pings: SIZES.length }
}

function sameMessages (t: Test, got: Array<{ binary: boolean, data: string | Buffer }>, expected: Expected[], who: string): void {
  t.equal(got.length, expected.length, `${who}: as many messages as sent`)
  const wrong = expected.findIndex((message, i) => got[i] === undefined || got[i]!.binary !== message.binary ||
    (message.binary ? !Buffer.from(got[i]!.data as Buffer).equals(message.data as Buffer) : got[i]!.data !== message.data))
  t.equal(wrong, -1, `${who}: every message whole, of its type, in order`)
}

test('registration: compression must be "shared" or false, and refuses a perMessageDeflate that contradicts it', async (t) => {
  const refused: Array<[WebsocketRoomsOptions, RegExp]> = [
    [{ compression: 'yes' as any }, /option "compression" must be "shared" or false, got "yes"/],
    [{ compression: true as any }, /option "compression" must be "shared" or false, got boolean true/],
    [{ compression: 'shared', websocketOptions: { perMessageDeflate: false } }, /option "websocketOptions\.perMessageDeflate" must be unset, true or an object .*got boolean false/],
    [{ compression: 'shared', websocketOptions: { perMessageDeflate: { serverNoContextTakeover: false } } }, /option "websocketOptions\.perMessageDeflate\.serverNoContextTakeover" must be unset or true .*got boolean false/]
  ]
  for (const [options, message] of refused) {
    const app = Fastify({ logger: false })
    await t.rejects(async () => { await app.register(websocketRooms, options) }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message }, JSON.stringify(options))
    await app.close()
  }
  // Off, perMessageDeflate is the user's to set, false included.
  for (const options of [{ compression: false as const, websocketOptions: { perMessageDeflate: false } }, { websocketOptions: { perMessageDeflate: { serverNoContextTakeover: false } } }]) {
    const app = Fastify({ logger: false })
    await app.register(websocketRooms, options)
    await app.ready()
    await app.close()
  }
})

test('negotiation: every offer is answered with server_no_context_takeover; a client\'s window sizes and the user\'s own options are kept', async (t) => {
  const app = await build(t, { compression: 'shared', websocketOptions: { perMessageDeflate: { clientNoContextTakeover: true, threshold: 10 } } })
  app.registerWebsocket('/ws', { onConnected () {} })
  const base = await listen(app)
  const offers: Array<[WebSocket.ClientOptions['perMessageDeflate'], string | undefined]> = [
    [true, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
    [{ serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=10; server_no_context_takeover; client_no_context_takeover'],
    [{ clientMaxWindowBits: 9 }, 'permessage-deflate; client_max_window_bits=9; server_no_context_takeover; client_no_context_takeover'],
    [{ serverNoContextTakeover: true, serverMaxWindowBits: 8 }, 'permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_no_context_takeover'],
    [false, undefined]
  ]
  for (const [offer, answer] of offers) {
    const client = await deflateClient(base, '/ws', offer)
    t.equal(client.extensions, answer, `offer ${JSON.stringify(offer)}`)
    client.ws.terminate()
  }
})

test('a mixed room: compressed and plain members, window sizes asked or not, get every broadcast, direct send and ping, whole and in order', async (t) => {
  const app = await build(t, { compression: 'shared', heartbeatInterval: 0 })
  const expected = burstRoute(app)
  const base = await listen(app)
  const clients = [
    await deflateClient(base, '/ws', true), // ws's offer: client_max_window_bits
    await deflateClient(base, '/ws', { serverMaxWindowBits: 10 }),
    await deflateClient(base, '/ws', { serverMaxWindowBits: 9, clientMaxWindowBits: 12 }),
    await deflateClient(base, '/ws', { serverNoContextTakeover: true }),
    await deflateClient(base, '/ws', false)
  ]
  const raw = await RawClient.connect(base, '/ws', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })
  t.teardown(() => raw.destroy())
  await Promise.all(clients.map((client) => client.texts(1)))
  await raw.text('ready')

  // Which sessions ws compresses for itself: the sender, whose direct sends ws deflates, and
  // whose broadcasts wait behind them in ws's queue; no other member.
  const sessions = [...app.websocketSessions.values()]
  const Deflate = perMessageDeflateOf(sessions[0]!.socket)
  const compressing = new Set<unknown>()
  const compress = Deflate.prototype.compress
  Deflate.prototype.compress = function (this: { _isServer: boolean }, ...args: unknown[]) {
    if (this._isServer) compressing.add(this)
    return compress.apply(this, args)
  }
  t.teardown(() => { Deflate.prototype.compress = compress })

  clients[0]!.send('go')
  for (const [i, client] of clients.entries()) {
    const list = i === 0 ? expected.sender : expected.other
    const got = (await client.messages(1 + list.length)).slice(1)
    sameMessages(t, got, list, `client ${i} (${client.extensions ?? 'no compression'})`)
    await until(() => client.pings === expected.pings, `client ${i}'s pings`)
  }

  // The raw client: compressed frames carry RSV1 and inflate with one context for the whole
  // connection; messages under the threshold (1024 bytes) are plain; pings arrive among them.
  await raw.frame((() => { let n = 0; return (f: ServerFrame) => f.opcode === opcodes.ping && ++n === expected.pings })())
  const dataFrames = raw.frames.filter((frame) => frame.opcode === opcodes.text || frame.opcode === opcodes.binary).slice(1)
  const inflate = contextInflater()
  const inflated = await Promise.all(dataFrames.map(inflate))
  sameMessages(t, dataFrames.map((frame, i) => ({ binary: frame.opcode === opcodes.binary, data: frame.opcode === opcodes.binary ? inflated[i]! : inflated[i]!.toString() })), expected.other, 'raw client')
  t.same(dataFrames.map((frame) => frame.rsv), expected.other.map((message) => Buffer.byteLength(message.data) >= 1024 ? 0b100 : 0), 'RSV1 on exactly the messages of 1024 bytes or more')
  t.same([...compressing], [(sessions[0]!.socket as any)._extensions['permessage-deflate']], 'ws compressed for the sender\'s session only')
})

test('a burst of broadcasts is deflated once: no per-member deflate, and the same compressed bytes for every member with the same window', async (t) => {
  const app = await build(t, { compression: 'shared', heartbeatInterval: 0 })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('r').join()
      session.send('ready')
    },
    handleText (session, text) {
      if (text !== 'go') return
      for (let i = 0; i < 5; i++) session.room('r').broadcast(jsonOf(2048, i))
    }
  })
  const base = await listen(app)
  const raws = await Promise.all([1, 2, 3].map(() => RawClient.connect(base, '/ws', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })))
  const narrow = await RawClient.connect(base, '/ws', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_max_window_bits=9' } })
  const all = [...raws, narrow]
  t.teardown(() => { for (const raw of all) raw.destroy() })
  await Promise.all(all.map((raw) => raw.text('ready')))
  const Deflate = perMessageDeflateOf([...app.websocketSessions.values()][0]!.socket)
  let perMember = 0
  const compress = Deflate.prototype.compress
  Deflate.prototype.compress = function (this: { _isServer: boolean }, ...args: unknown[]) {
    if (this._isServer) perMember++
    return compress.apply(this, args)
  }
  t.teardown(() => { Deflate.prototype.compress = compress })

  const sender = await connect(base, '/ws')
  await sender.texts(1)
  sender.send('go')
  const framesOf = async (raw: RawClient): Promise<ServerFrame[]> => {
    await raw.frame((() => { let n = 0; return (f: ServerFrame) => f.opcode === opcodes.text && f.rsv === 0b100 && ++n === 5 })())
    return raw.frames.filter((frame) => frame.rsv === 0b100)
  }
  const frames = await Promise.all(all.map(framesOf))
  t.equal(perMember, 0, 'ws deflated nothing')
  for (const list of frames.slice(1, 3)) t.same(list.map((f) => f.payload), frames[0]!.map((f) => f.payload), 'the same bytes')
  for (const [i, list] of frames.entries()) {
    const inflated = await Promise.all(list.map(contextInflater()))
    t.same(inflated.map(String), [0, 1, 2, 3, 4].map((seed) => jsonOf(2048, seed)), `member ${i} inflates every message`)
  }
  t.ok(frames[0]![0]!.payload.length < 1024, `compressed (${frames[0]![0]!.payload.length} bytes of 2048)`)
})

test('the user\'s threshold applies: smaller messages go plain, as ws sends them; threshold 0 compresses even an empty one', async (t) => {
  for (const threshold of [100, 0]) {
    const app = await build(t, { compression: 'shared', heartbeatInterval: 0, websocketOptions: { perMessageDeflate: { threshold } } })
    app.registerWebsocket('/ws', {
      onConnected (session) {
        session.room('r').join()
        session.send('ready')
      },
      handleText (session, text) {
        if (text !== 'go') return
        for (const size of [0, 1, 99, 100, 101]) session.room('r').broadcast('x'.repeat(size))
        session.room('r').broadcast(Buffer.alloc(100, 1))
      }
    })
    const base = await listen(app)
    const raw = await RawClient.connect(base, '/ws', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })
    t.teardown(() => raw.destroy())
    await raw.frame(() => true) // "ready", compressed by ws when the threshold is 0
    raw.send(opcodes.text, 'go')
    await raw.frame((f) => f.opcode === opcodes.binary)
    t.equal(raw.frames[0]!.rsv, threshold === 0 ? 0b100 : 0, 'a direct send follows the same threshold')
    const frames = raw.frames.slice(1)
    t.same(frames.map((f) => f.rsv), [0, 1, 99, 100, 101, 100].map((size) => size >= threshold ? 0b100 : 0), `threshold ${threshold}`)
    const inflated = await Promise.all(frames.map(contextInflater()))
    t.same(inflated.map((data) => data.length), [0, 1, 99, 100, 101, 100])
  }
})

test('a client that keeps its inflater\'s context gets direct sends (deflated by ws) and broadcasts (deflated once) as one consistent stream', async (t) => {
  const app = await build(t, { compression: 'shared', heartbeatInterval: 0 })
  app.registerWebsocket('/ws', {
    onConnected (session) { session.send('ready') },
    handleText (session, text) {
      if (text !== 'go') return
      session.room('solo').join()
      for (let i = 0; i < 20; i++) {
        if (i % 3 === 0) session.send(jsonOf(3000, i))
        else session.room('solo').broadcast(jsonOf(3000, i))
        if (i % 4 === 0) session.socket.ping()
      }
      setImmediate(() => {
        for (let i = 20; i < 30; i++) session.room('solo').broadcast(jsonOf(3000, i))
        session.send('end')
      })
    }
  })
  const base = await listen(app)
  const raw = await RawClient.connect(base, '/ws', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' } })
  t.teardown(() => raw.destroy())
  await raw.text('ready')
  raw.send(opcodes.text, 'go')
  await raw.text('end')
  const frames = raw.frames.filter((f) => f.opcode === opcodes.text).slice(1, -1)
  const inflated = await Promise.all(frames.map(contextInflater()))
  t.same(inflated.map(String), Array.from({ length: 30 }, (_, i) => jsonOf(3000, i)), 'all 30 in order')
  t.equal(raw.frames.filter((f) => f.opcode === opcodes.ping).length, 5, 'and the pings')
})

test('off (the default), broadcasts to members that negotiated permessage-deflate go through ws, compressed per member as before', async (t) => {
  const app = await build(t, { heartbeatInterval: 0, websocketOptions: { perMessageDeflate: true } })
  const expected = burstRoute(app)
  const base = await listen(app)
  const clients = [await deflateClient(base, '/ws', true), await deflateClient(base, '/ws', false)]
  await Promise.all(clients.map((client) => client.texts(1)))
  t.equal(clients[0]!.extensions, 'permessage-deflate', 'no server_no_context_takeover')
  clients[0]!.send('go')
  sameMessages(t, (await clients[0]!.messages(1 + expected.sender.length)).slice(1), expected.sender, 'sender')
  sameMessages(t, (await clients[1]!.messages(1 + expected.other.length)).slice(1), expected.other, 'plain member')
})

test('probeDeflate knows ws\'s PerMessageDeflate, and refuses one that keeps its fields elsewhere', async (t) => {
  const app = await build(t, { compression: 'shared' })
  app.registerWebsocket('/ws', { onConnected () {} })
  const base = await listen(app)
  const client = await deflateClient(base, '/ws', true)
  t.teardown(() => client.ws.terminate())
  await until(() => app.websocketSessions.size === 1)
  const Deflate = perMessageDeflateOf([...app.websocketSessions.values()][0]!.socket)
  t.equal(probeDeflate(Deflate), true, 'ws\'s own')
  class Renamed extends Deflate {
    constructor (...args: any[]) {
      super(...args)
      this._limit = this._threshold
      delete this._threshold
    }
  }
  t.equal(probeDeflate(Renamed), false, 'a threshold kept elsewhere')
  class OtherSignature { constructor () { throw new Error('another signature') } }
  t.equal(probeDeflate(OtherSignature), false, 'a constructor that throws')
  class NoParams extends Deflate {
    accept (offers: unknown): unknown {
      const accepted = super.accept(offers)
      this._params = this.params
      this.params = null
      return accepted
    }
  }
  t.equal(probeDeflate(NoParams), false, 'negotiated parameters kept elsewhere')
})

/** A ws server's WebSocket whose PerMessageDeflate is not as the plugin expects: what another ws might have. */
class OtherDeflateWebSocket extends WebSocket {
  setSocket (...args: unknown[]): void {
    (WebSocket.prototype as any).setSocket.apply(this, args)
    const deflate = (this as any)._extensions['permessage-deflate']
    if (deflate === undefined) return
    const Deflate = deflate.constructor
    class Other extends Deflate {
      constructor (...args: any[]) {
        super(...args)
        throw new Error('not what the probe expects')
      }
    }
    Object.setPrototypeOf(deflate, Other.prototype)
  }
}

test('where ws\'s PerMessageDeflate is not as expected, broadcasts go through ws.send(), compressed per member, whole and in order; said once at debug', async (t) => {
  const lines: any[] = []
  const app = await build(t, { compression: 'shared', heartbeatInterval: 0, websocketOptions: { WebSocket: OtherDeflateWebSocket } }, {
    logger: { level: 'debug', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } }
  })
  const expected = burstRoute(app)
  const base = await listen(app)
  const clients = [await deflateClient(base, '/ws', true), await deflateClient(base, '/ws', { serverMaxWindowBits: 10 }), await deflateClient(base, '/ws', false)]
  await Promise.all(clients.map((client) => client.texts(1)))
  clients[0]!.send('go')
  for (const [i, client] of clients.entries()) {
    sameMessages(t, (await client.messages(1 + (i === 0 ? expected.sender : expected.other).length)).slice(1), i === 0 ? expected.sender : expected.other, `client ${i}`)
  }
  const fallbacks = lines.filter((line) => /permessage-deflate internals are not as expected/.test(line.msg))
  t.equal(fallbacks.length, 1, 'said once, for two sessions')
  t.equal(fallbacks[0].level, 20, 'at debug level')
})

test('with the app\'s own @fastify/websocket: a warning when its perMessageDeflate keeps a context, none when it does not; messages arrive either way', async (t) => {
  for (const perMessageDeflate of [true, { serverNoContextTakeover: true }]) {
    const warnings: string[] = []
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line).msg) } } } })
    t.teardown(() => app.close())
    await app.register(fastifyWebsocket, { options: { perMessageDeflate } })
    await app.register(websocketRooms, { compression: 'shared', heartbeatInterval: 0 })
    const expected = burstRoute(app)
    const base = await listen(app)
    const clients = [await deflateClient(base, '/ws', true), await deflateClient(base, '/ws', false)]
    await Promise.all(clients.map((client) => client.texts(1)))
    clients[0]!.send('go')
    sameMessages(t, (await clients[1]!.messages(1 + expected.other.length)).slice(1), expected.other, 'plain member')
    sameMessages(t, (await clients[0]!.messages(1 + expected.sender.length)).slice(1), expected.sender, 'compressed member')
    t.equal(warnings.filter((line) => /compression: 'shared' needs perMessageDeflate/.test(line)).length, perMessageDeflate === true ? 1 : 0, JSON.stringify(perMessageDeflate))
  }
})

// The backpressure bound with compression. ws deflates a session's own messages on zlib's
// thread pool (all of them with its per-member perMessageDeflate; with compression: 'shared',
// a direct send, and the broadcasts that wait behind it in ws): until it is done they wait in
// ws, counted in bufferedAmount, but they have not reached the client. The bound is about what
// the client leaves unread at its socket; what waits for ws's deflate has its own, larger bound.

const CHUNK = 64 * 1024
/** 24 messages of 64 KiB: 1.5 MiB in one turn, past the default maxBackpressure (1 MiB). */
const BURST = 24
const READERS = 3
/** Most messages a flood sends: far more than loopback buffers hold for a peer that does not read. */
const CAP = 1024
const SETUPS = [
  { name: 'ws deflating per member (perMessageDeflate)', options: { websocketOptions: { perMessageDeflate: true } }, directFirst: false },
  { name: 'compression: \'shared\' after a direct send', options: { compression: 'shared' }, directFirst: true }
] as const

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)
/** The next turn of the event loop: the bound applies to what is left from earlier turns. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
/** A text message that starts with its number, then JSON that deflates as JSON does. */
const numberedJson = (i: number): string => `${i} ${jsonOf(CHUNK, i)}`
/** A binary message that starts with its number, then random bytes, which deflate to as many. */
function numberedRandom (i: number, size = CHUNK): Buffer {
  const data = randomBytes(size)
  data.writeUInt32BE(i)
  return data
}
/** The TCP socket below a session's ws socket: what the client has left unread is there. */
const tcpOf = (session: { socket: WebSocket }): Socket => (session.socket as any)._socket

interface ReaderReport { reader: number, closed: number | null, messages: string[] }

/**
 * Starts READERS clients that do nothing but read (test/fixtures/readers.ts), in a child
 * process of their own, and resolves once they are open. `reports` resolves once each has
 * `expected` messages or is closed.
 */
async function startReaders (t: Test, url: string, expected: number): Promise<{ reports: () => Promise<ReaderReport[]> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', require.resolve('./fixtures/readers.ts')], {
    env: { ...process.env, READERS_URL: url, READERS_COUNT: String(READERS), READERS_EXPECTED: String(expected) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const lines = new Events<any>()
  createInterface({ input: child.stdout }).on('line', (line) => { lines.push(JSON.parse(line)) })
  await lines.until(1)
  return { reports: async () => (await lines.until(1 + READERS)).slice(1) }
}

for (const setup of SETUPS) {
  test(`${setup.name}: a 1.5 MiB burst in one turn and a message in the next reach readers that read everything; none is cut`, async (t) => {
    const app = await build(t, { ...setup.options, heartbeatInterval: 0 }) // the default bound, 1 MiB
    app.registerWebsocket('/ws', { onConnected (session) { session.room('feed').join() } })
    const numbers = range((setup.directFirst ? 1 : 0) + BURST + 1)
    const readers = await startReaders(t, `${await listen(app)}/ws`, numbers.length)
    const feed = app.websocketRooms.room('feed')
    await until(() => feed.members() === READERS)

    let next = 0
    if (setup.directFirst) {
      for (const session of app.websocketSessions.values()) session.send(numberedJson(next))
      next++
    }
    for (let i = 0; i < BURST; i++) feed.broadcast(numberedJson(next++))
    await nextTurn()
    feed.broadcast(numberedJson(next++))

    const reports = await readers.reports()
    t.same(reports.map((report) => report.closed), reports.map(() => null), 'no reader closed')
    const expected = numbers.map((i) => `${i}:${Buffer.byteLength(numberedJson(i))}`)
    for (const report of reports) t.same(report.messages, expected, `reader ${report.reader}: every message, whole, in order`)
    const stats = app.websocketRooms.stats()
    t.same([stats.closed.backpressure, stats.dropped.backpressure], [0, 0])
  })

  test(`${setup.name}: a client that does not read is closed with 1013 at the first turn that begins with its unread bytes past the bound`, async (t) => {
    const SIZE = 4 * CHUNK // large messages, so that few fill the kernel's buffers: each is a round trip to zlib's thread pool
    const BOUND = 4 * SIZE
    // Deflated at level 0 (stored): what reaches the socket is as big as what was sent, and ws's deflate, still asynchronous, is quick.
    const perMessageDeflate = { zlibDeflateOptions: { level: 0 } }
    const app = await build(t, { ...setup.options, heartbeatInterval: 0, maxBackpressure: BOUND, websocketOptions: { perMessageDeflate } })
    const leftovers: number[] = []
    let attempted = 0
    app.registerWebsocket('/ws', {
      onConnected (session) { session.room('feed').join() },
      async handleText (session) {
        const tcp = tcpOf(session)
        while (session.isOpen() && attempted < CAP) {
          leftovers.push(tcp.writableLength)
          if (setup.directFirst) session.send(numberedRandom(attempted++, SIZE))
          session.room('feed').broadcast(numberedRandom(attempted++, SIZE))
          // The next turn's sends wait until ws has deflated this turn's: what counts is what reached the socket.
          await until(() => !session.isOpen() || session.bufferedAmount === tcp.writableLength)
        }
      }
    })
    const client = await RawClient.connect(await listen(app), '/ws', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })
    t.teardown(() => client.destroy())
    client.socket.pause() // reads nothing: the kernel's buffers fill, then the server's
    client.send(opcodes.text, 'flood')
    await until(() => app.websocketRooms.stats().closed.backpressure === 1)

    const last = leftovers.at(-1)!
    t.ok(attempted < CAP, `the bound was reached after ${attempted} messages`)
    t.ok(last + SIZE > BOUND, `closed in the turn that began with ${last} bytes unread at the socket`)
    t.ok(leftovers.slice(0, -1).every((left) => left === 0 || left + SIZE <= BOUND), 'not before: every earlier turn began under the bound')
    client.socket.resume()
    t.same(await client.closeFrame(), { code: 1013, reason: 'send buffer full' })
    const frames = client.frames.filter((frame) => frame.opcode === opcodes.binary)
    t.ok(frames.every((frame) => frame.rsv === 0b100), 'compressed')
    const inflated = await Promise.all(frames.map(contextInflater()))
    t.same(inflated.map((data) => data.readUInt32BE(0)), range(app.websocketRooms.stats().messagesOut), 'what was sent arrives, in order')
  })
}

test(`past ${DEFLATE_BACKLOG} × maxBackpressure waiting for ws's deflate from earlier turns, a session counts as full however fast its client reads`, async (t) => {
  const BOUND = 4 * CHUNK
  const app = await build(t, { heartbeatInterval: 0, maxBackpressure: BOUND, backpressurePolicy: 'drop', websocketOptions: { perMessageDeflate: true } })
  const overflows: number[] = []
  app.registerWebsocket('/ws', {
    onConnected (session) { session.room('feed').join() },
    onBackpressure (session, bufferedAmount) { overflows.push(bufferedAmount) }
  })
  const client = await connect(await listen(app), '/ws', { perMessageDeflate: true })
  const feed = app.websocketRooms.room('feed')
  await until(() => feed.members() === 1)
  // More than the backlog's bound in one turn: ws deflates one message of a session at a time,
  // each finishing in a later turn, so most of them still wait in the next turn.
  const burst = Math.ceil(DEFLATE_BACKLOG * BOUND / CHUNK) + 4
  for (let i = 0; i < burst; i++) feed.broadcast(numberedRandom(i))
  await nextTurn()
  feed.broadcast(numberedRandom(burst)) // dropped
  t.equal(overflows.length, 1, 'onBackpressure ran')
  t.ok(overflows[0]! > DEFLATE_BACKLOG * BOUND, `with ${overflows[0]} bytes buffered`)
  await client.messages(burst)
  feed.broadcast(numberedRandom(burst + 1)) // ws has caught up: sent
  const numbers = (await client.messages(burst + 1)).map((message) => (message.data as Buffer).readUInt32BE(0))
  t.same(numbers, [...range(burst), burst + 1], 'the burst, then the message after it: only the one past the bound was dropped')
  const stats = app.websocketRooms.stats()
  t.same([stats.dropped.backpressure, stats.closed.backpressure, stats.sessions], [1, 0, 1])
})

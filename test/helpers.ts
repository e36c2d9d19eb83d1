// Test helpers: an app with the plugin that closes itself after the test, and clients that
// record everything the server sends from the first byte on (a listener added after the
// connection opens would miss messages sent in onConnected).
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import WebSocket from 'ws'
import websocketRooms from 'fastify-websocket-rooms'
import type { WebsocketRoomsOptions } from 'fastify-websocket-rooms'
import { until, within } from './signals'

export { until }

/**
 * How long ws waits for the answer to a close frame before it cuts the connection by itself
 * (its own constant): a bound on how long the plugin's closeTimeout may take to cut a client
 * that never answers, however busy the machine, which tells the plugin's cut-off from ws's.
 */
export const WS_CLOSE_TIMEOUT = 30_000

interface Teardown { teardown (fn: () => unknown): void }

export async function build (t: Teardown, options: WebsocketRoomsOptions = {}, fastifyOptions: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, ...fastifyOptions })
  await app.register(websocketRooms, options)
  t.teardown(() => app.close())
  return app
}

/** Starts the app on a loopback port and returns the ws:// base URL. */
export async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

export interface Received { data: string | Buffer, binary: boolean }

/** A ws client that keeps every message and lets a test await the next ones. */
export class Client {
  readonly ws: WebSocket
  readonly received: Received[] = []
  readonly opened: Promise<void>
  readonly closed: Promise<{ code: number, reason: string }>
  #waiters: Array<{ count: number, resolve: () => void }> = []

  constructor (url: string, options?: WebSocket.ClientOptions) {
    this.ws = new WebSocket(url, options)
    this.ws.on('message', (data: Buffer, binary: boolean) => {
      this.received.push({ data: binary ? data : data.toString(), binary })
      this.#waiters = this.#waiters.filter((waiter) => {
        if (this.received.length < waiter.count) return true
        waiter.resolve()
        return false
      })
    })
    this.opened = once(this.ws, 'open').then(() => undefined)
    // 'close' follows a refused handshake too, so `closed` always settles and never rejects.
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: String(reason) }))
    })
    this.ws.on('error', () => {}) // a refused handshake rejects `opened`; nothing else to do
  }

  /** Resolves with the text messages once `count` messages in all have arrived. */
  async texts (count: number): Promise<string[]> {
    await this.messages(count)
    return this.received.slice(0, count).map((message) => String(message.data))
  }

  /** Resolves once `count` messages in all have arrived. */
  messages (count: number): Promise<Received[]> {
    if (this.received.length >= count) return Promise.resolve(this.received.slice(0, count))
    const arrived = new Promise<Received[]>((resolve) => {
      this.#waiters.push({ count, resolve: () => resolve(this.received.slice(0, count)) })
    })
    return within(arrived, () => `message ${count} from ${this.ws.url} (${this.received.length} so far, readyState ${this.ws.readyState})`)
  }

  /** Resolves with the text messages parsed as JSON once `count` have arrived. */
  async json (count: number): Promise<any[]> {
    return (await this.texts(count)).map((text) => JSON.parse(text))
  }

  send (data: string | Buffer): void {
    this.ws.send(data)
  }

  async close (): Promise<{ code: number, reason: string }> {
    this.ws.close()
    return this.closed
  }
}

/** Opens a client and waits for the handshake. */
export async function connect (base: string, path: string, options?: WebSocket.ClientOptions): Promise<Client> {
  const client = new Client(base + path, options)
  await within(client.opened, `${base + path} to open`)
  return client
}

/**
 * Registers /ws, where a session's "go" sends, for each size, a text broadcast, a direct send
 * and a binary broadcast, all in one turn; checks that the sender and another member get
 * them whole and in order.
 */
export async function checkInterleavedBurst (t: Test, app: FastifyInstance, sizes: number[]): Promise<void> {
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('burst').join()
      session.send('ready')
    },
    handleText (session, text) {
      if (text !== 'go') return
      const room = session.room('burst')
      for (const size of sizes) {
        room.broadcast('t'.repeat(size))
        session.send(`direct ${size}`)
        room.broadcast(Buffer.alloc(size, 7))
      }
    }
  })
  const base = await listen(app)
  const [sender, other] = await Promise.all([connect(base, '/ws'), connect(base, '/ws')])
  await Promise.all([sender!.texts(1), other!.texts(1)])
  sender!.send('go')
  const expected = sizes.flatMap((size) => [{ binary: false, length: size }, { binary: false, text: `direct ${size}` }, { binary: true, length: size }])
  const got = (await sender!.messages(1 + expected.length)).slice(1)
  t.same(got.map((m, i) => expected[i]!.text === undefined ? { binary: m.binary, length: m.data.length } : { binary: m.binary, text: m.data }), expected)
  t.ok(got.every((m) => m.binary ? (m.data as Buffer).every((byte) => byte === 7) : typeof m.data === 'string'), 'payloads intact')
  const others = (await other!.messages(1 + 2 * sizes.length)).slice(1)
  t.same(others.map((m) => [m.binary, m.data.length]), sizes.flatMap((size) => [[false, size], [true, size]]))
}

/** Resolves once the registry has no session left. */
export function untilNoSessions (app: FastifyInstance): Promise<void> {
  return until(() => app.websocketSessions.size === 0)
}

interface Asserts {
  fail (message: string): void
  type (value: unknown, type: Function): void
  match (value: unknown, pattern: unknown): void
}

/** Asserts that fn throws an instance of Type (e.g. TypeError) whose properties match. */
export function throwsLike (t: Asserts, fn: () => unknown, Type: Function, pattern: Record<string, unknown>): void {
  try {
    fn()
  } catch (error) {
    t.type(error, Type)
    t.match(error, pattern)
    return
  }
  t.fail(`expected a ${Type.name} matching ${JSON.stringify(pattern)}`)
}

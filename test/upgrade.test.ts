// What the upgrade leaves behind (lib/transport/upgrade.ts) is released only where it is what
// the plugin expects. Each test here makes one leftover look otherwise, and shows that the
// plugin then leaves it in place, says so once at debug level for several sessions, and that
// sessions work as usual: messages both ways, broadcasts, a client's close, a protocol error
// (logged once), shutdown, and nothing left in the registry or in ws's `clients`.
//
// What is reported, and where @fastify/websocket keeps its head buffer, is learned once per
// process, and this file is one process: the expected path is checked first, before any case
// is forced, and each case is forced by one test only.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import WebSocket from 'ws'
import type { WebsocketRoomsOptions, WebSocketSession } from 'fastify-websocket-rooms'
import { build, connect, listen, untilNoSessions } from './helpers'
import { Events } from './signals'

interface LogLine { level: number, msg: string }

/** An app whose log lines, debug level up, are kept, with /ws: an echo whose sessions join one room. */
async function server (t: Test, options: WebsocketRoomsOptions = {}) {
  const lines: LogLine[] = []
  const app = await build(t, options, {
    logger: { level: 'debug', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } }
  })
  const disconnects = new Events<number>()
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('all').join()
      session.send('ready')
    },
    handleText (session, text) {
      if (text === 'to all') session.room('all').broadcast(`from ${session.id}`)
      else session.send(`echo ${text}`)
    },
    onDisconnected (_session, code) { disconnects.push(code) }
  })
  return { app, lines, disconnects }
}

/** The plugin's own debug lines (the fallbacks it reports). */
function reported (lines: LogLine[]): LogLine[] {
  return lines.filter((line) => line.msg.startsWith('fastify-websocket-rooms: '))
}

/**
 * Runs three sessions through /ws: messages both ways, a broadcast, a client's close (4000), a
 * protocol error (1007, logged once at debug), and app.close() for the last one (1001). Checks
 * that no session and no tracked client is left, and that nothing was logged above debug.
 * `inspect` sees each session once all three have started.
 */
async function checkSessions (t: Test, app: FastifyInstance, lines: LogLine[], disconnects: Events<number>, inspect?: (session: WebSocketSession) => void): Promise<void> {
  const base = await listen(app)
  const clients = await Promise.all([connect(base, '/ws'), connect(base, '/ws'), connect(base, '/ws')])
  const [leaving, erring, staying] = clients as [typeof clients[0], typeof clients[0], typeof clients[0]]
  for (const client of clients) t.same(await client.texts(1), ['ready'])
  t.equal(app.websocketSessions.size, 3)
  if (inspect !== undefined) for (const session of app.websocketSessions.values()) inspect(session)
  t.equal(app.websocketServer.clients.size, 0, 'ws\'s clients holds no session')

  leaving.send('hi')
  t.same(await leaving.texts(2), ['ready', 'echo hi'], 'a message and its answer')
  leaving.send('to all')
  for (const client of clients) t.match((await client.texts(client === leaving ? 3 : 2)).at(-1), /^from /, 'a broadcast reaches every member')

  leaving.ws.close(4000, 'bye')
  t.same(await leaving.closed, { code: 4000, reason: 'bye' }, 'a client\'s close')
  erring.ws.send(Buffer.from([0x68, 0xff]), { binary: false })
  t.same(await erring.closed, { code: 1007, reason: '' }, 'a protocol error')
  t.same(await disconnects.until(2), [4000, 1007], 'each session ended with its code')
  t.equal(lines.filter((line) => line.msg === 'websocket client error').length, 1, 'the socket\'s error is logged once')

  await app.close()
  t.same(await staying.closed, { code: 1001, reason: 'server shutting down' }, 'shutdown closes the last session')
  t.same(await disconnects.until(3), [4000, 1007, 1001])
  await untilNoSessions(app)
  t.same(app.websocketRooms.roomNames(), [], 'no room is left')
  t.equal(app.websocketServer.clients.size, 0, 'no client is left in ws\'s clients')
  t.same(lines.filter((line) => line.level > 30), [], 'nothing was logged as a warning or an error')
}

/** Checks that the plugin reported `message`, once, at debug level, and nothing else. */
function checkReportedOnce (t: Test, lines: LogLine[], message: RegExp): void {
  const said = reported(lines)
  t.equal(said.length, 1, 'said once, for three sessions, and no other fallback')
  t.match(said[0], { level: 20, msg: message })
}

type RawRequest = IncomingMessage & Record<symbol, unknown>

test('where the upgrade leaves what the plugin expects, each session releases it, and nothing is reported', async (t) => {
  const { app, lines, disconnects } = await server(t)
  await checkSessions(t, app, lines, disconnects, (session) => {
    const raw = session.request.raw as RawRequest
    const heads = Object.getOwnPropertySymbols(raw).filter((symbol) => symbol.description === 'ws-head')
    t.same(heads.map((symbol) => (raw[symbol] as Buffer).length), [0], 'the head buffer is emptied')
    t.equal((raw.socket as Socket & { _httpMessage: unknown })._httpMessage, null, 'the ServerResponse is detached')
    t.equal(session.socket.listenerCount('error'), 1, 'the session\'s \'error\' listener only')
    t.equal(session.socket.listenerCount('close'), 1, 'the session\'s \'close\' listener only')
  })
  t.same(reported(lines), [])
})

test('where @fastify/websocket keeps the head buffer under another symbol, it stays; said once', async (t) => {
  const { app, lines, disconnects } = await server(t)
  const renamed = Symbol('ws-upgrade-head')
  app.websocketServer.on('connection', (_socket: WebSocket, request: RawRequest) => {
    const head = Object.getOwnPropertySymbols(request).find((symbol) => symbol.description === 'ws-head')!
    request[renamed] = request[head]
    delete request[head]
  })
  await checkSessions(t, app, lines, disconnects, (session) => {
    t.ok(Buffer.isBuffer((session.request.raw as RawRequest)[renamed]), 'the head buffer stays')
  })
  checkReportedOnce(t, lines, /ws-head buffer not found; each session keeps its handshake's bytes$/)
})

test('where the TCP socket\'s _httpMessage is absent or not a ServerResponse, it stays; said once', async (t) => {
  const { app, lines, disconnects } = await server(t)
  let connections = 0
  app.websocketServer.on('connection', (_socket: WebSocket, request: RawRequest) => {
    const tcp = request.socket as Socket & { _httpMessage: ServerResponse | null }
    if (connections++ % 2 === 0) {
      // Another class, which Node's own code still uses as the response.
      tcp._httpMessage = new Proxy(tcp._httpMessage!, { getPrototypeOf: () => Object.prototype })
    } else {
      // Kept somewhere else.
      tcp._httpMessage = null
    }
  })
  let kept = 0
  await checkSessions(t, app, lines, disconnects, (session) => {
    if ((session.request.raw.socket as Socket & { _httpMessage: unknown })._httpMessage !== null) kept++
  })
  t.equal(connections, 3)
  t.equal(kept, 2, 'the responses of another class stay')
  checkReportedOnce(t, lines, /_httpMessage is not @fastify\/websocket's ServerResponse; each session keeps that response/)
})

/** A WebSocket whose 'error' listeners are bound functions, whose source says nothing of what they do. */
class BoundErrorListenersWebSocket extends WebSocket {
  override on (event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this {
    return super.on(event, event === 'error' ? listener.bind(this) : listener)
  }
}

test('where @fastify/websocket\'s \'error\' listener is not recognised, it stays, and a socket\'s error is still logged once; said once', async (t) => {
  const { app, lines, disconnects } = await server(t, { websocketOptions: { WebSocket: BoundErrorListenersWebSocket } })
  await checkSessions(t, app, lines, disconnects, (session) => {
    t.equal(session.socket.listenerCount('error'), 2, '@fastify/websocket\'s listener stays, beside the session\'s')
  })
  checkReportedOnce(t, lines, /'error' listener not found; each session keeps it/)
})

/** A WebSocket that listens to its own 'close' from the start, before its server does. */
class SelfWatchingWebSocket extends WebSocket {
  closed = false
  constructor (...args: any[]) {
    super(...(args as ConstructorParameters<typeof WebSocket>))
    this.on('close', () => { this.closed = true })
  }
}

test('where ws\'s \'close\' listener for its clients is not the first, it stays, and sessions still leave ws\'s clients at once; said once', async (t) => {
  const { app, lines, disconnects } = await server(t, { websocketOptions: { WebSocket: SelfWatchingWebSocket } })
  const sockets: SelfWatchingWebSocket[] = []
  await checkSessions(t, app, lines, disconnects, (session) => {
    t.equal(session.socket.listenerCount('close'), 3, 'ws\'s listener stays, between the app\'s and the session\'s')
    sockets.push(session.socket as SelfWatchingWebSocket)
  })
  t.same(sockets.map((socket) => socket.closed), [true, true, true], 'the app\'s own listener ran')
  checkReportedOnce(t, lines, /'close' listener for its server's clients not found; each session keeps it/)
})

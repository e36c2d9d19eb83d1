// Guards and bounds: allowedOrigins and maxSessions refuse an upgrade before any socket is
// opened, @fastify/rate-limit works on the handshake as on any route, a session's rooms and
// room names are bounded, app.close() holds at scale, and bad values fail registration.
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import rateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance } from 'fastify'
import { test } from 'tap'
import websocketRooms from 'fastify-websocket-rooms'
import type { WebsocketHandlers } from 'fastify-websocket-rooms'
import { Client, WS_CLOSE_TIMEOUT, build, connect, listen, throwsLike, untilNoSessions } from './helpers'
import { RawClient } from './raw-client'
import { Events, gate, until } from './signals'

interface Answer { status: number, body: any }

/** Sends a WebSocket upgrade request over plain HTTP and reads the answer (101, or a refusal with its JSON body). */
function upgradeRequest (base: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(new URL(path, base.replace('ws:', 'http:')), {
      agent: false,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), ...headers }
    })
    request.on('response', (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode!, body: JSON.parse(body) }))
    })
    request.on('upgrade', (response, socket) => {
      socket.destroy()
      resolve({ status: response.statusCode!, body: null })
    })
    request.on('error', reject)
    request.end()
  })
}

/** A ws client whose handshake must fail: resolves with ws's error message. */
async function refused (url: string, origin?: string): Promise<string> {
  const client = new Client(url, origin === undefined ? {} : { origin })
  const error = await client.opened.then(() => 'opened', (err: Error) => err.message)
  await client.closed
  return error
}

/** The built-in class of an error (the plugin's errors are all constructed as FastifyError). */
const kind = (error: unknown): string => error instanceof RangeError ? 'RangeError' : error instanceof TypeError ? 'TypeError' : 'other'

/** An endpoint that counts its sessions and greets each one. */
function counted (app: FastifyInstance, path: string, extra: Partial<WebsocketHandlers> = {}): { connected: number } {
  const count = { connected: 0 }
  app.registerWebsocket(path, {
    ...extra,
    onConnected (session) { count.connected++; session.send('ready') },
    handleText (session, text) { session.send(`echo ${text}`) }
  })
  return count
}

const originRefusal = (origin: string): unknown => ({
  statusCode: 403, code: 'FST_WS_ROOMS_ORIGIN_NOT_ALLOWED', error: 'Forbidden', message: `WebSocket upgrade refused: origin "${origin}" is not allowed`
})

test('allowedOrigins: another origin gets 403 before the upgrade; a listed origin in any case, or no Origin, connects', async (t) => {
  const app = await build(t, { allowedOrigins: ['https://app.example.com', 'https://Admin.Example.com'] })
  let hooked = 0
  const count = counted(app, '/ws', { async preValidation () { hooked++ } })
  const base = await listen(app)
  const hostile = ['https://evil.example.com', 'http://app.example.com', 'https://app.example.com:8443', 'https://app.example.com.evil.test', 'null']
  for (const origin of hostile) {
    const answer = await upgradeRequest(base, '/ws', { origin })
    t.equal(answer.status, 403, origin)
    t.same(answer.body, originRefusal(origin), origin)
  }
  t.equal(await refused(base + '/ws', 'https://evil.example.com'), 'Unexpected server response: 403')
  t.equal(app.websocketRooms.stats().refused.origin, hostile.length + 1)
  t.equal(app.websocketSessions.size, 0, 'no session was created')
  t.equal(count.connected + hooked, 0, 'neither the later hooks nor the handler ran')

  for (const origin of ['https://app.example.com', 'HTTPS://APP.EXAMPLE.COM', 'https://admin.example.com']) {
    const client = await connect(base, '/ws', { origin })
    t.same(await client.texts(1), ['ready'], origin)
  }
  const cli = await connect(base, '/ws') // ws sends no Origin unless asked: a non-browser client
  t.same(await cli.texts(1), ['ready'], 'a client without Origin connects')
  t.equal(count.connected, 4)
  t.equal(app.websocketRooms.stats().refused.origin, hostile.length + 1)
})

test('allowedOrigins as a function, sync or async, decides from (origin, request); a route\'s own allowedOrigins overrides the plugin\'s', async (t) => {
  const seen: Array<[string, string, boolean]> = []
  const app = await build(t, {
    allowedOrigins (origin, request) {
      seen.push([origin, request.url, request.headers.origin === origin])
      return origin.endsWith('.trusted.test')
    }
  })
  const plugin = counted(app, '/plugin')
  const asyncCheck = counted(app, '/async', {
    async allowedOrigins (origin, request) {
      await new Promise(setImmediate)
      return origin === 'https://partner.test' && (request.query as { key?: string }).key === 'k'
    }
  })
  const listed = counted(app, '/listed', { allowedOrigins: ['https://other.test'] })
  const open = counted(app, '/open', { allowedOrigins: null })
  const base = await listen(app)

  t.equal((await upgradeRequest(base, '/plugin?x=1', { origin: 'https://evil.test' })).status, 403)
  await connect(base, '/plugin', { origin: 'https://a.trusted.test' })
  await connect(base, '/plugin')
  t.same(seen, [['https://evil.test', '/plugin?x=1', true], ['https://a.trusted.test', '/plugin', true]], 'not called without an Origin')

  t.same(await upgradeRequest(base, '/async?key=k', { origin: 'https://a.trusted.test' }), { status: 403, body: originRefusal('https://a.trusted.test') })
  t.equal((await upgradeRequest(base, '/async?key=no', { origin: 'https://partner.test' })).status, 403)
  await connect(base, '/async?key=k', { origin: 'https://partner.test' })
  t.equal((await upgradeRequest(base, '/listed', { origin: 'https://a.trusted.test' })).status, 403)
  await connect(base, '/listed', { origin: 'https://OTHER.test' })
  await connect(base, '/open', { origin: 'https://anything.test' })
  t.equal(seen.length, 2, 'the plugin\'s check does not run on routes with their own')
  t.same([plugin.connected, asyncCheck.connected, listed.connected, open.connected], [2, 1, 1, 1])
  t.equal(app.websocketRooms.stats().refused.origin, 4)
})

test('an allowedOrigins check that never settles does not hold app.close(): the upgrade gets 503 when it starts', async (t) => {
  const app = Fastify()
  const checks = new Events<string>()
  await app.register(websocketRooms, { allowedOrigins: (origin) => { checks.push(origin); return new Promise<boolean>(() => {}) } })
  const counter = counted(app, '/ws')
  const base = await listen(app)
  const asked = upgradeRequest(base, '/ws', { origin: 'https://app.example.com' })
  await checks.until(1) // the check has started, and never answers
  const closed = app.close()
  t.same(await asked, {
    status: 503,
    body: { statusCode: 503, code: 'FST_WS_ROOMS_SHUTTING_DOWN', error: 'Service Unavailable', message: 'WebSocket upgrade refused: the server is shutting down' }
  })
  await closed
  t.equal(counter.connected, 0, 'no session was started')
})

test('many origin checks waiting at once are no listener leak: no MaxListenersExceededWarning', async (t) => {
  const app = Fastify()
  const checks = new Events<string>()
  await app.register(websocketRooms, { allowedOrigins: (origin) => { checks.push(origin); return new Promise<boolean>(() => {}) } })
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  counted(app, '/ws')
  const base = await listen(app)
  const asked = Array.from({ length: 20 }, () => upgradeRequest(base, '/ws', { origin: 'https://app.example.com' }))
  await checks.until(20)
  const closed = app.close()
  t.same((await Promise.all(asked)).map((answer) => answer.status), Array(20).fill(503))
  await closed
  // A warning is emitted on the next tick after the listener that crossed the limit.
  await new Promise((resolve) => setImmediate(resolve))
  t.same(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning').map(String), [])
})

const tooMany = { statusCode: 503, code: 'FST_WS_ROOMS_TOO_MANY_SESSIONS', error: 'Service Unavailable', message: 'WebSocket upgrade refused: the server has reached its maximum number of sessions' }

test('maxSessions: past the cap an upgrade gets 503 and no session; a closed session frees its place', async (t) => {
  const app = await build(t, { maxSessions: 2 })
  const count = counted(app, '/ws')
  counted(app, '/other') // the cap is the app's, over every route
  const base = await listen(app)
  const first = await connect(base, '/ws')
  await connect(base, '/other')
  t.same(await upgradeRequest(base, '/ws'), { status: 503, body: tooMany })
  t.equal(await refused(base + '/other'), 'Unexpected server response: 503')
  t.equal(app.websocketSessions.size, 2)
  t.equal(count.connected, 1)
  t.equal(app.websocketRooms.stats().refused.maxSessions, 2)

  await first.close()
  await until(() => app.websocketSessions.size === 1)
  const again = await connect(base, '/ws')
  t.same(await again.texts(1), ['ready'], 'a new session is accepted once one closed')
  t.equal((await upgradeRequest(base, '/ws')).status, 503)
  t.equal(app.websocketRooms.stats().refused.maxSessions, 3)
  t.equal(count.connected, 2)
})

test('maxSessions holds when upgrades pass the guard together and wait in a slow hook', async (t) => {
  const app = await build(t, { maxSessions: 2 })
  const waiting = new Events<void>()
  const release = gate()
  const count = counted(app, '/ws', { async preHandler () { waiting.push(); await release.opened } })
  const base = await listen(app)
  const answers = Array.from({ length: 5 }, () => upgradeRequest(base, '/ws'))
  await waiting.until(5) // all five passed the onRequest guard while no session was open
  release.open()
  const statuses = (await Promise.all(answers)).map((answer) => answer.status).sort()
  t.same(statuses, [101, 101, 503, 503, 503])
  t.equal(count.connected, 2)
  t.equal(app.websocketRooms.stats().refused.maxSessions, 3)
})

test('@fastify/rate-limit answers 429 before the upgrade, on one route or on all', async (t) => {
  const perRoute = await build(t)
  await perRoute.register(rateLimit, { global: false })
  const limited = counted(perRoute, '/ws', { config: { rateLimit: { max: 2, timeWindow: 60_000 } } })
  const free = counted(perRoute, '/free')
  const base = await listen(perRoute)
  const clients = [await connect(base, '/ws'), await connect(base, '/ws')]
  const answer = await upgradeRequest(base, '/ws')
  t.equal(answer.status, 429)
  t.match(answer.body, { statusCode: 429, error: 'Too Many Requests', message: /Rate limit exceeded/ })
  t.equal(await refused(base + '/ws'), 'Unexpected server response: 429')
  for (let i = 0; i < 3; i++) await connect(base, '/free')
  t.same([limited.connected, free.connected], [2, 3], 'no session past the limit; other routes are not limited')
  for (const client of clients) {
    client.send('still here')
    t.same(await client.texts(2), ['ready', 'echo still here'], 'sessions under the limit work')
  }

  const global = await build(t)
  await global.register(rateLimit, { max: 1, timeWindow: 60_000 })
  const all = counted(global, '/ws')
  const globalBase = await listen(global)
  t.same(await (await connect(globalBase, '/ws')).texts(1), ['ready'])
  t.equal((await upgradeRequest(globalBase, '/ws')).status, 429)
  t.equal(all.connected, 1)
  t.equal(global.websocketSessions.size, 1)
})

test('maxRoomsPerSession: one more join throws FST_WS_ROOMS_TOO_MANY_ROOMS; a rejoin does not count; uncaught, the session closes with 1011', async (t) => {
  const app = await build(t, { maxRoomsPerSession: 3 })
  const disconnected = new Events<number>()
  app.registerWebsocket('/ws', {
    onConnected (session) {
      for (const name of ['a', 'b', 'c', 'b', 'a']) session.room(name).join()
      if (session.getParameter('catch') === null) session.room('d').join()
      try {
        session.room('d').join()
      } catch (error: any) {
        session.send(JSON.stringify({ type: kind(error), code: error.code, message: error.message, rooms: session.roomNames() }))
        session.room('a').leave()
        session.room('d').join()
        session.send(JSON.stringify(session.roomNames()))
      }
    },
    handleText (session, text) { session.send(`echo ${text}`) },
    onDisconnected (_session, code) { disconnected.push(code) }
  })
  const base = await listen(app)
  const caught = await connect(base, '/ws?catch=1')
  t.same(await caught.json(2), [{
    type: 'RangeError',
    code: 'FST_WS_ROOMS_TOO_MANY_ROOMS',
    message: 'fastify-websocket-rooms: a session may be in at most 3 rooms (option maxRoomsPerSession)',
    rooms: ['a', 'b', 'c']
  }, ['b', 'c', 'd']])
  caught.send('hi')
  t.same((await caught.texts(3))[2], 'echo hi', 'a caught error keeps the session open')

  const uncaught = new Client(base + '/ws')
  t.same(await uncaught.closed, { code: 1011, reason: 'internal error' })
  t.same(await disconnected.until(1), [1011])
  await until(() => app.websocketSessions.size === 1)
  t.equal(app.websocketRooms.stats().closed.handlerError, 1)
  t.same(app.websocketRooms.roomNames().sort(), ['b', 'c', 'd'], 'the closed session left its rooms')
})

test('defaults: 100 rooms per session and room names of 256 characters; maxRoomNameLength bounds names everywhere', async (t) => {
  const attempt = (fn: () => unknown): unknown => { try { fn(); return 'ok' } catch (error: any) { return [kind(error), error.code, error.message] } }
  for (const [options, limit] of [[{}, 256], [{ maxRoomNameLength: 8 }, 8]] as const) {
    const app = await build(t, options)
    app.registerWebsocket('/ws', {
      onConnected (session) {
        for (let i = 0; i < 100; i++) session.room(`room-${i}`).join()
        session.send(JSON.stringify([
          session.roomNames().length,
          attempt(() => session.room('one-more').join()),
          attempt(() => session.room('x'.repeat(limit))),
          attempt(() => session.room('x'.repeat(limit + 1)))
        ]))
      }
    })
    const client = await connect(await listen(app), '/ws')
    const message = `fastify-websocket-rooms: room name must be a non-empty, well-formed string (no lone surrogate) of length at most ${limit} (option maxRoomNameLength, in UTF-16 code units), got ` +
      (limit > 40 ? `a string of length ${limit + 1}` : `"${'x'.repeat(limit + 1)}"`)
    const tooLong = ['TypeError', 'FST_WS_ROOMS_INVALID_ARGUMENT', message]
    t.match((await client.json(1))[0], [100, ['RangeError', 'FST_WS_ROOMS_TOO_MANY_ROOMS', /at most 100 rooms \(option maxRoomsPerSession\)/], 'ok', tooLong])
    t.same(attempt(() => app.websocketRooms.room('x'.repeat(limit + 1))), tooLong, 'app.websocketRooms.room() checks names too')
    t.equal(app.websocketRooms.room('x'.repeat(limit)).members(), 0)
  }
})

test('onDisconnected that throws or rejects, with many rooms per session, still leaves nothing behind', async (t) => {
  const failures: string[] = []
  const app = await build(t, {}, { logger: { level: 'error', stream: { write (line: string) { failures.push(JSON.parse(line).msg) } } } })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      const n = Number(session.getParameter('n'))
      for (let i = 0; i < 50; i++) session.room(`shared-${i}`).join()
      for (let i = 0; i < 50; i++) session.room(`own-${n}-${i}`).join()
      session.send('ready')
    },
    onDisconnected (session) {
      if (Number(session.getParameter('n')) % 2 === 0) throw new Error('sync failure')
      return Promise.reject(new Error('async failure'))
    }
  })
  const base = await listen(app)
  const clients = await Promise.all(Array.from({ length: 20 }, (_, n) => connect(base, `/ws?n=${n}`)))
  await Promise.all(clients.map((client) => client.texts(1)))
  t.equal(app.websocketRooms.roomNames().length, 50 + 20 * 50)
  t.equal(app.websocketRooms.room('shared-7').members(), 20)
  clients.forEach((client, i) => { if (i % 4 < 2) client.ws.close(); else client.ws.terminate() })
  await untilNoSessions(app)
  t.same(app.websocketRooms.roomNames(), [], 'no room is left')
  t.equal(app.websocketRooms.stats().rooms, 0)
  t.equal(failures.filter((msg) => msg === 'onDisconnected failed').length, 20)
})

test('app.close() with 2000 sessions, 200 of which never answer the close frame: all closed with 1001, in bounded time', async (t) => {
  // The plugin's default. The 1800 clients that answer do so at once, but their answers are read
  // by this same process, after it has sent 2000 close frames: on a busy machine that takes far
  // more than a few hundred ms, and a client whose answer was not read by closeTimeout is cut
  // off like a silent one. With the default, only whether a client answers decides.
  const closeTimeout = 5000
  const app = await build(t, { closeTimeout })
  const codes: number[] = []
  let n = 0
  app.registerWebsocket('/ws', {
    onConnected (session) { session.room(`room-${n++ % 20}`).join(); session.room('all').join() },
    onDisconnected (_session, code) { codes.push(code) }
  })
  const base = await listen(app)
  const kinds = Array.from({ length: 2000 }, (_, i) => i < 200 ? 'silent' : i < 300 ? 'ws' : 'raw')
  const raw: RawClient[] = []
  const ws: Client[] = []
  for (let i = 0; i < kinds.length; i += 250) { // in batches, under the listen backlog
    await Promise.all(kinds.slice(i, i + 250).map(async (kind) => {
      if (kind === 'ws') ws.push(await connect(base, '/ws', { perMessageDeflate: false }))
      else raw.push(await RawClient.connect(base, '/ws', { echoClose: kind === 'raw' }))
    }))
  }
  await until(() => app.websocketRooms.room('all').members() === 2000)
  t.equal(app.websocketSessions.size, 2000)

  const startedAt = performance.now()
  await app.close()
  const took = performance.now() - startedAt
  // The silent ones hold close() for closeTimeout, and no longer: ws alone would wait 30 s for them.
  t.ok(took >= closeTimeout - 5 && took < WS_CLOSE_TIMEOUT, `close() took ${Math.round(took)} ms`)
  t.equal(codes.length, 2000, 'every onDisconnected ran')
  t.equal(codes.filter((code) => code === 1001).length, 1800, 'the answering clients finished the close handshake')
  t.equal(codes.filter((code) => code === 1006).length, 200, 'the silent ones were cut off')
  t.equal(app.websocketSessions.size, 0)
  t.same(app.websocketRooms.roomNames(), [])
  const closeFrames = await Promise.all(raw.map((client) => client.closeFrame()))
  t.ok(closeFrames.every((frame) => frame.code === 1001 && frame.reason === 'server shutting down'), 'every raw client was sent 1001')
  const closed = await Promise.all(ws.map((client) => client.closed))
  t.ok(closed.every((close) => close.code === 1001 && close.reason === 'server shutting down'), 'every ws client saw 1001')
  await Promise.all(raw.map((client) => client.closed))
})

test('bad maxSessions, maxRoomsPerSession, maxRoomNameLength and allowedOrigins fail with FST_WS_ROOMS_INVALID_OPTION naming the option', async (t) => {
  const integer = (name: string, min: number, value: unknown, got: string): [Record<string, unknown>, string] =>
    [{ [name]: value }, `fastify-websocket-rooms: option "${name}" must be an integer >= ${min}, got ${got}`]
  const origins = (value: unknown, got: string): [Record<string, unknown>, string] =>
    [{ allowedOrigins: value }, `fastify-websocket-rooms: option "allowedOrigins" must be an array of origins such as "https://example.com", or a function (origin, request) => boolean, got ${got}`]
  const cases = [
    ...['maxSessions', 'maxRoomsPerSession', 'maxRoomNameLength'].flatMap((name) => [
      integer(name, 1, 0, 'number 0'), integer(name, 1, -1, 'number -1'), integer(name, 1, 2.5, 'number 2.5'),
      integer(name, 1, '10', '"10"'), integer(name, 1, null, 'null'), integer(name, 1, NaN, 'number NaN')
    ]),
    integer('maxRoomsPerSession', 1, Infinity, 'number Infinity'),
    integer('maxRoomNameLength', 1, Infinity, 'number Infinity'),
    origins('https://example.com', '"https://example.com"'), origins([''], 'an array'), origins(['https://a.test', 1], 'an array'),
    origins({}, 'an object'), origins(true, 'boolean true')
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    const error = await app.register(websocketRooms, options).then(() => null, (err: unknown) => err)
    t.type(error, TypeError, message)
    t.match(error, { code: 'FST_WS_ROOMS_INVALID_OPTION', message }, message)
  }
  const app = await build(t, { maxSessions: Infinity, maxRoomsPerSession: 1, maxRoomNameLength: 1, allowedOrigins: [] })
  throwsLike(t, () => app.registerWebsocket('/ws', { allowedOrigins: 'https://a.test' as any, onConnected () {} }), TypeError, {
    code: 'FST_WS_ROOMS_INVALID_OPTION',
    message: /option "registerWebsocket\("\/ws"\) allowedOrigins" must be an array of origins/
  })
  t.ok(app.registerWebsocket('/ok', { allowedOrigins: async () => true, onConnected () {} }), 'good values register')
})

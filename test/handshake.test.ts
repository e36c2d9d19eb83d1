// The handshake: schemas and route hooks run on the HTTP request before the upgrade, and the
// session reads what the handshake carried (query, headers, params, path, address, request).
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import http, { type IncomingHttpHeaders } from 'node:http'
import { Type } from '@sinclair/typebox'
import fastifyWebsocket from '@fastify/websocket'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { test } from 'tap'
import type WebSocket from 'ws'
import websocketRooms, { type WebSocketSession } from 'fastify-websocket-rooms'
import { Client, build, connect, listen } from './helpers'

interface Answer { status: number, headers: IncomingHttpHeaders, body: string }

/** Sends a WebSocket upgrade request over plain HTTP and reads the answer (101, or a refusal). */
function upgradeRequest (base: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // A fresh connection each time: @fastify/websocket destroys the socket of a refused upgrade.
    const request = http.request(new URL(path, base.replace('ws:', 'http:')), {
      agent: false,
      method,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        ...headers
      }
    })
    request.on('response', (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }))
    })
    request.on('upgrade', (response, socket) => {
      socket.destroy()
      resolve({ status: response.statusCode!, headers: response.headers, body: '' })
    })
    request.on('error', reject)
    request.end()
  })
}

/** A ws client's handshake that is expected to fail: rejects with ws's error. */
async function refusal (url: string, options?: WebSocket.ClientOptions): Promise<void> {
  const client = new Client(url, options)
  // Both promises reject on a refused handshake; awaiting both leaves none unhandled.
  await Promise.all([client.opened, client.closed])
}

const querystring = Type.Object({ n: Type.Integer(), flag: Type.Optional(Type.Boolean()) })
const headers = Type.Object({ 'x-token': Type.String({ minLength: 3 }) })
const params = Type.Object({ room: Type.String({ pattern: '^[a-z]+$' }) })

/** Compiles only when A and B are the same type (any is neither a string nor a number). */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
function sameType<A, B> (proof: Same<A, B>): Same<A, B> { return proof }

/** An endpoint with all three schemas that reports what its session saw. */
function registerValidated (app: FastifyInstance, calls: string[]): void {
  app.registerWebsocket('/rooms/:room', {
    schema: { querystring, headers, params },
    onConnected (session) {
      // Typed by the schemas: no casts.
      const n: number = session.query.n
      const flag: boolean | undefined = session.query.flag
      const token: string = session.headers['x-token']
      const room: string = session.params.room
      sameType<typeof session.query, { n: number, flag?: boolean }>(true)
      sameType<typeof session.headers, { 'x-token': string }>(true)
      sameType<typeof session.params, { room: string }>(true)
      calls.push('connected')
      session.send(JSON.stringify({ n, nType: typeof n, flag, token, room }))
    }
  })
}

test('a query string that fails schema.querystring gets Fastify\'s 400 and no session', async (t) => {
  const app = await build(t)
  const calls: string[] = []
  registerValidated(app, calls)
  const base = await listen(app)
  const answer = await upgradeRequest(base, '/rooms/lobby?n=many', { 'x-token': 'abc' })
  t.equal(answer.status, 400)
  t.match(answer.headers['content-type'], /^application\/json/)
  t.same(JSON.parse(answer.body), { statusCode: 400, code: 'FST_ERR_VALIDATION', error: 'Bad Request', message: 'querystring/n must be integer' })
  await t.rejects(refusal(base + '/rooms/lobby', { headers: { 'x-token': 'abc' } }), /Unexpected server response: 400/)
  t.equal(app.websocketSessions.size, 0)
  t.same(calls, [])
  const client = await connect(base, '/rooms/lobby?n=1', { headers: { 'x-token': 'abc' } })
  await client.texts(1)
  t.same(calls, ['connected'], 'a valid handshake does reach the handler')
})

test('headers and params that fail their schemas get a 400 and no session', async (t) => {
  const app = await build(t)
  const calls: string[] = []
  registerValidated(app, calls)
  const base = await listen(app)
  const cases: Array<[string, Record<string, string>, string]> = [
    ['/rooms/lobby?n=1', {}, 'headers must have required property \'x-token\''],
    ['/rooms/lobby?n=1', { 'x-token': 'ab' }, 'headers/x-token must NOT have fewer than 3 characters'],
    ['/rooms/Lobby1?n=1', { 'x-token': 'abc' }, 'params/room must match pattern "^[a-z]+$"']
  ]
  for (const [path, sent, message] of cases) {
    const answer = await upgradeRequest(base, path, sent)
    t.equal(answer.status, 400, message)
    t.same(JSON.parse(answer.body), { statusCode: 400, code: 'FST_ERR_VALIDATION', error: 'Bad Request', message })
  }
  t.equal(app.websocketSessions.size, 0)
  t.same(calls, [])
})

test('query, headers and params arrive validated and coerced', async (t) => {
  const app = await build(t)
  registerValidated(app, [])
  const base = await listen(app)
  const client = await connect(base, '/rooms/lobby?n=042&flag=true', { headers: { 'X-Token': 'secret' } })
  t.same(await client.json(1), [{ n: 42, nType: 'number', flag: true, token: 'secret', room: 'lobby' }])
})

test('without schemas, params are the route\'s path parameters as strings', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws/:room/:user', {
    onConnected (session) { session.send(JSON.stringify(session.params)) }
  })
  const client = await connect(await listen(app), '/ws/chess/ada%20l?x=1')
  t.same(await client.json(1), [{ room: 'chess', user: 'ada l' }])
})

type Hook = 'onRequest' | 'preValidation' | 'preHandler'

/** An endpoint whose three route hooks log their order and refuse when ?refuse=<hook>. */
function registerHooked (app: FastifyInstance, calls: string[]): void {
  const hook = (name: Hook) => async (request: FastifyRequest, reply: FastifyReply) => {
    calls.push(name)
    const { refuse } = request.query as { refuse?: string }
    if (refuse === name) return reply.code(401).send({ error: `refused by ${name}` })
  }
  app.registerWebsocket('/ws', {
    schema: { querystring: Type.Object({ refuse: Type.Optional(Type.String()) }) },
    onRequest: hook('onRequest'),
    preValidation: hook('preValidation'),
    preHandler: hook('preHandler'),
    onConnected (session) {
      calls.push('connected')
      session.send('in')
    }
  })
}

test('route hooks run in order before the upgrade', async (t) => {
  const app = await build(t)
  const calls: string[] = []
  registerHooked(app, calls)
  const client = await connect(await listen(app), '/ws')
  await client.texts(1)
  t.same(calls, ['onRequest', 'preValidation', 'preHandler', 'connected'])
})

test('a hook that replies 401 refuses the upgrade with that status and no session', async (t) => {
  const app = await build(t)
  const calls: string[] = []
  registerHooked(app, calls)
  const base = await listen(app)
  const order: Hook[] = ['onRequest', 'preValidation', 'preHandler']
  for (const [i, hook] of order.entries()) {
    calls.length = 0
    const answer = await upgradeRequest(base, `/ws?refuse=${hook}`)
    t.equal(answer.status, 401, hook)
    t.same(JSON.parse(answer.body), { error: `refused by ${hook}` })
    t.same(calls, order.slice(0, i + 1), `${hook} stops the hooks after it and the handler`)
    await t.rejects(refusal(`${base}/ws?refuse=${hook}`), /Unexpected server response: 401/)
  }
  t.equal(app.websocketSessions.size, 0)
})

test('getParameter returns the raw first value, or null', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    schema: { querystring: Type.Object({ n: Type.Integer() }) },
    onConnected (session) {
      session.send(JSON.stringify({
        n: session.getParameter('n'),
        coerced: session.query.n,
        tag: session.getParameter('tag'),
        empty: session.getParameter('empty'),
        spaced: session.getParameter('q'),
        missing: session.getParameter('missing'),
        caseSensitive: session.getParameter('N')
      }))
    }
  })
  const client = await connect(await listen(app), '/ws?n=007&tag=a&tag=b&empty=&q=a%20b+c')
  t.same(await client.json(1), [{ n: '007', coerced: 7, tag: 'a', empty: '', spaced: 'a b c', missing: null, caseSensitive: null }])
})

test('getHeader is case-insensitive and null when missing; getRequestPath has no query', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/api/ws', {
    onConnected (session) {
      session.send(JSON.stringify({
        lower: session.getHeader('x-custom'),
        mixed: session.getHeader('X-Custom'),
        upper: session.getHeader('X-CUSTOM'),
        host: session.getHeader('Host'),
        missing: session.getHeader('x-missing'),
        path: session.getRequestPath()
      }))
    }
  })
  const base = await listen(app)
  const client = await connect(base, '/api/ws?x=1&y=2', { headers: { 'X-Custom': 'value' } })
  const [seen] = await client.json(1)
  t.same(seen, { lower: 'value', mixed: 'value', upper: 'value', host: base.slice('ws://'.length), missing: null, path: '/api/ws' })
})

test('getRemoteAddr is the loopback address, or with trustProxy the forwarded one', async (t) => {
  const endpoint = (app: FastifyInstance) => app.registerWebsocket('/ws', {
    onConnected (session) { session.send(session.getRemoteAddr()) }
  })
  const direct = await build(t)
  endpoint(direct)
  const forwarded = { headers: { 'X-Forwarded-For': '203.0.113.7' } }
  const plain = await connect(await listen(direct), '/ws', forwarded)
  t.same(await plain.texts(1), ['127.0.0.1'], 'X-Forwarded-For is ignored without trustProxy')
  const proxied = await build(t, {}, { trustProxy: true })
  endpoint(proxied)
  const behindProxy = await connect(await listen(proxied), '/ws', forwarded)
  t.same(await behindProxy.texts(1), ['203.0.113.7'])
})

test('session.request is the Fastify request of the handshake', async (t) => {
  const app = await build(t)
  let hookRequest: FastifyRequest | undefined
  let seen!: (session: WebSocketSession) => void
  const connected = new Promise<WebSocketSession>((resolve) => { seen = resolve })
  app.registerWebsocket('/ws', {
    async preValidation (request) {
      hookRequest = request
      ;(request as FastifyRequest & { user?: string }).user = request.headers['x-user'] as string
    },
    onConnected (session) {
      seen(session)
      session.send(String((session.request as FastifyRequest & { user?: string }).user))
    }
  })
  const client = await connect(await listen(app), '/ws', { headers: { 'x-user': 'alice' } })
  t.same(await client.texts(1), ['alice'])
  const session = await connected
  t.equal(session.request, hookRequest)
  t.equal(session.request.ws, true)
  t.equal(session.request.url, '/ws')
})

// As the README's injectWS recipe says: app.ready() first, listeners in onInit, and every
// client terminated before app.close() (which would otherwise wait closeTimeout for them).
test('app.injectWS drives the same endpoint, schemas and hooks included', async (t) => {
  const app = await build(t)
  const calls: string[] = []
  registerValidated(app, calls)
  app.registerWebsocket('/address', {
    onConnected (session) { session.send(JSON.stringify({ addr: session.getRemoteAddr(), path: session.getRequestPath(), n: session.getParameter('n') })) }
  })
  const hooked: string[] = []
  registerHooked(app, hooked)
  await app.ready()

  const clients: WebSocket[] = []
  const firstMessage = async (path: string, upgradeContext = {}): Promise<[WebSocket, unknown]> => {
    let got!: (data: unknown) => void
    const message = new Promise((resolve) => { got = resolve })
    const ws = await app.injectWS(path, upgradeContext, { onInit (ws) { ws.on('message', (data) => got(JSON.parse(String(data)))) } })
    clients.push(ws)
    return [ws, await message]
  }

  const [, validated] = await firstMessage('/rooms/lobby?n=3', { headers: { 'x-token': 'tok' } })
  t.same(validated, { n: 3, nType: 'number', token: 'tok', room: 'lobby' })
  const [, address] = await firstMessage('/address?n=09')
  t.same(address, { addr: '', path: '/address', n: '09' }, 'there is no socket to take an address from')
  t.equal(app.websocketSessions.size, 2)

  await t.rejects(app.injectWS('/rooms/lobby?n=x', { headers: { 'x-token': 'tok' } }), /Unexpected server response: 400/)
  await t.rejects(app.injectWS('/ws?refuse=preHandler'), /Unexpected server response: 401/)
  t.same(hooked, ['onRequest', 'preValidation', 'preHandler'])
  t.same(calls, ['connected'])
  t.equal(app.websocketSessions.size, 2)

  for (const ws of clients) ws.terminate()
  const closing = performance.now()
  await app.close()
  t.equal(app.websocketSessions.size, 0)
  t.ok(performance.now() - closing < 5000, 'app.close() did not wait closeTimeout (5 s) for the terminated clients')
})

interface LogLine { level: number, msg: string, reason?: string }

/** An app whose log lines, debug level up, are kept. */
async function logging (t: Parameters<typeof build>[0]) {
  const lines: LogLine[] = []
  const app = await build(t, {}, { logger: { level: 'debug', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  /** The reasons of the refused handshakes logged so far, with their level. */
  const refused = () => lines.filter((line) => line.msg.startsWith('fastify-websocket-rooms: WebSocket handshake refused: '))
    .map(({ level, msg, reason }) => ({ level, msg, reason }))
  return { app, refused }
}

const refusedLine = (reason: string) => ({ level: 20, msg: `fastify-websocket-rooms: WebSocket handshake refused: ${reason}`, reason })

// injectWS's request carries Sec-WebSocket-Version as the number 13, which ws 8.23.1 and
// later refuse (they compare it with '13'): the plugin makes it the string a socket gives.
test('app.injectWS reaches plain { websocket: true } routes registered after the plugin', async (t) => {
  const app = await build(t)
  app.get('/plain', { websocket: true }, (socket) => { socket.on('message', (data) => socket.send(`plain ${String(data)}`)) })
  await app.register(async (child) => {
    child.get('/scoped', { websocket: true }, (socket) => { socket.on('message', (data) => socket.send(`scoped ${String(data)}`)) })
  })
  await app.ready()
  for (const path of ['/plain', '/scoped']) {
    const ws = await app.injectWS(path)
    const reply = once(ws, 'message')
    ws.send('hi')
    t.equal(String((await reply)[0]), `${path.slice(1)} hi`)
    ws.terminate()
  }
})

test('an upgrade that ws would refuse gets a 400 that says why, logged at debug level', async (t) => {
  const { app, refused } = await logging(t)
  const calls: string[] = []
  app.registerWebsocket('/ws', {
    onRequest: async () => { calls.push('onRequest') },
    onConnected () { calls.push('connected') }
  })
  const base = await listen(app)
  const cases: Array<[Record<string, string>, string]> = [
    [{ 'sec-websocket-version': '12' }, 'Missing or invalid Sec-WebSocket-Version header'],
    [{ 'sec-websocket-key': 'not a key' }, 'Missing or invalid Sec-WebSocket-Key header'],
    [{ upgrade: 'h2c' }, 'Invalid Upgrade header']
  ]
  for (const [sent, reason] of cases) {
    const answer = await upgradeRequest(base, '/ws', sent)
    t.equal(answer.status, 400, reason)
    t.same(JSON.parse(answer.body), { statusCode: 400, code: 'FST_WS_ROOMS_INVALID_HANDSHAKE', error: 'Bad Request', message: `WebSocket upgrade refused: ${reason}` })
    t.equal(answer.headers['sec-websocket-version'], reason.includes('Version') ? '13, 8' : undefined, 'the versions ws speaks, as ws says them')
    t.same(refused().at(-1), refusedLine(reason), 'the log says why')
  }
  t.equal(refused().length, cases.length)
  t.same(calls, [], 'before the route\'s own hooks')
  t.equal(app.websocketSessions.size, 0)
})

test('what ws refuses itself is logged at debug level and answered as ws does, under injectWS and on plain routes too', async (t) => {
  const { app, refused } = await logging(t)
  app.registerWebsocket('/ws', { onConnected (session) { session.send('in') } })
  app.get('/plain', { websocket: true }, (socket) => { socket.send('plain') })
  app.post('/form', async () => 'posted')
  const base = await listen(app)

  const protocol = 'Invalid Sec-WebSocket-Protocol header'
  const answer = await upgradeRequest(base, '/ws', { 'sec-websocket-protocol': 'a b' })
  t.same({ status: answer.status, body: answer.body, type: answer.headers['content-type'] }, { status: 400, body: protocol, type: 'text/html' })
  t.same(refused(), [refusedLine(protocol)])

  const version = 'Missing or invalid Sec-WebSocket-Version header'
  const plain = await upgradeRequest(base, '/plain', { 'sec-websocket-version': '12' })
  t.same({ status: plain.status, body: plain.body, versions: plain.headers['sec-websocket-version'] }, { status: 400, body: version, versions: '13, 8' })
  t.same(refused(), [refusedLine(protocol), refusedLine(version)], 'a plain route\'s refusal, said by ws')

  await t.rejects(app.injectWS('/ws', { headers: { 'sec-websocket-protocol': 'a b' } }), /Unexpected server response: 400/)
  t.same(refused(), [refusedLine(protocol), refusedLine(version), refusedLine(protocol)], 'under injectWS')

  // @fastify/websocket hands ws an upgrade to any route; ws refuses a method other than GET.
  const posted = await upgradeRequest(base, '/form', {}, 'POST')
  t.same({ status: posted.status, body: posted.body }, { status: 405, body: 'Invalid HTTP method' })
  t.same(refused().at(-1), refusedLine('Invalid HTTP method'))
  t.equal(app.websocketSessions.size, 0)
  const client = await connect(base, '/ws')
  t.same(await client.texts(1), ['in'], 'a good handshake still passes')
})

test('with the plugin registered in two scopes on the app\'s @fastify/websocket, what ws refuses is answered once', async (t) => {
  const lines: LogLine[] = []
  const app = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  t.teardown(() => app.close())
  await app.register(fastifyWebsocket)
  for (const prefix of ['/a', '/b']) {
    await app.register(async (scope) => {
      await scope.register(websocketRooms)
      scope.registerWebsocket('/ws', { onConnected (session) { session.send(prefix) } })
    }, { prefix })
  }
  const base = await listen(app)
  // Each listener taking the other for the app's, nobody would answer: tap's timeout would end it.
  const answer = await upgradeRequest(base, '/a/ws', { 'sec-websocket-protocol': 'a b' })
  t.same({ status: answer.status, body: answer.body }, { status: 400, body: 'Invalid Sec-WebSocket-Protocol header' })
  t.equal(lines.filter((line) => line.msg.startsWith('fastify-websocket-rooms: WebSocket handshake refused: ')).length, 1, 'logged once')
  const client = await connect(base, '/b/ws')
  t.same(await client.texts(1), ['/b'])
})

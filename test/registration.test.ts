// Registering the plugin and its endpoints: option checks, handler checks, module namespaces,
// an app that brought its own @fastify/websocket, separate apps, encapsulation and prefixes,
// and the read-only app.websocketSessions.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { resolve } from 'node:path'
import { inspect } from 'node:util'
import { Type } from '@sinclair/typebox'
import fastifyWebsocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { test } from 'tap'
import websocketRooms from 'fastify-websocket-rooms'
import type { WebSocketSession } from 'fastify-websocket-rooms'
import { Client, build, connect, listen, throwsLike } from './helpers'

/** A Fastify app without the plugin, closed after the test. */
function bare (t: { teardown (fn: () => unknown): void }, options = {}): FastifyInstance {
  const app = Fastify({ logger: false, ...options })
  t.teardown(() => app.close())
  return app
}

test('bad plugin options fail app.register() with FST_WS_ROOMS_INVALID_OPTION naming the option', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ maxPayload: 0 }, /option "maxPayload" must be an integer >= 1, got number 0/],
    [{ maxPayload: -1 }, /option "maxPayload" must be an integer >= 1, got number -1/],
    [{ maxPayload: 1.5 }, /option "maxPayload" must be an integer >= 1, got number 1.5/],
    [{ maxPayload: '1024' }, /option "maxPayload" must be an integer >= 1, got "1024"/],
    [{ maxPayload: Infinity }, /option "maxPayload" must be an integer >= 1, got number Infinity/],
    [{ maxPayload: null }, /option "maxPayload" must be an integer >= 1, got null/],
    [{ closeTimeout: -1 }, /option "closeTimeout" must be an integer >= 0, got number -1/],
    [{ closeTimeout: NaN }, /option "closeTimeout" must be an integer >= 0, got number NaN/],
    [{ closeTimeout: '5s' }, /option "closeTimeout" must be an integer >= 0, got "5s"/],
    [{ websocketOptions: 'deflate' }, /option "websocketOptions" must be an object of ws server options, got "deflate"/],
    [{ websocketOptions: [] }, /option "websocketOptions" must be an object of ws server options, got an array/],
    [{ websocketOptions: 5 }, /option "websocketOptions" must be an object of ws server options, got number 5/],
    [{ websocketOptions: null }, /option "websocketOptions" must be an object of ws server options, got null/]
  ]
  for (const [options, message] of cases) {
    const error = await bare(t).register(websocketRooms, options as any).then(() => null, (err: unknown) => err)
    t.type(error, TypeError, inspect(options))
    t.match(error, { code: 'FST_WS_ROOMS_INVALID_OPTION', message }, inspect(options))
  }
})

test('an unknown plugin option is refused with the closest option\'s name', async (t) => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ maxPayloadd: 10 }, 'option "maxPayloadd" must be one of the plugin\'s options (did you mean "maxPayload"?), got an unknown option'],
    [{ heartbeat: 1000 }, 'option "heartbeat" must be one of the plugin\'s options, got an unknown option'],
    [{ closetimeout: 10 }, 'option "closetimeout" must be one of the plugin\'s options (did you mean "closeTimeout"?), got an unknown option'],
    [{ histroy: true }, 'option "histroy" must be one of the plugin\'s options (did you mean "history"?), got an unknown option']
  ]
  for (const [options, message] of cases) {
    const error = await bare(t).register(websocketRooms, options as any).then(() => null, (err: unknown) => err)
    t.type(error, TypeError, inspect(options))
    t.match(error, { code: 'FST_WS_ROOMS_INVALID_OPTION', message: `fastify-websocket-rooms: ${message}` }, inspect(options))
  }
  // What Fastify's register() itself takes reaches the plugin too, and is not refused.
  const app = bare(t)
  await app.register(websocketRooms, { prefix: '/api', logLevel: 'warn' } as any)
  t.equal(typeof app.registerWebsocket, 'function')
})

test('websocketOptions may not set what the plugin owns', async (t) => {
  for (const key of ['noServer', 'server', 'port', 'host', 'path']) {
    const app = bare(t)
    app.register(websocketRooms, { websocketOptions: { [key]: 1 } as any })
    await t.rejects(async () => { await app.ready() }, {
      code: 'FST_WS_ROOMS_INVALID_OPTION',
      message: new RegExp(`option "websocketOptions\\.${key}" must be unset \\(the plugin owns the server and its routes\\), got number 1`)
    }, key)
  }
  const app = bare(t)
  await t.rejects(async () => { await app.register(websocketRooms, { websocketOptions: { maxPayload: 10 } as any }) }, {
    code: 'FST_WS_ROOMS_INVALID_OPTION',
    message: /option "websocketOptions\.maxPayload" must be unset \(use the top-level maxPayload option\), got number 10/
  })
})

test('good options are accepted: closeTimeout may be 0, websocketOptions passes through', async (t) => {
  const app = await build(t, { maxPayload: 16, closeTimeout: 0, websocketOptions: { perMessageDeflate: false } })
  app.registerWebsocket('/ws', { onConnected (session) { session.send('ok') } })
  const client = await connect(await listen(app), '/ws')
  t.same(await client.texts(1), ['ok'])
})

test('giving both names of one event is refused, naming both', async (t) => {
  const app = await build(t)
  const noop = (): void => {}
  const pairs = [['onConnected', 'onOpen'], ['handleText', 'onMessage'], ['onDisconnected', 'onClose']] as const
  for (const [name, alias] of pairs) {
    throwsLike(t, () => app.registerWebsocket('/ws', { [name]: noop, [alias]: noop }), TypeError, {
      code: 'FST_WS_ROOMS_INVALID_HANDLERS',
      message: `fastify-websocket-rooms: registerWebsocket("/ws"): "${name}" and "${alias}" are two names for one event: give only one`
    })
  }
})

test('a handler that is not a function is refused, naming it', async (t) => {
  const app = await build(t)
  throwsLike(t, () => app.registerWebsocket('/ws', { onConnected: 'hello' as any }), TypeError, {
    code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: /handler "onConnected" must be a function, got "hello"/
  })
  throwsLike(t, () => app.registerWebsocket('/ws', { handleText () {}, onClose: {} as any }), TypeError, {
    message: /handler "onClose" must be a function, got an object/
  })
  throwsLike(t, () => app.registerWebsocket('/ws', { onOpen () {}, onError: 1 as any }), TypeError, {
    message: /handler "onError" must be a function, got number 1/
  })
  throwsLike(t, () => app.registerWebsocket('/ws', null as any), TypeError, {
    message: /handlers must be an object or a module namespace, got null/
  })
})

test('a misspelt handler is refused with a suggestion', async (t) => {
  const app = await build(t)
  const cases: Array<[string, string]> = [['onMesage', 'onMessage'], ['onConected', 'onConnected'], ['handleTxt', 'handleText'], ['preHandle', 'preHandler'], ['onmessage', 'onMessage'], ['onopen', 'onOpen']]
  for (const [typo, meant] of cases) {
    throwsLike(t, () => app.registerWebsocket('/ws', { onConnected () {}, [typo]: () => {} }), TypeError, {
      code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: `unknown handler "${typo}" (did you mean "${meant}"?)`
    })
  }
  throwsLike(t, () => app.registerWebsocket('/ws', { onMesage () {} } as any), TypeError, {
    message: /registerWebsocket\("\/ws"\): unknown handler "onMesage" \(did you mean "onMessage"\?\)$/
  })
  throwsLike(t, () => app.registerWebsocket('/ws', { onConnected () {}, onSomethingElseEntirely () {} } as any), TypeError, {
    message: /unknown handler "onSomethingElseEntirely"$/
  })
})

test('a misspelt route option is refused, never ignored; a plugin option on a route says where it goes', async (t) => {
  const app = await build(t)
  const cases: Array<[string, string]> = [
    ['allowedOrigin', 'unknown option "allowedOrigin" (did you mean "allowedOrigins"?)'],
    ['alowedOrigins', 'unknown option "alowedOrigins" (did you mean "allowedOrigins"?)'],
    ['allowed_origins', 'unknown option "allowed_origins" (did you mean "allowedOrigins"?)'],
    ['maxBackpresure', 'unknown option "maxBackpresure" (did you mean "maxBackpressure"?)'],
    ['maxQueuedMessage', 'unknown option "maxQueuedMessage" (did you mean "maxQueuedMessages"?)'],
    ['rateLimits', 'unknown option "rateLimits" (did you mean "rateLimit"?)'],
    ['rate_limit', 'unknown option "rate_limit" (did you mean "rateLimit"?)'],
    ['ratelimit', 'unknown option "ratelimit" (did you mean "rateLimit"?)']
  ]
  for (const [key, message] of cases) {
    throwsLike(t, () => app.registerWebsocket('/ws', { onOpen () {}, [key]: ['https://app.example.com'] } as any), TypeError, {
      code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: `fastify-websocket-rooms: registerWebsocket("/ws"): ${message}`
    })
  }
  for (const key of ['maxPayload', 'heartbeatInterval', 'closeTimeout', 'history', 'compression']) {
    throwsLike(t, () => app.registerWebsocket('/ws', { onOpen () {}, [key]: 1 } as any), TypeError, {
      code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: `"${key}" is an option of the plugin, for every route: give it to app.register(websocketRooms, { ${key} })`
    })
  }
  // A module namespace may export more than handlers: keys far from any name are left alone.
  t.ok(app.registerWebsocket('/ns', { onOpen () {}, helpers: {}, VERSION: 1, schemas: {} } as any))
})

test('a misspelt ws server option in websocketOptions is refused with the closest one', async (t) => {
  const error = await bare(t).register(websocketRooms, { websocketOptions: { perMessageDefalte: true } as any }).then(() => null, (err: unknown) => err)
  t.match(error, { code: 'FST_WS_ROOMS_INVALID_OPTION', message: 'fastify-websocket-rooms: option "websocketOptions.perMessageDefalte" must be a ws server option (did you mean "perMessageDeflate"?), got an unknown option' })
})

test('the keys of a plain @fastify/websocket route are refused with what to do instead', async (t) => {
  const app = await build(t)
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ websocket: true, onOpen () {} }, /"websocket" is not needed: registerWebsocket\(\) always makes a WebSocket route/],
    [{ handler () {} }, /"handler" is not taken: registerWebsocket\(\) makes the route's handler; give session handlers instead/],
    [{ wsHandler () {}, onOpen () {} }, /"wsHandler" is not taken/],
    [{ method: 'GET', onOpen () {} }, /"method" is not taken: a WebSocket handshake is always a GET/],
    [{ url: '/other', onOpen () {} }, /"url" is not taken: the path is registerWebsocket\(\)'s first argument/]
  ]
  for (const [handlers, message] of cases) {
    throwsLike(t, () => app.registerWebsocket('/ws', handlers as any), TypeError, { code: 'FST_WS_ROOMS_INVALID_HANDLERS', message })
  }
})

test('handlers with no session handler, or a path that is not a string, are refused', async (t) => {
  const app = await build(t)
  for (const handlers of [{}, { onError () {} }, { schema: {}, preHandler: async () => {} }]) {
    throwsLike(t, () => app.registerWebsocket('/ws', handlers), TypeError, {
      code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: /registerWebsocket\("\/ws"\): no session handler given/
    })
  }
  for (const [path, got] of [[42, 'number 42'], [undefined, 'undefined'], [['/ws'], 'an array']] as const) {
    throwsLike(t, () => app.registerWebsocket(path as any, { onOpen () {} }), TypeError, {
      code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: `fastify-websocket-rooms: path must be a string, got ${got}`
    })
  }
  await app.ready()
  t.notOk(app.hasRoute({ method: 'GET', url: '/ws' }), 'no refused endpoint left a route behind')
})

/** A ws client's handshake that is expected to fail: rejects with ws's error. */
async function refusal (url: string): Promise<void> {
  const client = new Client(url)
  await Promise.all([client.opened, client.closed]) // both reject; neither is left unhandled
}

function deepFreeze<T extends object> (object: T): T {
  for (const value of Object.values(object)) {
    if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) deepFreeze(value)
  }
  return Object.freeze(object)
}

test('a deeply frozen handlers object, schema included, is accepted and left as it was', async (t) => {
  const app = await build(t)
  const handlers = deepFreeze({
    schema: { querystring: Type.Object({ n: Type.Integer() }) },
    onConnected (session: WebSocketSession<{ n: number }>) { session.send(String(session.query.n + 1)) }
  })
  const keys = Reflect.ownKeys(handlers.schema)
  t.equal(app.registerWebsocket('/ws', handlers), app)
  const client = await connect(await listen(app), '/ws?n=41')
  t.same(await client.texts(1), ['42'])
  t.ok(Object.isFrozen(handlers) && Object.isFrozen(handlers.schema))
  t.same(Reflect.ownKeys(handlers.schema), keys)
})

test('an ES module namespace is accepted as handlers and never written to', async (t) => {
  const handlers = await import('./fixtures/handlers.mjs')
  t.equal(Object.isExtensible(handlers), false, 'a namespace object cannot take new properties')
  t.equal(Object.isSealed(handlers), true)
  t.throws(() => { (handlers as any).onConnected = null }, TypeError)
  const exported = Reflect.ownKeys(handlers)
  const schemaKeys = Reflect.ownKeys(handlers.schema)
  const app = await build(t)
  app.registerWebsocket('/ws', handlers)
  app.registerWebsocket('/again', handlers) // one module may serve many paths
  const base = await listen(app)
  const client = await connect(base, '/ws?name=ada')
  client.send('shout')
  t.same(await client.texts(2), ['hello ada', 'SHOUT'])
  const again = await connect(base, '/again?name=bob')
  t.same(await again.texts(1), ['hello bob'])
  t.same(Reflect.ownKeys(handlers), exported)
  t.same(Reflect.ownKeys(handlers.schema), schemaKeys, 'the exported schema object gained no property (hide, a visited flag)')
  t.equal(handlers.description, 'echoes text in upper case')
})

test('@fastify/websocket registered before: its options win, the warning says what to do, plain { websocket: true } routes work alongside sessions, and sessions still get 1001 on close', async (t) => {
  const lines: any[] = []
  const app = bare(t, { logger: { level: 'warn', stream: { write (line: string) { lines.push(JSON.parse(line)) } } } })
  await app.register(fastifyWebsocket, { options: { maxPayload: 64 } })
  app.get('/plain', { websocket: true }, (socket) => { socket.send('plain') })
  await app.register(websocketRooms, { maxPayload: 1024 })
  t.equal(lines.length, 1)
  t.match(lines[0], { level: 40 })
  t.equal(lines[0].msg, 'fastify-websocket-rooms: @fastify/websocket was registered before this plugin, so its options apply and ' +
    "this plugin's maxPayload/websocketOptions are ignored: pass them to that registration instead " +
    '(app.register(fastifyWebsocket, { options: { maxPayload, ...websocketOptions } })), or remove it and let this plugin register @fastify/websocket')
  const codes: number[] = []
  app.registerWebsocket('/ws', {
    onConnected (session) { session.send('rooms') },
    onMessage (session, text) { session.send(`got ${text.length}`) },
    onDisconnected (_session, code) { codes.push(code) }
  })
  const base = await listen(app)
  const plain = await connect(base, '/plain')
  const client = await connect(base, '/ws')
  t.same(await plain.texts(1), ['plain'])
  t.same(await client.texts(1), ['rooms'])
  t.equal(app.websocketSessions.size, 1)
  client.send('x'.repeat(64))
  t.same(await client.texts(2), ['rooms', 'got 64'])
  plain.ws.close()
  await plain.closed

  const second = await connect(base, '/ws')
  t.same(await second.texts(1), ['rooms'])
  second.send('x'.repeat(65))
  t.same(await second.closed, { code: 1009, reason: '' }, "@fastify/websocket's maxPayload (64) applies, not the plugin's (1024)")
  t.same(codes, [1009])

  await app.close()
  t.same(codes, [1009, 1001], 'onDisconnected ran before app.close() resolved')
  t.same(await client.closed, { code: 1001, reason: 'server shutting down' })
})

test('@fastify/websocket registered after this plugin: app.register() throws FST_WS_ROOMS_WEBSOCKET_REGISTERED_AFTER, saying what to do', async (t) => {
  const app = await build(t)
  let scope!: FastifyInstance
  await app.register(async (child) => { scope = child })
  for (const [where, instance] of [['the app', app], ['a scope created after', scope]] as const) {
    for (const [form, plugin] of [['the plugin', fastifyWebsocket], ['an ES module namespace', { default: fastifyWebsocket }]] as const) {
      throwsLike(t, () => instance.register(plugin as typeof fastifyWebsocket), Error, {
        code: 'FST_WS_ROOMS_WEBSOCKET_REGISTERED_AFTER',
        message: 'fastify-websocket-rooms: @fastify/websocket is registered after fastify-websocket-rooms, which registers it itself: ' +
          'register @fastify/websocket before fastify-websocket-rooms (its options then apply), or not at all'
      })
      t.pass(`${where}, ${form}`)
    }
  }
  // Other plugins register as before (one that is its own default too, as CommonJS plugins
  // often are), and the app starts: nothing was queued.
  const other = Object.assign(fp(async (instance: FastifyInstance) => { instance.decorate('other', true) }, { name: 'other' }), { default: undefined as unknown })
  other.default = other
  await app.register(other)
  t.equal(app.hasDecorator('other'), true)
  await app.register(async (child) => { child.registerWebsocket('/ws', { onConnected (session) { session.send('in') } }) })
  const client = await connect(await listen(app), '/ws')
  t.same(await client.texts(1), ['in'])
})

test('a register that cannot be wrapped is left as it is, said once at debug level', async (t) => {
  const lines: Array<{ level: number, msg: string }> = []
  const app = bare(t, { logger: { level: 'debug', stream: { write (line: string) { lines.push(JSON.parse(line)) } } } })
  Object.defineProperty(app, 'register', { value: app.register, writable: false, configurable: true })
  const register = app.register
  await app.register(websocketRooms)
  t.equal(app.register, register, 'register is the same function')
  t.same(lines.filter((line) => line.msg.startsWith('fastify-websocket-rooms: ')).map(({ level, msg }) => ({ level, msg })), [{
    level: 20,
    msg: 'fastify-websocket-rooms: Fastify\'s register could not be wrapped; registering @fastify/websocket after this plugin fails with FST_ERR_DEC_ALREADY_PRESENT'
  }])
  app.registerWebsocket('/ws', { onConnected (session) { session.send('in') } })
  const client = await connect(await listen(app), '/ws')
  t.same(await client.texts(1), ['in'])
})

// Without awaiting this plugin's registration, @fastify/websocket's is queued before this
// plugin has run: its plugin then throws synchronously inside Fastify's loader (avvio), where
// nothing can catch it, and the process ends, as it would end the user's. Not in this process.
test('@fastify/websocket registered after this plugin without an await between ends the process with FST_ERR_DEC_ALREADY_PRESENT', async (t) => {
  const program = [
    "import Fastify from 'fastify'",
    "import fastifyWebsocket from '@fastify/websocket'",
    "import websocketRooms from 'fastify-websocket-rooms'",
    'const app = Fastify()',
    'app.register(websocketRooms)',
    'app.register(fastifyWebsocket)',
    'await app.ready()',
    "console.log('registered')"
  ].join('\n')
  const child = spawn(process.execPath, ['--input-type=module', '-e', program], { cwd: resolve(__dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 })
  let output = ''
  child.stdout.on('data', (chunk) => { output += chunk })
  child.stderr.on('data', (chunk) => { output += chunk })
  const [code] = await once(child, 'close')
  t.equal(code, 1)
  t.match(output, /code: 'FST_ERR_DEC_ALREADY_PRESENT'/)
  t.match(output, /The decorator 'ws' has already been added!/)
  t.notMatch(output, /registered/)
})

test('without a registration of its own, plain { websocket: true } routes work alongside sessions', async (t) => {
  const app = await build(t)
  app.get('/plain', { websocket: true }, (socket) => { socket.on('message', (data) => socket.send(`plain ${String(data)}`)) })
  app.registerWebsocket('/ws', { onMessage (session, text) { session.send(`rooms ${text}`) } })
  const base = await listen(app)
  const plain = await connect(base, '/plain')
  const client = await connect(base, '/ws')
  plain.send('a')
  client.send('b')
  t.same(await plain.texts(1), ['plain a'])
  t.same(await client.texts(1), ['rooms b'])
  t.equal(app.websocketSessions.size, 1, 'the plain socket is no session')
  plain.ws.terminate()
  await plain.closed
})

test('two apps in one process share no sessions and no rooms', async (t) => {
  const apps = [await build(t), await build(t)] as const
  for (const [i, app] of apps.entries()) {
    app.registerWebsocket('/ws', {
      onConnected (session) {
        session.room('lobby').join()
        session.send(`app ${i}`)
      }
    })
  }
  const [a, b] = [await connect(await listen(apps[0]), '/ws'), await connect(await listen(apps[1]), '/ws')]
  t.same(await a.texts(1), ['app 0'])
  t.same(await b.texts(1), ['app 1'])
  const [idA] = [...apps[0].websocketSessions.keys()]
  const [idB] = [...apps[1].websocketSessions.keys()]
  t.equal(apps[0].websocketSessions.size, 1)
  t.equal(apps[1].websocketSessions.size, 1)
  t.not(idA, idB)
  t.notOk(apps[1].websocketSessions.has(idA!))
  t.equal(apps[0].websocketRooms.room('lobby').members(), 1)
  t.equal(apps[1].websocketRooms.room('lobby').members(), 1)
  apps[0].websocketRooms.room('lobby').broadcast('to app 0')
  apps[1].websocketRooms.room('lobby').broadcast('to app 1')
  t.same(await a.texts(2), ['app 0', 'to app 0'])
  t.same(await b.texts(2), ['app 1', 'to app 1'])
  await apps[0].close()
  t.same(await a.closed, { code: 1001, reason: 'server shutting down' })
  t.equal(apps[1].websocketSessions.size, 1, 'closing one app leaves the other\'s sessions open')
  t.same(apps[1].websocketRooms.roomNames(), ['lobby'])
  apps[1].websocketRooms.room('lobby').broadcast('after')
  t.same(await b.texts(3), ['app 1', 'to app 1', 'after'])
})

test('registerWebsocket in an encapsulated plugin gets its prefix and its hooks', async (t) => {
  const app = await build(t)
  const hooked: string[] = []
  const paths: string[] = []
  let child!: FastifyInstance
  await app.register(async (instance) => {
    child = instance
    instance.addHook('onRequest', async (request) => { hooked.push(request.url) })
    t.equal(instance.registerWebsocket('/ws', { onConnected (session) { session.send(session.getRequestPath()) } }), instance)
  }, { prefix: '/api' })
  app.registerWebsocket('/ws', { onConnected (session) { paths.push(session.getRequestPath()); session.send('root') } })
  const base = await listen(app)
  const scoped = await connect(base, '/api/ws?x=1')
  t.same(await scoped.texts(1), ['/api/ws'])
  const root = await connect(base, '/ws')
  t.same(await root.texts(1), ['root'])
  t.same(hooked, ['/api/ws?x=1'], 'the child scope\'s hook ran for its endpoint only')
  t.same(paths, ['/ws'])
  t.ok(app.hasRoute({ method: 'GET', url: '/api/ws' }))
  t.ok(child.hasRoute({ method: 'GET', url: '/api/ws' }))
  await t.rejects(refusal(base + '/api'), /Unexpected server response: 404/)
})

test('app.websocketSessions is a read-only view of the open sessions', async (t) => {
  const app = await build(t)
  const sessions: WebSocketSession[] = []
  let closedOne!: () => void
  const oneClosed = new Promise<void>((resolve) => { closedOne = resolve })
  app.registerWebsocket('/ws', {
    onConnected (session) { sessions.push(session); session.send('in') },
    onDisconnected () { closedOne() }
  })
  const view = app.websocketSessions as any
  for (const method of ['set', 'delete', 'clear']) t.equal(view[method], undefined, `no ${method}()`)
  t.notOk(view instanceof Map)
  t.equal(view.size, 0)
  const base = await listen(app)
  const clients = [await connect(base, '/ws'), await connect(base, '/ws')]
  await Promise.all(clients.map((client) => client.texts(1)))
  const ids = sessions.map((session) => session.id)
  t.equal(app.websocketSessions.size, 2)
  t.equal(app.websocketSessions.get(ids[0]!), sessions[0])
  t.ok(app.websocketSessions.has(ids[1]!))
  t.notOk(app.websocketSessions.has('nope'))
  t.same([...app.websocketSessions.keys()], ids)
  t.same([...app.websocketSessions.values()], sessions)
  t.same([...app.websocketSessions.entries()], ids.map((id, i) => [id, sessions[i]]))
  t.same([...app.websocketSessions], ids.map((id, i) => [id, sessions[i]]))
  const seen: string[] = []
  const thisArg = {}
  app.websocketSessions.forEach(function (this: unknown, session, id, map) {
    t.equal(session, app.websocketSessions.get(id))
    t.equal(map, app.websocketSessions)
    t.equal(this, thisArg)
    seen.push(id)
  }, thisArg)
  t.same(seen, ids)
  t.throws(() => { view.size = 0 }, TypeError)
  clients[0]!.ws.close()
  await oneClosed
  t.same([...app.websocketSessions.keys()], [ids[1]])
})

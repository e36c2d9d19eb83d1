// The metrics option: /metrics of a running app scraped while real clients come, talk, are
// refused and go, the exposition parsed; its gauges read from the plugin's own state; two
// instances on one registry; bad options and a missing prom-client.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry, register as defaultRegistry } from 'prom-client'
import { test } from 'tap'
import websocketRooms, { redisAdapter } from 'fastify-websocket-rooms'
import { bulkHistogram } from '../lib/transport/prom-histogram'
import { build, connect, listen, until } from './helpers'
import { REDIS_URL, redisTest, uniquePrefix } from './redis'

interface Sample { name: string, labels: Record<string, string>, value: number }

/** Parses Prometheus's text exposition: its samples, and each metric's TYPE. */
function parse (text: string): { samples: Sample[], types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ')
      types.set(name!, type!)
      continue
    }
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) throw new Error(`not an exposition line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!
    samples.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return { samples, types }
}

/** Scrapes the app's /metrics over HTTP. */
async function scrape (http: string): Promise<{ text: string, samples: Sample[], types: Map<string, string>, value: (name: string, labels?: Record<string, string>) => number | undefined }> {
  const response = await fetch(`${http}/metrics`)
  const text = await response.text()
  const { samples, types } = parse(text)
  const value = (name: string, labels: Record<string, string> = {}): number | undefined => {
    const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length)
    return found.length === 0 ? undefined : found.reduce((sum, s) => sum + s.value, 0)
  }
  return { text, samples, types, value }
}

function serveMetrics (app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', async (_request, reply) => {
    reply.type(registry.contentType)
    return registry.metrics()
  })
}

test('/metrics, scraped while clients come, talk, are refused and go', async (t) => {
  const registry = new Registry()
  const app = await build(t, { metrics: { registry, prefix: 'ws_' }, allowedOrigins: ['https://good.example'], heartbeatInterval: 0 })
  serveMetrics(app, registry)
  app.registerWebsocket('/chat', {
    onConnected (session) { session.room(`room-${session.getParameter('room') ?? 'a'}`).join() },
    async onMessage (session, text: string) {
      if (text === 'bye') return session.close(4001, 'bye')
      await new Promise((resolve) => setImmediate(resolve))
      session.room(`room-${session.getParameter('room') ?? 'a'}`).broadcast(text)
    }
  })
  app.registerWebsocket('/other', { onMessage () {} })
  const base = await listen(app)
  const http = base.replace(/^ws/, 'http')

  let m = await scrape(http)
  t.equal(m.value('ws_sessions', { route: '/chat' }), 0, 'each route from the start, at zero')
  t.equal(m.value('ws_rooms'), 0)
  t.same(['ws_sessions', 'ws_rooms', 'ws_memberships', 'ws_messages_received_total', 'ws_handler_duration_seconds', 'ws_broadcast_recipients', 'ws_closes_total', 'ws_handshake_refusals_total', 'ws_backpressure_total'].map((name) => m.types.get(name)),
    ['gauge', 'gauge', 'gauge', 'counter', 'histogram', 'histogram', 'counter', 'counter', 'counter'])

  const a1 = await connect(base, '/chat?room=a')
  const a2 = await connect(base, '/chat?room=a')
  const b1 = await connect(base, '/chat?room=b')
  const other = await connect(base, '/other')
  const refused = await connect(base, '/chat', { origin: 'https://evil.example' }).catch((error: Error) => error)
  t.ok(refused instanceof Error)
  await until(() => app.websocketRooms.room('room-b').members() === 1)
  a1.send('hello')
  await a2.texts(1)
  b1.send('hi')
  await b1.texts(1)
  other.send('x')

  await until(() => app.websocketRooms.stats().messagesIn === 3)
  m = await scrape(http)
  t.equal(m.value('ws_sessions', { route: '/chat' }), 3)
  t.equal(m.value('ws_sessions', { route: '/other' }), 1)
  t.equal(m.value('ws_rooms'), 2)
  t.equal(m.value('ws_memberships'), 3)
  t.equal(m.value('ws_messages_received_total', { route: '/chat' }), 2)
  t.equal(m.value('ws_received_bytes_total', { route: '/chat' }), 7)
  t.equal(m.value('ws_messages_received_total', { route: '/other' }), 1)
  t.equal(m.value('ws_messages_sent_total', { route: '/chat' }), 3, 'two to room a, one to room b')
  t.equal(m.value('ws_sent_bytes_total', { route: '/chat' }), 12)
  t.equal(m.value('ws_handler_duration_seconds_count', { route: '/chat', event: 'message' }), 2)
  t.equal(m.value('ws_handler_duration_seconds_count', { route: '/chat', event: 'connected' }), 3)
  t.ok(m.value('ws_handler_duration_seconds_sum', { route: '/chat', event: 'message' })! > 0, 'an async handler is timed to its settling')
  t.equal(m.value('ws_broadcast_recipients_count'), 2)
  t.equal(m.value('ws_broadcast_recipients_sum'), 3)
  t.equal(m.value('ws_broadcast_recipients_bucket', { le: '1' }), 1, 'one broadcast to one session')
  t.equal(m.value('ws_handshake_refusals_total', { reason: 'origin' }), 1)
  t.equal(m.value('ws_backpressure_total', { action: 'drop' }), 0)
  t.equal(m.value('ws_redis_connected'), undefined, 'no Redis series without an adapter')

  a1.send('bye')
  t.equal((await a1.closed).code, 4001)
  b1.ws.terminate() // gone without a close frame
  await other.close()
  await until(() => app.websocketSessions.size === 1)
  m = await scrape(http)
  t.equal(m.value('ws_sessions', { route: '/chat' }), 1, 'read from the sessions there are')
  t.equal(m.value('ws_sessions', { route: '/other' }), 0)
  t.equal(m.value('ws_rooms'), 1, 'room b has gone with its member')
  t.equal(m.value('ws_memberships'), 1)
  t.same([m.value('ws_closes_total', { code: '4001' }), m.value('ws_closes_total', { code: '1006' }), m.value('ws_closes_total', { code: '1005' })], [1, 1, 1])

  const ids = [...app.websocketSessions.keys()]
  t.notOk(ids.some((id) => m.text.includes(id)) || m.text.includes('room-a'), 'no session id nor room name in any label')
  await a2.close()
})

test('metrics: true registers with prom-client\'s default registry, and app.close() takes them out', async (t) => {
  const app = Fastify()
  await app.register(websocketRooms, { metrics: true })
  serveMetrics(app, defaultRegistry)
  app.registerWebsocket('/ws', { onMessage () {} })
  const base = await listen(app)
  const client = await connect(base, '/ws')
  await until(() => app.websocketSessions.size === 1)
  const m = await scrape(base.replace(/^ws/, 'http'))
  t.equal(m.value('websocket_rooms_sessions', { route: '/ws' }), 1, 'the default prefix')
  await client.close()
  await app.close()
  t.equal(defaultRegistry.getSingleMetric('websocket_rooms_sessions'), undefined, 'unregistered at close')
})

test('two instances on one registry and prefix share the series, which add up; each close takes its share out', async (t) => {
  const registry = new Registry()
  const apps = await Promise.all([0, 1].map(async () => {
    const app = await build(t, { metrics: { registry } })
    app.registerWebsocket('/ws', { onMessage () {} })
    return { app, base: await listen(app) }
  }))
  const clients = await Promise.all([apps[0]!.base, apps[1]!.base, apps[1]!.base].map((base) => connect(base, '/ws')))
  await until(() => apps[1]!.app.websocketSessions.size === 2 && apps[0]!.app.websocketSessions.size === 1)
  const read = async (): Promise<number | undefined> => parse(await registry.metrics()).samples.find((s) => s.name === 'websocket_rooms_sessions')?.value
  t.equal(await read(), 3)
  await Promise.all(clients.map((client) => client.close()))
  await apps[0]!.app.close()
  t.equal(await read(), 0, 'the other instance\'s metrics stay')
  await apps[1]!.app.close()
  t.equal(registry.getSingleMetric('websocket_rooms_sessions'), undefined, 'gone with the last instance')
  const separate = await build(t, { metrics: { registry, prefix: 'second_' } })
  t.ok(separate, 'another prefix on the same registry')
})

test('a metric name taken by someone else, and bad options, fail registration', async (t) => {
  const registry = new Registry()
  registry.registerMetric(new (await import('prom-client')).Gauge({ name: 'taken_rooms', help: 'not ours', registers: [] }))
  await t.rejects(build(t, { metrics: { registry, prefix: 'taken_' } }), { code: 'FST_WS_ROOMS_INVALID_OPTION', message: /metrics\.prefix.*taken_rooms is registered already/ })
  t.equal(registry.getSingleMetric('taken_sessions'), undefined, 'what was registered before the clash is taken out')
  const bad: Array<[unknown, RegExp]> = [
    ['yes', /option "metrics" must be true, false or an object/],
    [{ prefix: '1x' }, /option "metrics.prefix" must be a string of letters/],
    [{ registry: {} }, /option "metrics.registry" must be a prom-client Registry/],
    [{ registy: registry }, /option "metrics.registy" must be unset/]
  ]
  for (const [metrics, message] of bad) {
    await t.rejects(async () => { await Fastify().register(websocketRooms, { metrics } as never).ready() }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message }, JSON.stringify(metrics))
  }
  await t.rejects(async () => { await Fastify().register(websocketRooms, { tracing: 'on' } as never).ready() }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message: /option "tracing" must be true or false/ })
})

test('without prom-client or @opentelemetry/api installed, the option fails registration and says what to install', async (t) => {
  const root = resolve(__dirname, '..')
  // A preload that makes the two packages unresolvable, as in an app that did not install them.
  const hide = [
    "const M = require('node:module'); const resolveFilename = M._resolveFilename",
    'M._resolveFilename = function (name, ...rest) {',
    "  if (name === 'prom-client' || name === '@opentelemetry/api') throw Object.assign(new Error(\"Cannot find module '\" + name + \"'\"), { code: 'MODULE_NOT_FOUND' })",
    '  return resolveFilename.call(this, name, ...rest)',
    '}'
  ].join('\n')
  const app = "const Fastify = require('fastify'); const rooms = require('fastify-websocket-rooms'); Fastify().register(rooms, JSON.parse(process.argv[1])).ready().then(() => console.log('ready'), (e) => console.log(e.code, e.message))"
  for (const [option, name] of [[{ metrics: true }, 'prom-client'], [{ tracing: true }, '@opentelemetry/api']] as const) {
    const run = spawnSync(process.execPath, ['-e', `${hide}\n${app}`, JSON.stringify(option)], { cwd: root, encoding: 'utf8' })
    t.equal(run.stdout.trim(), `FST_WS_ROOMS_MISSING_PEER fastify-websocket-rooms: option "${Object.keys(option)[0]}" needs the package ${name}, which is not installed: npm install ${name}`)
  }
})

redisTest('with redisAdapter: Redis connected, its publish backlog and failures; the documented series and the Grafana dashboard\'s are those there are', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  await app.register(websocketRooms, { metrics: { registry }, history: true, adapter: redisAdapter({ url: REDIS_URL, keyPrefix: uniquePrefix('metrics') }) })
  t.teardown(() => app.close())
  app.registerWebsocket('/ws', { onConnected (session) { session.room('r').join() }, onMessage (session, text: string) { session.room('r').broadcast(text) } })
  const client = await connect(await listen(app), '/ws')
  await app.websocketRooms.room('r').clusterMembers()
  client.send('x')
  await client.texts(1)
  const { samples } = parse(await registry.metrics())
  const value = (name: string): number | undefined => samples.find((s) => s.name === name)?.value
  t.same([value('websocket_rooms_redis_connected'), value('websocket_rooms_redis_publish_failures_total')], [1, 0])
  t.type(value('websocket_rooms_redis_publish_backlog_bytes'), 'number')
  await client.close()

  const registered = [...parse(await registry.metrics()).types.keys()].map((name) => name.replace(/^websocket_rooms_/, '')).sort()
  const docs = readFileSync(resolve(__dirname, '..', 'docs', 'observability.md'), 'utf8')
  const documented = new Set<string>()
  for (const row of docs.split('\n').filter((line) => /^\| `[a-z_]+`.*\| (gauge|counter|histogram) \|/.test(line))) {
    for (const [, name] of row.split(' | ')[0]!.matchAll(/`([a-z_]+)`/g)) documented.add(name!)
  }
  t.same([...documented].sort(), registered, 'docs/observability.md has a row for each series, and for no other')
  const grafana = readFileSync(resolve(__dirname, '..', 'docs', 'grafana-dashboard.json'), 'utf8')
  const used = new Set([...grafana.matchAll(/websocket_rooms_([a-z_]+?)(?:_bucket|_count|_sum)?\{/g)].map(([, name]) => name!))
  t.same([...used].filter((name) => !registered.includes(name)), [], 'the Grafana dashboard queries only series there are')
  t.ok(used.size >= 15, `and most of them (${used.size})`)
})

test('a histogram counted in bulk exports what prom-client\'s own observe() would; another shape of its map falls back to observe()', async (t) => {
  const { Histogram } = await import('prom-client')
  const bounds = [0.001, 0.01, 0.1, 1]
  const registry = new Registry()
  const made = (name: string): InstanceType<typeof Histogram> => new Histogram({ name, help: 'h', labelNames: ['route', 'event'], buckets: bounds, registers: [registry] })
  const direct = made('direct')
  let bulk: ReturnType<typeof bulkHistogram> | null = null
  const counted = new Histogram({ name: 'counted', help: 'h', labelNames: ['route', 'event'], buckets: bounds, registers: [registry], collect () { bulk!.flush() } })
  bulk = bulkHistogram(counted, bounds, { route: '', event: '' })
  t.ok(bulk.bulk, 'prom-client\'s map is the shape expected')
  const labels = [{ route: '/a', event: 'message' }, { route: '/b', event: 'connected' }]
  const values = [0.0005, 0.001, 0.002, 0.05, 0.5, 1, 3, 0]
  for (const [i, value] of values.entries()) {
    const set = labels[i % 2]!
    direct.observe(set, value)
    bulk.observe(`${set.route}\n${set.event}`, set, value)
  }
  const text = await registry.metrics()
  const of = (name: string): string[] => text.split('\n').filter((line) => line.startsWith(name + '_')).map((line) => line.slice(name.length)).sort()
  t.same(of('counted'), of('direct'), 'the same buckets, sums and counts')
  t.equal(of('direct').length, 2 * (bounds.length + 3))

  const observed: unknown[] = []
  const other = { zero () {}, reset () {}, observe (...args: unknown[]) { observed.push(args) } }
  const fallback = bulkHistogram(other as never, bounds, {})
  t.notOk(fallback.bulk, 'no map of the shape expected')
  fallback.observe('k', { route: '/a' }, 0.5)
  fallback.flush()
  t.same(observed, [[{ route: '/a' }, 0.5]], 'through observe()')
})

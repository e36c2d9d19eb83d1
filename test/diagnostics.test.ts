// diagnostics_channel: every channel of docs/observability.md, subscribed to by name as an
// APM would, with the payloads a running app sends on them: real sockets on loopback, the
// real Redis (through a proxy this test cuts) for the outage and recovery.
import diagnosticsChannel from 'node:diagnostics_channel'
import { once } from 'node:events'
import { get, type IncomingMessage } from 'node:http'
import Fastify from 'fastify'
import { test } from 'tap'
import websocketRooms, { redisAdapter } from 'fastify-websocket-rooms'
import { build, connect, listen, until } from './helpers'
import { RawClient, opcodes } from './raw-client'
import { REDIS_URL, RedisProxy, redisTest, uniquePrefix } from './redis'
import { within } from './signals'

const PREFIX = 'fastify-websocket-rooms:'

/** Collects what `name` publishes for the app whose nodeId `node()` gives, until the test ends. */
function listen$ (t: { teardown (fn: () => void): void }, name: string, node: () => string | undefined): any[] {
  const seen: any[] = []
  const listener = (message: any): void => { if (message.nodeId === node()) seen.push(message) }
  diagnosticsChannel.subscribe(PREFIX + name, listener)
  t.teardown(() => diagnosticsChannel.unsubscribe(PREFIX + name, listener))
  return seen
}

test('session open, messages in, handler runs, broadcasts, publishes and closes, with their payloads', async (t) => {
  const app = await build(t, { history: true, heartbeatInterval: 0 })
  const node = (): string => app.websocketRooms.nodeId
  const opened = listen$(t, 'session:open', node)
  const messages = listen$(t, 'message:in', node)
  const broadcasts = listen$(t, 'room:broadcast', node)
  const publishes = listen$(t, 'room:publish', node)
  const closes = listen$(t, 'session:close', node)
  const runs: Array<[string, any]> = []
  const tracing = diagnosticsChannel.tracingChannel(PREFIX + 'handler')
  const handlers = Object.fromEntries(['start', 'end', 'asyncStart', 'asyncEnd', 'error'].map((kind) => [kind, (context: any) => {
    if (context.nodeId === node()) runs.push([kind, { ...context }])
  }])) as any
  tracing.subscribe(handlers)
  t.teardown(() => tracing.unsubscribe(handlers))

  app.register(async (scoped) => {
    scoped.registerWebsocket('/ws', {
      onConnected (session) { session.room('lobby').join() },
      handleBinary () { throw new Error('thrown at once') },
      async onMessage (session, text: string) {
        if (text === 'throw') throw new Error('boom')
        if (text === 'publish') {
          await session.room('lobby').publish(({ offset }) => `published ${offset}`)
          return
        }
        session.room('lobby').broadcastExcept(text)
      }
    })
  }, { prefix: '/api' })
  const base = await listen(app)
  const a = await connect(base, '/api/ws')
  const b = await connect(base, '/api/ws')
  await until(() => app.websocketRooms.room('lobby').members() === 2)
  const ids = [...app.websocketSessions.keys()]
  t.same(opened.map((event) => [event.route, event.sessionId, event.session === app.websocketSessions.get(event.sessionId)]),
    ids.map((id) => ['/api/ws', id, true]), 'session:open: route with its prefix, id, the session itself')

  a.send('hello')
  await b.texts(1)
  t.match(messages, [{ route: '/api/ws', sessionId: ids[0], binary: false, bytes: 5, type: undefined }], 'message:in')
  t.match(broadcasts, [{ room: 'lobby', rooms: null, recipients: 1, bytes: 5, from: 'local' }], 'room:broadcast: one recipient, the sender left out')
  app.websocketRooms.to(['lobby']).broadcast('to all')
  await b.texts(2)
  t.match(broadcasts[1], { room: null, rooms: ['lobby'], recipients: 2, bytes: 6, from: 'local' })

  a.send('publish')
  await b.texts(3)
  t.match(publishes, [{ room: 'lobby', recipients: 2, bytes: 11, offset: 1 }], 'room:publish at its delivery')
  t.type(publishes[0].epoch, 'string')

  const starts = runs.filter(([kind, context]) => kind === 'start' && context.event === 'message')
  t.equal(starts.length, 2, 'a start per message handler run')
  t.match(starts[0]![1], { route: '/api/ws', sessionId: ids[0], event: 'message', type: undefined })
  t.same(runs.filter(([kind]) => kind === 'start').map(([, context]) => context.event).slice(0, 2), ['connected', 'connected'])
  const sequence = runs.filter(([, context]) => context.event === 'message').map(([kind]) => kind)
  t.same(sequence, ['start', 'end', 'asyncStart', 'asyncEnd', 'start', 'end', 'asyncStart', 'asyncEnd'], 'an async handler: start, end, then asyncStart and asyncEnd once it settles')

  a.send('throw')
  const closed = await a.closed
  t.equal(closed.code, 1011)
  await until(() => closes.length === 1)
  t.match(closes, [{ route: '/api/ws', sessionId: ids[0], code: 1011 }], 'session:close with the code')
  t.ok(runs.some(([kind, context]) => kind === 'error' && context.error.message === 'boom'), 'error: with what the handler rejected with')
  await b.close()
  await until(() => closes.length === 2)
  t.equal(closes[1].code, 1005, 'a close frame with no code: 1005')

  const c = await connect(base, '/api/ws')
  c.send(Buffer.from('bytes'))
  t.equal((await c.closed).code, 1011)
  const thrown = runs.filter(([, context]) => context.event === 'binary')
  t.same(thrown.map(([kind]) => kind), ['start', 'error', 'end'], 'a handler that throws at once: start, error, end')
  t.equal(thrown[1]![1].error.message, 'thrown at once')
})

test('handshake refusals, each with its reason: a bad handshake, an origin, maxSessions', async (t) => {
  const app = await build(t, { maxSessions: 1, allowedOrigins: ['https://good.example'] })
  const refused = listen$(t, 'handshake:refused', () => app.websocketRooms.nodeId)
  app.registerWebsocket('/ws', { onMessage () {} })
  const base = await listen(app)
  const http = base.replace(/^ws/, 'http')
  const request = get(`${http}/ws`, { headers: { upgrade: 'websocket', connection: 'upgrade', 'sec-websocket-version': '13', 'sec-websocket-key': 'short' } })
  const [response] = await within(once(request, 'response'), 'the answer to a bad handshake') as [IncomingMessage]
  response.resume()
  t.equal(response.statusCode, 400)
  const evil = await connect(base, '/ws', { origin: 'https://evil.example' }).catch((error: Error) => error)
  t.ok(evil instanceof Error, 'a foreign origin is refused')
  const first = await connect(base, '/ws')
  const second = await connect(base, '/ws').catch((error: Error) => error)
  t.ok(second instanceof Error, 'past maxSessions is refused')
  await until(() => refused.length === 3)
  t.match(refused, [
    { route: '/ws', reason: 'handshake', detail: 'Missing or invalid Sec-WebSocket-Key header' },
    { route: '/ws', reason: 'origin', detail: 'origin "https://evil.example" is not allowed' },
    { route: '/ws', reason: 'max-sessions', detail: 'maxSessions (1) sessions are open' }
  ])
  await first.close()
})

test('a backpressure drop and a backpressure close, each with its session', async (t) => {
  const SIZE = 64 * 1024
  for (const policy of ['drop', 'close'] as const) {
    const app = await build(t, { maxBackpressure: 2 * SIZE, backpressurePolicy: policy, heartbeatInterval: 0 })
    const actions = listen$(t, 'session:backpressure', () => app.websocketRooms.nodeId)
    app.registerWebsocket('/ws', {
      async handleText (session) {
        // One message a turn, until the first overflow.
        while (session.isOpen() && actions.length === 0) {
          session.send(Buffer.alloc(SIZE))
          await new Promise((resolve) => setImmediate(resolve))
        }
      }
    })
    const client = await RawClient.connect(await listen(app), '/ws')
    client.socket.pause()
    client.send(opcodes.text, 'flood')
    await until(() => actions.length === 1, `a ${policy}`)
    const [id] = app.websocketSessions.keys()
    t.match(actions[0], { route: '/ws', sessionId: id, action: policy }, policy)
    t.ok(actions[0].bufferedAmount > 0, 'with what the session held')
    client.socket.destroy()
  }
})

redisTest('Redis lost and back: redis:down with the error, redis:up with how long it was away', async (t) => {
  const proxy = await RedisProxy.start(t, REDIS_URL)
  const app = Fastify()
  await app.register(websocketRooms, { adapter: redisAdapter({ url: proxy.url, keyPrefix: uniquePrefix('diagnostics') }) })
  t.teardown(() => app.close())
  const node = (): string => app.websocketRooms.nodeId
  const down = listen$(t, 'redis:down', node)
  const up = listen$(t, 'redis:up', node)
  proxy.cut()
  await until(() => down.length === 1, 'redis:down')
  t.type(down[0].error, Error)
  t.equal(up.length, 0)
  proxy.restore()
  await until(() => up.length === 1, 'redis:up')
  t.ok(up[0].downFor >= 0, `away ${up[0].downFor} ms`)
  t.equal(down.length, 1, 'one outage, told once')
})

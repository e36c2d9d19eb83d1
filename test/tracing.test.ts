// The tracing option with OpenTelemetry's SDK and its in-memory exporter: a span per handler
// run, child of the handshake's traceparent (header or query parameter), the active context of
// the handler; and, across two servers on the real Redis, the trace context carried in the
// cluster's packet, so that the other server's delivery is a span linked to the sender's.
import { context, trace, SpanStatusCode } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { test } from 'tap'
import websocketRooms, { redisAdapter } from 'fastify-websocket-rooms'
import { decodeClusterMessage, encodeClusterMessage } from '../lib/cluster/codec'
import { TEXT, encode } from '../lib/transport/frame'
import { build, connect, listen, until } from './helpers'
import { REDIS_URL, redisTest, uniquePrefix } from './redis'

const exporter = new InMemorySpanExporter()
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_ID = '00f067aa0ba902b7'

/** The finished spans of a session. */
const spansOf = (sessionId: string) => exporter.getFinishedSpans().filter((span) => span.attributes['websocket.session_id'] === sessionId)

test('a span per handler run, child of the handshake\'s traceparent, active while the handler runs', async (t) => {
  // With metrics on too: the handler runs are traced for both.
  const app = await build(t, { tracing: true, metrics: { registry: new Registry() }, heartbeatInterval: 0 })
  app.registerWebsocket('/ws', {
    onConnected () {},
    handleBinary () { throw new Error('thrown at once') },
    async onMessage (session, text: string) {
      await trace.getTracer('app').startActiveSpan('app work', async (span) => {
        await new Promise((resolve) => setImmediate(resolve))
        span.end()
      })
      if (text === 'fail') throw new Error('boom')
      session.send('done')
    }
  })
  const base = await listen(app)
  for (const how of ['header', 'query'] as const) {
    const traceparent = `00-${TRACE_ID}-${PARENT_ID}-01`
    const client = how === 'header'
      ? await connect(base, '/ws', { headers: { traceparent } })
      : await connect(base, `/ws?traceparent=${traceparent}`)
    await until(() => app.websocketSessions.size === 1)
    const [id] = app.websocketSessions.keys()
    client.send('hi')
    await client.texts(1)
    client.send('fail')
    await client.closed
    await until(() => spansOf(id!).length === 4 && app.websocketSessions.size === 0, 'connected, two messages and disconnected')
    const spans = spansOf(id!)
    t.same(spans.map((span) => span.name), ['websocket connected /ws', 'websocket message /ws', 'websocket message /ws', 'websocket disconnected /ws'], how)
    for (const span of spans) {
      t.equal(span.spanContext().traceId, TRACE_ID, `${how}: in the client's trace`)
      t.equal(span.parentSpanContext?.spanId, PARENT_ID, `${how}: child of its span`)
    }
    const [, ok, failed] = spans
    const work = exporter.getFinishedSpans().filter((span) => span.name === 'app work' && span.parentSpanContext?.spanId === ok!.spanContext().spanId)
    t.equal(work.length, 1, 'the app\'s span inside the handler is the handler span\'s child')
    t.equal(failed!.status.code, SpanStatusCode.ERROR, 'a handler that rejects: its span says so')
    t.equal(failed!.events[0]?.name, 'exception')
    t.ok(ok!.endTime[0] * 1e9 + ok!.endTime[1] >= ok!.startTime[0] * 1e9 + ok!.startTime[1], 'ended after it settled')
  }

  const plain = await connect(base, '/ws?traceparent=junk')
  plain.send('hi')
  await plain.texts(1)
  const [id] = app.websocketSessions.keys()
  const spans = spansOf(id!)
  t.equal(spans.length, 2)
  t.equal(spans[0]!.parentSpanContext, undefined, 'a malformed traceparent: a trace of its own')
  plain.send(Buffer.from('bytes'))
  t.equal((await plain.closed).code, 1011)
  await until(() => spansOf(id!).some((span) => span.name === 'websocket binary /ws'))
  const thrown = spansOf(id!).find((span) => span.name === 'websocket binary /ws')!
  t.equal(thrown.status.code, SpanStatusCode.ERROR, 'a handler that throws at once: its span says so')
})

redisTest('across two servers: the trace context rides in the cluster packet; the delivery span links to the sender\'s', async (t) => {
  const keyPrefix = uniquePrefix('tracing')
  const nodes = await Promise.all([0, 1].map(async () => {
    const app = Fastify()
    await app.register(websocketRooms, { tracing: true, heartbeatInterval: 0, adapter: redisAdapter({ url: REDIS_URL, keyPrefix }) })
    t.teardown(() => app.close())
    app.registerWebsocket('/ws', {
      onConnected (session) { session.room('lobby').join() },
      onMessage (session, text: string) { session.room('lobby').broadcastExcept(text) }
    })
    return { app, base: await listen(app) }
  }))
  const [a, b] = nodes as [typeof nodes[0], typeof nodes[0]]
  const sender = await connect(a.base, '/ws', { headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } })
  const receiver = await connect(b.base, '/ws')
  await until(() => a.app.websocketSessions.size === 1 && b.app.websocketSessions.size === 1)
  while (await a.app.websocketRooms.room('lobby').clusterMembers() < 2) await new Promise((resolve) => setImmediate(resolve))
  // A broadcast from outside any span (an HTTP route, a job): its packet carries no trace context.
  a.app.websocketRooms.room('lobby').broadcast('from a job')
  t.same(await receiver.texts(1), ['from a job'])
  t.equal(exporter.getFinishedSpans().filter((span) => span.name === 'websocket deliver').length, 0, 'no delivery span without a sending span')
  sender.send('across')
  t.same(await receiver.texts(2), ['from a job', 'across'])
  const [senderId] = a.app.websocketSessions.keys()
  await until(() => spansOf(senderId!).some((span) => span.name === 'websocket message /ws'))
  const handler = spansOf(senderId!).find((span) => span.name === 'websocket message /ws')!
  const delivery = exporter.getFinishedSpans().find((span) => span.name === 'websocket deliver' && span.attributes['websocket.room'] === 'lobby')
  t.ok(delivery, 'server B has a delivery span')
  t.same(delivery!.links.map((link) => [link.context.traceId, link.context.spanId]), [[TRACE_ID, handler.spanContext().spanId]], 'linked to the handler span that broadcast')
  t.notOk(delivery!.parentSpanContext, 'a root of its own, linked, not a child')
  await Promise.all([sender.close(), receiver.close()])
})

test('the cluster packet: the trace context is optional, and a packet without it is laid out as before', async (t) => {
  const encoded = encode('hello', 'message')
  const plain = encodeClusterMessage('node', encoded)
  t.same([...plain.subarray(0, 7)], [2, 0, 4, ...Buffer.from('node')], 'version 2, no flag, the id: as before')
  t.match(decodeClusterMessage(plain), { origin: 'node', encoded: { options: TEXT }, traceparent: null })
  t.equal(String(decodeClusterMessage(plain)!.encoded.data), 'hello')
  const traceparent = `00-${TRACE_ID}-${PARENT_ID}-01`
  const traced = encodeClusterMessage('node', encoded, traceparent)
  t.equal(traced[1], 0x02, 'the trace flag')
  t.equal(traced.length, plain.length + 1 + traceparent.length)
  t.match(decodeClusterMessage(traced), { origin: 'node', traceparent })
  t.equal(String(decodeClusterMessage(traced)!.encoded.data), 'hello')
  t.equal(decodeClusterMessage(traced.subarray(0, 9)), null, 'a trace context cut short: not ours')
  t.equal(decodeClusterMessage(Buffer.from([2, 0x04, 1, 65])), null, 'an unknown flag: not ours')
})

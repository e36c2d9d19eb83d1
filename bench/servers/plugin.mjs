// This plugin: every session joins room 'bench'; 'P…' is broadcast to the room but the
// sender, 'E…' is echoed. /ws has no schema; /ws-q validates ?user= with TypeBox before the
// upgrade (the handshake benchmark runs both). The heartbeat is off so no pings interfere,
// unless BENCH_HEARTBEAT says otherwise: 'default' (the option left out: 30 s) or an interval
// in ms (the idle benchmark, bench/idle.mjs).
// The JSON echo: /ws-json validates each message with schema.message and answers with
// sendJson (schema.outbound); /ws-json-hand does the same by hand, as an app without
// typed messages would: JSON.parse, a check of each field, JSON.stringify.
// /ws-publish is /ws with 'P…' sent by publishExcept() (history on), its position appended
// (',<offset>,<epoch>', which the load generator's parser stops before).
// /ws-request answers {"type":"echo","id","data"} with a reply through a message route
// (schema and reply schema), as /ws-json does with onMessage and sendJson. /ws-emit sends each
// 'P…' to the room as the event {"type":"said","data":{"text":"P…"}} with room.emitExcept(),
// /ws-emit-json the same object with broadcastExceptJson() and schema.outbound.
// BENCH_COMPRESSION=shared registers the plugin with compression: 'shared' (the compressed fan-out).
// BENCH_OBSERVE=metrics turns the metrics option on (a registry of its own, scraped every
// second as Prometheus would); BENCH_OBSERVE=tracing turns tracing on, with OpenTelemetry's
// SDK recording every span and exporting them in batches to nowhere.
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'
import { serve } from '../lib/serve.mjs'

const P = 0x50 // 'P'

const handlers = {
  onConnected (session) {
    session.room('bench').join()
  },
  handleText (session, text) {
    if (text.charCodeAt(0) === P) session.room('bench').broadcastExcept(text)
    else session.send(text)
  }
}

const Echo = Type.Object({ type: Type.Literal('echo'), client: Type.Integer(), seq: Type.Integer(), sent: Type.Number() })

const publishing = {
  onConnected (session) {
    session.room('bench').join()
  },
  handleText (session, text) {
    if (text.charCodeAt(0) === P) session.room('bench').publishExcept(({ offset, epoch }) => `${text},${offset},${epoch}`).catch(() => {})
    else session.send(text)
  }
}

const jsonEcho = {
  schema: { message: Echo, outbound: Echo },
  onMessage (session, message) {
    session.sendJson(message)
  }
}

const EchoData = Type.Object({ client: Type.Integer(), seq: Type.Integer(), sent: Type.Number() })
const request = {
  messages: {
    echo: { schema: EchoData, reply: EchoData, handler: (session, data) => data }
  }
}

const Said = Type.Object({ text: Type.String() })
const joining = (session) => { session.room('bench').join() }
const emitting = {
  events: { said: Said },
  onConnected: joining,
  handleText (session, text) {
    if (text.charCodeAt(0) === P) session.room('bench').emitExcept('said', { text })
    else session.send(text)
  }
}
const emittingJson = {
  schema: { outbound: Type.Object({ type: Type.String(), data: Said }) },
  onConnected: joining,
  handleText (session, text) {
    if (text.charCodeAt(0) === P) session.room('bench').broadcastExceptJson({ type: 'said', data: { text } })
    else session.send(text)
  }
}

const jsonEchoByHand = {
  onMessage (session, text) {
    let message
    try {
      message = JSON.parse(text)
    } catch {
      session.close(1007, 'invalid message')
      return
    }
    if (message === null || typeof message !== 'object' || message.type !== 'echo' ||
      !Number.isInteger(message.client) || !Number.isInteger(message.seq) || typeof message.sent !== 'number') {
      session.close(1007, 'invalid message')
      return
    }
    session.send(JSON.stringify({ type: message.type, client: message.client, seq: message.seq, sent: message.sent }))
  }
}

/** The options of BENCH_OBSERVE, and what it needs set up. */
async function observe (app) {
  if (process.env.BENCH_OBSERVE === 'metrics') {
    const { Registry } = await import('prom-client')
    const registry = new Registry()
    const scrape = setInterval(() => { registry.metrics().catch(() => {}) }, 1000)
    app.addHook('onClose', async () => clearInterval(scrape))
    return { metrics: { registry } }
  }
  if (process.env.BENCH_OBSERVE === 'tracing') {
    const { context, trace } = await import('@opentelemetry/api')
    const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks')
    const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    const nowhere = { export (spans, done) { done({ code: 0 }) }, shutdown: async () => {} }
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(nowhere)] }))
    return { tracing: true }
  }
  return {}
}

await serve(async () => {
  const app = Fastify({ logger: false })
  const heartbeat = process.env.BENCH_HEARTBEAT ?? '0'
  await app.register(websocketRooms, {
    ...await observe(app),
    ...(heartbeat === 'default' ? {} : { heartbeatInterval: Number(heartbeat) }),
    history: { size: 1000, ttl: 60_000 },
    compression: process.env.BENCH_COMPRESSION === 'shared' ? 'shared' : false
  })
  app.registerWebsocket('/ws', handlers)
  app.registerWebsocket('/ws-q', {
    ...handlers,
    schema: { querystring: Type.Object({ user: Type.String() }) }
  })
  app.registerWebsocket('/ws-publish', publishing)
  app.registerWebsocket('/ws-json', jsonEcho)
  app.registerWebsocket('/ws-json-hand', jsonEchoByHand)
  app.registerWebsocket('/ws-request', request)
  app.registerWebsocket('/ws-emit', emitting)
  app.registerWebsocket('/ws-emit-json', emittingJson)
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app.server.address().port
})

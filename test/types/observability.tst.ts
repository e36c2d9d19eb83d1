// Type tests (tstyche) of the observability options: metrics with prom-client's registries,
// tracing on or off.
import Fastify from 'fastify'
import { Registry, register } from 'prom-client'
import { test } from 'tstyche'
import websocketRooms from 'fastify-websocket-rooms'

const app = Fastify()

test('metrics: true, or a prom-client registry and a prefix', () => {
  app.register(websocketRooms, { metrics: true })
  app.register(websocketRooms, { metrics: { registry: new Registry(), prefix: 'chat_' } })
  app.register(websocketRooms, { metrics: { registry: register } })
  app.register(websocketRooms, { metrics: false })
  // @ts-expect-error: Type 'number' is not assignable to type 'string'
  app.register(websocketRooms, { metrics: { prefix: 1 } })
  // @ts-expect-error: Type '{}' is missing the following properties from type 'MetricsRegistry'
  app.register(websocketRooms, { metrics: { registry: {} } })
})

test('tracing: true or false', () => {
  app.register(websocketRooms, { tracing: true })
  app.register(websocketRooms, { tracing: false })
  // @ts-expect-error: Type 'string' is not assignable to type 'boolean | null | undefined'
  app.register(websocketRooms, { tracing: 'on' })
})

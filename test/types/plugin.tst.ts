// Type tests (tstyche) of the package's exports, the plugin options and the decorators the
// plugin adds to FastifyInstance. Run with `npm run test:types`; tsc checks this file too
// (npm run typecheck), so every `@ts-expect-error` must meet an error, and tstyche checks
// that it is the error named after it.
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import { expect, test } from 'tstyche'
import websocketRooms, {
  closeCodes,
  fastifyWebsocketRooms,
  type ServerRoom,
  type WebSocketSession,
  type WebsocketRooms,
  type WebsocketRoomsOptions,
  type WebsocketRoomsStats
} from 'fastify-websocket-rooms'
import websocketRoomsCjs = require('fastify-websocket-rooms')

const app = Fastify()

test('the default export, the named export and require() are the same plugin', () => {
  expect(websocketRooms).type.toBeAssignableTo<FastifyPluginAsync<WebsocketRoomsOptions>>()
  expect(fastifyWebsocketRooms).type.toBe<FastifyPluginAsync<WebsocketRoomsOptions>>()
  expect(websocketRoomsCjs.default).type.toBe<FastifyPluginAsync<WebsocketRoomsOptions>>()
  expect(websocketRoomsCjs.closeCodes).type.toBe(closeCodes)
})

test('closeCodes are literal types', () => {
  expect(closeCodes.NORMAL).type.toBe<1000>()
  expect(closeCodes.GOING_AWAY).type.toBe<1001>()
  expect(closeCodes.TRY_AGAIN_LATER).type.toBe<1013>()
  // @ts-expect-error: Cannot assign to 'NORMAL' because it is a read-only property
  closeCodes.NORMAL = 1000
})

test('app.register() takes the plugin with its options, and only known options of the right type', async () => {
  await app.register(websocketRooms)
  await app.register(websocketRooms, {})
  await app.register(websocketRooms, {
    maxPayload: 1024,
    heartbeatInterval: 0,
    closeTimeout: 1000,
    maxSessions: 10,
    maxRoomsPerSession: 5,
    maxRoomNameLength: 64,
    maxBackpressure: 1 << 20,
    backpressurePolicy: 'drop',
    maxQueuedMessages: 10,
    rateLimit: { max: 10, interval: 1000, policy: 'close' },
    allowedOrigins: ['https://app.example.com'],
    websocketOptions: { perMessageDeflate: true }
  })
  await app.register(websocketRooms, { rateLimit: false, allowedOrigins: (origin, request) => origin === request.hostname })
  await app.register(websocketRooms, { rateLimit: null, allowedOrigins: null })
  await app.register(websocketRooms, { allowedOrigins: async (origin) => origin.endsWith('.example.com') })
  await app.register(websocketRoomsCjs, { maxPayload: 1024 })
  await app.register(fastifyWebsocketRooms, { maxPayload: 1024 })
  await app.register(websocketRooms, { compression: 'shared', websocketOptions: { perMessageDeflate: { threshold: 512 } } })
  await app.register(websocketRooms, { compression: false })

  // @ts-expect-error: 'maxPayLoad' does not exist in type
  await app.register(websocketRooms, { maxPayLoad: 1024 })
  // @ts-expect-error: Type 'string' is not assignable to type 'number'
  await app.register(websocketRooms, { maxPayload: '1mb' })
  // @ts-expect-error: Type '"block"' is not assignable to type 'LimitPolicy | undefined'
  await app.register(websocketRooms, { backpressurePolicy: 'block' })
  // @ts-expect-error: Property 'interval' is missing
  await app.register(websocketRooms, { rateLimit: { max: 10 } })
  // @ts-expect-error: 'port' does not exist in type
  await app.register(websocketRooms, { websocketOptions: { port: 8080 } })
  // @ts-expect-error: Type 'true' is not assignable to type
  await app.register(websocketRooms, { compression: true })
})

test('decorators: registerWebsocket, websocketRooms and websocketSessions on FastifyInstance', () => {
  expect<FastifyInstance>().type.toHaveProperty('registerWebsocket')
  expect<FastifyInstance>().type.toHaveProperty('websocketRooms')
  expect<FastifyInstance>().type.toHaveProperty('websocketSessions')

  expect(app.websocketRooms).type.toBe<WebsocketRooms>()
  expect(app.websocketSessions).type.toBe<ReadonlyMap<string, WebSocketSession>>()
  expect(app.registerWebsocket('/ws', { onOpen () {} })).type.toBe<typeof app>()
})

test('registerWebsocket() is chainable and works in an encapsulated plugin', async () => {
  app.registerWebsocket('/a', { onOpen () {} }).registerWebsocket('/b', { onConnected () {} })
  await app.register(async (child) => {
    expect(child.registerWebsocket('/c', { onOpen () {} })).type.toBe<typeof child>()
  }, { prefix: '/child' })
})

test('registerWebsocket() refuses a path that is not a string, and a missing handlers object', () => {
  // @ts-expect-error: Argument of type 'number' is not assignable to parameter of type 'string'
  app.registerWebsocket(42, { onOpen () {} })
  // @ts-expect-error: Expected 2 arguments, but got 1
  app.registerWebsocket('/ws')
  expect(app.registerWebsocket).type.not.toBeCallableWith('/ws', null)
  expect(app.registerWebsocket).type.not.toBeCallableWith('/ws', 'onOpen')
})

test('app.websocketRooms: server-side rooms and stats', () => {
  const room = app.websocketRooms.room('news')
  expect(room).type.toBe<ServerRoom>()
  expect(room.members()).type.toBe<number>()
  expect(room.sessions()).type.toBe<WebSocketSession[]>()
  expect(room.getName()).type.toBe<string>()
  expect(room.broadcast('text')).type.toBe<void>()
  expect(room.broadcast(Buffer.from('binary'))).type.toBe<void>()
  expect(room.broadcast(new Uint8Array(2))).type.toBe<void>()
  expect(room.broadcast(new ArrayBuffer(2))).type.toBe<void>()
  expect(room.broadcast).type.not.toBeCallableWith({ type: 'json' })
  expect(room.broadcast).type.not.toBeCallableWith(42)
  expect(room).type.not.toHaveProperty('join') // the server is not a member: no join/leave
  expect(room).type.not.toHaveProperty('broadcastExcept')
  expect(app.websocketRooms.roomNames()).type.toBe<string[]>()
  expect(app.websocketRooms.stats()).type.toBe<WebsocketRoomsStats>()
  expect(app.websocketRooms.stats().dropped.backpressure).type.toBe<number>()
  expect(app.websocketRooms.room).type.not.toBeCallableWith(42)
})

test('app.websocketSessions: a read-only map of sessions', () => {
  const session = app.websocketSessions.get('id')
  expect(session).type.toBe<WebSocketSession | undefined>()
  session?.close(4000, 'kicked')
  expect(app.websocketSessions).type.not.toHaveProperty('set')
  expect(app.websocketSessions).type.not.toHaveProperty('delete')
  expect(app.websocketSessions).type.not.toHaveProperty('clear')
})

// Type tests (tstyche) of the AsyncAPI document: the `asyncapi` option and
// app.websocketRooms.asyncapi().
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import websocketRooms, { type AsyncApiDocument, type AsyncApiOptions, type WebsocketRoomsOptions } from 'fastify-websocket-rooms'

const app = Fastify()

test('the asyncapi option: a path to serve the document, and its info', async () => {
  await app.register(websocketRooms, { asyncapi: { path: '/asyncapi.json' } })
  await app.register(websocketRooms, { asyncapi: { path: '/asyncapi.json', info: { title: 'Chat', version: '2.0.0', description: 'Rooms', license: { name: 'MIT' }, 'x-audience': 'internal' } } })
  await app.register(websocketRooms, { asyncapi: { info: { title: 'Chat' } } })
  await app.register(websocketRooms, { asyncapi: null })
  expect<WebsocketRoomsOptions['asyncapi']>().type.toBe<AsyncApiOptions | null | undefined>()

  // @ts-expect-error: Type 'true' has no properties in common with type 'AsyncApiOptions'
  await app.register(websocketRooms, { asyncapi: true })
  // @ts-expect-error: Type 'number' is not assignable to type 'string'
  await app.register(websocketRooms, { asyncapi: { path: 42 } })
  // @ts-expect-error: 'pth' does not exist in type 'AsyncApiOptions'
  await app.register(websocketRooms, { asyncapi: { pth: '/asyncapi.json' } })
  // @ts-expect-error: 'licence' does not exist in type
  await app.register(websocketRooms, { asyncapi: { info: { licence: { name: 'MIT' } } } })
})

test('app.websocketRooms.asyncapi() returns the document', () => {
  const document = app.websocketRooms.asyncapi()
  expect(document).type.toBe<AsyncApiDocument>()
  expect(document.info.title).type.toBe<string>()
  expect(document.channels['chat']!.address).type.toBe<string>()
  expect(document.operations['chat.receive.chat.send']!.action).type.toBe<'send' | 'receive'>()
  expect(document.operations['x']!.reply).type.toBe<{ channel: { $ref: string }, messages: Array<{ $ref: string }> } | undefined>()
  expect(app.websocketRooms.asyncapi).type.not.toBeCallableWith('/asyncapi.json')
})

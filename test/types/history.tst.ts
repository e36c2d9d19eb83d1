// Type tests (tstyche) of history and recovery: the history option, publish()'s builder and
// the position it resolves with, recover(), history() and its query.
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import websocketRooms from 'fastify-websocket-rooms'
import type { HistoryMessage, RecoverResult, RoomHistory, StreamPosition } from 'fastify-websocket-rooms'

const app = Fastify()

test('the history option: sizes and times, true for the defaults, false for none', () => {
  app.register(websocketRooms, { history: { size: 1000, ttl: 300_000 } })
  app.register(websocketRooms, { history: { ttl: 60_000 } })
  app.register(websocketRooms, { history: true })
  app.register(websocketRooms, { history: false })
  // @ts-expect-error: Type 'string' is not assignable to type 'number'
  app.register(websocketRooms, { history: { size: '1000' } })
})

test('publish() builds the message with its position and resolves with it', async () => {
  const room = app.websocketRooms.room('chat')
  const position = await room.publish(({ offset, epoch }) => {
    expect(offset).type.toBe<number>()
    expect(epoch).type.toBe<string>()
    return JSON.stringify({ offset, epoch, text: 'hi' })
  })
  expect(position).type.toBe<StreamPosition>()
  await room.publish(() => Buffer.from('bytes'))
  // @ts-expect-error: Type '{ text: string; }' is not assignable to type 'Message'
  await room.publish(() => ({ text: 'hi' }))
  // @ts-expect-error: Argument of type 'string' is not assignable to parameter of type 'BuildPublished'
  await room.publish('hi')
})

test('a session recovers a room from a position, publishes and reads its history', () => {
  app.registerWebsocket('/ws', {
    async onOpen (session) {
      const result = await session.room('chat').recover({ offset: 41, epoch: 'x9f' })
      expect(result).type.toBe<RecoverResult>()
      expect(result.recovered).type.toBe<boolean>()
      expect(result.replayed).type.toBe<number>()
      // @ts-expect-error: Property 'epoch' is missing in type '{ offset: number; }' but required in type 'StreamPosition'
      await session.room('chat').recover({ offset: 41 })
      expect(await session.room('chat').publishExcept(({ offset }) => `${offset}`)).type.toBe<StreamPosition>()
      const history = await session.room('chat').history({ since: { offset: 3, epoch: 'x9f' }, limit: 50 })
      expect(history).type.toBe<RoomHistory>()
      expect(history.messages).type.toBe<HistoryMessage[]>()
      expect(history.messages[0]!.message).type.toBe<string | Buffer>()
      expect(history.epoch).type.toBe<string>()
      expect(history.offset).type.toBe<number>()
      expect(history.complete).type.toBe<boolean>()
      // @ts-expect-error: Type 'string' is not assignable to type 'number'
      await session.room('chat').history({ limit: '50' })
    }
  })
})

test('a server room reads its history; it has no recover(), which needs a session', async () => {
  const history = await app.websocketRooms.room('chat').history()
  expect(history.messages.map((m) => m.offset)).type.toBe<number[]>()
  expect(app.websocketRooms.room('chat')).type.not.toHaveProperty('recover')
})

// Type tests (tstyche) of presence and cluster-wide control: setPresence, presence(),
// onPresence's room and diff, nodeId, to(...).except(...), disconnectAll, disconnectSession.
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import websocketRooms from 'fastify-websocket-rooms'
import type { BroadcastTarget, PresenceDiff, PresenceEntry, RoomPresence, ServerRoom } from 'fastify-websocket-rooms'

const app = Fastify()

test('onPresence gets the room and its diff; presenceInterval is a number', () => {
  app.register(websocketRooms, {
    presenceInterval: 250,
    onPresence (room, diff) {
      expect(room).type.toBe<ServerRoom>()
      expect(diff).type.toBe<PresenceDiff>()
      expect(diff.joins).type.toBe<PresenceEntry[]>()
      room.broadcastJson({ type: 'presence', ...diff })
    }
  })
  // @ts-expect-error: Type 'string' is not assignable to type 'number'
  app.register(websocketRooms, { presenceInterval: '250' })
})

test('onRoomOccupied and onRoomVacated get the room', () => {
  app.register(websocketRooms, {
    onRoomOccupied (room) { expect(room).type.toBe<ServerRoom>() },
    async onRoomVacated (room) { expect(room.getName()).type.toBe<string>() }
  })
})

test('setPresence takes any value; presence() lists entries with their node', () => {
  app.registerWebsocket('/ws', {
    async onOpen (session) {
      session.setPresence({ user: 'ann', status: 'typing' })
      const presence = await session.room('lobby').presence()
      expect(presence).type.toBe<RoomPresence>()
      expect(presence.members[0]!.sessionId).type.toBe<string>()
      expect(presence.members[0]!.nodeId).type.toBe<string>()
      expect(presence.members[0]!.info).type.toBe<unknown>()
      expect(presence.complete).type.toBe<boolean>()
    }
  })
  expect(app.websocketRooms.room('lobby').presence()).type.toBe<Promise<RoomPresence>>()
  expect(app.websocketRooms.nodeId).type.toBe<string>()
})

test('to(...).except(...) broadcasts; disconnectAll and disconnectSession resolve once sent', () => {
  expect(app.websocketRooms.to(['a', 'b'])).type.toBe<BroadcastTarget>()
  expect(app.websocketRooms.to('a').except(['muted']).broadcast('hi')).type.toBe<void>()
  app.websocketRooms.to('a').broadcastJson({ any: 'value' })
  expect(app.websocketRooms.room('match').disconnectAll(4000, 'match over')).type.toBe<Promise<void>>()
  expect(app.websocketRooms.disconnectSession('id', 4001, 'kicked')).type.toBe<Promise<void>>()
  // @ts-expect-error: Argument of type 'number' is not assignable to parameter of type 'string'
  app.websocketRooms.disconnectSession(42)
})

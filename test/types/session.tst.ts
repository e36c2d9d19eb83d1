// Type tests (tstyche) of the session: session.query, session.headers and session.params
// inferred from the route's TypeBox schemas, and every member of the session and its rooms.
import type { IncomingHttpHeaders } from 'node:http'
import { Type } from '@sinclair/typebox'
import Fastify, { type FastifyBaseLogger, type FastifyRequest } from 'fastify'
import { expect, test } from 'tstyche'
import type { RawWebSocket, WebSocketRoom, WebSocketSession } from 'fastify-websocket-rooms'

const app = Fastify()

test('session.query, headers and params are inferred from the TypeBox schemas', () => {
  app.registerWebsocket('/ws/:room', {
    schema: {
      querystring: Type.Object({ user: Type.String(), limit: Type.Optional(Type.Integer()) }),
      headers: Type.Object({ authorization: Type.String(), 'x-client': Type.Optional(Type.Literal('web')) }),
      params: Type.Object({ room: Type.String() })
    },
    onOpen (session) {
      expect(session.query).type.toBe<{ user: string, limit?: number }>()
      expect(session.query.user).type.toBe<string>()
      expect(session.query.limit).type.toBe<number | undefined>()
      expect(session.headers).type.toBe<{ authorization: string, 'x-client'?: 'web' }>()
      expect(session.params).type.toBe<{ room: string }>()
      expect(session.query).type.not.toHaveProperty('room')
      // @ts-expect-error: Property 'usr' does not exist on type
      session.log.info(session.query.usr)
    },
    // Every handler gets the same typed session.
    onMessage (session, message) {
      expect(session.query.user).type.toBe<string>()
      session.send(`${session.query.user}: ${message}`)
    },
    onClose (session) {
      expect(session.params.room).type.toBe<string>()
    }
  })
})

test('a schema for one part leaves the others with their defaults', () => {
  app.registerWebsocket('/ws', {
    schema: { querystring: Type.Object({ token: Type.String() }) },
    onConnected (session) {
      expect(session.query).type.toBe<{ token: string }>()
      expect(session.headers).type.toBe<IncomingHttpHeaders>()
      expect(session.params).type.toBe<Record<string, string>>()
    }
  })
})

test('without schemas: loose defaults', () => {
  app.registerWebsocket('/ws', {
    onConnected (session) {
      expect(session.query).type.toBe<Record<string, unknown>>()
      expect(session.headers).type.toBe<IncomingHttpHeaders>()
      expect(session.params).type.toBe<Record<string, string>>()
    }
  })
})

test('a plain JSON schema (not TypeBox) is accepted, and leaves the loose default', () => {
  app.registerWebsocket('/ws', {
    schema: { querystring: { type: 'object', properties: { user: { type: 'string' } }, required: ['user'] } },
    onConnected (session) {
      expect(session.query).type.toBe<Record<string, unknown>>()
    }
  })
})

test('the schema types the session of a handler given as a variable too', () => {
  const querystring = Type.Object({ name: Type.String() })
  app.registerWebsocket('/ws', {
    schema: { querystring },
    onConnected: (session: WebSocketSession<{ name: string }>) => { session.send(session.query.name) }
  })
  app.registerWebsocket('/ws', {
    schema: { querystring },
    // @ts-expect-error: Type '(session: WebSocketSession<{ id: number; }>) => void' is not assignable to type '(session: WebSocketSession<{ name: string; }, ...>) => unknown'
    onConnected: (session: WebSocketSession<{ id: number }>) => { session.send(String(session.query.id)) }
  })
})

test('session members, under both names (writeText/writeData and send...)', () => {
  const session = {} as WebSocketSession
  expect(session.id).type.toBe<string>()
  expect(session.request).type.toBe<FastifyRequest>()
  expect(session.log).type.toBe<FastifyBaseLogger>()
  expect(session.bufferedAmount).type.toBe<number>()
  expect(session.socket).type.toBe<RawWebSocket>()
  // @ts-expect-error: Cannot assign to 'socket' because it is a read-only property
  session.socket = {} as RawWebSocket
  expect(session.writeText('text')).type.toBe<void>()
  expect(session.writeData(Buffer.from('data'))).type.toBe<void>()
  expect(session.writeData(new Uint8Array(1))).type.toBe<void>()
  expect(session.writeData(new ArrayBuffer(1))).type.toBe<void>()
  expect(session.send('text')).type.toBe<void>()
  expect(session.send(Buffer.from('data'))).type.toBe<void>()
  expect(session.close()).type.toBe<void>()
  expect(session.close(4000)).type.toBe<void>()
  expect(session.close(4000, 'kicked')).type.toBe<void>()
  expect(session.terminate()).type.toBe<void>()
  expect(session.isOpen()).type.toBe<boolean>()
  expect(session.getParameter('user')).type.toBe<string | null>()
  expect(session.getHeader('authorization')).type.toBe<string | null>()
  expect(session.getRequestPath()).type.toBe<string>()
  expect(session.getRemoteAddr()).type.toBe<string>()
  expect(session.setAttribute('user', { id: 1 })).type.toBe<void>()
  expect(session.getAttribute<{ id: number }>('user')).type.toBe<{ id: number } | undefined>()
  expect(session.getAttributes()).type.toBe<Record<string, any>>()
  expect(session.room('lobby')).type.toBe<WebSocketRoom>()
  expect(session.roomNames()).type.toBe<string[]>()

  expect(session.writeText).type.not.toBeCallableWith(Buffer.from('data'))
  expect(session.writeData).type.not.toBeCallableWith('text')
  expect(session.send).type.not.toBeCallableWith({ type: 'json' })
  expect(session.close).type.not.toBeCallableWith('1000')
  expect(session.close).type.not.toBeCallableWith(1000, 42)
  expect(session.getParameter).type.not.toBeCallableWith()
  expect(session.room).type.not.toBeCallableWith(42)
  expect(session.setAttribute).type.not.toBeCallableWith(1, 'value')
  // @ts-expect-error: Cannot assign to 'id' because it is a read-only property
  session.id = 'mine'
  // @ts-expect-error: Cannot assign to 'query' because it is a read-only property
  session.query = {}
})

test('rooms as a session sees them', () => {
  const room = ({} as WebSocketSession).room('lobby')
  expect(room.join()).type.toBe<WebSocketRoom>()
  expect(room.leave()).type.toBe<WebSocketRoom>()
  expect(room.join().broadcastExcept('hi')).type.toBe<void>()
  expect(room.broadcast('hi')).type.toBe<void>()
  expect(room.broadcast(Buffer.from('hi'))).type.toBe<void>()
  expect(room.members()).type.toBe<number>()
  expect(room.has()).type.toBe<boolean>()
  expect(room.getName()).type.toBe<string>()
  expect(room.broadcast).type.not.toBeCallableWith({ type: 'json' })
  expect(room.broadcastExcept).type.not.toBeCallableWith()
  expect(room.join).type.not.toBeCallableWith('another')
})

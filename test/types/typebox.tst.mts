// Type tests (tstyche) of schemas written with TypeBox 1.x (the `typebox` package, which
// @fastify/type-provider-typebox 6 uses): session.query, session.headers and session.params
// are inferred as with @sinclair/typebox 0.3x (test/types/session.tst.ts). An ES module,
// because `typebox` 1.x is one.
import type { IncomingHttpHeaders } from 'node:http'
import Fastify from 'fastify'
import { Type } from 'typebox'
import { Type as LegacyType } from '@sinclair/typebox'
import { expect, test } from 'tstyche'
import type { WebSocketSession } from 'fastify-websocket-rooms'

const app = Fastify()

test('TypeBox 1.x: session.query, headers and params are inferred from the schemas', () => {
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
    onMessage (session, message) {
      const user: string = session.query.user
      session.send(`${user}: ${message}`)
    }
  })
})

test('TypeBox 1.x: a schema for one part leaves the others with their defaults', () => {
  app.registerWebsocket('/ws', {
    schema: { querystring: Type.Object({ token: Type.String() }) },
    onConnected (session) {
      expect(session.query).type.toBe<{ token: string }>()
      expect(session.headers).type.toBe<IncomingHttpHeaders>()
      expect(session.params).type.toBe<Record<string, string>>()
    }
  })
})

test('TypeBox 1.x: Type.Unknown() and Type.Any() leave the loose default', () => {
  app.registerWebsocket('/ws', {
    schema: { querystring: Type.Unknown(), params: Type.Any() },
    onConnected (session) {
      expect(session.query).type.toBe<Record<string, unknown>>()
      expect(session.params).type.toBe<Record<string, string>>()
    }
  })
})

test('TypeBox 1.x: a handler typed for another query is refused', () => {
  app.registerWebsocket('/ws', {
    schema: { querystring: Type.Object({ name: Type.String() }) },
    onConnected: (session: WebSocketSession<{ name: string }>) => { session.send(session.query.name) }
  })
  app.registerWebsocket('/ws', {
    schema: { querystring: Type.Object({ name: Type.String() }) },
    // @ts-expect-error: Type '(session: WebSocketSession<{ id: number; }>) => void' is not assignable
    onConnected: (session: WebSocketSession<{ id: number }>) => { session.send(String(session.query.id)) }
  })
})

test('both TypeBox lines in one route: each part from its own schema', () => {
  app.registerWebsocket('/ws/:id', {
    schema: {
      querystring: Type.Object({ user: Type.String() }),
      params: LegacyType.Object({ id: LegacyType.String() })
    },
    onConnected (session) {
      expect(session.query).type.toBe<{ user: string }>()
      expect(session.params).type.toBe<{ id: string }>()
    }
  })
})

test('route hooks see the request typed by TypeBox 1.x schemas', () => {
  app.registerWebsocket('/ws/:room', {
    schema: {
      querystring: Type.Object({ token: Type.String() }),
      headers: Type.Object({ cookie: Type.String() }),
      params: Type.Object({ room: Type.String() })
    },
    preValidation: async (request) => {
      expect(request.query).type.toBe<{ token: string }>()
      expect(request.params).type.toBe<{ room: string }>()
      expect(request.headers.cookie).type.toBe<string>()
    },
    onOpen () {}
  })
})

test('TypeBox 1.x: messages and outbound values are typed as with 0.3x, and a union narrows', () => {
  app.registerWebsocket('/ws', {
    schema: {
      message: Type.Union([
        Type.Object({ type: Type.Literal('say'), text: Type.String() }),
        Type.Object({ type: Type.Literal('join'), room: Type.String() })
      ]),
      outbound: Type.Object({ type: Type.String(), text: Type.String() })
    },
    onMessage (session, message) {
      expect(message).type.toBe<{ type: 'say', text: string } | { type: 'join', room: string }>()
      if (message.type === 'say') session.sendJson({ type: 'said', text: message.text })
      else session.room(message.room).broadcastJson({ type: 'joined', text: message.room })
      // @ts-expect-error: Property 'text' is missing
      session.sendJson({ type: 'said' })
    }
  })
})

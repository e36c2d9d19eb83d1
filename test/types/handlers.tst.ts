// Type tests (tstyche) of the handlers object of registerWebsocket(): every handler's
// parameters under both of its names (onConnected/onOpen...), route hooks and limits, a module namespace,
// and the compile errors a wrong name or a wrong argument type must give.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { expect, test } from 'tstyche'
import type { SessionHandlers, WebSocketSession, WebsocketHandlers } from 'fastify-websocket-rooms'
import * as chat from './fixtures/chat'
import * as badChat from './fixtures/bad-chat'

// Route config is typed by augmenting FastifyContextConfig, as with any Fastify route.
declare module 'fastify' {
  interface FastifyContextConfig { audit?: boolean }
}

const app = Fastify()

/** The session of a route without schemas. */
type Session = WebSocketSession<Record<string, unknown>, import('node:http').IncomingHttpHeaders, Record<string, string>>

test('onConnected, handleText, handleBinary, onPong, onDisconnected: every parameter is typed', () => {
  app.registerWebsocket('/ws', {
    onConnected (session) {
      expect(session).type.toBe<Session>()
    },
    handleText (session, text) {
      expect(session).type.toBe<Session>()
      expect(text).type.toBe<string>()
    },
    handleBinary (session, data) {
      expect(session).type.toBe<Session>()
      expect(data).type.toBe<Buffer>()
    },
    onPong (session) {
      expect(session).type.toBe<Session>()
    },
    onDisconnected (session, code, reason) {
      expect(session).type.toBe<Session>()
      expect(code).type.toBe<number>()
      expect(reason).type.toBe<string>()
    },
    onError (session, error) {
      expect(session).type.toBe<Session>()
      expect(error).type.toBe<Error>()
    },
    onBackpressure (session, bufferedAmount) {
      expect(session).type.toBe<Session>()
      expect(bufferedAmount).type.toBe<number>()
    }
  })
})

test('onOpen, onMessage, onClose (aliases): every parameter is typed', () => {
  app.registerWebsocket('/ws', {
    onOpen (session) {
      expect(session).type.toBe<Session>()
    },
    onMessage (session, message) {
      expect(session).type.toBe<Session>()
      expect(message).type.toBe<string>()
    },
    onClose (session, code, reason) {
      expect(session).type.toBe<Session>()
      expect(code).type.toBe<number>()
      expect(reason).type.toBe<string>()
    }
  })
})

test('arrow functions, fewer parameters, and async handlers', () => {
  app.registerWebsocket('/ws', {
    onConnected: (session) => { session.writeText('hi') },
    handleText: async (session, text) => {
      await Promise.resolve()
      session.writeText(text)
    },
    onDisconnected: () => {}
  })
  app.registerWebsocket('/ws', {
    async onOpen (session) { return session.id },
    onClose: async (session, code) => { session.log.info({ code }) }
  })
})

test('route hooks and route options are typed as Fastify types them', () => {
  app.registerWebsocket('/ws', {
    onRequest: async (request, reply) => {
      expect(request).type.toBeAssignableTo<FastifyRequest>()
      expect(reply).type.toBeAssignableTo<FastifyReply>()
    },
    preValidation: [async (request) => { request.log.info('checking') }],
    preHandler (request, reply, done) { done() },
    config: { audit: true },
    logLevel: 'warn',
    onOpen () {}
  })
  app.registerWebsocket('/ws', {
    // @ts-expect-error: Type 'string' is not assignable to type
    preValidation: 'check the token',
    onOpen () {}
  })
})

test('route limits are typed', () => {
  app.registerWebsocket('/ws', {
    maxBackpressure: 1024,
    backpressurePolicy: 'drop',
    maxQueuedMessages: 5,
    rateLimit: { max: 5, interval: 1000, policy: 'drop' },
    allowedOrigins: ['https://app.example.com'],
    onOpen () {}
  })
  app.registerWebsocket('/ws', {
    // @ts-expect-error: Type '"ignore"' is not assignable to type 'LimitPolicy | undefined'
    backpressurePolicy: 'ignore',
    onOpen () {}
  })
})

test('a module namespace is accepted as handlers, and spread with route options', async () => {
  app.registerWebsocket('/ws/chat', chat)
  app.registerWebsocket('/ws/chat', { ...chat, maxQueuedMessages: 10 })
  const imported = await import('./fixtures/chat.js')
  app.registerWebsocket('/ws/chat', imported)
  expect(app.registerWebsocket).type.toBeCallableWith('/ws/chat', chat)
  expect(app.registerWebsocket).type.toBeCallableWith('/ws/chat', imported)
})

test('a module typed with the default session goes with a route schema (the chat example)', () => {
  app.registerWebsocket('/ws/chat', {
    ...chat,
    schema: { querystring: Type.Object({ user: Type.String({ minLength: 1 }), room: Type.Optional(Type.String()) }) }
  })
  app.registerWebsocket('/ws/chat', {
    ...chat,
    schema: { headers: Type.Object({ authorization: Type.String() }), params: Type.Object({ id: Type.String() }) }
  })
})

test('a module whose handlers expect a query the schema does not give is refused', () => {
  app.registerWebsocket('/ws', {
    onOpen: (session: WebSocketSession<{ user: string }>) => { session.send(session.query.user) },
    schema: { querystring: Type.Object({ user: Type.String() }) }
  })
  app.registerWebsocket('/ws', {
    // @ts-expect-error: Type '(session: WebSocketSession<{ user: string; }>) => void' is not assignable to type '(session: WebSocketSession<Record<string, unknown>, ...>) => unknown'
    onOpen: (session: WebSocketSession<{ user: string }>) => { session.send(session.query.user) }
  })
})

test('a module whose handler has a wrong parameter type is refused', () => {
  // @ts-expect-error: Types of parameters 'message' and 'message' are incompatible
  app.registerWebsocket('/ws/chat', badChat)
  expect(app.registerWebsocket).type.not.toBeCallableWith('/ws/chat', badChat)
})

test('handlers typed ahead of time: WebsocketHandlers and SessionHandlers', () => {
  const handlers: WebsocketHandlers = {
    onOpen (session) { expect(session).type.toBe<Session>() },
    onMessage (session, message) { session.send(message) }
  }
  app.registerWebsocket('/ws', handlers)

  const sessionHandlers: SessionHandlers<WebSocketSession> = { onConnected (session) { session.writeText('hi') } }
  app.registerWebsocket('/ws', sessionHandlers)
})

test('a misspelt handler name is a compile error', () => {
  // @ts-expect-error: 'onConect' does not exist in type
  app.registerWebsocket('/ws', { onConect () {} })
  app.registerWebsocket('/ws', {
    onOpen () {},
    // @ts-expect-error: 'onmessage' does not exist in type
    onmessage () {}
  })
  app.registerWebsocket('/ws', {
    onConnected () {},
    // @ts-expect-error: 'handleBinery' does not exist in type
    handleBinery () {}
  })
  // An object that is not a literal: the weak type check still refuses one with no known key.
  const typo = { onConect () {} }
  // @ts-expect-error: has no properties in common with type
  app.registerWebsocket('/ws', typo)
  expect(app.registerWebsocket).type.not.toBeCallableWith('/ws', { onConect () {} })
})

test('a handler with a wrong argument type is a compile error', () => {
  app.registerWebsocket('/ws', {
    // @ts-expect-error: Type '(session: ..., text: number) => void' is not assignable to type '(session: ..., text: string) => unknown'
    handleText (session, text: number) { session.writeText(String(text)) }
  })
  app.registerWebsocket('/ws', {
    // @ts-expect-error: Type '(session: ..., data: string) => void' is not assignable to type '(session: ..., data: Buffer<ArrayBufferLike>) => unknown'
    handleBinary (session, data: string) { session.writeText(data) }
  })
  app.registerWebsocket('/ws', {
    // @ts-expect-error: reason: number) => void' is not assignable to type '(session: ..., code: number, reason: string) => unknown'
    onClose (session, code: number, reason: number) { session.log.info({ code, reason }) }
  })
  app.registerWebsocket('/ws', {
    // @ts-expect-error: Type 'string' is not assignable to type
    onOpen: 'welcome'
  })
  app.registerWebsocket('/ws', {
    // @ts-expect-error: Type '(session: ..., extra: string) => void' is not assignable to type '(session: ...) => unknown'
    onConnected (session: WebSocketSession, extra: string) { session.writeText(extra) }
  })
  expect(app.registerWebsocket).type.not.toBeCallableWith('/ws', { handleText (session: WebSocketSession, text: number) { return [session, text] } })
})

test('handlers use the session in their body as it is typed', () => {
  app.registerWebsocket('/ws', {
    handleText (session, text) {
      // @ts-expect-error: Argument of type 'number' is not assignable to parameter of type 'string'
      session.writeText(text.length)
      // @ts-expect-error: Argument of type '"message"' is not assignable to parameter of type 'never'
      session.emit('message', text)
    }
  })
})

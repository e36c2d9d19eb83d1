// Type tests (tstyche) of typed messages: the handler's message is the value schema.message
// describes (a union narrows on its tag), onInvalidMessage's error, sendJson/broadcastJson
// typed by schema.outbound, and plain JSON schemas through the instance's type provider.
import Fastify, { type FastifyTypeProvider } from 'fastify'
import { Type } from '@sinclair/typebox'
import { expect, test } from 'tstyche'
import type { MessageValidationError, WebSocketRoom, WebsocketHandlers } from 'fastify-websocket-rooms'

const app = Fastify()

const Chat = Type.Union([
  Type.Object({ type: Type.Literal('say'), text: Type.String() }),
  Type.Object({ type: Type.Literal('join'), room: Type.String() })
])
const Said = Type.Object({ type: Type.String(), from: Type.String(), text: Type.String() })

test('onMessage and handleText get the value schema.message describes; a union narrows on its tag', () => {
  app.registerWebsocket('/ws', {
    schema: { message: Chat },
    onMessage (_session, message) {
      expect(message).type.toBe<{ type: 'say', text: string } | { type: 'join', room: string }>()
      if (message.type === 'say') {
        expect(message.text).type.toBe<string>()
        expect(message).type.not.toHaveProperty('room')
      } else {
        expect(message.room).type.toBe<string>()
      }
    }
  })
  app.registerWebsocket('/ws', {
    schema: { message: Type.Object({ n: Type.Integer() }) },
    handleText (_session, text) {
      expect(text).type.toBe<{ n: number }>()
    }
  })
})

test('without schema.message, the handler gets the text', () => {
  app.registerWebsocket('/ws', {
    schema: { querystring: Type.Object({ user: Type.String() }) },
    onMessage (_session, message) {
      expect(message).type.toBe<string>()
    }
  })
})

test('a plain JSON schema without a type provider types the message as unknown', () => {
  app.registerWebsocket('/ws', {
    schema: { message: { type: 'object', properties: { n: { type: 'integer' } } } },
    onMessage (_session, message) {
      expect(message).type.toBe<unknown>()
    }
  })
})

test('onInvalidMessage gets the error in Fastify\'s validation shape and the text', () => {
  app.registerWebsocket('/ws', {
    schema: { message: Chat },
    onMessage () {},
    onInvalidMessage (session, error, text) {
      expect(error).type.toBe<MessageValidationError>()
      expect(error.validationContext).type.toBe<'message'>()
      expect(error.code).type.toBe<string>()
      expect(text).type.toBe<string>()
      session.close(1007, 'bad')
    }
  })
})

test('sendJson, broadcastJson and broadcastExceptJson take what schema.outbound describes', () => {
  app.registerWebsocket('/ws', {
    schema: { message: Chat, outbound: Said },
    onMessage (session, message) {
      expect(session.room('lobby')).type.toBe<WebSocketRoom<{ type: string, from: string, text: string }>>()
      if (message.type !== 'say') return
      session.sendJson({ type: 'said', from: 'ann', text: message.text })
      session.room('lobby').broadcastJson({ type: 'said', from: 'ann', text: message.text })
      session.room('lobby').broadcastExceptJson({ type: 'said', from: 'ann', text: message.text })
      // @ts-expect-error: Property 'from' is missing
      session.sendJson({ type: 'said', text: message.text })
      // @ts-expect-error: Type 'number' is not assignable to type 'string'
      session.room('lobby').broadcastJson({ type: 'said', from: 'ann', text: 42 })
    }
  })
})

test('without schema.outbound, sendJson and broadcastJson take any value', () => {
  app.registerWebsocket('/ws', {
    onOpen (session) {
      expect(session.sendJson).type.toBe<(value: unknown) => void>()
      session.sendJson({ anything: [1, 'two'] })
      session.room('lobby').broadcastJson('text')
    }
  })
  app.websocketRooms.room('lobby').broadcastJson({ from: 'server' })
})

/** A type provider that reads a tiny subset of JSON schema, as json-schema-to-ts would. */
interface TinyProvider extends FastifyTypeProvider {
  validator: this['schema'] extends { properties: { text: { type: 'string' } } } ? { text: string } : unknown
  serializer: this['schema'] extends { properties: { echo: { type: 'string' } } } ? { echo: string } : unknown
}

test('plain JSON schemas are typed through the instance\'s type provider', () => {
  app.withTypeProvider<TinyProvider>().registerWebsocket('/ws', {
    schema: {
      message: { type: 'object', properties: { text: { type: 'string' } } } as const,
      outbound: { type: 'object', properties: { echo: { type: 'string' } } } as const
    },
    onMessage (session, message) {
      expect(message).type.toBe<{ text: string }>()
      session.sendJson({ echo: message.text })
      // @ts-expect-error: Object literal may only specify known properties
      session.sendJson({ echo: message.text, extra: 1 })
    }
  })
})

test('route-level validatorCompiler and serializerCompiler are accepted', () => {
  app.registerWebsocket('/ws', {
    schema: { message: Chat },
    validatorCompiler: () => () => true,
    serializerCompiler: () => (value) => JSON.stringify(value),
    onMessage () {}
  })
})

test('handlers typed ahead: a message schema needs its type as a parameter', () => {
  const typed: WebsocketHandlers<unknown, unknown, unknown, typeof Chat> = {
    schema: { message: Chat },
    onMessage (_session, message) {
      expect(message).type.toBe<{ type: 'say', text: string } | { type: 'join', room: string }>()
    }
  }
  app.registerWebsocket('/ws', typed)
  const untyped: WebsocketHandlers = {
    // @ts-expect-error: Type 'TUnion<[TObject<{ type: TLiteral<"say">; text: TString; }>, TObject<{ type: TLiteral<"join">; room: TString; }>]>' is not assignable to type 'undefined'
    schema: { message: Chat },
    onMessage (_session, text) { expect(text).type.toBe<string>() }
  }
  app.registerWebsocket('/ws', untyped)
})

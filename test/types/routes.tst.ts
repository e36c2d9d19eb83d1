// Type tests (tstyche) of message routes: each type's data typed from its schema, the
// handler's return from its reply schema, emit() and ask() held to the route's events, and the
// errors a wrong event type, wrong data or a reply of the wrong shape give. TypeBox 1.x:
// test/types/routes-typebox.tst.mts.
import Fastify, { type FastifyTypeProvider } from 'fastify'
import { Type } from '@sinclair/typebox'
import { expect, test } from 'tstyche'
import type { BroadcastTarget, ServerRoom, WebSocketRoom } from 'fastify-websocket-rooms'

const app = Fastify()
const Said = Type.Object({ from: Type.String(), text: Type.String() })

test('each message type\'s data is what its schema describes; the handler returns its reply', () => {
  app.registerWebsocket('/ws', {
    schema: { querystring: Type.Object({ user: Type.String() }) },
    messages: {
      'chat.send': {
        schema: Type.Object({ room: Type.String(), text: Type.String({ maxLength: 2000 }) }),
        reply: Type.Object({ offset: Type.Integer() }),
        async handler (session, data) {
          expect(data).type.toBe<{ room: string, text: string }>()
          expect(session.query).type.toBe<{ user: string }>()
          return { offset: 1 }
        }
      },
      'room.join': {
        schema: Type.Object({ room: Type.String() }),
        handler (session, data) {
          expect(data).type.toBe<{ room: string }>()
          session.room(data.room).join()
        }
      },
      ping: {
        handler (_session, data) {
          expect(data).type.toBe<unknown>()
          return 'anything without a reply schema'
        }
      }
    },
    events: { 'chat.message': Said },
    onOpen (session) { session.emit('chat.message', { from: 'server', text: 'welcome' }) }
  })
})

test('a reply of the wrong shape is an error', () => {
  app.registerWebsocket('/ws', {
    messages: {
      count: {
        schema: Type.Object({ n: Type.Integer() }),
        reply: Type.Object({ total: Type.Integer() }),
        // @ts-expect-error: Type 'string' is not assignable to type 'number'
        handler (_session, data) { return { total: String(data.n) } }
      }
    }
  })
  app.registerWebsocket('/ws', {
    messages: {
      count: {
        reply: Type.Object({ total: Type.Integer() }),
        // @ts-expect-error: Property 'total' is missing
        async handler () { return {} }
      }
    }
  })
})

test('preHandler gets the data, as a function or an array', () => {
  app.registerWebsocket('/ws', {
    messages: {
      one: {
        schema: Type.Object({ room: Type.String() }),
        preHandler (_session, data) { expect(data).type.toBe<{ room: string }>() },
        handler () {}
      },
      two: {
        schema: Type.Object({ n: Type.Number() }),
        preHandler: [async (_session, data) => { expect(data).type.toBe<{ n: number }>() }],
        handler () {}
      }
    }
  })
})

test('emit() takes a type of the route\'s events and that event\'s data; ask() too', () => {
  app.registerWebsocket('/ws', {
    events: { said: Said, tick: Type.Object({ n: Type.Integer() }) },
    messages: { x: { handler () {} } },
    async onOpen (session) {
      session.emit('said', { from: 'a', text: 'b' })
      session.emit('tick', { n: 1 })
      // @ts-expect-error: Argument of type '"sad"' is not assignable to parameter of type 'EventType<{ said: { from: string; text: string; }; tick: { n: number; }; }>'
      session.emit('sad', { from: 'a', text: 'b' })
      // @ts-expect-error: Type 'number' is not assignable to type 'string'
      session.emit('said', { from: 'a', text: 1 })
      // @ts-expect-error: Object literal may only specify known properties
      session.emit('tick', { n: 1, extra: true })
      const room = session.room('lobby')
      expect(room).type.toBe<WebSocketRoom<unknown, { said: { from: string, text: string }, tick: { n: number } }>>()
      room.emit('tick', { n: 2 })
      room.emitExcept('said', { from: 'a', text: 'b' })
      // @ts-expect-error: Argument of type '"tock"' is not assignable to parameter of type 'EventType<{ said: { from: string; text: string; }; tick: { n: number; }; }>'
      room.emitExcept('tock', { n: 1 })
      expect(await session.ask('tick', { n: 3 }, { timeout: 1000 })).type.toBe<unknown>()
      // @ts-expect-error: Argument of type '"tock"' is not assignable to parameter of type 'EventType<{ said: { from: string; text: string; }; tick: { n: number; }; }>'
      await session.ask('tock', { n: 3 })
    }
  })
})

test('a route without events has nothing to emit', () => {
  app.registerWebsocket('/ws', {
    onOpen (session) {
      // @ts-expect-error: Argument of type '"said"' is not assignable to parameter of type 'never'
      session.emit('said', { from: 'a', text: 'b' })
    }
  })
})

test('server-side emits take any event type of the routes', () => {
  expect(app.websocketRooms.room('lobby')).type.toBe<ServerRoom>()
  app.websocketRooms.room('lobby').emit('said', { from: 'server', text: 'hi' })
  expect(app.websocketRooms.to('a').except('b')).type.toBe<BroadcastTarget>()
  app.websocketRooms.to('a').except('b').emit('said', { from: 'server', text: 'hi' })
})

test('the envelope takes the three field names', () => {
  app.registerWebsocket('/ws', {
    envelope: { type: 't', id: 'i', data: 'd' },
    messages: { x: { handler () {} } }
  })
  app.registerWebsocket('/ws', {
    // @ts-expect-error: Object literal may only specify known properties
    envelope: { kind: 't' },
    messages: { x: { handler () {} } }
  })
})

/** A type provider that reads a tiny subset of JSON schema, as json-schema-to-ts would. */
interface TinyProvider extends FastifyTypeProvider {
  validator: this['schema'] extends { properties: { text: { type: 'string' } } } ? { text: string } : unknown
  serializer: this['schema'] extends { properties: { echo: { type: 'string' } } } ? { echo: string } : unknown
}

test('plain JSON schemas are typed through the instance\'s type provider', () => {
  const Text = { type: 'object', properties: { text: { type: 'string' } } } as const
  const Echo = { type: 'object', properties: { echo: { type: 'string' } } } as const
  app.withTypeProvider<TinyProvider>().registerWebsocket('/ws', {
    messages: {
      echo: {
        schema: Text,
        reply: Echo,
        handler (session, data) {
          expect(data).type.toBe<{ text: string }>()
          session.emit('echoed', { echo: data.text })
          return { echo: data.text }
        }
      },
      wrong: {
        schema: Text,
        reply: Echo,
        // @ts-expect-error: Type 'number' is not assignable to type 'string'
        handler (_session, data) { return { echo: data.text.length } }
      }
    },
    events: { echoed: Echo }
  })
})

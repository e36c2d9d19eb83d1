// Type tests (tstyche) of message routes with TypeBox 1.x (the `typebox` package): data,
// replies and events typed as with @sinclair/typebox 0.3x (test/types/routes.tst.ts). An ES
// module, because `typebox` 1.x is one.
import Fastify from 'fastify'
import { Type } from 'typebox'
import { expect, test } from 'tstyche'

const app = Fastify()

test('TypeBox 1.x: data, reply and events are inferred from the schemas', () => {
  app.registerWebsocket('/ws', {
    messages: {
      'chat.send': {
        schema: Type.Object({ room: Type.String(), text: Type.String() }),
        reply: Type.Object({ offset: Type.Integer() }),
        handler (session, data) {
          expect(data).type.toBe<{ room: string, text: string }>()
          session.emit('chat.message', { from: 'a', text: data.text })
          return { offset: 1 }
        }
      },
      bad: {
        reply: Type.Object({ offset: Type.Integer() }),
        // @ts-expect-error: Type 'string' is not assignable to type 'number'
        handler () { return { offset: 'one' } }
      }
    },
    events: { 'chat.message': Type.Object({ from: Type.String(), text: Type.String() }) },
    onOpen (session) {
      session.emit('chat.message', { from: 'server', text: 'welcome' })
      // @ts-expect-error: Argument of type '"chat.mesage"' is not assignable to parameter of type '"chat.message"'
      session.emit('chat.mesage', { from: 'server', text: 'welcome' })
    }
  })
})

// Type tests (tstyche) of the route hooks given to registerWebsocket(): as on a Fastify route,
// request.query, request.headers and request.params are typed from the route's schemas (here
// @sinclair/typebox 0.3x; TypeBox 1.x in test/types/typebox.tst.mts), and loose without them.
import type { IncomingHttpHeaders } from 'node:http'
import { Type } from '@sinclair/typebox'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { expect, test } from 'tstyche'

const app = Fastify()

const schema = {
  querystring: Type.Object({ token: Type.String(), room: Type.Optional(Type.String()) }),
  headers: Type.Object({ 'x-user': Type.String() }),
  params: Type.Object({ id: Type.String() })
}

test('every route hook sees request.query, headers and params typed from the schema', () => {
  app.registerWebsocket('/ws/:id', {
    schema,
    onRequest (request, reply, done) {
      expect(request.query).type.toBe<{ token: string, room?: string }>()
      expect(request.params).type.toBe<{ id: string }>()
      expect(request.headers['x-user']).type.toBe<string>()
      expect(reply).type.toBeAssignableTo<FastifyReply>()
      done()
    },
    preParsing: async (request, _reply, payload) => {
      expect(request.query.token).type.toBe<string>()
      return payload
    },
    preValidation: [async (request) => {
      expect(request.query.room).type.toBe<string | undefined>()
      // @ts-expect-error: Property 'tokn' does not exist on type
      request.log.info(request.query.tokn)
    }],
    preHandler: async (request, reply) => {
      expect(request.params.id).type.toBe<string>()
      if (request.query.token !== 'secret') return await reply.code(401).send()
    },
    onOpen (session) {
      expect(session.query).type.toBe<{ token: string, room?: string }>()
    }
  })
})

test('without schemas, hooks see the loose defaults the session has', () => {
  app.registerWebsocket('/ws', {
    preValidation: async (request) => {
      expect(request.query).type.toBe<Record<string, unknown>>()
      expect(request.params).type.toBe<Record<string, string>>()
      expect(request.headers).type.toBeAssignableTo<IncomingHttpHeaders>()
    },
    onOpen () {}
  })
})

test('a hook written for any request still fits', () => {
  const audit = async (request: FastifyRequest): Promise<void> => { request.log.info('upgrade') }
  app.registerWebsocket('/ws/:id', { schema, onRequest: audit, preHandler: [audit], onOpen () {} })
})

test('a hook that expects another query is refused', () => {
  const needsUser = async (request: FastifyRequest<{ Querystring: { user: string } }>): Promise<void> => {
    request.log.info(request.query.user)
  }
  // @ts-expect-error: Property 'user' is missing in type
  app.registerWebsocket('/ws/:id', { schema, preValidation: needsUser, onOpen () {} })
})

// The plugin's side of the AsyncAPI document: the record each registerWebsocket() keeps of
// its route, the document of an instance's routes, and the GET route that serves it.
import type { FastifyInstance } from 'fastify'
import { AsyncApiSchemaError } from '../errors'
import { asyncApiDocument, type AsyncApiInfo, type RouteRecord } from './document'
import { SchemaConversionError } from './schema'

export type { RouteRecord }

export const DEFAULT_ENVELOPE = Object.freeze({ type: 'type', id: 'id', data: 'data' })

/**
 * The record of a route with onMessage's schemas (or none): `handshake` is the schema Fastify
 * gets, read now, before the message codec adds its own parts to it.
 */
export function handlerRouteRecord (instance: FastifyInstance, path: string, handshake: Record<string, unknown> | undefined, message: unknown, outbound: unknown): RouteRecord {
  const schema: RouteRecord['schema'] = {}
  const querystring = handshake?.querystring ?? handshake?.query
  if (querystring !== undefined) schema.querystring = querystring
  if (handshake?.headers !== undefined) schema.headers = handshake.headers
  if (handshake?.params !== undefined) schema.params = handshake.params
  if (message !== undefined) schema.message = message
  if (outbound !== undefined) schema.outbound = outbound
  return { path: instance.prefix + path, schema, envelope: DEFAULT_ENVELOPE, sharedSchemas: () => instance.getSchemas() }
}

/** The document of these routes; a schema that cannot be written in it throws FST_WS_ROOMS_ASYNCAPI_SCHEMA. */
export function buildAsyncApi (routes: readonly RouteRecord[], info: AsyncApiInfo): Record<string, unknown> {
  try {
    return asyncApiDocument(routes, info)
  } catch (error) {
    if (!(error instanceof SchemaConversionError)) throw error
    throw new AsyncApiSchemaError(error.where, error.message)
  }
}

/**
 * Serves the document at `path` as JSON. It is built at app.ready(), when no route can be
 * added any more, so a schema it cannot hold fails app.ready() rather than a request.
 */
export function serveAsyncApi (fastify: FastifyInstance, path: string, build: () => Record<string, unknown>): void {
  let json = ''
  fastify.addHook('onReady', async function buildAsyncApiDocument () {
    json = JSON.stringify(build())
  })
  fastify.get(path, function asyncApiDocument (_request, reply) {
    reply.type('application/json; charset=utf-8').send(json)
  })
}

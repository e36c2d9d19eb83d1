// The plugin's side of the AsyncAPI document: the document of an instance's routes (from the
// records registerWebsocket() keeps), and the GET route that serves it.
import type { FastifyInstance } from 'fastify'
import { AsyncApiSchemaError } from '../errors'
import { asyncApiDocument, type AsyncApiInfo, type RouteRecord } from './document'
import { SchemaConversionError } from './schema'

export type { RouteRecord }

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

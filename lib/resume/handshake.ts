// The token a handshake brings: taken out of the query before the route's schema sees it
// (an onRequest hook: Fastify has parsed the query, and validates it later), and kept for the
// route's handler by request.
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

const tokens = new WeakMap<FastifyRequest, unknown>()

/** The route's onRequest hook that takes `param` out of the query. */
export function takeResumeToken (param: string) {
  return function takeToken (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const query = request.query as Record<string, unknown> | null
    if (query !== null && typeof query === 'object' && Object.hasOwn(query, param)) {
      tokens.set(request, query[param])
      delete query[param]
    }
    done()
  }
}

/** What the handshake brought in the token's parameter (a string, or an array when repeated); undefined when none. */
export function tokenOf (request: FastifyRequest): unknown {
  return tokens.get(request)
}

// Checks made on the HTTP request before the upgrade, as a route onRequest hook: an origin
// outside allowedOrigins gets 403 (cross-site WebSocket hijacking) and an upgrade past
// maxSessions gets 503. Nothing is opened for a refused request.
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import { OriginNotAllowedError, TooManySessionsError } from './errors'
import type { RouteLimits } from './options'
import type { RoomRegistry } from './rooms'

/** The hook for a route, or null when it has nothing to check. */
export function handshakeGuard (registry: RoomRegistry, limits: RouteLimits, maxSessions: number): onRequestAsyncHookHandler | null {
  const origins = limits.allowedOrigins
  if (origins === null && maxSessions === Infinity) return null
  const stats = registry.stats

  return async function guardHandshake (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (registry.sessions.size >= maxSessions) {
      stats.refusedMaxSessions++
      return reply.send(new TooManySessionsError())
    }
    // Browsers always send Origin on a WebSocket handshake; other clients need not, and are
    // no cross-site risk, so a missing Origin passes.
    const origin = request.headers.origin
    if (origins === null || origin === undefined) return
    const allowed = typeof origins === 'function' ? await origins(origin, request) : origins.has(origin.toLowerCase())
    if (allowed !== true) {
      stats.refusedOrigin++
      return reply.send(new OriginNotAllowedError(JSON.stringify(origin)))
    }
  }
}

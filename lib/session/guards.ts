// Checks made on the HTTP request before the upgrade, as route hooks: an origin outside
// allowedOrigins gets 403 (cross-site WebSocket hijacking) and an upgrade past maxSessions
// gets 503. Nothing is opened for a refused request.
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler, preHandlerHookHandler } from 'fastify'
import { isThenable } from '../call-hook'
import { OriginNotAllowedError, ShuttingDownError, TooManySessionsError } from '../errors'
import type { RouteLimits } from '../options'
import type { SessionRegistry } from './registry'
import type { Stats } from './stats'
import { channels, publishRefusal } from '../observability/channels'

const CLOSING = Symbol('closing')

/**
 * The route's first onRequest hook when it limits origins, else null. An origin check of the
 * application's that has not answered when app.close() starts (`closing` aborts) gets 503
 * then: a check that never settles must not hold the shutdown.
 */
export function originGuard (stats: Stats, limits: RouteLimits, closing: AbortSignal): onRequestAsyncHookHandler | null {
  const origins = limits.allowedOrigins
  if (origins === null) return null

  return async function guardOrigin (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // Browsers always send Origin on a WebSocket handshake; other clients need not, and are
    // no cross-site risk, so a missing Origin passes.
    const origin = request.headers.origin
    if (origin === undefined) return
    const allowed = typeof origins === 'function' ? await unlessClosing(origins(origin, request), closing) : origins.has(origin.toLowerCase())
    if (allowed === CLOSING) return reply.send(new ShuttingDownError())
    if (allowed !== true) {
      stats.refusedOrigin++
      if (channels.handshakeRefused.hasSubscribers) publishRefusal(request, 'origin', `origin ${JSON.stringify(origin)} is not allowed`)
      return reply.send(new OriginNotAllowedError(JSON.stringify(origin)))
    }
  }
}

/** The answer, or CLOSING if app.close() starts first; nothing is left on `closing` after. */
function unlessClosing<T> (answer: T | PromiseLike<T>, closing: AbortSignal): T | Promise<T | typeof CLOSING> {
  if (!isThenable(answer)) return answer
  if (closing.aborted) return Promise.resolve(CLOSING)
  return new Promise((resolve, reject) => {
    const cancel = (): void => { resolve(CLOSING) }
    closing.addEventListener('abort', cancel, { once: true })
    ;(answer as PromiseLike<T>).then((value) => {
      closing.removeEventListener('abort', cancel)
      resolve(value)
    }, (error: unknown) => {
      closing.removeEventListener('abort', cancel)
      reject(error)
    })
  })
}

/**
 * The route's last preHandler when there is a session cap, else null. Checked last and
 * synchronously, so nothing runs between the check and the upgrade: upgrades that wait
 * together in slower hooks (authentication, say) cannot all pass it.
 */
export function sessionCapGuard (registry: SessionRegistry<{ readonly id: string }>, maxSessions: number): preHandlerHookHandler | null {
  if (maxSessions === Infinity) return null
  return function guardSessionCap (request, reply, done) {
    if (registry.size < maxSessions) return done()
    registry.stats.refusedMaxSessions++
    if (channels.handshakeRefused.hasSubscribers) publishRefusal(request, 'max-sessions', `maxSessions (${maxSessions}) sessions are open`)
    reply.send(new TooManySessionsError())
  }
}

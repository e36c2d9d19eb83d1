// app.close(): every session is closed with 1001 and its onDisconnected awaited, for at most
// closeTimeout. Then the connections still open are cut, and the sessions end as usual (their
// onDisconnected gets the code of the close, 1001 for a handshake that completed meanwhile,
// 1006 otherwise) within a short grace; what is left after it, and any session whose handler
// still runs, is dropped without waiting (see Session[kAbandon]). So shutdown takes at most
// closeTimeout plus the grace, whatever the clients and the handlers do.
import { InvalidOptionError, describe } from '../errors'
import { within } from '../within'
import type { SessionRegistry } from './registry'
import { kAbandon, kCutOff, kShutdown, type Session } from './session'

/** How long sessions whose connection was cut at closeTimeout have to end as usual, in ms. */
const GRACE = 1000

/**
 * Fastify runs each of app.close()'s hooks within its pluginTimeout, and app.close() rejects
 * past it: the shutdown (closeTimeout plus the grace) and the adapter's wait for its backend
 * must fit. Checked at registration, so a bad value fails app.register() and never a shutdown.
 */
export function assertShutdownFits (pluginTimeout: number, closeTimeout: number, adapterWait: number | null): void {
  if (pluginTimeout <= 0) return // no limit
  if (closeTimeout + GRACE >= pluginTimeout) {
    throw new InvalidOptionError('closeTimeout', `less than Fastify's pluginTimeout (${pluginTimeout} ms) minus ${GRACE} ms, as app.close() must end within it`, describe(closeTimeout))
  }
  if (adapterWait !== null && adapterWait >= pluginTimeout) {
    throw new InvalidOptionError('redisAdapter connectTimeout', `less than Fastify's pluginTimeout (${pluginTimeout} ms), as app.register() and app.close() wait for Redis within it`, describe(adapterWait))
  }
}

export async function closeAllSessions (registry: SessionRegistry<Session>, closeTimeout: number): Promise<void> {
  for (const session of registry.values()) session[kShutdown]()
  if (await emptyWithin(registry, closeTimeout)) return
  for (const session of [...registry.values()]) session[kCutOff]()
  if (await emptyWithin(registry, GRACE)) return
  for (const session of [...registry.values()]) session[kAbandon]()
}

/** Resolves with true once no session is left, or with false after `ms`. */
async function emptyWithin (registry: SessionRegistry<Session>, ms: number): Promise<boolean> {
  return registry.size === 0 || await within(registry.whenEmpty().then(() => true), ms, false)
}

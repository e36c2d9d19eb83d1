// Where the transport finds another package's internals not as it expects, it leaves them as
// they are and says so here: once per process, at debug level. The app works the same, only
// slower or with more memory per session, and the same line for every session would say nothing more.
import type { FastifyBaseLogger } from 'fastify'

const reported = new Set<string>()

/** Logs `message` at debug level, the first time it is reported in this process. */
export function reportFallback (log: FastifyBaseLogger, message: string): void {
  if (reported.has(message)) return
  reported.add(message)
  log.debug(`fastify-websocket-rooms: ${message}`)
}

// Where the transport finds another package's internals not as it expects, it leaves them as
// they are and says so here, once per process (the same line for every session would say
// nothing more): at debug level where the app works the same, only slower or with more memory
// per session; at warn level where a workaround for a crash is off, so that it is seen.
import type { FastifyBaseLogger } from 'fastify'

const reported = new Set<string>()

/** Logs `message` the first time it is reported in this process. */
export function reportFallback (log: FastifyBaseLogger, message: string, level: 'debug' | 'warn' = 'debug'): void {
  if (reported.has(message)) return
  reported.add(message)
  log[level](`fastify-websocket-rooms: ${message}`)
}

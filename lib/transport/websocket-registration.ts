// A second @fastify/websocket, registered after the one this plugin registered, throws
// FST_ERR_DEC_ALREADY_PRESENT ('ws') from inside Fastify's plugin loader: nothing can catch it,
// the process dies, and the message does not say what to do. The instance's `register` is
// wrapped so that such a registration throws at the app's own call instead, with a coded error
// that does. Plugins are recognised by fastify-plugin's metadata (its public 'plugin-meta' symbol).
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { WebsocketRegisteredAfterError } from '../errors'
import { reportFallback } from './fallbacks'

const META = Symbol.for('plugin-meta')

function isWebsocketPlugin (plugin: unknown): boolean {
  if ((typeof plugin !== 'function' && typeof plugin !== 'object') || plugin === null) return false
  const meta = (plugin as Record<symbol, { name?: unknown } | undefined>)[META]
  // An ES module namespace (`app.register(await import('@fastify/websocket'))`) holds it as default.
  return meta?.name === '@fastify/websocket' || isWebsocketPlugin((plugin as { default?: unknown }).default)
}

/** From now on, `fastify.register(@fastify/websocket)` (and in scopes created later) throws. */
export function refuseLaterWebsocket (fastify: FastifyInstance, log: FastifyBaseLogger): void {
  const original = fastify.register as unknown
  function register (this: unknown, plugin: unknown, ...rest: unknown[]): unknown {
    if (isWebsocketPlugin(plugin)) throw new WebsocketRegisteredAfterError()
    return (original as (...args: unknown[]) => unknown).call(this, plugin, ...rest)
  }
  try {
    if (typeof original === 'function') (fastify as { register: unknown }).register = register
  } catch {
    // A register that is not writable: the check below reports it.
  }
  if (fastify.register as unknown !== register) {
    reportFallback(log, 'Fastify\'s register could not be wrapped; registering @fastify/websocket after this plugin fails with FST_ERR_DEC_ALREADY_PRESENT')
  }
}

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
  // An ES module namespace (`app.register(await import('@fastify/websocket'))`) holds it as
  // default (and CommonJS plugins often are their own default).
  return nameOf(plugin) === '@fastify/websocket' || nameOf(propertyOf(plugin, 'default')) === '@fastify/websocket'
}

function propertyOf (value: unknown, key: string | symbol): unknown {
  return (typeof value === 'function' || (typeof value === 'object' && value !== null)) ? (value as Record<string | symbol, unknown>)[key] : undefined
}

/** fastify-plugin's name of a plugin, if any. */
function nameOf (plugin: unknown): unknown {
  return propertyOf(propertyOf(plugin, META), 'name')
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

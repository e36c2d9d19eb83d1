// Every plugin option: its default, its check and its meaning, in one place.
// Checked once at registration, so a bad value fails app.register() and never a connection.
import type { ServerOptions as WsServerOptions } from 'ws'
import { InvalidOptionError, describe } from './errors'

export interface ResolvedOptions {
  /** Largest message accepted, in bytes; a bigger one closes the session with 1009. */
  maxPayload: number
  /** How long app.close() waits for clients to answer the close handshake before it cuts them off, in ms. */
  closeTimeout: number
  /** Extra options for the ws server (perMessageDeflate, ...); used only when this plugin registers @fastify/websocket. */
  websocketOptions: Omit<WsServerOptions, 'noServer' | 'server' | 'port' | 'host' | 'path'>
}

export const defaults = Object.freeze({
  maxPayload: 1024 * 1024,
  closeTimeout: 5000
})

const FORBIDDEN_WS_OPTIONS = ['noServer', 'server', 'port', 'host', 'path', 'maxPayload'] as const

function positiveInteger (name: string, value: unknown, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || (value === 0 && !allowZero)) {
    throw new InvalidOptionError(name, allowZero ? 'an integer >= 0' : 'an integer > 0', describe(value))
  }
  return value
}

export function resolveOptions (options: unknown): ResolvedOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidOptionError('options', 'an object', describe(options))
  }
  const opts = options as Record<string, unknown>
  const websocketOptions = opts.websocketOptions === undefined ? {} : opts.websocketOptions
  if (websocketOptions === null || typeof websocketOptions !== 'object' || Array.isArray(websocketOptions)) {
    throw new InvalidOptionError('websocketOptions', 'an object of ws server options', describe(websocketOptions))
  }
  for (const key of FORBIDDEN_WS_OPTIONS) {
    if (key in websocketOptions) {
      const why = key === 'maxPayload' ? 'unset (use the top-level maxPayload option)' : 'unset (the plugin owns the server and its routes)'
      throw new InvalidOptionError(`websocketOptions.${key}`, why, describe((websocketOptions as Record<string, unknown>)[key]))
    }
  }
  return {
    maxPayload: positiveInteger('maxPayload', opts.maxPayload, defaults.maxPayload),
    closeTimeout: positiveInteger('closeTimeout', opts.closeTimeout, defaults.closeTimeout, true),
    websocketOptions
  }
}

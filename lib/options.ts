// Every plugin option: its default, its check and its meaning, in one place.
// Checked once at registration, so a bad value fails app.register() (or registerWebsocket()
// for a route's own limits) and never a connection.
import type { FastifyRequest } from 'fastify'
import type { ServerOptions as WsServerOptions } from 'ws'
import { isAdapter, type Adapter } from './rooms/port'
import { InvalidOptionError, describe } from './errors'
import { sharedPerMessageDeflate } from './transport/deflate'
import type { RouteLimitOptions, WebsocketRoomsOptions } from '../types/index'
import { closest, didYouMean } from './suggest'
import { typesAgree, type SameKeys } from './type-checks'
import type { HistoryLimits } from './history/log'
import { metricsOption, tracingOption, type MetricsSettings } from './observability/settings'
import type { AsyncApiInfo } from './asyncapi/document'

export type Policy = 'close' | 'drop'

export interface RateLimit {
  /** Messages a session may send per interval. */
  max: number
  /** The interval, in ms. */
  interval: number
  /** Past the limit: close the session with 1008, or drop the message. */
  policy: Policy
}

export type OriginCheck = (origin: string, request: FastifyRequest) => boolean | Promise<boolean>

/** Limits a route may set for itself; the plugin options give their defaults. */
export interface RouteLimits {
  /** Bytes a session left unread at its socket from earlier turns of the event loop past which a message is not sent. */
  maxBackpressure: number
  /** What happens to a message past maxBackpressure: close the session with 1013, or drop it. */
  backpressurePolicy: Policy
  /** Messages waiting for a busy handler past which the session's socket is not read. */
  maxQueuedMessages: number
  /** Messages per interval a session may send; null for no limit. */
  rateLimit: RateLimit | null
  /** Origins allowed to upgrade (exact, case-insensitive), a check, or null for any. */
  allowedOrigins: ReadonlySet<string> | OriginCheck | null
}

export interface ResolvedOptions extends RouteLimits {
  /** Largest message accepted, in bytes; a bigger one closes the session with 1009. */
  maxPayload: number
  /** How long app.close() waits for clients to answer the close handshake before it cuts them off, in ms. */
  closeTimeout: number
  /** Interval of the server's pings, in ms; a session that missed the previous pong is cut off. 0: no pings. */
  heartbeatInterval: number
  /** Open sessions past which an upgrade is refused with 503; Infinity for no cap. */
  maxSessions: number
  /** Rooms one session may be in at once. */
  maxRoomsPerSession: number
  /** Longest room name, in UTF-16 code units (a string's length). */
  maxRoomNameLength: number
  /** Extra options for the ws server (perMessageDeflate, ...); used only when this plugin registers @fastify/websocket. */
  websocketOptions: Omit<WsServerOptions, 'noServer' | 'server' | 'port' | 'host' | 'path'>
  /** Rooms across several servers (redisAdapter()); null keeps them in this process. */
  adapter: Adapter | null
  /** 'shared': the server keeps no deflate context, so a broadcast is deflated once for every session that negotiated permessage-deflate. */
  compression: 'shared' | false
  /** The window over which presence changes are gathered for onPresence, in ms. */
  presenceInterval: number
  /** Called with each room's presence changes, once per window; null: no diffs are gathered. */
  onPresence: NonNullable<WebsocketRoomsOptions['onPresence']> | null
  /** Called when a room gets its first member, in the cluster. */
  onRoomOccupied: NonNullable<WebsocketRoomsOptions['onRoomOccupied']> | null
  /** Called when a room loses its last member, in the cluster. */
  onRoomVacated: NonNullable<WebsocketRoomsOptions['onRoomVacated']> | null
  /** Rooms' history for publish() and recover(): messages kept per room, and for how long; null: off. */
  history: HistoryLimits | null
  /** Prometheus metrics: the registry and prefix; null: off. */
  metrics: MetricsSettings | null
  /** OpenTelemetry spans around handler runs. */
  tracing: boolean
  /** The AsyncAPI document's info, and the path of the GET route that serves it (null: not served). */
  asyncapi: AsyncApiOptions
}

export interface AsyncApiOptions {
  path: string | null
  info: AsyncApiInfo
}

export const defaults = Object.freeze({
  maxPayload: 1024 * 1024,
  closeTimeout: 5000,
  heartbeatInterval: 30_000,
  maxBackpressure: 1024 * 1024,
  backpressurePolicy: 'close' as Policy,
  maxQueuedMessages: 100,
  maxSessions: Infinity,
  maxRoomsPerSession: 100,
  maxRoomNameLength: 256,
  presenceInterval: 250,
  history: Object.freeze({ size: 100, ttl: 300_000 }),
  asyncapi: Object.freeze({ path: null, info: Object.freeze({ title: 'WebSocket API', version: '1.0.0' }) })
})

/** The keys of the handlers object that set a route's own limits. */
export const ROUTE_LIMIT_NAMES = ['maxBackpressure', 'backpressurePolicy', 'maxQueuedMessages', 'rateLimit', 'allowedOrigins'] as const
typesAgree<SameKeys<typeof ROUTE_LIMIT_NAMES[number], keyof RouteLimits>>()
typesAgree<SameKeys<keyof RouteLimits, keyof RouteLimitOptions>>()
typesAgree<SameKeys<keyof ResolvedOptions, keyof WebsocketRoomsOptions>>()

/** Every plugin option, and the options Fastify's register() itself takes, which reach the plugin too. */
const OPTION_NAMES = [
  'maxPayload', 'closeTimeout', 'heartbeatInterval', 'maxSessions', 'maxRoomsPerSession', 'maxRoomNameLength',
  'websocketOptions', 'adapter', 'compression', 'presenceInterval', 'onPresence', 'onRoomOccupied', 'onRoomVacated',
  'history', 'metrics', 'tracing', 'asyncapi', ...ROUTE_LIMIT_NAMES
] as const
typesAgree<SameKeys<typeof OPTION_NAMES[number], keyof WebsocketRoomsOptions>>()
const KNOWN_OPTIONS = new Set<string>([...OPTION_NAMES, 'prefix', 'logLevel', 'logSerializers'])
/** The plugin's options that a route cannot set for itself. */
export const PLUGIN_ONLY_OPTIONS: ReadonlySet<string> = new Set(OPTION_NAMES.filter((name) => !(ROUTE_LIMIT_NAMES as readonly string[]).includes(name)))

/** An unknown option is a misspelt one: refused, with the closest name, rather than ignored. */
function refuseUnknown (options: Record<string, unknown>): void {
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new InvalidOptionError(key, `one of the plugin's options${didYouMean(key, OPTION_NAMES)}`, 'an unknown option')
  }
}

const FORBIDDEN_WS_OPTIONS = ['noServer', 'server', 'port', 'host', 'path', 'maxPayload'] as const
/** ws's server options an app may give: ws ignores a key it does not know, so a near miss is refused here. */
const WS_OPTION_NAMES = [
  'allowSynchronousEvents', 'autoPong', 'backlog', 'clientTracking', 'handleProtocols',
  'perMessageDeflate', 'skipUTF8Validation', 'verifyClient', 'WebSocket'
] as const satisfies ReadonlyArray<keyof WsServerOptions>

/** An integer option, of the plugin's or of an adapter's; a null fallback makes it required. */
export function integer (name: string, value: unknown, fallback: number | null, min: number, unit?: string): number {
  if (value === undefined && fallback !== null) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(name, `an integer >= ${min}${unit === undefined ? '' : ` (${unit})`}`, describe(value))
  }
  return value
}

function policy (name: string, value: unknown, fallback: Policy): Policy {
  if (value === undefined) return fallback
  if (value !== 'close' && value !== 'drop') throw new InvalidOptionError(name, '"close" or "drop"', describe(value))
  return value
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function rateLimit (name: string, value: unknown, fallback: RateLimit | null): RateLimit | null {
  if (value === undefined) return fallback
  if (value === false || value === null) return null
  if (!isPlainObject(value)) throw new InvalidOptionError(name, 'false or an object { max, interval, policy? }', describe(value))
  return {
    max: integer(`${name}.max`, value.max, null, 1),
    interval: integer(`${name}.interval`, value.interval, null, 1),
    policy: policy(`${name}.policy`, value.policy, 'close')
  }
}

function allowedOrigins (name: string, value: unknown, fallback: RouteLimits['allowedOrigins']): RouteLimits['allowedOrigins'] {
  if (value === undefined) return fallback
  if (value === null) return null
  if (typeof value === 'function') return value as OriginCheck
  if (!Array.isArray(value) || value.some((origin) => typeof origin !== 'string' || origin.length === 0)) {
    throw new InvalidOptionError(name, 'an array of origins such as "https://example.com", or a function (origin, request) => boolean', describe(value))
  }
  return new Set(value.map((origin: string) => origin.toLowerCase()))
}

function limits (source: Record<string, unknown>, fallback: RouteLimits, prefix: string): RouteLimits {
  return {
    maxBackpressure: integer(`${prefix}maxBackpressure`, source.maxBackpressure, fallback.maxBackpressure, 1),
    backpressurePolicy: policy(`${prefix}backpressurePolicy`, source.backpressurePolicy, fallback.backpressurePolicy),
    maxQueuedMessages: integer(`${prefix}maxQueuedMessages`, source.maxQueuedMessages, fallback.maxQueuedMessages, 1),
    rateLimit: rateLimit(`${prefix}rateLimit`, source.rateLimit, fallback.rateLimit),
    allowedOrigins: allowedOrigins(`${prefix}allowedOrigins`, source.allowedOrigins, fallback.allowedOrigins)
  }
}

export function resolveOptions (options: unknown): ResolvedOptions {
  if (!isPlainObject(options)) throw new InvalidOptionError('options', 'an object', describe(options))
  refuseUnknown(options)
  const websocketOptions = options.websocketOptions === undefined ? {} : options.websocketOptions
  if (!isPlainObject(websocketOptions)) {
    throw new InvalidOptionError('websocketOptions', 'an object of ws server options', describe(websocketOptions))
  }
  for (const key of Object.keys(websocketOptions)) {
    if ((WS_OPTION_NAMES as readonly string[]).includes(key)) continue
    const meant = closest(key, WS_OPTION_NAMES, 2)
    if (meant !== null) throw new InvalidOptionError(`websocketOptions.${key}`, `a ws server option (did you mean "${meant}"?)`, 'an unknown option')
  }
  for (const key of FORBIDDEN_WS_OPTIONS) {
    if (key in websocketOptions) {
      const why = key === 'maxPayload' ? 'unset (use the top-level maxPayload option)' : 'unset (the plugin owns the server and its routes)'
      throw new InvalidOptionError(`websocketOptions.${key}`, why, describe(websocketOptions[key]))
    }
  }
  const compression = options.compression ?? false
  if (compression !== false && compression !== 'shared') throw new InvalidOptionError('compression', '"shared" or false', describe(compression))
  const maxSessions = options.maxSessions
  const adapter = options.adapter ?? null
  if (adapter !== null && !isAdapter(adapter)) throw new InvalidOptionError('adapter', 'what redisAdapter() returns, or null for in-memory rooms', describe(adapter))
  const onPresence = callback(options, 'onPresence', 'a function (room, diff)')
  const onRoomOccupied = callback(options, 'onRoomOccupied', 'a function (room)')
  const onRoomVacated = callback(options, 'onRoomVacated', 'a function (room)')
  return {
    ...limits(options, { ...defaults, rateLimit: null, allowedOrigins: null }, ''),
    maxPayload: integer('maxPayload', options.maxPayload, defaults.maxPayload, 1),
    closeTimeout: integer('closeTimeout', options.closeTimeout, defaults.closeTimeout, 0),
    heartbeatInterval: integer('heartbeatInterval', options.heartbeatInterval, defaults.heartbeatInterval, 0),
    maxSessions: maxSessions === Infinity ? Infinity : integer('maxSessions', maxSessions, defaults.maxSessions, 1),
    maxRoomsPerSession: integer('maxRoomsPerSession', options.maxRoomsPerSession, defaults.maxRoomsPerSession, 1),
    maxRoomNameLength: integer('maxRoomNameLength', options.maxRoomNameLength, defaults.maxRoomNameLength, 1),
    websocketOptions: compression === false ? websocketOptions : { ...websocketOptions, perMessageDeflate: sharedPerMessageDeflate(websocketOptions.perMessageDeflate) },
    adapter,
    compression,
    presenceInterval: integer('presenceInterval', options.presenceInterval, defaults.presenceInterval, 1),
    onPresence: onPresence as ResolvedOptions['onPresence'],
    onRoomOccupied: onRoomOccupied as ResolvedOptions['onRoomOccupied'],
    onRoomVacated: onRoomVacated as ResolvedOptions['onRoomVacated'],
    history: history(options.history),
    metrics: metricsOption(options.metrics),
    tracing: tracingOption(options.tracing),
    asyncapi: asyncapi(options.asyncapi)
  }
}

const MAX_TIMER = 2 ** 31 - 1

function history (value: unknown): HistoryLimits | null {
  if (value === undefined || value === null || value === false) return null
  if (value === true) return defaults.history
  if (!isPlainObject(value)) throw new InvalidOptionError('history', 'false, true or an object { size?, ttl? }', describe(value))
  const ttl = integer('history.ttl', value.ttl, defaults.history.ttl, 1)
  // The longest a Node.js timer waits; the streams' expiry timers would fire at once past it.
  if (ttl > MAX_TIMER) throw new InvalidOptionError('history.ttl', `an integer from 1 to ${MAX_TIMER} (about 24.8 days)`, describe(ttl))
  return { size: integer('history.size', value.size, defaults.history.size, 1), ttl }
}

/** The fields of AsyncAPI's info object an app may set, beside title and version. */
const ASYNCAPI_INFO_FIELDS = ['title', 'version', 'description', 'termsOfService', 'contact', 'license', 'tags', 'externalDocs'] as const

function asyncapi (value: unknown): AsyncApiOptions {
  if (value === undefined || value === null) return defaults.asyncapi
  if (!isPlainObject(value)) throw new InvalidOptionError('asyncapi', 'an object { path?, info? }', describe(value))
  for (const key of Object.keys(value)) {
    if (key !== 'path' && key !== 'info') throw new InvalidOptionError(`asyncapi.${key}`, `"path" or "info"${didYouMean(key, ['path', 'info'])}`, 'an unknown option')
  }
  const path = value.path ?? null
  if (path !== null && (typeof path !== 'string' || !path.startsWith('/'))) {
    throw new InvalidOptionError('asyncapi.path', 'a path starting with "/", such as "/asyncapi.json"', describe(path))
  }
  const info = value.info ?? {}
  if (!isPlainObject(info)) throw new InvalidOptionError('asyncapi.info', 'an object { title?, version?, description?... }', describe(info))
  for (const key of Object.keys(info)) {
    if (!(ASYNCAPI_INFO_FIELDS as readonly string[]).includes(key) && !key.startsWith('x-')) {
      throw new InvalidOptionError(`asyncapi.info.${key}`, `a field of AsyncAPI's info object${didYouMean(key, ASYNCAPI_INFO_FIELDS)}`, 'an unknown field')
    }
  }
  for (const key of ['title', 'version', 'description'] as const) {
    if (info[key] !== undefined && (typeof info[key] !== 'string' || info[key] === '')) throw new InvalidOptionError(`asyncapi.info.${key}`, 'a non-empty string', describe(info[key]))
  }
  return { path, info: { ...defaults.asyncapi.info, ...info } as AsyncApiInfo }
}

/** An application callback option: a function, or null when absent. */
function callback (options: Record<string, unknown>, name: string, expected: string): Function | null {
  const value = options[name] ?? null
  if (value !== null && typeof value !== 'function') throw new InvalidOptionError(name, expected, describe(value))
  return value
}

/** A route's limits: its own where the handlers object sets them, the plugin's elsewhere. */
export function resolveRouteLimits (source: Record<string, unknown>, plugin: RouteLimits, path: string): RouteLimits {
  return limits(source, plugin, `registerWebsocket("${path}") `)
}

// Reads the object given to registerWebsocket(path, handlers): the session handlers, in
// either of their two names (aliases), and the Fastify route options that run before the upgrade.
// The object may be a frozen ES module namespace, so it is only ever read.
import { InvalidHandlersError, describe } from '../errors'
import { PLUGIN_ONLY_OPTIONS, ROUTE_LIMIT_NAMES } from '../options'
import type { HandshakeRouteOptions, SessionHandlers } from '../../types/index'
import { closest } from '../suggest'
import { typesAgree, type SameKeys } from '../type-checks'
import { readRouting, type Routing } from './message-routes'

export interface Handlers {
  connected: ((session: any) => unknown) | undefined
  /** Gets the text, or with schema.message the validated value. */
  text: ((session: any, message: any, value?: any) => unknown) | undefined
  binary: ((session: any, data: Buffer) => unknown) | undefined
  pong: ((session: any) => unknown) | undefined
  disconnected: ((session: any, code: number, reason: string) => unknown) | undefined
  error: ((session: any, error: Error) => unknown) | undefined
  backpressure: ((session: any, bufferedAmount: number) => unknown) | undefined
  invalidMessage: ((session: any, error: Error, text: string) => unknown) | undefined
}

/** The name each handler of a route was given under: "onMessage" or "handleText"... */
export type HandlerNames = Record<keyof Handlers, string>

/** Each event with its two accepted names (aliases: onConnected/onOpen...), the second null when it has one. */
const EVENT_NAMES = [
  ['connected', 'onConnected', 'onOpen'],
  ['text', 'handleText', 'onMessage'],
  ['binary', 'handleBinary', null],
  ['pong', 'onPong', null],
  ['disconnected', 'onDisconnected', 'onClose'],
  ['error', 'onError', null],
  ['backpressure', 'onBackpressure', null],
  ['invalidMessage', 'onInvalidMessage', null]
] as const satisfies ReadonlyArray<readonly [keyof Handlers, string, string | null]>
type EventName = typeof EVENT_NAMES[number]
typesAgree<SameKeys<EventName[0], keyof Handlers>>()
typesAgree<SameKeys<EventName[1] | Exclude<EventName[2], null>, keyof SessionHandlers<unknown, unknown>>>()

/** Route options handed to Fastify as they are; they apply to the HTTP request before the upgrade. */
export const ROUTE_OPTION_NAMES = [
  'schema', 'onRequest', 'preParsing', 'preValidation', 'preHandler',
  'config', 'logLevel', 'logSerializers', 'constraints', 'errorHandler', 'attachValidation',
  'validatorCompiler', 'serializerCompiler'
] as const
// logSerializers is not in every Fastify 5's route options: the declarations offer it where it is.
typesAgree<SameKeys<Exclude<typeof ROUTE_OPTION_NAMES[number], 'logSerializers'>, Exclude<keyof HandshakeRouteOptions | 'schema', 'logSerializers'>>>()

/**
 * Keys of a Fastify route that registerWebsocket sets itself: given, they would be ignored, so
 * they are refused with what to do instead (an app moving from a plain @fastify/websocket route).
 */
const OWN_ROUTE_KEYS = new Map<string, string>([
  ['websocket', '"websocket" is not needed: registerWebsocket() always makes a WebSocket route'],
  ['handler', '"handler" is not taken: registerWebsocket() makes the route\'s handler; give session handlers instead (onOpen, onMessage, onClose...)'],
  ['wsHandler', '"wsHandler" is not taken: registerWebsocket() makes the route\'s handler; give session handlers instead (onOpen, onMessage, onClose...)'],
  ['method', '"method" is not taken: a WebSocket handshake is always a GET'],
  ['url', '"url" is not taken: the path is registerWebsocket()\'s first argument']
])

/** The message routes' keys (./message-routes). */
const ROUTING_NAMES = ['messages', 'events', 'envelope']
const HANDLER_NAMES = new Set<string>([...EVENT_NAMES.flatMap(([, a, b]) => b === null ? [a] : [a, b]), ...ROUTING_NAMES])
const ROUTE_NAMES = new Set<string>(ROUTE_OPTION_NAMES)
const LIMIT_NAMES = new Set<string>(ROUTE_LIMIT_NAMES)
/** Known names in lowercase, to catch the browser's spelling (onmessage, onopen). */
const LOWERCASE_NAMES = new Set<string>([...HANDLER_NAMES, ...ROUTE_NAMES, ...LIMIT_NAMES].map((name) => name.toLowerCase()))

/** A key that must have meant a handler or a route hook: refused rather than ignored. */
function looksLikeHandler (key: string): boolean {
  return /^(on|handle|pre)[A-Z]/.test(key) || LOWERCASE_NAMES.has(key.toLowerCase())
}

const KNOWN_NAMES = [...HANDLER_NAMES, ...ROUTE_NAMES, ...LIMIT_NAMES]
/** The options (not handlers nor hooks) among them. */
const OPTION_NAMES = [...LIMIT_NAMES, ...[...ROUTE_NAMES].filter((name) => !/^(on|pre)[A-Z]/.test(name))]
/** The route's limits, with the spellings they are mistaken for (allowed_origins). */
const LIMIT_SPELLINGS = new Map([...LIMIT_NAMES].map((name) => [spelling(name), name]))

function spelling (key: string): string {
  return key.toLowerCase().replace(/[_-]/g, '')
}

/**
 * A limit misspelt (allowedOrigin, maxBackpresure, rate_limit): an unknown key this close to
 * one is refused, since ignoring it would silently drop a limit (allowedOrigins is a guard).
 * Other unknown keys are ignored: a module namespace may export more than handlers.
 */
function nearLimit (key: string): boolean {
  return LIMIT_SPELLINGS.has(spelling(key)) || closest(key, LIMIT_NAMES, 2) !== null
}

/** Why an unknown key is refused: the handler, hook or option it is closest to. */
function unknownKey (path: string, key: string): Error {
  const meant = LIMIT_SPELLINGS.get(spelling(key)) ?? closest(key, KNOWN_NAMES)
  const kind = meant !== null && OPTION_NAMES.includes(meant) ? 'option' : 'handler'
  return new InvalidHandlersError(path, `unknown ${kind} "${key}"${meant === null ? '' : ` (did you mean "${meant}"?)`}`)
}

export interface RouteDefinition {
  handlers: Handlers
  handlerNames: HandlerNames
  /** Options for Fastify's route: schema, hooks... */
  routeOptions: Record<string, unknown>
  /** The route's own limits, as given (checked by resolveRouteLimits). */
  limits: Record<string, unknown>
  /** schema.message and schema.outbound, taken out of the schema Fastify gets; undefined when absent. */
  messageSchema: unknown
  outboundSchema: unknown
  /** `messages`, `events` and `envelope`, or null without them. */
  routing: Routing | null
}

export function readHandlers (path: string, source: unknown): RouteDefinition {
  if (source === null || typeof source !== 'object') {
    throw new InvalidHandlersError(path, `handlers must be an object or a module namespace, got ${describe(source)}`)
  }
  const object = source as Record<string, unknown>
  const handlers = {} as Handlers
  const handlerNames = {} as HandlerNames
  for (const [event, name, alias] of EVENT_NAMES) {
    const value = object[name]
    const aliasValue = alias === null ? undefined : object[alias]
    if (event === 'text' && object.messages !== undefined && (value ?? aliasValue) !== undefined) {
      throw new InvalidHandlersError(path, `"messages" and "${value === undefined ? alias : name}" both handle the text messages: give one (a handler per message type in "messages", or one handler for every message)`)
    }
    if (value !== undefined && aliasValue !== undefined) {
      throw new InvalidHandlersError(path, `"${name}" and "${alias}" are two names for one event: give only one`)
    }
    const handler = value ?? aliasValue
    if (handler !== undefined && typeof handler !== 'function') {
      throw new InvalidHandlersError(path, `handler "${value === undefined ? alias : name}" must be a function, got ${describe(handler)}`)
    }
    handlers[event] = handler as any
    handlerNames[event] = value === undefined && aliasValue !== undefined ? alias! : name
  }
  const routeOptions: Record<string, unknown> = {}
  const limits: Record<string, unknown> = {}
  let messageSchema: unknown
  let outboundSchema: unknown
  for (const key of Object.keys(object)) {
    if (LIMIT_NAMES.has(key)) {
      limits[key] = object[key]
    } else if (key === 'schema' && object.schema !== null && typeof object.schema === 'object') {
      // @fastify/websocket writes `hide` into the route's schema: give it a copy, so a
      // frozen schema works and the user's object is left as it was. The message schemas
      // are the sessions', not the handshake's: Fastify does not see them.
      const { message, outbound, ...handshake } = object.schema as Record<string, unknown>
      messageSchema = checkSchema(path, 'message', message)
      outboundSchema = checkSchema(path, 'outbound', outbound)
      routeOptions.schema = handshake
    } else if (ROUTE_NAMES.has(key)) {
      const value = object[key]
      if (value !== undefined) routeOptions[key] = value
    } else if (OWN_ROUTE_KEYS.has(key)) {
      throw new InvalidHandlersError(path, OWN_ROUTE_KEYS.get(key)!)
    } else if (PLUGIN_ONLY_OPTIONS.has(key)) {
      throw new InvalidHandlersError(path, `"${key}" is an option of the plugin, for every route: give it to app.register(websocketRooms, { ${key} })`)
    } else if (!HANDLER_NAMES.has(key) && (looksLikeHandler(key) || nearLimit(key))) {
      throw unknownKey(path, key)
    }
  }
  const routing = readRouting(path, object)
  if (routing?.messages != null && messageSchema !== undefined) {
    throw new InvalidHandlersError(path, '"messages" and schema.message both describe the text messages: give one (a schema per message type in "messages", or schema.message with onMessage)')
  }
  // After the unknown keys, so that a lone misspelt handler gets its suggestion.
  if (routing?.messages == null && !EVENT_NAMES.some(([event]) => event !== 'error' && event !== 'backpressure' && event !== 'invalidMessage' && handlers[event] !== undefined)) {
    throw new InvalidHandlersError(path, 'no session handler given (onConnected/onOpen, handleText/onMessage, handleBinary, onPong or onDisconnected/onClose)')
  }
  if (messageSchema !== undefined && handlers.text === undefined) {
    throw new InvalidHandlersError(path, 'schema.message describes text messages, but no handleText/onMessage handler is given')
  }
  if (messageSchema === undefined && routing?.messages == null && handlers.invalidMessage !== undefined) {
    throw new InvalidHandlersError(path, 'onInvalidMessage is given, but no schema.message nor "messages" to validate messages against')
  }
  if (routing?.messages != null) handlerNames.text = 'a handler of "messages"'
  return { handlers, handlerNames, routeOptions, limits, messageSchema, outboundSchema, routing }
}

/** A message schema: a JSON schema object (TypeBox's included) or a boolean, or undefined when absent. */
function checkSchema (path: string, part: string, schema: unknown): unknown {
  if (schema === undefined || typeof schema === 'boolean' || (schema !== null && typeof schema === 'object' && !Array.isArray(schema))) return schema
  throw new InvalidHandlersError(path, `schema.${part} must be a JSON schema (an object), got ${describe(schema)}`)
}

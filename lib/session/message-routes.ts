// A route's message routes: `messages` (per message type a schema, a handler, an optional
// reply schema and preHandlers), `events` (per type, what the server emits) and the envelope
// that carries both ({"type","id","data"}, its field names set per route). Reads them at
// registration, compiles every schema with the route's compilers (./message-codec, at
// app.ready()), and dispatches a session's text messages: envelope, validation, preHandlers,
// handler, reply. The session's queue calls dispatch() as it calls onMessage, so the
// handlers of one session run in order.
//
// Over 400 lines, for a reason: reading, compiling and dispatching share the compiled routes
// and the envelope's precomputed heads (private fields); the events' catalogue for server-side
// emits and the route records are small parts of the same reading. Asks live in ./asks.
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify'
import { isThenable } from '../call-hook'
import { HandlerError, InvalidArgumentError, InvalidEnvelopeError, InvalidHandlersError, UnknownMessageTypeError, describe } from '../errors'
import type { EventEncoder } from '../rooms/room-view'
import { closest } from '../suggest'
import { MessageCodec, stringify, validationError, type PoisoningActions, type ReadMessage } from './message-codec'

/** The type of the replies, both ways: a client's answer to session.ask(), the server's to a client's message with an id. */
export const REPLY = 'reply'
/** Longest id a client may give a message (UTF-16 code units): the reply echoes it. */
export const MAX_ID_LENGTH = 128

export interface Envelope {
  type: string
  id: string
  data: string
}

type Hook = (session: any, data: any) => unknown

/** One message type of `messages`, as given. */
interface MessageRoute {
  schema: unknown
  reply: unknown
  handler: Hook
  preHandler: Hook[]
}

/** What registerWebsocket() was given for message routes; null fields: not given. */
export interface Routing {
  messages: Map<string, MessageRoute> | null
  events: Map<string, unknown> | null
  envelope: Envelope
}

/**
 * One route as the plugin lists it (app.websocketRooms[kRouteDefinitions]): its path and the
 * schemas it enforces, as they were given, for documents derived from them.
 */
export interface RouteRecord {
  path: string
  schema: { querystring?: unknown, headers?: unknown, params?: unknown, message?: unknown, outbound?: unknown }
  messages?: Record<string, { schema?: unknown, reply?: unknown }>
  events?: Record<string, unknown>
  envelope: Envelope
  /** The shared schemas (app.addSchema) the route's schemas may refer to by $id. */
  sharedSchemas?: () => Record<string, unknown>
}

export const DEFAULT_ENVELOPE: Readonly<Envelope> = Object.freeze({ type: 'type', id: 'id', data: 'data' })
const MESSAGE_ROUTE_KEYS = ['schema', 'reply', 'handler', 'preHandler']

/** The message routes of a handlers object (`messages`, `events`, `envelope`), checked; null when it has none. */
export function readRouting (path: string, object: Record<string, unknown>): Routing | null {
  const { messages, events, envelope } = object
  if (messages === undefined && events === undefined) {
    if (envelope !== undefined) throw new InvalidHandlersError(path, '"envelope" is given, but neither "messages" nor "events"')
    return null
  }
  return {
    messages: messages === undefined ? null : readMessages(path, messages),
    events: events === undefined ? null : readEvents(path, events),
    envelope: readEnvelope(path, envelope)
  }
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function isSchema (value: unknown): boolean {
  return typeof value === 'boolean' || isRecord(value)
}

function checkType (path: string, where: string, type: string): void {
  if (type === '') throw new InvalidHandlersError(path, `${where} has an empty type: a type is a non-empty string`)
  if (type === REPLY) throw new InvalidHandlersError(path, `${where}["${REPLY}"]: "${REPLY}" is the type of replies, and cannot be a message or event type`)
}

function readMessages (path: string, messages: unknown): Map<string, MessageRoute> {
  if (!isRecord(messages)) throw new InvalidHandlersError(path, `"messages" must be an object of message types, got ${describe(messages)}`)
  const routes = new Map<string, MessageRoute>()
  for (const type of Object.keys(messages)) {
    checkType(path, 'messages', type)
    const where = `messages[${JSON.stringify(type)}]`
    const route = messages[type]
    if (!isRecord(route)) throw new InvalidHandlersError(path, `${where} must be an object ({ schema, handler, reply?, preHandler? }), got ${describe(route)}`)
    for (const key of Object.keys(route)) {
      if (!MESSAGE_ROUTE_KEYS.includes(key)) {
        const meant = closest(key, MESSAGE_ROUTE_KEYS)
        throw new InvalidHandlersError(path, `${where}: unknown key "${key}"${meant === null ? '' : ` (did you mean "${meant}"?)`}`)
      }
    }
    if (typeof route.handler !== 'function') throw new InvalidHandlersError(path, `${where}.handler must be a function, got ${describe(route.handler)}`)
    for (const part of ['schema', 'reply'] as const) {
      if (route[part] !== undefined && !isSchema(route[part])) throw new InvalidHandlersError(path, `${where}.${part} must be a JSON schema (an object), got ${describe(route[part])}`)
    }
    const preHandler = route.preHandler === undefined ? [] : [route.preHandler].flat()
    for (const hook of preHandler) {
      if (typeof hook !== 'function') throw new InvalidHandlersError(path, `${where}.preHandler must be a function or an array of functions, got ${describe(hook)} in it`)
    }
    routes.set(type, { schema: route.schema, reply: route.reply, handler: route.handler as Hook, preHandler: preHandler as Hook[] })
  }
  if (routes.size === 0) throw new InvalidHandlersError(path, '"messages" is empty: give at least one message type')
  return routes
}

function readEvents (path: string, events: unknown): Map<string, unknown> {
  if (!isRecord(events)) throw new InvalidHandlersError(path, `"events" must be an object of event types and their schemas, got ${describe(events)}`)
  const map = new Map<string, unknown>()
  for (const type of Object.keys(events)) {
    checkType(path, 'events', type)
    if (!isSchema(events[type])) throw new InvalidHandlersError(path, `events[${JSON.stringify(type)}] must be a JSON schema (an object), got ${describe(events[type])}`)
    map.set(type, events[type])
  }
  return map
}

function readEnvelope (path: string, envelope: unknown): Envelope {
  if (envelope === undefined) return DEFAULT_ENVELOPE
  if (!isRecord(envelope)) throw new InvalidHandlersError(path, `"envelope" must be an object ({ type?, id?, data? }: the field names), got ${describe(envelope)}`)
  for (const key of Object.keys(envelope)) {
    if (!(key in DEFAULT_ENVELOPE)) throw new InvalidHandlersError(path, `envelope: unknown key "${key}" (the keys are type, id and data)`)
    if (typeof envelope[key] !== 'string' || envelope[key] === '') throw new InvalidHandlersError(path, `envelope.${key} must be a non-empty string, got ${describe(envelope[key])}`)
    // A parsed message's own "__proto__" field cannot be read back by name.
    if (envelope[key] === '__proto__') throw new InvalidHandlersError(path, `envelope.${key} cannot be "__proto__"`)
  }
  const names = { ...DEFAULT_ENVELOPE, ...envelope } as Envelope
  if (new Set([names.type, names.id, names.data, 'error']).size !== 4) {
    throw new InvalidHandlersError(path, `envelope: the fields type, id and data need three names other than "error", got ${JSON.stringify(names)}`)
  }
  return Object.freeze(names)
}

/** A message type, compiled. */
interface CompiledRoute {
  /** Validates the data; null without a schema (any JSON value, undefined included). */
  check: MessageCodec | null
  /** Serializes the reply; null without a reply schema (JSON.stringify). */
  reply: MessageCodec | null
  handler: Hook
  preHandler: Hook[]
}

/** An event type, compiled: its serializer and the text that comes before its data. */
interface CompiledEvent {
  codec: MessageCodec
  /** `{"type":"chat.message","data":` */
  head: string
  /** `{"type":"chat.message","id":"` (an ask: its id and data follow) */
  askHead: string
}

/** What a session does for its router: symbols, out of reach of a user's session. */
export const kInvalidMessage = Symbol('fastify-websocket-rooms.invalidMessage')
export const kAnswer = Symbol('fastify-websocket-rooms.answer')

/** What the router needs of a session: sending a text, the invalid-message path, the pending asks. */
export interface RoutedSession {
  readonly log: FastifyBaseLogger
  writeText (text: string): void
  /** Counts and logs an invalid message; with `reply`, sends it, else onInvalidMessage (or a close with 1007). */
  [kInvalidMessage] (error: Error, text: string, reply: string | null): unknown
  /** Settles the pending ask `id` with the client's answer; false when none waits for it. */
  [kAnswer] (id: string | number, data: unknown, error: unknown): boolean
}

export class MessageRouter implements EventEncoder {
  readonly path: string
  readonly envelope: Envelope
  readonly #routing: Routing
  /** Parses the envelope, as a route with schema.message parses its messages. */
  readonly #parser: MessageCodec
  readonly #routes = new Map<string, CompiledRoute>()
  readonly #events = new Map<string, CompiledEvent>()
  readonly #replyHead: string
  readonly #dataSeparator: string
  readonly #askData: string

  constructor (path: string, routing: Routing, poisoning: PoisoningActions) {
    this.path = path
    this.#routing = routing
    const envelope = this.envelope = routing.envelope
    this.#parser = new MessageCodec(path, undefined, undefined, poisoning)
    const T = JSON.stringify(envelope.type)
    const I = JSON.stringify(envelope.id)
    const D = JSON.stringify(envelope.data)
    this.#replyHead = `{${T}:"${REPLY}",${I}:`
    this.#dataSeparator = `,${D}:`
    this.#askData = `",${D}:`
    for (const [type, route] of routing.messages ?? []) {
      const name = `messages[${JSON.stringify(type)}]`
      const labels = { message: `${name}.schema`, outbound: `${name}.reply`, argument: 'the reply', checked: envelope.data }
      this.#routes.set(type, {
        check: route.schema === undefined ? null : new MessageCodec(path, route.schema, undefined, poisoning, labels),
        reply: route.reply === undefined ? null : new MessageCodec(path, undefined, route.reply, poisoning, labels),
        handler: route.handler,
        preHandler: route.preHandler
      })
    }
    for (const [type, schema] of routing.events ?? []) {
      const name = `events[${JSON.stringify(type)}]`
      const codec = new MessageCodec(path, undefined, schema, poisoning, { message: name, outbound: name, argument: 'data', checked: 'data' })
      this.#events.set(type, { codec, head: `{${T}:${JSON.stringify(type)}${this.#dataSeparator}`, askHead: `{${T}:${JSON.stringify(type)},${I}:"` })
    }
  }

  /** True when the route routes the messages clients send (it has `messages`). */
  get routesMessages (): boolean {
    return this.#routes.size > 0
  }

  /**
   * The declared message type of a value receive() returned, else undefined: a label for
   * metrics and traces, so it is bounded by the route's types, whatever a client sends.
   */
  typeOf (value: unknown): string | undefined {
    if (value === null || typeof value !== 'object') return undefined
    const type = (value as Record<string, unknown>)[this.envelope.type]
    return typeof type === 'string' && this.#routes.has(type) ? type : undefined
  }

  /** The route's entry in the plugin's route list, schemas as given. */
  record (path: string, handshake: Record<string, unknown>, message: unknown, outbound: unknown): RouteRecord {
    return routeRecord(path, handshake, message, outbound, this.#routing)
  }

  /** Every codec of the route, to compile. */
  * #codecs (): Iterable<MessageCodec> {
    for (const route of this.#routes.values()) {
      if (route.check !== null) yield route.check
      if (route.reply !== null) yield route.reply
    }
    for (const event of this.#events.values()) yield event.codec
  }

  /** Compiles every schema at app.ready(), as MessageCodec.compileAtReady does for schema.message. */
  compileAtReady (instance: FastifyInstance, url: string, routeSchema: Record<string, unknown>, routeCompilers: { validatorCompiler?: unknown, serializerCompiler?: unknown }): void {
    for (const codec of this.#codecs()) codec.compileAtReady(instance, url, routeSchema, routeCompilers)
  }

  /** The route's preHandler that compiles in the first handshake what app.ready() could not. */
  readonly compileHook: preHandlerHookHandler = (request: FastifyRequest, reply: FastifyReply, done) => {
    for (const codec of this.#codecs()) {
      const error = codec.compileFor(request, reply)
      if (error !== undefined) {
        done(error)
        return
      }
    }
    done()
  }

  /** `{"type":<type>,"data":<data>}` through events[type]; a TypeError for a type that is not one. */
  encodeEvent (type: string, data: unknown): string {
    const event = this.#event(type)
    return event.head + event.codec.serialize(data) + '}'
  }

  /** `{"type":<type>,"id":"<id>","data":<data>}` through events[type] (session.ask()). */
  encodeAsk (type: string, id: string, data: unknown): string {
    const event = this.#event(type)
    return event.askHead + id + this.#askData + event.codec.serialize(data) + '}'
  }

  #event (type: string): CompiledEvent {
    const event = this.#events.get(type)
    if (event === undefined) throw unknownEvent(type, [...this.#events.keys()], `the events of "${this.path}"`)
    if (!event.codec.compiled) throw new Error(`fastify-websocket-rooms: event ${JSON.stringify(type)} of "${this.path}" is sent before its schema is compiled (at app.ready())`)
    return event
  }

  /**
   * A text message as it arrives, before the session's queue: parsed, and when it is a
   * client's reply to session.ask(), handed to the ask at once (a handler that awaits an ask
   * holds the queue, which the reply must not wait behind). Else what dispatch() takes, in the
   * message's turn: the parsed value, or a ParseFailure.
   */
  receive (session: RoutedSession, text: string): unknown {
    let value: unknown
    try {
      value = this.#parser.parse(text)
    } catch (error) {
      return new ParseFailure(error as Error)
    }
    if (value !== null && typeof value === 'object' && (value as Record<string, unknown>)[this.envelope.type] === REPLY) {
      const id = (value as Record<string, unknown>)[this.envelope.id]
      if (id !== undefined && isClientId(id)) {
        this.#answer(session, value as Record<string, unknown>, id as string | number)
        return ANSWERED
      }
    }
    return value
  }

  /** A text message in its turn in the session's queue, as receive() left it: the route's handleText when it has `messages` (a field: handed around as it is). */
  readonly dispatch = (session: RoutedSession, text: string, value: unknown): unknown => {
    if (value instanceof ParseFailure) return session[kInvalidMessage](validationError(value.error, undefined, null, 'message'), text, null)
    const { type: T, id: I, data: D } = this.envelope
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return session[kInvalidMessage](envelopeError(`must be a JSON object with a string "${T}", got ${describe(value)}`), text, null)
    }
    const message = value as Record<string, unknown>
    const id = message[I]
    if (id !== undefined && !isClientId(id)) {
      // No reply can name it: the message is invalid as one without an id is.
      return session[kInvalidMessage](envelopeError(`"${I}" must be a string of at most ${MAX_ID_LENGTH} characters or a safe integer, got ${describe(id)}`), text, null)
    }
    const replyTo = id === undefined ? null : (id as string | number)
    const type = message[T]
    if (typeof type !== 'string') return this.#invalid(session, text, replyTo, envelopeError(`"${T}" must be a string, got ${describe(type)}`))
    // A reply with a good id was answered at arrival (receive()).
    if (type === REPLY) return session[kInvalidMessage](envelopeError(`of type "${REPLY}" must have the "${I}" of the ask it answers`), text, null)
    const route = this.#routes.get(type)
    if (route === undefined) {
      const meant = closest(type, this.#routes.keys(), 2)
      return this.#invalid(session, text, replyTo, validationError(new UnknownMessageTypeError(describe(type), meant === null ? '' : ` (did you mean "${meant}"?)`), undefined, null, 'message'))
    }
    if (route.check === null) return this.#run(session, route, message[D], replyTo)
    const read = route.check.check(message[D])
    if (!(read instanceof Promise)) return read.valid ? this.#run(session, route, read.value, replyTo) : this.#invalid(session, text, replyTo, read.error)
    return read.then((settled: ReadMessage) => settled.valid ? this.#run(session, route, settled.value, replyTo) : this.#invalid(session, text, replyTo, settled.error))
  }

  #invalid (session: RoutedSession, text: string, id: string | number | null, error: Error): unknown {
    return session[kInvalidMessage](error, text, id === null ? null : this.#errorReply(id, (error as { code?: string }).code ?? 'FST_ERR_VALIDATION', error.message))
  }

  /** A client's answer to session.ask(): `{"type":"reply","id":"s1","data":...}` (or `"error"`). */
  #answer (session: RoutedSession, message: Record<string, unknown>, id: string | number): void {
    if (!session[kAnswer](id, message[this.envelope.data], message.error)) {
      // Late (after its timeout) or twice: nothing waits for it any more.
      session.log.debug({ id }, 'a reply that answers no pending ask; ignored')
    }
  }

  /** The preHandlers, then the handler; its result is the reply. Without an id, a throw goes to the queue (onError). */
  #run (session: RoutedSession, route: CompiledRoute, data: unknown, id: string | number | null): unknown {
    let result: unknown
    try {
      result = route.preHandler.length === 0 ? route.handler(session, data) : runHooks(session, route, data, 0)
    } catch (error) {
      return this.#failed(session, id, error)
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then((value) => this.#reply(session, route, id, value), (error: unknown) => this.#failed(session, id, error))
    }
    return this.#reply(session, route, id, result)
  }

  #reply (session: RoutedSession, route: CompiledRoute, id: string | number | null, value: unknown): void {
    if (id === null) return
    let data: string
    try {
      data = value === undefined ? 'null' : route.reply === null ? stringify(value, 'the reply') : route.reply.serialize(value)
    } catch (error) {
      session.log.error({ err: error }, 'a message handler returned a reply that cannot be serialized; answered with an error')
      session.writeText(this.#errorReply(id, 'FST_WS_ROOMS_HANDLER_ERROR', 'the reply could not be serialized'))
      return
    }
    session.writeText(this.#replyHead + idText(id) + this.#dataSeparator + data + '}')
  }

  #failed (session: RoutedSession, id: string | number | null, error: unknown): void {
    if (id === null) throw error
    const failure = error instanceof Error ? error : new HandlerError(String(error))
    const status = (failure as { statusCode?: unknown }).statusCode
    // A refusal meant for the client (a 4xx) is not the server's fault.
    if (typeof status === 'number' && status < 500) session.log.debug({ err: failure }, 'a message was refused; answered with an error')
    else session.log.error({ err: failure }, 'a message handler failed; answered with an error')
    const code = (failure as { code?: unknown }).code
    session.writeText(this.#errorReply(id, typeof code === 'string' ? code : 'FST_WS_ROOMS_HANDLER_ERROR', failure.message))
  }

  #errorReply (id: string | number, code: string, message: string): string {
    return `${this.#replyHead}${idText(id)},"error":${JSON.stringify({ code, message })}}`
  }
}

/** What receive() returns for a reply it handed to its ask: nothing to queue. */
export const ANSWERED = Symbol('fastify-websocket-rooms.answered')

/** A text that is not JSON, found at arrival, answered in its turn. */
class ParseFailure {
  readonly error: Error
  constructor (error: Error) {
    this.error = error
  }
}

function runHooks (session: RoutedSession, route: CompiledRoute, data: unknown, from: number): unknown {
  const hooks = route.preHandler
  for (let i = from; i < hooks.length; i++) {
    const result = hooks[i]!(session, data)
    if (isThenable(result)) return Promise.resolve(result).then(() => runHooks(session, route, data, i + 1))
  }
  return route.handler(session, data)
}

function envelopeError (what: string): Error {
  return validationError(new InvalidEnvelopeError(what), undefined, null, 'message')
}

function isClientId (id: unknown): boolean {
  return typeof id === 'string' ? id.length <= MAX_ID_LENGTH : Number.isSafeInteger(id)
}

function idText (id: string | number): string {
  return typeof id === 'string' ? JSON.stringify(id) : String(id)
}

function unknownEvent (type: unknown, known: string[], where: string): Error {
  const meant = typeof type === 'string' ? closest(type, known, 2) : null
  return new InvalidArgumentError('type', `one of ${where} (${known.length === 0 ? 'none is declared' : known.map((k) => JSON.stringify(k)).join(', ')})`, `${describe(type)}${meant === null ? '' : ` (did you mean "${meant}"?)`}`)
}

function routeRecord (path: string, handshake: Record<string, unknown>, message: unknown, outbound: unknown, routing: Routing | null): RouteRecord {
  const schema: RouteRecord['schema'] = {}
  for (const part of ['querystring', 'headers', 'params'] as const) {
    if (handshake[part] !== undefined) schema[part] = handshake[part]
  }
  // Fastify's other name for it.
  if (handshake.query !== undefined) schema.querystring = handshake.query
  if (message !== undefined) schema.message = message
  if (outbound !== undefined) schema.outbound = outbound
  const record: RouteRecord = { path, schema, envelope: routing?.envelope ?? DEFAULT_ENVELOPE }
  if (routing?.messages != null) {
    record.messages = {}
    for (const [type, route] of routing.messages) {
      record.messages[type] = {
        ...(route.schema === undefined ? {} : { schema: route.schema }),
        ...(route.reply === undefined ? {} : { reply: route.reply })
      }
    }
  }
  if (routing?.events != null) record.events = Object.fromEntries(routing.events)
  return record
}

/** The record of a route with neither messages nor events. */
export function plainRouteRecord (path: string, handshake: Record<string, unknown>, message: unknown, outbound: unknown): RouteRecord {
  return routeRecord(path, handshake, message, outbound, null)
}

/**
 * The events of every route of the instance, for emits from the server's side
 * (app.websocketRooms.room(name).emit(), to().emit()), which belong to no route: each event
 * type once, through the schema and envelope of the route that declares it. A type that two
 * routes declare must have the same schema and envelope in both (else registerWebsocket()
 * throws): a broadcast is encoded once for every member, whatever its route.
 */
export class EventCatalog implements EventEncoder {
  readonly #byType = new Map<string, { router: MessageRouter, schema: string }>()

  add (router: MessageRouter, events: Map<string, unknown> | null): void {
    for (const [type, schema] of events ?? []) {
      const text = JSON.stringify([schema, router.envelope])
      const known = this.#byType.get(type)
      if (known === undefined) {
        this.#byType.set(type, { router, schema: text })
      } else if (known.schema !== text) {
        throw new InvalidHandlersError(router.path, `event ${JSON.stringify(type)} is declared by "${known.router.path}" too, with another schema or envelope: app.websocketRooms emits each event type in one form to every route, so give it one schema and envelope`)
      }
    }
  }

  encodeEvent (type: string, data: unknown): string {
    const known = this.#byType.get(type)
    if (known === undefined) throw unknownEvent(type, [...this.#byType.keys()], 'the events of the routes')
    return known.router.encodeEvent(type, data)
  }
}

/** The encoder of a route without events: every emit is a TypeError that says so. */
export const noEvents: EventEncoder = {
  encodeEvent (type: string): string {
    throw unknownEvent(type, [], 'the route\'s events')
  }
}

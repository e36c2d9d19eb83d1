// The AsyncAPI 3.0 document of a plugin instance's routes: a pure function of the routes'
// records. One channel per path (the handshake's query and headers in its WebSocket
// binding), a receive operation per message a client sends (with its reply where one is
// declared) and a send operation per event the server emits, each message written out
// with its envelope ({ type, id, data }), so the document says what goes over the wire.
import { IdSet, idFor } from './ids'
import { SchemaComponents, plainCopy, type JsonSchema } from './schema'

/** What the plugin keeps of each route for its document (written at registration). */
export interface RouteRecord {
  /** The route's full path, prefix included, in Fastify's syntax (`/rooms/:room`). */
  path: string
  schema: { querystring?: unknown, headers?: unknown, params?: unknown, message?: unknown, outbound?: unknown }
  /** Message routes: each type a client may send, its data schema and its reply's. */
  messages?: Record<string, { schema?: unknown, reply?: unknown }>
  /** What the server emits: each type's data schema. */
  events?: Record<string, unknown>
  /** The envelope's field names on the wire. */
  envelope: { type: string, id: string, data: string }
  /** The shared schemas (app.addSchema) the route's schemas may refer to by $id. */
  sharedSchemas?: () => Record<string, unknown>
}

/** The document's info object: title and version, and any other field AsyncAPI's info takes. */
export interface AsyncApiInfo {
  title: string
  version: string
  [field: string]: unknown
}

export const ASYNCAPI_VERSION = '3.0.0'

/** The type of a reply's envelope, whatever the route's field names. */
const REPLY_TYPE = 'reply'
const JSON_TYPE = 'application/json'
/** The id of a message that asks for a reply (the client's choice), which the reply carries back. */
const REQUEST_ID = {
  description: 'Chosen by the sender to get a reply, which carries it back.',
  anyOf: [{ type: 'string', maxLength: 128 }, { type: 'integer', minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }]
}
/** The id of an event the server sends as a question (session.ask()): "s1", "s2"... */
const ASK_ID = { type: 'string', description: 'Present when the server asks (session.ask()): the client\'s reply carries it back.' }
const ERROR = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' } },
  required: ['code', 'message']
}

interface Channel {
  address: string
  title: string
  parameters?: Record<string, Record<string, unknown>>
  messages: Record<string, Record<string, unknown>>
  bindings: { ws: Record<string, unknown> }
}

/** Builds one document; its ids are unique across it. */
class DocumentBuilder {
  readonly channels: Record<string, Channel> = {}
  readonly operations: Record<string, Record<string, unknown>> = {}
  readonly components = new SchemaComponents()
  readonly #channelIds = new IdSet()
  readonly #operationIds = new IdSet()

  addRoute (route: RouteRecord): void {
    const channelId = this.#channelIds.take(route.path.replace(/^\//, ''), 'root')
    const at = `#/channels/${channelId}`
    const shared = route.sharedSchemas?.() ?? {}
    const schema = (part: unknown, pointer: string, name: string): JsonSchema =>
      this.components.convert(part, pointer, `route "${route.path}" ${name}`, shared)
    const { address, parameters } = channelAddress(route.path, plainCopy(route.schema.params ?? {}, `route "${route.path}" schema.params`))
    const ws: Record<string, unknown> = { method: 'GET' }
    if (route.schema.querystring !== undefined) ws.query = objectSchema(schema(route.schema.querystring, `${at}/bindings/ws/query`, 'schema.querystring'))
    if (route.schema.headers !== undefined) ws.headers = objectSchema(schema(route.schema.headers, `${at}/bindings/ws/headers`, 'schema.headers'))
    ws.bindingVersion = '0.1.0'
    const channel: Channel = { address, title: route.path, ...(parameters === undefined ? {} : { parameters }), messages: {}, bindings: { ws } }
    this.channels[channelId] = channel

    const messageIds = new IdSet()
    const addMessage = (name: string, message: Record<string, unknown>): string => {
      const id = messageIds.take(name, 'message')
      channel.messages[id] = message
      return id
    }
    const ref = (messageId: string): { $ref: string } => ({ $ref: `${at}/messages/${messageId}` })
    const addOperation = (action: 'send' | 'receive', messageId: string, reply?: string[]): void => {
      const operation: Record<string, unknown> = { action, channel: { $ref: at }, messages: [ref(messageId)] }
      if (reply !== undefined) operation.reply = { channel: { $ref: at }, messages: reply.map(ref) }
      this.operations[this.#operationIds.take(`${channelId}.${action}.${messageId}`, 'operation')] = operation
    }
    const env = route.envelope
    const data = (value: unknown, messageId: string, name: string): JsonSchema =>
      schema(value, `${at}/messages/${messageId}/payload/properties/${env.data}`, name)

    if (route.messages !== undefined) {
      let errorReply: string | undefined
      for (const [type, definition] of Object.entries(route.messages)) {
        const messageId = messageIds.take(type, 'message')
        channel.messages[messageId] = envelopeMessage(type, env, { [env.type]: { const: type }, [env.id]: REQUEST_ID }, [env.type], definition.schema, (value) => data(value, messageId, `messages["${type}"].schema`))
        let reply: string[] | undefined
        if (definition.reply !== undefined) {
          const replyId = messageIds.take(`${messageId}.reply`, 'reply')
          channel.messages[replyId] = envelopeMessage(`${type} reply`, env, { [env.type]: { const: REPLY_TYPE }, [env.id]: REQUEST_ID }, [env.type, env.id], definition.reply, (value) => data(value, replyId, `messages["${type}"].reply`))
          errorReply ??= addMessage('reply.error', {
            name: REPLY_TYPE,
            title: 'Error reply',
            summary: 'The answer to a message with an id whose validation or handler failed.',
            contentType: JSON_TYPE,
            payload: { type: 'object', properties: { [env.type]: { const: REPLY_TYPE }, [env.id]: REQUEST_ID, error: ERROR }, required: [env.type, env.id, 'error'] }
          })
          reply = [replyId, errorReply]
        }
        addOperation('receive', messageId, reply)
      }
    }
    // On a route with messages, the server may ask (session.ask()): an event with an id, which
    // the client's reply carries back.
    const asks = route.messages !== undefined
    for (const [type, value] of Object.entries(route.events ?? {})) {
      const messageId = messageIds.take(type, 'event')
      const fields = asks ? { [env.type]: { const: type }, [env.id]: ASK_ID } : { [env.type]: { const: type } }
      channel.messages[messageId] = envelopeMessage(type, env, fields, [env.type], value, (v) => data(v, messageId, `events["${type}"]`))
      addOperation('send', messageId)
    }
    if (asks && route.events !== undefined && Object.keys(route.events).length > 0) {
      addOperation('receive', addMessage('ask.reply', {
        name: REPLY_TYPE,
        title: 'Answer to an ask',
        summary: 'The client\'s answer to an event the server sent with an id (session.ask()): its data, or an error.',
        contentType: JSON_TYPE,
        payload: { type: 'object', properties: { [env.type]: { const: REPLY_TYPE }, [env.id]: ASK_ID, [env.data]: {}, error: ERROR }, required: [env.type, env.id] }
      }))
    }

    // A route without message routes: its one schema of each way; a way without one, any
    // payload (one message for both ways when neither has a schema).
    const { message, outbound } = route.schema
    if (route.messages === undefined) {
      const inbound = message === undefined ? addMessage('message', plainMessage()) : this.#typedMessage(channel, messageIds, 'message', message, schema, at)
      addOperation('receive', inbound)
      if (outbound === undefined && route.events === undefined) addOperation('send', message === undefined ? inbound : addMessage('outbound', plainMessage()))
    }
    if (outbound !== undefined) addOperation('send', this.#typedMessage(channel, messageIds, 'outbound', outbound, schema, at))
  }

  /** A message whose payload is the route's schema as it is (schema.message, schema.outbound). */
  #typedMessage (channel: Channel, ids: IdSet, name: string, value: unknown, schema: (part: unknown, pointer: string, name: string) => JsonSchema, at: string): string {
    const id = ids.take(name, 'message')
    channel.messages[id] = { name, contentType: JSON_TYPE, payload: schema(value, `${at}/messages/${id}/payload`, `schema.${name}`) }
    return id
  }
}

/** A message in its envelope: the given fields, and `data` through its schema (any value without one). */
function envelopeMessage (name: string, env: RouteRecord['envelope'], fields: Record<string, unknown>, required: string[], dataSchema: unknown, convert: (value: unknown) => JsonSchema): Record<string, unknown> {
  const data = dataSchema === undefined ? {} : convert(dataSchema)
  const message: Record<string, unknown> = { name, contentType: JSON_TYPE }
  if (typeof data === 'object' && typeof data.description === 'string') message.summary = data.description
  message.payload = {
    type: 'object',
    properties: { ...fields, [env.data]: data },
    required: dataSchema === undefined ? required : [...required, env.data]
  }
  return message
}

function plainMessage (): Record<string, unknown> {
  return { name: 'message', summary: 'Any text or binary message: the route declares no schema for it.' }
}

/** The binding's query and headers must be object schemas with properties. */
function objectSchema (schema: JsonSchema): JsonSchema {
  if (typeof schema === 'object' && schema.type === 'object' && typeof schema.properties === 'object') return schema
  return { type: 'object', properties: {}, allOf: [schema] }
}

/**
 * Fastify's path as an AsyncAPI address: `:name` (and `:name(regexp)`) as `{name}`, `*` as
 * `{wildcard}`, `::` as a literal colon; each parameter described from schema.params.
 */
function channelAddress (path: string, params: unknown): { address: string, parameters?: Record<string, Record<string, unknown>> } {
  const parameters: Record<string, Record<string, unknown>> = {}
  const properties: Record<string, any> = params !== null && typeof params === 'object' && typeof (params as any).properties === 'object' ? (params as any).properties : {}
  const address = path.replace(/::|:([A-Za-z0-9_$-]+)(\([^)]*\))?|\*/g, (match: string, name?: string, pattern?: string) => {
    if (match === '::') return ':'
    const key = name === undefined ? 'wildcard' : idFor(name, 'param')
    const parameter: Record<string, unknown> = {}
    const property = properties[name ?? '*']
    if (typeof property?.description === 'string') parameter.description = property.description
    else if (pattern !== undefined) parameter.description = `Matches ${pattern.slice(1, -1)}`
    else if (name === undefined) parameter.description = 'The rest of the path (params["*"]).'
    if (Array.isArray(property?.enum) && property.enum.every((value: unknown) => typeof value === 'string')) parameter.enum = property.enum
    if (typeof property?.default === 'string') parameter.default = property.default
    parameters[key] = parameter
    return `{${key}}`
  })
  return Object.keys(parameters).length === 0 ? { address } : { address, parameters }
}

/** The AsyncAPI 3.0 document of these routes, in their order. */
export function asyncApiDocument (routes: readonly RouteRecord[], info: AsyncApiInfo): Record<string, unknown> {
  const builder = new DocumentBuilder()
  for (const route of routes) builder.addRoute(route)
  const document: Record<string, unknown> = {
    asyncapi: ASYNCAPI_VERSION,
    info,
    channels: builder.channels,
    operations: builder.operations
  }
  if (Object.keys(builder.components.schemas).length > 0) document.components = { schemas: builder.components.schemas }
  // A copy that shares nothing (the constants above, the app's info): the caller may change it.
  return JSON.parse(JSON.stringify(document))
}

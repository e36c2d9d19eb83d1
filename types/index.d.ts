// Public types of fastify-websocket-rooms. Written by hand, in the shape every @fastify
// plugin uses (`export =` plus a namespace), so that one file types
// `import plugin from`, `import { x } from` and `require()` alike.
import type { IncomingHttpHeaders } from 'node:http'
import type {
  FastifyBaseLogger,
  FastifyPluginAsync,
  FastifyRequest,
  FastifySchema,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
  RouteShorthandOptions
} from 'fastify'
import type { ServerOptions as WsServerOptions, WebSocket } from 'ws'
// The plugin registers @fastify/websocket, so its decorators (app.injectWS for tests,
// app.websocketServer) are there at run time: its declarations come with ours.
import '@fastify/websocket'

declare module 'fastify' {
  // The type parameters must repeat Fastify's own; only the type provider is used here.
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    /**
     * Adds a WebSocket endpoint at `path` (in this instance's scope, with its prefix and hooks).
     * `handlers` is an object, or an ES module namespace, with the session handlers under either
     * of their names and the Fastify route options that run before the upgrade. The schemas
     * type the session and the messages: TypeBox's by themselves, others through the
     * instance's type provider (`app.withTypeProvider<...>()`).
     */
    registerWebsocket<Query = unknown, Headers = unknown, Params = unknown, Message = undefined, Outbound = undefined, Schemas = {}, Replies = {}, Events = undefined>(
      path: string,
      handlers: fastifyWebsocketRooms.WebsocketHandlers<Query, Headers, Params, Message, Outbound, TypeProvider, Schemas, Replies, Events>
    ): this
    /** Rooms of this instance, for HTTP routes and jobs. */
    websocketRooms: fastifyWebsocketRooms.WebsocketRooms
    /** Open sessions of this instance by id (read-only). */
    websocketSessions: ReadonlyMap<string, fastifyWebsocketRooms.WebSocketSession>
  }
}

/** Brands the values redisAdapter() returns, so that no other object passes for one. */
declare const adapterKind: unique symbol

type FastifyWebsocketRooms = FastifyPluginAsync<fastifyWebsocketRooms.WebsocketRoomsOptions>

/**
 * The static type of a TypeBox 1.x schema (the `typebox` package), computed by TypeBox itself:
 * unlike 0.3x, its schemas carry no `static` member to read. The package is optional, so its
 * absence must not be an error: the import is ignored, and then resolves to `any`, which
 * Parsed never reaches (without the package, no schema has TypeBox 1.x's `~kind`).
 */
// @ts-ignore: `typebox` is absent unless the app uses TypeBox 1.x
type TypeBoxStatic<Schema> = import('typebox', { with: { 'resolution-mode': 'import' } }).Static<Schema>

/** T, unless it is `unknown` (or `any`): then the fallback. */
type Known<T, Fallback> = unknown extends T ? Fallback : T

/**
 * What a schema makes of a handshake part or a message: its static type for a schema of
 * either TypeBox line, else what the instance's type provider makes of it, else the fallback.
 * `@sinclair/typebox` 0.3x is read structurally (its `static` member), so schemas from its ESM
 * and CommonJS builds, whose types differ, both work; `typebox` 1.x (recognised by its `~kind`)
 * through its own `Static`. `Side`: the provider's validator (what comes in) or serializer.
 */
type Parsed<Schema, Fallback, Provider extends FastifyTypeProvider = FastifyTypeProviderDefault, Side extends 'validator' | 'serializer' = 'validator'> =
  Schema extends { static: infer T } ? Known<T, Fallback>
    : Schema extends { '~kind': string } ? Known<TypeBoxStatic<Schema>, Fallback>
      : Known<(Provider & { schema: Schema })[Side], Fallback>

/** The message handlers' argument: the text without schema.message (undefined), else the value it describes. */
type MessageOf<Schema, Provider extends FastifyTypeProvider> = [Schema] extends [undefined] ? string : Parsed<Schema, unknown, Provider>
/** What sendJson() and broadcastJson() accept: anything without schema.outbound (undefined), else what it describes. */
type OutboundOf<Schema, Provider extends FastifyTypeProvider> = [Schema] extends [undefined] ? unknown : Parsed<Schema, unknown, Provider, 'serializer'>
/** A route's events, as the data each type takes: none without `events` (undefined). */
type EventsOf<Events, Provider extends FastifyTypeProvider> = [Events] extends [undefined] ? {} : { [K in keyof Events]: Parsed<Events[K], unknown, Provider, 'serializer'> }
/** What a message handler returns: anything without a reply schema (undefined), else what it describes. */
type ReplyOf<Schema, Provider extends FastifyTypeProvider> = [Schema] extends [undefined] ? unknown : Parsed<Schema, unknown, Provider, 'serializer'>

declare namespace fastifyWebsocketRooms {
  /** A message: a string goes out as a text frame, binary data as a binary frame. */
  export type Message = string | Buffer | Uint8Array | ArrayBuffer | ArrayBufferView
  /** Binary data accepted by writeData(). */
  export type BinaryData = Buffer | Uint8Array | ArrayBuffer | ArrayBufferView

  /** What happens to a message past a limit: the session is closed, or the message dropped (counted). */
  export type LimitPolicy = 'close' | 'drop'

  export interface RateLimitOptions {
    /** Messages a session may send per interval. */
    max: number
    /** The interval, in ms. */
    interval: number
    /** Past the limit: 'close' the session with 1008 (default), or 'drop' the message. */
    policy?: LimitPolicy
  }

  /** Checks an upgrade's Origin header; false refuses it with 403. */
  export type OriginCheck = (origin: string, request: FastifyRequest) => boolean | Promise<boolean>

  /** Limits each route may set for itself in its handlers object; the plugin options give their defaults. */
  export interface RouteLimitOptions {
    /** Bytes a session left unread at its socket from earlier turns of the event loop past which a message is not sent. Default 1 MiB. */
    maxBackpressure?: number
    /** Past maxBackpressure: 'close' the session with 1013 (default), or 'drop' the message. */
    backpressurePolicy?: LimitPolicy
    /** Messages waiting for a busy handler past which the session's socket is not read until they are handled. Default 100. */
    maxQueuedMessages?: number
    /** Messages per interval a session may send; false or null: no limit (a route's own turns the plugin's off). Default: no limit. */
    rateLimit?: RateLimitOptions | false | null
    /** Origins that may upgrade (exact, case-insensitive), or a check. Others get 403. Default: any. */
    allowedOrigins?: string[] | OriginCheck | null
  }

  export interface WebsocketRoomsOptions extends RouteLimitOptions {
    /** Largest message accepted, in bytes; a bigger one closes the session with 1009. Default 1 MiB. */
    maxPayload?: number
    /** How long app.close() waits for the close handshake before it cuts clients off, in ms. Default 5000. */
    closeTimeout?: number
    /** Interval of the server's pings, in ms; a session that missed the previous pong is cut off. 0 turns pings off. Default 30000. */
    heartbeatInterval?: number
    /** Open sessions past which an upgrade is refused with 503. Default: no cap. */
    maxSessions?: number
    /** Rooms one session may be in at once; one more join throws FST_WS_ROOMS_TOO_MANY_ROOMS. Default 100. */
    maxRoomsPerSession?: number
    /** Longest room name, in UTF-16 code units (a string's `length`); a longer one is a TypeError. Default 256. */
    maxRoomNameLength?: number
    /** Other options for the ws server (perMessageDeflate, ...), when this plugin registers @fastify/websocket. */
    websocketOptions?: Omit<WsServerOptions, 'noServer' | 'server' | 'port' | 'host' | 'path' | 'maxPayload'>
    /** 'shared': a broadcast is deflated once for every session that negotiated permessage-deflate (the server answers with server_no_context_takeover). Default false. */
    compression?: 'shared' | false
    /** Rooms that span several servers: `redisAdapter({ url })`. Default: in-memory rooms, this process only. */
    adapter?: WebsocketRoomsAdapter | null
    /** The window over which each room's presence changes are gathered into one onPresence call, in ms. Default 250. */
    presenceInterval?: number
    /**
     * Called with a room's joins and leaves, gathered over presenceInterval: once in the cluster
     * for each change, on the node where it happened (for the members of a node that died, on
     * one surviving node). Not awaited; a throw or rejection is logged.
     */
    onPresence?: ((room: ServerRoom, diff: PresenceDiff) => unknown) | null
    /**
     * Called when a room gets its first member, once in the cluster (on the node where it
     * joined). A room that gets and loses members within one turn of the event loop of a
     * node is neither occupied nor vacated. Not awaited; a throw or rejection is logged.
     */
    onRoomOccupied?: ((room: ServerRoom) => unknown) | null
    /** Called when a room loses its last member, once in the cluster (where it left; for a dead node's members, on the survivor that found it dead). */
    onRoomVacated?: ((room: ServerRoom) => unknown) | null
    /**
     * Keeps each room's published messages (publish()) so that sessions can recover what they
     * missed (recover()) and apps can read them (history()): the last `size` (default 100) of
     * each room, each for `ttl` ms (default 300000); a room's stream ends `ttl` after its last
     * message. In this process without an adapter, in Redis with one. Default: off.
     */
    history?: HistoryOptions | boolean | null
    /**
     * Sessions that survive a lost connection: kept `window` ms in their rooms, what they are
     * sent kept for them, and resumed by a handshake that brings `session.resumeToken` in the
     * query parameter `param` (default 'resume'); app.close() closes with 1012 instead of
     * 1001. A route opts out with `resume: false`. Default: off.
     */
    resume?: ResumeOptions | false | null
    /**
     * Prometheus metrics through prom-client (an optional peer dependency): `true` for
     * prom-client's default registry, or `{ registry, prefix }`. Default: off. See docs/observability.md.
     */
    metrics?: MetricsOptions | boolean | null
    /**
     * An OpenTelemetry span per handler run, through @opentelemetry/api (an optional peer
     * dependency), child of the handshake's `traceparent`; with redisAdapter, carried to the
     * other servers. Default: off. See docs/observability.md.
     */
    tracing?: boolean | null
    /** The AsyncAPI document of the routes (app.websocketRooms.asyncapi()): its info, and `path` to serve it (GET, JSON). Default: not served. */
    asyncapi?: AsyncApiOptions | null
  }

  /** What the plugin uses of a prom-client Registry (of any copy of prom-client). */
  export interface MetricsRegistry {
    registerMetric (metric: any): void
    getSingleMetric (name: string): unknown
    removeSingleMetric (name: string): void
    metrics (): Promise<string>
  }

  export interface MetricsOptions {
    /** A prom-client Registry (fastify-metrics' own, say). Default: prom-client's default registry. */
    registry?: MetricsRegistry
    /** Before every metric's name. Default 'websocket_rooms_'. */
    prefix?: string
  }

  export interface AsyncApiOptions {
    /** Serves the document at this path (a GET route added at registration), e.g. '/asyncapi.json'. Default: not served. */
    path?: string | null
    /** The document's info. Default `{ title: 'WebSocket API', version: '1.0.0' }`. */
    info?: Partial<AsyncApiInfo>
  }

  /** AsyncAPI's info object. */
  export interface AsyncApiInfo {
    title: string
    version: string
    description?: string
    termsOfService?: string
    contact?: { name?: string, url?: string, email?: string }
    license?: { name: string, url?: string }
    tags?: Array<{ name: string, description?: string }>
    externalDocs?: { url: string, description?: string }
    [extension: `x-${string}`]: unknown
  }

  /** A reference inside the document: `#/channels/…`, `#/components/schemas/…`. */
  export interface AsyncApiReference { $ref: string }

  /** An AsyncAPI 3.0 document of a plugin instance's WebSocket routes. */
  export interface AsyncApiDocument {
    asyncapi: string
    info: AsyncApiInfo
    /** One channel per route: its address (`/rooms/{room}`), messages and WebSocket binding. */
    channels: Record<string, {
      address: string
      title: string
      parameters?: Record<string, { description?: string, enum?: string[], default?: string }>
      messages: Record<string, { name: string, title?: string, summary?: string, contentType?: string, payload?: unknown }>
      bindings: { ws: { method: 'GET', query?: unknown, headers?: unknown, bindingVersion: string } }
    }>
    /** `receive`: what clients send; `send`: what the server sends. */
    operations: Record<string, {
      action: 'send' | 'receive'
      channel: AsyncApiReference
      messages: AsyncApiReference[]
      reply?: { channel: AsyncApiReference, messages: AsyncApiReference[] }
    }>
    components?: { schemas: Record<string, unknown> }
  }

  export interface ResumeOptions {
    /** How long a session whose connection was lost is kept, in ms. */
    window: number
    /** The handshake query parameter that carries the token, taken out of `query`. Default 'resume'. */
    param?: string
  }

  /** Why a handshake's resume token did not resume its session. */
  export type ResumeFailure = 'expired' | 'unknown' | 'overflow' | 'history' | 'lost'

  export interface HistoryOptions {
    /** Messages kept per room. Default 100. */
    size?: number
    /** How long a message is kept, and a room's stream after its last message, in ms. Default 300000. */
    ttl?: number
  }

  /** A position in a room's stream of published messages: offsets 1, 2, 3... within an epoch. */
  export interface StreamPosition {
    offset: number
    epoch: string
  }

  /** What recover() did: replayed every missed message (then live ones follow), or none, for the app to send a snapshot. */
  export interface RecoverResult {
    recovered: boolean
    replayed: number
  }

  /** A published message as the history keeps it: text as a string, binary as a Buffer. */
  export interface HistoryMessage {
    offset: number
    message: string | Buffer
  }

  /** What history() read: the stream's epoch and last offset, its messages oldest first, and whether none in the range asked for is missing. */
  export interface RoomHistory {
    epoch: string
    offset: number
    messages: HistoryMessage[]
    complete: boolean
  }

  /** history(): the last `limit` messages (default: all kept), or with `since` the first `limit` after that position. */
  export interface HistoryQuery {
    limit?: number
    since?: StreamPosition
  }

  /** Builds a published message with the position it gets: called once the position is known, and again if another server took it first. */
  export type BuildPublished = (position: StreamPosition) => Message

  /** A member of a room as presence lists it: its session, the node that holds it, and the info it set (null by default). */
  export interface PresenceEntry {
    sessionId: string
    nodeId: string
    info: unknown
  }

  /** A room's presence changes over one presenceInterval. A changed info is a leave of the old entry and a join of the new. */
  export interface PresenceDiff {
    joins: PresenceEntry[]
    leaves: PresenceEntry[]
  }

  /** Who is in a room, on every node; complete is false when some node's entries could not be read (Redis away: this node's only). */
  export interface RoomPresence {
    members: PresenceEntry[]
    complete: boolean
  }

  /** What redisAdapter() returns, for the plugin's `adapter` option (an opaque value). */
  export interface WebsocketRoomsAdapter {
    readonly [adapterKind]: string
  }

  /**
   * A connection of the official Redis client (`createClient()` or `createCluster()` from `redis`
   * or `@redis/client`, version 5 or 6). Typed loosely so that clients with any modules, scripts or protocol fit.
   */
  export interface RedisConnection {
    readonly isOpen: boolean
    readonly isReady: boolean
    duplicate (...args: any[]): any
    publish (...args: any[]): Promise<any>
  }

  /**
   * A Redis Cluster for redisAdapter(): the options of `createCluster()` (from `redis` or
   * `@redis/client`), typed loosely. The adapter adds its own defaults (no offline queue, its
   * connectTimeout and reconnection backoff) and closes the cluster client on app.close().
   */
  export interface RedisClusterAdapterOptions {
    /** Some of the cluster's nodes, to find the others from. */
    rootNodes: Array<{ url?: string, [option: string]: any }>
    /** Options for every node's connection: credentials, TLS, timeouts. */
    defaults?: Record<string, any>
    [option: string]: any
  }

  export interface RedisAdapterOptions {
    /** Where Redis is (`redis://` or `rediss://`); the adapter opens and closes its two connections. A Redis Cluster node's URL opens that cluster. Give this, `cluster` or `client`. */
    url?: string
    /** A Redis Cluster: `{ rootNodes: [{ url }] }` and any other option of `createCluster()`. Give this, `url` or `client`. */
    cluster?: RedisClusterAdapterOptions
    /** Your own connection (`createClient()`), or cluster client (`createCluster()`), connected by the adapter if it is not yet, never closed by it. Give this, `url` or `cluster`. */
    client?: RedisConnection
    /** Your own connection for subscriptions, with a `client` of `createClient()`. Default: `client.duplicate()`, closed by the adapter. */
    subscriber?: RedisConnection
    /** Prefix of every key and channel, so apps (and tests) can share one Redis. No `{` or `}`, and neither contains ":room:" nor ends with ":room" (room channels are `{<keyPrefix>:room:<name>}`). Default 'fastify-websocket-rooms'. */
    keyPrefix?: string
    /** Redis 7 sharded pub/sub (SSUBSCRIBE/SPUBLISH). Default: true on a Redis Cluster (a room's messages stay on the shard of its channel), false on one Redis. */
    sharded?: boolean
    /** How often this node tells Redis it is alive, in ms. Default 5000. */
    nodeHeartbeat?: number
    /** How long after its last heartbeat a node that died without cleaning up still counts in clusterMembers(), in ms. Default 15000. */
    nodeTimeout?: number
    /** How long app.register() waits for Redis before it fails with FST_WS_ROOMS_REDIS_UNAVAILABLE, in ms. Default 5000. */
    connectTimeout?: number
    /**
     * Bytes of broadcasts handed to Redis and not yet acknowledged, past which a broadcast is not
     * published to the other nodes (counted in `publishFailed`): a Redis that stalls costs bounded
     * memory. A broadcast with nothing pending always goes. Default 8388608 (8 MiB).
     */
    maxPublishBacklog?: number
    /** Called when the connection to Redis is lost (once per outage) and when an update of this node's state fails. Errors are logged either way. */
    onError?: (error: Error) => void
    /** Called when the node is connected and its rooms are subscribed: at start, and again after each outage. */
    onReady?: () => void
  }

  /** app.websocketRooms.stats().cluster, with an adapter. */
  export interface WebsocketRoomsClusterStats {
    /** This node's id in the cluster. */
    nodeId: string
    /** Connected to Redis right now. */
    connected: boolean
    /** Room channels this node is subscribed to (the rooms with members here). */
    subscribedRooms: number
    /** Broadcasts sent to the other nodes. */
    published: number
    /** Broadcasts that reached this node's members only: Redis was away, or past `maxPublishBacklog`. */
    publishFailed: number
    /** Bytes of broadcasts handed to Redis whose PUBLISH has not been answered yet. */
    publishBacklog: number
    /** Broadcasts from other nodes. */
    received: number
    /** Messages on this node's channels that were not broadcasts of this plugin (ignored). */
    malformed: number
  }

  /** app.websocketRooms.stats(): counters since the plugin was registered. */
  export interface WebsocketRoomsStats {
    sessions: number
    rooms: number
    /** Sessions whose socket is not read right now, because their handlers are behind. */
    pausedSessions: number
    messagesIn: number
    bytesIn: number
    messagesOut: number
    bytesOut: number
    /** Text messages that were not JSON or did not match the route's schema.message. */
    invalidMessages: number
    dropped: { backpressure: number, rateLimit: number }
    closed: { heartbeat: number, backpressure: number, rateLimit: number, unsupportedData: number, handlerError: number, invalidMessage: number }
    refused: { origin: number, maxSessions: number }
    /** The cluster node's counters, with an adapter; null without. */
    cluster: WebsocketRoomsClusterStats | null
    /** With the history option (null without): messages published from this server, and its sessions' recoveries. */
    history: WebsocketRoomsHistoryStats | null
  }

  export interface WebsocketRoomsHistoryStats {
    /** publish() calls of this server that resolved. */
    published: number
    /** recover() calls that replayed every missed message (none missed included). */
    recovered: number
    /** recover() calls that replayed nothing: a message was gone, another epoch, too much arrived meanwhile. */
    notRecovered: number
    /** Messages sent by the recoveries that succeeded. */
    replayed: number
  }

  /** The event types a session or room may emit (`Events`: each type's data), as a string. */
  export type EventType<Events> = keyof Events & string

  /** A room as seen from one session: a handle that does not join by itself. */
  export interface WebSocketRoom<Outbound = unknown, Events = {}> {
    /** Joins the room (created on first join). Idempotent; a no-op once the session is closed. */
    join (): this
    /** Leaves the room (deleted when empty). Idempotent. */
    leave (): this
    /** Sends to every member, this session too if it is one. */
    broadcast (message: Message): void
    /** Sends to every member but this session. */
    broadcastExcept (message: Message): void
    /** Sends a value as JSON text to every member, serialized once (by the route's schema.outbound when it has one). */
    broadcastJson (value: Outbound): void
    /** Sends a value as JSON text to every member but this session, serialized once. */
    broadcastExceptJson (value: Outbound): void
    /** Sends the event `{"type","data"}` to every member, serialized once through the route's events[type]. */
    emit<Type extends EventType<Events>> (type: Type, data: Events[Type]): void
    /** As emit(), to every member but this session. */
    emitExcept<Type extends EventType<Events>> (type: Type, data: Events[Type]): void
    /** Number of members of the room on this server. */
    members (): number
    /** Number of members of the room on every server of the cluster (this server's without an adapter). */
    clusterMembers (): Promise<number>
    /** True when this session is a member. */
    has (): boolean
    /** Every member of the room on every server, with the info each set. */
    presence (): Promise<RoomPresence>
    /**
     * Sends to every member the message `build` makes with the room's next position, and keeps
     * it in the room's history (option history); resolves with that position.
     */
    publish (build: BuildPublished): Promise<StreamPosition>
    /** As publish(), to every member but this session. */
    publishExcept (build: BuildPublished): Promise<StreamPosition>
    /**
     * Joins the room and sends this session every message published after `position`, in
     * order, then the live ones, none twice; or, when any of them is no longer kept (or the
     * epoch differs), none of them: `recovered: false`, and the app sends a snapshot.
     */
    recover (position: StreamPosition): Promise<RecoverResult>
    /** The room's kept messages, oldest first (option history). */
    history (query?: HistoryQuery): Promise<RoomHistory>
    getName (): string
  }

  /** A room as seen from the server (HTTP routes, jobs). */
  export interface ServerRoom {
    /** Sends to every member. */
    broadcast (message: Message): void
    /** Sends a value as JSON text (JSON.stringify, once) to every member. */
    broadcastJson (value: unknown): void
    /** Sends the event `{"type","data"}` to every member, serialized once through the events[type] of the route that declares it. */
    emit (type: string, data: unknown): void
    /** Sends to every member the message `build` makes with the room's next position, kept in its history; resolves with that position. */
    publish (build: BuildPublished): Promise<StreamPosition>
    /** The room's kept messages, oldest first (option history). */
    history (query?: HistoryQuery): Promise<RoomHistory>
    /** Number of members of the room on this server. */
    members (): number
    /** Number of members of the room on every server of the cluster (this server's without an adapter). */
    clusterMembers (): Promise<number>
    /** The members' sessions, as a new array. */
    sessions (): WebSocketSession[]
    /** Every member of the room on every server, with the info each set. */
    presence (): Promise<RoomPresence>
    /**
     * Closes every member (code default 1000), on every server; their onDisconnected runs where
     * they are. Resolves once the other servers have been sent the command (at most once, like a broadcast).
     */
    disconnectAll (code?: number, reason?: string): Promise<void>
    getName (): string
  }

  /** The members of some rooms but of none of others, on every server: app.websocketRooms.to(rooms). */
  export interface BroadcastTarget {
    /** Leaves out the members of these rooms too. */
    except (rooms: string | string[]): BroadcastTarget
    /** Sends to each recipient once, on every server. */
    broadcast (message: Message): void
    /** Sends a value as JSON text (JSON.stringify, once) to each recipient once. */
    broadcastJson (value: unknown): void
    /** Sends the event `{"type","data"}` to each recipient once, serialized once through the events[type] of the route that declares it. */
    emit (type: string, data: unknown): void
  }

  export interface WebsocketRooms {
    /** This instance's id, as presence entries give it. */
    readonly nodeId: string
    /** The members of at least one of these rooms, on every server (then .except(rooms), .broadcast(message)). */
    to (rooms: string | string[]): BroadcastTarget
    /**
     * Closes a session (code default 1000) on whichever server holds it; its onDisconnected runs
     * there. Resolves once the other servers have been sent the command (at most once, like a broadcast).
     */
    disconnectSession (sessionId: string, code?: number, reason?: string): Promise<void>
    /** A handle on a room, whether or not it has members. */
    room (name: string): ServerRoom
    /** Names of the rooms that have members. */
    roomNames (): string[]
    /** Counters of traffic and of what the limits did. */
    stats (): WebsocketRoomsStats
    /** The AsyncAPI 3.0 document of this instance's WebSocket routes (a new object each call); before app.ready(), of the routes registered so far. */
    asyncapi (): AsyncApiDocument
  }

  /** One client connection. */
  export interface WebSocketSession<
    Query = Record<string, unknown>,
    Headers = IncomingHttpHeaders,
    Params = Record<string, string>,
    Outbound = unknown,
    Events = {}
  > {
    /** Unique id of this session (a UUID). */
    readonly id: string
    /** The handshake's query string, parsed and validated by schema.querystring. */
    readonly query: Query
    /** The handshake's headers (lowercase keys), validated by schema.headers. */
    readonly headers: Headers
    /** The route's path parameters. */
    readonly params: Params
    /** The Fastify request of the handshake (request.user and such set by hooks live here). */
    readonly request: FastifyRequest
    /** A logger bound to this session's id. */
    readonly log: FastifyBaseLogger
    /** Sends a text frame. A no-op once the session is closed. */
    writeText (text: string): void
    /** Sends a binary frame. A no-op once the session is closed. */
    writeData (data: BinaryData): void
    /** Sends a string as text, binary data as binary. A no-op once the session is closed. */
    send (message: Message): void
    /** Sends a value as JSON text, serialized by the route's schema.outbound when it has one (else JSON.stringify). A no-op once closed. */
    sendJson (value: Outbound): void
    /** Starts the close handshake (code default 1000, reason at most 123 bytes). A no-op once closed. */
    close (code?: number, reason?: string): void
    /** Cuts the connection at once, without a close handshake. */
    terminate (): void
    /** True while messages can be sent. */
    isOpen (): boolean
    /** Bytes queued for this session but not yet written to the network. */
    readonly bufferedAmount: number
    /**
     * The ws WebSocket below the session, to reach what the session does not offer. Writing to
     * it, closing it or listening to it directly bypasses the session's order, guards and cleanup.
     */
    readonly socket: RawWebSocket
    /** A query parameter of the handshake URL as sent (not coerced), or null. */
    getParameter (name: string): string | null
    /** A header of the handshake (any case), or null. */
    getHeader (name: string): string | null
    /** The path of the handshake URL, prefix included, query excluded. */
    getRequestPath (): string
    /** The client's address (honours Fastify's trustProxy), or '' when unknown. */
    getRemoteAddr (): string
    /** On a resuming route with the Redis adapter the value must be JSON (it travels between servers): else a TypeError naming the key. */
    setAttribute (key: string, value: unknown): void
    getAttribute<T = any> (key: string): T | undefined
    getAttributes (): Record<string, any>
    /** Sends the event `{"type","data"}`, serialized through the route's events[type] (`Events`: their data by type; none without events). A no-op once closed. */
    emit<Type extends EventType<Events>> (type: Type, data: Events[Type]): void
    /**
     * Sends the event with an id (`{"type","id":"s1","data"}`) and resolves with the data of the
     * client's reply (`{"type":"reply","id":"s1","data"}`); rejects with FST_WS_ROOMS_REQUEST_TIMEOUT
     * after `timeout` ms (default 10000), FST_WS_ROOMS_CLOSED when the session ends first. On a route with `messages`.
     */
    ask<Type extends EventType<Events>> (type: Type, data: Events[Type], options?: AskOptions): Promise<unknown>
    /** A handle on a room; it does not join. */
    room (name: string): WebSocketRoom<Outbound, Events>
    /** Names of the rooms this session is in. */
    roomNames (): string[]
    /** Sets the info presence lists show for this session, in every room it is in (a JSON value; default null). */
    setPresence (info: unknown): void
    /** True when this connection resumed a kept session (same id, attributes, presence info, rooms; what it missed was sent before onOpen). */
    readonly resumed: boolean
    /** The token a client brings back to resume this session (new at each resume); null on a route that does not resume. */
    readonly resumeToken: string | null
    /** Why the token this handshake brought did not resume a session; null when it did, or when none was given. */
    readonly resumeFailure: ResumeFailure | null
  }

  type Maybe<T> = T | Promise<T>

  export interface AskOptions {
    /** How long to wait for the client's reply, in ms. Default 10000. */
    timeout?: number
  }

  /** The field names of a route's messages, events and replies. Default `{ type: 'type', id: 'id', data: 'data' }`. */
  export interface MessageEnvelope {
    type?: string
    id?: string
    data?: string
  }

  /**
   * One message type of a route's `messages`: the schema of its data, its handler, the schema
   * its reply is serialized through, and hooks that run before the handler (a throw refuses the message).
   */
  export interface MessageRoute<Session, Schema, Reply, Provider extends FastifyTypeProvider = FastifyTypeProviderDefault> {
    schema?: Schema
    reply?: Reply
    preHandler?: MessagePreHandler<Session, Parsed<Schema, unknown, Provider>> | Array<MessagePreHandler<Session, Parsed<Schema, unknown, Provider>>>
    handler: (session: Session, data: Parsed<Schema, unknown, Provider>) => Maybe<ReplyOf<Reply, Provider>>
  }

  export type MessagePreHandler<Session, Data> = (session: Session, data: Data) => Maybe<unknown>

  /** A route's `messages`: Schemas and Replies are each type's schemas, inferred from the object. */
  export type MessageRoutes<Session, Schemas, Replies, Provider extends FastifyTypeProvider = FastifyTypeProviderDefault> =
    { [Type in keyof Schemas]: MessageRoute<Session, Schemas[Type], Type extends keyof Replies ? Replies[Type] : undefined, Provider> } &
    { [Type in keyof Replies]: Type extends keyof Schemas ? { reply?: Replies[Type] } : MessageRoute<Session, undefined, Replies[Type], Provider> }

  /**
   * What onInvalidMessage gets for a text message that is not JSON (code
   * FST_WS_ROOMS_INVALID_JSON) or does not match schema.message (FST_ERR_VALIDATION, with the
   * validator's errors in `validation`), in the shape of Fastify's validation errors.
   */
  export interface MessageValidationError extends Error {
    code: string
    statusCode: number
    validationContext: 'message'
    validation?: MessageValidationIssue[]
  }

  /** One of the validator's errors, as ajv (and Fastify's validation errors) give it. */
  export interface MessageValidationIssue {
    keyword: string
    instancePath: string
    schemaPath: string
    params: Record<string, unknown>
    message?: string
  }

  /**
   * Session handlers. Some events have two names, aliases of each other (`onConnected`/`onOpen`,
   * `handleText`/`onMessage`, `onDisconnected`/`onClose`): give one of the two. A handler may return a promise: the session's next event waits for it.
   * `Message`: what a text message handler gets: the text, or with schema.message the value.
   */
  export interface SessionHandlers<Session, Message = string> {
    onConnected?: (session: Session) => Maybe<unknown>
    onOpen?: (session: Session) => Maybe<unknown>
    handleText?: (session: Session, text: Message) => Maybe<unknown>
    onMessage?: (session: Session, message: Message) => Maybe<unknown>
    /** With schema.message: a text message that is not JSON or does not match (the default: close with 1007). */
    onInvalidMessage?: (session: Session, error: MessageValidationError, text: string) => Maybe<unknown>
    handleBinary?: (session: Session, data: Buffer) => Maybe<unknown>
    onPong?: (session: Session) => Maybe<unknown>
    onDisconnected?: (session: Session, code: number, reason: string) => Maybe<unknown>
    onClose?: (session: Session, code: number, reason: string) => Maybe<unknown>
    /** Takes over from the default (log, then close with 1011) when a handler throws or rejects. */
    onError?: (session: Session, error: Error) => Maybe<unknown>
    /** Called, synchronously, when a message to this session would pass maxBackpressure, before the policy applies. */
    onBackpressure?: (session: Session, bufferedAmount: number) => void
  }

  export interface HandshakeSchema<Query, Headers, Params, Message = undefined, Outbound = undefined>
    extends Omit<FastifySchema, 'querystring' | 'headers' | 'params'> {
    querystring?: Query
    /** Keys must be lowercase: Fastify lowercases header names before validation. */
    headers?: Headers
    params?: Params
    /** What clients send: every text message is parsed as JSON and validated before onMessage/handleText sees it. */
    message?: Message
    /**
     * What this route's sendJson(), broadcastJson() and broadcastExceptJson() send: serialized
     * by it, once per broadcast for every member, so fields it does not name never leave
     * through them. Server-side broadcasts (app.websocketRooms) use JSON.stringify.
     */
    outbound?: Outbound
  }

  /**
   * The handshake request as the route's schemas type it (Fastify's RouteGeneric), for the
   * route hooks: request.query, request.headers and request.params, as session.query,
   * session.headers and session.params have them.
   */
  export interface HandshakeRouteGeneric<Query = unknown, Headers = unknown, Params = unknown, Provider extends FastifyTypeProvider = FastifyTypeProviderDefault> {
    Querystring: Parsed<Query, Record<string, unknown>, Provider>
    Headers: Parsed<Headers, IncomingHttpHeaders, Provider>
    Params: Parsed<Params, Record<string, string>, Provider>
  }

  type HandshakeRouteShorthandOptions<Query, Headers, Params, Provider extends FastifyTypeProvider> = RouteShorthandOptions<
    RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, HandshakeRouteGeneric<Query, Headers, Params, Provider>
  >

  /**
   * The Fastify route options of the handshake, its hooks typed from the route's schemas.
   * Those the installed Fastify has (logSerializers came after 5.0.0).
   */
  export type HandshakeRouteOptions<Query = unknown, Headers = unknown, Params = unknown, Provider extends FastifyTypeProvider = FastifyTypeProviderDefault> = Pick<
    HandshakeRouteShorthandOptions<Query, Headers, Params, Provider>,
    Extract<keyof HandshakeRouteShorthandOptions<Query, Headers, Params, Provider>,
      'onRequest' | 'preParsing' | 'preValidation' | 'preHandler' | 'config' | 'logLevel' |
      'logSerializers' | 'constraints' | 'errorHandler' | 'attachValidation' |
      'validatorCompiler' | 'serializerCompiler'>
  >

  /**
   * The handlers object of a route. Typed ahead of registerWebsocket(), give the schemas'
   * types as parameters (`WebsocketHandlers<unknown, unknown, unknown, typeof Message>`):
   * without them, a schema.message or schema.outbound is refused.
   */
  export type WebsocketHandlers<
    Query = unknown, Headers = unknown, Params = unknown, Message = undefined, Outbound = undefined,
    Provider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Schemas = {}, Replies = {}, Events = undefined
  > = SessionHandlers<WebSocketSession<
    Parsed<Query, Record<string, unknown>, Provider>,
    Parsed<Headers, IncomingHttpHeaders, Provider>,
    Parsed<Params, Record<string, string>, Provider>,
    OutboundOf<Outbound, Provider>,
    EventsOf<Events, Provider>
  >, MessageOf<Message, Provider>> &
    HandshakeRouteOptions<Query, Headers, Params, Provider> & RouteLimitOptions & {
      schema?: HandshakeSchema<Query, Headers, Params, Message, Outbound>
      /** A handler and a schema per message type (`{"type","id"?,"data"}`); replaces onMessage/handleText and schema.message. */
      messages?: MessageRoutes<WebSocketSession<
        Parsed<Query, Record<string, unknown>, Provider>,
        Parsed<Headers, IncomingHttpHeaders, Provider>,
        Parsed<Params, Record<string, string>, Provider>,
        OutboundOf<Outbound, Provider>,
        EventsOf<Events, Provider>
      >, Schemas, Replies, Provider>
      /** What the server emits: a schema per event type, which emit() serializes through. */
      events?: Events
      /** The field names of the messages, events and replies. */
      envelope?: MessageEnvelope
      /** false: this route's sessions do not resume, whatever the plugin's resume option. */
      resume?: false
    }

  /** The close codes this plugin sends. */
  export const closeCodes: {
    readonly NORMAL: 1000
    readonly GOING_AWAY: 1001
    readonly PROTOCOL_ERROR: 1002
    readonly UNSUPPORTED_DATA: 1003
    readonly INVALID_PAYLOAD: 1007
    readonly POLICY_VIOLATION: 1008
    readonly MESSAGE_TOO_BIG: 1009
    readonly INTERNAL_ERROR: 1011
    readonly SERVICE_RESTART: 1012
    readonly TRY_AGAIN_LATER: 1013
  }

  /** Rooms across every server that shares this Redis: the plugin's `adapter` option. */
  export function redisAdapter (options: RedisAdapterOptions): WebsocketRoomsAdapter

  /** The raw ws socket type, for users who need to reach below the session. */
  export type RawWebSocket = WebSocket

  export const fastifyWebsocketRooms: FastifyWebsocketRooms
  export { fastifyWebsocketRooms as default }
}

declare function fastifyWebsocketRooms (...params: Parameters<FastifyWebsocketRooms>): ReturnType<FastifyWebsocketRooms>
export = fastifyWebsocketRooms

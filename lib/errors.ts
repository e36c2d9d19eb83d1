// The plugin's named errors. Each has a stable code users can match on; argument
// mistakes are TypeErrors, like Node's own ERR_INVALID_ARG_TYPE.
import createError from '@fastify/error'

export const InvalidOptionError = createError<'FST_WS_ROOMS_INVALID_OPTION', [string, string, string]>(
  'FST_WS_ROOMS_INVALID_OPTION',
  'fastify-websocket-rooms: option "%s" must be %s, got %s',
  500,
  TypeError
)

export const InvalidHandlersError = createError<'FST_WS_ROOMS_INVALID_HANDLERS', [string, string]>(
  'FST_WS_ROOMS_INVALID_HANDLERS',
  'fastify-websocket-rooms: registerWebsocket("%s"): %s',
  500,
  TypeError
)

export const InvalidArgumentError = createError<'FST_WS_ROOMS_INVALID_ARGUMENT', [string, string, string]>(
  'FST_WS_ROOMS_INVALID_ARGUMENT',
  'fastify-websocket-rooms: %s must be %s, got %s',
  500,
  TypeError
)

export const InvalidCloseCodeError = createError<'FST_WS_ROOMS_INVALID_CLOSE_CODE', [string]>(
  'FST_WS_ROOMS_INVALID_CLOSE_CODE',
  'fastify-websocket-rooms: close code must be 1000, 1001-1003, 1007-1014 or 3000-4999 (RFC 6455 7.4), got %s',
  500,
  RangeError
)

export const CloseReasonTooLongError = createError<'FST_WS_ROOMS_CLOSE_REASON_TOO_LONG', [number]>(
  'FST_WS_ROOMS_CLOSE_REASON_TOO_LONG',
  'fastify-websocket-rooms: close reason must be at most 123 bytes of UTF-8 (RFC 6455 5.5), got %d bytes',
  500,
  RangeError
)

export const TooManyRoomsError = createError<'FST_WS_ROOMS_TOO_MANY_ROOMS', [number]>(
  'FST_WS_ROOMS_TOO_MANY_ROOMS',
  'fastify-websocket-rooms: a session may be in at most %d rooms (option maxRoomsPerSession)',
  500,
  RangeError
)

/** Answers an upgrade from an origin not in allowedOrigins, before any socket is opened. */
export const OriginNotAllowedError = createError<'FST_WS_ROOMS_ORIGIN_NOT_ALLOWED', [string]>(
  'FST_WS_ROOMS_ORIGIN_NOT_ALLOWED',
  'WebSocket upgrade refused: origin %s is not allowed',
  403
)

/** Answers an upgrade request that ws would refuse (Upgrade, Sec-WebSocket-Key or -Version header). */
export const InvalidHandshakeError = createError<'FST_WS_ROOMS_INVALID_HANDSHAKE', [string]>(
  'FST_WS_ROOMS_INVALID_HANDSHAKE',
  'WebSocket upgrade refused: %s',
  400
)

/** app.register(@fastify/websocket) after this plugin, which registered it already. */
export const WebsocketRegisteredAfterError = createError<'FST_WS_ROOMS_WEBSOCKET_REGISTERED_AFTER'>(
  'FST_WS_ROOMS_WEBSOCKET_REGISTERED_AFTER',
  'fastify-websocket-rooms: @fastify/websocket is registered after fastify-websocket-rooms, which registers it itself: register @fastify/websocket before fastify-websocket-rooms (its options then apply), or not at all',
  500
)

/** Answers an upgrade past maxSessions, before any socket is opened. */
export const TooManySessionsError = createError<'FST_WS_ROOMS_TOO_MANY_SESSIONS'>(
  'FST_WS_ROOMS_TOO_MANY_SESSIONS',
  'WebSocket upgrade refused: the server has reached its maximum number of sessions',
  503
)

/** Answers an upgrade whose checks were still running when app.close() started. */
export const ShuttingDownError = createError<'FST_WS_ROOMS_SHUTTING_DOWN'>(
  'FST_WS_ROOMS_SHUTTING_DOWN',
  'WebSocket upgrade refused: the server is shutting down',
  503
)

/** Redis could not be reached: at registration (within connectTimeout), or for a cluster count. */
export const RedisUnavailableError = createError<'FST_WS_ROOMS_REDIS_UNAVAILABLE', [string]>(
  'FST_WS_ROOMS_REDIS_UNAVAILABLE',
  'fastify-websocket-rooms: Redis is not reachable: %s',
  503
)

/** redisAdapter() given a node of a Redis Cluster, found at registration. */
export const RedisClusterUnsupportedError = createError<'FST_WS_ROOMS_REDIS_CLUSTER_UNSUPPORTED'>(
  'FST_WS_ROOMS_REDIS_CLUSTER_UNSUPPORTED',
  'fastify-websocket-rooms: redisAdapter() does not support Redis Cluster yet, and this Redis is a cluster node (cluster_enabled:1): give it a standalone Redis',
  500
)

/** A text frame on a route with schema.message that is not JSON (or poisons a prototype). */
export const InvalidJsonMessageError = createError<'FST_WS_ROOMS_INVALID_JSON', [string]>(
  'FST_WS_ROOMS_INVALID_JSON',
  'message is not valid JSON: %s',
  400
)

/** A route's schema.message or schema.outbound that its compiler refused (answers the handshake). */
export const MessageSchemaBuildError = createError<'FST_WS_ROOMS_SCHEMA_BUILD', [string, string, string]>(
  'FST_WS_ROOMS_SCHEMA_BUILD',
  'fastify-websocket-rooms: %s of "%s" does not compile: %s',
  500
)

/** A schema the AsyncAPI document cannot hold (not JSON, or a $ref to no known schema). */
export const AsyncApiSchemaError = createError<'FST_WS_ROOMS_ASYNCAPI_SCHEMA', [string, string]>(
  'FST_WS_ROOMS_ASYNCAPI_SCHEMA',
  'fastify-websocket-rooms: the AsyncAPI document cannot hold %s: it %s',
  500
)

/** publish(), recover() or history() on an instance registered without the history option. */
export const HistoryDisabledError = createError<'FST_WS_ROOMS_NO_HISTORY', [string]>(
  'FST_WS_ROOMS_NO_HISTORY',
  'fastify-websocket-rooms: %s() needs the plugin option history, e.g. { history: { size: 1000, ttl: 300000 } }',
  500
)

/** recover() of a room for a session whose recovery of that room has not finished. */
export const RecoveryRunningError = createError<'FST_WS_ROOMS_RECOVERY_RUNNING', [string]>(
  'FST_WS_ROOMS_RECOVERY_RUNNING',
  'fastify-websocket-rooms: this session is already recovering room "%s"',
  500
)

/** publish() while too many publishes wait for Redis on this server. */
export const PublishBacklogError = createError<'FST_WS_ROOMS_PUBLISH_BACKLOG', [string, number]>(
  'FST_WS_ROOMS_PUBLISH_BACKLOG',
  'fastify-websocket-rooms: cannot publish to room "%s": %d publishes are waiting for Redis on this server already',
  503
)

/** publish(), recover() or history() once app.close() has run. */
export const ClosedError = createError<'FST_WS_ROOMS_CLOSED', [string]>(
  'FST_WS_ROOMS_CLOSED',
  'fastify-websocket-rooms: %s() after app.close()',
  503
)

/** A message of a route with `messages` whose type names none of them (an error reply, or an invalid message). */
export const UnknownMessageTypeError = createError<'FST_WS_ROOMS_UNKNOWN_TYPE', [string, string]>(
  'FST_WS_ROOMS_UNKNOWN_TYPE',
  'unknown message type %s%s',
  400
)

/** A message of a route with `messages` that is not an object with a string type, or whose id cannot be echoed. */
export const InvalidEnvelopeError = createError<'FST_WS_ROOMS_INVALID_ENVELOPE', [string]>(
  'FST_WS_ROOMS_INVALID_ENVELOPE',
  'message %s',
  400
)

/** What a message handler threw without a code of its own, in the error reply. */
export const HandlerError = createError<'FST_WS_ROOMS_HANDLER_ERROR', [string]>(
  'FST_WS_ROOMS_HANDLER_ERROR',
  '%s',
  500
)

/** session.ask() that the client did not answer within its timeout. */
export const RequestTimeoutError = createError<'FST_WS_ROOMS_REQUEST_TIMEOUT', [string, number]>(
  'FST_WS_ROOMS_REQUEST_TIMEOUT',
  'fastify-websocket-rooms: the client did not answer ask(%s) within %d ms',
  504
)

/** session.ask() on a session that closed before the client answered (or was closed already). */
export const SessionClosedError = createError<'FST_WS_ROOMS_CLOSED', [string]>(
  'FST_WS_ROOMS_CLOSED',
  'fastify-websocket-rooms: the session closed before the client answered ask(%s)',
  503
)

/** session.ask() past the pending asks a session may have. */
export const TooManyAsksError = createError<'FST_WS_ROOMS_TOO_MANY_ASKS', [number]>(
  'FST_WS_ROOMS_TOO_MANY_ASKS',
  'fastify-websocket-rooms: a session may have at most %d asks waiting for their answer',
  500,
  RangeError
)

/** session.ask() answered by the client with an error: its code and message are the client's. */
export const ClientError = createError<'FST_WS_ROOMS_CLIENT_ERROR', [string, string]>(
  'FST_WS_ROOMS_CLIENT_ERROR',
  'fastify-websocket-rooms: the client answered ask(%s) with an error: %s',
  502
)

/** Describes a bad value for an error message: its type, and the value itself when short. */
export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return value.length > 40 ? `a string of length ${value.length}` : JSON.stringify(value)
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`
  if (typeof value === 'function') return 'a function'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : typeof value
}

/** The metrics or tracing option is on, but its optional peer dependency is not installed. */
export const MissingPeerError = createError<'FST_WS_ROOMS_MISSING_PEER', [string, string, string]>(
  'FST_WS_ROOMS_MISSING_PEER',
  'fastify-websocket-rooms: option "%s" needs the package %s, which is not installed: npm install %s',
  500
)

// Counters of one Fastify instance's WebSocket traffic and of what its guards did, read
// through app.websocketRooms.stats(). Plain number fields: counting costs an increment.

export class Stats {
  messagesIn = 0
  bytesIn = 0
  messagesOut = 0
  bytesOut = 0
  droppedBackpressure = 0
  droppedRateLimit = 0
  closedHeartbeat = 0
  closedBackpressure = 0
  closedRateLimit = 0
  closedUnsupportedData = 0
  closedHandlerError = 0
  closedInvalidMessage = 0
  /** Text messages that were not JSON or did not match the route's schema.message. */
  invalidMessages = 0
  refusedOrigin = 0
  refusedMaxSessions = 0
  /** Sessions whose socket is not read right now, because their handlers are behind. */
  paused = 0
}

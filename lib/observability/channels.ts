// What the plugin tells diagnostics_channel (node:diagnostics_channel): one named channel per
// kind of event, and a TracingChannel around each handler run. The channels are the probe
// points of this package: its metrics and its tracing subscribe to them too, so an event costs
// the hot path one hasSubscribers check, and builds its payload only when someone listens.
// Every payload carries the nodeId of the instance it comes from (two apps in one process).
import diagnosticsChannel from 'node:diagnostics_channel'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocketSession } from '../../types/index'

const PREFIX = 'fastify-websocket-rooms:'

export interface SessionOpenEvent { nodeId: string, route: string, sessionId: string, session: WebSocketSession<unknown, unknown, unknown> }
export interface SessionCloseEvent { nodeId: string, route: string, sessionId: string, code: number, reason: string }
/** reason: 'handshake' (what ws would refuse), 'origin', 'max-sessions'; detail: the words of the 400, 403 or 503. */
export interface HandshakeRefusedEvent { nodeId: string | null, route: string | null, reason: 'handshake' | 'origin' | 'max-sessions', detail: string }
/** type: the message's type when the route has message routes, else undefined. */
export interface MessageInEvent { nodeId: string, route: string, sessionId: string, binary: boolean, bytes: number, type: string | undefined }
/** A broadcast fanned out on this server; from: 'local' (sent here), 'cluster' (another server's). */
export interface BroadcastEvent { nodeId: string, room: string | null, rooms: string[] | null, recipients: number, bytes: number, from: 'local' | 'cluster' }
/** A published message (history) handed to this server's members. */
export interface PublishEvent { nodeId: string, room: string, recipients: number, bytes: number, epoch: string, offset: number }
/** action: 'drop' (the message was not sent) or 'close' (the session is closed with 1013). */
export interface BackpressureEvent { nodeId: string, route: string, sessionId: string, action: 'drop' | 'close', bufferedAmount: number }
export interface RedisDownEvent { nodeId: string, error: Error }
export interface RedisUpEvent { nodeId: string, downFor: number }
/** The context of a handler run; event: which handler; type: the message's type, with message routes. */
export interface HandlerRunContext {
  nodeId: string
  route: string
  sessionId: string
  event: 'connected' | 'message' | 'binary' | 'pong' | 'disconnected'
  type: string | undefined
  /** Set by the TracingChannel protocol: the handler's result or what it threw or rejected with. */
  result?: unknown
  error?: unknown
}

export const channels = {
  sessionOpen: diagnosticsChannel.channel(`${PREFIX}session:open`),
  sessionClose: diagnosticsChannel.channel(`${PREFIX}session:close`),
  handshakeRefused: diagnosticsChannel.channel(`${PREFIX}handshake:refused`),
  messageIn: diagnosticsChannel.channel(`${PREFIX}message:in`),
  broadcast: diagnosticsChannel.channel(`${PREFIX}room:broadcast`),
  publish: diagnosticsChannel.channel(`${PREFIX}room:publish`),
  backpressure: diagnosticsChannel.channel(`${PREFIX}session:backpressure`),
  redisDown: diagnosticsChannel.channel(`${PREFIX}redis:down`),
  redisUp: diagnosticsChannel.channel(`${PREFIX}redis:up`)
}

/** start, end, asyncStart, asyncEnd and error around each handler run. */
export const handlerRun = diagnosticsChannel.tracingChannel<HandlerRunContext>(`${PREFIX}handler`)

/** Tells handshake:refused of a refused upgrade request (call it when the channel has subscribers). */
export function publishRefusal (request: FastifyRequest, reason: HandshakeRefusedEvent['reason'], detail: string): void {
  const rooms = (request.server as Partial<FastifyInstance>).websocketRooms
  channels.handshakeRefused.publish({ nodeId: rooms?.nodeId ?? null, route: request.routeOptions.url ?? null, reason, detail })
}

// The WebSocket handshake before ws reads it, and what ws refuses. ws compares header values as
// strings (8.23.1 and later: Sec-WebSocket-Version must be '13' or '8'), but @fastify/websocket's
// injectWS builds a request whose Sec-WebSocket-Version is the number 13: values that are
// numbers become the strings Node's parser would have given. A refused handshake says why in
// the log (debug): this plugin's routes check what ws will, as a route hook that answers 400
// with the reason; what ws still refuses comes through its 'wsClientError' event, which this
// module answers as ws would (ws no longer writes the response once the event has a listener).
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import type { WebSocketServer } from 'ws'
import { InvalidHandshakeError } from '../errors'
import { channels, publishRefusal } from '../observability/channels'

/** ws's own test of a key: 16 bytes in base64 (lib/websocket-server.js). */
const KEY = /^[+/0-9A-Za-z]{22}==$/
/** ws's message for a method it refuses, the one refusal that is a 405. */
const INVALID_METHOD = 'Invalid HTTP method'
const INVALID_VERSION = 'Missing or invalid Sec-WebSocket-Version header'
/** The ws servers whose 'wsClientError' this module listens to. */
const listening = new WeakSet<WebSocketServer>()

/** Header values that are numbers become strings, as Node's HTTP parser gives them. */
export function stringifyHeaderValues (headers: IncomingHttpHeaders): void {
  const values = headers as Record<string, unknown>
  for (const name in values) {
    if (typeof values[name] === 'number') values[name] = String(values[name])
  }
}

function normaliseHandshake (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (request.ws) stringifyHeaderValues(request.raw.headers)
  done()
}

/**
 * An onRoute hook: every WebSocket route registered from here on normalises its handshake's
 * headers first (the app's plain @fastify/websocket routes too; this plugin's own do it in
 * checkHandshake).
 */
export function normaliseWebsocketRoutes (route: RouteOptions & { websocket?: boolean, wsHandler?: unknown }): void {
  if (route.websocket !== true && route.wsHandler === undefined) return
  const onRequest = [route.onRequest ?? []].flat()
  if (!onRequest.includes(checkHandshake)) route.onRequest = [normaliseHandshake, ...onRequest]
}

/** Why ws would refuse this upgrade request (a GET: the route's), or null. */
function refusal (headers: IncomingHttpHeaders): string | null {
  const upgrade = headers.upgrade
  if (typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') return 'Invalid Upgrade header'
  const key = headers['sec-websocket-key']
  if (typeof key !== 'string' || !KEY.test(key)) return 'Missing or invalid Sec-WebSocket-Key header'
  const version = headers['sec-websocket-version']
  if (version !== '13' && version !== '8') return INVALID_VERSION
  return null
}

/**
 * The first onRequest hook of this plugin's routes: an upgrade that ws would refuse gets a 400
 * that says why, logged at debug level.
 */
export function checkHandshake (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (!request.ws) return done()
  stringifyHeaderValues(request.raw.headers)
  const reason = refusal(request.raw.headers)
  if (reason === null) return done()
  request.log.debug({ reason }, `fastify-websocket-rooms: WebSocket handshake refused: ${reason}`)
  if (channels.handshakeRefused.hasSubscribers) publishRefusal(request, 'handshake', reason)
  if (reason === INVALID_VERSION) reply.header('sec-websocket-version', '13, 8')
  reply.send(new InvalidHandshakeError(reason))
}

/**
 * Logs each handshake ws refuses (after the routes' hooks: an invalid subprotocol or extension
 * offer...) and answers it with ws's own response, unless another listener of the app's does.
 */
export function logRefusedHandshakes (server: WebSocketServer, log: FastifyBaseLogger, nodeId: string): void {
  // Once per server: two registrations of the plugin on an app's @fastify/websocket would
  // otherwise each take the other for the app's listener, and neither would answer.
  if (listening.has(server)) return
  listening.add(server)
  server.on('wsClientError', function onRefused (error: Error, socket: Duplex, request: IncomingMessage) {
    const reason = error.message
    log.debug({ reason, method: request.method, url: request.url }, `fastify-websocket-rooms: WebSocket handshake refused: ${reason}`)
    // No route: ws refuses it past the routes, and its URL is the client's to choose.
    if (channels.handshakeRefused.hasSubscribers) channels.handshakeRefused.publish({ nodeId, route: null, reason: 'handshake', detail: reason })
    if (server.listenerCount('wsClientError') > 1 || !socket.writable) return
    const status = reason === INVALID_METHOD ? 405 : 400
    const extra = reason === INVALID_VERSION ? 'Sec-WebSocket-Version: 13, 8\r\n' : ''
    socket.once('finish', () => socket.destroy())
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/html\r\n` +
      `Content-Length: ${Buffer.byteLength(reason)}\r\n${extra}\r\n${reason}`)
  })
}

// What the upgrade leaves behind, held for as long as the socket lives though nothing reads
// it again once @fastify/websocket has called the route's handler (measured with 2,000 idle
// sessions, bench/servers/plugin.mjs):
//  - the `head` buffer ('upgrade' event), which @fastify/websocket keeps on the raw request
//    under a symbol: a slice of the socket's first read, so it holds the whole handshake's
//    bytes (Buffer, ArrayBuffer and backing store: about 350 bytes);
//  - the ServerResponse @fastify/websocket assigns to the TCP socket so Fastify can route the
//    request: it stays the socket's `_httpMessage`, and through Fastify's response listeners
//    it holds the Reply (about 700 bytes with them). The reply is hijacked, so that response
//    never finishes: Fastify's listeners on it can never run;
//  - @fastify/websocket's 'error' listener on the WebSocket, a closure over the request and
//    the reply (about 200 bytes) that calls the errorHandler this plugin gave it, which for a
//    session only logs at debug level: the session does that itself (Session.onError);
//  - ws's 'close' listener that drops the socket from its server's `clients` (a closure over
//    the server and the socket, about 100 bytes): sessions are taken out of that set at once
//    (the plugin closes them itself on shutdown), so all it could still do is emit the
//    server's 'close' again.
// Each step checks that what it finds is what it expects, and otherwise leaves things as they
// are and says which leftover each session keeps, once per process at debug level
// (./fallbacks; test/upgrade.test.ts forces each case).
//
// What the session keeps (the request, its headers) is kept, but Node's HTTP parser gives
// every request its own copy of each header name and value: the ones every handshake
// repeats (Upgrade: websocket, Sec-WebSocket-Version: 13...) are swapped for one shared
// copy of the same string (about 230 bytes per session). Nothing can tell the difference.
import { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket, WebSocketServer } from 'ws'
import { reportFallback } from './fallbacks'

const EMPTY = Buffer.alloc(0)
/** @fastify/websocket's symbol for the head buffer: undefined until looked up, null if absent. */
let headSymbol: symbol | null | undefined

function findHeadSymbol (raw: object): symbol | null {
  return Object.getOwnPropertySymbols(raw).find((symbol) => symbol.description === 'ws-head') ?? null
}

/**
 * Drops the upgrade's leftovers. `errorListener`: also remove @fastify/websocket's 'error'
 * listener, the last one added before its handler ran (checked by its source); only when
 * this plugin registered @fastify/websocket, so that the errorHandler it calls is this plugin's.
 * Call it in the route's handler, before adding listeners of one's own.
 */
export function releaseUpgrade (socket: WebSocket, request: FastifyRequest, errorListener: boolean): void {
  const raw = request.raw as FastifyRequest['raw'] & Record<symbol, unknown>
  shareCommonStrings(raw)
  if (headSymbol === undefined) headSymbol = findHeadSymbol(raw)
  if (headSymbol !== null && Buffer.isBuffer(raw[headSymbol])) raw[headSymbol] = EMPTY
  else reportFallback(request.log, '@fastify/websocket\'s ws-head buffer not found; each session keeps its handshake\'s bytes')

  // injectWS requests have no TCP socket.
  const tcp = raw.socket as (Socket & { _httpMessage?: unknown }) | undefined
  if (tcp !== undefined) {
    const response = tcp._httpMessage
    if (response instanceof ServerResponse && response.req === raw && typeof response.detachSocket === 'function') {
      response.detachSocket(tcp)
    } else {
      reportFallback(request.log, 'the TCP socket\'s _httpMessage is not @fastify/websocket\'s ServerResponse; each session keeps that response, and through it the Reply')
    }
  }

  if (errorListener) {
    const listeners = socket.listeners('error')
    const last = listeners[listeners.length - 1] as ((error: Error) => void) | undefined
    if (last !== undefined && sourceIncludes(last, 'errorHandler.call(')) {
      socket.removeListener('error', last)
    } else {
      reportFallback(request.log, '@fastify/websocket\'s \'error\' listener not found; each session keeps it, and the request and the Reply it holds')
    }
  }
}

/** Checks a listener of another package by its source, before removing it. */
function sourceIncludes (listener: (...args: any[]) => void, text: string): boolean {
  return Function.prototype.toString.call(listener).includes(text)
}

/** Header names and values that (nearly) every WebSocket handshake repeats, browsers' included. */
const COMMON_STRINGS = new Map<string, string>([
  '1.1', 'websocket', 'Upgrade', 'upgrade', '13', 'permessage-deflate; client_max_window_bits', 'no-cache',
  'Host', 'host', 'Connection', 'connection', 'Sec-WebSocket-Key', 'sec-websocket-key',
  'Sec-WebSocket-Version', 'sec-websocket-version', 'Sec-WebSocket-Extensions', 'sec-websocket-extensions',
  'Sec-WebSocket-Protocol', 'sec-websocket-protocol', 'Origin', 'origin', 'User-Agent', 'user-agent',
  'Pragma', 'Cache-Control', 'Accept-Encoding', 'Accept-Language', 'Cookie', 'cookie', 'Authorization', 'authorization'
].map((text) => [text, text]))
/** Headers whose values are common strings (for the others, only the raw name is shared). */
const COMMON_VALUE_HEADERS = ['upgrade', 'connection', 'sec-websocket-version', 'sec-websocket-extensions', 'pragma', 'cache-control']

function shareCommonStrings (raw: FastifyRequest['raw']): void {
  const common = COMMON_STRINGS.get(raw.httpVersion)
  if (common !== undefined) raw.httpVersion = common
  const rawHeaders = raw.rawHeaders
  // injectWS requests have no rawHeaders.
  if (Array.isArray(rawHeaders)) {
    for (let i = 0; i < rawHeaders.length; i++) {
      const shared = COMMON_STRINGS.get(rawHeaders[i]!)
      if (shared !== undefined) rawHeaders[i] = shared
    }
  }
  const headers = raw.headers
  for (const name of COMMON_VALUE_HEADERS) {
    const value = headers[name]
    if (typeof value !== 'string') continue
    const shared = COMMON_STRINGS.get(value)
    if (shared !== undefined) headers[name] = shared
  }
}

/**
 * Takes a session's socket out of its ws server's `clients` (when the server tracks them),
 * and removes ws's listener that would do it on close: the first 'close' listener, checked
 * by its source.
 */
export function untrack (server: WebSocketServer, socket: WebSocket, log: FastifyBaseLogger): void {
  // The set is undefined when the app turned ws's clientTracking off.
  const clients = server.clients as Set<WebSocket> | undefined
  if (clients === undefined) return
  clients.delete(socket)
  const first = socket.listeners('close')[0] as (() => void) | undefined
  if (first !== undefined && sourceIncludes(first, 'this.clients.delete(ws)')) {
    socket.removeListener('close', first)
  } else {
    reportFallback(log, 'ws\'s \'close\' listener for its server\'s clients not found; each session keeps it, and the server it holds')
  }
}

// Writes a prebuilt frame straight to a ws socket's TCP socket, as uWebSockets does for a
// broadcast: no per-member framing, and a burst of broadcasts in one turn of the event loop
// leaves as one write per socket (the sockets are corked until its check phase).
//
// This reads ws internals: the WebSocket's _socket and _extensions, and its Sender's _state
// and _queue. What they mean is probed once per Sender class (probeSender): where they are
// not as expected, or where the sender is busy (a compression or a Blob in flight) or
// permessage-deflate was negotiated without a shared deflate (./deflate), the caller falls
// back to ws.send(). The backpressure bound reads what is left unread at _socket (unreadBytes);
// without it, it counts ws's whole bufferedAmount.
import type { Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import { reportFallback } from './fallbacks'

interface SenderInternals { _state?: unknown, _queue?: unknown[] }
type ProbedSender = SenderInternals & { ping (data: Buffer, mask: boolean): void }
type SenderClass = new (...args: any[]) => unknown

interface WsInternals {
  _socket?: Socket
  _sender?: SenderInternals
  _extensions?: Record<string, unknown>
}

/** Each Sender class probed, with the value of _state in which it writes at once; null: unusable. */
const probed = new WeakMap<object, unknown>()
/** The idle _state of the Sender class in use (every class probed so far agrees on it). */
let idleState: unknown

/**
 * Learns how a ws Sender class queues: in the state a new sender is in, a frame must be
 * written to the socket at once with nothing queued, and in any other state it must wait in
 * _queue. Only then do `_state` and `_queue` say when a direct write keeps ws's order.
 * Returns the idle state, or undefined when the class does not behave so.
 */
export function probeSender (Sender: SenderClass): unknown {
  const writes: unknown[] = []
  const socket = { cork () {}, uncork () {}, write (chunk: unknown) { writes.push(chunk); return true } }
  try {
    const sender = new Sender(socket, {}) as ProbedSender
    const idle = sender._state
    const queue = sender._queue
    const queued = (): number => Array.isArray(queue) && sender._queue === queue ? queue.length : -1
    if (idle === undefined || queued() !== 0) return undefined
    sender.ping(Buffer.alloc(0), false)
    if (writes.length !== 1 || sender._state !== idle || queued() !== 0) return undefined
    sender._state = typeof idle === 'number' ? idle + 1 : Symbol('busy')
    sender.ping(Buffer.alloc(0), false)
    return writes.length === 1 && queued() === 1 ? idle : undefined
  } catch {
    return undefined
  }
}

function directWritesFor (sender: SenderInternals): boolean {
  const Sender = sender.constructor
  if (!probed.has(Sender)) {
    let idle = probeSender(Sender as SenderClass)
    if (idleState !== undefined && idle !== idleState) idle = undefined
    probed.set(Sender, idle)
    idleState ??= idle
  }
  return probed.get(Sender) !== undefined
}

/**
 * The socket's TCP socket when frames may be written to it directly, else null. `deflating`:
 * the session writes its broadcasts compressed as permessage-deflate (./deflate) says.
 */
export function directSocketOf (socket: WebSocket, log: FastifyBaseLogger, deflating = false): Socket | null {
  const ws = socket as unknown as WsInternals
  const sender = ws._sender
  const usable = ws._socket !== undefined && sender !== undefined && directWritesFor(sender) && Array.isArray(sender._queue)
  if (!usable) {
    reportFallback(log, 'ws internals are not as expected; every message goes through ws.send()')
    return null
  }
  const extensions = ws._extensions === undefined ? null : Object.keys(ws._extensions)
  if (extensions === null) return null
  if (extensions.length === 0 || (deflating && extensions.length === 1 && extensions[0] === 'permessage-deflate')) return ws._socket!
  return null
}

/**
 * What the client has left unread at the TCP socket: bufferedAmount without what ws's Sender
 * still holds (a message being deflated and those queued behind it), which has not reached
 * the socket. Where the TCP socket is not found, the whole bufferedAmount, as ws counts it.
 */
export function unreadBytes (socket: WebSocket): number {
  const tcp = (socket as unknown as WsInternals)._socket
  return typeof tcp?.writableLength === 'number' ? tcp.writableLength : socket.bufferedAmount
}

/** True when ws has nothing of its own waiting to be written, so a direct write keeps the order. */
export function senderIdle (socket: WebSocket): boolean {
  const sender = (socket as unknown as WsInternals)._sender!
  return sender._state === idleState && sender._queue!.length === 0
}

/**
 * A send window: from the first send after the check phase to the next check phase, that is
 * one turn of the event loop as far as sending goes. Each window has its own number.
 */
let window = 0
let windowOpen = false
let corked: Socket[] = []

function closeWindow (): void {
  windowOpen = false
  const sockets = corked
  corked = []
  for (const socket of sockets) socket.uncork()
}

/**
 * The rule of a bound on what a reader left unread (a client, for a session's maxBackpressure;
 * Redis, for the adapter's maxPublishBacklog): it counts what was left over from earlier send
 * windows, `before`, not this window's own burst, which is corked until the window closes;
 * with nothing left over the reader keeps up, and even a message bigger than the bound goes.
 */
export function pastBound (before: number, bytes: number, bound: number): boolean {
  return before > 0 && before + bytes > bound
}

/** The number of the current send window, opening one when none is. */
export function sendWindow (): number {
  if (!windowOpen) {
    windowOpen = true
    window++
    setImmediate(closeWindow)
  }
  return window
}

/**
 * Writes a frame, corking the socket until the window closes, in the check phase of this
 * turn of the event loop, so a burst becomes one write. Not at the end of the tick:
 * node-redis writes its commands in the check phase too, and a broadcast's PUBLISH, queued
 * before the first frame, then leaves for the other nodes before this node's own writes.
 */
export function writeFrame (tcp: Socket, frame: Buffer | Buffer[]): void {
  if (tcp.writableCorked === 0) {
    sendWindow()
    tcp.cork()
    corked.push(tcp)
  }
  if (Buffer.isBuffer(frame)) {
    tcp.write(frame)
    return
  }
  tcp.write(frame[0]!)
  if (frame.length === 2) tcp.write(frame[1]!)
}

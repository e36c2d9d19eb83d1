// Writes a prebuilt frame straight to a ws socket's TCP socket, as uWebSockets does for a
// broadcast: no per-member framing, and a burst of broadcasts in one turn of the event loop
// leaves as one write per socket (the sockets are corked until its check phase).
//
// This reads three ws internals (_socket, _sender, _extensions), checked once per socket:
// where they are not as expected, or where the sender is busy (a compression or a Blob in
// flight) or permessage-deflate was negotiated, the caller falls back to ws.send().
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'

interface WsInternals {
  _socket?: Socket
  _sender?: { _state?: number, _queue?: unknown[] }
  _extensions?: Record<string, unknown>
}

const SENDER_IDLE = 0 // ws Sender's DEFAULT state: it writes synchronously, nothing queued

/** The socket's TCP socket when frames may be written to it directly, else null. */
export function directSocketOf (socket: WebSocket): Socket | null {
  const ws = socket as unknown as WsInternals
  const sender = ws._sender
  if (ws._socket === undefined || typeof sender?._state !== 'number' || !Array.isArray(sender._queue)) return null
  if (ws._extensions === undefined || Object.keys(ws._extensions).length > 0) return null
  return ws._socket
}

/** True when ws has nothing of its own waiting to be written, so a direct write keeps the order. */
export function senderIdle (socket: WebSocket): boolean {
  const sender = (socket as unknown as WsInternals)._sender!
  return sender._state === SENDER_IDLE && sender._queue!.length === 0
}

let corked: Socket[] = []

function uncorkAll (): void {
  const sockets = corked
  corked = []
  for (const socket of sockets) socket.uncork()
}

/**
 * Writes a frame, corking the socket until the check phase of this turn of the event loop,
 * so a burst becomes one write. Not at the end of the tick: node-redis writes its commands
 * in the check phase too, and a broadcast's PUBLISH, queued before the first frame, then
 * leaves for the other nodes before this node's own writes rather than after them.
 */
export function writeFrame (tcp: Socket, frame: Buffer[]): void {
  if (tcp.writableCorked === 0) {
    tcp.cork()
    if (corked.push(tcp) === 1) setImmediate(uncorkAll)
  }
  tcp.write(frame[0]!)
  if (frame.length === 2) tcp.write(frame[1]!)
}

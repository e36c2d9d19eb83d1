// After ws's Receiver has reported a protocol error (invalid UTF-8, a message over maxPayload)
// it must parse nothing more. But chunks that arrived while a compressed message was inflating
// wait in its stream's buffer, and Node's stream still hands them over after the error: ws
// 8.23 then reads a masking key it has already dropped and throws from a zlib callback, which
// takes the process down (a client can do this to any server with permessage-deflate; the
// test "bad frames behind a compressed message that is still inflating end the session, not
// the process" in test/fuzz.test.ts reproduces it). Such chunks are dropped here instead.
//
// This reads the Receiver's _errored and replaces its _write, checked once per socket: where
// they are not as expected, nothing is done, and this ws bug, if that ws still has it, is not
// worked around: said once at warn level, since a client may then take the process down.
// Drop this module once ws fixes it.
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import { reportFallback } from './fallbacks'

type ReceiverWrite = (this: ReceiverInternals, chunk: Buffer, encoding: string, callback: (error?: Error | null) => void) => void
interface ReceiverInternals { _errored?: unknown, _write?: ReceiverWrite }

/** ws's own Receiver._write, as first found. */
let receiverWrite: ReceiverWrite | null = null

export function guardReceiver (socket: WebSocket, log: FastifyBaseLogger): void {
  const receiver = (socket as unknown as { _receiver?: ReceiverInternals })._receiver
  if (receiver === undefined || typeof receiver._errored !== 'boolean' || typeof receiver._write !== 'function') {
    reportFallback(log, 'ws\'s Receiver is not as expected; its late chunks after a protocol error are not guarded, and a client may crash the process with bad frames behind a compressed message if this ws version still has that bug', 'warn')
    return
  }
  receiverWrite ??= receiver._write
  if (receiver._write === receiverWrite) receiver._write = guardedReceiverWrite
}

function guardedReceiverWrite (this: ReceiverInternals, chunk: Buffer, encoding: string, callback: (error?: Error | null) => void): void {
  if (this._errored === true) {
    callback()
    return
  }
  receiverWrite!.call(this, chunk, encoding, callback)
}

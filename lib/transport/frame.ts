// Turns an outgoing message into bytes once, whatever its type, and into a WebSocket frame
// once, so a broadcast encodes and frames a message a single time for all its members.
import type { BinaryData, Message } from '../../types/index'
import { InvalidArgumentError, describe } from '../errors'

// The public declarations' own types: what users may send is declared once.
export type Binary = BinaryData
export type { Message }

/** ws send options, shared so a send allocates nothing of ours. */
export const TEXT = Object.freeze({ binary: false })
export const BINARY = Object.freeze({ binary: true })

/** Payloads up to this size are copied behind their header into one buffer: one write per member. */
const MERGE_LIMIT = 16 * 1024

export class Encoded {
  readonly data: Buffer
  readonly options: typeof TEXT | typeof BINARY
  /** The unmasked, uncompressed server frame (RFC 6455 5.2), built on first use. */
  #frame: Buffer[] | null = null
  /** Its compressed frames (./deflate), built on first use: one per deflate setting, usually one. */
  deflated: { by: object, frame: Buffer[], others: Map<object, Buffer[]> | null } | null = null

  constructor (data: Buffer, options: typeof TEXT | typeof BINARY) {
    this.data = data
    this.options = options
  }

  get frame (): Buffer[] {
    return (this.#frame ??= buildFrame(this.data, 0x80 | (this.options === BINARY ? 0x2 : 0x1))) // FIN, no RSV bits
  }
}

/** A server frame of `data`, whose first byte (FIN, RSV bits, opcode) is `first`. */
export function buildFrame (data: Buffer, first: number): Buffer[] {
  const length = data.length
  const merge = length <= MERGE_LIMIT
  const frame = Buffer.allocUnsafe(headerLength(length) + (merge ? length : 0))
  const at = writeHeader(frame, first, length)
  if (!merge) return [frame, data]
  data.copy(frame, at)
  return [frame]
}

function headerLength (length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10
}

/** Writes an unmasked frame header (RFC 6455 5.2) whose first byte is `first`; returns where the payload starts. */
function writeHeader (frame: Buffer, first: number, length: number): number {
  frame[0] = first
  // No MASK bit: server frames are not masked.
  if (length < 126) {
    frame[1] = length
    return 2
  }
  if (length < 65536) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
    return 4
  }
  frame[1] = 127
  frame.writeBigUInt64BE(BigInt(length), 2)
  return 10
}

/**
 * A text message's whole frame in one buffer, the text written straight behind its header:
 * one allocation and one copy, where Buffer.from() and a header would take two of each.
 */
export function textFrame (text: string, bytes: number): Buffer {
  const frame = Buffer.allocUnsafe(headerLength(bytes) + bytes)
  frame.write(text, writeHeader(frame, 0x81, bytes), bytes, 'utf8') // FIN, text
  return frame
}

/** A binary message's frame: its header and payload in one buffer up to MERGE_LIMIT, else both. */
export function binaryFrame (data: Buffer): Buffer[] {
  return buildFrame(data, 0x82) // FIN, binary
}

/** Views binary data as a Buffer without copying it, or returns null when it is not binary. */
export function toBuffer (data: unknown): Buffer | null {
  if (Buffer.isBuffer(data)) return data
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  return null
}

export function encode (message: unknown, name: string): Encoded {
  if (typeof message === 'string') return new Encoded(Buffer.from(message), TEXT)
  const data = toBuffer(message)
  if (data === null) throw new InvalidArgumentError(name, 'a string, a Buffer, a Uint8Array or an ArrayBuffer', describe(message))
  return new Encoded(data, BINARY)
}

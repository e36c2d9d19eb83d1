// Turns an outgoing message into bytes once, whatever its type, and into a WebSocket frame
// once, so a broadcast encodes and frames a message a single time for all its members.
import { InvalidArgumentError, describe } from '../errors'

export type Binary = Buffer | Uint8Array | ArrayBuffer | ArrayBufferView
export type Message = string | Binary

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
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8
  const merge = length <= MERGE_LIMIT
  const frame = Buffer.allocUnsafe(2 + extra + (merge ? length : 0))
  frame[0] = first
  frame[1] = extra === 0 ? length : extra === 2 ? 126 : 127 // no MASK bit: server frames are not masked
  if (extra === 2) frame.writeUInt16BE(length, 2)
  else if (extra === 8) frame.writeBigUInt64BE(BigInt(length), 2)
  if (!merge) return [frame, data]
  data.copy(frame, 2 + extra)
  return [frame]
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

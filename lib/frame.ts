// Turns an outgoing message into bytes once, whatever its type, so a broadcast encodes a
// string a single time for all members instead of once per member.
import { InvalidArgumentError, describe } from './errors'

export type Binary = Buffer | Uint8Array | ArrayBuffer | ArrayBufferView
export type Message = string | Binary

/** ws send options, shared so a send allocates nothing of ours. */
export const TEXT = Object.freeze({ binary: false })
export const BINARY = Object.freeze({ binary: true })

export interface Encoded {
  data: Buffer
  options: typeof TEXT | typeof BINARY
}

/** Views binary data as a Buffer without copying it, or returns null when it is not binary. */
export function toBuffer (data: unknown): Buffer | null {
  if (Buffer.isBuffer(data)) return data
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  return null
}

export function encode (message: unknown, name: string): Encoded {
  if (typeof message === 'string') return { data: Buffer.from(message), options: TEXT }
  const data = toBuffer(message)
  if (data === null) throw new InvalidArgumentError(name, 'a string, a Buffer, a Uint8Array or an ArrayBuffer', describe(message))
  return { data, options: BINARY }
}

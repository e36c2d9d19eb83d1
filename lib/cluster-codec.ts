// The bytes a node publishes to Redis for a broadcast: the message's bytes once, behind a
// small header that says how to frame them and whom to leave out, so each receiving node
// frames the message once and fans it out to its own members.
//
//   byte 0       format version (1)
//   byte 1       flags: bit 0 set for a binary message, clear for text
//   byte 2       length n of the origin node's id, then n bytes: the id (ASCII)
//   next byte    length m of the excluded session's id (0: none), then m bytes: the id
//   the rest     the message, as it goes out in its WebSocket frame
import { isUtf8 } from 'node:buffer'
import { BINARY, Encoded, TEXT } from './frame'

const VERSION = 1
const FLAG_BINARY = 0x01
const MAX_ID_LENGTH = 255

export interface ClusterMessage {
  origin: string
  exceptId: string | null
  encoded: Encoded
}

export function encodeClusterMessage (origin: string, encoded: Encoded, exceptId: string | null): Buffer {
  const except = exceptId ?? ''
  const originLength = Buffer.byteLength(origin, 'latin1')
  const exceptLength = Buffer.byteLength(except, 'latin1')
  if (originLength > MAX_ID_LENGTH || exceptLength > MAX_ID_LENGTH) throw new RangeError('cluster ids are at most 255 bytes')
  const headerLength = 4 + originLength + exceptLength
  const packet = Buffer.allocUnsafe(headerLength + encoded.data.length)
  packet[0] = VERSION
  packet[1] = encoded.options === BINARY ? FLAG_BINARY : 0
  packet[2] = originLength
  packet.write(origin, 3, 'latin1')
  packet[3 + originLength] = exceptLength
  packet.write(except, 4 + originLength, 'latin1')
  encoded.data.copy(packet, headerLength)
  return packet
}

/** Reads a published packet, or returns null when it is not one of ours. */
export function decodeClusterMessage (packet: Buffer): ClusterMessage | null {
  if (packet.length < 4 || packet[0] !== VERSION || (packet[1]! & ~FLAG_BINARY) !== 0) return null
  const originLength = packet[2]!
  if (originLength === 0 || packet.length < 4 + originLength) return null
  const exceptLength = packet[3 + originLength]!
  const headerLength = 4 + originLength + exceptLength
  if (packet.length < headerLength) return null
  const origin = packet.toString('latin1', 3, 3 + originLength)
  const exceptId = exceptLength === 0 ? null : packet.toString('latin1', 4 + originLength, headerLength)
  const data = packet.subarray(headerLength)
  const binary = (packet[1]! & FLAG_BINARY) !== 0
  // A text frame must be UTF-8 (RFC 6455 8.1): clients close on anything else with 1007.
  if (!binary && !isUtf8(data)) return null
  return { origin, exceptId, encoded: new Encoded(data, binary ? BINARY : TEXT) }
}

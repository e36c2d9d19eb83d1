// The bytes a node publishes to Redis for a broadcast: the message's bytes once, behind a
// small header that says how to frame them and which node sent them, so each receiving node
// frames the message once and fans it out to its own members (a broadcastExcept's excluded
// session lives on the sending node, which never delivers its own packets again).
//
//   byte 0       format version (2)
//   byte 1       flags: bit 0 set for a binary message, clear for text
//   byte 2       length n of the origin node's id, then n bytes: the id (ASCII)
//   the rest     the message, as it goes out in its WebSocket frame
import { isUtf8 } from 'node:buffer'
import { BINARY, Encoded, TEXT } from '../transport/frame'

const VERSION = 2
const FLAG_BINARY = 0x01
const MAX_ID_LENGTH = 255

export interface ClusterMessage {
  origin: string
  encoded: Encoded
}

export function encodeClusterMessage (origin: string, encoded: Encoded): Buffer {
  const originLength = Buffer.byteLength(origin, 'latin1')
  if (originLength > MAX_ID_LENGTH) throw new RangeError('a node id is at most 255 bytes')
  const headerLength = 3 + originLength
  const packet = Buffer.allocUnsafe(headerLength + encoded.data.length)
  packet[0] = VERSION
  packet[1] = encoded.options === BINARY ? FLAG_BINARY : 0
  packet[2] = originLength
  packet.write(origin, 3, 'latin1')
  encoded.data.copy(packet, headerLength)
  return packet
}

/** Reads a published packet, or returns null when it is not one of ours (another version included). */
export function decodeClusterMessage (packet: Buffer): ClusterMessage | null {
  if (packet.length < 3 || packet[0] !== VERSION || (packet[1]! & ~FLAG_BINARY) !== 0) return null
  const originLength = packet[2]!
  const headerLength = 3 + originLength
  if (originLength === 0 || packet.length < headerLength) return null
  const origin = packet.toString('latin1', 3, headerLength)
  const data = packet.subarray(headerLength)
  const binary = (packet[1]! & FLAG_BINARY) !== 0
  // A text frame must be UTF-8 (RFC 6455 8.1): clients close on anything else with 1007.
  if (!binary && !isUtf8(data)) return null
  return { origin, encoded: new Encoded(data, binary ? BINARY : TEXT) }
}

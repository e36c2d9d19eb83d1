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
import { assertCloseArguments } from '../close-codes'
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

// Commands for every node, on the cluster's control channel: a broadcast to the members of
// some rooms but not of others, and closing the members of a room or one session wherever it
// lives. Another format version, so a node that predates them ignores them.
//
//   byte 0       format version (3)
//   byte 1       the command (ControlKind)
//   byte 2       length n of the origin node's id, then n bytes: the id (ASCII)
//   4 bytes      length m of the command's arguments, then m bytes: them, as JSON
//   the rest     for a broadcast, its flags byte (bit 0: binary) and the message
const CONTROL_VERSION = 3

export const ControlKind = Object.freeze({ Broadcast: 1, DisconnectRoom: 2, DisconnectSession: 3 } as const)

export type ControlCommand =
  | { kind: typeof ControlKind.Broadcast, rooms: string[], except: string[], encoded: Encoded }
  | { kind: typeof ControlKind.DisconnectRoom, room: string, code: number, reason: string }
  | { kind: typeof ControlKind.DisconnectSession, sessionId: string, code: number, reason: string }

export function encodeControl (origin: string, command: ControlCommand): Buffer {
  const originLength = Buffer.byteLength(origin, 'latin1')
  if (originLength > MAX_ID_LENGTH) throw new RangeError('a node id is at most 255 bytes')
  const { kind, encoded, ...args } = command as ControlCommand & { encoded?: Encoded }
  const json = Buffer.from(JSON.stringify(args))
  const body = encoded === undefined ? 0 : 1 + encoded.data.length
  const packet = Buffer.allocUnsafe(3 + originLength + 4 + json.length + body)
  packet[0] = CONTROL_VERSION
  packet[1] = kind
  packet[2] = originLength
  let at = 3 + packet.write(origin, 3, 'latin1')
  at = packet.writeUInt32BE(json.length, at)
  at += json.copy(packet, at)
  if (encoded !== undefined) {
    packet[at] = encoded.options === BINARY ? FLAG_BINARY : 0
    encoded.data.copy(packet, at + 1)
  }
  return packet
}

/** Reads a control packet: its origin and command, or null when it is not one (any other format). */
export function decodeControl (packet: Buffer): { origin: string, command: ControlCommand } | null {
  if (packet.length < 7 || packet[0] !== CONTROL_VERSION) return null
  const kind = packet[1]!
  const originLength = packet[2]!
  if (originLength === 0 || packet.length < 7 + originLength) return null
  const origin = packet.toString('latin1', 3, 3 + originLength)
  const jsonLength = packet.readUInt32BE(3 + originLength)
  const jsonStart = 7 + originLength
  if (packet.length < jsonStart + jsonLength) return null
  let args: Record<string, unknown>
  try {
    args = JSON.parse(packet.toString('utf8', jsonStart, jsonStart + jsonLength))
  } catch {
    return null
  }
  const rest = jsonStart + jsonLength
  const isStrings = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string')
  if (kind === ControlKind.Broadcast) {
    if (!isStrings(args.rooms) || !isStrings(args.except) || packet.length < rest + 1 || (packet[rest]! & ~FLAG_BINARY) !== 0) return null
    const binary = (packet[rest]! & FLAG_BINARY) !== 0
    const data = packet.subarray(rest + 1)
    if (!binary && !isUtf8(data)) return null
    return { origin, command: { kind, rooms: args.rooms, except: args.except, encoded: new Encoded(data, binary ? BINARY : TEXT) } }
  }
  if (packet.length !== rest || !isSendableClose(args.code, args.reason)) return null
  const reason = args.reason as string
  if (kind === ControlKind.DisconnectRoom && typeof args.room === 'string') return { origin, command: { kind, room: args.room, code: args.code, reason } }
  if (kind === ControlKind.DisconnectSession && typeof args.sessionId === 'string') return { origin, command: { kind, sessionId: args.sessionId, code: args.code, reason } }
  return null
}

function isSendableClose (code: unknown, reason: unknown): code is number {
  try {
    assertCloseArguments(code, reason)
    return true
  } catch {
    return false
  }
}

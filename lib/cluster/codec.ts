// The bytes a node publishes to Redis for a broadcast: the message's bytes once, behind a
// small header that says how to frame them and which node sent them, so each receiving node
// frames the message once and fans it out to its own members (a broadcastExcept's excluded
// session lives on the sending node, which never delivers its own packets again).
//
//   byte 0       format version (2)
//   byte 1       flags: bit 0 set for a binary message, clear for text; bit 1 set when a
//                trace context follows the id
//   byte 2       length n of the origin node's id, then n bytes: the id (ASCII)
//   (bit 1 only) 1 byte: length t of the trace context, then t bytes: it, a W3C traceparent
//   the rest     the message, as it goes out in its WebSocket frame
// The trace context (option tracing) costs nothing when absent: a packet without it is laid
// out as before, and read as before. A node that predates it ignores a packet with it.
import { isUtf8 } from 'node:buffer'
import { assertCloseArguments } from '../close-codes'
import { ControlKind, type ControlCommand } from '../rooms/port'
import { BINARY, Encoded, TEXT } from '../transport/frame'

const VERSION = 2
export const FLAG_BINARY = 0x01
const FLAG_TRACE = 0x02
const MAX_ID_LENGTH = 255

export interface ClusterMessage {
  origin: string
  encoded: Encoded
  /** The sender's trace context (a W3C traceparent), or null. */
  traceparent: string | null
}

export function encodeClusterMessage (origin: string, encoded: Encoded, traceparent: string | null = null): Buffer {
  const originLength = Buffer.byteLength(origin, 'latin1')
  if (originLength > MAX_ID_LENGTH) throw new RangeError('a node id is at most 255 bytes')
  const traceLength = traceparent === null ? 0 : Buffer.byteLength(traceparent, 'latin1')
  if (traceLength > MAX_ID_LENGTH) throw new RangeError('a trace context is at most 255 bytes')
  const headerLength = 3 + originLength + (traceparent === null ? 0 : 1 + traceLength)
  const packet = Buffer.allocUnsafe(headerLength + encoded.data.length)
  packet[0] = VERSION
  packet[1] = (encoded.options === BINARY ? FLAG_BINARY : 0) | (traceparent === null ? 0 : FLAG_TRACE)
  packet[2] = originLength
  packet.write(origin, 3, 'latin1')
  if (traceparent !== null) {
    packet[3 + originLength] = traceLength
    packet.write(traceparent, 4 + originLength, 'latin1')
  }
  encoded.data.copy(packet, headerLength)
  return packet
}

/** Reads a published packet, or returns null when it is not one of ours (another version included). */
export function decodeClusterMessage (packet: Buffer): ClusterMessage | null {
  if (packet.length < 3 || packet[0] !== VERSION || (packet[1]! & ~(FLAG_BINARY | FLAG_TRACE)) !== 0) return null
  const originLength = packet[2]!
  let headerLength = 3 + originLength
  if (originLength === 0 || packet.length < headerLength) return null
  const origin = packet.toString('latin1', 3, headerLength)
  let traceparent: string | null = null
  if ((packet[1]! & FLAG_TRACE) !== 0) {
    if (packet.length < headerLength + 1 || packet.length < headerLength + 1 + packet[headerLength]!) return null
    traceparent = packet.toString('latin1', headerLength + 1, headerLength + 1 + packet[headerLength]!)
    headerLength += 1 + packet[headerLength]!
  }
  const data = packet.subarray(headerLength)
  const binary = (packet[1]! & FLAG_BINARY) !== 0
  // A text frame must be UTF-8 (RFC 6455 8.1): clients close on anything else with 1007.
  if (!binary && !isUtf8(data)) return null
  return { origin, encoded: new Encoded(data, binary ? BINARY : TEXT), traceparent }
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
// A command that closes sessions carries its deadline among its arguments (`deadline`: ms
// since the epoch, by the sender's clock), past which no node carries it out; a node that
// predates it ignores the field.
const CONTROL_VERSION = 3

/** A command as it travels: with its deadline (Date.now() past which it is dropped), or null for none. */
export interface ControlMessage {
  origin: string
  command: ControlCommand
  deadline: number | null
}

export function encodeControl (origin: string, command: ControlCommand, deadline: number | null): Buffer {
  const originLength = Buffer.byteLength(origin, 'latin1')
  if (originLength > MAX_ID_LENGTH) throw new RangeError('a node id is at most 255 bytes')
  const { kind, encoded, ...args } = command as ControlCommand & { encoded?: Encoded }
  const json = Buffer.from(JSON.stringify(deadline === null ? args : { ...args, deadline }))
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

/** Reads a control packet: its origin, command and deadline, or null when it is not one (any other format). */
export function decodeControl (packet: Buffer): ControlMessage | null {
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
  if (args.deadline !== undefined && !Number.isSafeInteger(args.deadline)) return null
  const deadline = (args.deadline ?? null) as number | null
  const isStrings = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string')
  if (kind === ControlKind.Broadcast) {
    if (!isStrings(args.rooms) || !isStrings(args.except) || packet.length < rest + 1 || (packet[rest]! & ~FLAG_BINARY) !== 0) return null
    const binary = (packet[rest]! & FLAG_BINARY) !== 0
    const data = packet.subarray(rest + 1)
    if (!binary && !isUtf8(data)) return null
    return { origin, command: { kind, rooms: args.rooms, except: args.except, encoded: new Encoded(data, binary ? BINARY : TEXT) }, deadline }
  }
  if (packet.length !== rest || !isSendableClose(args.code, args.reason)) return null
  const reason = args.reason as string
  if (kind === ControlKind.DisconnectRoom && typeof args.room === 'string') return { origin, command: { kind, room: args.room, code: args.code, reason }, deadline }
  if (kind === ControlKind.DisconnectSession && typeof args.sessionId === 'string') return { origin, command: { kind, sessionId: args.sessionId, code: args.code, reason }, deadline }
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

// A published message (publish(), kept in the room's history), on the room's channel: its
// position rides along, so that a node tells a live message from one a recovery replayed, and
// the session it leaves out, whichever node it lives on. The history script PUBLISHes it in
// offset order. Another format version, so a node that predates it ignores it.
//
//   byte 0       format version (4)
//   byte 1       flags: bit 0 set for a binary message, clear for text
//   byte 2       length n of the origin node's id, then n bytes: the id (ASCII)
//   6 bytes      the offset
//   1 byte       length e of the epoch, then e bytes: it (ASCII)
//   1 byte       length x of the id of the session left out (0: none), then x bytes: it
//   the rest     the message, as it goes out in its WebSocket frame
const PUBLISHED_VERSION = 4
/** Where a published packet's flags byte is: the history's script keeps it with the message (./history-scripts). */
export const PUBLISHED_FLAGS_BYTE = 1
const MAX_OFFSET = 2 ** 48 - 1

export interface PublishedMessage {
  epoch: string
  offset: number
  exceptId: string | null
  encoded: Encoded
}

/** Packs a published message; its header is `packet.length - encoded.data.length` bytes long. */
export function encodePublished (origin: string, message: PublishedMessage): Buffer {
  const { epoch, offset, exceptId, encoded } = message
  const except = exceptId ?? ''
  const originLength = Buffer.byteLength(origin, 'latin1')
  const epochLength = Buffer.byteLength(epoch, 'latin1')
  const exceptLength = Buffer.byteLength(except, 'latin1')
  if (originLength > MAX_ID_LENGTH || epochLength > MAX_ID_LENGTH || exceptLength > MAX_ID_LENGTH) throw new RangeError('an id or epoch is at most 255 bytes')
  if (!Number.isSafeInteger(offset) || offset < 1 || offset > MAX_OFFSET) throw new RangeError('an offset is an integer from 1 to 2^48 - 1')
  const headerLength = 3 + originLength + 6 + 1 + epochLength + 1 + exceptLength
  const packet = Buffer.allocUnsafe(headerLength + encoded.data.length)
  packet[0] = PUBLISHED_VERSION
  packet[PUBLISHED_FLAGS_BYTE] = encoded.options === BINARY ? FLAG_BINARY : 0
  packet[2] = originLength
  let at = 3 + packet.write(origin, 3, 'latin1')
  at = packet.writeUIntBE(offset, at, 6)
  packet[at++] = epochLength
  at += packet.write(epoch, at, 'latin1')
  packet[at++] = exceptLength
  at += packet.write(except, at, 'latin1')
  encoded.data.copy(packet, at)
  return packet
}

export function isPublished (packet: Buffer): boolean {
  return packet[0] === PUBLISHED_VERSION
}

/** Reads a published message and the node that published it, or returns null when the packet is not one. */
export function decodePublished (packet: Buffer): { origin: string, message: PublishedMessage } | null {
  if (packet.length < 12 || packet[0] !== PUBLISHED_VERSION || (packet[1]! & ~FLAG_BINARY) !== 0) return null
  let at = 3 + packet[2]!
  if (packet[2] === 0 || packet.length < at + 8) return null
  const offset = packet.readUIntBE(at, 6)
  at += 6
  const epochLength = packet[at++]!
  if (epochLength === 0 || packet.length < at + epochLength + 1) return null
  const epoch = packet.toString('latin1', at, at + epochLength)
  at += epochLength
  const exceptLength = packet[at++]!
  if (packet.length < at + exceptLength || offset === 0) return null
  const exceptId = exceptLength === 0 ? null : packet.toString('latin1', at, at + exceptLength)
  const data = packet.subarray(at + exceptLength)
  const binary = (packet[1]! & FLAG_BINARY) !== 0
  if (!binary && !isUtf8(data)) return null
  const origin = packet.toString('latin1', 3, 3 + packet[2]!)
  return { origin, message: { epoch, offset, exceptId, encoded: new Encoded(data, binary ? BINARY : TEXT) } }
}

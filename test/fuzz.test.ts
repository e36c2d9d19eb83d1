// Fuzz: thousands of random and mutated frames from many raw connections. Whatever arrives
// (bad opcodes, lying lengths, 64-bit lengths with the top bit set, unmasked frames,
// fragmented control frames, invalid UTF-8, truncated frames cut off by a TCP close, random
// bytes, valid frames with flipped bits, all interleaved with valid messages), the process
// stays up, every session ends and leaves its rooms, nothing is logged as a warning or an
// error, and the server goes on serving well-behaved clients.
//
// The frames come from a seeded PRNG (mulberry32), one stream per connection, so a
// connection's bytes depend only on FUZZ_SEED and its index. FUZZ_SEED is in the test's name:
// rerun a failure with `FUZZ_SEED=<n> npx tap test/fuzz.test.ts`. FUZZ_CONNECTIONS
// changes the number of connections (default 200).
import { connect as tcpConnect, type Socket } from 'node:net'
import { constants as zlib, deflateRawSync, inflateRawSync } from 'node:zlib'
import { test, type Test } from 'tap'
import { build, connect, listen, until } from './helpers'
import { RawClient, buildFrame, closePayload, opcodes, type FrameFlags, type ServerFrame } from './raw-client'
import { DEADLINE, Events, turns } from './signals'

const FUZZ_SEED = process.env.FUZZ_SEED === undefined ? (Date.now() ^ (process.pid << 16)) >>> 0 : Number(process.env.FUZZ_SEED) >>> 0
const CONNECTIONS = Number(process.env.FUZZ_CONNECTIONS ?? 400)
/** Connections open at once. */
const BATCH = 25
const MAX_PAYLOAD = 65536
const ROOMS = ['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']
/** A batch that has not finished by then has a connection the server never closed (a test's deadline: see DEADLINE). */
const WATCHDOG_MS = DEADLINE

/** mulberry32: a tiny seeded PRNG, good enough to pick frames. */
class Rng {
  #state: number

  constructor (start: number) {
    this.#state = start >>> 0
  }

  next (): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** An integer in [min, max]. */
  int (min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }

  chance (p: number): boolean {
    return this.next() < p
  }

  pick<T> (list: readonly T[]): T {
    return list[Math.floor(this.next() * list.length)]!
  }

  bytes (n: number): Buffer {
    const out = Buffer.alloc(n)
    for (let i = 0; i < n; i += 4) {
      const word = Math.floor(this.next() * 4294967296)
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (word >>> (j * 8)) & 0xff
    }
    return out
  }

  /** One of the entries, with probability proportional to its weight. */
  weighted<T> (entries: ReadonlyArray<readonly [number, T]>): T {
    let roll = this.next() * entries.reduce((sum, [weight]) => sum + weight, 0)
    for (const [weight, value] of entries) {
      roll -= weight
      if (roll < 0) return value
    }
    return entries[entries.length - 1]![1]
  }
}

// ---------------------------------------------------------------------------------------
// Steps: a frame (or a few) with what the server must do with it.

interface Step {
  /** valid: replies known; fatal: the server closes with `code`; unknown: anything may happen. */
  kind: 'valid' | 'fatal' | 'unknown'
  label: string
  bytes: Buffer
  frames: number
  /** What the server answers, in order (valid steps): T:text, B:hex, P:hex (a pong). */
  replies: string[]
  code: number
  reason: string
}

const valid = (label: string, bytes: Buffer, replies: string[], frames = 1): Step => ({ kind: 'valid', label, bytes, frames, replies, code: 0, reason: '' })
const fatal = (label: string, bytes: Buffer, code: number, frames = 1, reason = ''): Step => ({ kind: 'fatal', label, bytes, frames, replies: [], code, reason })
const unknown = (label: string, bytes: Buffer, frames = 1): Step => ({ kind: 'unknown', label, bytes, frames, replies: [], code: 0, reason: '' })

const DATA_OPCODES = [opcodes.text, opcodes.binary] as const
const BAD_OPCODES = [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]
const BAD_CLOSE_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
const CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
const BAD_UTF8 = [[0xff], [0xfe], [0x80], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xe2, 0x82]]
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789 .,!?-_'
const WIDE = ['é', 'ß', '€', '中', '文', '𝄞', '😀', '\u0000', '\u007f', '\u2028']
const BCAST = Buffer.from('bcast:')
const RSV1 = 0b100
/** What permessage-deflate strips from the end of each compressed message (RFC 7692 7.2.1). */
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff])
/** A client that negotiates permessage-deflate; no context takeover, so every message inflates on its own. */
const DEFLATE_OFFER = 'permessage-deflate; client_no_context_takeover; server_no_context_takeover'

function compress (data: Buffer): Buffer {
  const out = deflateRawSync(data, { finishFlush: zlib.Z_SYNC_FLUSH })
  return out.subarray(out.length - 4).equals(TRAILER) ? out.subarray(0, out.length - 4) : out
}

function frame (r: Rng, opcode: number, payload: Buffer | string, flags: FrameFlags = {}): Buffer {
  return buildFrame(opcode, payload, { maskKey: r.bytes(4), ...flags })
}

/** A text message that is no command (it starts with "m"). */
function randomText (r: Rng): string {
  const length = r.weighted([[75, () => r.int(0, 40)], [20, () => r.int(41, 300)], [5, () => r.int(300, 5000)]] as const)()
  let text = 'm'
  for (let i = 0; i < length; i++) text += r.chance(0.15) ? r.pick(WIDE) : ALPHABET[r.int(0, ALPHABET.length - 1)]
  return text
}

function randomBinary (r: Rng): Buffer {
  const length = r.weighted([[70, () => r.int(0, 64)], [25, () => r.int(65, 2000)], [4, () => r.int(2001, 20000)], [1, () => MAX_PAYLOAD]] as const)()
  const data = r.bytes(length)
  if (data[0] === BCAST[0]) data[0] = 0x61 // never mistaken for a broadcast
  return data
}

/** Splits bytes into 1 to `max` pieces at random places (an empty piece is a valid empty fragment). */
function pieces (r: Rng, bytes: Buffer, max: number): Buffer[] {
  const cuts = Array.from({ length: r.int(0, max - 1) }, () => r.int(0, bytes.length)).sort((a, b) => a - b)
  const out: Buffer[] = []
  let at = 0
  for (const cut of cuts) {
    out.push(bytes.subarray(at, cut))
    at = cut
  }
  out.push(bytes.subarray(at))
  return out
}

const hex = (data: Buffer): string => data.toString('hex')

type Generators = Array<readonly [number, (r: Rng) => Step]>

function invalidUtf8 (r: Rng): Buffer {
  return Buffer.concat([Buffer.from('m' + 'x'.repeat(r.int(0, 30))), Buffer.from(r.pick(BAD_UTF8)), Buffer.from('y'.repeat(r.int(0, 30)))])
}

/** A valid frame's bytes, to be mutated. */
function someValidFrame (r: Rng): { opcode: number, payload: Buffer } {
  const opcode = r.pick(DATA_OPCODES)
  return { opcode, payload: opcode === opcodes.text ? Buffer.from(randomText(r)) : randomBinary(r).subarray(0, 3000) }
}

/** The step generators: valid, fatal (a known close code) and unknown; with deflate, for a session that negotiated permessage-deflate. */
function generators (deflate: boolean): { validSteps: Generators, fatalSteps: Generators, unknownSteps: Generators } {
  const validSteps: Generators = [
    [30, (r) => {
      const text = randomText(r)
      return valid('text', frame(r, opcodes.text, text), [`T:echo:${text}`])
    }],
    [20, (r) => {
      const data = randomBinary(r)
      return valid('binary', frame(r, opcodes.binary, data), [`B:${hex(data)}`])
    }],
    [8, (r) => {
      const data = r.bytes(r.int(0, 125))
      return valid('ping', frame(r, opcodes.ping, data), [`P:${hex(data)}`])
    }],
    [4, (r) => valid('pong', frame(r, opcodes.pong, r.bytes(r.int(0, 125))), [])],
    // A fragmented message, a fragment boundary possibly inside a UTF-8 character, pings between fragments.
    [12, (r) => {
      const binary = r.chance(0.4)
      const message = binary ? randomBinary(r) : Buffer.from(randomText(r))
      const parts = pieces(r, message, 5)
      const frames: Buffer[] = []
      const replies: string[] = []
      parts.forEach((part, i) => {
        frames.push(frame(r, i === 0 ? (binary ? opcodes.binary : opcodes.text) : opcodes.continuation, part, { fin: i === parts.length - 1 }))
        if (i < parts.length - 1 && r.chance(0.3)) {
          const ping = r.bytes(r.int(0, 20))
          frames.push(frame(r, opcodes.ping, ping))
          replies.push(`P:${hex(ping)}`)
        }
      })
      replies.push(binary ? `B:${hex(message)}` : `T:echo:${message.toString()}`)
      return valid('fragmented', Buffer.concat(frames), replies, frames.length)
    }],
    [10, (r) => {
      const room = r.pick(ROOMS)
      const command = r.weighted([[4, 'join'], [2, 'leave'], [3, 'bcast']] as const)
      if (command === 'bcast') return valid('bcast', frame(r, opcodes.text, `bcast:${room}:${randomText(r)}`), [`T:sent:${room}`])
      return valid(command, frame(r, opcodes.text, `${command}:${room}`), [`T:${command === 'join' ? 'joined' : 'left'}:${room}`])
    }]
  ]

  const fatalSteps: Generators = [
    [4, (r) => fatal('bad opcode', frame(r, r.pick(BAD_OPCODES), r.bytes(r.int(0, 125))), 1002)],
    [4, (r) => fatal('unmasked', frame(r, r.pick([opcodes.text, opcodes.binary, opcodes.ping]), Buffer.from(randomText(r).slice(0, 100)), { mask: false }), 1002)],
    [4, (r) => {
      const opcode = r.pick([opcodes.ping, opcodes.pong, opcodes.close])
      return fatal('fragmented control', frame(r, opcode, opcode === opcodes.close ? closePayload(1000) : r.bytes(r.int(0, 125)), { fin: false }), 1002)
    }],
    [3, (r) => fatal('control over 125 bytes', frame(r, r.pick([opcodes.ping, opcodes.pong, opcodes.close]), r.bytes(r.int(126, 400))), 1002)],
    // RSV2 or RSV3, and RSV1 too when permessage-deflate was not negotiated.
    [3, (r) => fatal('reserved bits', frame(r, r.pick(DATA_OPCODES), Buffer.from('rsv'), { rsv: deflate ? r.pick([1, 2, 3, 5, 6, 7]) : r.int(1, 7) }), 1002)],
    [3, (r) => fatal('orphan continuation', frame(r, opcodes.continuation, Buffer.from('orphan')), 1002)],
    [3, (r) => fatal('new message inside a fragmented one', Buffer.concat([
      frame(r, r.pick(DATA_OPCODES), Buffer.from('first'), { fin: false }),
      frame(r, r.pick(DATA_OPCODES), Buffer.from('second'))
    ]), 1002, 2)],
    [5, (r) => {
      const text = invalidUtf8(r)
      if (r.chance(0.5)) return fatal('invalid UTF-8', frame(r, opcodes.text, text), 1007)
      const [first, second] = [text.subarray(0, 2), text.subarray(2)]
      return fatal('invalid UTF-8, fragmented', Buffer.concat([frame(r, opcodes.text, first, { fin: false }), frame(r, opcodes.continuation, second)]), 1007, 2)
    }],
    [2, (r) => fatal('close reason not UTF-8', frame(r, opcodes.close, Buffer.concat([closePayload(1000), Buffer.from(r.pick(BAD_UTF8))])), 1007)],
    [3, (r) => fatal('close code not allowed', frame(r, opcodes.close, closePayload(r.pick(BAD_CLOSE_CODES), 'x')), 1002)],
    [1, (r) => fatal('one-byte close payload', frame(r, opcodes.close, Buffer.from([0x03])), 1002)],
    // A length field past maxPayload: refused from the header, before any payload.
    [4, (r) => {
      const length = r.weighted([[1, () => r.int(MAX_PAYLOAD + 1, 2 * MAX_PAYLOAD)], [1, () => r.int(2 * MAX_PAYLOAD, 2 ** 40)]] as const)()
      return fatal('length over maxPayload', frame(r, r.pick(DATA_OPCODES), r.bytes(r.int(0, 64)), { length }), 1009)
    }],
    // A 64-bit length with its top bit set (or past 2^53): ws refuses it as unsupported.
    [4, (r) => {
      const length = r.chance(0.7) ? (1n << 63n) | (BigInt(r.int(0, 2 ** 31)) << 16n) | BigInt(r.int(0, 65535)) : (1n << 53n) + BigInt(r.int(0, 2 ** 30))
      return fatal('64-bit length, top bit set', frame(r, r.pick(DATA_OPCODES), r.bytes(r.int(0, 16)), { length }), 1009)
    }],
    [2, (r) => fatal('fragments over maxPayload in all', Buffer.concat([
      frame(r, opcodes.binary, r.bytes(1000), { fin: false }),
      frame(r, opcodes.continuation, Buffer.alloc(0), { length: MAX_PAYLOAD })
    ]), 1009, 2)],
    // Not a protocol error: the server closes the session itself.
    [2, (r) => fatal('kick', frame(r, opcodes.text, 'kick'), 4001, 1, 'kicked')]
  ]

  const unknownSteps: Generators = [
    // The length field says more than the payload: the next frames become payload.
    [3, (r) => {
      const { opcode, payload } = someValidFrame(r)
      return unknown('length larger than payload', frame(r, opcode, payload, { length: Math.min(MAX_PAYLOAD, payload.length + r.int(1, 2000)) }))
    }],
    // The length field says less: the rest of the payload is read as the next frame.
    [3, (r) => {
      const { opcode, payload } = someValidFrame(r)
      const data = payload.length === 0 ? Buffer.from('m') : payload
      return unknown('length smaller than payload', frame(r, opcode, data, { length: r.int(0, data.length - 1) }))
    }],
    [3, (r) => unknown('random bytes', r.bytes(r.int(1, 80)))],
    // A valid frame (or several) with a few bits flipped, header and mask key included.
    [6, (r) => {
      const step = r.weighted(validSteps)(r)
      const bytes = Buffer.from(step.bytes)
      const flips = r.int(1, 3)
      for (let i = 0; i < flips; i++) {
        const at = r.chance(0.5) ? r.int(0, Math.min(bytes.length - 1, 13)) : r.int(0, bytes.length - 1)
        bytes[at]! ^= 1 << r.int(0, 7)
      }
      return unknown(`bit flips in ${step.label}`, bytes, step.frames)
    }],
    [2, (r) => {
      const { opcode, payload } = someValidFrame(r)
      const bytes = frame(r, opcode, payload)
      return unknown('truncated frame', bytes.subarray(0, r.int(1, bytes.length - 1)))
    }]
  ]

  if (deflate) {
    // Compressed messages, whole or fragmented (RSV1 on the first fragment only).
    validSteps.push([15, (r) => {
      const binary = r.chance(0.4)
      // maxPayload bounds the compressed frames too: random bytes do not shrink, so stay below it.
      const message = binary ? randomBinary(r).subarray(0, MAX_PAYLOAD - 1024) : Buffer.from(randomText(r))
      const opcode = binary ? opcodes.binary : opcodes.text
      const reply = binary ? `B:${hex(message)}` : `T:echo:${message.toString()}`
      const compressed = compress(message)
      if (r.chance(0.5)) return valid('compressed', frame(r, opcode, compressed, { rsv: RSV1 }), [reply])
      const parts = pieces(r, compressed, 4)
      const frames = parts.map((part, i) => frame(r, i === 0 ? opcode : opcodes.continuation, part, { fin: i === parts.length - 1, rsv: i === 0 ? RSV1 : 0 }))
      return valid('compressed, fragmented', Buffer.concat(frames), [reply], frames.length)
    }])
    fatalSteps.push(
      // Block type 11 is reserved: inflating fails at once, whatever follows.
      [4, (r) => fatal('not a deflate stream', frame(r, r.pick(DATA_OPCODES), Buffer.concat([Buffer.from([0x06 | r.int(0, 1)]), r.bytes(r.int(0, 60))]), { rsv: RSV1 }), 1007)],
      [2, (r) => fatal('compressed text not UTF-8', frame(r, opcodes.text, compress(invalidUtf8(r)), { rsv: RSV1 }), 1007)],
      [3, (r) => fatal('inflates past maxPayload', frame(r, r.pick(DATA_OPCODES), compress(Buffer.alloc(MAX_PAYLOAD + r.int(1, 200_000), 'a')), { rsv: RSV1 }), 1009)],
      [2, (r) => fatal('RSV1 on a control frame', frame(r, r.pick([opcodes.ping, opcodes.pong]), r.bytes(r.int(0, 20)), { rsv: RSV1 }), 1002)],
      [2, (r) => fatal('RSV1 on a continuation', Buffer.concat([
        frame(r, opcodes.text, 'first', { fin: false }),
        frame(r, opcodes.continuation, compress(Buffer.from('second')), { rsv: RSV1 })
      ]), 1002, 2)]
    )
  }
  return { validSteps, fatalSteps, unknownSteps }
}

// ---------------------------------------------------------------------------------------
// Plans: what one connection sends, and how it ends, decided before it opens.

type Mode = 'clean' | 'fatal' | 'chaos' | 'eager' | 'abort'
/**
 * close: a close frame, answered; kick: the server closes; await: wait for the server's close
 * (after a fatal step); end: a TCP FIN; destroy: a TCP reset; closeThenEnd: a close frame and
 * a FIN at once.
 */
type Ending = 'close' | 'kick' | 'await' | 'end' | 'destroy' | 'closeThenEnd'

interface Chunk { bytes: Buffer, pause: boolean }

interface Plan {
  index: number
  mode: Mode
  steps: Step[]
  /** Written first; the replies they call for are awaited before the rest is written. */
  head: Chunk[]
  headReplies: string[]
  rest: Chunk[]
  /** The replies of the steps before the first step that is not valid. */
  prefixReplies: string[]
  /** The fatal step that ends the connection (fatal mode). */
  fatal: Step | null
  ending: Ending
  /** A truncated frame written just before an abrupt ending. */
  tail: Buffer | null
  closeCode: number
  closeReason: string
  /** Event-loop turns between the last write and the ending (eager, abort). */
  lateTurns: number
  /** A server-side broadcast sent once the session is ready. */
  broadcast: { room: string, message: string | Buffer } | null
}

function chunks (r: Rng, bytes: Buffer): Chunk[] {
  if (bytes.length === 0) return []
  let cuts: number[]
  const style = r.next()
  if (style < 0.4 || bytes.length < 2) {
    cuts = []
  } else if (style < 0.9) {
    cuts = Array.from({ length: r.int(1, 8) }, () => r.int(1, bytes.length - 1))
  } else {
    // Byte by byte at first: every parser state sees a partial read.
    cuts = Array.from({ length: Math.min(bytes.length - 1, 40) }, (_, i) => i + 1)
  }
  cuts = [...new Set(cuts)].sort((a, b) => a - b)
  const out: Chunk[] = []
  let at = 0
  for (const cut of [...cuts, bytes.length]) {
    out.push({ bytes: bytes.subarray(at, cut), pause: r.chance(0.3) })
    at = cut
  }
  return out
}

function upgradeRequest (r: Rng, index: number, port: number, deflate: boolean): Buffer {
  return Buffer.from(`GET /fuzz?c=${index} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${r.bytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
    (deflate ? `Sec-WebSocket-Extensions: ${DEFLATE_OFFER}\r\n` : '') + '\r\n')
}

function makePlan (index: number, port: number, deflate: boolean): Plan {
  const r = new Rng(FUZZ_SEED ^ Math.imul(index + 1, 0x9e3779b9) ^ (deflate ? 0x5bd1e995 : 0))
  const { validSteps, fatalSteps, unknownSteps } = generators(deflate)
  const mode = r.weighted([[20, 'clean'], [30, 'fatal'], [35, 'chaos'], [10, 'eager'], [5, 'abort']] as const)
  const steps: Step[] = []
  const plan: Plan = {
    index,
    mode,
    steps,
    head: [],
    headReplies: [],
    rest: [],
    prefixReplies: [],
    fatal: null,
    ending: 'destroy',
    tail: null,
    closeCode: 0,
    closeReason: '',
    lateTurns: 0,
    broadcast: r.chance(0.3) ? (r.chance(0.5) ? { room: 'lobby', message: 'bcast:server' } : { room: r.pick(ROOMS), message: Buffer.concat([BCAST, r.bytes(r.int(0, 40))]) }) : null
  }
  const addValid = (n: number): void => { for (let i = 0; i < n; i++) steps.push(r.weighted(validSteps)(r)) }

  switch (mode) {
    case 'clean':
      addValid(r.int(20, 50))
      plan.ending = r.weighted([[4, 'close'], [2, 'kick'], [2, 'end'], [2, 'destroy']] as const)
      plan.closeCode = r.pick(CLOSE_CODES)
      // At most 30 characters (90 bytes), never half of a surrogate pair.
      plan.closeReason = r.chance(0.5) ? '' : Array.from(randomText(r)).slice(0, 30).join('')
      break
    case 'fatal': {
      addValid(r.int(0, 35))
      plan.fatal = r.weighted(fatalSteps)(r)
      steps.push(plan.fatal)
      // After a protocol error ws reads nothing more: anything may follow. (Not after a kick:
      // ws still reads then, and a protocol error would change the code onDisconnected gets.)
      if (plan.fatal.code !== 4001) {
        const junk = r.int(0, 8)
        for (let i = 0; i < junk; i++) steps.push(r.weighted([[1, r.weighted(validSteps)], [1, r.weighted(fatalSteps)], [1, r.weighted(unknownSteps)]] as const)(r))
      }
      plan.ending = 'await'
      break
    }
    case 'chaos': {
      const n = r.int(20, 50)
      for (let i = 0; i < n; i++) {
        const pool = r.weighted([[60, validSteps], [15, fatalSteps], [25, unknownSteps]] as const)
        steps.push(r.weighted(pool)(r))
      }
      plan.ending = r.weighted([[3, 'end'], [3, 'destroy'], [2, 'closeThenEnd']] as const)
      if (plan.ending !== 'closeThenEnd' && r.chance(0.4)) {
        const { opcode, payload } = someValidFrame(r)
        const bytes = frame(r, opcode, payload)
        plan.tail = bytes.subarray(0, r.int(1, bytes.length - 1))
      }
      plan.closeCode = r.pick(CLOSE_CODES)
      break
    }
    case 'eager': {
      // The upgrade request and frames in one stream: the frames arrive with the handshake.
      addValid(r.int(1, 10))
      if (r.chance(0.5)) steps.push(r.weighted(r.chance(0.5) ? fatalSteps : unknownSteps)(r))
      plan.ending = r.weighted([[1, 'end'], [1, 'destroy']] as const)
      plan.lateTurns = r.int(0, 6)
      break
    }
    case 'abort':
      plan.ending = r.weighted([[1, 'end'], [1, 'destroy']] as const)
      plan.lateTurns = r.int(0, 6)
      break
  }

  const firstBad = steps.findIndex((step) => step.kind !== 'valid')
  const prefix = firstBad === -1 ? steps : steps.slice(0, firstBad)
  plan.prefixReplies = prefix.flatMap((step) => step.replies)
  const all = Buffer.concat(steps.map((step) => step.bytes))

  if (mode === 'eager') {
    plan.rest = chunks(r, Buffer.concat([upgradeRequest(r, index, port, deflate), all]))
  } else if (mode === 'abort') {
    const request = upgradeRequest(r, index, port, deflate)
    plan.rest = chunks(r, r.chance(0.5) ? request : request.subarray(0, r.int(1, request.length - 1)))
  } else if (mode === 'chaos' && r.chance(0.5)) {
    // Wait for the valid prefix's replies before the bad part: checks them exactly.
    const headBytes = Buffer.concat(prefix.map((step) => step.bytes))
    plan.head = chunks(r, headBytes)
    plan.headReplies = plan.prefixReplies
    plan.rest = chunks(r, all.subarray(headBytes.length))
  } else {
    plan.rest = chunks(r, all)
  }
  return plan
}

// ---------------------------------------------------------------------------------------

/** What a raw client got back, as comparable strings; broadcasts and the greeting are left out. */
function replies (frames: readonly ServerFrame[]): string[] {
  const out: string[] = []
  for (const f of frames) {
    // The server compresses messages of 1 KiB or more when permessage-deflate was negotiated.
    const payload = (f.rsv & RSV1) === 0 ? f.payload : inflateRawSync(Buffer.concat([f.payload, TRAILER]), { finishFlush: zlib.Z_SYNC_FLUSH })
    if (f.opcode === opcodes.text) {
      const text = payload.toString()
      if (text !== 'ready' && !text.startsWith('bcast:')) out.push(`T:${text}`)
    } else if (f.opcode === opcodes.binary) {
      if (!payload.subarray(0, BCAST.length).equals(BCAST)) out.push(`B:${hex(payload)}`)
    } else if (f.opcode === opcodes.pong) {
      out.push(`P:${hex(f.payload)}`)
    }
  }
  return out
}

const short = (s: string | undefined): string => s === undefined ? '(none)' : s.length > 60 ? `${s.slice(0, 60)}... (${s.length} chars)` : s

/** Describes how `got` differs from `expected` (its prefix when `exact` is false), or null. */
function difference (expected: string[], got: string[], exact: boolean): string | null {
  for (let i = 0; i < expected.length; i++) {
    if (got[i] !== expected[i]) return `reply ${i}: expected ${short(expected[i])}, got ${short(got[i])}`
  }
  if (exact && got.length !== expected.length) return `${got.length - expected.length} more replies than expected, first ${short(got[expected.length])}`
  return null
}

async function write (socket: Socket, parts: Chunk[]): Promise<void> {
  for (const part of parts) {
    if (!socket.writable) return
    socket.write(part.bytes)
    if (part.pause) await turns(1)
  }
}

interface Disconnect { code: number, reason: string, inLobby: boolean }

/** Runs `connections` raw connections against an echo server with rooms, then checks what is left. */
async function fuzz (t: Test, connections: number, deflate: boolean): Promise<void> {
  const started = Date.now()
  const logged: any[] = []
  const websocketOptions = deflate ? { perMessageDeflate: true } : {}
  const app = await build(t, { maxPayload: MAX_PAYLOAD, websocketOptions }, {
    logger: { level: 'debug', stream: { write: (line: string) => { logged.push(JSON.parse(line)) } } }
  })
  const opened = new Map<string, number>()
  const disconnects = new Map<string, Disconnect[]>()
  const roomSet = new Set(ROOMS)

  app.registerWebsocket('/fuzz', {
    onConnected (session) {
      const c = session.getParameter('c') ?? '?'
      opened.set(c, (opened.get(c) ?? 0) + 1)
      session.room('lobby').join()
      session.send('ready')
    },
    handleText (session, text) {
      if (text === 'kick') {
        session.close(4001, 'kicked')
        return
      }
      const command = /^(join|leave|bcast):([^:]*)/.exec(text)
      if (command !== null && roomSet.has(command[2]!)) {
        const [, verb, name] = command as unknown as [string, string, string]
        const room = session.room(name)
        if (verb === 'join') {
          room.join()
          session.send(`joined:${name}`)
        } else if (verb === 'leave') {
          room.leave()
          session.send(`left:${name}`)
        } else {
          room.broadcast(text)
          session.send(`sent:${name}`)
        }
        return
      }
      session.send(`echo:${text}`)
    },
    handleBinary (session, data) {
      session.send(data)
    },
    onDisconnected (session, code, reason) {
      const c = session.getParameter('c') ?? '?'
      const list = disconnects.get(c) ?? []
      list.push({ code, reason, inLobby: session.room('lobby').has() })
      disconnects.set(c, list)
    }
  })
  const base = await listen(app)
  const port = Number(new URL(base).port)

  const problems: string[] = []
  const plans: Plan[] = []
  const sockets = new Map<number, Socket>()
  const stats = { frames: 0, bytes: 0, labels: new Map<string, number>(), modes: new Map<string, number>(), checkedReplies: 0 }
  const count = (map: Map<string, number>, key: string): void => { map.set(key, (map.get(key) ?? 0) + 1) }

  /** A connection through the raw WebSocket client: clean, fatal and chaos plans. */
  async function runRaw (plan: Plan): Promise<void> {
    const problem = (message: string): void => { problems.push(`connection ${plan.index} (${plan.mode}, ending ${plan.ending}): ${message}`) }
    const client = await RawClient.connect(base, `/fuzz?c=${plan.index}`, deflate ? { headers: { 'Sec-WebSocket-Extensions': DEFLATE_OFFER } } : {})
    sockets.set(plan.index, client.socket)
    await client.text('ready')
    if (plan.broadcast !== null) app.websocketRooms.room(plan.broadcast.room).broadcast(plan.broadcast.message)

    if (plan.head.length > 0) {
      await write(client.socket, plan.head)
      const n = plan.headReplies.length
      await client.frame(() => replies(client.frames).length >= n).catch(() => undefined)
      const diff = difference(plan.headReplies, replies(client.frames), true)
      if (diff !== null) problem(`before the bad frames: ${diff}`)
      else stats.checkedReplies += n
    }
    await write(client.socket, plan.rest)

    switch (plan.ending) {
      case 'close':
      case 'kick': {
        const n = plan.prefixReplies.length
        await client.frame(() => replies(client.frames).length >= n).catch(() => undefined)
        if (plan.ending === 'close') client.send(opcodes.close, closePayload(plan.closeCode, plan.closeReason))
        else client.send(opcodes.text, 'kick')
        const expected = plan.ending === 'close' ? { code: plan.closeCode, reason: plan.closeReason } : { code: 4001, reason: 'kicked' }
        const got = await client.closeFrame().catch((error: Error) => error.message)
        if (JSON.stringify(got) !== JSON.stringify(expected)) problem(`close frame ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`)
        break
      }
      case 'await': {
        const expected = { code: plan.fatal!.code, reason: plan.fatal!.reason }
        const got = await client.closeFrame().catch((error: Error) => error.message)
        if (JSON.stringify(got) !== JSON.stringify(expected)) problem(`after "${plan.fatal!.label}": close frame ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`)
        break
      }
      default: {
        // A clean plan that ends abruptly is checked before it ends, while nothing is lost.
        if (plan.mode === 'clean') await client.frame(() => replies(client.frames).length >= plan.prefixReplies.length).catch(() => undefined)
        if (plan.tail !== null && client.socket.writable) client.socket.write(plan.tail)
        if (plan.ending === 'closeThenEnd' && client.socket.writable) client.send(opcodes.close, closePayload(plan.closeCode))
        if (plan.ending === 'destroy') client.destroy()
        else client.socket.end()
      }
    }
    await client.closed

    if (plan.mode === 'clean' || plan.mode === 'fatal') {
      // Every reply of the valid messages, in order; after a fatal frame, nothing more.
      const diff = difference(plan.prefixReplies, replies(client.frames), true)
      if (diff !== null) problem(diff)
      else stats.checkedReplies += plan.prefixReplies.length
    }
  }

  /** A connection over a bare TCP socket: eager (frames along with the handshake) and abort plans. */
  async function runBare (plan: Plan): Promise<void> {
    const socket = tcpConnect({ host: '127.0.0.1', port })
    sockets.set(plan.index, socket)
    socket.on('error', () => {})
    socket.resume()
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    await write(socket, plan.rest)
    await turns(plan.lateTurns)
    if (plan.ending === 'destroy') socket.destroy()
    else socket.end()
    await closed
  }

  for (let first = 0; first < connections; first += BATCH) {
    const batch: Plan[] = []
    for (let index = first; index < Math.min(connections, first + BATCH); index++) batch.push(makePlan(index, port, deflate))
    plans.push(...batch)
    const pending = new Set(batch.map((plan) => plan.index))
    const watchdog = setTimeout(() => {
      problems.push(`batch ${first / BATCH}: connections ${[...pending].join(', ')} had not closed after ${WATCHDOG_MS} ms (FUZZ_SEED=${FUZZ_SEED})`)
      for (const index of pending) sockets.get(index)?.destroy()
    }, WATCHDOG_MS)
    await Promise.all(batch.map(async (plan) => {
      count(stats.modes, plan.mode)
      for (const step of plan.steps) {
        stats.frames += step.frames
        stats.bytes += step.bytes.length
        count(stats.labels, step.label)
      }
      try {
        if (plan.mode === 'eager' || plan.mode === 'abort') await runBare(plan)
        else await runRaw(plan)
      } catch (error) {
        problems.push(`connection ${plan.index} (${plan.mode}): ${(error as Error).stack}`)
        sockets.get(plan.index)?.destroy()
      } finally {
        pending.delete(plan.index)
      }
    }))
    clearTimeout(watchdog)
    // Every socket of the batch is closed: the sessions must all end.
    await until(() => app.websocketSessions.size === 0)
  }

  t.same(problems, [], 'every connection got the replies and the close it should have')
  t.equal(app.websocketSessions.size, 0, 'every session ended')
  t.same(app.websocketRooms.roomNames(), [], 'no room is left')
  const serverStats = app.websocketRooms.stats()
  t.match(serverStats, { sessions: 0, rooms: 0, pausedSessions: 0, closed: { handlerError: 0 } })

  // The server's side of each connection: one session, one onDisconnected, inside the lobby,
  // with the code the client was sent.
  const serverProblems: string[] = []
  const codes = new Map<string, number>()
  for (const plan of plans) {
    const c = String(plan.index)
    const times = opened.get(c) ?? 0
    const ends = disconnects.get(c) ?? []
    for (const end of ends) count(codes, String(end.code))
    if (plan.mode === 'eager' || plan.mode === 'abort' ? times > 1 : times !== 1) serverProblems.push(`${c} (${plan.mode}): ${times} sessions opened`)
    if (ends.length !== times) serverProblems.push(`${c} (${plan.mode}): ${times} sessions opened, ${ends.length} onDisconnected`)
    if (ends.some((end) => !end.inLobby)) serverProblems.push(`${c} (${plan.mode}): not in the lobby during onDisconnected`)
    const end = ends[0]
    if (end === undefined) continue
    if (end.code < 1000 || end.code > 4999) serverProblems.push(`${c}: onDisconnected code ${end.code}`)
    const expected = plan.ending === 'await'
      ? plan.fatal!.code
      : plan.ending === 'close' ? plan.closeCode : plan.ending === 'kick' ? 4001 : plan.mode === 'clean' ? 1006 : null
    if (expected !== null && end.code !== expected) serverProblems.push(`${c} (${plan.mode}, ${plan.ending}${plan.fatal === null ? '' : `, ${plan.fatal.label}`}): onDisconnected got ${end.code}, expected ${expected}`)
    if (plan.ending === 'close' && end.reason !== plan.closeReason) serverProblems.push(`${c}: onDisconnected reason ${JSON.stringify(end.reason)}`)
  }
  t.same(serverProblems, [], 'every session opened once, ended once, with the code that was sent')

  const warnings = logged.filter((line) => line.level >= 40)
  t.same(warnings, [], 'nothing was logged as a warning or an error')
  const protocolErrors = logged.filter((line) => line.level === 20 && line.msg === 'websocket client error').length
  t.ok(protocolErrors >= plans.filter((plan) => plan.mode === 'fatal' && plan.fatal!.code !== 4001).length, `protocol errors were logged at debug (${protocolErrors})`)

  // The fuzz did what it says: enough frames, and every kind of ending on the server.
  t.ok(stats.frames >= connections * 15, `${stats.frames} frames sent`)
  const planned = new Set(['1006', ...plans.map((plan) => plan.fatal === null ? '' : String(plan.fatal.code)).filter((code) => code !== '')])
  for (const code of [...planned].sort()) t.ok(codes.has(code), `some sessions ended with ${code}`)

  t.comment(`FUZZ_SEED=${FUZZ_SEED}${deflate ? ', permessage-deflate' : ''}: ${plans.length} connections (${[...stats.modes].map(([m, n]) => `${m} ${n}`).join(', ')}), ` +
    `${stats.frames} frames, ${(stats.bytes / 1024).toFixed(0)} KiB, ${stats.checkedReplies} replies checked, ${Date.now() - started} ms`)
  t.comment(`onDisconnected codes: ${[...codes].sort().map(([c, n]) => `${c}: ${n}`).join(', ')}`)
  t.comment(`steps: ${[...stats.labels].sort((a, b) => b[1] - a[1]).map(([label, n]) => `${label} ${n}`).join(', ')}`)

  // Still serving: an echo round trip and broadcasts to a room, with a standard client.
  const a = await connect(base, '/fuzz?c=after-a')
  const b = await connect(base, '/fuzz?c=after-b')
  t.same(await a.texts(1), ['ready'])
  t.same(await b.texts(1), ['ready'])
  a.send('mstill serving')
  t.equal((await a.texts(2))[1], 'echo:mstill serving', 'echo round trip')
  a.send('join:r3')
  b.send('join:r3')
  t.equal((await a.texts(3))[2], 'joined:r3')
  t.equal((await b.texts(2))[1], 'joined:r3')
  b.send('bcast:r3:hello room')
  t.same((await b.texts(4)).slice(2), ['bcast:r3:hello room', 'sent:r3'], 'the sender gets its broadcast')
  t.equal((await a.texts(4))[3], 'bcast:r3:hello room', 'the other member gets the broadcast')
  app.websocketRooms.room('lobby').broadcast('bcast:server')
  t.equal((await a.texts(5))[4], 'bcast:server', 'a server-side broadcast reaches the lobby')
  t.equal((await b.texts(5))[4], 'bcast:server')
  t.equal(app.websocketRooms.room('r3').members(), 2)
  await a.close()
  await b.close()
  await until(() => app.websocketSessions.size === 0)
  t.same(app.websocketRooms.roomNames(), [], 'no room is left after the last clients')
  t.same(logged.filter((line) => line.level >= 40), [], 'still nothing logged as a warning or an error')
}

test(`fuzz (FUZZ_SEED=${FUZZ_SEED}): ${CONNECTIONS} raw connections of random and mutated frames end cleanly`, async (t) => {
  await fuzz(t, CONNECTIONS, false)
})

test(`fuzz (FUZZ_SEED=${FUZZ_SEED}): ${Math.ceil(CONNECTIONS / 4)} raw connections with permessage-deflate, compressed frames and bad deflate streams`, async (t) => {
  await fuzz(t, Math.ceil(CONNECTIONS / 4), true)
})

// Found by the fuzz above (FUZZ_SEED=209, FUZZ_CONNECTIONS=1500): with ws 8.23, chunks that reach a
// session while a compressed message inflates, after a frame ws rejects, crashed the process.
test('bad frames behind a compressed message that is still inflating end the session, not the process', async (t) => {
  const logged: any[] = []
  const app = await build(t, { maxPayload: 32 * 1024 * 1024, websocketOptions: { perMessageDeflate: true } }, {
    logger: { level: 'warn', stream: { write: (line: string) => { logged.push(JSON.parse(line)) } } }
  })
  const disconnects = new Events<number>()
  const sizes: number[] = []
  app.registerWebsocket('/ws', {
    handleText (session, text) {
      sizes.push(text.length)
      session.send(`got ${text.length}`)
    },
    onDisconnected (session, code) { disconnects.push(code) }
  })
  const base = await listen(app)
  // A small frame that takes a while to inflate (15 MB of "a"), then, in separate writes while
  // it inflates, a text message that is not UTF-8 and more bytes after it.
  const slow = compress(Buffer.alloc(15_000_000, 'a'))
  const notUtf8 = Buffer.concat([Buffer.alloc(1000, 'x'), Buffer.from([0xff]), Buffer.alloc(81, 'y')])
  for (let attempt = 0; attempt < 3; attempt++) {
    const client = await RawClient.connect(base, '/ws', { headers: { 'Sec-WebSocket-Extensions': DEFLATE_OFFER } })
    client.write(buildFrame(opcodes.text, slow, { rsv: RSV1 }))
    await turns(2)
    client.write(buildFrame(opcodes.text, notUtf8))
    await turns(2)
    client.write(buildFrame(opcodes.text, 'after the bad message'))
    client.write(Buffer.alloc(4000, 0x81))
    t.same(await client.closeFrame(), { code: 1007, reason: '' }, 'the session is closed with 1007')
    await client.closed
    t.equal((await disconnects.until(attempt + 1))[attempt], 1007, 'onDisconnected gets 1007')
  }
  t.same(sizes, [15_000_000, 15_000_000, 15_000_000], 'only the compressed message was handled')

  // Also found by the fuzz: a frame that does not inflate is closed with 1007 by ws, on an
  // error from zlib (Z_DATA_ERROR); onDisconnected got 1006.
  const client1 = await RawClient.connect(base, '/ws', { headers: { 'Sec-WebSocket-Extensions': DEFLATE_OFFER } })
  client1.write(buildFrame(opcodes.text, Buffer.from([0x07, 0x01, 0x02]), { rsv: RSV1 }))
  t.same(await client1.closeFrame(), { code: 1007, reason: '' }, 'a message that does not inflate is closed with 1007')
  await client1.closed
  t.equal((await disconnects.until(4))[3], 1007, 'onDisconnected gets the 1007 that was sent')
  await until(() => app.websocketSessions.size === 0)
  const client = await connect(base, '/ws')
  client.send('still serving')
  t.same(await client.texts(1), ['got 13'])
  await client.close()
  t.same(logged, [], 'nothing was logged as a warning or an error')
})

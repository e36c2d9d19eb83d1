// What a room's history is, whichever store keeps it (./memory-log in this process,
// ../cluster/redis-log in Redis): a stream of published messages numbered 1, 2, 3... within
// an epoch, of which the last `size` published within `ttl` ms are kept. A new epoch starts
// whenever a stream is created anew (first publish, expiry, a Redis that lost its data), so a
// position of another epoch is never taken for one of this stream.
import { randomBytes } from 'node:crypto'
import type { RecoverResult, RoomHistory, StreamPosition } from '../../types/index'
import { isThenable } from '../call-hook'
import { InvalidArgumentError, describe } from '../errors'
import { BINARY, encode, type Encoded, type Message } from '../transport/frame'

export interface HistoryLimits {
  /** Messages kept per room. */
  size: number
  /** How long a message is kept, and a stream with no new message, in ms. */
  ttl: number
}

/** Builds a published message once its position is known. */
export type BuildMessage = (position: StreamPosition) => Message

export interface LogEntry {
  offset: number
  encoded: Encoded
  /** The session publishExcept() left out, where the store keeps it. */
  exceptId?: string
}

/** What a store read of a stream: its epoch and last offset, and the entries asked for that it still has, oldest first. */
export interface LogRead {
  epoch: string
  top: number
  entries: LogEntry[]
}

/**
 * A read: the entries after offset `after` (null: the last `limit`), at most `limit`. With
 * `epoch`, a stream of another epoch returns no entry (they could not be used).
 */
export interface LogQuery {
  after: number | null
  limit: number
  epoch: string | null
}

/** A room's history store: where positions are assigned and messages kept. */
export interface HistoryLog {
  /** Assigns the room's next position, builds the message with it, keeps it and delivers it to the room. */
  publish (name: string, build: BuildMessage, exceptId: string | null): Promise<StreamPosition>
  /** Reads a stream, creating it (empty, in a new epoch) when there is none, so its position can be handed out. */
  read (name: string, query: LogQuery): Promise<LogRead>
  close (): void
}

/** Calls a builder and encodes what it returns, once. */
export function buildMessage (build: BuildMessage, position: StreamPosition): Encoded {
  const message: unknown = build(position)
  if (isThenable(message)) {
    Promise.resolve(message).catch(() => {}) // refused, not awaited
    throw new InvalidArgumentError('the message publish() built', 'a string, a Buffer, a Uint8Array or an ArrayBuffer, returned at once (a builder cannot be async)', 'a promise')
  }
  return encode(message, 'the message publish() built')
}

export function newEpoch (): string {
  return randomBytes(6).toString('base64url')
}

/** True when `entries` are exactly the offsets first..last, in order. */
function covers (entries: LogEntry[], first: number, last: number): boolean {
  if (entries.length !== Math.max(0, last - first + 1)) return false
  for (let i = 0; i < entries.length; i++) if (entries[i]!.offset !== first + i) return false
  return true
}

/** What a session recovering from `since` gets: every message after it, or nothing. */
export function recoveryOf (read: LogRead, since: StreamPosition): LogEntry[] | null {
  if (read.epoch !== since.epoch || since.offset > read.top) return null
  return covers(read.entries, since.offset + 1, read.top) ? read.entries : null
}

export function historyOf (read: LogRead, query: LogQuery): RoomHistory {
  const messages = read.entries.map(toHistoryMessage)
  if (query.after === null) {
    return { epoch: read.epoch, offset: read.top, messages, complete: covers(read.entries, Math.max(0, read.top - query.limit) + 1, read.top) }
  }
  if (read.epoch !== query.epoch || query.after > read.top) return { epoch: read.epoch, offset: read.top, messages: [], complete: false }
  const last = Math.min(read.top, query.after + query.limit)
  return { epoch: read.epoch, offset: read.top, messages, complete: covers(read.entries, query.after + 1, last) }
}

/** A kept message for the app: binary data as a copy of its own, which the app may change without changing the history. */
function toHistoryMessage (entry: LogEntry): { offset: number, message: string | Buffer } {
  const { data, options } = entry.encoded
  return { offset: entry.offset, message: options === BINARY ? Buffer.from(data) : data.toString() }
}

/** What an offset may be: offsets count messages one by one, so 2^53 is never reached. */
const SAFE_OFFSET = 'an integer from 0 to 9007199254740991 (Number.MAX_SAFE_INTEGER)'

export function assertPosition (value: unknown, name: string): asserts value is StreamPosition {
  if (value === null || typeof value !== 'object') throw new InvalidArgumentError(name, 'an object { offset, epoch }', describe(value))
  const { offset, epoch } = value as Record<string, unknown>
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new InvalidArgumentError(`${name}.offset`, SAFE_OFFSET, describe(offset))
  }
  if (typeof epoch !== 'string') throw new InvalidArgumentError(`${name}.epoch`, 'a string', describe(epoch))
}

/** Reads history({ limit, since }) into a store query. */
export function historyQuery (query: unknown, size: number): LogQuery {
  if (query === undefined) return { after: null, limit: size, epoch: null }
  if (query === null || typeof query !== 'object') throw new InvalidArgumentError('query', 'an object { limit?, since? }', describe(query))
  const { limit = size, since } = query as Record<string, unknown>
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0) throw new InvalidArgumentError('query.limit', 'an integer >= 0', describe(limit))
  if (since === undefined) return { after: null, limit: Math.min(limit, size), epoch: null }
  assertPosition(since, 'query.since')
  return { after: since.offset, limit: Math.min(limit, size), epoch: since.epoch }
}

export const NOT_RECOVERED: RecoverResult = Object.freeze({ recovered: false, replayed: 0 })

// Rooms' history in this process, for an instance without a cluster adapter: per room, a ring
// of its last `size` messages, and a timer that frees the stream `ttl` after its last message
// (or its creation): memory stays within size × the rooms published to in the last ttl.
import type { StreamPosition } from '../../types/index'
import { ClosedError } from '../errors'
import { BINARY, Encoded } from '../transport/frame'
import { buildMessage, newEpoch, type BuildMessage, type HistoryLimits, type HistoryLog, type LogEntry, type LogQuery, type LogRead } from './log'

/** Hands a published message to the room's members on this instance. */
export type DeliverPublished = (name: string, epoch: string, offset: number, encoded: Encoded, exceptId: string | null) => void

interface TimedEntry extends LogEntry {
  /** When it was published (Date.now()). */
  time: number
}

class Stream {
  readonly epoch = newEpoch()
  top = 0
  /** The last messages, oldest at `start`: it grows up to `size`, then each new one replaces the oldest. */
  readonly ring: TimedEntry[] = []
  readonly size: number
  start = 0
  lastWrite = Date.now()
  timer: NodeJS.Timeout | null = null

  constructor (size: number) {
    this.size = size
  }

  push (entry: TimedEntry): void {
    if (this.ring.length < this.size) {
      this.ring.push(entry)
    } else {
      this.ring[this.start] = entry
      this.start = (this.start + 1) % this.size
    }
  }

  /** The entries published after `since` (ms) and after offset `after`, at most `limit` (the last ones when after is null). */
  read (since: number, after: number | null, limit: number): LogEntry[] {
    const count = this.ring.length
    const kept: LogEntry[] = []
    for (let i = 0; i < count; i++) {
      const entry = this.ring[(this.start + i) % count]!
      if (entry.time > since && (after === null || entry.offset > after)) kept.push({ offset: entry.offset, encoded: entry.encoded })
    }
    return after === null ? kept.slice(Math.max(0, kept.length - limit)) : kept.slice(0, limit)
  }
}

export class MemoryLog implements HistoryLog {
  readonly #streams = new Map<string, Stream>()
  readonly #limits: HistoryLimits
  readonly #deliver: DeliverPublished
  #closed = false

  constructor (limits: HistoryLimits, deliver: DeliverPublished) {
    this.#limits = limits
    this.#deliver = deliver
  }

  publish (name: string, build: BuildMessage, exceptId: string | null): Promise<StreamPosition> {
    if (this.#closed) return Promise.reject(new ClosedError('publish'))
    let position: StreamPosition
    try {
      position = this.#append(name, build, exceptId)
    } catch (error) {
      return Promise.reject(error)
    }
    return Promise.resolve(position)
  }

  #append (name: string, build: BuildMessage, exceptId: string | null): StreamPosition {
    const stream = this.#stream(name)
    const offset = stream.top + 1
    const encoded = buildMessage(build, { offset, epoch: stream.epoch })
    // The builder may itself have published to this room: this message then takes the next position.
    if (stream.top !== offset - 1 || this.#streams.get(name) !== stream) return this.#append(name, build, exceptId)
    stream.top = offset
    stream.lastWrite = Date.now()
    const kept = ownBytes(encoded)
    stream.push({ offset, encoded: kept, time: stream.lastWrite })
    this.#deliver(name, stream.epoch, offset, kept, exceptId)
    return { offset, epoch: stream.epoch }
  }

  read (name: string, query: LogQuery): Promise<LogRead> {
    if (this.#closed) return Promise.reject(new ClosedError('history'))
    const stream = this.#stream(name)
    const entries = query.epoch !== null && query.epoch !== stream.epoch
      ? []
      : stream.read(Date.now() - this.#limits.ttl, query.after, query.limit)
    return Promise.resolve({ epoch: stream.epoch, top: stream.top, entries })
  }

  #stream (name: string): Stream {
    let stream = this.#streams.get(name)
    if (stream === undefined) {
      stream = new Stream(this.#limits.size)
      this.#streams.set(name, stream)
      this.#expireLater(name, stream, this.#limits.ttl)
    }
    return stream
  }

  /** One timer per stream, set again when it fires if the stream was written since. */
  #expireLater (name: string, stream: Stream, ms: number): void {
    stream.timer = setTimeout(() => {
      const left = stream.lastWrite + this.#limits.ttl - Date.now()
      if (left > 0) this.#expireLater(name, stream, left)
      else this.#streams.delete(name)
    }, ms).unref()
  }

  close (): void {
    this.#closed = true
    for (const stream of this.#streams.values()) if (stream.timer !== null) clearTimeout(stream.timer)
    this.#streams.clear()
  }
}

/**
 * The message's bytes as they were published: binary data is the caller's own buffer, which it
 * may reuse once publish() resolved, so it is copied (once: the members are sent the copy too).
 * A text was encoded into a buffer of its own already.
 */
function ownBytes (encoded: Encoded): Encoded {
  return encoded.options === BINARY ? new Encoded(Buffer.from(encoded.data), BINARY) : encoded
}

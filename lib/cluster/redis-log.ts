// Rooms' history in Redis, for a cluster: any node publishes to a room's stream and any node
// reads it, so a session recovers on another node than the one it was on.
//
// Just over 400 lines, for a reason: the batches, their deadlines and the reads share the
// rooms' known positions and the script Redis left unanswered (a read waits behind it too);
// the scripts themselves are ./history-scripts' and ./scripts/*.lua.
//
// Per room, two keys in the room's hash slot (with its channel, ./redis-keys), both expiring
// `ttl` after the last message: `{<p>:room:<name>}:history-meta`, a hash with the stream's epoch
// and last offset (and a turn), and `{<p>:room:<name>}:history`, a Redis stream capped at `size`
// entries whose ids are the offsets.
//
// Offsets are assigned by a script that is also the only writer: the app builds a message
// once it knows its position, so a node builds with the position it expects (its last known
// offset + 1, in the epoch it knows), and the script appends and PUBLISHes it only if the
// stream is still there (compare-and-set). Otherwise nothing is written and the node builds
// again with the stream's real position. A node that lost twice in a row asks for the room's
// next turn (`o`, `u` in the hash: its id and until when): for up to a second, or until it
// wrote, the other nodes' writes lose, so no node starves while others keep publishing.
// Writes and PUBLISHes thus happen in offset order,
// inside Redis, and every node receives a room's published messages in that order. A node
// publishes a room's messages in batches, one at a time: all those asked for while the
// previous batch was in Redis go in the next, so one hot room costs one round trip per batch.
// Each publish settles within connectTimeout of its call: one Redis has not written by then
// fails (if its script was sent, it may still run). While Redis leaves a script unanswered
// past that, no other is sent: Redis answers a connection in order, so they would only queue.
// A script rather than a MULTI, because the check and the writes must be one step; a stream
// rather than a list, because reads by offset are range queries on its ids.
import type { StreamPosition } from '../../types/index'
import { ClosedError, PublishBacklogError, RedisUnavailableError } from '../errors'
import { buildMessage, newEpoch, type BuildMessage, type HistoryLimits, type HistoryLog, type LogEntry, type LogQuery, type LogRead } from '../history/log'
import { within, withinEach } from '../within'
import { encodePublished } from './codec'
import { FLAGS_AT, decodeStored, publishScript, publishedMessage, readScript } from './history-scripts'
import type { RedisConnections } from './redis-connections'
import type { RedisKeys } from './redis-keys'

/** Most messages in one script call. */
const MAX_BATCH = 128
/** Times a batch may lose its positions to other nodes before its node asks for the room's next turn. */
const ATTEMPTS_BEFORE_TURN = 2
/** How long a node's turn keeps the other nodes from writing a room's stream, at most, in ms. */
const TURN_MS = 1000

interface Pending {
  build: BuildMessage
  exceptId: string | null
  /** When it settles at the latest (performance.now()): its call's time plus connectTimeout. */
  deadline: number
  /** Its position, once Redis wrote it. */
  written: StreamPosition | null
  settled: boolean
  resolve (position: StreamPosition): void
  reject (error: unknown): void
}

/** Waits for a promise up to a bound: null past it. `why` says what was not done, for the errors. */
type Wait = <T>(promise: Promise<T>, why: string) => Promise<T | null>

/** What was not done when a script was given up on: waiting behind an unanswered one, or sent and unanswered. */
interface Reasons { behind: string, unanswered: string }

/** What this node knows of a room's stream, and its publishes waiting for their turn. */
interface RoomStream {
  /** The position this node last saw; epoch null when it must be read first. */
  epoch: string | null
  top: number
  queue: Pending[]
  sending: boolean
  /** When this node last used it (Date.now()), to forget it after ttl. */
  used: number
}

export interface RedisLogOptions extends HistoryLimits {
  connectTimeout: number
  /** Publishes waiting for Redis on this node past which publish() fails. */
  maxWaiting: number
}

/** What the log needs of its node. */
export interface RedisLogNode {
  readonly nodeId: string
  /** Redis is reachable. */
  readonly up: boolean
  /** Sharded pub/sub (SPUBLISH). */
  readonly sharded: boolean
  /** The room's channel. */
  channelOf (name: string): string
  /** Resolves once this node, when it has members in the room, is subscribed to its channel. */
  subscribedFor (name: string): Promise<void>
  /** Resolves once this node has handed its members the room's messages up to `offset` (at once when it has none). */
  deliveredHere (name: string, epoch: string, offset: number): Promise<void>
}

export class RedisLog implements HistoryLog {
  readonly #node: RedisLogNode
  readonly #options: RedisLogOptions
  /** One Redis or a cluster: runs a script on its keys' shard, Redis's strings read as Buffers (messages may be binary). */
  readonly #connections: RedisConnections
  readonly #keys: RedisKeys
  readonly #streams = new Map<string, RoomStream>()
  /** Publishes not yet written nor settled. */
  #waiting = 0
  /**
   * Settles once Redis answers the last script it left unanswered past its bound: until then
   * no other is sent, since Redis answers a connection's commands in order. Null when none.
   */
  #stalled: Promise<true> | null = null
  #sweep: NodeJS.Timeout | null = null
  #closed = false

  constructor (node: RedisLogNode, connections: RedisConnections, keys: RedisKeys, options: RedisLogOptions) {
    this.#node = node
    this.#options = options
    this.#connections = connections
    this.#keys = keys
  }

  #metaKey (name: string): string {
    return this.#keys.historyMeta(name)
  }

  #logKey (name: string): string {
    return this.#keys.history(name)
  }

  readonly #send = (key: string, args: Array<string | Buffer>): Promise<unknown> => this.#connections.engine.send(key, args, true)

  publish (name: string, build: BuildMessage, exceptId: string | null): Promise<StreamPosition> {
    if (this.#closed) return Promise.reject(new ClosedError('publish'))
    if (!this.#node.up) return Promise.reject(new RedisUnavailableError(`cannot publish to room "${name}": the history lives in Redis`))
    if (this.#waiting >= this.#options.maxWaiting) return Promise.reject(new PublishBacklogError(name, this.#waiting))
    let stream = this.#streams.get(name)
    if (stream === undefined) {
      stream = { epoch: null, top: 0, queue: [], sending: false, used: 0 }
      this.#streams.set(name, stream)
      this.#sweepLater()
    }
    stream.used = Date.now()
    const room = stream
    const deadline = performance.now() + this.#options.connectTimeout
    return new Promise((resolve, reject) => {
      room.queue.push({ build, exceptId, deadline, written: null, settled: false, resolve, reject })
      this.#waiting++
      if (!room.sending) {
        room.sending = true
        // The publishes asked for in the same turn go in one batch.
        queueMicrotask(() => { this.#drain(name, room).catch(() => {}) })
      }
    })
  }

  async #drain (name: string, stream: RoomStream): Promise<void> {
    try {
      let lost = 0
      while (stream.queue.length > 0) {
        const retry = await this.#write(name, stream, stream.queue.splice(0, MAX_BATCH), lost)
        if (retry === null) {
          lost = 0
          continue
        }
        // Other nodes took the positions: build again with the stream's, in the same order.
        // After a few times this node asks for the room's next turn, so it cannot starve.
        lost++
        stream.queue.unshift(...retry)
      }
    } finally {
      stream.sending = false
    }
  }

  /**
   * Builds a batch at the positions this node expects and writes it; returns what must be
   * built again (the stream was elsewhere), or null when every publish of it is settled or
   * written. Each publish fails at its deadline if Redis has not written it by then.
   */
  async #write (name: string, stream: RoomStream, batch: Pending[], lost: number): Promise<Pending[] | null> {
    const { ttl, size, connectTimeout } = this.#options
    const room = `cannot publish to room "${name}"`
    const wait: Wait = (promise, why) => withinEach(promise, batch.filter(isLive), (pending) => { this.#expire(pending, why) })
    const behind = `${room}: Redis has not answered an earlier command for connectTimeout (${connectTimeout} ms); not published`
    if (!await this.#ready(name, stream, batch, lost, wait, behind)) return null
    const epoch = stream.epoch!
    const { built, args } = this.#build(stream, epoch, batch)
    if (built.length === 0) return null
    let reply: unknown
    try {
      const run = (): Promise<unknown> => publishScript.run(this.#send, [this.#metaKey(name), this.#logKey(name)], {
        channel: this.#node.channelOf(name),
        epoch,
        top: String(stream.top),
        ttl: String(ttl),
        size: String(size),
        newEpoch: newEpoch(),
        publishCommand: this.#node.sharded ? 'SPUBLISH' : 'PUBLISH',
        nodeId: this.#node.nodeId,
        askTurn: lost >= ATTEMPTS_BEFORE_TURN ? '1' : '0',
        turnMs: String(Math.min(TURN_MS, connectTimeout)),
        flagsAt: FLAGS_AT
      }, args)
      reply = await this.#ask(run, wait, { behind, unanswered: `${room}: no answer within connectTimeout (${connectTimeout} ms); it may still be published` })
    } catch (error) {
      stream.epoch = null // whether it was written is unknown: read the position again
      this.#fail(batch, error instanceof RedisUnavailableError ? error : new RedisUnavailableError(`${room}: ${String((error as Error)?.message ?? error)}`))
      return null
    }
    if (reply === null) {
      stream.epoch = null
      return null
    }
    const [ok, actualEpoch, actualTop] = reply as [number, Buffer | null, Buffer | null]
    if (ok !== 1) {
      stream.epoch = actualEpoch === null ? null : actualEpoch.toString()
      stream.top = actualTop === null ? 0 : Number(actualTop.toString())
      const retry = batch.filter(isLive)
      return retry.length === 0 ? null : retry
    }
    stream.top = Number(actualTop!.toString())
    this.#written(name, epoch, stream.top, built)
    return null
  }

  /**
   * Fails the publishes of a batch past their deadline, then waits until the node is
   * subscribed to the room and knows the stream's position; false when none is left.
   */
  async #ready (name: string, stream: RoomStream, batch: Pending[], lost: number, wait: Wait, behind: string): Promise<boolean> {
    const room = `cannot publish to room "${name}"`
    const ms = this.#options.connectTimeout
    const now = performance.now()
    const before = lost > 0 ? 'other servers took its next position' : 'the publishes before it waited for Redis'
    for (const pending of batch) if (pending.deadline <= now) this.#expire(pending, `${room}: ${before} for connectTimeout (${ms} ms); not published`)
    try {
      const subscribed = this.#node.subscribedFor(name).then(() => true)
      if (await wait(subscribed, `${room}: not subscribed to its channel within connectTimeout (${ms} ms); not published`) === null) return false
      if (stream.epoch !== null) return true
      const read = await this.#read(name, { after: null, limit: 0, epoch: null }, wait, {
        behind, unanswered: `${room}: its position was not read within connectTimeout (${ms} ms); not published`
      })
      if (read === null) return false
      stream.epoch = read.epoch
      stream.top = read.top
      return true
    } catch (error) {
      this.#fail(batch, error)
      return false
    }
  }

  /** Builds the batch's live publishes at the positions after the stream's top: the script's arguments. */
  #build (stream: RoomStream, epoch: string, batch: Pending[]): { built: Array<{ pending: Pending, offset: number }>, args: Array<string | Buffer> } {
    const built: Array<{ pending: Pending, offset: number }> = []
    const args: Array<string | Buffer> = []
    for (const pending of batch) {
      if (pending.settled) continue
      const offset = stream.top + built.length + 1
      try {
        const encoded = buildMessage(pending.build, { offset, epoch })
        const packet = encodePublished(this.#node.nodeId, { epoch, offset, exceptId: pending.exceptId, encoded })
        args.push(...publishedMessage(packet, packet.length - encoded.data.length, pending.exceptId))
      } catch (error) {
        this.#fail([pending], error)
        continue
      }
      built.push({ pending, offset })
    }
    return { built, args }
  }

  /**
   * Settles the publishes Redis wrote once this node's members have them too (they reach them
   * through the room's channel), as without an adapter, where they have them before publish()
   * returns; at their deadline, whether the members have them yet or not.
   */
  #written (name: string, epoch: string, top: number, built: Array<{ pending: Pending, offset: number }>): void {
    const written: Pending[] = []
    for (const { pending, offset } of built) {
      if (pending.settled) continue // its deadline passed: it failed, saying it may still be published
      pending.written = { offset, epoch }
      this.#waiting--
      written.push(pending)
    }
    withinEach(this.#node.deliveredHere(name, epoch, top), written, this.#succeed).then(() => {
      for (const pending of written) this.#succeed(pending)
    }, () => {})
  }

  /** Runs a script, once Redis has answered the last one it left unanswered; null when `wait` gave up first. */
  async #ask (script: () => Promise<unknown>, wait: Wait, why: Reasons): Promise<unknown> {
    if (this.#stalled !== null && await wait(this.#stalled, why.behind) === null) return null
    const run = script()
    const reply = await wait(run, why.unanswered)
    if (reply === null) {
      const answered = run.then(() => true as const, () => true as const)
      this.#stalled = answered
      answered.then(() => { if (this.#stalled === answered) this.#stalled = null }, () => {})
    }
    return reply
  }

  /** Settles a publish at its deadline: one Redis wrote succeeds, the others fail with `why`. */
  #expire (pending: Pending, why: string): void {
    if (pending.written !== null) this.#succeed(pending)
    else this.#fail([pending], new RedisUnavailableError(why))
  }

  readonly #succeed = (pending: Pending): void => {
    if (pending.settled) return
    pending.settled = true
    pending.resolve(pending.written!)
  }

  #fail (batch: Pending[], error: unknown): void {
    for (const pending of batch) {
      if (pending.settled) continue
      pending.settled = true
      if (pending.written === null) this.#waiting--
      pending.reject(error)
    }
  }

  async read (name: string, query: LogQuery): Promise<LogRead> {
    if (this.#closed) throw new ClosedError('history')
    if (!this.#node.up) throw new RedisUnavailableError(`cannot read the history of room "${name}"`)
    const deadline = performance.now() + this.#options.connectTimeout
    const wait: Wait = (promise) => within(promise, deadline - performance.now(), null)
    const what = `cannot read the history of room "${name}"`
    // Subscribed first, so that what is published after this read reaches this node.
    const subscribed = await wait(this.#node.subscribedFor(name).then(() => true), what)
    if (subscribed === null) throw new RedisUnavailableError(`${what}: no subscription within connectTimeout (${this.#options.connectTimeout} ms)`)
    const read = await this.#read(name, query, wait, { behind: what, unanswered: what })
    if (read === null) throw new RedisUnavailableError(`${what}: no answer within connectTimeout (${this.#options.connectTimeout} ms)`)
    const stream = this.#streams.get(name)
    if (stream !== undefined && !stream.sending && (stream.epoch !== read.epoch || stream.top < read.top)) {
      stream.epoch = read.epoch
      stream.top = read.top
    }
    return read
  }

  /** Reads the stream; null when `wait` gave up. */
  async #read (name: string, query: LogQuery, wait: Wait, why: Reasons): Promise<LogRead | null> {
    const { ttl } = this.#options
    let reply: unknown
    try {
      const run = (): Promise<unknown> => readScript.run(this.#send, [this.#metaKey(name), this.#logKey(name)], {
        newEpoch: newEpoch(),
        ttl: String(ttl),
        after: query.after === null ? '' : String(query.after),
        limit: String(query.limit),
        epoch: query.epoch ?? ''
      })
      reply = await this.#ask(run, wait, why)
    } catch (error) {
      throw new RedisUnavailableError(`cannot read the history of room "${name}": ${String((error as Error)?.message ?? error)}`)
    }
    if (reply === null) return null
    const [epoch, top, now, raw] = reply as [Buffer, Buffer, Buffer, Array<[Buffer, Buffer[]]>]
    const since = Number(now.toString()) - ttl
    const entries: LogEntry[] = []
    let expired = -1
    for (const [id, fields] of raw) {
      const entry = readEntry(id, fields, since)
      if (typeof entry === 'number') expired = entry
      else if (entry !== null) entries.push(entry)
    }
    if (query.after === null) entries.reverse()
    const read = { epoch: epoch.toString(), top: Number(top.toString()), entries }
    // The oldest messages expire first: then read on from the last expired one (once, as far
    // as the history goes), for the first `limit` kept after `after`, as from memory.
    if (query.after !== null && expired >= 0 && raw.length === query.limit && query.limit < this.#options.size) {
      const more = await this.#read(name, { ...query, after: expired, limit: this.#options.size }, wait, why)
      if (more !== null && more.epoch === read.epoch) return { ...more, entries: more.entries.slice(0, query.limit) }
    }
    return read
  }

  /** Forgets, every ttl, the rooms this node has not published to for a ttl. */
  #sweepLater (): void {
    if (this.#sweep !== null || this.#closed) return
    this.#sweep = setTimeout(() => {
      this.#sweep = null
      const before = Date.now() - this.#options.ttl
      for (const [name, stream] of this.#streams) {
        if (!stream.sending && stream.used < before) this.#streams.delete(name)
      }
      if (this.#streams.size > 0) this.#sweepLater()
    }, this.#options.ttl).unref()
  }

  close (): void {
    this.#closed = true
    if (this.#sweep !== null) clearTimeout(this.#sweep)
    this.#sweep = null
  }
}

function isLive (pending: Pending): boolean {
  return !pending.settled
}

/** An entry of the stream; its offset alone when it is older than `since` (ms); null when it is not one of ours. */
function readEntry (id: Buffer, fields: Buffer[], since: number): LogEntry | number | null {
  let time = -1
  let data: Buffer | null = null
  let exceptId: string | undefined
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const field = fields[i]!.toString()
    if (field === 't') time = Number(fields[i + 1]!.toString())
    else if (field === 'd') data = fields[i + 1]!
    else if (field === 'x') exceptId = fields[i + 1]!.toString('latin1')
  }
  const offset = Number.parseInt(id.toString(), 10)
  const encoded = data === null ? null : decodeStored(data)
  if (encoded === null || !Number.isSafeInteger(offset)) return null
  if (!(time > since)) return offset
  return exceptId === undefined ? { offset, encoded } : { offset, encoded, exceptId }
}

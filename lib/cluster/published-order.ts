// The order of a room's published messages on this node. Redis PUBLISHes them in offset order
// on one connection, so they arrive in order; but a subscriber connection that dropped and
// came back missed those published meanwhile. This node remembers the last offset it handed
// its members in each room it is subscribed to, and on a gap (or once Redis is back) reads
// the missed messages from the history, holding back later ones until they are delivered:
// a member that stays connected through a Redis outage still gets every published message,
// once and in order, as long as the history keeps them. A read that fails is tried again (a
// second later, and when Redis is back) while later messages keep waiting, up to the
// history's size of them: past that, the missed ones are given up and the rest goes out.
//
// A room's stream may be created anew meanwhile, in a new epoch (Redis lost it, or it
// expired): the old one's missing messages are gone, and the new one's are read from its
// first offset. Which stream is the room's is Redis's to say, not the order in which messages
// reach this node (a read answers on another connection than the channel's): a message of
// another epoch waits for a read, and those that came before the read and are not of the
// stream it found are of a stream that is gone, and dropped. So the members never get an old
// stream's messages after a newer one's.
import type { LogRead } from '../history/log'
import type { PublishedMessage } from './codec'

interface RoomOrder {
  epoch: string
  /** The epoch the members had before this one, if any: a publish in it was delivered here. */
  previous: string | null
  /** The last offset handed to the members. */
  offset: number
  /** Messages that arrived while missed ones are read; null when none are being read. */
  held: PublishedMessage[] | null
  /** The read of the missed ones failed: it is tried again. */
  failed: boolean
}

/** How long after a failed read of missed messages it is tried again, in ms. */
const RETRY_MS = 1000

export interface PublishedOrderHost {
  deliver (name: string, message: PublishedMessage): void
  /** The room's messages after `after` (in `epoch`), at most `limit`. */
  read (name: string, after: number, limit: number, epoch: string): Promise<LogRead>
  /** The most a read may ask for (the history's size). */
  readonly size: number
  /** A read failed: the gap stays (the members' clients can tell by the offsets). */
  readFailed (name: string, error: unknown): void
}

export class PublishedOrder {
  readonly #rooms = new Map<string, RoomOrder>()
  readonly #host: PublishedOrderHost

  constructor (host: PublishedOrderHost) {
    this.#host = host
  }

  receive (name: string, message: PublishedMessage): void {
    const order = this.#rooms.get(name)
    // The first message since the room was subscribed: nothing to compare with.
    if (order === undefined) {
      this.#rooms.set(name, { epoch: message.epoch, previous: null, offset: message.offset, held: null, failed: false })
      this.#host.deliver(name, message)
      return
    }
    if (order.held !== null) {
      order.held.push(message)
      if (order.failed && order.held.length > this.#host.size) this.#release(name, order, 0)
      return
    }
    if (message.epoch !== order.epoch) {
      // A new stream, or the tail of one already left: the read says which is the room's.
      order.held = [message]
      this.#fill(name, order, this.#host.size)
      return
    }
    if (message.offset <= order.offset) return // already handed over (read during a catch-up)
    if (message.offset > order.offset + 1) {
      order.held = [message]
      this.#fill(name, order, message.offset - order.offset - 1)
      return
    }
    order.offset = message.offset
    this.#host.deliver(name, message)
  }

  /** After Redis came back: reads what each room may have missed meanwhile. */
  catchUp (): void {
    for (const [name, order] of this.#rooms) {
      if (order.held === null) order.held = []
      else if (!order.failed) continue // being read
      this.#fill(name, order, this.#host.size)
    }
  }

  /** Reads the missed messages after the members' last one; `held` is not null. */
  #fill (name: string, order: RoomOrder, missing: number): void {
    order.failed = false
    // Those held now reached this node before the read: any of another stream than the one it
    // finds is of a stream that is gone.
    const before = order.held!.length
    this.#host.read(name, order.offset, Math.min(missing, this.#host.size), order.epoch).then((read) => {
      if (this.#rooms.get(name) !== order || order.held === null) return // unsubscribed or given up meanwhile
      if (read.epoch !== order.epoch) {
        this.#renew(name, order, read, before)
        return
      }
      for (const entry of read.entries) this.#pass(name, order, { epoch: order.epoch, offset: entry.offset, exceptId: entry.exceptId ?? null, encoded: entry.encoded })
      this.#release(name, order, before)
    }, (error: unknown) => {
      this.#host.readFailed(name, error)
      if (this.#rooms.get(name) !== order || order.held === null) return
      order.failed = true
      setTimeout(() => {
        if (this.#rooms.get(name) === order && order.failed) this.#fill(name, order, this.#host.size)
      }, RETRY_MS).unref()
    })
  }

  /**
   * The room's stream was created anew since the members' last message: what they missed of
   * the old one is gone, but for the messages of it that came before the read (published
   * before the new one began), handed over first. Then the new one is read from its start.
   */
  #renew (name: string, order: RoomOrder, read: LogRead, before: number): void {
    const held = order.held!
    const next: PublishedMessage[] = []
    for (let i = 0; i < held.length; i++) {
      const message = held[i]!
      if (i >= before || message.epoch === read.epoch) next.push(message)
      else if (message.epoch === order.epoch) this.#pass(name, order, message)
    }
    order.previous = order.epoch
    order.epoch = read.epoch
    order.offset = 0
    order.held = next
    if (read.top > 0) this.#fill(name, order, read.top)
    else this.#release(name, order, 0)
  }

  /**
   * Hands over what waited; what the history did not have stays missing (the members' clients
   * can tell by the offsets). Of the first `before`, which came before a read that found the
   * members' stream, those of another are of a stream that is gone.
   */
  #release (name: string, order: RoomOrder, before: number): void {
    const held = (order.held ?? []).filter((message, i) => i >= before || message.epoch === order.epoch)
    order.held = null
    order.failed = false
    if (held.length > 0 && held[0]!.epoch === order.epoch && held[0]!.offset > order.offset + 1) order.offset = held[0]!.offset - 1
    for (const message of held) this.receive(name, message)
  }

  /** Hands over a message read from the history, in order, when the members have not had it. */
  #pass (name: string, order: RoomOrder, message: PublishedMessage): void {
    if (message.offset <= order.offset) return
    order.offset = message.offset
    this.#host.deliver(name, message)
  }

  /**
   * True when the members have had the room's message at `offset` of `epoch`, or are past that
   * epoch; false for an epoch they have not had yet (a new stream, on its way).
   */
  reached (name: string, epoch: string, offset: number): boolean {
    const order = this.#rooms.get(name)
    if (order === undefined) return false
    return order.epoch === epoch ? order.offset >= offset : order.previous === epoch
  }

  /** The room is no longer subscribed here: its order starts again with the next subscription. */
  forget (name: string): void {
    this.#rooms.delete(name)
  }

  clear (): void {
    this.#rooms.clear()
  }
}

// The order of a room's published messages on this node. Redis PUBLISHes them in offset order
// on one connection, so they arrive in order; but a subscriber connection that dropped and
// came back missed those published meanwhile. This node remembers the last offset it handed
// its members in each room it is subscribed to, and on a gap (or once Redis is back) reads
// the missed messages from the history, holding back later ones until they are delivered:
// a member that stays connected through a Redis outage still gets every published message,
// once and in order, as long as the history keeps them. A read that fails is tried again (a
// second later, and when Redis is back) while later messages keep waiting, up to the
// history's size of them: past that, the missed ones are given up and the rest goes out.
import type { LogRead } from '../history/log'
import type { PublishedMessage } from './codec'

interface RoomOrder {
  epoch: string
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
    // The first message since the room was subscribed, or a new stream: nothing to compare with.
    if (order === undefined || order.epoch !== message.epoch) {
      this.#rooms.set(name, { epoch: message.epoch, offset: message.offset, held: null, failed: false })
      this.#host.deliver(name, message)
      return
    }
    if (order.held !== null) {
      order.held.push(message)
      if (order.failed && order.held.length > this.#host.size) this.#release(name, order)
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

  #fill (name: string, order: RoomOrder, missing: number): void {
    order.failed = false
    this.#host.read(name, order.offset, Math.min(missing, this.#host.size), order.epoch).then((read) => {
      if (this.#rooms.get(name) !== order || order.held === null) return // unsubscribed or given up meanwhile
      if (read.epoch === order.epoch) {
        for (const entry of read.entries) this.#pass(name, order, { epoch: order.epoch, offset: entry.offset, exceptId: entry.exceptId ?? null, encoded: entry.encoded })
      }
      this.#release(name, order)
    }, (error: unknown) => {
      this.#host.readFailed(name, error)
      if (this.#rooms.get(name) !== order || order.held === null) return
      order.failed = true
      setTimeout(() => {
        if (this.#rooms.get(name) === order && order.failed) this.#fill(name, order, this.#host.size)
      }, RETRY_MS).unref()
    })
  }

  /** Hands over what waited; what the history did not have stays missing (the members' clients can tell by the offsets). */
  #release (name: string, order: RoomOrder): void {
    const held = order.held ?? []
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

  /** True when the members have had the room's message at `offset` of `epoch`, or a later epoch's. */
  reached (name: string, epoch: string, offset: number): boolean {
    const order = this.#rooms.get(name)
    return order !== undefined && (order.epoch !== epoch || order.offset >= offset)
  }

  /** The room is no longer subscribed here: its order starts again with the next subscription. */
  forget (name: string): void {
    this.#rooms.delete(name)
  }

  clear (): void {
    this.#rooms.clear()
  }
}

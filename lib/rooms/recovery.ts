// Sessions recovering a room's history: between the moment a session joins to recover and the
// moment its missed messages are read, the room's live published messages for it are held
// back, then sent after the replay, so it gets the missed ones, then the live ones, with no
// gap. With a cluster, a live message read in the history may still reach this node after the
// read (it travels on another connection): until one past the replay arrives, those are
// dropped rather than sent twice.
import type { Encoded } from '../transport/frame'

interface Held {
  epoch: string
  offset: number
  encoded: Encoded
}

interface Recovery {
  /** Live messages held back while the history is read; null once the replay is sent. */
  held: Held[] | null
  /** More arrived than can be held: the recovery fails, and the app sends a snapshot. */
  overflowed: boolean
  /** After the replay: the position it reached, up to which live messages are dropped. */
  epoch: string
  top: number
}

export class Recoveries<M> {
  readonly #recoveries = new Map<M, Map<string, Recovery>>()
  /** The most live messages held back for one recovery. */
  readonly #maxHeld: number

  constructor (maxHeld: number) {
    this.#maxHeld = maxHeld
  }

  /** Sessions with a recovery running or just finished. */
  get size (): number {
    return this.#recoveries.size
  }

  /** Starts holding back the room's live messages for the member; false when a recovery of it is running already. */
  start (member: M, name: string): boolean {
    let rooms = this.#recoveries.get(member)
    if (rooms === undefined) {
      rooms = new Map()
      this.#recoveries.set(member, rooms)
    }
    if (rooms.get(name)?.held != null) return false
    rooms.set(name, { held: [], overflowed: false, epoch: '', top: 0 })
    return true
  }

  /** True when a live message for the member is held back or dropped; false: send it. */
  holds (member: M, name: string, epoch: string, offset: number, encoded: Encoded): boolean {
    const recovery = this.#recoveries.get(member)?.get(name)
    if (recovery === undefined) return false
    const held = recovery.held
    if (held !== null) {
      if (held.length < this.#maxHeld) held.push({ epoch, offset, encoded })
      else recovery.overflowed = true
      return true
    }
    if (epoch === recovery.epoch && offset <= recovery.top) return true
    this.forget(member, name)
    return false
  }

  /**
   * Ends holding back: returns what was held that the member must now get (past `top` in
   * the replayed epoch, everything when nothing was replayed), or null when too much arrived
   * to hold. A replay to `top` drops the live messages up to it that are still on their way.
   */
  finish (member: M, name: string, replayed: { epoch: string, top: number } | null): Encoded[] | null {
    const recovery = this.#recoveries.get(member)?.get(name)
    if (recovery === undefined || recovery.held === null) return []
    const { held, overflowed } = recovery
    recovery.held = null
    if (overflowed || replayed === null) this.forget(member, name)
    if (overflowed) return null
    if (replayed === null) return held.map((message) => message.encoded)
    recovery.epoch = replayed.epoch
    recovery.top = replayed.top
    const after: Encoded[] = []
    for (const message of held) {
      if (message.epoch !== replayed.epoch || message.offset > replayed.top) after.push(message.encoded)
    }
    return after
  }

  /** The member left the room (name) or every room. */
  forget (member: M, name?: string): void {
    const rooms = this.#recoveries.get(member)
    if (rooms === undefined) return
    if (name !== undefined) rooms.delete(name)
    if (name === undefined || rooms.size === 0) this.#recoveries.delete(member)
  }

  clear (): void {
    this.#recoveries.clear()
  }
}

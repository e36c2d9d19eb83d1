// The rooms' history, seen from the rooms: publish() through the store the link offers (in
// memory, or in Redis), the published messages that come back for this node's members (held
// back for the members recovering), history() reads, and recover(): join, read what was
// missed, replay it, then the held live messages, with no gap and no duplicate; and for a
// session resumed from another server, the same from the position it had (../resume/arrival).
import type { RecoverResult, RoomHistory as RoomHistoryPage, StreamPosition } from '../../types/index'
import { HistoryDisabledError, InvalidArgumentError, RecoveryRunningError, describe } from '../errors'
import { NOT_RECOVERED, historyOf, recoveryOf, type BuildMessage, type HistoryLimits, type HistoryLog, type LogQuery, type LogRead } from '../history/log'
import type { Encoded } from '../transport/frame'
import { Recoveries } from './recovery'
import { kFinished, kSendEncoded, type Member } from './member'
import { channels } from '../observability/channels'

/** What the history needs of the rooms' membership. */
export interface Membership<M> {
  /** This instance's id, in what the probes say (../observability). */
  readonly nodeId: string
  join (member: M, name: string): void
  leave (member: M, name: string): void
  has (member: M, name: string): boolean
  /** This node's members of a room, or undefined when it has none. */
  membersIn (name: string): ReadonlySet<M> | undefined
}

export class RoomHistory<M extends Member> {
  /** The history option: messages kept per room and for how long; null when off. */
  readonly limits: HistoryLimits | null
  /** What the history did on this server, for stats(). */
  readonly stats = { published: 0, recovered: 0, notRecovered: 0, replayed: 0 }
  readonly #rooms: Membership<M>
  readonly #log: HistoryLog | null
  readonly #recoveries: Recoveries<M>
  /** The last published message delivered here in each room with members here: where its members stand. */
  readonly #delivered = new Map<string, { epoch: string, offset: number }>()

  constructor (rooms: Membership<M>, limits: HistoryLimits | null, log: HistoryLog | null) {
    this.#rooms = rooms
    this.limits = limits
    this.#log = log
    // What arrives while a recovery reads the history: as much as the history itself holds, at least.
    this.#recoveries = new Recoveries(Math.max(1024, limits?.size ?? 0))
  }

  #store (what: string): HistoryLog {
    if (this.#log === null) throw new HistoryDisabledError(what)
    return this.#log
  }

  /** Publishes a message at the room's next position, kept in its history, to every member but `except`. */
  publish (name: string, build: unknown, except: M | null): Promise<StreamPosition> {
    if (typeof build !== 'function') throw new InvalidArgumentError('build', 'a function ({ offset, epoch }) => message', describe(build))
    const published = this.#store('publish').publish(name, build as BuildMessage, except === null ? null : except.id)
    return published.then(this.#countPublished)
  }

  readonly #countPublished = (position: StreamPosition): StreamPosition => {
    this.stats.published++
    return position
  }

  /** A published message, for this node's members of the room but `exceptId`, held back for those recovering. */
  deliver (name: string, epoch: string, offset: number, encoded: Encoded, exceptId: string | null): void {
    const members = this.#rooms.membersIn(name)
    if (members === undefined) return
    const delivered = this.#delivered.get(name)
    if (delivered === undefined) this.#delivered.set(name, { epoch, offset })
    else {
      delivered.epoch = epoch
      delivered.offset = offset
    }
    const recoveries = this.#recoveries
    let recipients = 0
    for (const member of members) {
      if (member.id === exceptId || (recoveries.size !== 0 && recoveries.holds(member, name, epoch, offset, encoded))) continue
      member[kSendEncoded](encoded)
      recipients++
    }
    if (channels.publish.hasSubscribers) channels.publish.publish({ nodeId: this.#rooms.nodeId, room: name, recipients, bytes: encoded.data.length, epoch, offset })
  }

  read (name: string, query: LogQuery): Promise<RoomHistoryPage> {
    return this.#store('history').read(name, query).then((read) => historyOf(read, query))
  }

  /** The member left the room (name) or every room: a recovery of it has nothing more to do. */
  forget (member: M, name?: string): void {
    if (this.#recoveries.size !== 0) this.#recoveries.forget(member, name)
  }

  /**
   * Joins the member to the room and sends it every message published after `since`, then the
   * live ones, with no gap and no duplicate; or, when any of them is no longer kept, none
   * (recovered: false), and the live ones from now.
   */
  recover (member: M, name: string, since: StreamPosition): Promise<RecoverResult> {
    const log = this.#store('recover')
    if (member[kFinished] || !member.isOpen()) return Promise.resolve(NOT_RECOVERED)
    if (!this.#recoveries.start(member, name)) throw new RecoveryRunningError(name)
    return this.#recover(log, member, name, since)
  }

  async #recover (log: HistoryLog, member: M, name: string, since: StreamPosition): Promise<RecoverResult> {
    const rooms = this.#rooms
    const wasMember = rooms.has(member, name)
    let read: LogRead
    try {
      rooms.join(member, name)
      read = await log.read(name, { after: since.offset, limit: this.limits!.size, epoch: since.epoch })
    } catch (error) {
      // As it was before: a member gets what it was held back; one that joined to recover
      // leaves again (if it got in), so that the app may try again without a message twice.
      const held = this.#recoveries.finish(member, name, null) ?? []
      if (wasMember) for (const encoded of held) member[kSendEncoded](encoded, true)
      else rooms.leave(member, name)
      throw error
    }
    const stats = this.stats
    // Closed or left meanwhile: nothing more for it.
    if (!rooms.has(member, name)) {
      stats.notRecovered++
      return NOT_RECOVERED
    }
    const missed = recoveryOf(read, since)
    const held = this.#recoveries.finish(member, name, missed === null ? null : read)
    if (missed === null || held === null) { // gone, or more arrived meanwhile than could be held: nothing replayed
      stats.notRecovered++
      for (const encoded of held ?? []) member[kSendEncoded](encoded, true)
      return NOT_RECOVERED
    }
    for (const entry of missed) member[kSendEncoded](entry.encoded, true)
    for (const encoded of held) member[kSendEncoded](encoded, true)
    stats.recovered++
    stats.replayed += missed.length
    return { recovered: true, replayed: missed.length }
  }

  /** The room has no member here any more: where its members stood is no one's. */
  vacated (name: string): void {
    this.#delivered.delete(name)
  }

  delivered (name: string): { epoch: string, offset: number } | undefined {
    const delivered = this.#delivered.get(name)
    return delivered === undefined ? undefined : { ...delivered }
  }

  /** Where a member of the room stands: the last message delivered here, or, when none was since the room had members here, the stream's top. */
  async positionOf (name: string): Promise<StreamPosition> {
    const known = this.delivered(name)
    if (known !== undefined) return known
    const read = await this.#store('resume').read(name, { after: null, limit: 0, epoch: null })
    // A message delivered meanwhile went to the member (or its keeper) already.
    return this.delivered(name) ?? { epoch: read.epoch, offset: read.top }
  }

  /** What the room published after `since`, for a resume; null when the history no longer holds it all. */
  async missed (name: string, since: StreamPosition): Promise<{ encoded: Encoded[], epoch: string, top: number } | null> {
    const read = await this.#store('resume').read(name, { after: since.offset, limit: this.limits!.size, epoch: since.epoch })
    const missed = recoveryOf(read, since)
    return missed === null ? null : { encoded: missed.map((entry) => entry.encoded), epoch: read.epoch, top: read.top }
  }

  /**
   * A member resumed from another server, in the room already and sent what was published up
   * to `top`: sent what followed, then the live messages held meanwhile. False when that
   * cannot be whole (the history no longer holds it, or more arrived than could be held).
   */
  async topUp (member: M, name: string, epoch: string, top: number): Promise<boolean> {
    if (!this.#recoveries.start(member, name)) return false
    const since = { epoch, offset: top }
    let read: LogRead
    try {
      read = await this.#store('resume').read(name, { after: top, limit: this.limits!.size, epoch })
    } catch {
      this.#recoveries.finish(member, name, null)
      return false
    }
    const missed = recoveryOf(read, since)
    const held = this.#recoveries.finish(member, name, missed === null ? null : read)
    if (missed === null || held === null) return false
    for (const entry of missed) member[kSendEncoded](entry.encoded, true)
    for (const encoded of held) member[kSendEncoded](encoded, true)
    return true
  }

  clear (): void {
    this.#recoveries.clear()
    this.#delivered.clear()
  }
}

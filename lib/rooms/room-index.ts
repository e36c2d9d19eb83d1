// Who is in which room, on this instance: `rooms` (room to members) and `joined` (member to
// the rooms it joined), both private, so join, leave and members() are O(1) and a member that
// goes costs O(its rooms). The index is the cluster's host: it tells the cluster adapter of
// every membership change and broadcast, and fans out what other nodes broadcast. It also
// keeps the members' presence info, gathers presence changes for onPresence, and runs the
// rooms' history: publish() through the store (../history), and recoveries.
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { PresenceDiff, RecoverResult, RoomHistory, RoomPresence, StreamPosition } from '../../types/index'
import type { ClusterHost, ClusterLink } from '../cluster/adapter'
import { ControlKind, type ControlCommand } from '../cluster/codec'
import { HistoryDisabledError, InvalidArgumentError, RecoveryRunningError, TooManyRoomsError, describe } from '../errors'
import { NOT_RECOVERED, historyOf, recoveryOf, type BuildMessage, type HistoryLimits, type HistoryLog, type LogQuery, type LogRead } from '../history/log'
import { MemoryLog } from '../history/memory-log'
import { encode, type Encoded, type Message } from '../transport/frame'
import { PresenceChanges, toEntry, type StoredEntry } from './presence'
import { Recoveries } from './recovery'

/** The members' parts that only the rooms use: symbols, out of reach of a user's session. */
export const kFinished = Symbol('fastify-websocket-rooms.finished')
export const kSendEncoded = Symbol('fastify-websocket-rooms.sendEncoded')

/** What the index needs of a member: a session, seen from the rooms. */
export interface Member {
  readonly id: string
  /** True once the member has closed and left for good: it joins nothing more. */
  readonly [kFinished]: boolean
  isOpen (): boolean
  close (code: number, reason: string): void
  /** Sends a message encoded and framed once for every member. */
  [kSendEncoded] (encoded: Encoded): void
}

/**
 * The rooms one member is in: the name alone for one (the usual case: no Set, about 150 bytes
 * less per member), a Set for several; a member in no room has no entry.
 */
type Joined = string | Set<string>

export interface RoomLimits {
  maxRoomsPerSession: number
  maxRoomNameLength: number
}

/** onPresence and the window its changes are gathered over, and the rooms' life cycle; null when the app has none. */
export interface PresenceOptions {
  presenceInterval: number
  onPresence: ((room: string, diff: PresenceDiff) => void) | null
  onRoomOccupied: ((room: string) => void) | null
  onRoomVacated: ((room: string) => void) | null
}

/** Finds this instance's member by its id, for a command that names it. */
export type FindMember<M> = (id: string) => M | undefined

/** The presence info of a member that set none. */
const NO_INFO = 'null'

export class RoomIndex<M extends Member = Member> implements ClusterHost {
  readonly log: FastifyBaseLogger
  /** This instance's id, in presence entries and as a node of the cluster. */
  readonly nodeId = randomBytes(9).toString('base64url')
  /** The cluster this instance is a node of, when the plugin has an adapter. */
  cluster: ClusterLink | null = null
  readonly #rooms = new Map<string, Set<M>>()
  readonly #joined = new Map<M, Joined>()
  /** The presence info of the members that set one, as JSON text. */
  readonly #info = new Map<M, string>()
  readonly #changes: PresenceChanges | null
  readonly #onRoomOccupied: ((room: string) => void) | null
  readonly #onRoomVacated: ((room: string) => void) | null
  /** Rooms created or emptied this turn, with whether each had members before it (without a cluster). */
  #flips = new Map<string, boolean>()
  readonly #maxRoomsPerSession: number
  readonly #maxRoomNameLength: number
  readonly #findMember: FindMember<M>
  /** The history option: messages kept per room and for how long; null when off. */
  readonly history: HistoryLimits | null
  /** The rooms' history in this process, used when there is no cluster. */
  readonly #memoryLog: MemoryLog | null
  readonly #recoveries: Recoveries<M>
  /** What the history did on this server, for stats(). */
  readonly historyStats = { published: 0, recovered: 0, notRecovered: 0, replayed: 0 }

  constructor (log: FastifyBaseLogger, limits: RoomLimits, presence: PresenceOptions, history: HistoryLimits | null, findMember: FindMember<M>) {
    this.log = log
    this.history = history
    this.#memoryLog = history === null ? null : new MemoryLog(history, this.deliverPublished)
    // What arrives while a recovery reads the history: as much as the history itself holds, at least.
    this.#recoveries = new Recoveries(Math.max(1024, history?.size ?? 0))
    this.#findMember = findMember
    this.#maxRoomsPerSession = limits.maxRoomsPerSession
    this.#maxRoomNameLength = limits.maxRoomNameLength
    this.#changes = presence.onPresence === null ? null : new PresenceChanges(presence.presenceInterval, presence.onPresence)
    this.#onRoomOccupied = presence.onRoomOccupied
    this.#onRoomVacated = presence.onRoomVacated
  }

  /** The app listens for presence changes (onPresence). */
  get tracksPresence (): boolean {
    return this.#changes !== null
  }

  /** The app listens for rooms getting their first member and losing their last (onRoomOccupied, onRoomVacated). */
  get tracksOccupancy (): boolean {
    return this.#onRoomOccupied !== null || this.#onRoomVacated !== null
  }

  /**
   * A room was created or emptied here. Without a cluster that is the room's life cycle, told
   * once the turn is over: a room created and emptied within one turn is neither. With a
   * cluster, the cluster tells it (roomOccupied, roomVacated), once for all nodes.
   */
  #flipped (name: string, hadMembers: boolean): void {
    if (this.cluster !== null || !this.tracksOccupancy) return
    if (this.#flips.size === 0) setImmediate(this.#tellFlips)
    if (!this.#flips.has(name)) this.#flips.set(name, hadMembers)
  }

  readonly #tellFlips = (): void => {
    const flips = this.#flips
    this.#flips = new Map()
    for (const [name, hadMembers] of flips) {
      const hasMembers = this.#rooms.has(name)
      if (hasMembers && !hadMembers) this.roomOccupied(name)
      else if (!hasMembers && hadMembers) this.roomVacated(name)
    }
  }

  roomOccupied (name: string): void {
    this.#onRoomOccupied?.(name)
  }

  roomVacated (name: string): void {
    this.#onRoomVacated?.(name)
  }

  /**
   * A room name is any well-formed string up to maxRoomNameLength. Lone surrogates are refused:
   * as UTF-8 (a Redis channel, a hash field) they become U+FFFD, so two names would share one
   * channel and one count across the cluster, and the same rule applies without an adapter.
   */
  assertRoomName (name: unknown): asserts name is string {
    if (typeof name !== 'string' || name.length === 0 || name.length > this.#maxRoomNameLength || !name.isWellFormed()) {
      throw new InvalidArgumentError('room name', `a non-empty, well-formed string (no lone surrogate) of length at most ${this.#maxRoomNameLength} (option maxRoomNameLength, in UTF-16 code units)`, describe(name))
    }
  }

  join (member: M, name: string): void {
    // A member that is closing or closed joins nothing: it would never be cleaned up.
    if (member[kFinished] || !member.isOpen()) return
    const joined = this.#joined.get(member)
    if (joined === undefined) {
      this.#joined.set(member, name) // maxRoomsPerSession is at least 1
    } else if (typeof joined === 'string') {
      if (joined === name) return
      if (this.#maxRoomsPerSession < 2) throw new TooManyRoomsError(this.#maxRoomsPerSession)
      this.#joined.set(member, new Set([joined, name]))
    } else {
      if (joined.has(name)) return
      if (joined.size >= this.#maxRoomsPerSession) throw new TooManyRoomsError(this.#maxRoomsPerSession)
      joined.add(name)
    }
    let members = this.#rooms.get(name)
    if (members === undefined) {
      members = new Set()
      this.#rooms.set(name, members)
      this.#flipped(name, false)
    }
    members.add(member)
    this.cluster?.roomChanged(name)
    this.#presenceChanged(name, member, null, this.#infoOf(member))
  }

  /** A member's entry in a room's presence changed: `before`/`after` null for a join/a leave. */
  #presenceChanged (name: string, member: M, before: string | null, after: string | null): void {
    this.cluster?.presenceChanged(name, member.id, after)
    const changes = this.#changes
    if (changes === null) return
    if (before !== null) changes.leave(name, { sessionId: member.id, nodeId: this.nodeId, info: before })
    if (after !== null) changes.join(name, { sessionId: member.id, nodeId: this.nodeId, info: after })
  }

  /** Sets a member's presence info (JSON text), in every room it is in. */
  setPresence (member: M, info: string): void {
    if (member[kFinished]) return
    const before = this.#infoOf(member)
    if (info === before) return
    if (info === NO_INFO) this.#info.delete(member)
    else this.#info.set(member, info)
    for (const name of this.roomsOf(member)) this.#presenceChanged(name, member, before, info)
  }

  /** A member's presence info, as JSON text. */
  #infoOf (member: M): string {
    return this.#info.get(member) ?? NO_INFO
  }

  leave (member: M, name: string): void {
    const joined = this.#joined.get(member)
    if (joined === name) this.#joined.delete(member)
    else if (joined === undefined || typeof joined === 'string' || !joined.delete(name)) return
    if (this.#recoveries.size !== 0) this.#recoveries.forget(member, name)
    this.#dropMember(name, member)
  }

  /** Takes a member out of every room it joined, and forgets its info (it has gone). */
  leaveAll (member: M): void {
    const joined = this.#joined.get(member)
    if (joined !== undefined) {
      this.#joined.delete(member)
      if (typeof joined === 'string') this.#dropMember(joined, member)
      else for (const name of joined) this.#dropMember(name, member)
    }
    this.#info.delete(member)
    if (this.#recoveries.size !== 0) this.#recoveries.forget(member)
  }

  #dropMember (name: string, member: M): void {
    const members = this.#rooms.get(name)
    if (members === undefined) return
    members.delete(member)
    if (members.size === 0) {
      this.#rooms.delete(name)
      this.#flipped(name, true)
    }
    this.cluster?.roomChanged(name)
    this.#presenceChanged(name, member, this.#infoOf(member), null)
  }

  has (member: M, name: string): boolean {
    const joined = this.#joined.get(member)
    return joined === name || (joined !== undefined && typeof joined !== 'string' && joined.has(name))
  }

  /** The rooms a member is in. */
  roomsOf (member: M): string[] {
    const joined = this.#joined.get(member)
    return joined === undefined ? [] : typeof joined === 'string' ? [joined] : [...joined]
  }

  /** Members of a room on this node. */
  members (name: string): number {
    return this.#rooms.get(name)?.size ?? 0
  }

  /** The members of a room on this node. */
  membersOf (name: string): M[] {
    const members = this.#rooms.get(name)
    return members === undefined ? [] : [...members]
  }

  /** Names of the rooms with members on this node. */
  roomNames (): IterableIterator<string> {
    return this.#rooms.keys()
  }

  get size (): number {
    return this.#rooms.size
  }

  /** This node's entries of a room's presence. */
  localPresence (name: string): StoredEntry[] {
    const members = this.#rooms.get(name)
    if (members === undefined) return []
    const entries: StoredEntry[] = []
    for (const member of members) entries.push({ sessionId: member.id, nodeId: this.nodeId, info: this.#infoOf(member) })
    return entries
  }

  /** Every member of a room with its info: on every node with a cluster (complete: false when some node could not be read). */
  async presence (name: string): Promise<RoomPresence> {
    if (this.cluster === null) return { members: this.localPresence(name).map(toEntry), complete: true }
    const { entries, complete } = await this.cluster.presence(name)
    return { members: entries.map(toEntry), complete }
  }

  /** Members of another node that died, found gone by the cluster: their leaves, told as this node's own. */
  presenceLeft (name: string, entries: StoredEntry[]): void {
    if (this.#changes === null) return
    for (const entry of entries) this.#changes.leave(name, entry)
  }

  /** This node's own members, told back after the cluster took the node for dead. */
  presenceJoined (name: string, entries: StoredEntry[]): void {
    if (this.#changes === null) return
    for (const entry of entries) this.#changes.join(name, entry)
  }

  /** Tells onPresence what is gathered now, rather than at the end of the window (the app is closing). */
  flushPresence (): void {
    this.#changes?.flush()
  }

  /** Members of a room on every node: this node's, without a cluster. */
  clusterMembers (name: string): Promise<number> {
    return this.cluster === null ? Promise.resolve(this.members(name)) : this.cluster.clusterMembers(name)
  }

  broadcast (name: string, message: Message, except: M | null): void {
    const encoded = encode(message, 'message')
    // Published first, so the other nodes' share of the work starts before this node's own.
    this.cluster?.publish(name, encoded)
    this.#fanOut(name, encoded, except)
  }

  /** A broadcast from another node of the cluster, for this node's members. */
  deliver (name: string, encoded: Encoded): void {
    this.#fanOut(name, encoded, null)
  }

  /**
   * Sends to every member of at least one of `rooms` and of none of `except`, once each, on
   * every node: one command for the other nodes, whatever the number of rooms.
   */
  broadcastTo (rooms: string[], except: string[], message: Message): void {
    const encoded = encode(message, 'message')
    this.cluster?.command({ kind: ControlKind.Broadcast, rooms, except, encoded }).catch(() => {})
    this.#fanOutTo(rooms, except, encoded)
  }

  #fanOutTo (rooms: string[], except: string[], encoded: Encoded): void {
    for (let i = 0; i < rooms.length; i++) {
      const members = this.#rooms.get(rooms[i]!)
      if (members === undefined) continue
      for (const member of members) {
        if (this.#inAny(member, rooms, i) || this.#inAny(member, except, except.length)) continue
        member[kSendEncoded](encoded)
      }
    }
  }

  /** True when the member is in one of the first `count` rooms of the list. */
  #inAny (member: M, rooms: string[], count: number): boolean {
    for (let i = 0; i < count; i++) if (this.has(member, rooms[i]!)) return true
    return false
  }

  /** Closes every member of a room, on every node: here at once; resolves once the other nodes have been sent the command, rejects if they could not be. */
  disconnectRoom (name: string, code: number, reason: string): Promise<void> {
    this.#closeMembers(name, code, reason)
    return this.cluster?.command({ kind: ControlKind.DisconnectRoom, room: name, code, reason }) ?? Promise.resolve()
  }

  #closeMembers (name: string, code: number, reason: string): void {
    for (const member of this.membersOf(name)) member.close(code, reason)
  }

  /** Closes a session wherever it lives; resolves once closed here, or once the other nodes have been sent the command (rejects if they could not be). */
  disconnectSession (id: string, code: number, reason: string): Promise<void> {
    const member = this.#findMember(id)
    if (member !== undefined) {
      member.close(code, reason)
      return Promise.resolve()
    }
    return this.cluster?.command({ kind: ControlKind.DisconnectSession, sessionId: id, code, reason }) ?? Promise.resolve()
  }

  control (command: ControlCommand): void {
    switch (command.kind) {
      case ControlKind.Broadcast:
        this.#fanOutTo(command.rooms, command.except, command.encoded)
        break
      case ControlKind.DisconnectRoom:
        this.#closeMembers(command.room, command.code, command.reason)
        break
      default:
        this.#findMember(command.sessionId)?.close(command.code, command.reason)
    }
  }

  #fanOut (name: string, encoded: Encoded, except: M | null): void {
    const members = this.#rooms.get(name)
    if (members === undefined) return
    for (const member of members) {
      if (member !== except) member[kSendEncoded](encoded)
    }
  }

  /** The store of the rooms' history: Redis's with a cluster, this process's without. */
  #log (what: string): HistoryLog {
    const log = this.cluster === null ? this.#memoryLog : this.cluster.history
    if (log === null) throw new HistoryDisabledError(what)
    return log
  }

  /** Publishes a message at the room's next position, kept in its history, to every member but `except`. */
  publish (name: string, build: unknown, except: M | null): Promise<StreamPosition> {
    if (typeof build !== 'function') throw new InvalidArgumentError('build', 'a function ({ offset, epoch }) => message', describe(build))
    const published = this.#log('publish').publish(name, build as BuildMessage, except === null ? null : except.id)
    return published.then(this.#countPublished)
  }

  readonly #countPublished = (position: StreamPosition): StreamPosition => {
    this.historyStats.published++
    return position
  }

  /** A published message, for this node's members of the room but `exceptId`, held back for those recovering. */
  readonly deliverPublished = (name: string, epoch: string, offset: number, encoded: Encoded, exceptId: string | null): void => {
    const members = this.#rooms.get(name)
    if (members === undefined) return
    const recoveries = this.#recoveries
    for (const member of members) {
      if (member.id === exceptId || (recoveries.size !== 0 && recoveries.holds(member, name, epoch, offset, encoded))) continue
      member[kSendEncoded](encoded)
    }
  }

  readHistory (name: string, query: LogQuery): Promise<RoomHistory> {
    return this.#log('history').read(name, query).then((read) => historyOf(read, query))
  }

  /**
   * Joins the member to the room and sends it every message published after `since`, then the
   * live ones, with no gap and no duplicate; or, when any of them is no longer kept, none
   * (recovered: false), and the live ones from now.
   */
  recover (member: M, name: string, since: StreamPosition): Promise<RecoverResult> {
    const log = this.#log('recover')
    if (member[kFinished] || !member.isOpen()) return Promise.resolve(NOT_RECOVERED)
    if (!this.#recoveries.start(member, name)) throw new RecoveryRunningError(name)
    return this.#recover(log, member, name, since)
  }

  async #recover (log: HistoryLog, member: M, name: string, since: StreamPosition): Promise<RecoverResult> {
    const wasMember = this.has(member, name)
    let read: LogRead
    try {
      this.join(member, name)
      read = await log.read(name, { after: since.offset, limit: this.history!.size, epoch: since.epoch })
    } catch (error) {
      // As it was before: a member gets what it was held back; one that joined to recover
      // leaves again (if it got in), so that the app may try again without a message twice.
      const held = this.#recoveries.finish(member, name, null) ?? []
      if (wasMember) for (const encoded of held) member[kSendEncoded](encoded)
      else this.leave(member, name)
      throw error
    }
    const stats = this.historyStats
    // Closed or left meanwhile: nothing more for it.
    if (!this.has(member, name)) {
      stats.notRecovered++
      return NOT_RECOVERED
    }
    const missed = recoveryOf(read, since)
    const held = this.#recoveries.finish(member, name, missed === null ? null : read)
    if (missed === null || held === null) { // gone, or more arrived meanwhile than could be held: nothing replayed
      stats.notRecovered++
      for (const encoded of held ?? []) member[kSendEncoded](encoded)
      return NOT_RECOVERED
    }
    for (const entry of missed) member[kSendEncoded](entry.encoded)
    for (const encoded of held) member[kSendEncoded](encoded)
    stats.recovered++
    stats.replayed += missed.length
    return { recovered: true, replayed: missed.length }
  }

  clear (): void {
    this.#memoryLog?.close()
    this.#recoveries.clear()
    this.#rooms.clear()
    this.#joined.clear()
    this.#info.clear()
    this.#changes?.clear()
  }
}

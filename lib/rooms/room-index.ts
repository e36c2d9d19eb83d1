// Who is in which room, on this instance: `rooms` (room to members) and `joined` (member to
// the rooms it joined), both private, so join, leave and members() are O(1) and a member that
// goes costs O(its rooms). The index hosts the link to the cluster (./port; this process alone
// without one): it tells the link of every membership change, broadcast and command, and fans
// out what the link delivers. It also keeps the members' presence info and gathers presence
// changes for onPresence; the rooms' history is ./room-history's.
//
// Over 400 lines, for a reason: membership, presence info and the fan-outs read the same two
// private maps, which must not be reachable from outside; resume's moves (replace, adopt,
// release) change them too, without telling presence.
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { PresenceDiff, RoomPresence } from '../../types/index'
import { InvalidArgumentError, TooManyRoomsError, describe } from '../errors'
import type { HistoryLimits } from '../history/log'
import { encode, type Encoded, type Message } from '../transport/frame'
import { kFinished, kSendEncoded, type Member } from './member'
import { ControlKind, type Adapter, type ClusterHost, type ClusterLink, type ClusterTracing, type ControlCommand, type StoredEntry } from './port'
import { PresenceChanges, toEntry } from './presence'
import { RoomHistory, type Membership } from './room-history'
import { channels } from '../observability/channels'

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

export class RoomIndex<M extends Member = Member> implements ClusterHost, Membership<M> {
  readonly log: FastifyBaseLogger
  /** This instance's id, in presence entries and as a node of the cluster. */
  readonly nodeId = randomBytes(9).toString('base64url')
  /** The history option: messages kept per room and for how long; null when off. */
  readonly history: HistoryLimits | null
  readonly #rooms = new Map<string, Set<M>>()
  readonly #joined = new Map<M, Joined>()
  /** The presence info of the members that set one, as JSON text. */
  readonly #info = new Map<M, string>()
  readonly #changes: PresenceChanges | null
  readonly #onRoomOccupied: ((room: string) => void) | null
  readonly #onRoomVacated: ((room: string) => void) | null
  readonly #maxRoomsPerSession: number
  readonly #maxRoomNameLength: number
  readonly #findMember: FindMember<M>
  /** The app's tracing, which the cluster carries to the other nodes; set before any session opens. */
  clusterTracing: ClusterTracing | null = null
  /** The cluster, or this process alone; set once, by start(), before anyone can join. */
  #link!: ClusterLink
  #roomHistory!: RoomHistory<M>
  /** A resume moves a member (adopt, release): presence changes go to the cluster, not to onPresence. */
  #quiet = false

  /** An index whose link the engine has started (Redis is reached, or this process alone). */
  static async start<M extends Member> (log: FastifyBaseLogger, limits: RoomLimits, presence: PresenceOptions, history: HistoryLimits | null, findMember: FindMember<M>, engine: Adapter): Promise<RoomIndex<M>> {
    const index = new RoomIndex<M>(log, limits, presence, history, findMember)
    index.#link = await engine.start(index)
    index.#roomHistory = new RoomHistory(index, history, index.#link.history)
    return index
  }

  private constructor (log: FastifyBaseLogger, limits: RoomLimits, presence: PresenceOptions, history: HistoryLimits | null, findMember: FindMember<M>) {
    this.log = log
    this.history = history
    this.#findMember = findMember
    this.#maxRoomsPerSession = limits.maxRoomsPerSession
    this.#maxRoomNameLength = limits.maxRoomNameLength
    this.#changes = presence.onPresence === null ? null : new PresenceChanges(presence.presenceInterval, presence.onPresence)
    this.#onRoomOccupied = presence.onRoomOccupied
    this.#onRoomVacated = presence.onRoomVacated
  }

  /** The cluster (this process alone without one): what else it offers is chosen from it at registration (resume's store). */
  get link (): ClusterLink {
    return this.#link
  }

  /** publish(), history() and recover() of the rooms. */
  get roomHistory (): RoomHistory<M> {
    return this.#roomHistory
  }

  /** The app listens for presence changes (onPresence). */
  get tracksPresence (): boolean {
    return this.#changes !== null
  }

  /** The app listens for rooms getting their first member and losing their last (onRoomOccupied, onRoomVacated). */
  get tracksOccupancy (): boolean {
    return this.#onRoomOccupied !== null || this.#onRoomVacated !== null
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
    }
    members.add(member)
    this.#link.roomChanged(name)
    this.#presenceChanged(name, member, null, this.infoOf(member))
  }

  /** A member's entry in a room's presence changed: `before`/`after` null for a join/a leave. */
  #presenceChanged (name: string, member: M, before: string | null, after: string | null): void {
    this.#link.presenceChanged(name, member.id, after)
    const changes = this.#changes
    if (changes === null || this.#quiet) return
    if (before !== null) changes.leave(name, { sessionId: member.id, nodeId: this.nodeId, info: before })
    if (after !== null) changes.join(name, { sessionId: member.id, nodeId: this.nodeId, info: after })
  }

  /** Sets a member's presence info (JSON text), in every room it is in. */
  setPresence (member: M, info: string): void {
    if (member[kFinished]) return
    const before = this.infoOf(member)
    if (info === before) return
    if (info === NO_INFO) this.#info.delete(member)
    else this.#info.set(member, info)
    for (const name of this.roomsOf(member)) this.#presenceChanged(name, member, before, info)
  }

  /** A member's presence info, as JSON text. */
  infoOf (member: M): string {
    return this.#info.get(member) ?? NO_INFO
  }

  leave (member: M, name: string): void {
    const joined = this.#joined.get(member)
    if (joined === name) this.#joined.delete(member)
    else if (joined === undefined || typeof joined === 'string' || !joined.delete(name)) return
    this.#roomHistory.forget(member, name)
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
    this.#roomHistory.forget(member)
  }

  #dropMember (name: string, member: M): void {
    const members = this.#rooms.get(name)
    if (members === undefined) return
    members.delete(member)
    if (members.size === 0) {
      this.#rooms.delete(name)
      this.#roomHistory.vacated(name)
    }
    this.#link.roomChanged(name)
    this.#presenceChanged(name, member, this.infoOf(member), null)
  }

  /**
   * A resumed member takes the place of the one it resumes (its id, the same), in every room
   * and with its presence info: for the rooms, the cluster and presence, nothing happened.
   */
  replace (old: M, member: M): void {
    const joined = this.#joined.get(old)
    if (joined !== undefined) {
      this.#joined.delete(old)
      this.#joined.set(member, joined)
      for (const name of typeof joined === 'string' ? [joined] : joined) {
        const members = this.#rooms.get(name)!
        members.delete(old)
        members.add(member)
      }
    }
    const info = this.#info.get(old)
    if (info !== undefined) {
      this.#info.delete(old)
      this.#info.set(member, info)
    }
    this.#roomHistory.forget(old)
  }

  /** A member resumed from another server: in these rooms with this info; for onPresence, nothing happened. */
  adopt (member: M, names: string[], info: string): void {
    this.#quiet = true
    try {
      if (info !== NO_INFO) this.#info.set(member, info)
      for (const name of names) this.join(member, name)
    } finally {
      this.#quiet = false
    }
  }

  /** A member another server takes over: out of its rooms here; for onPresence, nothing happened. */
  release (member: M): void {
    this.#quiet = true
    try {
      this.leaveAll(member)
    } finally {
      this.#quiet = false
    }
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

  /** This node's members of a room, or undefined when it has none: to iterate at once, never to keep. */
  membersIn (name: string): ReadonlySet<M> | undefined {
    return this.#rooms.get(name)
  }

  /** Members of a room on this node. */
  memberCount (name: string): number {
    return this.#rooms.get(name)?.size ?? 0
  }

  /** The members of a room on this node. */
  memberList (name: string): M[] {
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
    for (const member of members) entries.push({ sessionId: member.id, nodeId: this.nodeId, info: this.infoOf(member) })
    return entries
  }

  /** Every member of a room with its info: on every node with a cluster (complete: false when some node could not be read). */
  async presence (name: string): Promise<RoomPresence> {
    const { entries, complete } = await this.#link.presence(name)
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
    return this.#link.clusterMembers(name)
  }

  /** The cluster's counters; null without a cluster. */
  clusterStats (): ReturnType<ClusterLink['stats']> {
    return this.#link.stats()
  }

  broadcast (name: string, message: Message, except: M | null): void {
    const encoded = encode(message, 'message')
    // Published first, so the other nodes' share of the work starts before this node's own.
    this.#link.publish(name, encoded)
    const recipients = this.#fanOut(name, encoded, except)
    if (channels.broadcast.hasSubscribers) channels.broadcast.publish({ nodeId: this.nodeId, room: name, rooms: null, recipients, bytes: encoded.data.length, from: 'local' })
  }

  /** A broadcast from another node of the cluster, for this node's members. */
  deliver (name: string, encoded: Encoded): void {
    const recipients = this.#fanOut(name, encoded, null)
    if (channels.broadcast.hasSubscribers) channels.broadcast.publish({ nodeId: this.nodeId, room: name, rooms: null, recipients, bytes: encoded.data.length, from: 'cluster' })
  }

  /**
   * Sends to every member of at least one of `rooms` and of none of `except`, once each, on
   * every node: one command for the other nodes, whatever the number of rooms.
   */
  broadcastTo (rooms: string[], except: string[], message: Message): void {
    const encoded = encode(message, 'message')
    this.#link.command({ kind: ControlKind.Broadcast, rooms, except, encoded }).catch(() => {})
    this.#fanOutTo(rooms, except, encoded, 'local')
  }

  #fanOutTo (rooms: string[], except: string[], encoded: Encoded, from: 'local' | 'cluster'): void {
    let recipients = 0
    for (let i = 0; i < rooms.length; i++) {
      const members = this.#rooms.get(rooms[i]!)
      if (members === undefined) continue
      for (const member of members) {
        if (this.#inAny(member, rooms, i) || this.#inAny(member, except, except.length)) continue
        member[kSendEncoded](encoded)
        recipients++
      }
    }
    if (channels.broadcast.hasSubscribers) channels.broadcast.publish({ nodeId: this.nodeId, room: null, rooms, recipients, bytes: encoded.data.length, from })
  }

  /** True when the member is in one of the first `count` rooms of the list. */
  #inAny (member: M, rooms: string[], count: number): boolean {
    for (let i = 0; i < count; i++) if (this.has(member, rooms[i]!)) return true
    return false
  }

  /** Closes every member of a room, on every node: here at once; resolves once the other nodes have been sent the command, rejects if they could not be. */
  disconnectRoom (name: string, code: number, reason: string): Promise<void> {
    this.#closeMembers(name, code, reason)
    return this.#link.command({ kind: ControlKind.DisconnectRoom, room: name, code, reason })
  }

  #closeMembers (name: string, code: number, reason: string): void {
    for (const member of this.memberList(name)) member.close(code, reason)
  }

  /** Closes a session wherever it lives; resolves once closed here, or once the other nodes have been sent the command (rejects if they could not be). */
  disconnectSession (id: string, code: number, reason: string): Promise<void> {
    const member = this.#findMember(id)
    if (member !== undefined) {
      member.close(code, reason)
      return Promise.resolve()
    }
    return this.#link.command({ kind: ControlKind.DisconnectSession, sessionId: id, code, reason })
  }

  control (command: ControlCommand): void {
    switch (command.kind) {
      case ControlKind.Broadcast:
        this.#fanOutTo(command.rooms, command.except, command.encoded, 'cluster')
        break
      case ControlKind.DisconnectRoom:
        this.#closeMembers(command.room, command.code, command.reason)
        break
      default:
        this.#findMember(command.sessionId)?.close(command.code, command.reason)
    }
  }

  /** Sends to this node's members of the room but `except`; returns how many. */
  #fanOut (name: string, encoded: Encoded, except: M | null): number {
    const members = this.#rooms.get(name)
    if (members === undefined) return 0
    for (const member of members) {
      if (member !== except) member[kSendEncoded](encoded)
    }
    return except !== null && members.has(except) ? members.size - 1 : members.size
  }

  /** A published message (any node's, this one's too), for this node's members of the room but `exceptId`. */
  readonly deliverPublished = (name: string, epoch: string, offset: number, encoded: Encoded, exceptId: string | null): void => {
    this.#roomHistory.deliver(name, epoch, offset, encoded, exceptId)
  }

  /** Leaves the cluster (waiting for it at most its connectTimeout), then forgets every room. */
  async close (): Promise<void> {
    await this.#link.close()
    this.#roomHistory.clear()
    this.#rooms.clear()
    this.#joined.clear()
    this.#info.clear()
    this.#changes?.clear()
  }
}

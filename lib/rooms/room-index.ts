// Who is in which room, on this instance: `rooms` (room to members) and `joined` (member to
// the rooms it joined), both private, so join, leave and members() are O(1) and a member that
// goes costs O(its rooms). The index is the cluster's host: it tells the cluster adapter of
// every membership change and broadcast, and fans out what other nodes broadcast.
import type { FastifyBaseLogger } from 'fastify'
import type { ClusterHost, ClusterLink } from '../cluster/adapter'
import { InvalidArgumentError, TooManyRoomsError, describe } from '../errors'
import { encode, type Encoded, type Message } from '../transport/frame'

/** The members' parts that only the rooms use: symbols, out of reach of a user's session. */
export const kFinished = Symbol('fastify-websocket-rooms.finished')
export const kSendEncoded = Symbol('fastify-websocket-rooms.sendEncoded')

/** What the index needs of a member: a session, seen from the rooms. */
export interface Member {
  /** True once the member has closed and left for good: it joins nothing more. */
  readonly [kFinished]: boolean
  isOpen (): boolean
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

export class RoomIndex<M extends Member = Member> implements ClusterHost {
  readonly log: FastifyBaseLogger
  /** The cluster this instance is a node of, when the plugin has an adapter. */
  cluster: ClusterLink | null = null
  readonly #rooms = new Map<string, Set<M>>()
  readonly #joined = new Map<M, Joined>()
  readonly #maxRoomsPerSession: number
  readonly #maxRoomNameLength: number

  constructor (log: FastifyBaseLogger, limits: RoomLimits) {
    this.log = log
    this.#maxRoomsPerSession = limits.maxRoomsPerSession
    this.#maxRoomNameLength = limits.maxRoomNameLength
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
    this.cluster?.roomChanged(name)
  }

  leave (member: M, name: string): void {
    const joined = this.#joined.get(member)
    if (joined === name) this.#joined.delete(member)
    else if (joined === undefined || typeof joined === 'string' || !joined.delete(name)) return
    this.#dropMember(name, member)
  }

  /** Takes a member out of every room it joined (it has gone). */
  leaveAll (member: M): void {
    const joined = this.#joined.get(member)
    if (joined === undefined) return
    this.#joined.delete(member)
    if (typeof joined === 'string') this.#dropMember(joined, member)
    else for (const name of joined) this.#dropMember(name, member)
  }

  #dropMember (name: string, member: M): void {
    const members = this.#rooms.get(name)
    if (members === undefined) return
    members.delete(member)
    if (members.size === 0) this.#rooms.delete(name)
    this.cluster?.roomChanged(name)
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

  #fanOut (name: string, encoded: Encoded, except: M | null): void {
    const members = this.#rooms.get(name)
    if (members === undefined) return
    for (const member of members) {
      if (member !== except) member[kSendEncoded](encoded)
    }
  }

  clear (): void {
    this.#rooms.clear()
    this.#joined.clear()
  }
}

// The room registry of one Fastify instance: which sessions are open and who is in which
// room. Rooms live in `rooms: Map<name, Set<Session>>`, and each session keeps the names it
// joined, so join, leave and members() are O(1) and a closing session costs O(its rooms).
// With a cluster adapter, the registry tells it of every membership change and broadcast.
import type { ServerRoom, WebSocketRoom, WebsocketRooms, WebsocketRoomsStats } from '../types/index'
import type { ClusterLink } from './adapter'
import { InvalidArgumentError, TooManyRoomsError, describe } from './errors'
import { encode, type Encoded, type Message } from './frame'
import type { Session } from './session'
import { Stats } from './stats'

export interface RegistryOptions {
  maxRoomsPerSession: number
  maxRoomNameLength: number
  /** Sessions listen for pongs when the server pings them. */
  heartbeat: boolean
}

export class RoomRegistry {
  readonly sessions = new Map<string, Session>()
  readonly rooms = new Map<string, Set<Session>>()
  readonly stats = new Stats()
  readonly heartbeat: boolean
  /** The cluster this instance is a node of, when the plugin has an adapter. */
  cluster: ClusterLink | null = null
  readonly #maxRoomsPerSession: number
  readonly #maxRoomNameLength: number
  #emptyWaiters: Array<() => void> = []

  constructor (options: RegistryOptions) {
    this.heartbeat = options.heartbeat
    this.#maxRoomsPerSession = options.maxRoomsPerSession
    this.#maxRoomNameLength = options.maxRoomNameLength
  }

  /**
   * A room name is any well-formed string up to maxRoomNameLength. Lone surrogates are refused:
   * as UTF-8 (a Redis channel, a hash field) they become U+FFFD, so two names would share one
   * channel and one count across the cluster, and the same rule applies without an adapter.
   */
  assertRoomName (name: unknown): asserts name is string {
    if (typeof name !== 'string' || name.length === 0 || name.length > this.#maxRoomNameLength || !name.isWellFormed()) {
      throw new InvalidArgumentError('room name', `a non-empty, well-formed string (no lone surrogate) of at most ${this.#maxRoomNameLength} characters (option maxRoomNameLength)`, describe(name))
    }
  }

  addSession (session: Session): void {
    this.sessions.set(session.id, session)
  }

  /** Drops a finished session from the registry and from every room it joined. */
  removeSession (session: Session): void {
    const joined = session.rooms
    if (joined !== null) {
      session.rooms = null
      if (typeof joined === 'string') this.#dropMember(joined, session)
      else for (const name of joined) this.#dropMember(name, session)
    }
    this.sessions.delete(session.id)
    if (this.sessions.size === 0 && this.#emptyWaiters.length > 0) {
      const waiters = this.#emptyWaiters
      this.#emptyWaiters = []
      for (const resolve of waiters) resolve()
    }
  }

  /** Resolves once no session is left. */
  whenEmpty (): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve()
    return new Promise((resolve) => { this.#emptyWaiters.push(resolve) })
  }

  join (session: Session, name: string): void {
    // A session that is closing or closed joins nothing: it would never be cleaned up.
    if (session.finished || !session.isOpen()) return
    const joined = session.rooms
    if (joined === null) {
      session.rooms = name // maxRoomsPerSession is at least 1
    } else if (typeof joined === 'string') {
      if (joined === name) return
      if (this.#maxRoomsPerSession < 2) throw new TooManyRoomsError(this.#maxRoomsPerSession)
      session.rooms = new Set([joined, name])
    } else {
      if (joined.has(name)) return
      if (joined.size >= this.#maxRoomsPerSession) throw new TooManyRoomsError(this.#maxRoomsPerSession)
      joined.add(name)
    }
    let members = this.rooms.get(name)
    if (members === undefined) {
      members = new Set()
      this.rooms.set(name, members)
    }
    members.add(session)
    this.cluster?.roomChanged(name)
  }

  leave (session: Session, name: string): void {
    const joined = session.rooms
    if (joined === name) session.rooms = null
    else if (joined === null || typeof joined === 'string' || !joined.delete(name)) return
    this.#dropMember(name, session)
  }

  #dropMember (name: string, session: Session): void {
    const members = this.rooms.get(name)
    if (members === undefined) return
    members.delete(session)
    if (members.size === 0) this.rooms.delete(name)
    this.cluster?.roomChanged(name)
  }

  members (name: string): number {
    return this.rooms.get(name)?.size ?? 0
  }

  /** Members of a room on every node: this node's, without a cluster. */
  clusterMembers (name: string): Promise<number> {
    return this.cluster === null ? Promise.resolve(this.members(name)) : this.cluster.clusterMembers(name)
  }

  broadcast (name: string, message: Message, except: Session | null): void {
    const encoded = encode(message, 'message')
    // Published first, so the other nodes' share of the work starts before this node's own.
    this.cluster?.publish(name, encoded)
    this.#fanOut(name, encoded, except)
  }

  /** A broadcast from another node of the cluster, for this node's members. */
  deliver (name: string, encoded: Encoded): void {
    this.#fanOut(name, encoded, null)
  }

  #fanOut (name: string, encoded: Encoded, except: Session | null): void {
    const members = this.rooms.get(name)
    if (members === undefined) return
    for (const member of members) {
      if (member !== except) member.sendEncoded(encoded)
    }
  }

  clear (): void {
    this.rooms.clear()
    this.sessions.clear()
  }
}

/**
 * The rooms a session is in, as Session.rooms keeps them: null for none, the name alone for
 * one (the usual case: no Set, about 150 bytes less per session), a Set for several.
 */
export type JoinedRooms = string | Set<string> | null

export function inRoom (joined: JoinedRooms, name: string): boolean {
  return joined === name || (joined !== null && typeof joined !== 'string' && joined.has(name))
}

export function joinedNames (joined: JoinedRooms): string[] {
  return joined === null ? [] : typeof joined === 'string' ? [joined] : [...joined]
}

/** session.room(name): a handle bound to one session; joining is explicit. */
export class RoomHandle implements WebSocketRoom {
  readonly #registry: RoomRegistry
  readonly #session: Session
  readonly #name: string

  constructor (registry: RoomRegistry, session: Session, name: string) {
    this.#registry = registry
    this.#session = session
    this.#name = name
  }

  join (): this {
    this.#registry.join(this.#session, this.#name)
    return this
  }

  leave (): this {
    this.#registry.leave(this.#session, this.#name)
    return this
  }

  broadcast (message: Message): void {
    this.#registry.broadcast(this.#name, message, null)
  }

  broadcastExcept (message: Message): void {
    this.#registry.broadcast(this.#name, message, this.#session)
  }

  members (): number {
    return this.#registry.members(this.#name)
  }

  clusterMembers (): Promise<number> {
    return this.#registry.clusterMembers(this.#name)
  }

  has (): boolean {
    return inRoom(this.#session.rooms, this.#name)
  }

  getName (): string {
    return this.#name
  }
}

/** app.websocketRooms.room(name): a room seen from HTTP routes and jobs. */
class ServerRoomHandle implements ServerRoom {
  readonly #registry: RoomRegistry
  readonly #name: string

  constructor (registry: RoomRegistry, name: string) {
    this.#registry = registry
    this.#name = name
  }

  broadcast (message: Message): void {
    this.#registry.broadcast(this.#name, message, null)
  }

  members (): number {
    return this.#registry.members(this.#name)
  }

  clusterMembers (): Promise<number> {
    return this.#registry.clusterMembers(this.#name)
  }

  sessions (): Session[] {
    const members = this.#registry.rooms.get(this.#name)
    return members === undefined ? [] : [...members]
  }

  getName (): string {
    return this.#name
  }
}

/** The app.websocketRooms decorator. */
export class ServerRooms implements WebsocketRooms {
  readonly #registry: RoomRegistry

  constructor (registry: RoomRegistry) {
    this.#registry = registry
  }

  room (name: string): ServerRoom {
    this.#registry.assertRoomName(name)
    return new ServerRoomHandle(this.#registry, name)
  }

  roomNames (): string[] {
    return [...this.#registry.rooms.keys()]
  }

  stats (): WebsocketRoomsStats {
    const registry = this.#registry
    const s = registry.stats
    return {
      sessions: registry.sessions.size,
      rooms: registry.rooms.size,
      pausedSessions: s.paused,
      messagesIn: s.messagesIn,
      bytesIn: s.bytesIn,
      messagesOut: s.messagesOut,
      bytesOut: s.bytesOut,
      dropped: { backpressure: s.droppedBackpressure, rateLimit: s.droppedRateLimit },
      closed: {
        heartbeat: s.closedHeartbeat,
        backpressure: s.closedBackpressure,
        rateLimit: s.closedRateLimit,
        unsupportedData: s.closedUnsupportedData,
        handlerError: s.closedHandlerError
      },
      refused: { origin: s.refusedOrigin, maxSessions: s.refusedMaxSessions },
      cluster: registry.cluster === null ? null : registry.cluster.stats()
    }
  }
}

/** The app.websocketSessions decorator: the registry's sessions, readable but not writable. */
export class SessionsView implements ReadonlyMap<string, Session> {
  readonly #sessions: Map<string, Session>

  constructor (sessions: Map<string, Session>) {
    this.#sessions = sessions
  }

  get size (): number { return this.#sessions.size }
  get (id: string): Session | undefined { return this.#sessions.get(id) }
  has (id: string): boolean { return this.#sessions.has(id) }
  keys (): MapIterator<string> { return this.#sessions.keys() }
  values (): MapIterator<Session> { return this.#sessions.values() }
  entries (): MapIterator<[string, Session]> { return this.#sessions.entries() }
  [Symbol.iterator] (): MapIterator<[string, Session]> { return this.#sessions.entries() }
  forEach (callback: (value: Session, key: string, map: ReadonlyMap<string, Session>) => void, thisArg?: unknown): void {
    for (const [id, session] of this.#sessions) callback.call(thisArg, session, id, this)
  }
}

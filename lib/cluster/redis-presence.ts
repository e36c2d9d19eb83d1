// A node's presence entries and its rooms' life cycle, in Redis (./redis-node writes them in
// its updates and keeps them alive with its heartbeat).
//
// Presence as the counts are kept: each node keeps its members' entries of each room (session
// id to info) in a hash, `{<keyPrefix>:node:<nodeId>}:presence:<room>`, with the list of those
// rooms in `{<keyPrefix>:node:<nodeId>}:presence-rooms`, kept alive by its heartbeat, but for
// longer than its counts (LIFETIMES × nodeTimeout): a node that stops beating for nodeTimeout
// is dead, and one surviving node, the first to claim it (`{<keyPrefix>:node:<nodeId>}:reaped`,
// set if absent), reads its entries to tell their leaves (onPresence), then deletes them. A
// node's keys share its hash slot (./redis-keys), so its writes are one MULTI.
//
// A room's life cycle across the cluster (onRoomOccupied, onRoomVacated), when the app listens
// for it: each node lists itself in the room's set, `{<keyPrefix>:room:<name>}:occupied`, while
// it has members there; the node whose SADD makes the set one node long tells the room occupied,
// the one whose SREM empties it (its own, or a dead node's) tells it vacated. A MULTI per room
// makes each step one, so two nodes never both tell it. The sets live as long as presence
// entries do.
import type { ClusterHost, StoredEntry } from '../rooms/port'
import type { RedisConnection, RedisConnections } from './redis-connections'
import type { RedisKeys } from './redis-keys'

/** How many nodeTimeouts a node's presence entries outlive its last heartbeat: time for a survivor to tell their leaves. */
export const LIFETIMES = 3

type Multi = ReturnType<RedisConnection['multi']>

export interface RedisPresenceOptions {
  nodeTimeout: number
}

export class RedisPresence {
  readonly #host: ClusterHost
  readonly #connections: RedisConnections
  readonly #keys: RedisKeys
  readonly #options: RedisPresenceOptions
  readonly #nodeId: string
  /** This node's list of the rooms it has presence entries in. */
  readonly roomsKey: string
  /** Entries changed since the last write, by room and session: the info, or null for a leave. */
  #changed = new Map<string, Map<string, string | null>>()
  /** Write every room's entries again (Redis may have lost them, or a write failed). */
  #rewrite = false
  /** The rooms this node is listed in as occupying (with tracksOccupancy). */
  readonly #occupying = new Set<string>()
  /** Compare every room with #occupying at the next update (after an outage, or a failed write). */
  #recheck = false

  constructor (host: ClusterHost, connections: RedisConnections, keys: RedisKeys, options: RedisPresenceOptions) {
    this.#host = host
    this.#connections = connections
    this.#keys = keys
    this.#options = options
    this.#nodeId = host.nodeId
    this.roomsKey = keys.presenceRooms(this.#nodeId)
  }

  get #client (): RedisConnection {
    return this.#connections.client
  }

  #entriesKeyOf (nodeId: string, room: string): string {
    return this.#keys.presence(nodeId, room)
  }

  #roomsKeyOf (nodeId: string): string {
    return this.#keys.presenceRooms(nodeId)
  }

  #claimKeyOf (nodeId: string): string {
    return this.#keys.reaped(nodeId)
  }

  #occupiedKeyOf (room: string): string {
    return this.#keys.occupied(room)
  }

  get #lifetime (): number {
    return LIFETIMES * this.#options.nodeTimeout
  }

  changed (room: string, sessionId: string, info: string | null): void {
    let sessions = this.#changed.get(room)
    if (sessions === undefined) {
      sessions = new Map()
      this.#changed.set(room, sessions)
    }
    sessions.set(sessionId, info)
  }

  /** Redis may have lost this node's state: write it whole, and check every room's occupancy, next time. */
  rewriteAll (): void {
    this.#rewrite = true
    this.#recheck = true
  }

  /** The update that held the last write failed: which entries were written is not known. */
  writeFailed (): void {
    this.#rewrite = true
  }

  /**
   * Adds to the update's MULTI the writes of this node's entries: those that changed, or all
   * of them. `isNew`: a room that got its first member here since the last update.
   */
  write (state: Multi, isNew: (room: string) => boolean): void {
    const changed = this.#changed
    this.#changed = new Map()
    const rewrite = this.#rewrite
    this.#rewrite = false
    const lifetime = this.#lifetime
    for (const room of changed.keys()) {
      if (this.#host.memberCount(room) === 0) {
        state.del(this.#entriesKeyOf(this.#nodeId, room))
        state.sRem(this.roomsKey, room)
      }
    }
    if (rewrite) {
      // What Redis holds may be stale or gone: this node's rooms, written whole.
      for (const room of this.#host.roomNames()) {
        const key = this.#entriesKeyOf(this.#nodeId, room)
        state.del(key)
        state.hSet(key, this.#host.localPresence(room).map((entry) => [entry.sessionId, entry.info]))
        state.pExpire(key, lifetime)
        state.sAdd(this.roomsKey, room)
      }
      state.pExpire(this.roomsKey, lifetime)
      return
    }
    for (const [room, sessions] of changed) {
      if (this.#host.memberCount(room) === 0) continue
      const key = this.#entriesKeyOf(this.#nodeId, room)
      const set: Array<[string, string]> = []
      const removed: string[] = []
      for (const [sessionId, info] of sessions) {
        if (info === null) removed.push(sessionId)
        else set.push([sessionId, info])
      }
      if (set.length > 0) state.hSet(key, set)
      if (removed.length > 0) state.hDel(key, removed)
      // A new room has a new key; the heartbeat keeps the others alive.
      if (isNew(room)) {
        state.pExpire(key, lifetime)
        state.sAdd(this.roomsKey, room)
        state.pExpire(this.roomsKey, lifetime)
      }
    }
  }

  /**
   * Lists this node in the sets of the rooms it got members in, and out of those it has none
   * in any more, telling a room occupied or vacated when this node was the first or the last.
   */
  async updateOccupancy (rooms: string[]): Promise<void> {
    const candidates = new Set(rooms)
    if (this.#recheck) {
      this.#recheck = false
      for (const room of this.#host.roomNames()) candidates.add(room)
      for (const room of this.#occupying) candidates.add(room)
    }
    const added: string[] = []
    const removed: string[] = []
    for (const room of candidates) {
      const occupied = this.#host.memberCount(room) > 0
      if (occupied && !this.#occupying.has(room)) added.push(room)
      else if (!occupied && this.#occupying.has(room)) removed.push(room)
    }
    if (added.length === 0 && removed.length === 0) return
    // A MULTI per room: each room's set has a hash slot of its own on a cluster.
    const steps = [
      ...added.map((room) => this.#client.multi().sAdd(this.#occupiedKeyOf(room), this.#nodeId).pExpire(this.#occupiedKeyOf(room), this.#lifetime).sCard(this.#occupiedKeyOf(room)).exec()),
      ...removed.map((room) => this.#client.multi().sRem(this.#occupiedKeyOf(room), this.#nodeId).sCard(this.#occupiedKeyOf(room)).exec())
    ]
    const replies = await Promise.allSettled(steps)
    const failed = replies.find((reply) => reply.status === 'rejected')
    added.forEach((room, i) => {
      const reply = replies[i]!
      if (reply.status === 'rejected') return
      this.#occupying.add(room)
      if (Number(reply.value[2]) === 1) this.#host.roomOccupied(room)
    })
    removed.forEach((room, i) => {
      const reply = replies[added.length + i]!
      if (reply.status === 'rejected') return
      this.#occupying.delete(room)
      if (Number(reply.value[0]) === 1 && Number(reply.value[1]) === 0) this.#host.roomVacated(room)
    })
    if (failed !== undefined) {
      this.#recheck = true
      throw failed.reason
    }
  }

  /**
   * Adds to the heartbeat's MULTI on this node's keys: first whether this node was taken for
   * dead (see takenForDead), then the expiries it pushes back; and pushes back those of the
   * rooms' occupancy sets (each in its room's hash slot).
   */
  refresh (beat: Multi): Promise<unknown> {
    const lifetime = this.#lifetime
    beat.get(this.#claimKeyOf(this.#nodeId)).pExpire(this.roomsKey, lifetime)
    for (const room of this.#host.roomNames()) beat.pExpire(this.#entriesKeyOf(this.#nodeId, room), lifetime)
    return Promise.all([...this.#occupying].map((room) => this.#client.pExpire(this.#occupiedKeyOf(room), lifetime)))
  }

  /**
   * Reads the heartbeat's answer at `at`, where refresh() began: when another node took this
   * one for dead (it could not beat for nodeTimeout) and told its members gone, they are told
   * back, and written again at the next update, which the caller queues. True then.
   */
  takenForDead (replies: unknown[], at: number): boolean {
    if (replies[at] === null || replies[at] === undefined) return false
    this.#client.del(this.#claimKeyOf(this.#nodeId)).catch(() => {})
    this.#host.log.warn(`fastify-websocket-rooms: node ${this.#nodeId} was taken for dead by the cluster (no heartbeat for nodeTimeout); its members are told back`)
    this.#rewrite = true
    // The survivor took this node out of its rooms' occupancy too: in again, and told if first.
    this.#occupying.clear()
    this.#recheck = true
    for (const room of this.#host.roomNames()) this.#host.presenceJoined(room, this.#host.localPresence(room))
    return true
  }

  /**
   * Tells the leaves of a dead node's members, and the rooms it was the last in, if this node
   * is the first to claim it: each claim is a key only one node can set, so the cluster tells
   * them once.
   */
  async reap (nodeId: string): Promise<void> {
    const claimed = await this.#client.set(this.#claimKeyOf(nodeId), this.#nodeId, { NX: true, PX: 4 * this.#options.nodeTimeout })
    if (claimed === null) return
    const roomsKey = this.#roomsKeyOf(nodeId)
    const rooms = [...await this.#client.sMembers(roomsKey)].map(String)
    const hashes = await Promise.all(rooms.map((room) => this.#client.hGetAll(this.#entriesKeyOf(nodeId, room))))
    // The dead node's keys in one MULTI (its hash slot), each room's set in one of its own.
    const cleanup = this.#client.multi().del(roomsKey)
    for (const room of rooms) cleanup.del(this.#entriesKeyOf(nodeId, room))
    const [, , vacated] = await Promise.all([
      cleanup.exec(),
      this.#client.zRem(this.#keys.nodes, nodeId),
      Promise.all(rooms.map((room) => this.#client.multi().sRem(this.#occupiedKeyOf(room), nodeId).sCard(this.#occupiedKeyOf(room)).exec()))
    ])
    rooms.forEach((room, i) => {
      const entries = pairsOf(hashes[i]).map(([sessionId, info]) => ({ sessionId, nodeId, info }))
      if (entries.length > 0) this.#host.presenceLeft(room, entries)
      if (Number(vacated[i]![0]) === 1 && Number(vacated[i]![1]) === 0) this.#host.roomVacated(room)
    })
  }

  /** Every node's entries of a room: this node's from memory, the other live nodes' from Redis. */
  async read (room: string): Promise<StoredEntry[]> {
    const nodes = (await this.#client.zRange(this.#keys.nodes, 0, -1)).map(String).filter((nodeId) => nodeId !== this.#nodeId)
    // A node's count says whether it is alive (its hash expires with it) and has members here;
    // read with its entries in one MULTI, in its hash slot.
    const replies = await Promise.all(nodes.map((nodeId) => this.#client.multi().hGet(this.#keys.node(nodeId), room).hGetAll(this.#entriesKeyOf(nodeId, room)).exec()))
    const entries = this.#host.localPresence(room)
    nodes.forEach((nodeId, i) => {
      const [count, hash] = replies[i] as unknown[]
      if (count === null || count === undefined || Number(count) === 0) return
      for (const [sessionId, info] of pairsOf(hash)) entries.push({ sessionId, nodeId, info })
    })
    return entries
  }
}

/** A hash's fields and values, as RESP2 (an object) or RESP3 (a Map) gives them. */
function pairsOf (reply: unknown): Array<[string, string]> {
  if (reply instanceof Map) return [...reply].map(([field, value]) => [String(field), String(value)])
  if (reply === null || typeof reply !== 'object') return []
  return Object.entries(reply).map(([field, value]) => [field, String(value)])
}

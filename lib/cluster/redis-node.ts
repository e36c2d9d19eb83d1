// One Fastify instance as a node of a cluster that shares rooms through Redis: its state in
// Redis (counts, presence, heartbeat, dead nodes), its connections' health, and the reads of
// the cluster's counts and presence; its pub/sub is ./redis-bus's.
//
// Over 400 lines, for a reason: the state updates, the heartbeat, the connections' health
// and the reads all wait on one update chain and read one up/down state and one set of
// rooms to write; apart, each would need them made reachable from outside.
//
// Interest routing: one channel per room, `{<keyPrefix>:room:<name>}`, subscribed while the room
// has members on this node. Membership changes are gathered and applied once per turn of the
// event loop (one SUBSCRIBE, one UNSUBSCRIBE, one MULTI of this node's state for all of them).
//
// Cluster counts without request/response: each node keeps its rooms' local member counts in
// a hash, `{<keyPrefix>:node:<nodeId>}`, whose expiry every heartbeat pushes back, and lists
// itself in `{<keyPrefix>}:nodes`. A count is the sum of the hashes that still exist, so a node
// that died without cleaning up stops counting when its hash expires (nodeTimeout). Which keys
// share a hash slot on Redis Cluster, and why, is ./redis-keys'. Presence entries and the
// rooms' life cycle are kept the same way (./redis-presence).
//
// Commands for every node (to(...).broadcast, disconnectAll, disconnectSession) go on one
// control channel, `<keyPrefix>:control`, which every node subscribes to.
//
// Published messages (publish(), with the history option) are written and PUBLISHed by a
// script (./redis-log), on the room's channel too, and delivered by every node from there,
// the publishing node included, so that each delivers them in offset order; a node that
// missed some (its subscriber connection dropped) reads them back (./published-order).
//
// Delivery across nodes is at most once: while Redis is away broadcasts reach this node's
// members only (counted in publishFailed), and nothing is queued for later.
import type { WebsocketRoomsClusterStats } from '../../types/index'
import type { ClusterHost, ClusterLink, ControlCommand, StoredEntry } from '../rooms/port'
import { callHook } from '../call-hook'
import { RedisUnavailableError } from '../errors'
import type { Encoded } from '../transport/frame'
import { within } from '../within'
import { RedisBus } from './redis-bus'
import { RedisConnections, type ConnectionSource, type RedisConnection } from './redis-connections'
import { RedisKeys } from './redis-keys'
import { RedisLog, type RedisLogNode } from './redis-log'
import { LIFETIMES, RedisPresence } from './redis-presence'
import { RedisResumes } from './redis-resumes'
import { channels } from '../observability/channels'

export interface RedisNodeOptions extends ConnectionSource {
  keyPrefix: string
  /** Sharded pub/sub; null: as the engine prefers (a cluster's yes, one Redis's no). */
  sharded: boolean | null
  nodeHeartbeat: number
  nodeTimeout: number
  maxPublishBacklog: number
  onError: ((error: Error) => void) | null
  onReady: (() => void) | null
}

const NO_ROOMS: ReadonlySet<string> = new Set()

/** The heartbeat's replies, by the command that gave each: on the list of nodes, and on this node's keys (see #beat). */
const Beat = Object.freeze({ Listed: 0, Dead: 1, Pruned: 2 } as const)
const OwnBeat = Object.freeze({ Expiry: 0, Presence: 1 } as const)

/** Publishes waiting for Redis on one node past which publish() fails at once. */
const MAX_WAITING_PUBLISHES = 10_000

export class RedisNode implements ClusterLink, RedisLogNode {
  readonly nodeId: string
  readonly history: RedisLog | null
  readonly #bus: RedisBus
  readonly #host: ClusterHost
  readonly #options: RedisNodeOptions
  readonly #connections: RedisConnections
  readonly #keys: RedisKeys
  readonly #nodesKey: string
  readonly #nodeKey: string
  /** Rooms whose local membership changed since the state in Redis was last written. */
  readonly #dirty = new Set<string>()
  /** The rooms the update in flight writes and (un)subscribes. */
  #updating: ReadonlySet<string> = NO_ROOMS
  /** Its members' presence entries and its rooms' life cycle, in Redis. */
  readonly #presence: RedisPresence
  /** The scheduled or running update of the state in Redis; updates run one after the other. */
  #updates: Promise<void> | null = null
  #updateQueued = false
  #heartbeat: NodeJS.Timeout | null = null
  /** Both connections are ready; false from their first error until both are ready again. */
  #up = false
  /** Call onReady once the next update has gone through. */
  #announceReady = false
  #closed = false
  /** close() gave up waiting for Redis and cut the connections. */
  #cut = false
  /** Redis has been away since start: say so when it is back. */
  #wasDown = false
  #sharded = false
  /** When the outage being reported began (Date.now()), or 0. */
  #downSince = 0

  constructor (host: ClusterHost, options: RedisNodeOptions) {
    this.#host = host
    this.nodeId = host.nodeId
    this.#options = options
    this.#connections = new RedisConnections(options, { onError: this.#onConnectionError, onReady: this.#onConnectionReady })
    this.#keys = new RedisKeys(options.keyPrefix)
    this.#bus = new RedisBus(this, host, this.#connections, this.#keys, options)
    this.#nodesKey = this.#keys.nodes
    this.#nodeKey = this.#keys.node(this.nodeId)
    this.#presence = new RedisPresence(host, this.#connections, this.#keys, { nodeTimeout: options.nodeTimeout })
    this.history = host.history === null
      ? null
      : new RedisLog(this, this.#connections, this.#keys, {
        ...host.history,
        connectTimeout: options.connectTimeout,
        maxWaiting: MAX_WAITING_PUBLISHES
      })
    if (this.history !== null) this.#bus.orderPublished(this.history, host.history!.size)
  }

  deliveredHere (name: string, epoch: string, offset: number): Promise<void> {
    return this.#bus.deliveredHere(name, epoch, offset)
  }

  get up (): boolean {
    return this.#up
  }

  get closed (): boolean {
    return this.#closed
  }

  get sharded (): boolean {
    return this.#sharded
  }

  /** Commands, routed on a cluster to the shard of their first key. */
  get #client (): RedisConnection {
    return this.#connections.client
  }

  channelOf (name: string): string {
    return this.#bus.channelOf(name)
  }

  /**
   * Resolves once this node, when it has members in the room, is subscribed to its channel:
   * a publish or a history read sent after that is followed by every message published after it.
   */
  async subscribedFor (name: string): Promise<void> {
    // A room subscribed now may be on its way out: its last member left, and the UNSUBSCRIBE
    // is queued or in flight. Then the next update subscribes it again.
    while (this.#up && this.#updates !== null && this.#host.memberCount(name) > 0 &&
      (!this.#bus.isSubscribed(name) || this.#dirty.has(name) || this.#updating.has(name))) await this.#updates
  }

  async start (): Promise<void> {
    await this.#connections.open(this.#options.connectTimeout)
    this.#sharded = this.#options.sharded ?? this.#connections.engine.shardedByDefault
    this.#onConnectionReady()
    await this.#updates
    this.#heartbeat = setInterval(this.#beat, this.#options.nodeHeartbeat).unref()
  }

  readonly #onConnectionError = (error: Error): void => {
    // Until onReady has been announced, an error is part of the outage already reported: one
    // connection may notice the loss only after the other has reconnected.
    if (!this.#up || this.#announceReady) {
      this.#up = false
      this.#host.log.debug({ err: error }, 'fastify-websocket-rooms: Redis still unreachable')
      return
    }
    this.#up = false
    this.#wasDown = true
    this.#downSince = Date.now()
    if (channels.redisDown.hasSubscribers) channels.redisDown.publish({ nodeId: this.nodeId, error })
    this.#report(error, 'lost its Redis connection; broadcasts reach this node only until it is back')
  }

  readonly #onConnectionReady = (): void => {
    if (this.#closed || this.#up || !this.#connections.ready) return
    if (this.#wasDown) this.#host.log.info('fastify-websocket-rooms: Redis is back; resubscribing this node\'s rooms')
    if (this.#downSince !== 0) {
      if (channels.redisUp.hasSubscribers) channels.redisUp.publish({ nodeId: this.nodeId, downFor: Date.now() - this.#downSince })
      this.#downSince = 0
    }
    this.#up = true
    // Redis may have lost everything (a restart): write the whole state again, and subscribe
    // every room again (subscribing twice to a channel is harmless).
    this.#bus.resubscribe()
    for (const name of this.#host.roomNames()) this.#dirty.add(name)
    this.#presence.rewriteAll()
    this.#announceReady = true
    this.#queueUpdate()
  }

  #report (error: Error, what: string): void {
    // After close() cut the connections, what was in flight fails: that is no news.
    if (this.#cut) {
      this.#host.log.debug({ err: error }, `fastify-websocket-rooms: node ${this.nodeId} ${what} (closed)`)
      return
    }
    this.#host.log.error({ err: error }, `fastify-websocket-rooms: node ${this.nodeId} ${what}`)
    if (this.#options.onError !== null) callHook(this.#options.onError, [error], this.#hookFailed('onError'))
  }

  /**
   * A command that failed. One in flight when the connection dropped (a heartbeat, an update)
   * fails after the loss was reported: it is part of that outage, not news.
   */
  #commandFailed (error: Error, what: string): void {
    if (!this.#up) {
      this.#host.log.debug({ err: error }, `fastify-websocket-rooms: node ${this.nodeId} ${what} (Redis unreachable)`)
      return
    }
    this.#report(error, what)
  }

  #hookFailed (name: string): (error: unknown) => void {
    return (error) => { this.#host.log.error({ err: error }, `fastify-websocket-rooms: redisAdapter ${name} failed`) }
  }

  roomChanged (name: string): void {
    this.#dirty.add(name)
    this.#queueUpdate()
  }

  presenceChanged (name: string, sessionId: string, info: string | null): void {
    this.#presence.changed(name, sessionId, info)
    this.#dirty.add(name)
    this.#queueUpdate()
  }

  #queueUpdate (): void {
    if (this.#updateQueued || this.#closed) return
    this.#updateQueued = true
    const update = (this.#updates ?? Promise.resolve())
      .then(nextTurn)
      .then(() => {
        this.#updateQueued = false
        return this.#update()
      })
    this.#updates = update
    update.finally(() => {
      if (this.#updates === update) this.#updates = null
    }).catch(() => {}) // #update never rejects
  }

  /** Writes the changed rooms' counts and (un)subscribes their channels. Never rejects. */
  async #update (): Promise<void> {
    if (!this.#up) return // the rooms stay dirty; a ready connection queues an update
    const names = [...this.#dirty]
    this.#dirty.clear()
    this.#updating = new Set(names)
    try {
      await this.#apply(names)
    } finally {
      this.#updating = NO_ROOMS
    }
  }

  /** Writes these rooms' counts and presence, and (un)subscribes their channels. */
  async #apply (names: string[]): Promise<void> {
    const counts = new Map<string, number>()
    const emptied: string[] = []
    const subscribe: string[] = []
    const unsubscribe: string[] = []
    for (const name of names) {
      const members = this.#host.memberCount(name)
      if (members > 0) {
        counts.set(name, members)
        if (!this.#bus.isSubscribed(name)) subscribe.push(name)
      } else {
        emptied.push(name)
        if (this.#bus.isSubscribed(name)) unsubscribe.push(name)
      }
    }
    // This node's keys share a hash slot (./redis-keys): one MULTI; the list of nodes is elsewhere.
    const state = this.#client.multi()
    if (counts.size > 0) state.hSet(this.#nodeKey, counts)
    if (emptied.length > 0) state.hDel(this.#nodeKey, emptied)
    state.pExpire(this.#nodeKey, this.#options.nodeTimeout)
    // A room this node is not subscribed to yet is new here.
    this.#presence.write(state, (name) => !this.#bus.isSubscribed(name))
    const listed = this.#client.zAdd(this.#nodesKey, { score: Date.now(), value: this.nodeId })
    try {
      await Promise.all([state.exec(), listed, this.#bus.subscribe(subscribe), this.#bus.unsubscribe(unsubscribe)])
    } catch (error) {
      for (const name of names) this.#dirty.add(name)
      this.#presence.writeFailed()
      this.#commandFailed(error as Error, 'could not update its rooms in Redis; it tries again on its next heartbeat')
      return
    }
    this.#bus.subscribed(subscribe, unsubscribe)
    if (this.#host.tracksOccupancy) {
      try {
        await this.#presence.updateOccupancy(names)
      } catch (error) {
        this.#commandFailed(error as Error, 'could not update its rooms\' occupancy in Redis; it tries again with its next update')
      }
    }
    if (this.#announceReady && this.#dirty.size === 0) {
      this.#announceReady = false
      // Subscribed again: what the rooms missed while Redis was away is read from their history.
      this.#bus.catchUp()
      if (this.#options.onReady !== null) callHook(this.#options.onReady, [], this.#hookFailed('onReady'))
    }
  }

  command (command: ControlCommand): Promise<void> {
    return this.#bus.command(command)
  }

  /** Resume across the servers sharing this Redis (../resume/store's ResumeStore). */
  resumeStore<S> (window: number): RedisResumes<S> {
    const { connectTimeout, nodeTimeout } = this.#options
    return new RedisResumes<S>(this, this.#host.log, this.#connections, this.#keys, { connectTimeout, nodeTimeout, lifetimes: LIFETIMES, window })
  }

  readonly #beat = (): void => {
    if (!this.#up) return
    if (this.#dirty.size > 0) this.#queueUpdate()
    const now = Date.now()
    // In the order of Beat and OwnBeat, which read their replies: one MULTI on the list of
    // nodes, one on this node's keys (a hash slot each on a cluster), and the rooms' occupancy.
    const nodes = this.#client.multi()
      .zAdd(this.#nodesKey, { score: now, value: this.nodeId })
      // Nodes that stopped beating a nodeTimeout ago: dead, their presence to be told gone.
      .zRangeByScore(this.#nodesKey, '-inf', now - this.#options.nodeTimeout)
      // Entries of nodes long gone; their hashes expired already, so they count for nothing.
      .zRemRangeByScore(this.#nodesKey, '-inf', now - 4 * this.#options.nodeTimeout)
      // The last server out may have left it to expire (#expireHolders).
      .persist(this.#nodesKey)
    const own = this.#client.multi().pExpire(this.#nodeKey, this.#options.nodeTimeout)
    const occupancy = this.#presence.refresh(own)
    Promise.all([nodes.exec(), own.exec(), occupancy])
      .then(([replies, ownReplies]) => {
        // The hash expired (Redis was away longer than nodeTimeout): write it again.
        if (Number(ownReplies[OwnBeat.Expiry]) === 0) {
          this.#presence.rewriteAll()
          this.#markAllDirty()
        }
        if (this.#presence.takenForDead(ownReplies, OwnBeat.Presence)) this.#markAllDirty()
        // Only a node that has something to tell claims the dead: one that does not would win
        // the claim and tell nobody. Their entries expire by themselves meanwhile.
        const tells = this.#host.tracksPresence || this.#host.tracksOccupancy
        const dead = tells ? [...replies[Beat.Dead] as unknown as Iterable<unknown>].map(String).filter((nodeId) => nodeId !== this.nodeId) : []
        for (const nodeId of dead) this.#presence.reap(nodeId).catch((error: Error) => { this.#commandFailed(error, `could not read the presence of dead node ${nodeId}`) })
      }, (error: Error) => {
        this.#commandFailed(error, 'could not send its heartbeat to Redis')
      })
  }

  #markAllDirty (): void {
    let any = false
    for (const name of this.#host.roomNames()) {
      this.#dirty.add(name)
      any = true
    }
    if (any) this.#queueUpdate()
  }

  publish (name: string, encoded: Encoded): void {
    this.#bus.publish(name, encoded)
  }

  /**
   * Members of a room on every node. Rejects with FST_WS_ROOMS_REDIS_UNAVAILABLE when Redis is
   * away, fails, or gives no answer within connectTimeout (a stall: node-redis's own timeout
   * does not cover every command, MULTI among them, and this count waits for the last one).
   */
  async clusterMembers (name: string): Promise<number> {
    const what = `cannot count the members of room "${name}" across the cluster`
    const ms = this.#options.connectTimeout
    let count: number | null
    try {
      count = await within(this.#count(name, what), ms, null)
    } catch (error) {
      throw error instanceof RedisUnavailableError ? error : new RedisUnavailableError(`${what}: ${String((error as Error)?.message ?? error)}`)
    }
    if (count === null) throw new RedisUnavailableError(`${what}: no answer within connectTimeout (${ms} ms)`)
    return count
  }

  /**
   * Every node's presence entries of a room: this node's from memory, the others' from Redis.
   * With Redis away, or no answer within connectTimeout, this node's alone, complete: false.
   */
  async presence (name: string): Promise<{ entries: StoredEntry[], complete: boolean }> {
    const local = (): { entries: StoredEntry[], complete: boolean } => ({ entries: this.#host.localPresence(name), complete: false })
    try {
      return await within(this.#readPresence(name), this.#options.connectTimeout, null) ?? local()
    } catch (error) {
      this.#host.log.debug({ err: error }, 'fastify-websocket-rooms: presence read from this node only')
      return local()
    }
  }

  async #readPresence (name: string): Promise<{ entries: StoredEntry[], complete: boolean } | null> {
    if (!this.#up) return null
    await this.#updates
    if (!this.#up) return null
    return { entries: await this.#presence.read(name), complete: true }
  }

  async #count (name: string, what: string): Promise<number> {
    // This node's own changes first, so a count read after a join includes it.
    await this.#updates
    if (!this.#up) throw new RedisUnavailableError(what)
    const nodes = await this.#client.zRange(this.#nodesKey, 0, -1)
    const counts = await Promise.all(nodes.map((nodeId) => this.#client.hGet(this.#keys.node(String(nodeId)), name)))
    let total = 0
    for (const count of counts) total += count === null ? 0 : Number(count)
    return total
  }

  stats (): WebsocketRoomsClusterStats {
    return { nodeId: this.nodeId, connected: this.#up, ...this.#bus.stats() }
  }

  /**
   * Leaves the cluster, waiting for Redis at most connectTimeout: a Redis that stalls (a
   * frozen process, a network that drops packets) must not hang app.close(). Past it the
   * connections opened here are cut, pending commands and all; this node's entry then
   * expires after nodeTimeout, as a crashed node's does.
   */
  async close (): Promise<void> {
    if (this.#closed) return
    this.history?.close()
    this.#bus.close()
    const gaveUp = await within(this.#leave().then(() => false), this.#options.connectTimeout, true)
    if (!gaveUp) return
    this.#closed = true
    this.#cut = true
    this.#up = false
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat)
    this.#host.log.warn(`fastify-websocket-rooms: node ${this.nodeId} got no answer from Redis within connectTimeout (${this.#options.connectTimeout} ms) while leaving the cluster; its connections are cut and its entry expires after nodeTimeout`)
    this.#connections.cut()
  }

  async #leave (): Promise<void> {
    // The sessions are closed by now: the last update unsubscribes their rooms.
    await this.#updates
    if (this.#closed) return
    this.#closed = true
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat)
    if (this.#up) {
      try {
        await Promise.all([
          this.#client.multi().del(this.#nodeKey).del(this.#presence.roomsKey).exec(),
          this.#client.zRem(this.#nodesKey, this.nodeId).then(() => this.#expireHolders()),
          this.#bus.unsubscribeAll()
        ])
      } catch (error) {
        this.#report(error as Error, 'could not remove itself from Redis; its entry expires after nodeTimeout')
      }
    }
    this.#up = false
    await this.#connections.release()
  }

  /**
   * The last server out, with holders of parked sessions left in the list of nodes: no server
   * will prune them, so the list expires once they would have been (a server that joins
   * before takes the expiry off with its heartbeat).
   */
  async #expireHolders (): Promise<void> {
    const left = await this.#client.zRangeWithScores(this.#nodesKey, 0, -1)
    if (left.length === 0 || !left.every(({ value }) => this.#keys.isHolder(String(value)))) return
    const last = Math.max(...left.map(({ score }) => Number(score)))
    await this.#client.pExpireAt(this.#nodesKey, Math.ceil(last + 4 * this.#options.nodeTimeout))
  }
}

function nextTurn (): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

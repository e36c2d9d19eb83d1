// A Redis Cluster, through node-redis's cluster client: it sends each command to the master of
// its key's slot (following MOVED and ASK while slots migrate), keeps a connection per shard
// for sharded pub/sub and moves a channel's subscription when its slot moves, and finds the
// new master when a replica is promoted. What this adds: SSUBSCRIBE one channel at a time
// (a room's channel lives on its own shard), scripts sent to their keys' shard, and one
// up/down state for the whole cluster: Redis is away while any shard's connection is.
import { RESP_TYPES, createCluster, type RedisClusterOptions } from '@redis/client'
import { withoutCommandTimeout, type ConnectionSource, type RedisClusterConnection, type RedisConnection, type RedisEngine } from './redis-connections'

type PubSubListener = (message: Buffer, channel: Buffer) => void
interface NodeAddress { host: string, port: number }

export class ClusterRedis implements RedisEngine {
  readonly cluster: RedisClusterConnection
  readonly client: RedisConnection
  readonly publisher: RedisConnection
  readonly shardedByDefault = true
  #buffers: RedisClusterConnection | null = null
  readonly #owned: boolean
  /** The nodes (by address) whose connection failed and is not ready again. */
  readonly #down = new Set<string>()
  #onError: ((error: Error) => void) | null = null
  #onReady: (() => void) | null = null

  constructor (source: ConnectionSource, options: RedisClusterOptions | null) {
    if (options === null) {
      this.cluster = source.client as RedisClusterConnection
      this.#owned = false
    } else {
      // As for one Redis: no offline queue (it has no bound), a backoff up to 2 s; and the
      // topology read again soon after a shard's connection drops (a replica may be its master now).
      const socket = { connectTimeout: source.connectTimeout, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000), ...options.defaults?.socket }
      this.cluster = createCluster({
        topologyRefreshOnReconnectionAttemptStrategy: 500,
        ...options,
        defaults: { disableOfflineQueue: true, ...options.defaults, socket: socket as NonNullable<RedisClusterOptions['defaults']>['socket'] }
      }) as RedisClusterConnection
      this.#owned = true
    }
    // Its typed commands are a client's, routed by their first key.
    this.client = this.cluster as unknown as RedisConnection
    this.publisher = withoutCommandTimeout(this.cluster) as unknown as RedisConnection
  }

  /** Ready, and no master of the topology as the client knows it now has a failed connection. */
  get ready (): boolean {
    return this.cluster.isReady && !this.cluster.masters.some((master) => this.#down.has(`${master.host}:${master.port}`))
  }

  readonly #nodeError = (error: Error, node: NodeAddress): void => {
    this.#down.add(`${node.host}:${node.port}`)
    // A node that no longer serves slots (a master replaced by its replica) is no outage.
    if (this.cluster.masters.some((master) => master.host === node.host && master.port === node.port)) this.#onError?.(error)
  }

  readonly #nodeBack = (node: NodeAddress): void => {
    // Ready again, or gone from the topology (its slots have a new master).
    this.#down.delete(`${node.host}:${node.port}`)
    if (this.ready) this.#onReady?.()
  }

  readonly #clusterError = (error: Error): void => {
    this.#onError?.(error)
    // Not a connection of its own (a failed topology read): no ready event follows.
    if (this.ready) queueMicrotask(() => { if (this.ready) this.#onReady?.() })
  }

  /** The cluster client's connect while in flight (opened here). */
  #connecting: Promise<unknown> | null = null

  async connect (onError: (error: Error) => void): Promise<boolean> {
    this.#onError = onError
    this.cluster.on('error', this.#clusterError)
    this.cluster.on('node-error', this.#nodeError)
    this.cluster.on('node-ready', this.#nodeBack)
    this.cluster.on('node-disconnect', this.#nodeBack)
    if (this.cluster.isReady) return false
    if (!this.cluster.isOpen) {
      const connecting = this.#connecting = this.cluster.connect()
      await connecting
      this.#connecting = null
    } else await new Promise((resolve) => this.cluster.once('connect', resolve))
    return false
  }

  listen (onReady: () => void): void {
    this.#onReady = onReady
  }

  send (key: string, args: Array<string | Buffer>, buffers: boolean): Promise<unknown> {
    const cluster = buffers ? (this.#buffers ??= this.cluster.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) as RedisClusterConnection) : this.cluster
    return cluster.sendCommand(key, false, args)
  }

  subscribe (sharded: boolean, channels: string[], listener: PubSubListener): Promise<unknown> {
    // An SSUBSCRIBE names channels of one slot only.
    return sharded
      ? Promise.all(channels.map((channel) => this.cluster.sSubscribe(channel, listener, true)))
      : this.cluster.subscribe(channels, listener, true)
  }

  unsubscribe (sharded: boolean, channels: string[], listener: PubSubListener): Promise<unknown> {
    return sharded
      ? Promise.all(channels.map((channel) => this.cluster.sUnsubscribe(channel, listener, true)))
      : this.cluster.unsubscribe(channels, listener as (message: Buffer | string, channel: Buffer | string) => void, true)
  }

  async release (): Promise<void> {
    this.#stopListening()
    if (this.#owned && this.cluster.isOpen) await this.cluster.close()
  }

  cut (): void {
    this.#stopListening()
    if (!this.#owned) return
    if (this.cluster.isOpen) this.cluster.destroy()
    // A connect cut short by connectTimeout finishes its discovery later and leaves the nodes'
    // clients open, which would keep the process alive: they go once it settles.
    this.#connecting?.then(() => { this.cluster.destroy() }, () => {})
  }

  #stopListening (): void {
    this.#onReady = null
    this.cluster.off('node-ready', this.#nodeBack)
    this.cluster.off('node-disconnect', this.#nodeBack)
    // A cluster opened here keeps its error listeners: a late error must not go uncaught.
    if (this.#owned) return
    this.cluster.off('error', this.#clusterError)
    this.cluster.off('node-error', this.#nodeError)
  }
}

// One Redis (a primary, with or without replicas): a connection for commands and publishing,
// one for subscriptions (a subscribed connection runs nothing else). Finds out whether it is a
// Redis Cluster node: then ./redis-connections opens a cluster instead, or refuses a client of
// the app's, which talks to that one node only.
import { ErrorReply, RESP_TYPES, createClient } from '@redis/client'
import { RedisClusterUnsupportedError, RedisUnavailableError } from '../errors'
import { within } from '../within'
import { withoutCommandTimeout, type ConnectionSource, type RedisConnection, type RedisEngine } from './redis-connections'

type PubSubListener = (message: Buffer, channel: Buffer) => void

export class StandaloneRedis implements RedisEngine {
  readonly client: RedisConnection
  readonly publisher: RedisConnection
  readonly subscriber: RedisConnection
  readonly shardedByDefault = false
  /** The client with Redis's strings read as Buffers, made on first use. */
  #buffers: RedisConnection | null = null
  /** The connections opened here, and closed here; the app's own are left open. */
  readonly #owned: RedisConnection[]
  readonly #ownsClient: boolean
  readonly #timeout: number
  #onError: ((error: Error) => void) | null = null
  #onReady: (() => void) | null = null

  constructor (source: ConnectionSource) {
    this.#timeout = source.connectTimeout
    if (source.client === null) {
      // Our own connections never queue commands while Redis is away: that queue has no bound.
      this.client = createClient({
        url: source.url!,
        disableOfflineQueue: true,
        socket: { connectTimeout: source.connectTimeout, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) }
      }) as RedisConnection
      this.subscriber = this.client.duplicate()
      this.#owned = [this.client, this.subscriber]
    } else {
      const client = source.client as RedisConnection
      this.client = client
      this.subscriber = source.subscriber ?? client.duplicate({ disableOfflineQueue: true })
      this.#owned = source.subscriber === null ? [this.subscriber] : []
    }
    this.#ownsClient = source.client === null
    this.publisher = withoutCommandTimeout(this.client)
  }

  get ready (): boolean {
    return this.client.isReady && this.subscriber.isReady
  }

  async connect (onError: (error: Error) => void): Promise<boolean> {
    this.#onError = onError
    for (const connection of [this.client, this.subscriber]) connection.on('error', onError)
    const ready = (connection: RedisConnection): Promise<unknown> => {
      if (connection.isReady) return Promise.resolve()
      if (!connection.isOpen) return connection.connect()
      return new Promise((resolve) => connection.once('ready', resolve))
    }
    await Promise.all([ready(this.client), ready(this.subscriber)])
    return await this.#isClusterNode()
  }

  listen (onReady: () => void): void {
    this.#onReady = onReady
    for (const connection of [this.client, this.subscriber]) connection.on('ready', onReady)
  }

  /**
   * A Redis Cluster's other nodes own other keys (MOVED) and would not get this node's
   * broadcasts: counts would fail and broadcasts be lost without a word. True (connections
   * released) when the adapter opened them from a URL, to be opened again as a cluster's; a
   * connection of the app's to one cluster node is refused.
   */
  async #isClusterNode (): Promise<boolean> {
    let cluster: boolean | null
    try {
      cluster = await within(isClusterNode(this.client), this.#timeout, null)
    } catch (error) {
      this.cut()
      throw new RedisUnavailableError(`INFO failed: ${String((error as Error)?.message ?? error)}`)
    }
    if (cluster === null) {
      this.cut() // Redis stalls: closing would wait for its answer
      throw new RedisUnavailableError(`no answer to INFO within connectTimeout (${this.#timeout} ms)`)
    }
    if (!cluster) return false
    await this.release()
    if (!this.#ownsClient) throw new RedisClusterUnsupportedError()
    return true
  }

  send (_key: string, args: Array<string | Buffer>, buffers: boolean): Promise<unknown> {
    const client = buffers ? (this.#buffers ??= withBuffers(this.client)) : this.client
    return client.sendCommand(args)
  }

  subscribe (sharded: boolean, channels: string[], listener: PubSubListener): Promise<unknown> {
    return sharded ? this.subscriber.sSubscribe(channels, listener, true) : this.subscriber.subscribe(channels, listener, true)
  }

  unsubscribe (sharded: boolean, channels: string[], listener: PubSubListener): Promise<unknown> {
    return sharded ? this.subscriber.sUnsubscribe(channels, listener, true) : this.subscriber.unsubscribe(channels, listener, true)
  }

  async release (): Promise<void> {
    this.#stopListening()
    await Promise.all(this.#owned.map(async (connection) => {
      if (connection.isReady) await connection.close()
      else if (connection.isOpen) connection.destroy()
    }))
  }

  cut (): void {
    this.#stopListening()
    for (const connection of this.#owned) {
      if (connection.isOpen) connection.destroy()
    }
  }

  #stopListening (): void {
    for (const connection of [this.client, this.subscriber]) {
      if (this.#onReady !== null) connection.off('ready', this.#onReady)
      // An owned connection keeps its error listener: a late error must not go uncaught.
      if (this.#onError !== null && !this.#owned.includes(connection)) connection.off('error', this.#onError)
    }
  }
}

function withBuffers (client: RedisConnection): RedisConnection {
  return client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) as RedisConnection
}

/** Whether Redis is a node of a Redis Cluster; false when it cannot tell (an ACL user allowed neither INFO nor CLUSTER INFO). */
async function isClusterNode (client: RedisConnection): Promise<boolean> {
  try {
    return /^cluster_enabled:1\b/m.test(String(await client.sendCommand(['INFO', 'cluster'])))
  } catch (error) {
    if (!(error instanceof ErrorReply)) throw error
  }
  // INFO is @dangerous, which ACL users often lack; CLUSTER INFO answers on a cluster node only.
  try {
    await client.sendCommand(['CLUSTER', 'INFO'])
    return true
  } catch (error) {
    if (!(error instanceof ErrorReply)) throw error
    return false
  }
}

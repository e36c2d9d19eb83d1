// A cluster node's two Redis connections: one for commands and publishing, one for
// subscriptions (a subscribed connection runs nothing else). Opens them with a bound on the
// wait, refuses a Redis Cluster, passes their errors and readiness on, and closes the ones
// the adapter opened itself.
import { ErrorReply, createClient, type RedisClientType } from '@redis/client'
import { RedisClusterUnsupportedError, RedisUnavailableError } from '../errors'
import { within } from '../within'

/** A node-redis client, whatever its modules, scripts and protocol. */
export type RedisConnection = RedisClientType<any, any, any, any, any>

export interface ConnectionSource {
  url: string | null
  client: RedisConnection | null
  subscriber: RedisConnection | null
  connectTimeout: number
}

export interface ConnectionListener {
  onError (error: Error): void
  onReady (): void
}

export class RedisConnections {
  readonly client: RedisConnection
  readonly subscriber: RedisConnection
  /** The connections opened here, and closed here; the app's own are left open. */
  readonly #owned: RedisConnection[]
  readonly #listener: ConnectionListener
  /** The last connection error, for the message when the first connection never comes. */
  #lastError: Error | null = null

  constructor (source: ConnectionSource, listener: ConnectionListener) {
    this.#listener = listener
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
      this.client = source.client
      this.subscriber = source.subscriber ?? source.client.duplicate({ disableOfflineQueue: true })
      this.#owned = source.subscriber === null ? [this.subscriber] : []
    }
  }

  get ready (): boolean {
    return this.client.isReady && this.subscriber.isReady
  }

  readonly #onError = (error: Error): void => {
    this.#lastError = error
    this.#listener.onError(error)
  }

  readonly #onReady = (): void => {
    this.#listener.onReady()
  }

  /**
   * Resolves once both connections are ready and Redis is not a Redis Cluster node; rejects
   * after `timeout` ms, or for a cluster node, with both released.
   */
  async open (timeout: number): Promise<void> {
    for (const connection of [this.client, this.subscriber]) connection.on('error', this.#onError)
    const ready = (connection: RedisConnection): Promise<unknown> => {
      if (connection.isReady) return Promise.resolve()
      if (!connection.isOpen) return connection.connect()
      return new Promise((resolve) => connection.once('ready', resolve))
    }
    const connected = Promise.all([ready(this.client), ready(this.subscriber)]).then(() => true)
    connected.catch(() => {}) // after a timeout it settles late, once the connections are released
    let opened: boolean
    try {
      opened = await within(connected, timeout, false)
    } catch (error) {
      await this.release()
      throw error
    }
    if (!opened) {
      await this.release()
      const why = this.#lastError === null ? 'no answer' : this.#lastError.message
      throw new RedisUnavailableError(`no connection within connectTimeout (${timeout} ms): ${why}`)
    }
    await this.#refuseCluster(timeout)
    // Told from now on, not before: the node starts only with a Redis it supports.
    for (const connection of [this.client, this.subscriber]) connection.on('ready', this.#onReady)
  }

  /**
   * A Redis Cluster's other nodes own other keys (MOVED) and would not get this node's
   * broadcasts: counts would fail and broadcasts be lost without a word. Refused until supported.
   */
  async #refuseCluster (timeout: number): Promise<void> {
    let cluster: boolean | null
    try {
      cluster = await within(isClusterNode(this.client), timeout, null)
    } catch (error) {
      this.cut()
      throw new RedisUnavailableError(`INFO failed: ${String((error as Error)?.message ?? error)}`)
    }
    if (cluster === null) {
      this.cut() // Redis stalls: closing would wait for its answer
      throw new RedisUnavailableError(`no answer to INFO within connectTimeout (${timeout} ms)`)
    }
    if (cluster) {
      await this.release()
      throw new RedisClusterUnsupportedError()
    }
  }

  /** Stops listening, and closes the connections opened here once their commands are answered. */
  async release (): Promise<void> {
    this.#stopListening()
    await Promise.all(this.#owned.map(async (connection) => {
      if (connection.isReady) await connection.close()
      else if (connection.isOpen) connection.destroy()
    }))
  }

  /** Stops listening, and closes the connections opened here at once: their pending commands fail. */
  cut (): void {
    this.#stopListening()
    for (const connection of this.#owned) {
      if (connection.isOpen) connection.destroy()
    }
  }

  #stopListening (): void {
    for (const connection of [this.client, this.subscriber]) {
      connection.off('ready', this.#onReady)
      // An owned connection keeps its error listener: a late error must not go uncaught.
      if (!this.#owned.includes(connection)) connection.off('error', this.#onError)
    }
  }
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

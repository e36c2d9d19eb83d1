// A server's connections to Redis, whatever Redis is: one Redis (./redis-standalone: a
// connection for commands, one for subscriptions) or a Redis Cluster (./redis-cluster: node-redis's
// cluster client, which routes each command to the shard of its key). Opens them with a bound
// on the wait, passes their errors and readiness on, and closes the ones the adapter opened.
// What differs between the two is behind RedisEngine; the rest of the adapter has one code
// path. A `url` that turns out to be a cluster node is opened again as a cluster's root node.
import type { RedisClientType, RedisClusterOptions, RedisClusterType } from '@redis/client'
import { RedisUnavailableError } from '../errors'
import { within } from '../within'
import { ClusterRedis } from './redis-cluster'
import { StandaloneRedis } from './redis-standalone'

/** A node-redis client, whatever its modules, scripts and protocol. */
export type RedisConnection = RedisClientType<any, any, any, any, any>
/** node-redis's Redis Cluster client, whatever its modules, scripts and protocol. */
export type RedisClusterConnection = RedisClusterType<any, any, any, any, any>

export interface ConnectionSource {
  url: string | null
  client: RedisConnection | RedisClusterConnection | null
  subscriber: RedisConnection | null
  /** Options of a Redis Cluster client the adapter creates (the `cluster` option). */
  cluster: RedisClusterOptions | null
  connectTimeout: number
}

export interface ConnectionListener {
  onError (error: Error): void
  onReady (): void
}

type PubSubListener = (message: Buffer, channel: Buffer) => void

/** What differs between one Redis and a Redis Cluster. */
export interface RedisEngine {
  /** Commands routed by their first key (a cluster's typed commands look like a client's). */
  readonly client: RedisConnection
  /** The same, with no timeout per command (for PUBLISH: see ./redis-bus). */
  readonly publisher: RedisConnection
  /** Both (or all) connections are ready. */
  readonly ready: boolean
  /** Sharded pub/sub unless told otherwise: a cluster's, so a room's messages stay on its shard. */
  readonly shardedByDefault: boolean
  /** Connects; resolves once ready; true when Redis turned out to be a cluster node this engine cannot serve. */
  connect (onError: (error: Error) => void): Promise<boolean>
  /** Starts telling readiness (after an outage) once started. */
  listen (onReady: () => void): void
  /** Runs a raw command (a script) on the shard of `key`, replies as Buffers with `buffers`. */
  send (key: string, args: Array<string | Buffer>, buffers: boolean): Promise<unknown>
  subscribe (sharded: boolean, channels: string[], listener: PubSubListener): Promise<unknown>
  unsubscribe (sharded: boolean, channels: string[], listener: PubSubListener): Promise<unknown>
  /** Closes the connections opened here once their commands are answered. */
  release (): Promise<void>
  /** Closes the connections opened here at once: their pending commands fail. */
  cut (): void
}

export function isClusterClient (value: unknown): value is RedisClusterConnection {
  return value !== null && typeof value === 'object' && typeof (value as RedisClusterConnection).getSlotMaster === 'function'
}

export class RedisConnections {
  #engine: RedisEngine
  readonly #source: ConnectionSource
  readonly #listener: ConnectionListener
  /** The last connection error, for the message when the first connection never comes. */
  #lastError: Error | null = null

  constructor (source: ConnectionSource, listener: ConnectionListener) {
    this.#source = source
    this.#listener = listener
    this.#engine = source.cluster !== null || isClusterClient(source.client)
      ? new ClusterRedis(source, source.cluster)
      : new StandaloneRedis(source)
  }

  get engine (): RedisEngine {
    return this.#engine
  }

  get client (): RedisConnection {
    return this.#engine.client
  }

  get ready (): boolean {
    return this.#engine.ready
  }

  readonly #onError = (error: Error): void => {
    this.#lastError = error
    this.#listener.onError(error)
  }

  /**
   * Resolves once the connections are ready; rejects after `timeout` ms, or for a Redis it
   * cannot serve (a cluster node behind a client of the app's that is not a cluster client),
   * with the connections released. A `url` to a cluster node is opened again as a cluster.
   */
  async open (timeout: number): Promise<void> {
    const deadline = performance.now() + timeout
    // Only the engine opened from a URL answers true; one given a client of the app's refuses by itself.
    if (await this.#connect(this.#engine, timeout)) {
      this.#engine = new ClusterRedis(this.#source, { rootNodes: [{ url: this.#source.url! }] })
      await this.#connect(this.#engine, Math.max(1, deadline - performance.now()), timeout)
    }
    // Told from now on, not before: the node starts only with a Redis it supports.
    this.#engine.listen(this.#listener.onReady)
  }

  /** `connectTimeout`: the option, which `timeout` is what is left of, for the message. */
  async #connect (engine: RedisEngine, timeout: number, connectTimeout = timeout): Promise<boolean> {
    const connected = engine.connect(this.#onError)
    connected.catch(() => {}) // after a timeout it settles late, once the connections are released
    let answer: boolean | null
    try {
      answer = await within(connected, timeout, null)
    } catch (error) {
      await engine.release()
      throw error instanceof RedisUnavailableError || (error as { code?: string }).code?.startsWith('FST_') === true
        ? error
        : new RedisUnavailableError(String((error as Error)?.message ?? error))
    }
    if (answer === null) {
      engine.cut()
      const why = this.#lastError === null ? 'no answer' : this.#lastError.message
      throw new RedisUnavailableError(`no connection within connectTimeout (${connectTimeout} ms): ${why}`)
    }
    return answer
  }

  release (): Promise<void> {
    return this.#engine.release()
  }

  cut (): void {
    this.#engine.cut()
  }
}

/** node-redis 6 gives every command a 5 s timeout by default: off, where the client can say so. */
export function withoutCommandTimeout<T extends RedisConnection | RedisClusterConnection> (client: T): T {
  return typeof client.withCommandOptions === 'function' ? client.withCommandOptions({ timeout: 0 }) as T : client
}

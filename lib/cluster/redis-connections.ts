// A cluster node's two Redis connections: one for commands and publishing, one for
// subscriptions (a subscribed connection runs nothing else). Opens them with a bound on the
// wait, passes their errors and readiness on, and closes the ones the adapter opened itself.
import { createClient, type RedisClientType } from '@redis/client'
import { RedisUnavailableError } from '../errors'
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

  /** Resolves once both connections are ready; rejects after `timeout` ms, with both released. */
  async open (timeout: number): Promise<void> {
    for (const connection of [this.client, this.subscriber]) {
      connection.on('error', this.#onError)
      connection.on('ready', this.#onReady)
    }
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

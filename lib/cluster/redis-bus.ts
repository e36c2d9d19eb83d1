// A node's pub/sub through Redis: the rooms' channels (`<keyPrefix>:room:<name>`, subscribed
// while a room has members on this node) and the control channel (`<keyPrefix>:control`),
// what goes out on them (broadcasts and commands, fire and forget, bounded by
// maxPublishBacklog) and what comes in (other nodes' broadcasts and commands, and every
// node's published messages, put in offset order by ./published-order). The node's state in
// Redis (counts, presence, heartbeat) is ./redis-node's.
import type { WebsocketRoomsClusterStats } from '../../types/index'
import { RedisUnavailableError } from '../errors'
import type { HistoryLog } from '../history/log'
import { ControlKind, type ClusterHost, type ControlCommand } from '../rooms/port'
import type { Encoded } from '../transport/frame'
import { pastBound, sendWindow } from '../transport/wire'
import { within } from '../within'
import { decodeClusterMessage, decodeControl, decodePublished, encodeClusterMessage, encodeControl, isPublished } from './codec'
import { PublishedOrder } from './published-order'
import type { RedisConnection } from './redis-connections'

export interface RedisBusOptions {
  keyPrefix: string
  sharded: boolean
  connectTimeout: number
  maxPublishBacklog: number
}

/** What the bus needs to know of its node. */
export interface BusNode {
  readonly nodeId: string
  /** Both connections are ready. */
  readonly up: boolean
  /** The node has left the cluster. */
  readonly closed: boolean
}

/** The bus's counters, for stats().cluster. */
export type BusStats = Pick<WebsocketRoomsClusterStats, 'subscribedRooms' | 'published' | 'publishFailed' | 'publishBacklog' | 'received' | 'malformed'>

export class RedisBus {
  readonly #node: BusNode
  readonly #host: ClusterHost
  readonly #options: RedisBusOptions
  /** The command connection, to tell whether Redis is reachable now. */
  readonly #client: RedisConnection
  /** The same connection without node-redis's per-command timeout, for PUBLISH: see publish(). */
  readonly #publisher: RedisConnection
  readonly #subscriber: RedisConnection
  readonly #channelPrefix: string
  readonly #channelPrefixBytes: number
  /** Where commands for every node go (to(...).broadcast, disconnectAll, disconnectSession). */
  readonly #controlChannel: string
  #controlSubscribed = false
  /** The rooms whose channel is subscribed. */
  readonly #subscribed = new Set<string>()
  /** The order of the rooms' published messages here, and what fills their gaps; null without history. */
  #order: PublishedOrder | null = null
  /** publish()es waiting for this node's members to have their message, by room. */
  readonly #deliveries = new Map<string, Array<{ epoch: string, offset: number, resolve: () => void }>>()
  #published = 0
  #publishFailed = 0
  /** Bytes of broadcasts handed to the client whose PUBLISH has not been answered yet. */
  #publishBacklog = 0
  /** The send window (../transport/wire) of the last publish, and the backlog when it began. */
  #window = 0
  #backlogBefore = 0
  #received = 0
  #malformed = 0

  constructor (node: BusNode, host: ClusterHost, client: RedisConnection, subscriber: RedisConnection, options: RedisBusOptions) {
    this.#node = node
    this.#host = host
    this.#options = options
    this.#client = client
    this.#publisher = withoutCommandTimeout(client)
    this.#subscriber = subscriber
    this.#channelPrefix = `${options.keyPrefix}:room:`
    this.#channelPrefixBytes = Buffer.byteLength(this.#channelPrefix)
    this.#controlChannel = `${options.keyPrefix}:control`
  }

  /** Puts the rooms' published messages in offset order, filling gaps from `log`. */
  orderPublished (log: HistoryLog, size: number): void {
    this.#order = new PublishedOrder({
      size,
      deliver: (name, message) => {
        this.#host.deliverPublished(name, message.epoch, message.offset, message.encoded, message.exceptId)
        if (this.#deliveries.size !== 0) this.#settleDeliveries(name)
      },
      read: (name, after, limit, epoch) => log.read(name, { after, limit, epoch }),
      readFailed: (name, error) => { this.#host.log.debug({ err: error }, `fastify-websocket-rooms: could not read the messages room "${name}" missed; its members' clients can tell by the offsets`) }
    })
  }

  channelOf (name: string): string {
    return this.#channelPrefix + name
  }

  isSubscribed (name: string): boolean {
    return this.#subscribed.has(name)
  }

  /** Subscribes these rooms' channels, and the control channel the first time; marked subscribed by subscribed(). */
  subscribe (names: string[]): Promise<unknown> {
    const rooms = names.length === 0
      ? null
      : this.#options.sharded
        ? this.#subscriber.sSubscribe(names.map((name) => this.#channelPrefix + name), this.#onPacket, true)
        : this.#subscriber.subscribe(names.map((name) => this.#channelPrefix + name), this.#onPacket, true)
    const control = this.#controlSubscribed
      ? null
      : this.#options.sharded
        ? this.#subscriber.sSubscribe(this.#controlChannel, this.#onControl, true)
        : this.#subscriber.subscribe(this.#controlChannel, this.#onControl, true)
    return Promise.all([rooms, control])
  }

  unsubscribe (names: string[]): Promise<void> | null {
    if (names.length === 0) return null
    const channels = names.map((name) => this.#channelPrefix + name)
    return this.#options.sharded
      ? this.#subscriber.sUnsubscribe(channels, this.#onPacket, true)
      : this.#subscriber.unsubscribe(channels, this.#onPacket, true)
  }

  /** Unsubscribes every room (the node leaves). */
  unsubscribeAll (): Promise<void> | null {
    return this.unsubscribe([...this.#subscribed])
  }

  /** What subscribe() and unsubscribe() asked for went through. */
  subscribed (subscribed: string[], unsubscribed: string[]): void {
    this.#controlSubscribed = true
    for (const name of subscribed) this.#subscribed.add(name)
    for (const name of unsubscribed) {
      this.#subscribed.delete(name)
      this.#order?.forget(name)
      this.#settleDeliveries(name)
    }
  }

  /** The connections are new (Redis may have lost everything): every channel is to be subscribed again. */
  resubscribe (): void {
    this.#subscribed.clear()
    this.#controlSubscribed = false
  }

  /** Subscribed again after an outage: what the rooms missed is read from their history. */
  catchUp (): void {
    this.#order?.catchUp()
  }

  /**
   * Resolves once this node's members of the room have had its message at `offset`: at once
   * when it has none there; within connectTimeout at most (the message may come late, after
   * a lost subscriber connection is back).
   */
  deliveredHere (name: string, epoch: string, offset: number): Promise<void> {
    const order = this.#order
    if (order === null || !this.#subscribed.has(name) || order.reached(name, epoch, offset)) return Promise.resolve()
    let waiting = this.#deliveries.get(name)
    if (waiting === undefined) this.#deliveries.set(name, waiting = [])
    const delivered = new Promise<void>((resolve) => { waiting.push({ epoch, offset, resolve }) })
    return within(delivered, this.#options.connectTimeout, undefined)
  }

  #settleDeliveries (name: string): void {
    const waiting = this.#deliveries.get(name)
    if (waiting === undefined) return
    const left = waiting.filter((delivery) => {
      if (this.#subscribed.has(name) && !this.#order!.reached(name, delivery.epoch, delivery.offset)) return true
      delivery.resolve()
      return false
    })
    if (left.length === 0) this.#deliveries.delete(name)
    else this.#deliveries.set(name, left)
  }

  readonly #onControl = (packet: Buffer): void => {
    const message = decodeControl(packet)
    if (message === null) {
      this.#malformed++
      this.#host.log.debug('fastify-websocket-rooms: ignored a message on the control channel that is not a command of this plugin')
      return
    }
    if (message.origin === this.#node.nodeId) return // carried out here when it was sent
    this.#received++
    if (message.deadline !== null && Date.now() > message.deadline) {
      // Its sender has told its caller that it failed (a stalled Redis), or the clocks are apart.
      this.#host.log.warn(`fastify-websocket-rooms: dropped a command from node ${message.origin} that came ${Date.now() - message.deadline} ms past its deadline`)
      return
    }
    this.#host.control(message.command)
  }

  readonly #onPacket = (packet: Buffer, channel: Buffer): void => {
    if (isPublished(packet)) {
      this.#onPublished(packet, channel)
      return
    }
    const message = decodeClusterMessage(packet)
    if (message === null) {
      this.#malformed++
      this.#host.log.debug({ channel: channel.toString() }, 'fastify-websocket-rooms: ignored a message that is not a broadcast of this plugin')
      return
    }
    if (message.origin === this.#node.nodeId) return // delivered here when it was sent
    this.#received++
    const name = channel.toString('utf8', this.#channelPrefixBytes)
    const tracing = this.#host.clusterTracing
    if (message.traceparent !== null && tracing !== null) tracing.delivered(message.traceparent, name, () => { this.#host.deliver(name, message.encoded) })
    else this.#host.deliver(name, message.encoded)
  }

  /** A published message, from any node (this one too: it delivers its own from here, in offset order). */
  #onPublished (packet: Buffer, channel: Buffer): void {
    const published = decodePublished(packet)
    if (published === null) {
      this.#malformed++
      this.#host.log.debug({ channel: channel.toString() }, 'fastify-websocket-rooms: ignored a malformed published message')
      return
    }
    const { origin, message } = published
    if (origin !== this.#node.nodeId) this.#received++
    const name = channel.toString('utf8', this.#channelPrefixBytes)
    if (this.#order === null) this.#host.deliverPublished(name, message.epoch, message.offset, message.encoded, message.exceptId)
    else this.#order.receive(name, message)
  }

  /**
   * Fire and forget, bounded: a broadcast is not published while Redis is away, nor while the
   * PUBLISHes not yet answered hold more than maxPublishBacklog bytes (a Redis that stalls),
   * so nothing piles up in the client's queue. That bound, rather than node-redis's timeout
   * per command (a timer and an abort listener for every PUBLISH), is what limits the wait.
   */
  publish (name: string, encoded: Encoded): void {
    if (!this.#client.isReady || this.#node.closed) {
      this.#publishFailed++
      return
    }
    this.#send(this.#channelPrefix + name, encodeClusterMessage(this.#node.nodeId, encoded, this.#host.clusterTracing?.current() ?? null))
  }

  /**
   * Sends a command to every other node, as a broadcast is sent: at most once, bounded by
   * maxPublishBacklog. A broadcast is fire and forget; a command that closes sessions rejects
   * when it is not sent, or not answered by Redis before its deadline (connectTimeout from
   * now), which it carries: the nodes that get it after that drop it.
   */
  command (command: ControlCommand): Promise<void> {
    if (command.kind === ControlKind.Broadcast) {
      this.#send(this.#controlChannel, encodeControl(this.#node.nodeId, command, null))
      return Promise.resolve()
    }
    const what = command.kind === ControlKind.DisconnectRoom
      ? `cannot close the members of room "${command.room}" on the other servers`
      : `cannot close session "${command.sessionId}" on the other servers`
    return this.#sendBefore(what, command, Date.now() + this.#options.connectTimeout)
  }

  async #sendBefore (what: string, command: ControlCommand, deadline: number): Promise<void> {
    // Away as soon as either connection has noticed: the command connection may notice last.
    const up = this.#node.up
    const sent = up ? this.#send(this.#controlChannel, encodeControl(this.#node.nodeId, command, deadline)) : null
    if (sent === null) {
      if (!up) this.#publishFailed++
      const why = this.#node.closed ? 'the adapter is closed' : up && this.#client.isReady ? `Redis has not answered maxPublishBacklog (${this.#options.maxPublishBacklog}) bytes of broadcasts` : 'Redis is away'
      throw new RedisUnavailableError(`${what}: ${why}; not sent`)
    }
    let failed: Error | null | undefined
    // Not before the deadline by this clock, so that a node that gets it after this rejection drops it.
    do failed = await within(sent, deadline - Date.now() + 1, undefined)
    while (failed === undefined && Date.now() <= deadline)
    if (failed === undefined) throw new RedisUnavailableError(`${what}: no answer within connectTimeout (${this.#options.connectTimeout} ms); the servers that get it later drop it`)
    if (failed !== null) throw new RedisUnavailableError(`${what}: ${failed.message}`)
  }

  /**
   * PUBLISHes a packet, unless Redis is away or past the backlog bound (then null, counted in
   * publishFailed); the promise resolves with Redis's answer: null, or the error. It never rejects.
   */
  #send (channel: string, packet: Buffer): Promise<Error | null> | null {
    if (!this.#client.isReady || this.#node.closed) {
      this.#publishFailed++
      return null
    }
    const bytes = packet.length + channel.length
    // As for a session's backpressure: at most maxPublishBacklog plus one turn's broadcasts wait.
    const window = sendWindow()
    if (this.#window !== window) {
      this.#window = window
      this.#backlogBefore = this.#publishBacklog
    }
    if (pastBound(this.#backlogBefore, bytes, this.#options.maxPublishBacklog)) {
      this.#publishFailed++
      return null
    }
    const sent = this.#options.sharded ? this.#publisher.sPublish(channel, packet) : this.#publisher.publish(channel, packet)
    this.#published++
    this.#publishBacklog += bytes
    return sent.then(() => {
      this.#publishBacklog -= bytes
      return null
    }, (error: Error) => {
      this.#publishBacklog -= bytes
      this.#published--
      this.#publishFailed++
      this.#host.log.debug({ err: error }, 'fastify-websocket-rooms: a broadcast did not reach Redis')
      return error
    })
  }

  stats (): BusStats {
    return {
      subscribedRooms: this.#subscribed.size,
      published: this.#published,
      publishFailed: this.#publishFailed,
      publishBacklog: this.#publishBacklog,
      received: this.#received,
      malformed: this.#malformed
    }
  }

  /** The node has left: its published messages' order is dropped, and with it any retry of a read. */
  close (): void {
    this.#order?.clear()
  }
}

/** node-redis 6 gives every command a 5 s timeout by default: off for PUBLISH, where the client can say so. */
function withoutCommandTimeout (client: RedisConnection): RedisConnection {
  return typeof client.withCommandOptions === 'function' ? client.withCommandOptions({ timeout: 0 }) as RedisConnection : client
}

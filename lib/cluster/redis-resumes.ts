// Resume across the servers that share one Redis (../resume/store's ResumeStore, for Redis).
// A server's own tokens live in its memory, as without Redis (a token carries its server's
// node id, so a session that never drops costs Redis nothing). A token of another server is
// taken over:
// - from Redis, when that server parked the session there at its app.close(): one script
//   claims it once (`{<p>:resume:<token>}`, left 'taken' for the rest of its time), and its
//   presence entries leave their holder (a node-like entry that a survivor reaps, telling
//   the leaves, once the window has passed: ./redis-presence);
// - else from that server, when it is alive (listed in `{<p>}:nodes` and beating): a request
//   on `<p>:resume` to it, which claims the session in its memory, exports it (its state and
//   what was kept for it) in its reply and lets it go;
// - else nowhere: its server died with it ('lost').
// Every wait for Redis or for the other server is bounded (connectTimeout, plus the other
// server's closeTimeout for a session it must cut first); past it, or with Redis away, the
// resume is refused as 'lost'.
import type { FastifyBaseLogger } from 'fastify'
import { LocalResumeStore, type HandOver, type Named, type Parked, type Portable, type ResumeStore, type Taken } from '../resume/store'
import { within } from '../within'
import { Script } from './history-scripts'
import type { RedisConnection, RedisConnections } from './redis-connections'
import type { RedisKeys } from './redis-keys'

/** What the store needs to know of its node. */
export interface ResumesNode {
  readonly nodeId: string
  /** Both connections are ready. */
  readonly up: boolean
  readonly sharded: boolean
}

export interface RedisResumesOptions {
  connectTimeout: number
  nodeTimeout: number
  /** How many nodeTimeouts a holder's presence entries outlive its deadline: time for a survivor to reap them. */
  lifetimes: number
  window: number
}

const claimScript = new Script('resume-claim.lua', ['routeKey'] as const)
const releaseScript = new Script('resume-release.lua', ['sessionId'] as const)

const LOST: Taken = Object.freeze({ portable: null, failure: 'lost' as const })
const UNKNOWN: Taken = Object.freeze({ portable: null, failure: 'unknown' as const })
/** The longest a server waits on another's behalf before it hands a session over (its closeTimeout, as sent). */
const MAX_WAIT = 60_000

interface TakeRequest { op: 'take', from: string, to: string, id: number, token: string, routeKey: string, wait: number }
interface TakeReply { op: 'taken', to: string, id: number, taken: Taken | 'moved' }

export class RedisResumes<S> implements ResumeStore<S> {
  readonly nodeId: string
  readonly #node: ResumesNode
  readonly #log: FastifyBaseLogger
  readonly #connections: RedisConnections
  readonly #keys: RedisKeys
  readonly #options: RedisResumesOptions
  /** This server's own tokens. */
  readonly #local: LocalResumeStore<S>
  #handOver: HandOver | null = null
  /** Takeovers asked of other servers, waiting for their reply, by request id. */
  readonly #pending = new Map<number, (reply: Taken | 'moved') => void>()
  #lastId = 0
  /** The subscription to the takeovers' channel is live (false: it failed; asking is pointless). */
  readonly #subscribed: Promise<boolean>

  constructor (node: ResumesNode, log: FastifyBaseLogger, connections: RedisConnections, keys: RedisKeys, options: RedisResumesOptions) {
    this.nodeId = node.nodeId
    this.#node = node
    this.#log = log
    this.#connections = connections
    this.#keys = keys
    this.#options = options
    this.#local = new LocalResumeStore(options.window)
    this.#subscribed = connections.engine.subscribe(node.sharded, [keys.resumeChannel], this.#onPacket).then(() => true, (error: Error) => {
      log.warn({ err: error }, 'fastify-websocket-rooms: could not subscribe to the resume channel; sessions of this server cannot resume on another one')
      return false
    })
  }

  get #client (): RedisConnection {
    return this.#connections.client
  }

  readonly #send = (key: string, args: Array<string | Buffer>): Promise<unknown> => this.#connections.engine.send(key, args, false)

  set (token: string, routeKey: string, what: Named<S>, until: number): void {
    this.#local.set(token, routeKey, what, until)
  }

  peek (token: string, routeKey: string): Promise<Named<S> | undefined> {
    return this.#local.peek(token, routeKey)
  }

  claim (token: string, routeKey: string): Promise<Named<S> | undefined> {
    return this.#local.claim(token, routeKey)
  }

  delete (token: string): void {
    this.#local.delete(token)
  }

  serve (handOver: HandOver): void {
    this.#handOver = handOver
  }

  /** Resolves as `promise` does within connectTimeout, else (or when it rejects) with null. */
  #bounded<T> (promise: Promise<T>): Promise<T | null> {
    return within(promise, this.#options.connectTimeout, null).catch((error: unknown) => {
      this.#log.debug({ err: error }, 'fastify-websocket-rooms: a resume could not reach Redis')
      return null
    })
  }

  async takeFrom (nodeId: string, token: string, routeKey: string, wait: number): Promise<Taken> {
    if (!this.#node.up) return LOST
    // Parked in Redis, and whether its server is alive: one round trip (two keys, two slots).
    const found = await this.#bounded(Promise.all([this.#claimParked(token, routeKey), this.#client.zScore(this.#keys.nodes, nodeId)]))
    if (found === null) return LOST
    const [parked, score] = found
    if (parked !== undefined) return parked
    if (score === null || Number(score) < Date.now() - this.#options.nodeTimeout) return LOST
    const reply = await this.#ask(nodeId, token, routeKey, wait)
    if (reply !== 'moved') return reply ?? LOST
    // Its server parked it meanwhile (it is closing): it is in Redis now.
    return (await this.#bounded(this.#claimParked(token, routeKey))) ?? LOST
  }

  /** The session parked under the token, taken once; undefined when none is. */
  async #claimParked (token: string, routeKey: string): Promise<Taken | undefined> {
    const reply = await claimScript.run(this.#send, [this.#keys.resume(token)], { routeKey })
    if (reply === null || reply === undefined) return undefined
    const text = String(reply)
    return text === 'taken' ? UNKNOWN : { portable: JSON.parse(text) as Portable, failure: null }
  }

  /** Asks the token's server for its session; null when no reply came in time. */
  async #ask (to: string, token: string, routeKey: string, wait: number): Promise<Taken | 'moved' | null> {
    if (await this.#bounded(this.#subscribed) !== true) return null
    const id = ++this.#lastId
    const replied = new Promise<Taken | 'moved'>((resolve) => { this.#pending.set(id, resolve) })
    const request: TakeRequest = { op: 'take', from: this.nodeId, to, id, token, routeKey, wait }
    this.#publish(request)
    try {
      return await within(replied, wait + this.#options.connectTimeout, null)
    } finally {
      this.#pending.delete(id)
    }
  }

  #publish (message: TakeRequest | TakeReply): void {
    const publisher = this.#connections.engine.publisher
    const packet = JSON.stringify(message)
    const channel = this.#keys.resumeChannel
    const sent = this.#node.sharded ? publisher.sPublish(channel, packet) : publisher.publish(channel, packet)
    sent.catch((error: Error) => { this.#log.debug({ err: error }, 'fastify-websocket-rooms: a resume message did not reach Redis') })
  }

  readonly #onPacket = (packet: Buffer): void => {
    let message: Partial<Omit<TakeRequest, 'op'> & Omit<TakeReply, 'op'>> & { op?: string } | null
    try {
      message = JSON.parse(packet.toString())
    } catch {
      return
    }
    if (message === null || typeof message !== 'object' || message.to !== this.nodeId || typeof message.id !== 'number') return
    if (message.op === 'taken') this.#pending.get(message.id)?.(message.taken as Taken | 'moved')
    else if (message.op === 'take' && typeof message.from === 'string' && typeof message.token === 'string' && typeof message.routeKey === 'string') {
      this.#serve(message.from, message.id, message.token, message.routeKey, Math.min(Math.max(Number(message.wait) || 0, 0), MAX_WAIT))
    }
  }

  #serve (from: string, id: number, token: string, routeKey: string, wait: number): void {
    const handOver = this.#handOver
    const taken = handOver === null ? Promise.resolve(UNKNOWN) : handOver(token, routeKey, wait)
    taken.catch((error: unknown) => {
      this.#log.error({ err: error }, 'fastify-websocket-rooms: could not hand a session over to another server')
      return LOST
    }).then((result) => { this.#publish({ op: 'taken', to: from, id, taken: result }) })
  }

  resumed (portable: Portable): void {
    const holder = portable.holder
    if (holder === null || portable.rooms.length === 0) return
    const names = portable.rooms.map((room) => room.name)
    const keys = [this.#keys.node(holder), ...names.map((name) => this.#keys.presence(holder, name))]
    releaseScript.run(this.#send, keys, { sessionId: portable.id }, names).catch((error: unknown) => {
      this.#log.debug({ err: error }, 'fastify-websocket-rooms: a resumed session\'s presence entries stay with their holder until it is reaped')
    })
  }

  /**
   * Parks a closing server's kept sessions: each one's state under its token, for the rest of
   * its window (and as long again, so a late claim says 'expired'); their presence entries and
   * counts under a holder listed as a node whose heartbeat stops when the last window ends.
   */
  async park (parked: Parked[]): Promise<boolean> {
    if (!this.#node.up) return false
    const holder = this.#keys.holder(this.nodeId)
    const now = Date.now()
    let last = now + 1
    const entries = new Map<string, Array<[string, string]>>()
    for (const { portable } of parked) {
      portable.holder = holder
      last = Math.max(last, portable.deadline)
      for (const { name } of portable.rooms) {
        const room = entries.get(name)
        if (room === undefined) entries.set(name, [[portable.id, portable.info]])
        else room.push([portable.id, portable.info])
      }
    }
    const writes: Array<Promise<unknown>> = parked.map(({ token, routeKey, portable }) =>
      this.#client.set(this.#keys.resume(token), `${routeKey}\n${JSON.stringify(portable)}`, { PX: Math.max(1, 2 * (portable.deadline - now)) }))
    if (entries.size > 0) {
      const lifetime = last - now + this.#options.lifetimes * this.#options.nodeTimeout
      const countsKey = this.#keys.node(holder)
      const roomsKey = this.#keys.presenceRooms(holder)
      // The holder's keys share its hash slot: one MULTI.
      const hold = this.#client.multi().hSet(countsKey, new Map([...entries].map(([name, room]) => [name, room.length]))).pExpire(countsKey, last - now)
      for (const [name, room] of entries) {
        hold.hSet(this.#keys.presence(holder, name), room).pExpire(this.#keys.presence(holder, name), lifetime).sAdd(roomsKey, name)
      }
      hold.pExpire(roomsKey, lifetime)
      // Dead, for the other servers' heartbeats, once the last window has passed.
      writes.push(hold.exec(), this.#client.zAdd(this.#keys.nodes, { score: last - this.#options.nodeTimeout, value: holder }))
    }
    return await this.#bounded(Promise.all(writes).then(() => true)) === true
  }

  close (): void {
    for (const resolve of this.#pending.values()) resolve(LOST)
    this.#pending.clear()
    this.#local.close()
  }
}

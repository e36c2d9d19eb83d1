// Where the tokens of a route's sessions live, with what each one names: a live session, a
// dropped one waiting for its client, or the reason a resume of it would be refused. One
// interface, one implementation per place: this process (LocalResumeStore, here), or Redis
// (../cluster/redis-resumes), which keeps this server's own tokens in its memory as this one
// does, and adds the ways across servers: take a session another server issued the token for,
// serve such takeovers of this server's sessions, and park sessions in Redis when it closes.
// A claim takes what a token names once: two connections racing with one token, one gets it.
// Reads answer with promises, as a store over the network must; writes are fire and forget.

export type ResumeFailure = 'expired' | 'unknown' | 'overflow' | 'history' | 'lost'

/** What a token names. */
export type Named<S> =
  | { state: 'live', session: S }
  | { state: 'dropped', session: S }
  | { state: 'refused', failure: ResumeFailure }

/** A session's resumable state as it travels between servers: plain data, JSON as it is. */
export interface Portable {
  id: string
  /** Its attributes, as JSON text of [key, value] pairs. */
  attributes: string
  /** Its presence info, as JSON text. */
  info: string
  /** Its rooms, each with the position of the last published message it was delivered there (epoch null: none known). */
  rooms: PortableRoom[]
  /** What was sent to it while away, oldest first: [binary, the bytes in base64]. */
  kept: Array<[boolean, string]>
  /** When its window ends (Date.now() ms). */
  deadline: number
  /** The close its connection dropped with, for its onClose if it ends. */
  code: number
  reason: string
  /** While on no server (parked by app.close()): the holder of its presence entries; else null. */
  holder: string | null
}

export interface PortableRoom {
  name: string
  epoch: string | null
  offset: number
}

/** What taking a token over from another server gave: the session's state, or why not. */
export type Taken = { portable: Portable, failure: null } | { portable: null, failure: ResumeFailure }

/** How this server hands one of its sessions over to another: claimed by token, exported, let go. */
export type HandOver = (token: string, routeKey: string, wait: number) => Promise<Taken | 'moved'>

/** A session parked in the store for the rest of its window. */
export interface Parked {
  token: string
  routeKey: string
  portable: Portable
}

export interface ResumeStore<S> {
  /** The node id this server's tokens carry; null for a store of this process alone (tokens name no server). */
  readonly nodeId: string | null
  /** Takes over a session of the server `nodeId` by its token (from Redis, or from that server, which lets it go). */
  takeFrom (nodeId: string, token: string, routeKey: string, wait: number): Promise<Taken>
  /** The session of `portable` resumed here: what held its presence while it was on no server lets go of it. */
  resumed (portable: Portable): void
  /** Serves the other servers' takeovers of this server's sessions. */
  serve (handOver: HandOver): void
  /** Writes sessions for the rest of their window (this server closes); false when that failed: they end here. */
  park (parked: Parked[]): Promise<boolean>

  /** A session's token, bound to its route, named `what` until `until` (Date.now() ms; Infinity while live). */
  set (token: string, routeKey: string, what: Named<S>, until: number): void
  /** What the token names on that route, without taking it. */
  peek (token: string, routeKey: string): Promise<Named<S> | undefined>
  /** Takes what the token names on that route, once; undefined when nothing (or nothing any more). */
  claim (token: string, routeKey: string): Promise<Named<S> | undefined>
  delete (token: string): void
  close (): void
}

const UNKNOWN: Taken = Object.freeze({ portable: null, failure: 'unknown' as const })

interface Entry<S> {
  routeKey: string
  what: Named<S>
  until: number
}

/** Tokens in this process's memory: a claim is synchronous, so it cannot be raced. */
export class LocalResumeStore<S> implements ResumeStore<S> {
  readonly nodeId: string | null = null
  readonly #entries = new Map<string, Entry<S>>()
  /** Refusals waiting for their time to pass, swept now and then rather than with a timer each. */
  #sweep: NodeJS.Timeout | null = null
  readonly #sweepEvery: number

  constructor (sweepEvery: number) {
    this.#sweepEvery = sweepEvery
  }

  set (token: string, routeKey: string, what: Named<S>, until: number): void {
    this.#entries.set(token, { routeKey, what, until })
    if (what.state === 'refused') this.#sweep ??= setInterval(this.#sweepOnce, this.#sweepEvery).unref()
  }

  peek (token: string, routeKey: string): Promise<Named<S> | undefined> {
    return Promise.resolve(this.#find(token, routeKey))
  }

  claim (token: string, routeKey: string): Promise<Named<S> | undefined> {
    // Found and taken in one step: nothing runs in between.
    const what = this.#find(token, routeKey)
    if (what !== undefined) this.#entries.delete(token)
    return Promise.resolve(what)
  }

  #find (token: string, routeKey: string): Named<S> | undefined {
    const entry = this.#entries.get(token)
    if (entry === undefined || entry.routeKey !== routeKey) return undefined
    if (entry.until <= Date.now()) {
      this.#entries.delete(token)
      return undefined
    }
    return entry.what
  }

  delete (token: string): void {
    this.#entries.delete(token)
  }

  /** No other server: a token that names one is not this store's. */
  takeFrom (): Promise<Taken> {
    return Promise.resolve(UNKNOWN)
  }

  resumed (): void {}

  serve (): void {}

  /** Nowhere to park: the sessions end with this process. */
  park (): Promise<boolean> {
    return Promise.resolve(false)
  }

  readonly #sweepOnce = (): void => {
    const now = Date.now()
    let refusals = 0
    for (const [token, entry] of this.#entries) {
      if (entry.what.state !== 'refused') continue
      if (entry.until <= now) this.#entries.delete(token)
      else refusals++
    }
    if (refusals === 0 && this.#sweep !== null) {
      clearInterval(this.#sweep)
      this.#sweep = null
    }
  }

  close (): void {
    if (this.#sweep !== null) clearInterval(this.#sweep)
    this.#sweep = null
    this.#entries.clear()
  }
}

/** A cluster link that shares resumes between its servers (the Redis adapter's). */
interface ResumingLink {
  resumeStore<S> (window: number): ResumeStore<S>
}

/** The store of an instance: its cluster link's when it has one across servers, else this process's. Chosen once, at registration. */
export function resumeStoreFor<S> (link: object, window: number): ResumeStore<S> {
  return typeof (link as Partial<ResumingLink>).resumeStore === 'function' ? (link as ResumingLink).resumeStore<S>(window) : new LocalResumeStore<S>(window)
}

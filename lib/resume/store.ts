// Where the tokens of a route's sessions live, with what each one names: a live session, a
// dropped one waiting for its client, or the reason a resume of it would be refused. One
// interface, one implementation per place: this process (LocalResumeStore, here), or Redis.
// A claim takes what a token names once: two connections racing with one token, one gets it.
// Reads answer with promises, as a store over the network must; writes are fire and forget.

export type ResumeFailure = 'expired' | 'unknown' | 'overflow' | 'history' | 'lost'

/** What a token names. */
export type Named<S> =
  | { state: 'live', session: S }
  | { state: 'dropped', session: S }
  | { state: 'refused', failure: ResumeFailure }

export interface ResumeStore<S> {
  /** A session's token, bound to its route, named `what` until `until` (Date.now() ms; Infinity while live). */
  set (token: string, routeKey: string, what: Named<S>, until: number): void
  /** What the token names on that route, without taking it. */
  peek (token: string, routeKey: string): Promise<Named<S> | undefined>
  /** Takes what the token names on that route, once; undefined when nothing (or nothing any more). */
  claim (token: string, routeKey: string): Promise<Named<S> | undefined>
  delete (token: string): void
  close (): void
}

interface Entry<S> {
  routeKey: string
  what: Named<S>
  until: number
}

/** Tokens in this process's memory: a claim is synchronous, so it cannot be raced. */
export class LocalResumeStore<S> implements ResumeStore<S> {
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

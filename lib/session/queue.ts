// One session's events, handled one at a time in arrival order. A handler that returns a
// promise holds back the session's next events until it settles; events that arrive
// meanwhile wait in a queue, so nothing a client sends is lost while a handler awaits.
// The session extends the queue rather than owning one: one object less per session.
import { isThenable } from '../call-hook'

/** The methods a session implements for its queue: symbols, out of reach of a user's session. */
export const kHandle = Symbol('fastify-websocket-rooms.handle')
export const kFail = Symbol('fastify-websocket-rooms.fail')
export const kIdle = Symbol('fastify-websocket-rooms.idle')

/** What runningEvent says when no event is being handled. */
export const IDLE = -1
/** What runningEvent says while `fail` handles what an event's handler threw or rejected with. */
export const FAILING = -2

export abstract class SessionQueue {
  /** The kind of the event being handled (until its promise settles), FAILING, or IDLE. */
  #running = IDLE
  // Flat triples (kind, a, b), read from #head: no object per queued event.
  #queued: unknown[] | null = null
  #head = 0

  /** Runs one event; may return a promise, which the queue waits for. */
  abstract [kHandle] (kind: number, a: unknown, b: unknown): unknown
  /** Called with what a handler threw or rejected with; may return a promise too. */
  abstract [kFail] (error: unknown): unknown
  /** Called when the queue has caught up after holding events back. */
  abstract [kIdle] (): void

  /** Number of events waiting behind a handler that has not settled yet. */
  protected get queuedEvents (): number {
    return this.#queued === null ? 0 : (this.#queued.length - this.#head) / 3
  }

  protected get runningEvent (): number {
    return this.#running
  }

  /** Empties the queue; returns what it held, as flat triples (kind, a, b), or null. */
  protected takePending (): unknown[] | null {
    const pending = this.#queued
    const head = this.#head
    this.#queued = null
    this.#head = 0
    return pending === null ? null : pending.slice(head)
  }

  protected enqueue (kind: number, a?: unknown, b?: unknown): void {
    // Also queues events pushed from inside a running handler, so they never run nested.
    if (this.#running !== IDLE) {
      (this.#queued ??= []).push(kind, a, b)
      return
    }
    if (this.#step(kind, a, b)) return
    if (this.#queued !== null) this.#drain()
  }

  /** Runs one event; true when it returned a promise, which keeps the queue busy until it settles. */
  #step (kind: number, a: unknown, b: unknown): boolean {
    this.#running = kind
    let result: unknown
    try {
      result = this[kHandle](kind, a, b)
    } catch (error) {
      this.#running = FAILING
      result = this[kFail](error)
    }
    if (!isThenable(result)) {
      this.#running = IDLE
      return false
    }
    result.then(() => this.#resume(), (error: unknown) => {
      this.#running = FAILING
      this.#resumeAfter(this[kFail](error))
    })
    return true
  }

  #resumeAfter (result: unknown): void {
    if (isThenable(result)) {
      result.then(() => this.#resume(), () => this.#resume())
    } else {
      this.#resume()
    }
  }

  #resume (): void {
    this.#running = IDLE
    this.#drain()
  }

  #drain (): void {
    let pending = this.#queued
    while (pending !== null && this.#head < pending.length) {
      const at = this.#head
      this.#head += 3
      const kind = pending[at] as number
      const a = pending[at + 1]
      const b = pending[at + 2]
      pending[at + 1] = pending[at + 2] = undefined
      if (this.#step(kind, a, b)) return
      pending = this.#queued
    }
    if (pending === null) return
    this.#queued = null
    this.#head = 0
    this[kIdle]()
  }
}

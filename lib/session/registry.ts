// The open sessions of one Fastify instance, by id, and the counters of its traffic.
import { Stats } from './stats'

export class SessionRegistry<S extends { readonly id: string }> {
  /** The sessions by id; read-only outside (app.websocketSessions is a view of it). */
  readonly byId: ReadonlyMap<string, S>
  readonly #sessions = new Map<string, S>()
  readonly stats = new Stats()
  #emptyWaiters: Array<() => void> = []

  constructor () {
    this.byId = this.#sessions
  }

  get (id: string): S | undefined {
    return this.#sessions.get(id)
  }

  values (): IterableIterator<S> {
    return this.#sessions.values()
  }

  get size (): number {
    return this.#sessions.size
  }

  add (session: S): void {
    this.#sessions.set(session.id, session)
  }

  remove (session: S): void {
    // A resumed session has the id of the one it resumes, which may leave after it came.
    if (this.#sessions.get(session.id) !== session) return
    this.#sessions.delete(session.id)
    if (this.#sessions.size === 0 && this.#emptyWaiters.length > 0) {
      const waiters = this.#emptyWaiters
      this.#emptyWaiters = []
      for (const resolve of waiters) resolve()
    }
  }

  /** Resolves once no session is left. */
  whenEmpty (): Promise<void> {
    if (this.#sessions.size === 0) return Promise.resolve()
    return new Promise((resolve) => { this.#emptyWaiters.push(resolve) })
  }

  clear (): void {
    this.#sessions.clear()
  }
}

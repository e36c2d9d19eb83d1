// The server's pings: one timer for the whole instance, not one per session. On each beat a
// session that has not answered the previous ping is cut off (its onDisconnected runs with
// 1006), so a peer that vanished behind a NAT is gone within two intervals.
import type { SessionRegistry } from './registry'
import { kHeartbeat, type Session } from './session'

export class Heartbeat {
  readonly #registry: SessionRegistry<Session>
  readonly #timer: NodeJS.Timeout

  constructor (registry: SessionRegistry<Session>, interval: number) {
    this.#registry = registry
    this.#timer = setInterval(() => this.#beat(), interval)
    this.#timer.unref()
  }

  #beat (): void {
    for (const session of this.#registry.values()) session[kHeartbeat]()
  }

  stop (): void {
    clearInterval(this.#timer)
  }
}

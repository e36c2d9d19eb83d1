// What is sent to a dropped session while it is away, kept in order for its resume, up to
// its route's maxBackpressure bytes: past that, nothing more is kept and the resume is
// refused ('overflow'), as a partial replay would be a lie.
import type { Encoded } from '../transport/frame'

export class Keeper {
  readonly #bound: number
  #bytes = 0
  #messages: Encoded[] | null = []

  constructor (bound: number) {
    this.#bound = bound
  }

  /** False once more was sent than the bound: what was kept is dropped. */
  get whole (): boolean {
    return this.#messages !== null
  }

  keep (encoded: Encoded): void {
    const messages = this.#messages
    if (messages === null) return
    this.#bytes += encoded.data.length
    if (this.#bytes > this.#bound) this.#messages = null
    else messages.push(encoded)
  }

  /** What was kept, oldest first; empty once it overflowed. */
  take (): Encoded[] {
    const messages = this.#messages ?? []
    this.#messages = []
    this.#bytes = 0
    return messages
  }
}

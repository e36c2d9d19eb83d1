// Ways for a test to await what happens on the server, with no timers but a deadline: a
// regression fails the test at once with what was awaited, not after tap's own timeout.

/**
 * How long a test waits for something that should happen before it fails: most of tap's
 * per-file timeout (TAP_TIMEOUT, in seconds: package.json's "timeout"; tap's default, 30, when
 * the file runs alone), so that a busy machine only makes a test slower, while a wait that never
 * ends still fails with what it awaited before tap kills the file with a bare "timeout!".
 */
const tapTimeout = Number(process.env.TAP_TIMEOUT)
export const DEADLINE = (tapTimeout > 0 ? tapTimeout : 30) * 900

/**
 * Resolves as `promise` does, or rejects after `ms` with an error that names what was awaited
 * (`what` may be a function, to describe the state at that moment).
 */
export async function within<T> (promise: Promise<T>, what: string | (() => string), ms = DEADLINE): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms for ${typeof what === 'string' ? what : what()}`)), ms)
  })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}

/** Keeps events and lets a test await the n-th one. */
export class Events<T> {
  readonly list: T[] = []
  #waiters: Array<{ n: number, resolve: () => void }> = []

  push (value: T): void {
    this.list.push(value)
    this.#waiters = this.#waiters.filter((w) => this.list.length < w.n || (w.resolve(), false))
  }

  async until (n: number): Promise<T[]> {
    if (this.list.length < n) {
      const reached = new Promise<void>((resolve) => this.#waiters.push({ n, resolve }))
      await within(reached, () => `event ${n} (${this.list.length} so far: ${JSON.stringify(this.list).slice(0, 200)})`)
    }
    return this.list.slice(0, n)
  }
}

/** A promise and the function that resolves it. */
export function gate (): { opened: Promise<void>, open: () => void } {
  let open!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  return { opened, open }
}

/**
 * Resolves once condition() holds, checking after each turn of the event loop; rejects after
 * `ms` naming the condition (its source, unless `what` says it better).
 */
export async function until (condition: () => boolean, what: string | (() => string) = String(condition), ms = DEADLINE): Promise<void> {
  const started = Date.now()
  while (!condition()) {
    if (Date.now() - started > ms) throw new Error(`still waiting after ${ms} ms for ${typeof what === 'string' ? what : what()}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** Resolves once check() resolves true, checking again after each answer; rejects past the deadline. */
export async function eventually (check: () => Promise<boolean>, what: string, ms = DEADLINE): Promise<void> {
  const started = Date.now()
  while (!await check()) {
    if (Date.now() - started > ms) throw new Error(`still waiting after ${ms} ms for ${what}`)
    // A check that answers at once (from memory, or Redis known to be away) must not starve the event loop.
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/**
 * Lets the event loop turn n times, to pace what a test sends. It proves nothing about what did
 * not happen meanwhile, which may just come later: await a later event, or check the state, instead.
 */
export async function turns (n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
}

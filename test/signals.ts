// Ways for a test to await what happens on the server, with no timers.

/** Keeps events and lets a test await the n-th one. */
export class Events<T> {
  readonly list: T[] = []
  #waiters: Array<{ n: number, resolve: () => void }> = []

  push (value: T): void {
    this.list.push(value)
    this.#waiters = this.#waiters.filter((w) => this.list.length < w.n || (w.resolve(), false))
  }

  async until (n: number): Promise<T[]> {
    if (this.list.length < n) await new Promise<void>((resolve) => this.#waiters.push({ n, resolve }))
    return this.list.slice(0, n)
  }
}

/** A promise and the function that resolves it. */
export function gate (): { opened: Promise<void>, open: () => void } {
  let open!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  return { opened, open }
}

/** Resolves once condition() holds, checking after each turn of the event loop. */
export async function until (condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve))
}

/** Lets the event loop turn n times, so that something that should not happen has had the chance to. */
export async function turns (n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
}

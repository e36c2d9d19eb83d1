// Waits for a promise, but not for ever: what the plugin waits for from outside (clients,
// handlers, Redis) must not hold a shutdown or a request without bound.

/**
 * Resolves as `promise` does, or with `late` after `ms` if it has not settled by then; a
 * rejection within `ms` passes through. The timer is cleared either way.
 */
export async function within<T, U> (promise: Promise<T>, ms: number, late: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<U>((resolve) => { timer = setTimeout(resolve, ms, late) })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Waits for a promise on behalf of several waiters, each until its own deadline
 * (performance.now(); earliest first): `expire` is called for each one whose deadline passes.
 * Resolves as `promise` does, or with null once every waiter has expired; a rejection passes
 * through.
 */
export async function withinEach<T, W extends { readonly deadline: number }> (promise: Promise<T>, waiters: readonly W[], expire: (waiter: W) => void): Promise<T | null> {
  const answered = promise.then((value) => ({ value }))
  answered.catch(() => {}) // given up on, it may still fail
  let next = 0
  for (;;) {
    const now = performance.now()
    while (next < waiters.length && waiters[next]!.deadline <= now) expire(waiters[next++]!)
    if (next === waiters.length) return null
    const result = await within(answered, waiters[next]!.deadline - now, null)
    if (result !== null) return result.value
  }
}

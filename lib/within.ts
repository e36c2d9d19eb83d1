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

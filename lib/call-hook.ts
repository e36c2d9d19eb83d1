// Calls an application callback that must not take the plugin down (onBackpressure,
// onDisconnected, the Redis adapter's onError and onReady): what it throws, or what its
// promise rejects with when it is async, goes to `failed`, which logs it.

/** True for a promise, or anything with a then() method, as `await` takes it. */
export function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function'
}

/** Calls `hook`; a promise when it is async, which settles with it and never rejects; undefined otherwise. */
export function callHook<A extends unknown[]> (hook: (...args: A) => unknown, args: A, failed: (error: unknown) => void): Promise<void> | undefined {
  let result: unknown
  try {
    result = hook(...args)
  } catch (error) {
    failed(error)
    return undefined
  }
  return isThenable(result) ? Promise.resolve(result).then(() => {}, failed) : undefined
}

// Calls an application callback that must not take the plugin down (onBackpressure, the Redis
// adapter's onError and onReady): what it throws, or what its promise rejects with when it is
// async, goes to `failed`, which logs it. The callback is not awaited.
export function callHook<A extends unknown[]> (hook: (...args: A) => unknown, args: A, failed: (error: unknown) => void): void {
  let result: unknown
  try {
    result = hook(...args)
  } catch (error) {
    failed(error)
    return
  }
  if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
    (result as PromiseLike<unknown>).then(undefined, failed)
  }
}

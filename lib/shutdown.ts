// app.close(): every session is closed with 1001 and its onDisconnected awaited, for at most
// closeTimeout. Then whatever is left is dropped: clients that did not answer the close
// handshake are cut off, and handlers that have not settled are no longer waited for (see
// Session.abandon), so shutdown takes closeTimeout at most, whatever the clients and the
// handlers do.
import type { RoomRegistry } from './rooms'

export async function closeAllSessions (registry: RoomRegistry, closeTimeout: number): Promise<void> {
  for (const session of registry.sessions.values()) session.shutdown()
  if (registry.sessions.size === 0) return

  let timer: NodeJS.Timeout | undefined
  const timedOut = await Promise.race([
    registry.whenEmpty().then(() => false),
    new Promise<boolean>((resolve) => { timer = setTimeout(resolve, closeTimeout, true) })
  ])
  clearTimeout(timer)
  if (timedOut) {
    for (const session of [...registry.sessions.values()]) session.abandon()
  }
}

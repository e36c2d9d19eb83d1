// app.close(): every session is closed with 1001 and its onDisconnected awaited. Clients that
// do not answer the close handshake within closeTimeout are cut off, so shutdown is bounded.
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
    for (const session of registry.sessions.values()) session.terminate()
  }
  await registry.whenEmpty()
}

// What the rooms need of a member: a session, seen from the rooms. The parts only the rooms
// use are symbols, out of reach of a user's session.
import type { Encoded } from '../transport/frame'

export const kFinished = Symbol('fastify-websocket-rooms.finished')
export const kSendEncoded = Symbol('fastify-websocket-rooms.sendEncoded')

export interface Member {
  readonly id: string
  /** True once the member has closed and left for good: it joins nothing more. */
  readonly [kFinished]: boolean
  isOpen (): boolean
  close (code: number, reason: string): void
  /**
   * Sends a message encoded and framed once for every member. `replay`: part of a replay whose
   * size the app's configuration bounds (a history, what was kept for a resume), exempt from
   * the bound on one turn's burst.
   */
  [kSendEncoded] (encoded: Encoded, replay?: boolean): void
}

// session.room(name): a handle on a room bound to one member; joining is explicit.
import type { RecoverResult, RoomHistory, RoomPresence, StreamPosition, WebSocketRoom } from '../../types/index'
import { assertPosition, historyQuery, type BuildMessage } from '../history/log'
import type { Message } from '../transport/frame'
import type { Member } from './member'
import type { RoomIndex } from './room-index'

export class RoomHandle<M extends Member = Member> implements WebSocketRoom {
  readonly #index: RoomIndex<M>
  readonly #member: M
  readonly #name: string
  /** JSON text of a value, as the member's route writes it (its outbound schema, or JSON.stringify). */
  readonly #serialize: (value: unknown) => string

  constructor (index: RoomIndex<M>, member: M, name: string, serialize: (value: unknown) => string) {
    this.#index = index
    this.#member = member
    this.#name = name
    this.#serialize = serialize
  }

  join (): this {
    this.#index.join(this.#member, this.#name)
    return this
  }

  leave (): this {
    this.#index.leave(this.#member, this.#name)
    return this
  }

  broadcast (message: Message): void {
    this.#index.broadcast(this.#name, message, null)
  }

  broadcastExcept (message: Message): void {
    this.#index.broadcast(this.#name, message, this.#member)
  }

  broadcastJson (value: unknown): void {
    this.#index.broadcast(this.#name, this.#serialize(value), null)
  }

  broadcastExceptJson (value: unknown): void {
    this.#index.broadcast(this.#name, this.#serialize(value), this.#member)
  }

  publish (build: BuildMessage): Promise<StreamPosition> {
    return this.#index.roomHistory.publish(this.#name, build, null)
  }

  publishExcept (build: BuildMessage): Promise<StreamPosition> {
    return this.#index.roomHistory.publish(this.#name, build, this.#member)
  }

  recover (position: StreamPosition): Promise<RecoverResult> {
    assertPosition(position, 'position')
    return this.#index.roomHistory.recover(this.#member, this.#name, position)
  }

  history (query?: { limit?: number, since?: StreamPosition }): Promise<RoomHistory> {
    return this.#index.roomHistory.read(this.#name, historyQuery(query, this.#index.history?.size ?? 0))
  }

  members (): number {
    return this.#index.memberCount(this.#name)
  }

  clusterMembers (): Promise<number> {
    return this.#index.clusterMembers(this.#name)
  }

  presence (): Promise<RoomPresence> {
    return this.#index.presence(this.#name)
  }

  has (): boolean {
    return this.#index.has(this.#member, this.#name)
  }

  getName (): string {
    return this.#name
  }
}

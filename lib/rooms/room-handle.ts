// session.room(name): a handle on a room bound to one member; joining is explicit. What every
// handle does is ./room-view's.
import type { RecoverResult, StreamPosition, WebSocketRoom } from '../../types/index'
import { assertPosition, type BuildMessage } from '../history/log'
import type { Message } from '../transport/frame'
import type { Member } from './member'
import type { RoomIndex } from './room-index'
import { RoomView, kEvents, kIndex, kName, kSerialize, type EventEncoder } from './room-view'

export class RoomHandle<M extends Member = Member> extends RoomView<M> implements WebSocketRoom {
  readonly #member: M

  constructor (index: RoomIndex<M>, member: M, name: string, serialize: (value: unknown) => string, events: EventEncoder) {
    super(index, name, serialize, events)
    this.#member = member
  }

  join (): this {
    this[kIndex].join(this.#member, this[kName])
    return this
  }

  leave (): this {
    this[kIndex].leave(this.#member, this[kName])
    return this
  }

  broadcastExcept (message: Message): void {
    this[kIndex].broadcast(this[kName], message, this.#member)
  }

  broadcastExceptJson (value: unknown): void {
    this[kIndex].broadcast(this[kName], this[kSerialize](value), this.#member)
  }

  emitExcept (type: string, data: unknown): void {
    this[kIndex].broadcast(this[kName], this[kEvents].encodeEvent(type, data), this.#member)
  }

  publishExcept (build: BuildMessage): Promise<StreamPosition> {
    return this[kIndex].roomHistory.publish(this[kName], build, this.#member)
  }

  recover (position: StreamPosition): Promise<RecoverResult> {
    assertPosition(position, 'position')
    return this[kIndex].roomHistory.recover(this.#member, this[kName], position)
  }

  has (): boolean {
    return this[kIndex].has(this.#member, this[kName])
  }
}

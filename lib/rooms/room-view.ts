// What every handle on a room does, whoever holds it (a session's session.room(name), or
// app.websocketRooms.room(name) from an HTTP route or a job): send to every member, publish,
// read the history and the counts. The subclasses add what is theirs (a member's join,
// leave and sends that leave it out; closing the room's sessions); they reach the index and
// the name through symbols, out of reach of a user's handle.
import type { RoomHistory, RoomPresence, StreamPosition } from '../../types/index'
import { historyQuery, type BuildMessage } from '../history/log'
import type { Message } from '../transport/frame'
import type { Member } from './member'
import type { RoomIndex } from './room-index'

export const kIndex = Symbol('fastify-websocket-rooms.index')
export const kName = Symbol('fastify-websocket-rooms.name')
export const kSerialize = Symbol('fastify-websocket-rooms.serialize')
export const kEvents = Symbol('fastify-websocket-rooms.events')

/** Encodes an event (`{"type":...,"data":...}`) through its schema: a route's events, or every route's. */
export interface EventEncoder {
  /** The JSON text of the event; a TypeError for a type that is not one. */
  encodeEvent (type: string, data: unknown): string
}

export abstract class RoomView<M extends Member> {
  readonly #index: RoomIndex<M>
  readonly #name: string
  /** JSON text of a value: the member's route's outbound schema, or JSON.stringify. */
  readonly #serialize: (value: unknown) => string
  readonly #events: EventEncoder

  constructor (index: RoomIndex<M>, name: string, serialize: (value: unknown) => string, events: EventEncoder) {
    this.#index = index
    this.#name = name
    this.#serialize = serialize
    this.#events = events
  }

  get [kEvents] (): EventEncoder {
    return this.#events
  }

  get [kIndex] (): RoomIndex<M> {
    return this.#index
  }

  get [kName] (): string {
    return this.#name
  }

  get [kSerialize] (): (value: unknown) => string {
    return this.#serialize
  }

  broadcast (message: Message): void {
    this.#index.broadcast(this.#name, message, null)
  }

  broadcastJson (value: unknown): void {
    this.#index.broadcast(this.#name, this.#serialize(value), null)
  }

  /** An event to every member, encoded once (the same path as broadcastJson). */
  emit (type: string, data: unknown): void {
    this.#index.broadcast(this.#name, this.#events.encodeEvent(type, data), null)
  }

  publish (build: BuildMessage): Promise<StreamPosition> {
    return this.#index.roomHistory.publish(this.#name, build, null)
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

  getName (): string {
    return this.#name
  }
}

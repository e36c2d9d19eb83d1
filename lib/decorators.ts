// The objects behind the instance's decorators: app.websocketRooms (rooms seen from HTTP
// routes and jobs, and the counters) and app.websocketSessions (the open sessions, read-only).
import type { AsyncApiDocument, BroadcastTarget, ServerRoom, WebsocketRooms, WebsocketRoomsStats } from '../types/index'
import { assertCloseArguments, closeCodes } from './close-codes'
import { InvalidArgumentError, describe } from './errors'
import type { RoomIndex } from './rooms/room-index'
import { RoomView, kIndex, kName, type EventEncoder } from './rooms/room-view'
import type { SessionRegistry } from './session/registry'
import { stringify } from './session/message-codec'
import type { Session } from './session/session'
import type { Message } from './transport/frame'

/** app.websocketRooms.room(name). */
class ServerRoomHandle extends RoomView<Session> implements ServerRoom {
  constructor (rooms: RoomIndex<Session>, name: string, events: EventEncoder) {
    super(rooms, name, stringify, events)
  }

  sessions (): Session[] {
    return this[kIndex].memberList(this[kName])
  }

  disconnectAll (code: number = closeCodes.NORMAL, reason: string = ''): Promise<void> {
    assertCloseArguments(code, reason)
    return this[kIndex].disconnectRoom(this[kName], code, reason)
  }
}

/** A room name or a list of them, checked, each once; `name`: the argument's, for the TypeError. */
function roomList (index: RoomIndex<Session>, rooms: unknown, name: string): string[] {
  const list = typeof rooms === 'string' ? [rooms] : rooms
  if (!Array.isArray(list)) throw new InvalidArgumentError(name, 'a room name or an array of room names', describe(rooms))
  for (const room of list) index.assertRoomName(room)
  return [...new Set(list as string[])]
}

/** app.websocketRooms.to(rooms).except(rooms): the members of some rooms, but not of others, on every node. */
class Recipients implements BroadcastTarget {
  readonly #rooms: RoomIndex<Session>
  readonly #to: string[]
  readonly #except: string[]
  readonly #events: EventEncoder

  constructor (rooms: RoomIndex<Session>, to: string[], except: string[], events: EventEncoder) {
    this.#rooms = rooms
    this.#to = to
    this.#except = except
    this.#events = events
  }

  except (rooms: string | string[]): BroadcastTarget {
    return new Recipients(this.#rooms, this.#to, [...new Set([...this.#except, ...roomList(this.#rooms, rooms, 'except')])], this.#events)
  }

  /** An event (the routes' events: see EventCatalog) to each recipient once, encoded once. */
  emit (type: string, data: unknown): void {
    this.#rooms.broadcastTo(this.#to, this.#except, this.#events.encodeEvent(type, data))
  }

  broadcast (message: Message): void {
    this.#rooms.broadcastTo(this.#to, this.#except, message)
  }

  broadcastJson (value: unknown): void {
    this.#rooms.broadcastTo(this.#to, this.#except, stringify(value))
  }
}

/** The app.websocketRooms decorator. */
export class ServerRooms implements WebsocketRooms {
  readonly #rooms: RoomIndex<Session>
  readonly #sessions: SessionRegistry<Session>
  readonly #events: EventEncoder
  readonly #asyncapi: () => Record<string, unknown>

  constructor (rooms: RoomIndex<Session>, sessions: SessionRegistry<Session>, events: EventEncoder, asyncapi: () => Record<string, unknown>) {
    this.#rooms = rooms
    this.#sessions = sessions
    this.#events = events
    this.#asyncapi = asyncapi
  }

  asyncapi (): AsyncApiDocument {
    return this.#asyncapi() as unknown as AsyncApiDocument
  }

  get nodeId (): string {
    return this.#rooms.nodeId
  }

  room (name: string): ServerRoom {
    this.#rooms.assertRoomName(name)
    return new ServerRoomHandle(this.#rooms, name, this.#events)
  }

  roomNames (): string[] {
    return [...this.#rooms.roomNames()]
  }

  to (rooms: string | string[]): BroadcastTarget {
    return new Recipients(this.#rooms, roomList(this.#rooms, rooms, 'rooms'), [], this.#events)
  }

  disconnectSession (sessionId: string, code: number = closeCodes.NORMAL, reason: string = ''): Promise<void> {
    if (typeof sessionId !== 'string') throw new InvalidArgumentError('sessionId', 'a string', describe(sessionId))
    assertCloseArguments(code, reason)
    return this.#rooms.disconnectSession(sessionId, code, reason)
  }

  stats (): WebsocketRoomsStats {
    const s = this.#sessions.stats
    return {
      sessions: this.#sessions.size,
      rooms: this.#rooms.size,
      pausedSessions: s.paused,
      messagesIn: s.messagesIn,
      bytesIn: s.bytesIn,
      messagesOut: s.messagesOut,
      bytesOut: s.bytesOut,
      invalidMessages: s.invalidMessages,
      dropped: { backpressure: s.droppedBackpressure, rateLimit: s.droppedRateLimit },
      closed: {
        heartbeat: s.closedHeartbeat,
        backpressure: s.closedBackpressure,
        rateLimit: s.closedRateLimit,
        unsupportedData: s.closedUnsupportedData,
        handlerError: s.closedHandlerError,
        invalidMessage: s.closedInvalidMessage
      },
      refused: { origin: s.refusedOrigin, maxSessions: s.refusedMaxSessions },
      cluster: this.#rooms.clusterStats(),
      history: this.#rooms.history === null ? null : { ...this.#rooms.roomHistory.stats }
    }
  }
}

/** The app.websocketSessions decorator: the registry's sessions, readable but not writable. */
export class SessionsView implements ReadonlyMap<string, Session> {
  readonly #sessions: ReadonlyMap<string, Session>

  constructor (registry: SessionRegistry<Session>) {
    this.#sessions = registry.byId
  }

  get size (): number { return this.#sessions.size }
  get (id: string): Session | undefined { return this.#sessions.get(id) }
  has (id: string): boolean { return this.#sessions.has(id) }
  keys (): MapIterator<string> { return this.#sessions.keys() }
  values (): MapIterator<Session> { return this.#sessions.values() }
  entries (): MapIterator<[string, Session]> { return this.#sessions.entries() }
  [Symbol.iterator] (): MapIterator<[string, Session]> { return this.#sessions.entries() }
  forEach (callback: (value: Session, key: string, map: ReadonlyMap<string, Session>) => void, thisArg?: unknown): void {
    for (const [id, session] of this.#sessions) callback.call(thisArg, session, id, this)
  }
}

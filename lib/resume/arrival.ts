// A session that comes from another server (../resume across servers): it takes its place in
// its rooms (nothing told to onPresence: it moved, it did not leave), is sent what was kept
// for it, then what its rooms published since the position it had in each, read from the
// history, then the live ones; its onOpen waits for that. And the other way, the positions a
// session leaving this server takes with it.
import type { Encoded } from '../transport/frame'
import { kSendEncoded, type Member } from '../rooms/member'
import { unpackKept } from './portable'
import type { Portable, PortableRoom, ResumeStore } from './store'

/** A stream position: the epoch and offset of a published message. */
export interface Position {
  epoch: string
  offset: number
}

/** What a resume needs of the rooms' history (../rooms/room-history). */
export interface ResumeHistory<S> {
  /** The history option; null when off (nothing is published, nothing to replay). */
  readonly limits: { size: number } | null
  /** The last published message this server delivered in the room, if it delivered any since the room had members here. */
  delivered (name: string): Position | undefined
  /** The same, or the stream's top when none was delivered here. */
  positionOf (name: string): Promise<Position>
  /** What the room published after `since`; null when the history no longer holds it all. */
  missed (name: string, since: Position): Promise<{ encoded: Encoded[], epoch: string, top: number } | null>
  /** The member, in the room already, is sent what was published after `top`, then the live ones; false when that cannot be whole. */
  topUp (member: S, name: string, epoch: string, top: number): Promise<boolean>
}

/** What one room of a session coming from another server published while it was away. */
export interface Replay {
  name: string
  encoded: Encoded[]
  epoch: string
  top: number
}

interface ArrivalRooms<S> {
  adopt (member: S, names: string[], info: string): void
  presenceLeft (name: string, entries: Array<{ sessionId: string, nodeId: string, info: string }>): void
  roomsOf (member: S): string[]
  readonly roomHistory: ResumeHistory<S>
}

export class Arrivals<S extends Member> {
  readonly #rooms: ArrivalRooms<S>
  readonly #store: ResumeStore<S>
  /** Sessions whose onOpen waits for the live messages of their rooms to be caught up. */
  readonly #ready = new Map<S, Promise<unknown>>()

  constructor (rooms: ArrivalRooms<S>, store: ResumeStore<S>) {
    this.#rooms = rooms
    this.#store = store
  }

  /** What the session's rooms published since it left its server; null when the history no longer holds it all. */
  async missed (portable: Portable): Promise<Replay[] | null> {
    const history = this.#rooms.roomHistory
    if (history.limits === null) return []
    const rooms = portable.rooms.filter((room) => room.epoch !== null)
    // Read at once: each read waits for Redis at most connectTimeout, so all of them do too.
    const missed = await Promise.all(rooms.map((room) => history.missed(room.name, { epoch: room.epoch!, offset: room.offset })))
    if (missed.includes(null)) return null
    return rooms.map((room, i) => ({ name: room.name, ...missed[i]! }))
  }

  /** The session starts here: in its rooms, sent what was kept for it and what its rooms published. */
  arrive (session: S, portable: Portable, replay: Replay[]): void {
    this.#rooms.adopt(session, portable.rooms.map((room) => room.name), portable.info)
    this.#store.resumed(portable)
    for (const encoded of unpackKept(portable.kept)) session[kSendEncoded](encoded, true)
    const history = this.#rooms.roomHistory
    const caughtUp: Array<Promise<boolean>> = []
    for (const room of replay) {
      for (const encoded of room.encoded) session[kSendEncoded](encoded, true)
      // From here, the room's live messages are held for it until the read since `top` is sent.
      caughtUp.push(history.topUp(session, room.name, room.epoch, room.top))
    }
    if (caughtUp.length === 0) return
    this.#ready.set(session, Promise.all(caughtUp).then((whole) => {
      // Published past what the history holds between two reads: it is not whole, so it does not go on as if it were.
      if (!whole.every(Boolean)) session.close(1011, 'resume incomplete')
    }, () => { session.close(1011, 'resume incomplete') }))
  }

  opening (session: S, onOpen: (session: S) => unknown): unknown {
    const ready = this.#ready.get(session)
    if (ready === undefined) return onOpen(session)
    this.#ready.delete(session)
    return ready.then(() => onOpen(session))
  }

  /**
   * Where the session stands in each of its rooms' streams, for its resume elsewhere; `read`:
   * the positions read for other sessions leaving at once, so that a room is read once.
   */
  async positions (session: S, read = new Map<string, Promise<Position>>()): Promise<PortableRoom[]> {
    const names = this.#rooms.roomsOf(session)
    const history = this.#rooms.roomHistory
    if (history.limits === null) return names.map((name) => ({ name, epoch: null, offset: 0 }))
    return await Promise.all(names.map(async (name) => {
      let position = read.get(name)
      if (position === undefined) read.set(name, position = history.positionOf(name))
      return { name, ...await position }
    }))
  }

  /** The positions, moved on to what was delivered here meanwhile (it went to the session's keeper). */
  latest (rooms: PortableRoom[]): PortableRoom[] {
    const history = this.#rooms.roomHistory
    return rooms.map((room) => {
      const delivered = room.epoch === null ? undefined : history.delivered(room.name)
      return delivered === undefined ? room : { name: room.name, ...delivered }
    })
  }

  /**
   * A session taken over from another server that does not start here (refused, or its new
   * connection closed first): it ends, without onClose (its server let go of it); its leaves
   * are told here, and its holder, if parked, lets go of its entries.
   */
  ended (portable: Portable, nodeId: string): void {
    this.#store.resumed(portable)
    for (const room of portable.rooms) this.#rooms.presenceLeft(room.name, [{ sessionId: portable.id, nodeId, info: portable.info }])
  }

  clear (): void {
    this.#ready.clear()
  }
}

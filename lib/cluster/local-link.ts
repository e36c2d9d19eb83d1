// The rooms' port for an instance with no cluster: this process is the only node. Counts and
// presence are this node's own, commands and broadcasts have no other node to reach, the
// history is kept in memory (../history/memory-log), and a room's life cycle (onRoomOccupied,
// onRoomVacated) is told from this node's membership, once a turn is over: a room created and
// emptied within one turn is neither.
import type { WebsocketRoomsClusterStats } from '../../types/index'
import { MemoryLog } from '../history/memory-log'
import { kAdapter, type Adapter, type ClusterHost, type ClusterLink, type StoredEntry } from '../rooms/port'

export class LocalLink implements ClusterLink {
  readonly history: MemoryLog | null
  readonly #host: ClusterHost
  /** Rooms with members at the end of the last turn; kept only when the app tracks occupancy. */
  readonly #occupied = new Set<string>()
  /** Rooms whose membership changed this turn. */
  #changed = new Set<string>()

  constructor (host: ClusterHost) {
    this.#host = host
    this.history = host.history === null ? null : new MemoryLog(host.history, host.deliverPublished)
  }

  roomChanged (name: string): void {
    if (!this.#host.tracksOccupancy) return
    if (this.#changed.size === 0) setImmediate(this.#tellOccupancy)
    this.#changed.add(name)
  }

  readonly #tellOccupancy = (): void => {
    const changed = this.#changed
    this.#changed = new Set()
    for (const name of changed) {
      const occupied = this.#host.memberCount(name) > 0
      if (occupied === this.#occupied.has(name)) continue
      if (occupied) {
        this.#occupied.add(name)
        this.#host.roomOccupied(name)
      } else {
        this.#occupied.delete(name)
        this.#host.roomVacated(name)
      }
    }
  }

  presenceChanged (): void {}

  presence (name: string): Promise<{ entries: StoredEntry[], complete: boolean }> {
    return Promise.resolve({ entries: this.#host.localPresence(name), complete: true })
  }

  publish (): void {}

  command (): Promise<void> {
    return Promise.resolve()
  }

  clusterMembers (name: string): Promise<number> {
    return Promise.resolve(this.#host.memberCount(name))
  }

  stats (): WebsocketRoomsClusterStats | null {
    return null
  }

  close (): Promise<void> {
    this.history?.close()
    this.#changed.clear()
    this.#occupied.clear()
    return Promise.resolve()
  }
}

/** The engine of an instance without the adapter option. */
export const localAdapter: Adapter = Object.freeze({
  [kAdapter]: 'local',
  connectTimeout: 0,
  start: (host: ClusterHost): Promise<ClusterLink> => Promise.resolve(new LocalLink(host))
})

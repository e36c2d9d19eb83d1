// Presence changes, gathered per room over presenceInterval and handed to onPresence as one
// diff: a session that joins and leaves within one window appears in neither list, one that
// changes its info appears as a leave of the old entry and a join of the new one, and a mass
// join costs one call per room and window, not one per session.
import type { PresenceDiff, PresenceEntry } from '../../types/index'
import type { StoredEntry } from './port'

export type { StoredEntry }

interface RoomChanges {
  joins: Map<string, StoredEntry>
  leaves: Map<string, StoredEntry>
}

export function toEntry (stored: StoredEntry): PresenceEntry {
  return { sessionId: stored.sessionId, nodeId: stored.nodeId, info: JSON.parse(stored.info) }
}

export class PresenceChanges {
  readonly #interval: number
  readonly #emit: (room: string, diff: PresenceDiff) => void
  #gathered = new Map<string, RoomChanges>()
  #timer: NodeJS.Timeout | null = null

  constructor (interval: number, emit: (room: string, diff: PresenceDiff) => void) {
    this.#interval = interval
    this.#emit = emit
  }

  join (room: string, entry: StoredEntry): void {
    const changes = this.#changesOf(room)
    const left = changes.leaves.get(entry.sessionId)
    // Left and back within the window, as it was: nothing happened.
    if (left !== undefined && left.info === entry.info && left.nodeId === entry.nodeId) changes.leaves.delete(entry.sessionId)
    else changes.joins.set(entry.sessionId, entry)
  }

  leave (room: string, entry: StoredEntry): void {
    const changes = this.#changesOf(room)
    // Joined within the window: the join was never told, so the leave need not be.
    if (changes.joins.delete(entry.sessionId)) return
    changes.leaves.set(entry.sessionId, entry)
  }

  #changesOf (room: string): RoomChanges {
    let changes = this.#gathered.get(room)
    if (changes === undefined) {
      changes = { joins: new Map(), leaves: new Map() }
      this.#gathered.set(room, changes)
    }
    this.#timer ??= setTimeout(this.flush, this.#interval).unref()
    return changes
  }

  /** Hands every room's gathered changes to onPresence, a room whose changes cancelled out excepted. */
  readonly flush = (): void => {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    const pending = this.#gathered
    this.#gathered = new Map()
    for (const [room, { joins, leaves }] of pending) {
      if (joins.size === 0 && leaves.size === 0) continue
      this.#emit(room, { joins: [...joins.values()].map(toEntry), leaves: [...leaves.values()].map(toEntry) })
    }
  }

  /** Drops what is gathered, unsaid. */
  clear (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#gathered.clear()
  }
}

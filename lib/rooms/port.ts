// The port the rooms offer a cluster engine, owned by the rooms: what the room index hosts
// (ClusterHost), what it uses (ClusterLink), and the shapes that cross it (presence entries,
// commands for every node). The engines implement it in ../cluster: the local one (this
// process only, ../cluster/local-link) and Redis's (../cluster/redis-adapter). The index
// always has a link, so rooms behave the same with and without a cluster, by one code path.
import type { FastifyBaseLogger } from 'fastify'
import type { WebsocketRoomsClusterStats } from '../../types/index'
import type { HistoryLimits, HistoryLog } from '../history/log'
import type { Encoded } from '../transport/frame'

/** Brand of the values the `adapter` option accepts (what redisAdapter() returns). */
export const kAdapter = Symbol.for('fastify-websocket-rooms.adapter')

/** A presence entry as kept and carried between nodes: the info as JSON text, compared and stored as it is. */
export interface StoredEntry {
  sessionId: string
  nodeId: string
  info: string
}

/** Commands for every node: a broadcast to the members of some rooms but not of others, closing a room's members, closing one session wherever it lives. */
export const ControlKind = Object.freeze({ Broadcast: 1, DisconnectRoom: 2, DisconnectSession: 3 } as const)

export type ControlCommand =
  | { kind: typeof ControlKind.Broadcast, rooms: string[], except: string[], encoded: Encoded }
  | { kind: typeof ControlKind.DisconnectRoom, room: string, code: number, reason: string }
  | { kind: typeof ControlKind.DisconnectSession, sessionId: string, code: number, reason: string }

/** The app's tracing (option tracing), as the cluster carries it: see ../observability/tracing. */
export interface ClusterTracing {
  /** The active trace context, as a W3C traceparent, or null. */
  current (): string | null
  /** Runs the delivery of another node's broadcast in a span linked to the one that sent it. */
  delivered (traceparent: string, room: string, deliver: () => void): void
}

/** What a cluster node needs from this instance. */
export interface ClusterHost {
  /** The app's tracing; null when off. */
  readonly clusterTracing: ClusterTracing | null
  log: FastifyBaseLogger
  /** This instance's id, as a node of the cluster. */
  readonly nodeId: string
  /** Members of a room on this node. */
  memberCount (name: string): number
  /** Names of the rooms with members on this node. */
  roomNames (): Iterable<string>
  /** Hands a broadcast from another node to this node's members of the room. */
  deliver (name: string, encoded: Encoded): void
  /** The history option; null when off. */
  readonly history: HistoryLimits | null
  /** Hands a published message (any node's, this one's too) to this node's members of the room but `exceptId`. */
  deliverPublished (name: string, epoch: string, offset: number, encoded: Encoded, exceptId: string | null): void
  /** This node's presence entries of a room. */
  localPresence (name: string): StoredEntry[]
  /** Members of a node that died, gone from a room: told once in the cluster, by this node. */
  presenceLeft (name: string, entries: StoredEntry[]): void
  /** This node's members of a room, told again after the cluster took this node for dead. */
  presenceJoined (name: string, entries: StoredEntry[]): void
  /** Carries out a command another node sent to every node, for this node's sessions. */
  control (command: ControlCommand): void
  /** The app listens for rooms getting their first member and losing their last, on any node. */
  readonly tracksOccupancy: boolean
  /** The app listens for presence changes (onPresence). */
  readonly tracksPresence: boolean
  /** A room got its first member in the cluster (told by the node where it joined). */
  roomOccupied (name: string): void
  /** A room lost its last member in the cluster (told by the node where it left, or that found its node dead). */
  roomVacated (name: string): void
}

/** A running cluster node (this process alone, without a cluster). */
export interface ClusterLink {
  /** A room's membership on this node changed (joined, left, created, emptied). */
  roomChanged (name: string): void
  /** A member's presence entry in a room changed: its info (JSON text), or null when it left. */
  presenceChanged (name: string, sessionId: string, info: string | null): void
  /** Every node's presence entries of a room; complete: false when some could not be read. */
  presence (name: string): Promise<{ entries: StoredEntry[], complete: boolean }>
  /** The rooms' history, kept where every node reads it; null when the history option is off. */
  readonly history: HistoryLog | null
  /** Sends a broadcast, already delivered on this node, to the other nodes. */
  publish (name: string, encoded: Encoded): void
  /**
   * Sends a command to every other node, at most once. A broadcast is fire and forget; a
   * command that closes sessions resolves once the backend has it, and rejects with
   * FST_WS_ROOMS_REDIS_UNAVAILABLE when it was not sent or not answered in time (then no node
   * carries it out later).
   */
  command (command: ControlCommand): Promise<void>
  /** Members of a room on every node. */
  clusterMembers (name: string): Promise<number>
  /** The cluster's counters for stats(); null without a cluster. */
  stats (): WebsocketRoomsClusterStats | null
  /** Removes this node from the cluster and releases what it opened. */
  close (): Promise<void>
}

export interface Adapter {
  /** The adapter's kind, for messages. */
  readonly [kAdapter]: string
  /** The longest the adapter waits for its backend, at start and at close, in ms. */
  readonly connectTimeout: number
  start (host: ClusterHost): Promise<ClusterLink>
}

export function isAdapter (value: unknown): value is Adapter {
  return value !== null && typeof value === 'object' && typeof (value as Partial<Adapter>)[kAdapter] === 'string' &&
    typeof (value as Partial<Adapter>).start === 'function'
}

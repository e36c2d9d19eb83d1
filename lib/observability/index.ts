// An instance's observers, started at registration from its options: the handler runs'
// tracing hook (always there: a diagnostics_channel subscriber may come at any time), the
// Prometheus metrics (option metrics) and the OpenTelemetry tracing (option tracing).
import type { ResolvedOptions } from '../options'
import type { RoomIndex } from '../rooms/room-index'
import { HandlerRuns } from './handler-run'
import { registerMetrics, type MetricsSource } from './metrics'
import { Tracing } from './tracing'

export interface Observers {
  handlerRuns: HandlerRuns
  /** The counters of what a route's sessions are sent, made once per route path. */
  route (path: string): { messages: number, bytes: number }
  close (): void
}

export function startObservers (options: Pick<ResolvedOptions, 'metrics' | 'tracing'>, rooms: RoomIndex<any>, source: Omit<MetricsSource, 'nodeId' | 'routes' | 'rooms'>): Observers {
  const handlerRuns = new HandlerRuns(rooms.nodeId)
  const routes = new Map<string, { messages: number, bytes: number }>()
  const unregister = options.metrics === null ? null : registerMetrics(options.metrics, { ...source, nodeId: rooms.nodeId, routes, rooms })
  let tracing: Tracing | null = null
  if (options.tracing) {
    tracing = new Tracing(rooms.nodeId, (require('../../../package.json') as { version: string }).version)
    handlerRuns.tracer = tracing
    rooms.clusterTracing = tracing
  }
  return {
    handlerRuns,
    route (path) {
      let sent = routes.get(path)
      if (sent === undefined) routes.set(path, sent = { messages: 0, bytes: 0 })
      return sent
    },
    close () {
      unregister?.()
      tracing?.close()
    }
  }
}

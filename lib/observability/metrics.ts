// Prometheus metrics through prom-client (loaded by ./settings only when the option is on).
// Counts of events come from the probe points every other observer uses (./channels): the
// metrics subscribe to them, and count what comes from their own instances. Everything that
// is a state (sessions, rooms, memberships, Redis's backlog) or a count the plugin already
// keeps is read from the plugin at scrape time (collect), never kept in step by hand.
// Labels are bounded: route paths, event names, message types, close codes, refusal reasons.
//
// The instances that register with one registry and prefix share one set of metrics: their
// series add up, as the servers of one process. Distinct prefixes keep them apart.
import diagnosticsChannel from 'node:diagnostics_channel'
import type { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { bulkHistogram, type BulkHistogram } from '../transport/prom-histogram'
import { InvalidOptionError } from '../errors'
import { channels, handlerRun, type BroadcastEvent, type HandlerRunContext, type HandshakeRefusedEvent, type MessageInEvent, type PublishEvent, type SessionCloseEvent } from './channels'
import type { MetricsSettings } from './settings'

/** What one instance offers the metrics to read at scrape time. */
export interface MetricsSource {
  readonly nodeId: string
  /** The route path of each open session. */
  sessionRoutes (): Iterable<string>
  /** Each route's path, and what was sent to its sessions. */
  readonly routes: ReadonlyMap<string, { readonly messages: number, readonly bytes: number }>
  readonly rooms: { readonly size: number, roomNames (): Iterable<string>, memberCount (name: string): number }
  stats (): { dropped: { backpressure: number }, closed: { backpressure: number }, cluster: { connected: boolean, publishBacklog: number, publishFailed: number } | null, history: { recovered: number, notRecovered: number, replayed: number } | null }
}

const kStarted = Symbol('fastify-websocket-rooms.metrics.started')
type Timed = HandlerRunContext & { [kStarted]?: number }

/** Sets a counter or gauge to totals read from the plugin. */
function totals (metric: Counter | Gauge, read: (add: (labels: Record<string, string>, value: number) => void) => void): void {
  const values = new Map<string, { labels: Record<string, string>, value: number }>()
  read((labels, value) => {
    const key = JSON.stringify(labels)
    const entry = values.get(key)
    if (entry === undefined) values.set(key, { labels, value })
    else entry.value += value
  })
  metric.reset()
  for (const { labels, value } of values.values()) {
    if ('set' in metric) metric.set(labels, value)
    else metric.inc(labels, value)
  }
}

const sets = new WeakMap<Registry, Map<string, MetricSet>>()

/** Registers an instance's metrics; returns what unregisters them (at app.close()). */
export function registerMetrics (settings: MetricsSettings, source: MetricsSource): () => void {
  let byPrefix = sets.get(settings.registry)
  if (byPrefix === undefined) sets.set(settings.registry, byPrefix = new Map())
  let set = byPrefix.get(settings.prefix)
  if (set === undefined) byPrefix.set(settings.prefix, set = new MetricSet(settings))
  set.sources.set(source.nodeId, source)
  // Redis's series only where there is a Redis: a 0 from a server without one would alarm.
  if (source.stats().cluster !== null) set.addRedis()
  return () => {
    set.sources.delete(source.nodeId)
    if (set.sources.size > 0) return
    set.close()
    byPrefix.delete(settings.prefix)
  }
}

class MetricSet {
  readonly sources = new Map<string, MetricsSource>()
  readonly #registry: Registry
  readonly #names: string[] = []
  readonly #unsubscribe: Array<() => void> = []
  readonly #settings: MetricsSettings
  #redis = false

  constructor (settings: MetricsSettings) {
    this.#settings = settings
    this.#registry = settings.registry
    const sources = this.sources
    const gauge = this.#gauge.bind(this)
    const counter = this.#counter.bind(this)
    /** A histogram counted in bulk (../transport/prom-histogram), written into prom-client's at scrape time. */
    const histogram = (name: string, help: string, labelNames: string[], buckets: number[], probe: Record<string, string>): BulkHistogram => {
      let bulk: BulkHistogram | null = null
      const metric = this.#add(name, () => new settings.client.Histogram({ name: settings.prefix + name, help, labelNames, buckets, registers: [], collect () { bulk?.flush() } }))
      bulk = bulkHistogram(metric, buckets, probe)
      return bulk
    }

    gauge('sessions', 'Open WebSocket sessions, by route.', ['route'], function () {
      totals(this, (add) => {
        for (const source of sources.values()) {
          for (const route of source.routes.keys()) add({ route }, 0)
          for (const route of source.sessionRoutes()) add({ route }, 1)
        }
      })
    })
    gauge('rooms', 'Rooms with members on this server.', [], function () {
      totals(this, (add) => { for (const source of sources.values()) add({}, source.rooms.size) })
    })
    gauge('memberships', 'Room memberships on this server (a session in two rooms counts twice).', [], function () {
      totals(this, (add) => {
        for (const { rooms } of sources.values()) for (const name of rooms.roomNames()) add({}, rooms.memberCount(name))
      })
    })
    // Counted here by route and type, one Map lookup a message; handed to prom-client at scrape time.
    const received = new Map<string, { labels: Record<string, string>, messages: number, bytes: number }>()
    counter('messages_received_total', 'Messages received from clients, by route (and type, with message routes).', ['route', 'type'], function () {
      totals(this, (add) => { for (const count of received.values()) add(count.labels, count.messages) })
    })
    counter('received_bytes_total', 'Bytes of the messages received from clients, by route (and type).', ['route', 'type'], function () {
      totals(this, (add) => { for (const count of received.values()) add(count.labels, count.bytes) })
    })
    counter('messages_sent_total', 'Messages sent to clients, by route of the session.', ['route'], function () {
      totals(this, (add) => { for (const source of sources.values()) for (const [route, sent] of source.routes) add({ route }, sent.messages) })
    })
    counter('sent_bytes_total', 'Bytes of the messages sent to clients, by route of the session.', ['route'], function () {
      totals(this, (add) => { for (const source of sources.values()) for (const [route, sent] of source.routes) add({ route }, sent.bytes) })
    })
    const duration = histogram('handler_duration_seconds', 'Time from a handler\'s call to its return, or to the settling of the promise it returned, by route, event and type.', ['route', 'event', 'type'],
      [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], { route: '', event: '' })
    const fanOut = histogram('broadcast_recipients', 'Sessions of this server a broadcast or published message was sent to.', [],
      [0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000], {})
    const closes = counter('closes_total', 'Sessions closed, by close code.', ['code'])
    const refusals = counter('handshake_refusals_total', 'Upgrade requests refused, by reason (handshake, origin, max-sessions).', ['reason'])
    counter('backpressure_total', 'Messages not sent past maxBackpressure (action="drop") and sessions closed for it (action="close").', ['action'], function () {
      totals(this, (add) => {
        for (const source of sources.values()) {
          const stats = source.stats()
          add({ action: 'drop' }, stats.dropped.backpressure)
          add({ action: 'close' }, stats.closed.backpressure)
        }
      })
    })
    counter('history_recoveries_total', 'With history: recover() calls, by result (recovered, not_recovered).', ['result'], function () {
      totals(this, (add) => {
        for (const source of sources.values()) {
          const history = source.stats().history
          if (history === null) continue
          add({ result: 'recovered' }, history.recovered)
          add({ result: 'not_recovered' }, history.notRecovered)
        }
      })
    })
    counter('history_replayed_messages_total', 'With history: messages replayed to recovering sessions.', [], function () {
      totals(this, (add) => { for (const source of sources.values()) { const history = source.stats().history; if (history !== null) add({}, history.replayed) } })
    })

    const ours = (event: { nodeId: string | null }): boolean => event.nodeId !== null && sources.has(event.nodeId)
    this.#on(channels.messageIn, (event: MessageInEvent) => {
      if (!ours(event)) return
      const key = event.type === undefined ? event.route : `${event.route}\n${event.type}`
      let count = received.get(key)
      if (count === undefined) received.set(key, count = { labels: event.type === undefined ? { route: event.route } : { route: event.route, type: event.type }, messages: 0, bytes: 0 })
      count.messages++
      count.bytes += event.bytes
    })
    this.#on(channels.sessionClose, (event: SessionCloseEvent) => { if (ours(event)) closes.inc({ code: String(event.code) }) })
    this.#on(channels.handshakeRefused, (event: HandshakeRefusedEvent) => { if (ours(event)) refusals.inc({ reason: event.reason }) })
    const all = {}
    this.#on(channels.broadcast, (event: BroadcastEvent) => { if (ours(event)) fanOut.observe('', all, event.recipients) })
    this.#on(channels.publish, (event: PublishEvent) => { if (ours(event)) fanOut.observe('', all, event.recipients) })
    const observe = (context: Timed): void => {
      const started = context[kStarted]
      if (started === undefined) return
      const seconds = (performance.now() - started) / 1000
      const key = context.type === undefined ? `${context.route}\n${context.event}` : `${context.route}\n${context.event}\n${context.type}`
      duration.observe(key, context.type === undefined ? { route: context.route, event: context.event } : { route: context.route, event: context.event, type: context.type }, seconds)
    }
    const handlers = {
      start: (context: Timed) => { if (ours(context)) context[kStarted] = performance.now() },
      // A run that returned a promise has neither result nor error at its end: its asyncEnd has.
      end: (context: Timed) => { if ('result' in context || 'error' in context) observe(context) },
      asyncStart: () => {},
      asyncEnd: observe,
      error: () => {}
    }
    handlerRun.subscribe(handlers)
    this.#unsubscribe.push(() => handlerRun.unsubscribe(handlers))
  }

  #gauge (name: string, help: string, labelNames: string[], collect: (this: Gauge) => void): Gauge {
    const { client, prefix } = this.#settings
    return this.#add(name, () => new client.Gauge({ name: prefix + name, help, labelNames, registers: [], collect }))
  }

  #counter (name: string, help: string, labelNames: string[], collect?: (this: Counter) => void): Counter {
    const { client, prefix } = this.#settings
    return this.#add(name, () => new client.Counter({ name: prefix + name, help, labelNames, registers: [], ...(collect === undefined ? {} : { collect }) }))
  }

  /** The Redis adapter's series, once the first instance with one joins. */
  addRedis (): void {
    if (this.#redis) return
    this.#redis = true
    const sources = this.sources
    this.#gauge('redis_connected', 'With redisAdapter: 1 while connected to Redis, else 0.', [], function () {
      totals(this, (add) => { for (const source of sources.values()) { const cluster = source.stats().cluster; if (cluster !== null) add({}, cluster.connected ? 1 : 0) } })
    })
    this.#gauge('redis_publish_backlog_bytes', 'With redisAdapter: bytes of broadcasts handed to Redis and not yet answered.', [], function () {
      totals(this, (add) => { for (const source of sources.values()) { const cluster = source.stats().cluster; if (cluster !== null) add({}, cluster.publishBacklog) } })
    })
    this.#counter('redis_publish_failures_total', 'With redisAdapter: broadcasts that reached this server\'s members only (Redis away, or past maxPublishBacklog).', [], function () {
      totals(this, (add) => { for (const source of sources.values()) { const cluster = source.stats().cluster; if (cluster !== null) add({}, cluster.publishFailed) } })
    })
  }

  /** Registers a metric, or says which name is taken by a metric of someone else's. */
  #add<T extends Counter | Gauge | Histogram> (name: string, build: () => T): T {
    const metric = build()
    const full = (metric as unknown as { name: string }).name
    if (this.#registry.getSingleMetric(full) !== undefined) {
      this.close()
      throw new InvalidOptionError('metrics.prefix', `a prefix whose names are free in the registry (${full} is registered already: another library's, or a second instance of this plugin under a different registry object)`, JSON.stringify(full.slice(0, full.length - name.length)))
    }
    this.#registry.registerMetric(metric as never)
    this.#names.push(full)
    return metric
  }

  #on<T> (channel: diagnosticsChannel.Channel, listener: (event: T) => void): void {
    const subscriber = listener as (message: unknown) => void
    channel.subscribe(subscriber)
    this.#unsubscribe.push(() => channel.unsubscribe(subscriber))
  }

  close (): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe()
    for (const name of this.#names.splice(0)) this.#registry.removeSingleMetric(name)
  }
}

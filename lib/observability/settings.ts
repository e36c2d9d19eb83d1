// The metrics and tracing options: checked at registration, where their optional peer
// dependencies (prom-client, @opentelemetry/api) are loaded, so a missing one fails
// app.register() with a message that says what to install, and never a scrape or a handler.
import { InvalidOptionError, MissingPeerError, describe } from '../errors'

/** What the metrics need: prom-client, the registry to register with, the names' prefix. */
export interface MetricsSettings {
  client: typeof import('prom-client')
  registry: import('prom-client').Registry
  prefix: string
}

/** Prometheus's rule for a metric name (its prefix may be empty). */
const PREFIX = /^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/
export const DEFAULT_PREFIX = 'websocket_rooms_'

/** Loads an optional peer dependency for an option, or says it must be installed. */
export function loadPeer<T> (name: string, option: string): T {
  try {
    return require(name) as T
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && (error as Error).message.includes(`'${name}'`)) throw new MissingPeerError(option, name, name)
    throw error
  }
}

export function metricsOption (value: unknown): MetricsSettings | null {
  if (value === undefined || value === null || value === false) return null
  if (value !== true && (typeof value !== 'object' || Array.isArray(value))) throw new InvalidOptionError('metrics', 'true, false or an object { registry?, prefix? }', describe(value))
  const { registry, prefix = DEFAULT_PREFIX, ...rest } = value === true ? {} : value as Record<string, unknown>
  const unknown = Object.keys(rest)[0]
  if (unknown !== undefined) throw new InvalidOptionError(`metrics.${unknown}`, 'unset: metrics takes { registry?, prefix? }', 'an unknown option')
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) throw new InvalidOptionError('metrics.prefix', 'a string of letters, digits, _ and : that does not start with a digit', describe(prefix))
  if (registry !== undefined && !isRegistry(registry)) throw new InvalidOptionError('metrics.registry', 'a prom-client Registry', describe(registry))
  const client = loadPeer<typeof import('prom-client')>('prom-client', 'metrics')
  return { client, registry: (registry as import('prom-client').Registry | undefined) ?? client.register, prefix }
}

/** A prom-client Registry, of this prom-client or of another copy (fastify-metrics' own). */
function isRegistry (value: unknown): boolean {
  const registry = value as Record<string, unknown> | null
  return registry !== null && typeof registry === 'object' && typeof registry.registerMetric === 'function' &&
    typeof registry.getSingleMetric === 'function' && typeof registry.metrics === 'function'
}

export function tracingOption (value: unknown): boolean {
  if (value === undefined || value === null || value === false) return false
  if (value !== true) throw new InvalidOptionError('tracing', 'true or false', describe(value))
  loadPeer('@opentelemetry/api', 'tracing')
  return true
}

// redisAdapter(options): rooms that span every node sharing one Redis or one Redis Cluster. Checks the options
// up front (a bad one throws here, not at the first broadcast) and returns the value the
// plugin's `adapter` option takes; the plugin starts one node per Fastify instance with it.
import type { RedisClusterOptions } from '@redis/client'
import type { RedisAdapterOptions } from '../../types/index'
import { kAdapter, type Adapter, type ClusterHost, type ClusterLink } from '../rooms/port'
import { InvalidOptionError, describe } from '../errors'
import { integer } from '../options'
import { didYouMean } from '../suggest'
import { typesAgree, type SameKeys } from '../type-checks'
import { isClusterClient, type RedisConnection } from './redis-connections'
import { RedisNode, type RedisNodeOptions } from './redis-node'

export const redisDefaults = Object.freeze({
  keyPrefix: 'fastify-websocket-rooms',
  nodeHeartbeat: 5000,
  nodeTimeout: 15_000,
  connectTimeout: 5000,
  maxPublishBacklog: 8 * 1024 * 1024
})

const OPTION_LIST = ['url', 'cluster', 'client', 'subscriber', 'keyPrefix', 'sharded', 'nodeHeartbeat', 'nodeTimeout', 'connectTimeout', 'maxPublishBacklog', 'onError', 'onReady'] as const
typesAgree<SameKeys<typeof OPTION_LIST[number], keyof RedisAdapterOptions>>()
const OPTION_NAMES = new Set<string>(OPTION_LIST)

function option (name: string, expected: string, value: unknown): never {
  throw new InvalidOptionError(`redisAdapter ${name}`, expected, describe(value))
}

function positiveInteger (name: string, unit: string, value: unknown, fallback: number): number {
  return integer(`redisAdapter ${name}`, value, fallback, 1, unit)
}

function milliseconds (name: string, value: unknown, fallback: number): number {
  return positiveInteger(name, 'ms', value, fallback)
}

function isConnection (value: unknown): value is RedisConnection {
  return value !== null && typeof value === 'object' &&
    typeof (value as RedisConnection).duplicate === 'function' && typeof (value as RedisConnection).publish === 'function'
}

/**
 * Braces would end a Redis Cluster hash tag inside the prefix (keys are `{<keyPrefix>...}...`,
 * see ./redis-keys). Room channels are `{<keyPrefix>:room:<name>}`: a prefix that holds ":room:",
 * or ends with ":room", would let one app's room name reach another app's room (prefix "a",
 * room "x:room:y" and prefix "a:room:x", room "y"). Without them a channel's first ":room:"
 * ends its prefix, so each (prefix, room) has a channel of its own.
 */
function isKeyPrefix (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.isWellFormed() && !/[{}]/.test(value) && !`${value}:`.includes(':room:')
}

function hook<T extends (...args: never[]) => void> (name: string, value: unknown): T | null {
  if (value === undefined) return null
  if (typeof value !== 'function') option(name, 'a function', value)
  return value as T
}

/** The cluster option: node-redis's createCluster() options, with root nodes. */
function isClusterOptions (value: unknown): value is RedisClusterOptions {
  if (value === null || typeof value !== 'object') return false
  const { rootNodes } = value as Partial<RedisClusterOptions>
  return Array.isArray(rootNodes) && rootNodes.length > 0 && rootNodes.every((node) => node !== null && typeof node === 'object')
}

function resolveRedisOptions (options: RedisAdapterOptions): RedisNodeOptions {
  if (options === null || typeof options !== 'object') option('options', 'an object { url }, { cluster } or { client }', options)
  for (const key of Object.keys(options)) {
    if (!OPTION_NAMES.has(key)) option(key, `one of ${OPTION_LIST.join(', ')}${didYouMean(key, OPTION_LIST)}`, key)
  }
  const { url, cluster, client, subscriber, keyPrefix = redisDefaults.keyPrefix, sharded = null } = options
  if ([url, cluster, client].filter((given) => given !== undefined).length !== 1) {
    option('url/cluster/client', 'exactly one of url (a redis:// URL), cluster ({ rootNodes: [{ url }] }) and client (a node-redis connection)', url ?? cluster ?? client)
  }
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) option('url', 'a redis:// or rediss:// URL', url)
  if (cluster !== undefined && !isClusterOptions(cluster)) option('cluster', 'the options of createCluster() from redis or @redis/client: { rootNodes: [{ url }], ... }', cluster)
  if (client !== undefined && !isConnection(client)) option('client', 'a node-redis client (createClient() or createCluster() from redis or @redis/client)', client)
  if (subscriber !== undefined && (client === undefined || isClusterClient(client) || !isConnection(subscriber))) {
    option('subscriber', 'a node-redis client, given with a client of createClient() (a cluster client subscribes by itself)', subscriber)
  }
  if (!isKeyPrefix(keyPrefix)) option('keyPrefix', 'a non-empty, well-formed string without { or }, that neither contains ":room:" nor ends with ":room"', keyPrefix)
  if (sharded !== null && typeof sharded !== 'boolean') option('sharded', 'a boolean', sharded)
  const nodeHeartbeat = milliseconds('nodeHeartbeat', options.nodeHeartbeat, redisDefaults.nodeHeartbeat)
  const nodeTimeout = milliseconds('nodeTimeout', options.nodeTimeout, Math.max(redisDefaults.nodeTimeout, 3 * nodeHeartbeat))
  if (nodeTimeout <= nodeHeartbeat) option('nodeTimeout', `more than nodeHeartbeat (${nodeHeartbeat} ms)`, nodeTimeout)
  return {
    url: url ?? null,
    cluster: (cluster ?? null) as RedisClusterOptions | null,
    client: (client ?? null) as RedisConnection | null,
    subscriber: (subscriber ?? null) as RedisConnection | null,
    keyPrefix,
    sharded,
    nodeHeartbeat,
    nodeTimeout,
    connectTimeout: milliseconds('connectTimeout', options.connectTimeout, redisDefaults.connectTimeout),
    maxPublishBacklog: positiveInteger('maxPublishBacklog', 'bytes', options.maxPublishBacklog, redisDefaults.maxPublishBacklog),
    onError: hook('onError', options.onError),
    onReady: hook('onReady', options.onReady)
  }
}

/**
 * The `adapter` option for rooms that span every node sharing one Redis:
 * `app.register(websocketRooms, { adapter: redisAdapter({ url: 'redis://127.0.0.1:6379' }) })`.
 */
export function redisAdapter (options: RedisAdapterOptions): Adapter {
  const resolved = resolveRedisOptions(options)
  return {
    [kAdapter]: 'redis',
    connectTimeout: resolved.connectTimeout,
    async start (host: ClusterHost): Promise<ClusterLink> {
      const node = new RedisNode(host, resolved)
      await node.start()
      return node
    }
  }
}

// Type tests (tstyche) of the Redis adapter: its options, the connections it accepts, the
// `adapter` plugin option, clusterMembers() and the cluster counters.
import Fastify from 'fastify'
import { createClient, createCluster } from '@redis/client'
import { expect, test } from 'tstyche'
import websocketRooms, {
  redisAdapter,
  type RedisAdapterOptions,
  type WebsocketRoomsAdapter,
  type WebsocketRoomsClusterStats
} from 'fastify-websocket-rooms'

const app = Fastify()

test('redisAdapter() takes a URL or the app\'s own connections, and returns the adapter option', async () => {
  expect(redisAdapter({ url: 'redis://127.0.0.1:6379', keyPrefix: 'myapp' })).type.toBe<WebsocketRoomsAdapter>()
  const client = createClient({ url: 'redis://127.0.0.1:6379' })
  redisAdapter({ client })
  redisAdapter({ client, subscriber: client.duplicate(), sharded: true })
  redisAdapter({
    url: 'rediss://cache.example.com:6380',
    nodeHeartbeat: 1000,
    nodeTimeout: 5000,
    connectTimeout: 2000,
    onError (error) { expect(error).type.toBe<Error>() },
    onReady () {}
  })
  await app.register(websocketRooms, { adapter: redisAdapter({ url: 'redis://127.0.0.1:6379' }) })
  await app.register(websocketRooms, { adapter: null })

  // A Redis Cluster: createCluster()'s options, or its client.
  redisAdapter({ cluster: { rootNodes: [{ url: 'redis://10.0.0.1:7000' }], defaults: { password: 'secret' }, useReplicas: false } })
  redisAdapter({ client: createCluster({ rootNodes: [{ url: 'redis://10.0.0.1:7000' }] }), keyPrefix: 'myapp' })
  // @ts-expect-error: Property 'rootNodes' is missing
  redisAdapter({ cluster: { nodes: ['redis://10.0.0.1:7000'] } })

  // @ts-expect-error: 'keyprefix' does not exist in type 'RedisAdapterOptions'
  redisAdapter({ url: 'redis://127.0.0.1:6379', keyprefix: 'myapp' })
  // @ts-expect-error: Type 'string' is not assignable to type 'boolean | undefined'
  redisAdapter({ url: 'redis://127.0.0.1:6379', sharded: 'yes' })
  // @ts-expect-error: Object literal may only specify known properties, and 'host' does not exist in type 'RedisConnection'
  redisAdapter({ client: { host: '127.0.0.1' } })
  const notAnAdapter = { url: 'redis://127.0.0.1:6379' }
  // @ts-expect-error: No overload matches this call
  await app.register(websocketRooms, { adapter: notAnAdapter })
  expect<RedisAdapterOptions['onError']>().type.toBe<((error: Error) => void) | undefined>()
})

test('clusterMembers() is a promise of a number, from a session\'s room and from the server', () => {
  expect(app.websocketRooms.room('lobby').clusterMembers()).type.toBe<Promise<number>>()
  app.registerWebsocket('/ws', {
    async onOpen (session) {
      expect(await session.room('lobby').join().clusterMembers()).type.toBe<number>()
    }
  })
})

test('stats().cluster is the node\'s counters, or null without an adapter', () => {
  expect(app.websocketRooms.stats().cluster).type.toBe<WebsocketRoomsClusterStats | null>()
  expect<WebsocketRoomsClusterStats['nodeId']>().type.toBe<string>()
  expect<WebsocketRoomsClusterStats['publishFailed']>().type.toBe<number>()
})

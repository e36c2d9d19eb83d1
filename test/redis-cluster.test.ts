// The Redis adapter on a real Redis Cluster (test/redis-cluster.ts): the ways to connect to
// one, every cross-server feature on two servers sharing it, and where the keys land (rooms
// spread over the shards). Faults of the cluster (failover, resharding, a shard away) are in
// cluster-faults.test.ts.
import Fastify, { type FastifyInstance } from 'fastify'
import websocketRooms, { redisAdapter, type PresenceEntry, type RedisAdapterOptions, type StreamPosition } from 'fastify-websocket-rooms'
import { createClient, createCluster } from '@redis/client'
import { connect, listen, type Client } from './helpers'
import * as handlers from './fixtures/cluster-handlers'
import * as historyHandlers from './fixtures/history-handlers'
import { uniquePrefix } from './redis'
import { clusterTest, slotOf } from './redis-cluster'
import { eventually, until } from './signals'

interface Teardown { teardown (fn: () => unknown): void }
interface Node { app: FastifyInstance, base: string, nodeId: string, presence: Array<{ joins: PresenceEntry[], leaves: PresenceEntry[] }> }

const HISTORY = { size: 1000, ttl: 60_000 }

async function startNode (t: Teardown, adapter: RedisAdapterOptions): Promise<Node> {
  const app = Fastify()
  const presence: Node['presence'] = []
  await app.register(websocketRooms, {
    history: HISTORY,
    adapter: redisAdapter(adapter),
    onPresence (_room, { joins, leaves }) { presence.push({ joins, leaves }) }
  })
  app.registerWebsocket('/ws', handlers)
  app.registerWebsocket('/history', historyHandlers)
  t.teardown(() => app.close())
  return { app, base: await listen(app), nodeId: app.websocketRooms.stats().cluster!.nodeId, presence }
}

/** A client in the rooms; resolved once its node's subscriptions are live in Redis. */
async function member (node: Node, rooms: string): Promise<Client> {
  const client = await connect(node.base, `/ws?rooms=${encodeURIComponent(rooms)}`)
  await client.texts(1)
  await node.app.websocketRooms.room(rooms.split(',')[0]!).clusterMembers()
  return client
}

async function texts (client: Client, count: number): Promise<string[]> {
  return (await client.messages(count)).map(({ data }) => String(data))
}

function publishText (node: Node, room: string, text: string): Promise<StreamPosition> {
  return node.app.websocketRooms.room(room).publish(({ offset, epoch }) => JSON.stringify({ offset, epoch, text }))
}

function offsetsOf (client: Client): number[] {
  return client.received.map((m) => String(m.data)).filter((text) => text.startsWith('{"offset"')).map((text) => JSON.parse(text).offset)
}

clusterTest('connects to a cluster by its cluster option, a createCluster() client, or a node\'s URL; a createClient() of one node is refused', async (t, url) => {
  const keyPrefix = uniquePrefix('cluster-connect')
  const byOption = await startNode(t, { cluster: { rootNodes: [{ url }] }, keyPrefix })
  const byUrl = await startNode(t, { url, keyPrefix })
  const cluster = createCluster({ rootNodes: [{ url }] })
  cluster.on('error', () => {})
  await cluster.connect()
  t.teardown(() => cluster.destroy())
  const byClient = await startNode(t, { client: cluster, keyPrefix })
  const members = [await member(byOption, 'lobby'), await member(byUrl, 'lobby'), await member(byClient, 'lobby')]
  members[0]!.send('all lobby across the cluster')
  for (const client of members) t.same(await texts(client, 2), ['ready', 'across the cluster'])
  t.equal(await byUrl.app.websocketRooms.room('lobby').clusterMembers(), 3, 'each counts every server')

  const single = createClient({ url })
  await single.connect()
  t.teardown(() => single.destroy())
  const app = Fastify()
  app.register(websocketRooms, { adapter: redisAdapter({ client: single, keyPrefix }) })
  await t.rejects(async () => { await app.ready() }, {
    code: 'FST_WS_ROOMS_REDIS_CLUSTER_UNSUPPORTED',
    message: /a Redis Cluster node.*createCluster\(\).*cluster: \{ rootNodes/
  })
  await app.close()
  t.equal(await single.ping(), 'PONG', 'the app\'s connection is left open')
  await byClient.app.close()
  t.equal(await cluster.ping(), 'PONG', 'and so is its cluster client')
})

clusterTest('every feature across two servers on a cluster: broadcasts, to().except(), counts, presence, commands, history', async (t, url) => {
  const keyPrefix = uniquePrefix('cluster-features')
  const a = await startNode(t, { cluster: { rootNodes: [{ url }] }, keyPrefix })
  const b = await startNode(t, { url, keyPrefix })
  const rooms = ['lobby', 'news', 'sport', 'music', 'games', 'films']
  const onA = await member(a, rooms.join(','))
  const onB = await member(b, rooms.join(','))
  const muted = await member(b, 'muted,news')
  for (const room of rooms) {
    onA.send(`others ${room} ${room} from a`)
  }
  // In order within a room; rooms on different shards may cross.
  t.same((await texts(onB, 1 + rooms.length)).slice(1).sort(), rooms.map((room) => `${room} from a`).sort(), 'every room\'s broadcast crosses servers')
  t.same(await texts(muted, 2), ['ready', 'news from a'])
  for (const room of rooms) t.equal(await a.app.websocketRooms.room(room).clusterMembers(), room === 'news' ? 3 : 2, `${room} counted on every server`)

  a.app.websocketRooms.to(['news', 'sport']).except('muted').broadcast('not for the muted')
  t.same((await texts(onB, 2 + rooms.length)).at(-1), 'not for the muted')
  onB.send('count news')
  t.same((await texts(onB, 3 + rooms.length)).at(-1), 'count news 3', 'the muted member got nothing meanwhile, and counts come back')
  t.equal(muted.received.length, 2)

  // Presence: the entries of both servers, and the leave of a member elsewhere.
  const { members, complete } = await a.app.websocketRooms.room('news').presence()
  t.equal(complete, true)
  t.same(members.map((entry) => entry.nodeId).sort(), [a.nodeId, b.nodeId, b.nodeId].sort(), 'presence lists every server\'s members')
  const mutedId = [...b.app.websocketSessions.values()].find((session) => session.getParameter('rooms') === 'muted,news')!.id
  // Told first, so that its leave is not a join and a leave in one window, which cancel out.
  await until(() => b.presence.some(({ joins }) => joins.some((entry) => entry.sessionId === mutedId)), 'onPresence to tell its join')
  await a.app.websocketRooms.disconnectSession(mutedId, 4001, 'kicked')
  t.same(await muted.closed, { code: 4001, reason: 'kicked' }, 'disconnectSession reaches the other server')
  await eventually(async () => (await a.app.websocketRooms.room('news').presence()).members.length === 2, 'the leave to reach presence()')
  await until(() => b.presence.some(({ leaves }) => leaves.some((entry) => entry.sessionId === mutedId)), 'onPresence to tell its leave on its server')

  // History: one order of offsets per room, whichever server publishes; recovery on the other.
  const reader = await connect(b.base, '/history?room=feed')
  await reader.texts(1)
  await b.app.websocketRooms.room('feed').clusterMembers()
  const positions: StreamPosition[] = []
  for (let i = 0; i < 10; i++) positions.push(await publishText(i % 2 === 0 ? a : b, 'feed', `m${i}`))
  t.same(positions.map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  await reader.messages(11)
  t.same(offsetsOf(reader), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'every message once, in order')
  const recovering = await connect(a.base, `/history?room=feed&offset=4&epoch=${positions[0]!.epoch}`)
  const recovered = (await recovering.messages(7)).at(-1)
  t.match(JSON.parse(String(recovered!.data)), { recovered: true })
  t.same(offsetsOf(recovering), [5, 6, 7, 8, 9, 10], 'recover() replays what was missed')
  const history = await a.app.websocketRooms.room('feed').history({ limit: 3 })
  t.same(history.messages.map((m) => m.offset), [8, 9, 10])

  await a.app.websocketRooms.room('lobby').disconnectAll(4000, 'over')
  t.same(await onB.closed, { code: 4000, reason: 'over' }, 'disconnectAll reaches the other server')
})

clusterTest('rooms spread over the shards: a room\'s channel and history share its slot, a server\'s state shares another', async (t, url) => {
  const keyPrefix = uniquePrefix('cluster-spread')
  const a = await startNode(t, { url, keyPrefix })
  const rooms = Array.from({ length: 12 }, (_, i) => `room-${i}`)
  for (const room of rooms) await publishText(a, room, 'hello')
  await member(a, rooms.join(','))
  const masters = new Set<string>()
  for (const room of rooms) {
    const channel = `{${keyPrefix}:room:${room}}`
    t.equal(slotOf(`${channel}:history`), slotOf(channel), 'the stream lives with the channel')
    t.equal(slotOf(`${channel}:history-meta`), slotOf(channel), 'and so does the offset counter')
  }
  const cluster = createCluster({ rootNodes: [{ url }] })
  cluster.on('error', () => {})
  await cluster.connect()
  t.teardown(() => cluster.destroy())
  for (const room of rooms) {
    const key = `{${keyPrefix}:room:${room}}:history`
    t.equal(await cluster.exists(key), 1, `${key} exists`)
    const master = cluster.slots[slotOf(key)]!.master
    masters.add(`${master.host}:${master.port}`)
  }
  t.ok(masters.size > 1, `12 rooms' histories sit on ${masters.size} shards, not one`)
  const nodeKey = `{${keyPrefix}:node:${a.nodeId}}`
  t.same(await cluster.hGetAll(nodeKey), Object.fromEntries(rooms.map((room) => [room, '1'])), 'the server\'s counts, in its own slot')
  t.equal(slotOf(`${nodeKey}:presence:room-0`), slotOf(nodeKey), 'its presence entries share it')
})

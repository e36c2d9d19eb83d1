// Faults of a Redis Cluster under two servers with a busy room (private clusters of
// test/redis-cluster.ts): the room's master killed and its replica promoted, the room's slot
// migrated to another master while it publishes, and the room's shard unreachable. In each,
// the members that stay connected get what the history holds, in order, once, and every
// publish() settles within connectTimeout of its call.
import Fastify, { type FastifyInstance } from 'fastify'
import websocketRooms, { redisAdapter, type RedisAdapterOptions, type StreamPosition } from 'fastify-websocket-rooms'
import type { Test } from 'tap'
import { connect, listen, type Client } from './helpers'
import * as historyHandlers from './fixtures/history-handlers'
import { uniquePrefix } from './redis'
import { PrivateCluster, clusterTest, nodeCommand, slotOf, type ClusterNode } from './redis-cluster'
import { eventually, until } from './signals'

interface Teardown { teardown (fn: () => unknown): void }
interface Node { app: FastifyInstance, base: string }

const CONNECT_TIMEOUT = 1500

async function startNode (t: Teardown, adapter: RedisAdapterOptions): Promise<Node> {
  const app = Fastify()
  await app.register(websocketRooms, { history: { size: 10_000, ttl: 60_000 }, adapter: redisAdapter({ connectTimeout: CONNECT_TIMEOUT, ...adapter }) })
  app.registerWebsocket('/history', historyHandlers)
  t.teardown(() => app.close())
  return { app, base: await listen(app) }
}

async function member (node: Node, room: string): Promise<Client> {
  const client = await connect(node.base, `/history?room=${encodeURIComponent(room)}`)
  await client.texts(1)
  await node.app.websocketRooms.room(room).clusterMembers()
  return client
}

function published (client: Client): Array<{ offset: number, text: string }> {
  return client.received.map((m) => String(m.data)).filter((text) => text.startsWith('{"offset"')).map((text) => JSON.parse(text))
}

/**
 * Publishes to a room from both servers, one message at a time from each, until stop();
 * records each outcome and how long it took to settle.
 */
function publisher (nodes: Node[], room: string): { stop: () => Promise<void>, ok: StreamPosition[], failed: Error[], slowest: () => number, count: () => number } {
  const ok: StreamPosition[] = []
  const failed: Error[] = []
  let slowest = 0
  const state = { running: true }
  let sent = 0
  const loops = nodes.map(async (node, i) => {
    while (state.running) {
      const started = performance.now()
      const text = `${i}-${sent++}`
      try {
        ok.push(await node.app.websocketRooms.room(room).publish(({ offset, epoch }) => JSON.stringify({ offset, epoch, text })))
      } catch (error) {
        failed.push(error as Error)
        // Redis away: publish() rejects at once; let the event loop turn before trying again.
        await new Promise((resolve) => setImmediate(resolve))
      }
      slowest = Math.max(slowest, performance.now() - started)
    }
  })
  return {
    ok,
    failed,
    slowest: () => slowest,
    count: () => ok.length,
    stop: async () => {
      state.running = false
      await Promise.all(loops)
    }
  }
}

/** Each member got every message the history holds, in order, once. */
async function holdsWhatHistoryHolds (t: Test, node: Node, room: string, members: Client[]): Promise<void> {
  // Just after a fault the adapter may count the cluster as away a while longer (a read then
  // rejects at once, as documented): read once it answers.
  let read: Awaited<ReturnType<ReturnType<FastifyInstance['websocketRooms']['room']>['history']>> | undefined
  await eventually(async () => {
    try {
      read = await node.app.websocketRooms.room(room).history({ limit: 10_000 })
      return true
    } catch (error) {
      if ((error as { code?: string }).code === 'FST_WS_ROOMS_REDIS_UNAVAILABLE') return false
      throw error
    }
  }, `the history of ${room} to be readable`)
  if (read === undefined) throw new Error('unreachable: eventually() resolved without a history')
  const history = read
  const kept = history.messages.map((m) => JSON.parse(String(m.message)) as { offset: number, text: string })
  t.ok(kept.length > 0, `${kept.length} messages kept`)
  for (const [i, client] of members.entries()) {
    await until(() => published(client).at(-1)?.offset === history.offset, `member ${i} to have offset ${history.offset}`)
    const got = published(client)
    const offsets = got.map((m) => m.offset)
    t.same(offsets, [...offsets].sort((x, y) => x - y).filter((offset, j, sorted) => sorted.indexOf(offset) === j), `member ${i}: in order, once`)
    const byOffset = new Map(got.map((m) => [m.offset, m.text]))
    t.same(kept.filter((m) => byOffset.get(m.offset) !== m.text), [], `member ${i}: every message the history holds`)
  }
}

/** The message texts are the same on every master: the replica caught up (WAIT), so a kill loses nothing written. */
async function replicated (master: ClusterNode): Promise<void> {
  await nodeCommand(master.url, ['WAIT', '1', '5000'])
}

clusterTest('a master killed and its replica promoted: publishes settle within connectTimeout, then go on; members get the history in order, once', async (t) => {
  const cluster = await PrivateCluster.start(t, { masters: 3, replicas: 1, nodeTimeout: 1000 })
  const keyPrefix = uniquePrefix('failover')
  const room = 'busy'
  const a = await startNode(t, { cluster: { rootNodes: [{ url: cluster.url }] }, keyPrefix })
  // Both by rootNodes: a url to a node spends part of the short connectTimeout finding out it
  // is a cluster, too little on a busy machine (test/redis-cluster.test.ts covers that way).
  const b = await startNode(t, { cluster: { rootNodes: [{ url: cluster.url }] }, keyPrefix })
  const members = [await member(a, room), await member(b, room)]
  const master = await cluster.masterOf(slotOf(`{${keyPrefix}:room:${room}}`))

  let load = publisher([a, b], room)
  await until(() => load.count() >= 50, '50 publishes before the failover')
  await load.stop()
  await replicated(master)
  await master.crash()
  load = publisher([a, b], room)
  await cluster.settled()
  const before = load.count()
  await until(() => load.count() >= before + 50, '50 publishes after the replica took over')
  await load.stop()
  t.ok(load.slowest() <= CONNECT_TIMEOUT + 1000, `every publish() settled within connectTimeout (slowest ${Math.round(load.slowest())} ms)`)
  t.ok(load.failed.every((error) => (error as { code?: string }).code === 'FST_WS_ROOMS_REDIS_UNAVAILABLE'), 'those that failed said Redis was away')
  await holdsWhatHistoryHolds(t, a, room, members)
})

clusterTest('a busy room\'s slot migrated to another master while it publishes: members get the history in order, once', async (t) => {
  const cluster = await PrivateCluster.start(t, { masters: 3 })
  const keyPrefix = uniquePrefix('reshard')
  const room = 'busy'
  const a = await startNode(t, { cluster: { rootNodes: [{ url: cluster.url }] }, keyPrefix })
  const b = await startNode(t, { cluster: { rootNodes: [{ url: cluster.url }] }, keyPrefix })
  const members = [await member(a, room), await member(b, room)]
  const slot = slotOf(`{${keyPrefix}:room:${room}}`)
  const source = await cluster.masterOf(slot)
  const target = cluster.nodes.find((node) => node !== source)!
  const id = async (node: ClusterNode): Promise<string> => (await nodeCommand(node.url, ['CLUSTER', 'MYID'])).trim()
  const [sourceId, targetId] = [await id(source), await id(target)]

  const load = publisher([a, b], room)
  await until(() => load.count() >= 50, '50 publishes before the migration')
  await nodeCommand(target.url, ['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', sourceId])
  await nodeCommand(source.url, ['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', targetId])
  for (;;) {
    const keys = (await nodeCommand(source.url, ['CLUSTER', 'GETKEYSINSLOT', String(slot), '100'])).split(',').filter((key) => key !== '')
    if (keys.length === 0) break
    await nodeCommand(source.url, ['MIGRATE', '127.0.0.1', String(target.port), '', '0', '5000', 'KEYS', ...keys])
  }
  for (const node of [target, source, ...cluster.nodes.filter((node) => node !== source && node !== target)]) {
    await nodeCommand(node.url, ['CLUSTER', 'SETSLOT', String(slot), 'NODE', targetId])
  }
  t.equal(await cluster.masterOf(slot), target, 'the slot moved')
  const before = load.count()
  await until(() => load.count() >= before + 50, '50 publishes after the migration')
  await load.stop()
  t.ok(load.slowest() <= CONNECT_TIMEOUT + 1000, `every publish() settled within connectTimeout (slowest ${Math.round(load.slowest())} ms)`)
  await holdsWhatHistoryHolds(t, a, room, members)
})

clusterTest('a shard unreachable (its master frozen, no replica): publishes reject within connectTimeout; once it is back, members get the history in order, once', async (t) => {
  const cluster = await PrivateCluster.start(t, { masters: 3, nodeTimeout: 1000 })
  const keyPrefix = uniquePrefix('shard-away')
  const room = 'busy'
  const a = await startNode(t, { cluster: { rootNodes: [{ url: cluster.url }] }, keyPrefix })
  const b = await startNode(t, { cluster: { rootNodes: [{ url: cluster.url }] }, keyPrefix })
  const members = [await member(a, room), await member(b, room)]
  const master = await cluster.masterOf(slotOf(`{${keyPrefix}:room:${room}}`))

  const load = publisher([a, b], room)
  await until(() => load.count() >= 50, '50 publishes before the shard goes')
  master.pause()
  const failedBefore = load.failed.length
  await until(() => load.failed.length >= failedBefore + 4, 'publishes to fail while the shard is away')
  master.resume()
  await cluster.settled()
  const before = load.count()
  await until(() => load.count() >= before + 50, '50 publishes once it is back')
  await load.stop()
  t.ok(load.slowest() <= CONNECT_TIMEOUT + 1000, `every publish() settled within connectTimeout (slowest ${Math.round(load.slowest())} ms)`)
  await eventually(async () => (await a.app.websocketRooms.room(room).clusterMembers()) === 2, 'counts to come back')
  await holdsWhatHistoryHolds(t, a, room, members)
})

clusterTest('a registration cut short by connectTimeout while the cluster is frozen leaves no connection behind once it thaws', async (t) => {
  const cluster = await PrivateCluster.start(t, { masters: 3 })
  const root = cluster.nodes[0]!
  const name = uniquePrefix('cut-short')
  const slotReads = async (): Promise<number> => Number(/cmdstat_cluster\|(?:slots|shards):calls=(\d+)/.exec(await nodeCommand(root.url, ['INFO', 'commandstats']))?.[1] ?? 0)
  const before = await slotReads()
  root.pause()
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => {
    await app.register(websocketRooms, { adapter: redisAdapter({ cluster: { rootNodes: [{ url: root.url }], defaults: { name } }, connectTimeout: 300 }) })
  }, { code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE' })
  root.resume()
  // The discovery that connectTimeout cut short finishes now, and opens the nodes' clients...
  await eventually(async () => await slotReads() > before, 'the topology read by the cut registration')
  // ...which go, rather than keep the process alive.
  const left = async (): Promise<number> => {
    const lists = await Promise.all(cluster.nodes.map((node) => nodeCommand(node.url, ['CLIENT', 'LIST'])))
    return lists.join('\n').split('\n').filter((line) => line.includes(`name=${name} `)).length
  }
  await eventually(async () => await left() === 0, 'no connection of the cut registration left')
  t.pass('no connection left')
})

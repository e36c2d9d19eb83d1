// Rooms across nodes through Redis (redisAdapter): delivery between Fastify instances,
// cluster counts, interest routing, sharded pub/sub, isolation by key prefix, and the node's
// state in Redis. Runs against the real Redis (test/redis.ts); failures of Redis itself are in
// cluster-failures.test.ts, nodes in separate processes in cluster-processes.test.ts.
import Fastify, { type FastifyInstance } from 'fastify'
import websocketRooms, { redisAdapter, type RedisAdapterOptions } from 'fastify-websocket-rooms'
import { connect, listen, until, type Client } from './helpers'
import * as handlers from './fixtures/cluster-handlers'
import { REDIS_URL, adminClient, redisTest, uniquePrefix } from './redis'

interface Teardown { teardown (fn: () => unknown): void }
interface Node { app: FastifyInstance, base: string, nodeId: string }

async function startNode (t: Teardown, adapter: RedisAdapterOptions): Promise<Node> {
  const app = Fastify()
  await app.register(websocketRooms, { adapter: redisAdapter({ url: REDIS_URL, ...adapter }) })
  app.registerWebsocket('/ws', handlers)
  t.teardown(() => app.close())
  return { app, base: await listen(app), nodeId: app.websocketRooms.stats().cluster!.nodeId }
}

/** A client in the rooms; resolved once its node's subscriptions are live in Redis. */
async function member (node: Node, rooms: string): Promise<Client> {
  const client = await connect(node.base, `/ws?rooms=${encodeURIComponent(rooms)}`)
  await client.texts(1)
  const room = rooms.split(',')[0]!
  await node.app.websocketRooms.room(room).clusterMembers()
  return client
}

/** Resolves with every message the client has had once it has `count`. */
async function texts (client: Client, count: number): Promise<string[]> {
  return (await client.messages(count)).map(({ data, binary }) => binary ? `binary:${String(data)}` : String(data))
}

redisTest('broadcast, broadcastExcept and server broadcasts reach the members on every node', async (t) => {
  const keyPrefix = uniquePrefix('delivery')
  const a = await startNode(t, { keyPrefix })
  const b = await startNode(t, { keyPrefix })
  const a1 = await member(a, 'lobby')
  const a2 = await member(a, 'lobby')
  const b1 = await member(b, 'lobby')
  const elsewhere = await member(b, 'other')

  a1.send('others lobby hi from a1')
  t.same(await texts(a2, 2), ['ready', 'hi from a1'])
  t.same(await texts(b1, 2), ['ready', 'hi from a1'], 'broadcastExcept reaches the other node')

  b1.send('all lobby hello from b1')
  t.same(await texts(a1, 2), ['ready', 'hello from b1'], 'the sender of broadcastExcept did not get its own message')
  t.same(await texts(a2, 3), ['ready', 'hi from a1', 'hello from b1'])
  t.same(await texts(b1, 3), ['ready', 'hi from a1', 'hello from b1'], 'broadcast reaches its sender too')

  a.app.websocketRooms.room('lobby').broadcast(Buffer.from('from the server'))
  a2.send('binary lobby bytes from a2')
  for (const client of [a1, b1]) {
    const last = (await texts(client, client === a1 ? 4 : 5)).slice(-2)
    t.same(last, ['binary:from the server', 'binary:bytes from a2'], 'binary messages stay binary across nodes')
  }
  t.equal(elsewhere.received.length, 1, 'a member of another room got nothing')
  t.match(a.app.websocketRooms.stats().cluster, { connected: true, published: 3, received: 1, malformed: 0, publishFailed: 0 })
  t.match(b.app.websocketRooms.stats().cluster, { connected: true, published: 1, received: 3, malformed: 0, publishFailed: 0 })
})

redisTest('broadcastExcept leaves out its sender wherever the message is delivered', async (t) => {
  const keyPrefix = uniquePrefix('except')
  const a = await startNode(t, { keyPrefix })
  const b = await startNode(t, { keyPrefix })
  const sender = await member(a, 'lobby')
  const other = await member(b, 'lobby')
  // The excluded session's id travels with the message; a node that has it (none but its own
  // here) leaves it out. Sent from a server route to exercise the id on the receiving side.
  const session = [...a.app.websocketSessions.values()][0]!
  session.room('lobby').broadcastExcept('not for the sender')
  t.same(await texts(other, 2), ['ready', 'not for the sender'])
  sender.send('count lobby')
  t.same(await texts(sender, 2), ['ready', 'count lobby 2'], 'the sender had nothing before its count')
})

redisTest('clusterMembers() counts every node; members() stays local; leaving and closing update the counts', async (t) => {
  const keyPrefix = uniquePrefix('counts')
  const redis = await adminClient(t)
  const a = await startNode(t, { keyPrefix })
  const b = await startNode(t, { keyPrefix })
  const c = await startNode(t, { keyPrefix })
  await member(a, 'lobby')
  await member(a, 'lobby')
  const b1 = await member(b, 'lobby')
  await member(c, 'other')

  for (const node of [a, b, c]) {
    t.equal(await node.app.websocketRooms.room('lobby').clusterMembers(), 3, 'the same count from every node')
  }
  t.same([a, b, c].map((node) => node.app.websocketRooms.room('lobby').members()), [2, 1, 0], 'members() is this node\'s count')
  t.equal(await c.app.websocketRooms.room('other').clusterMembers(), 1)
  t.equal(await a.app.websocketRooms.room('nobody').clusterMembers(), 0)

  b1.send('leave lobby')
  await until(() => b.app.websocketRooms.room('lobby').members() === 0)
  t.equal(await b.app.websocketRooms.room('lobby').clusterMembers(), 2, 'a leave is counted once the node has written it')

  const nodeKey = (node: Node): string => `{${keyPrefix}:node:${node.nodeId}}`
  t.equal(await redis.exists(nodeKey(c)), 1)
  await c.app.close()
  t.equal(await redis.exists(nodeKey(c)), 0, 'app.close() removes the node\'s counts')
  t.equal(await redis.zScore(`{${keyPrefix}}:nodes`, c.nodeId), null, 'and its entry in the node list')
  t.equal(await a.app.websocketRooms.room('other').clusterMembers(), 0)
  const ttl = await redis.pTTL(nodeKey(a))
  t.ok(ttl > 0 && ttl <= 15_000, `a live node's counts expire unless renewed (PTTL ${ttl} ms, nodeTimeout 15000)`)
})

redisTest('a node subscribes to the rooms it has members in, and only those', async (t) => {
  const keyPrefix = uniquePrefix('interest')
  const redis = await adminClient(t)
  const channels = async (): Promise<string[]> => (await redis.pubSubChannels(`{${keyPrefix}:room:*`)).map(String).sort()
  const a = await startNode(t, { keyPrefix })
  const b = await startNode(t, { keyPrefix })
  t.same(await channels(), [], 'no members, no room subscriptions')
  t.same(await redis.pubSubNumSub(`${keyPrefix}:control`), { [`${keyPrefix}:control`]: 2 }, 'every node listens for commands')

  const a1 = await member(a, 'lobby')
  await member(a, 'news')
  const b1 = await member(b, 'news')
  t.same(await channels(), [`{${keyPrefix}:room:lobby}`, `{${keyPrefix}:room:news}`])
  t.same(await redis.pubSubNumSub([`{${keyPrefix}:room:lobby}`, `{${keyPrefix}:room:news}`]),
    { [`{${keyPrefix}:room:lobby}`]: 1, [`{${keyPrefix}:room:news}`]: 2 }, 'one subscriber per node with members')
  t.equal(b.app.websocketRooms.stats().cluster!.subscribedRooms, 1)

  a1.send('all lobby only for a')
  await texts(a1, 2)
  a.app.websocketRooms.room('news').broadcast('for both')
  await texts(b1, 2)
  t.equal(b.app.websocketRooms.stats().cluster!.received, 1, 'node b was sent the news, not the lobby')

  b1.send('leave news')
  await until(() => b.app.websocketRooms.room('news').members() === 0)
  await b.app.websocketRooms.room('news').clusterMembers()
  t.same(await redis.pubSubNumSub(`{${keyPrefix}:room:news}`), { [`{${keyPrefix}:room:news}`]: 1 }, 'unsubscribed once its last member left')
  await a1.close()
  await until(() => a.app.websocketRooms.room('lobby').members() === 0)
  await a.app.websocketRooms.room('lobby').clusterMembers()
  t.same(await channels(), [`{${keyPrefix}:room:news}`])
})

redisTest('joins and leaves of one turn of the event loop reach Redis as one SUBSCRIBE and one MULTI', async (t) => {
  const keyPrefix = uniquePrefix('batch')
  const monitor = await adminClient(t)
  const redis = await adminClient(t)
  const seen: string[] = []
  await monitor.monitor((line: string) => { if (line.includes(keyPrefix)) seen.push(line) })
  const a = await startNode(t, { keyPrefix })
  const session = await connect(a.base, '/ws')
  await session.texts(1)
  const [target] = [...a.app.websocketSessions.values()]
  seen.length = 0
  for (let i = 0; i < 50; i++) target!.room(`room-${i}`).join()
  t.equal(await a.app.websocketRooms.room('room-0').clusterMembers(), 1)
  // Redis runs commands one at a time and MONITOR shows them in that order: once this marker
  // is seen, every command before it has been seen too.
  const marker = `${keyPrefix}-marker`
  await redis.echo(marker)
  await until(() => seen.some((line) => line.includes(marker)))
  const subscribes = seen.filter((line) => /"subscribe"/i.test(line))
  t.equal(subscribes.length, 1, 'one SUBSCRIBE')
  t.equal(subscribes[0]!.split(`${keyPrefix}:room:`).length - 1, 50, 'for the 50 rooms')
  const hsets = seen.filter((line) => /"hset"/i.test(line))
  t.equal(hsets.filter((line) => line.includes(`"{${keyPrefix}:node:${a.nodeId}}"`)).length, 1, 'one HSET for their counts')
  t.equal(hsets.filter((line) => line.includes(`"{${keyPrefix}:node:${a.nodeId}}:presence:`)).length, 50, 'one for each room\'s presence')
})

redisTest('sharded pub/sub (Redis 7 SSUBSCRIBE/SPUBLISH) carries the same broadcasts', async (t) => {
  const keyPrefix = uniquePrefix('sharded')
  const redis = await adminClient(t)
  const a = await startNode(t, { keyPrefix, sharded: true })
  const b = await startNode(t, { keyPrefix, sharded: true })
  const a1 = await member(a, 'lobby')
  const b1 = await member(b, 'lobby')
  t.same((await redis.sendCommand(['PUBSUB', 'SHARDCHANNELS', `*${keyPrefix}:*`]) as string[]).map(String).sort(), [`${keyPrefix}:control`, `{${keyPrefix}:room:lobby}`])
  t.same(await redis.pubSubChannels(`*${keyPrefix}:*`), [], 'no classic channel')
  a1.send('others lobby sharded hello')
  t.same(await texts(b1, 2), ['ready', 'sharded hello'])
  b1.send('binary lobby sharded bytes')
  t.same(await texts(a1, 2), ['ready', 'binary:sharded bytes'])
  t.equal(await b.app.websocketRooms.room('lobby').clusterMembers(), 2)
})

redisTest('nested key prefixes: one that could share a channel is refused, the others share nothing', async (t) => {
  const prefix = uniquePrefix('nested')
  for (const colliding of [`${prefix}:room:x`, `${prefix}:room`]) {
    t.throws(() => redisAdapter({ url: REDIS_URL, keyPrefix: colliding }), { code: 'FST_WS_ROOMS_INVALID_OPTION', message: /keyPrefix/ })
  }
  const outer = await startNode(t, { keyPrefix: prefix })
  const inner = await startNode(t, { keyPrefix: `${prefix}:x` })
  const innerMember = await member(inner, 'room:y')
  const outerMember = await member(outer, 'x:room:y')
  outerMember.send('all x:room:y from the outer app')
  t.same(await texts(outerMember, 2), ['ready', 'from the outer app'])
  outer.app.websocketRooms.room('x:room:y').broadcast('again')
  inner.app.websocketRooms.room('room:y').broadcast('inner only')
  t.same(await texts(innerMember, 2), ['ready', 'inner only'], 'nothing of the outer app reached the inner one')
  t.same(await texts(outerMember, 3), ['ready', 'from the outer app', 'again'])
})

redisTest('apps with different key prefixes share one Redis and nothing else', async (t) => {
  const first = uniquePrefix('app-one')
  const second = uniquePrefix('app-two')
  const a = await startNode(t, { keyPrefix: first })
  const b = await startNode(t, { keyPrefix: first })
  const other = await startNode(t, { keyPrefix: second })
  const a1 = await member(a, 'lobby')
  const b1 = await member(b, 'lobby')
  const outsider = await member(other, 'lobby')
  t.equal(await a.app.websocketRooms.room('lobby').clusterMembers(), 2)
  t.equal(await other.app.websocketRooms.room('lobby').clusterMembers(), 1)
  a1.send('others lobby for my app')
  t.same(await texts(b1, 2), ['ready', 'for my app'])
  outsider.send('count lobby')
  t.same(await texts(outsider, 2), ['ready', 'count lobby 1'], 'the other app saw nothing')
})

redisTest('a room name with a lone surrogate is refused, so it cannot reach the room its UTF-8 form names on another node', async (t) => {
  const keyPrefix = uniquePrefix('surrogates')
  const a = await startNode(t, { keyPrefix })
  const b = await startNode(t, { keyPrefix })
  const replaced = '\ufffdx' // what '\ud800x' becomes as UTF-8
  const b1 = await member(b, replaced)
  const lone = JSON.parse('"\\ud800x"') as string // as an app reads a client's JSON escape
  t.throws(() => a.app.websocketRooms.room(lone), { code: 'FST_WS_ROOMS_INVALID_ARGUMENT' })
  a.app.websocketRooms.room(replaced).broadcast('for the U+FFFD room')
  t.same(await texts(b1, 2), ['ready', 'for the U+FFFD room'], 'the other node\'s room got only its own broadcast')
  t.equal(await a.app.websocketRooms.room(replaced).clusterMembers(), 1)
})

redisTest('room names of any characters travel between nodes', async (t) => {
  const keyPrefix = uniquePrefix('names')
  const a = await startNode(t, { keyPrefix })
  const b = await startNode(t, { keyPrefix })
  const name = 'café:room{x}*✓'
  const a1 = await member(a, name)
  const b1 = await member(b, name)
  a1.send(`others ${name} ünïcödé ✓`)
  t.same(await texts(b1, 2), ['ready', 'ünïcödé ✓'])
  t.equal(await b.app.websocketRooms.room(name).clusterMembers(), 2)
})

redisTest('a message on a room channel that is not a broadcast of this plugin is ignored and counted', async (t) => {
  const keyPrefix = uniquePrefix('malformed')
  const redis = await adminClient(t)
  const a = await startNode(t, { keyPrefix })
  const a1 = await member(a, 'lobby')
  const channel = `{${keyPrefix}:room:lobby}`
  await redis.publish(channel, 'not ours')
  await redis.publish(channel, Buffer.from([2, 0, 1, 0x41, 0xff, 0xfe])) // text that is not UTF-8
  await redis.publish(channel, Buffer.from([2, 0, 5, 0x41])) // truncated header
  await redis.publish(channel, Buffer.from([1, 0, 1, 0x41, 0, 0x68, 0x69])) // the format before version 2
  await until(() => a.app.websocketRooms.stats().cluster!.malformed === 4)
  a.app.websocketRooms.room('lobby').broadcast('still fine')
  t.same(await texts(a1, 2), ['ready', 'still fine'], 'the member got none of them')
  t.equal(a.app.websocketRooms.stats().cluster!.received, 0)
})

// The Redis adapter when things go wrong: bad options, a Redis that is not there at start,
// a Redis that goes away and comes back (a private redis-server the test stops and starts),
// and connections owned by the app rather than the adapter.
import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { createClient, createCluster } from '@redis/client'
import websocketRooms, { redisAdapter, type RedisAdapterOptions } from 'fastify-websocket-rooms'
import * as handlers from './fixtures/cluster-handlers'
import { connect, listen, throwsLike, until, type Client } from './helpers'
import { PrivateRedis, REDIS_URL, adminClient, clusterNode, redisTest, uniquePrefix } from './redis'
import { Events, eventually } from './signals'

interface Teardown { teardown (fn: () => unknown): void }

async function startNode (t: Teardown, adapter: RedisAdapterOptions): Promise<{ app: FastifyInstance, base: string }> {
  const app = Fastify()
  await app.register(websocketRooms, { adapter: redisAdapter(adapter) })
  app.registerWebsocket('/ws', handlers)
  t.teardown(() => app.close())
  return { app, base: await listen(app) }
}

async function member (node: { app: FastifyInstance, base: string }, room: string): Promise<Client> {
  const client = await connect(node.base, `/ws?rooms=${room}`)
  await client.texts(1)
  await node.app.websocketRooms.room(room).clusterMembers()
  return client
}

test('redisAdapter() refuses bad options with a TypeError naming the option', async (t) => {
  const invalid = { code: 'FST_WS_ROOMS_INVALID_OPTION' }
  const cases: Array<[unknown, RegExp]> = [
    [undefined, /redisAdapter options" must be an object/],
    [{}, /exactly one of url .*, cluster .* and client/],
    [{ cluster: { rootNodes: [] } }, /"redisAdapter cluster" must be the options of createCluster\(\) from redis or @redis\/client: \{ rootNodes: \[\{ url \}\], ... \}/],
    [{ cluster: { rootNodes: [{ url: REDIS_URL }] }, url: REDIS_URL }, /exactly one of url/],
    [{ url: REDIS_URL, client: createClient() }, /exactly one of url/],
    [{ url: 'http://127.0.0.1:6379' }, /"redisAdapter url" must be a redis:\/\/ or rediss:\/\/ URL, got "http/],
    [{ client: { publish () {} } }, /"redisAdapter client" must be a node-redis client/],
    [{ url: REDIS_URL, subscriber: createClient() }, /"redisAdapter subscriber" must be a node-redis client, given with a client of createClient\(\)/],
    [{ client: createCluster({ rootNodes: [{ url: REDIS_URL }] }), subscriber: createClient() }, /"redisAdapter subscriber" .* \(a cluster client subscribes by itself\)/],
    [{ url: REDIS_URL, keyPrefix: '' }, /"redisAdapter keyPrefix" must be a non-empty, well-formed string without \{ or \}, that neither contains ":room:" nor ends with ":room"/],
    [{ url: REDIS_URL, keyPrefix: 'app{1}' }, /keyPrefix/],
    [{ url: REDIS_URL, keyPrefix: 'app:room:x' }, /keyPrefix/],
    [{ url: REDIS_URL, keyPrefix: 'app:room' }, /keyPrefix/],
    [{ url: REDIS_URL, keyPrefix: 'app\ud800' }, /keyPrefix/],
    [{ url: REDIS_URL, sharded: 'yes' }, /"redisAdapter sharded" must be a boolean/],
    [{ url: REDIS_URL, nodeHeartbeat: 0 }, /"redisAdapter nodeHeartbeat" must be an integer >= 1 \(ms\), got number 0/],
    [{ url: REDIS_URL, nodeHeartbeat: 5000, nodeTimeout: 5000 }, /"redisAdapter nodeTimeout" must be more than nodeHeartbeat \(5000 ms\)/],
    [{ url: REDIS_URL, connectTimeout: 1.5 }, /connectTimeout/],
    [{ url: REDIS_URL, maxPublishBacklog: 0 }, /"redisAdapter maxPublishBacklog" must be an integer >= 1 \(bytes\), got number 0/],
    [{ url: REDIS_URL, onError: 'log' }, /"redisAdapter onError" must be a function/],
    [{ url: REDIS_URL, keyprefix: 'app' }, /"redisAdapter keyprefix" must be one of url, cluster, client, subscriber, keyPrefix, .* \(did you mean "keyPrefix"\?\), got "keyprefix"/]
  ]
  for (const [options, message] of cases) {
    throwsLike(t, () => redisAdapter(options as RedisAdapterOptions), TypeError, { ...invalid, message })
  }
  const app = Fastify()
  app.register(websocketRooms, { adapter: { kind: 'redis' } as never })
  await t.rejects(async () => { await app.ready() }, {
    code: 'FST_WS_ROOMS_INVALID_OPTION', message: /option "adapter" must be what redisAdapter\(\) returns/
  })
  await app.close()
})

test('a Redis that cannot be reached fails app.register() within connectTimeout', async (t) => {
  const redis = await PrivateRedis.start(t)
  await redis.stop() // a port where nothing answers
  const app = Fastify()
  app.register(websocketRooms, { adapter: redisAdapter({ url: redis.url, connectTimeout: 300 }) })
  await t.rejects(async () => { await app.ready() }, {
    code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE',
    statusCode: 503,
    message: /Redis is not reachable: no connection within connectTimeout \(300 ms\): .*ECONNREFUSED/
  })
  await app.close()
})

test('a client of one Redis connected to a Redis Cluster node is refused at registration, also when INFO is not allowed; a standalone Redis that does not allow INFO is not', async (t) => {
  const node = await clusterNode(t)
  const standalone = await PrivateRedis.start(t)
  const check = await adminClient(t, node.url)
  for (const admin of [check, await adminClient(t, standalone.url)]) {
    await admin.sendCommand(['ACL', 'SETUSER', 'limited', 'on', 'nopass', '~*', '&*', '+@all', '-info'])
  }
  const limited = (url: string): string => url.replace('redis://', 'redis://limited@')
  for (const url of [node.url, limited(node.url)]) {
    // The app's own connection is refused, and left open (a URL of a node opens its cluster: test/redis-cluster.test.ts).
    const client = createClient({ url })
    await client.connect()
    t.teardown(() => client.destroy())
    const app = Fastify()
    app.register(websocketRooms, { adapter: redisAdapter({ client, keyPrefix: uniquePrefix('cluster') }) })
    await t.rejects(async () => { await app.ready() }, {
      code: 'FST_WS_ROOMS_REDIS_CLUSTER_UNSUPPORTED',
      statusCode: 500,
      message: /redisAdapter\(\) was given a client of one Redis, and it is a Redis Cluster node \(cluster_enabled:1\).*give a createCluster\(\) client/
    })
    await app.close()
    t.equal(await client.ping(), 'PONG', 'the app\'s connection is still open')
    client.destroy()
  }
  await eventually(async () => String(await check.sendCommand(['CLIENT', 'LIST'])).trim().split('\n').length === 1, 'the adapter\'s connections to close: this check\'s is the last one')

  const ok = await startNode(t, { url: limited(standalone.url), keyPrefix: uniquePrefix('no-info') })
  t.equal(ok.app.websocketRooms.stats().cluster!.connected, true, 'a standalone Redis is taken, INFO or not')
})

redisTest('Redis crashes and starts again: local delivery goes on, the rooms are resubscribed, nothing arrives twice', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('restart')
  const errors = { a: new Events<Error>(), b: new Events<Error>() }
  const ready = { a: new Events<true>(), b: new Events<true>() }
  const options = (name: 'a' | 'b'): RedisAdapterOptions => ({
    url: redis.url,
    keyPrefix,
    nodeHeartbeat: 100,
    nodeTimeout: 1000,
    onError: (error) => errors[name].push(error),
    onReady: () => ready[name].push(true)
  })
  const a = await startNode(t, options('a'))
  const b = await startNode(t, options('b'))
  await Promise.all([ready.a.until(1), ready.b.until(1)])
  const a1 = await member(a, 'lobby')
  const a2 = await member(a, 'lobby')
  const b1 = await member(b, 'lobby')
  a1.send('others lobby 1')
  t.same(await b1.texts(2), ['ready', '1'])

  await redis.crash()
  await Promise.all([errors.a.until(1), errors.b.until(1)])
  t.equal(a.app.websocketRooms.stats().cluster!.connected, false)
  a1.send('others lobby 2 (Redis away)')
  t.same(await a2.texts(3), ['ready', '1', '2 (Redis away)'], 'members on the same node still get broadcasts')
  t.equal(a.app.websocketRooms.stats().cluster!.publishFailed, 1, 'the broadcast that could not leave the node is counted')
  await t.rejects(a.app.websocketRooms.room('lobby').clusterMembers(), { code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE', message: /room "lobby"/ })

  await redis.start()
  await Promise.all([ready.a.until(2), ready.b.until(2)])
  t.equal(errors.a.list.length, 1, `one error reported per outage, however many reconnection attempts (${errors.a.list.map((error) => error.message).join('; ')})`)
  const check = await adminClient(t, redis.url)
  t.same((await check.pubSubNumSub(`{${keyPrefix}:room:lobby}`)), { [`{${keyPrefix}:room:lobby}`]: 2 }, 'both nodes subscribed again')
  t.equal(await b.app.websocketRooms.room('lobby').clusterMembers(), 3, 'the counts were written again')
  a1.send('others lobby 3')
  b1.send('others lobby 4')
  t.same(await a2.texts(5), ['ready', '1', '2 (Redis away)', '3', '4'])
  t.same(await b1.texts(3), ['ready', '1', '3'], 'delivery resumed; the message sent while Redis was away was not replayed')
  a1.send('others lobby 5')
  t.same(await b1.texts(4), ['ready', '1', '3', '5'], 'and nothing arrived twice')
})

redisTest('commands in flight when Redis drops (heartbeats, an update) fail within the outage already reported: one error', async (t) => {
  const redis = await PrivateRedis.start(t)
  const nodeHeartbeat = 100
  const errors = new Events<Error>()
  const ready = new Events<true>()
  const a = await startNode(t, {
    url: redis.url,
    keyPrefix: uniquePrefix('in-flight'),
    nodeHeartbeat,
    nodeTimeout: 1000,
    onError: (error) => errors.push(error),
    onReady: () => ready.push(true)
  })
  await ready.until(1)
  await member(a, 'lobby')

  redis.pause() // what is sent from now on waits unanswered
  await connect(a.base, '/ws?rooms=later') // its join queues an update, sent on the next turn
  // A beat leaves every nodeHeartbeat: no event marks that one did, so this waits on the
  // clock, for three beats, letting the event loop turn meanwhile.
  const pausedAt = performance.now()
  await until(() => performance.now() - pausedAt > 3 * nodeHeartbeat, 'three heartbeats sent to the frozen Redis')
  await redis.crash()
  await errors.until(1)
  await redis.start()
  await ready.until(2)
  t.equal(errors.list.length, 1, `one error for the outage (${errors.list.map((error) => error.message).join('; ')})`)
})

redisTest('a Redis that stalls holds at most maxPublishBacklog bytes (plus one turn) of broadcasts; the rest reach this node only, and publishing resumes after', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('stall')
  const maxPublishBacklog = 2000
  const a = await startNode(t, { url: redis.url, keyPrefix, maxPublishBacklog })
  const b = await startNode(t, { url: redis.url, keyPrefix })
  const a1 = await member(a, 'lobby')
  const b1 = await member(b, 'lobby')
  const lobby = a.app.websocketRooms.room('lobby')

  redis.pause()
  const sent = 100
  const perTurn = 5
  const text = (i: number): string => `stalled ${i} `.padEnd(100, '.')
  let largest = 0
  for (let i = 0; i < sent; i++) {
    lobby.broadcast(text(i))
    largest = Math.max(largest, a.app.websocketRooms.stats().cluster!.publishBacklog)
    if (i % perTurn === perTurn - 1) await new Promise((resolve) => setImmediate(resolve))
  }
  const stalled = a.app.websocketRooms.stats().cluster!
  const packet = 200 // bytes of one of these broadcasts as published, header and channel included, at most
  t.ok(largest > maxPublishBacklog - packet && largest <= maxPublishBacklog + perTurn * packet, `the backlog is bounded (at most ${largest} bytes)`)
  t.ok(stalled.published > 0, 'broadcasts went to Redis until the bound')
  t.ok(stalled.publishFailed > 0, 'the ones past it were not sent')
  t.equal(stalled.published + stalled.publishFailed, sent, 'every broadcast is one or the other')
  t.same(await a1.texts(1 + sent), ['ready', ...Array.from({ length: sent }, (_, i) => text(i))], 'the members on this node got every broadcast')

  redis.resume()
  t.same(await b1.texts(1 + stalled.published), ['ready', ...Array.from({ length: stalled.published }, (_, i) => text(i))],
    'the other node got the published ones, in order')
  await lobby.clusterMembers() // answered after every PUBLISH before it, on the same connection
  t.equal(a.app.websocketRooms.stats().cluster!.publishBacklog, 0, 'the backlog is empty again')
  lobby.broadcast('after the stall')
  t.equal((await b1.texts(2 + stalled.published)).at(-1), 'after the stall', 'publishing resumed')
  t.equal(a.app.websocketRooms.stats().cluster!.publishFailed, stalled.publishFailed)
})

redisTest('a burst of broadcasts bigger than maxPublishBacklog in one turn all reach the other node', async (t) => {
  const keyPrefix = uniquePrefix('publish-burst')
  const maxPublishBacklog = 64 * 1024
  const a = await startNode(t, { url: REDIS_URL, keyPrefix, maxPublishBacklog })
  const b = await startNode(t, { url: REDIS_URL, keyPrefix })
  await member(a, 'lobby')
  const b1 = await member(b, 'lobby')
  const text = (i: number): string => `${i} `.padEnd(8 * 1024, '.')
  for (let i = 0; i < 40; i++) a.app.websocketRooms.room('lobby').broadcast(text(i)) // 320 KiB in one turn
  t.same(await b1.texts(41), ['ready', ...Array.from({ length: 40 }, (_, i) => text(i))], 'every broadcast, in order')
  t.equal(a.app.websocketRooms.stats().cluster!.publishFailed, 0)
})

redisTest('clusterMembers() rejects with FST_WS_ROOMS_REDIS_UNAVAILABLE after connectTimeout while Redis stalls', async (t) => {
  const redis = await PrivateRedis.start(t)
  const connectTimeout = 300
  const a = await startNode(t, { url: redis.url, keyPrefix: uniquePrefix('count-stall'), connectTimeout })
  await member(a, 'lobby')
  redis.pause()
  const startedAt = performance.now()
  await t.rejects(a.app.websocketRooms.room('lobby').clusterMembers(), {
    code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE', message: /cannot count the members of room "lobby" across the cluster: no answer within connectTimeout \(300 ms\)/
  })
  const took = performance.now() - startedAt
  t.ok(took >= connectTimeout - 5 && took < connectTimeout + 1000, `after ${Math.round(took)} ms`)
  redis.resume()
  t.equal(await a.app.websocketRooms.room('lobby').clusterMembers(), 1, 'and counts again once Redis goes on')
})

redisTest('app.close() with a stalled Redis waits connectTimeout at most, then cuts the adapter\'s connections; the node\'s entry expires', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('stalled-close')
  const connectTimeout = 300
  const nodeTimeout = 2000
  const lines: any[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  await app.register(websocketRooms, { closeTimeout: 200, adapter: redisAdapter({ url: redis.url, keyPrefix, connectTimeout, nodeHeartbeat: 500, nodeTimeout }) })
  app.registerWebsocket('/ws', handlers)
  const a1 = await member({ app, base: await listen(app) }, 'lobby')
  const nodeId = app.websocketRooms.stats().cluster!.nodeId

  redis.pause()
  app.websocketRooms.room('lobby').broadcast('into the stall') // a PUBLISH Redis never answers
  const startedAt = performance.now()
  await app.close()
  const took = performance.now() - startedAt
  t.ok(took >= connectTimeout - 5 && took < connectTimeout + 1500, `closed after ${Math.round(took)} ms`)
  t.same(await a1.closed, { code: 1001, reason: 'server shutting down' })
  t.match(lines, [{ level: 40, msg: /node \S+ got no answer from Redis within connectTimeout \(300 ms\) while leaving the cluster; its connections are cut/ }], 'one warning, and no error')

  redis.resume()
  const check = await adminClient(t, redis.url)
  // The DEL written before the cut may still reach Redis once it goes on; if not, the hash expires.
  const ttl = await check.pTTL(`{${keyPrefix}:node:${nodeId}}`)
  t.ok(ttl === -2 || (ttl > 0 && ttl <= nodeTimeout), `the node's hash is gone or expires (${ttl} ms)`)
})

redisTest('connections the app passes in stay open after app.close(); the adapter closes only its own', async (t) => {
  const keyPrefix = uniquePrefix('own-clients')
  const client = createClient({ url: REDIS_URL })
  const subscriber = createClient({ url: REDIS_URL })
  await Promise.all([client.connect(), subscriber.connect()])
  t.teardown(() => Promise.all([client.close(), subscriber.close()]))
  const redis = await adminClient(t)

  const a = await startNode({ teardown () {} }, { client, subscriber, keyPrefix })
  const b = await startNode(t, { client, keyPrefix }) // subscriber: client.duplicate(), the adapter's own
  const a1 = await member(a, 'lobby')
  const b1 = await member(b, 'lobby')
  a1.send('others lobby over the app\'s connections')
  t.same(await b1.texts(2), ['ready', 'over the app\'s connections'])

  await a.app.close()
  t.equal(client.isReady, true, 'the app\'s client is still open')
  t.equal(subscriber.isReady, true, 'and so is its subscriber')
  t.same(await redis.pubSubNumSub(`{${keyPrefix}:room:lobby}`), { [`{${keyPrefix}:room:lobby}`]: 1 }, 'which is no longer subscribed to the node\'s rooms')
  t.equal(await client.ping(), 'PONG')
})

for (const how of ['throw', 'reject'] as const) {
  redisTest(`onError and onReady hooks that ${how} are logged, and the node carries on`, async (t) => {
    const redis = await PrivateRedis.start(t)
    const logged = new Events<string>()
    const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => logged.push(JSON.parse(line).msg) } } })
    const ready = new Events<true>()
    const fail = (name: string): unknown => {
      if (how === 'throw') throw new Error(`${name} failed`)
      return Promise.reject(new Error(`${name} failed`)) // an async hook: an unhandled rejection would end the process
    }
    await app.register(websocketRooms, {
      adapter: redisAdapter({ url: redis.url, keyPrefix: uniquePrefix('hook'), onError: () => fail('onError'), onReady: () => { ready.push(true); return fail('onReady') } })
    })
    t.teardown(() => app.close())
    await ready.until(1)
    t.same(await logged.until(1), ['fastify-websocket-rooms: redisAdapter onReady failed'])
    await redis.crash()
    await logged.until(3)
    t.match(logged.list.slice(1), [/lost its Redis connection/, 'fastify-websocket-rooms: redisAdapter onError failed'])
    await redis.start()
    await ready.until(2)
    t.equal((await logged.until(4))[3], 'fastify-websocket-rooms: redisAdapter onReady failed')
    t.equal(app.websocketRooms.stats().cluster!.connected, true)
  })
}

redisTest('a node whose state expired while it was stalled writes it again on its next heartbeat', async (t) => {
  // A private server with keyspace events for hash commands, so the test can await the rewrite.
  const redis = await PrivateRedis.start(t, ['--notify-keyspace-events', 'Eh'])
  const keyPrefix = uniquePrefix('stalled')
  const node = await startNode(t, { url: redis.url, keyPrefix, nodeHeartbeat: 50, nodeTimeout: 5000 })
  await member(node, 'lobby')
  await member(node, 'news')
  const admin = await adminClient(t, redis.url)
  const events = await adminClient(t, redis.url)
  const nodeKey = `{${keyPrefix}:node:${node.app.websocketRooms.stats().cluster!.nodeId}}`
  let onRewritten!: () => void
  const rewritten = new Promise<void>((resolve) => { onRewritten = resolve })
  await events.subscribe('__keyevent@0__:hset', (key) => { if (key === nodeKey) onRewritten() })

  await admin.del(nodeKey) // what expiry does to a node that missed its heartbeats
  t.equal(await admin.exists(nodeKey), 0)
  await rewritten
  t.same(await admin.hGetAll(nodeKey), { lobby: '1', news: '1' }, 'the node wrote every room\'s count again')
  t.ok(await admin.pTTL(nodeKey) > 0, 'with its expiry')
})

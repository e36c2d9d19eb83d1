// History and recovery across nodes through the real Redis: positions assigned in Redis in
// one order for every node, recovery on another node than the one a session was on, with
// publishers on every node during the recovery, the keys' bounds, and Redis away, stalled or
// restarted with nothing kept (a new epoch).
import Fastify, { type FastifyInstance } from 'fastify'
import websocketRooms, { redisAdapter, type RedisAdapterOptions, type StreamPosition, type WebSocketSession } from 'fastify-websocket-rooms'
import type { Test } from 'tap'
import { Client, connect, listen } from './helpers'
import { PrivateRedis, REDIS_URL, RedisProxy, adminClient, redisTest, uniquePrefix } from './redis'
import { eventually, until, within } from './signals'
import * as historyHandlers from './fixtures/history-handlers'

interface Teardown { teardown (fn: () => unknown): void }
interface Node { app: FastifyInstance, base: string }

const HISTORY = { size: 1000, ttl: 60_000 }

async function startNode (t: Teardown, adapter: RedisAdapterOptions, history: { size: number, ttl: number } = HISTORY): Promise<Node> {
  const app = Fastify()
  await app.register(websocketRooms, { history, adapter: redisAdapter({ url: REDIS_URL, ...adapter }) })
  app.registerWebsocket('/ws', historyHandlers)
  t.teardown(() => app.close())
  return { app, base: await listen(app) }
}

/** A member of the room, once its node is subscribed to it in Redis. */
async function member (node: Node, room = 'chat'): Promise<Client> {
  const client = await connect(node.base, `/ws?room=${encodeURIComponent(room)}`)
  await client.texts(1)
  await node.app.websocketRooms.room(room).clusterMembers()
  return client
}

function publishText (node: Node, text: string, room = 'chat'): Promise<StreamPosition> {
  return node.app.websocketRooms.room(room).publish(({ offset, epoch }) => JSON.stringify({ offset, epoch, text }))
}

/** The offsets of the published messages a client got (its other messages left out). */
function offsetsOf (client: Client): number[] {
  return client.received.map((m) => String(m.data)).filter((text) => text.startsWith('{"offset"')).map((text) => JSON.parse(text).offset)
}

function range (from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)
}

redisTest('publish() on any node: one order of positions for the cluster, every member gets each message once in that order', async (t) => {
  const keyPrefix = uniquePrefix('history-order')
  const [a, b] = [await startNode(t, { keyPrefix }), await startNode(t, { keyPrefix })]
  const members = [await member(a), await member(a), await member(b)]
  // Both nodes publish at once, many at a time: Redis orders them.
  const published = await Promise.all([
    ...range(1, 60).map((i) => publishText(a, `a${i}`)),
    ...range(1, 60).map((i) => publishText(b, `b${i}`))
  ])
  t.same(published.map((p) => p.offset).sort((x, y) => x - y), range(1, 120), 'each position once')
  t.equal(new Set(published.map((p) => p.epoch)).size, 1)
  for (const client of members) {
    await until(() => offsetsOf(client).length >= 120, 'every member to get the 120 messages')
    t.same(offsetsOf(client), range(1, 120), 'in offset order, each once, as its builder was told')
  }
  // Each node's own messages keep the order it published them in.
  const texts = members[2]!.received.slice(1).map((m) => JSON.parse(String(m.data)).text as string)
  t.same(texts.filter((text) => text.startsWith('a')), range(1, 60).map((i) => `a${i}`))
  t.same(texts.filter((text) => text.startsWith('b')), range(1, 60).map((i) => `b${i}`))
})

redisTest('a node that took a position another node had taken builds its message again with the next one', async (t) => {
  const keyPrefix = uniquePrefix('history-conflict')
  const [a, b] = [await startNode(t, { keyPrefix }), await startNode(t, { keyPrefix })]
  const watcher = await member(a)
  await b.app.websocketRooms.room('chat').publish(() => 'zero') // B now knows the stream: offset 1
  const fromA = await publishText(a, 'from a') // A takes 2, which B does not know
  const calls: number[] = []
  let throws = 0
  const [failed, position] = await Promise.allSettled([
    b.app.websocketRooms.room('chat').publish(() => { throws++; throw new Error('no message') }),
    b.app.websocketRooms.room('chat').publish(({ offset, epoch }) => {
      calls.push(offset)
      return JSON.stringify({ offset, epoch, text: 'from b' })
    })
  ])
  t.match(failed, { status: 'rejected', reason: { message: 'no message' } })
  t.equal(throws, 1, 'a builder that threw is not called again')
  t.same(calls, [2, 3], 'built for 2, which A had, then for 3')
  t.same(position, { status: 'fulfilled', value: { offset: 3, epoch: fromA.epoch } })
  await until(() => offsetsOf(watcher).length === 2)
  t.same(offsetsOf(watcher), [2, 3])
  t.same(watcher.received.map((m) => String(m.data)).slice(1, 2), ['zero'])
})

redisTest('recover() on another node than the one the session was on: the missed messages, then the live ones', async (t) => {
  const keyPrefix = uniquePrefix('history-elsewhere')
  const [a, b] = [await startNode(t, { keyPrefix }), await startNode(t, { keyPrefix })]
  const before = await member(a)
  for (const text of ['one', 'two', 'three']) await publishText(a, text)
  await until(() => offsetsOf(before).length === 3)
  const { epoch } = JSON.parse(String(before.received[3]!.data))
  await before.close()
  for (const text of ['four', 'five', 'six']) await publishText(a, text)
  const after = await connect(b.base, `/ws?room=chat&offset=3&epoch=${epoch}`)
  const got = await after.texts(4)
  t.same(got.slice(0, 3).map((text) => JSON.parse(text).text), ['four', 'five', 'six'])
  t.same(JSON.parse(got[3]!), { recovered: true, replayed: 3 })
  await publishText(a, 'seven')
  await until(() => offsetsOf(after).length === 4)
  t.same(offsetsOf(after), [4, 5, 6, 7], 'the live one from the other node follows, no gap, no duplicate')
  // history() reads the same stream on both nodes.
  const [fromA, fromB] = [await a.app.websocketRooms.room('chat').history({ limit: 2 }), await b.app.websocketRooms.room('chat').history({ limit: 2 })]
  t.same(fromA, fromB)
  t.same([fromB.offset, fromB.messages.map((m) => m.offset), fromB.complete, fromB.epoch], [7, [6, 7], true, epoch])
})

redisTest('recoveries on both nodes while both nodes publish as fast as they can: each client sees exactly the offsets after its own', async (t) => {
  const keyPrefix = uniquePrefix('history-storm')
  const [a, b] = [await startNode(t, { keyPrefix }), await startNode(t, { keyPrefix })]
  const watcher = await member(b)
  const storm = { on: true }
  let published = 0
  const refused: unknown[] = []
  const publisher = async (node: Node): Promise<void> => {
    while (storm.on) {
      try {
        await publishText(node, 'storm')
        published++
      } catch (error) {
        refused.push(error) // every publish must go through: checked below
        storm.on = false
      }
    }
  }
  const publishers = [publisher(a), publisher(a), publisher(b), publisher(b)]
  await until(() => published >= 100, 'the storm to start')
  const { epoch } = await a.app.websocketRooms.room('chat').history({ limit: 0 })
  const recovering: Array<{ client: Client, from: number }> = []
  for (let i = 0; i < 12; i++) {
    const node = i % 2 === 0 ? a : b
    const { offset } = await node.app.websocketRooms.room('chat').history({ limit: 0 })
    const from = Math.max(0, offset - 5 * i)
    recovering.push({ client: new Client(`${node.base}/ws?room=chat&offset=${from}&epoch=${epoch}`), from })
    await until(() => published >= 100 + 20 * (i + 1), 'more publishes between recoveries')
  }
  const results = (client: Client): string[] => client.received.map((m) => String(m.data)).filter((text) => text.includes('recovered'))
  await until(() => recovering.every(({ client }) => results(client).length === 1), 'every recovery to finish')
  storm.on = false
  await Promise.all(publishers)
  t.same(refused, [], 'no publish refused: four publishers on two nodes, none starved')
  const last = (await a.app.websocketRooms.room('chat').history({ limit: 0 })).offset
  for (const { client, from } of recovering) {
    t.same(JSON.parse(results(client)[0]!).recovered, true, `from ${from}: recovered`)
    await until(() => offsetsOf(client).at(-1) === last, () => `the client from ${from} to reach ${last} (at ${offsetsOf(client).at(-1)})`)
    t.same(offsetsOf(client), range(from + 1, last), `from ${from}: exactly ${from + 1}..${last}`)
  }
  await until(() => offsetsOf(watcher).at(-1) === last)
  t.same(offsetsOf(watcher), range(1, last), 'a member all along: 1..last')
  t.ok(last >= 340, `${last} messages published during the recoveries`)
})

redisTest('publishExcept() across nodes: everyone but the sender, wherever they are', async (t) => {
  const keyPrefix = uniquePrefix('history-except')
  const [a, b] = [await startNode(t, { keyPrefix }), await startNode(t, { keyPrefix })]
  const [sender, neighbour, remote] = [await member(a), await member(a), await member(b)]
  sender.send('others chat psst')
  t.equal((await sender.texts(2))[1], 'said 1')
  for (const client of [neighbour, remote]) {
    await until(() => offsetsOf(client).length === 1)
    t.equal(JSON.parse(String(client.received[1]!.data)).text, 'psst')
  }
  sender.send('say chat aloud')
  await until(() => offsetsOf(sender).length === 1)
  t.same(offsetsOf(sender), [2], 'the sender gets the next one: its position 1 was skipped for it only')
  // Binary messages stay binary, live and in history().
  sender.send('bytes chat raw')
  await until(() => remote.received.length === 4)
  t.same([remote.received[3]!.binary, String(remote.received[3]!.data)], [true, 'raw'])
  const history = await b.app.websocketRooms.room('chat').history({ limit: 1 })
  t.ok(Buffer.isBuffer(history.messages[0]!.message))
  t.equal(String(history.messages[0]!.message), 'raw')
})

redisTest('the history is bounded: size entries in the stream, and both keys expire ttl after the last message', async (t) => {
  const keyPrefix = uniquePrefix('history-bounds')
  const a = await startNode(t, { keyPrefix }, { size: 3, ttl: 400 })
  const admin = await adminClient(t)
  const [meta, log] = [`{${keyPrefix}:room:chat}:history-meta`, `{${keyPrefix}:room:chat}:history`]
  for (const text of ['a', 'b', 'c', 'd', 'e']) await publishText(a, text)
  t.equal(await admin.xLen(log), 3, 'the stream holds size entries')
  for (const key of [meta, log]) {
    const ttl = await admin.pTTL(key)
    t.ok(ttl > 0 && ttl <= 400, `${key} expires within ttl (${ttl} ms left)`)
  }
  const history = await a.app.websocketRooms.room('chat').history()
  t.same(history.messages.map((m) => m.offset), [3, 4, 5])
  await eventually(async () => await admin.exists([meta, log]) === 0, 'both keys to expire')
  const next = await publishText(a, 'again')
  t.same([next.offset, next.epoch === history.epoch], [1, false], 'a new stream, in a new epoch')
})

redisTest('sharded pub/sub: published messages reach the other node too', async (t) => {
  const keyPrefix = uniquePrefix('history-sharded')
  const [a, b] = [await startNode(t, { keyPrefix, sharded: true }), await startNode(t, { keyPrefix, sharded: true })]
  const remote = await member(b)
  await publishText(a, 'sharded')
  await until(() => offsetsOf(remote).length === 1)
  t.equal(JSON.parse(String(remote.received[1]!.data)).text, 'sharded')
})

redisTest('a malformed published packet on a room\'s channel is ignored and counted', async (t) => {
  const keyPrefix = uniquePrefix('history-malformed')
  const a = await startNode(t, { keyPrefix })
  const client = await member(a)
  const admin = await adminClient(t)
  await admin.publish(`{${keyPrefix}:room:chat}`, Buffer.from([4, 0, 1, 0x41, 0, 0]))
  await until(() => a.app.websocketRooms.stats().cluster!.malformed === 1)
  await publishText(a, 'fine')
  await until(() => offsetsOf(client).length === 1)
  t.equal(client.received.length, 2, 'nothing but ready and the real one')
})

redisTest('Redis restarted with nothing kept: a new epoch, positions from 1, an old position not recovered', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('history-restart')
  const a = await startNode(t, { keyPrefix, url: redis.url })
  const old = await publishText(a, 'before')
  await redis.stop()
  await until(() => a.app.websocketRooms.stats().cluster!.connected === false)
  await redis.start()
  await until(() => a.app.websocketRooms.stats().cluster!.connected, 'the node to reconnect')
  const fresh = await publishText(a, 'after')
  t.equal(fresh.offset, 1)
  t.not(fresh.epoch, old.epoch, 'another epoch')
  const stale = await connect(a.base, `/ws?room=chat&offset=1&epoch=${old.epoch}`)
  t.same(await stale.json(1), [{ recovered: false, replayed: 0 }], 'never replayed across epochs')
  const current = await connect(a.base, `/ws?room=chat&offset=0&epoch=${fresh.epoch}`)
  t.same((await current.texts(2)).map((text) => JSON.parse(text).text ?? JSON.parse(text).replayed), ['after', 1])
})

/** The published messages a client got, as [epoch, offset, text]. */
function publishedOf (client: Client): Array<[string, number, string]> {
  return client.received.map((m) => String(m.data)).filter((text) => text.startsWith('{"offset"')).map((text) => {
    const { epoch, offset, text: said } = JSON.parse(text)
    return [epoch, offset, said]
  })
}

/**
 * While node B is cut from Redis (its member stays connected), `renew` makes the room's
 * stream start anew and `publisher` publishes three of the new one; B is back after that, and
 * a fourth is published. B's member must get all of the new stream, after the old one's.
 */
async function awayWhileRenewed (t: Test, nodes: { a: Node, b: Node, publisher: Node, proxy: RedisProxy }, renew: () => Promise<void>): Promise<void> {
  const { a, b, publisher, proxy } = nodes
  const client = await member(b)
  const [first] = [await publishText(a, 'one'), await publishText(a, 'two')]
  await until(() => offsetsOf(client).length === 2)
  proxy.cut()
  await until(() => b.app.websocketRooms.stats().cluster!.connected === false, 'B to lose Redis')
  await renew()
  const fresh = [await publishText(publisher, 'three'), await publishText(publisher, 'four'), await publishText(publisher, 'five')]
  const epoch = fresh[0]!.epoch
  t.same([fresh.map((p) => p.offset), epoch === first!.epoch], [[1, 2, 3], false], 'a new stream')
  proxy.restore()
  await until(() => b.app.websocketRooms.stats().cluster!.connected, 'B to be back')
  await publishText(publisher, 'six')
  await until(() => publishedOf(client).some(([e, offset]) => e === epoch && offset === 4), () => `B's member to get offset 4 of the new stream (${JSON.stringify(publishedOf(client))})`)
  t.same(publishedOf(client), [
    [first!.epoch, 1, 'one'], [first!.epoch, 2, 'two'],
    [epoch, 1, 'three'], [epoch, 2, 'four'], [epoch, 3, 'five'], [epoch, 4, 'six']
  ], 'the new stream from its first message, after the old one\'s, each once')
}

redisTest('a member that stays connected while its node is away from Redis, which restarts with nothing kept: it gets the new stream from its first message', async (t) => {
  const redis = await PrivateRedis.start(t)
  const proxy = await RedisProxy.start(t, redis.url)
  const keyPrefix = uniquePrefix('history-renewed')
  const a = await startNode(t, { keyPrefix, url: redis.url })
  const b = await startNode(t, { keyPrefix, url: proxy.url })
  await awayWhileRenewed(t, { a, b, publisher: a, proxy }, async () => {
    await redis.stop()
    await until(() => a.app.websocketRooms.stats().cluster!.connected === false, 'A to lose Redis')
    await redis.start()
    await until(() => a.app.websocketRooms.stats().cluster!.connected, 'A to reconnect')
  })
})

redisTest('a member that stays connected while its node is away from Redis, and the room\'s stream expires by its ttl meanwhile: it gets the new stream from its first message', async (t) => {
  const proxy = await RedisProxy.start(t, REDIS_URL)
  const keyPrefix = uniquePrefix('history-expired-away')
  // A's short ttl lets the first stream expire while B is away; C publishes the next one with
  // a long ttl, so that it is still there when B is back, however long B takes.
  const a = await startNode(t, { keyPrefix }, { size: 100, ttl: 300 })
  const b = await startNode(t, { keyPrefix, url: proxy.url })
  const c = await startNode(t, { keyPrefix })
  const admin = await adminClient(t)
  await awayWhileRenewed(t, { a, b, publisher: c, proxy }, async () => {
    await eventually(async () => await admin.exists([`{${keyPrefix}:room:chat}:history-meta`, `{${keyPrefix}:room:chat}:history`]) === 0, 'the stream to expire')
  })
})

redisTest('Redis away: publish(), history() and recover() reject with FST_WS_ROOMS_REDIS_UNAVAILABLE, and the session stays in the room', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('history-away')
  const a = await startNode(t, { keyPrefix, url: redis.url })
  await member(a)
  const session = [...a.app.websocketSessions.values()][0] as WebSocketSession
  const { epoch } = await publishText(a, 'kept')
  await redis.crash()
  await until(() => a.app.websocketRooms.stats().cluster!.connected === false)
  const room = a.app.websocketRooms.room('chat')
  await t.rejects(publishText(a, 'lost'), { code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE', message: /cannot publish to room "chat"/ })
  await t.rejects(room.history(), { code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE' })
  await t.rejects(session.room('chat').recover({ offset: 0, epoch }), { code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE' })
  t.ok(session.room('chat').has(), 'still a member')
})

redisTest('a stalled Redis: publish() rejects after connectTimeout; what Redis then runs is delivered in order, and the next publish follows it', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('history-stall')
  const a = await startNode(t, { keyPrefix, url: redis.url, connectTimeout: 500 })
  const client = await member(a)
  await publishText(a, 'first') // the node knows the stream's position
  redis.pause()
  await t.rejects(publishText(a, 'stalled'), { code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE', message: /no answer within connectTimeout \(500 ms\).*it may still be published/ })
  redis.resume()
  await until(() => offsetsOf(client).length === 2, 'the stalled publish, run once Redis went on')
  const next = await publishText(a, 'next')
  t.equal(next.offset, 3, 'the node read the position again')
  await until(() => offsetsOf(client).length === 3)
  t.same(offsetsOf(client), [1, 2, 3])
})

redisTest('a stalled Redis: each of 1,280 publishes to one room settles within connectTimeout of its own call; none is sent behind the unanswered batch', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('history-stall-burst')
  const connectTimeout = 1000
  const a = await startNode(t, { keyPrefix, url: redis.url, connectTimeout })
  const client = await member(a)
  await publishText(a, 'first')
  redis.pause()
  /** Publishes `count` messages at once; resolves with how long each took to settle, and how. */
  const wave = async (name: string, count: number): Promise<Array<{ took: number, result: PromiseSettledResult<StreamPosition> }>> => {
    const calledAt = performance.now()
    const settled = range(1, count).map(async (i) => {
      const result = (await Promise.allSettled([publishText(a, `${name}${i}`)]))[0]!
      return { took: performance.now() - calledAt, result }
    })
    return await within(Promise.all(settled), `the ${count} publishes of the ${name} wave to settle`)
  }
  const check = (name: string, outcomes: Array<{ took: number, result: PromiseSettledResult<StreamPosition> }>): void => {
    const took = outcomes.map((outcome) => outcome.took)
    const [first, last] = [Math.min(...took), Math.max(...took)]
    t.ok(first >= connectTimeout - 5 && last < 3 * connectTimeout, `the ${name} wave settled ${Math.round(first)} to ${Math.round(last)} ms after its call`)
    t.same(new Set(outcomes.map(({ result }) => result.status === 'rejected' ? (result.reason as { code: string }).code : 'fulfilled')),
      new Set(['FST_WS_ROOMS_REDIS_UNAVAILABLE']), `each of the ${name} wave rejected with FST_WS_ROOMS_REDIS_UNAVAILABLE`)
  }
  const burst = await wave('burst', 1280)
  check('burst', burst)
  const reasons = burst.map(({ result }) => String((result as PromiseRejectedResult).reason.message))
  t.equal(reasons.filter((reason) => /it may still be published/.test(reason)).length, 128, 'the first batch was sent: it may still be published')
  t.equal(reasons.filter((reason) => /; not published$/.test(reason)).length, 1280 - 128, 'the others were not sent')
  // Later publishes wait for their own deadline, not for the stalled batch's.
  check('later', await wave('later', 200))

  redis.resume()
  const next = await publishText(a, 'after the stall')
  t.equal(next.offset, 1 + 128 + 1, 'Redis ran the first batch when it went on, and nothing after it')
  await until(() => offsetsOf(client).length === next.offset, 'the member to get every message written')
  t.same(offsetsOf(client), range(1, next.offset), 'in order, each once')
})

redisTest('a session that goes while its recovery waits for Redis: nothing is sent, nothing is left behind', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('history-gone')
  const a = await startNode(t, { keyPrefix, url: redis.url, connectTimeout: 2000 })
  const { epoch } = await publishText(a, 'one')
  redis.pause()
  const client = new Client(`${a.base}/ws?room=chat&offset=0&epoch=${epoch}`)
  await client.opened
  await until(() => a.app.websocketSessions.size === 1)
  client.ws.terminate()
  redis.resume()
  await until(() => a.app.websocketSessions.size === 0, 'the session to end')
  t.equal(client.received.length, 0)
  t.equal(a.app.websocketRooms.room('chat').members(), 0)
  const later = await member(a)
  await publishText(a, 'two')
  await until(() => offsetsOf(later).length === 1)
  t.same(offsetsOf(later), [2])
})

redisTest('a node whose subscriber connection dropped reads back what its members missed: each message once, in order', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('history-catch-up')
  const [publisher, b] = [await startNode(t, { keyPrefix, url: redis.url }), await startNode(t, { keyPrefix, url: redis.url })]
  const client = await member(b)
  for (const text of ['one', 'two']) await publishText(publisher, text)
  await until(() => offsetsOf(client).length === 2)
  // B's subscriber is the one connection subscribed to two channels (the control channel and the room's).
  const admin = await adminClient(t, redis.url)
  const line = String(await admin.sendCommand(['CLIENT', 'LIST', 'TYPE', 'pubsub'])).split('\n').find((entry) => / sub=2 /.test(entry))!
  await admin.sendCommand(['CLIENT', 'KILL', 'ID', /id=(\d+)/.exec(line)![1]!])
  // Published while B is not subscribed: B's member misses them live.
  for (const text of ['three', 'four', 'five']) await publishText(publisher, text)
  await until(() => offsetsOf(client).length === 5, 'B to read back what its member missed')
  await publishText(publisher, 'six')
  await until(() => offsetsOf(client).length === 6)
  t.same(offsetsOf(client), [1, 2, 3, 4, 5, 6], 'every message once, in order')
  t.same(client.received.slice(1).map((m) => JSON.parse(String(m.data)).text), ['one', 'two', 'three', 'four', 'five', 'six'])
})

redisTest('recover() on a node whose last member of the room has just left (its UNSUBSCRIBE on the way): nothing published meanwhile is lost', async (t) => {
  const keyPrefix = uniquePrefix('history-resubscribe')
  const [a, b] = [await startNode(t, { keyPrefix }), await startNode(t, { keyPrefix })]
  const sessionsOf = (): WebSocketSession[] => [...b.app.websocketSessions.values()]
  for (let turnsBefore = 0; turnsBefore < 4; turnsBefore++) {
    const room = `room-${turnsBefore}`
    const [leaver, recovering] = [await connect(b.base, '/ws'), await connect(b.base, '/ws')]
    await Promise.all([leaver.texts(1), recovering.texts(1)])
    const [leaving, recoverer] = sessionsOf().slice(-2) as [WebSocketSession, WebSocketSession]
    leaving.room(room).join()
    await b.app.websocketRooms.room(room).clusterMembers() // B is subscribed
    let last = await publishText(a, 'before', room)
    leaving.room(room).leave() // B's last member: B unsubscribes on its next update
    for (let i = 0; i < turnsBefore; i++) await new Promise((resolve) => setImmediate(resolve))
    const from = last.offset
    const result = recoverer.room(room).recover(last)
    for (let i = 0; i < 10; i++) last = await publishText(a, `during ${i}`, room)
    t.equal((await result).recovered, true)
    await until(() => offsetsOf(recovering).at(-1) === last.offset, () => `the recovering client to get ${last.offset} (${turnsBefore} turns)`)
    t.same(offsetsOf(recovering), range(from + 1, last.offset), `${turnsBefore} turns after the leave: every message after the position`)
    await Promise.all([leaver.close(), recovering.close()])
  }
})

redisTest('publish() settles once this node\'s members have the message, as without an adapter', async (t) => {
  const keyPrefix = uniquePrefix('history-settle')
  const a = await startNode(t, { keyPrefix })
  const sender = await member(a)
  for (let i = 1; i <= 20; i++) sender.send(`say chat m${i}`)
  await until(() => sender.received.length === 41)
  const texts = sender.received.slice(1).map((m) => String(m.data)).map((text) => text.startsWith('{') ? JSON.parse(text).text : text)
  t.same(texts, Array.from({ length: 20 }, (_, i) => [`m${i + 1}`, `said ${i + 1}`]).flat(), 'each message before its "said"')
})

redisTest('a session that joined to recover and could not (Redis away) is not left in the room; too many publishes waiting: FST_WS_ROOMS_PUBLISH_BACKLOG; after close: FST_WS_ROOMS_CLOSED', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('history-errors')
  const a = await startNode(t, { keyPrefix, url: redis.url })
  const results = await Promise.allSettled(range(1, 10_001).map((i) => publishText(a, `m${i}`)))
  const rejected = results.filter((result) => result.status === 'rejected')
  t.equal(rejected.length, 1)
  t.match(rejected[0], { reason: { code: 'FST_WS_ROOMS_PUBLISH_BACKLOG', message: /10000 publishes are waiting for Redis on this server already/ } })
  t.same(results.filter((result) => result.status === 'fulfilled').map((result) => (result as PromiseFulfilledResult<StreamPosition>).value.offset), range(1, 10_000))
  const client = await connect(a.base, '/ws')
  await client.texts(1)
  const session = [...a.app.websocketSessions.values()][0] as WebSocketSession
  await redis.crash()
  await until(() => a.app.websocketRooms.stats().cluster!.connected === false)
  await t.rejects(session.room('chat').recover({ offset: 0, epoch: 'e' }), { code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE' })
  t.notOk(session.room('chat').has(), 'not a member: the app may try again')
  await a.app.close()
  await t.rejects(publishText(a, 'late'), { code: 'FST_WS_ROOMS_CLOSED', message: /publish\(\) after app.close\(\)/ })
  await t.rejects(a.app.websocketRooms.room('chat').history(), { code: 'FST_WS_ROOMS_CLOSED' })
})

redisTest('history({ since, limit }) past expired messages: the first `limit` still kept after the position, as without an adapter', async (t) => {
  const keyPrefix = uniquePrefix('history-expired')
  const a = await startNode(t, { keyPrefix }, { size: 10, ttl: 1000 })
  const admin = await adminClient(t)
  const room = a.app.websocketRooms.room('chat')
  const { epoch } = await publishText(a, 'one')
  await eventually(async () => await admin.pTTL(`{${keyPrefix}:room:chat}:history-meta`) < 500, 'half the ttl to pass')
  for (const text of ['two', 'three', 'four']) await publishText(a, text)
  await eventually(async () => (await room.history()).messages.length === 3, '"one" to expire')
  const page = await room.history({ since: { offset: 0, epoch }, limit: 2 })
  t.same([page.messages.map((m) => JSON.parse(String(m.message)).text), page.complete], [['two', 'three'], false])
})

redisTest('publishers on two nodes contending for one room: every publish goes through, none starves, no turn is left behind', async (t) => {
  const keyPrefix = uniquePrefix('history-contention')
  const [a, b] = [await startNode(t, { keyPrefix }), await startNode(t, { keyPrefix })]
  const loop = async (node: Node, id: string): Promise<number[]> => {
    const offsets: number[] = []
    for (let i = 0; i < 200; i++) offsets.push((await publishText(node, `${id}-${i}`)).offset)
    return offsets
  }
  const results = await Promise.all([loop(a, 'a1'), loop(a, 'a2'), loop(a, 'a3'), loop(b, 'b1'), loop(b, 'b2'), loop(b, 'b3')])
  t.same(results.flat().sort((x, y) => x - y), range(1, 1200), 'each of the 1,200 publishes got its own position')
  for (const offsets of results) t.same(offsets, [...offsets].sort((x, y) => x - y), 'each publisher\'s in the order it published them')
  const admin = await adminClient(t)
  t.same(await admin.hmGet(`{${keyPrefix}:room:chat}:history-meta`, ['n', 'o', 'u']), ['1200', null, null])
})

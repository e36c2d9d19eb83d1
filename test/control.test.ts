// Acting on sessions from anywhere: app.websocketRooms.to(rooms).except(rooms).broadcast()
// reaches each recipient once, room.disconnectAll() and disconnectSession() close sessions on
// whichever node holds them; one code path with and without the Redis adapter.
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { test } from 'tap'
import websocketRooms, { redisAdapter } from 'fastify-websocket-rooms'
import { type Client, build, connect, listen, throwsLike, until } from './helpers'
import { PrivateRedis, REDIS_URL, adminClient, redisTest, uniquePrefix } from './redis'
import { Events, within } from './signals'
import * as handlers from './fixtures/cluster-handlers'

interface Node { app: FastifyInstance, base: string, closes: Events<{ id: string, code: number, reason: string }> }

async function startNode (t: Test, adapter: Parameters<typeof redisAdapter>[0] | null): Promise<Node> {
  const closes = new Events<{ id: string, code: number, reason: string }>()
  const app = Fastify()
  await app.register(websocketRooms, { adapter: adapter === null ? null : redisAdapter(adapter) })
  app.registerWebsocket('/ws', {
    ...handlers,
    onClose (session, code, reason) { closes.push({ id: session.id, code, reason }) }
  })
  t.teardown(() => app.close())
  return { app, base: await listen(app), closes }
}

/** A client in the rooms, once its node's subscriptions are live (its count has answered). */
async function member (node: Node, rooms: string): Promise<Client> {
  const client = await connect(node.base, `/ws?rooms=${rooms}`)
  await client.texts(1)
  client.send(`count ${rooms.split(',')[0]}`)
  await client.texts(2)
  return client
}

function closed (client: Client): Promise<{ code: number, reason: string }> {
  return within(client.closed, `${client.ws.url} to be closed`)
}

/** The texts a client was sent after its "ready" and its count. */
const after = (client: Client): string[] => client.received.slice(2).map((message) => String(message.data))

for (const clustered of [false, true]) {
  const setup = async (t: Test): Promise<[Node, Node]> => {
    if (!clustered) {
      const node = await startNode(t, null)
      return [node, node]
    }
    const keyPrefix = uniquePrefix('control')
    return [await startNode(t, { url: REDIS_URL, keyPrefix }), await startNode(t, { url: REDIS_URL, keyPrefix })]
  }
  const where = clustered ? 'on two nodes' : 'without an adapter'
  const run = clustered ? redisTest : test

  run(`to(rooms).except(rooms).broadcast reaches each recipient once, ${where}`, async (t) => {
    const [a, b] = await setup(t)
    const both = await member(a, 'match-1,spectators')
    const player = await member(b, 'match-1')
    const spectator = await member(a, 'spectators')
    const muted = await member(b, 'spectators,muted')
    const outsider = await member(b, 'lobby')
    a.app.websocketRooms.to(['match-1', 'spectators']).except('muted').broadcast('goal')
    a.app.websocketRooms.to('match-1').broadcastJson({ score: [1, 0] })
    // A last broadcast to everyone, from the same node: in order after the others, it proves they are all in.
    a.app.websocketRooms.to(['match-1', 'spectators', 'lobby', 'muted']).broadcast('end')
    for (const client of [both, player, spectator, muted, outsider]) await until(() => after(client).includes('end'), 'the last broadcast')
    t.same(after(both), ['goal', '{"score":[1,0]}', 'end'], 'a member of both rooms gets each once')
    t.same(after(player), ['goal', '{"score":[1,0]}', 'end'])
    t.same(after(spectator), ['goal', 'end'])
    t.same(after(muted), ['end'], 'a member of an excepted room gets nothing')
    t.same(after(outsider), ['end'])
    // And from the other node.
    b.app.websocketRooms.to(['spectators', 'lobby']).except(['match-1']).broadcast('from b')
    for (const client of [spectator, muted, outsider]) await until(() => after(client).includes('from b'), 'the broadcast from b')
    b.app.websocketRooms.to(['match-1', 'spectators', 'lobby', 'muted']).broadcast('end b')
    for (const client of [both, player]) await until(() => after(client).includes('end b'), 'the last broadcast from b')
    t.notOk(after(both).includes('from b') || after(player).includes('from b'), 'members of match-1 were left out')
  })

  run(`room.disconnectAll and disconnectSession close sessions wherever they are, with the code and reason given, ${where}`, async (t) => {
    const [a, b] = await setup(t)
    const [p1, p2, other] = [await member(a, 'match-1'), await member(b, 'match-1'), await member(b, 'lobby')]
    await a.app.websocketRooms.room('match-1').disconnectAll(4000, 'match over')
    t.same(await closed(p1), { code: 4000, reason: 'match over' })
    t.same(await closed(p2), { code: 4000, reason: 'match over' })
    const onB = await b.closes.until(1)
    t.match(onB, [{ code: 4000, reason: 'match over' }], 'onDisconnected ran where the session lived, with that code')

    const otherId = b.app.websocketRooms.room('lobby').sessions()[0]!.id
    await a.app.websocketRooms.disconnectSession(otherId, 4001, 'kicked')
    t.same(await closed(other), { code: 4001, reason: 'kicked' })
    await a.app.websocketRooms.disconnectSession('no-such-session', 4001, 'kicked')
    await until(() => a.app.websocketSessions.size + b.app.websocketSessions.size === 0, 'every session to end')
  })
}

test('the arguments are checked: room names, close codes and reasons, the session id', async (t) => {
  const app = await build(t)
  throwsLike(t, () => app.websocketRooms.to(''), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT' })
  throwsLike(t, () => app.websocketRooms.to(42 as any), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /rooms must be a room name or an array of room names, got number 42/ })
  throwsLike(t, () => app.websocketRooms.to('a').except([1] as any), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT' })
  throwsLike(t, () => app.websocketRooms.room('a').disconnectAll(1005), RangeError, { code: 'FST_WS_ROOMS_INVALID_CLOSE_CODE' })
  throwsLike(t, () => app.websocketRooms.disconnectSession('x', 4000, 'r'.repeat(124)), RangeError, { code: 'FST_WS_ROOMS_CLOSE_REASON_TOO_LONG' })
  throwsLike(t, () => app.websocketRooms.disconnectSession(7 as any), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /sessionId must be a string/ })
})

redisTest('commands that are not this plugin\'s, or carry a close code that cannot be sent, are ignored and counted', async (t) => {
  const keyPrefix = uniquePrefix('control-bad')
  const a = await startNode(t, { url: REDIS_URL, keyPrefix })
  const client = await member(a, 'lobby')
  const admin = await adminClient(t)
  const command = (kind: number, args: object): Buffer => {
    const origin = Buffer.from('stranger')
    const json = Buffer.from(JSON.stringify(args))
    const length = Buffer.alloc(4)
    length.writeUInt32BE(json.length)
    return Buffer.concat([Buffer.from([3, kind, origin.length]), origin, length, json])
  }
  await admin.publish(`${keyPrefix}:control`, 'not a command')
  await admin.publish(`${keyPrefix}:control`, command(2, { room: 'lobby', code: 1006, reason: '' }))
  await admin.publish(`${keyPrefix}:control`, command(2, { room: 'lobby', code: 4000, reason: 'x'.repeat(200) }))
  await admin.publish(`${keyPrefix}:control`, command(9, { room: 'lobby', code: 4000, reason: '' }))
  await until(() => a.app.websocketRooms.stats().cluster!.malformed === 4, 'the four to be counted')
  t.equal(a.app.websocketSessions.size, 1, 'nothing was closed')
  // A well-formed one from another node is carried out.
  await admin.publish(`${keyPrefix}:control`, command(2, { room: 'lobby', code: 4002, reason: 'from elsewhere' }))
  t.same(await closed(client), { code: 4002, reason: 'from elsewhere' })
})

redisTest('with Redis away, disconnectAll closes this node\'s members and rejects at once: the other nodes were not sent the command', async (t) => {
  const redis = await PrivateRedis.start(t)
  const a = await startNode(t, { url: redis.url, keyPrefix: uniquePrefix('control-away') })
  const client = await member(a, 'lobby')
  await redis.crash()
  await until(() => a.app.websocketRooms.stats().cluster!.connected === false)
  await t.rejects(a.app.websocketRooms.room('lobby').disconnectAll(4000, 'over'), {
    code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE', message: /cannot close the members of room "lobby" on the other servers: Redis is away; not sent/
  })
  t.same(await closed(client), { code: 4000, reason: 'over' })
  await t.rejects(a.app.websocketRooms.disconnectSession('elsewhere', 4001, 'kicked'), {
    code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE', message: /cannot close session "elsewhere" on the other servers: Redis is away; not sent/
  })
  t.ok(a.app.websocketRooms.stats().cluster!.publishFailed >= 2, 'the commands for the other nodes are counted as not sent')
})

redisTest('while Redis stalls, disconnectAll and disconnectSession reject after connectTimeout; the other nodes drop the commands when Redis goes on', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('control-stall')
  const connectTimeout = 1000
  const a = await startNode(t, { url: redis.url, keyPrefix, connectTimeout })
  const b = await startNode(t, { url: redis.url, keyPrefix, connectTimeout })
  const [here, there, other] = [await member(a, 'match-1'), await member(b, 'match-1'), await member(b, 'lobby')]
  const otherId = b.app.websocketRooms.room('lobby').sessions()[0]!.id

  redis.pause()
  const calledAt = performance.now()
  const results = await within(Promise.allSettled([
    a.app.websocketRooms.room('match-1').disconnectAll(4000, 'match over'),
    a.app.websocketRooms.disconnectSession(otherId, 4001, 'kicked')
  ]), 'the two commands to settle')
  const took = performance.now() - calledAt
  t.ok(took >= connectTimeout - 5 && took < 3 * connectTimeout, `both settled ${Math.round(took)} ms after their call`)
  const unanswered = /no answer within connectTimeout \(1000 ms\); the servers that get it later drop it/
  t.match(results, [
    { status: 'rejected', reason: { code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE', message: /cannot close the members of room "match-1" on the other servers/ } },
    { status: 'rejected', reason: { code: 'FST_WS_ROOMS_REDIS_UNAVAILABLE', message: new RegExp(`cannot close session "${otherId}" on the other servers`) } }
  ])
  for (const result of results) t.match((result as PromiseRejectedResult).reason.message, unanswered)
  t.same(await closed(here), { code: 4000, reason: 'match over' }, 'the member on the sending node was closed at once')

  // Redis now runs the two PUBLISHes it had been sent, past their deadline. A broadcast sent
  // after them on the same connection reaches node b after them.
  redis.resume()
  a.app.websocketRooms.to(['match-1', 'lobby']).broadcast('after the stall')
  const third = (client: Client): Promise<string> => Promise.race([client.texts(3).then((texts) => texts[2]!), client.closed.then(({ code }) => `closed with ${code}`)])
  t.equal(await third(there), 'after the stall')
  t.equal(await third(other), 'after the stall')
  t.equal(b.app.websocketSessions.size, 2, 'node b dropped the late commands: its sessions are open')
  // And the next command is carried out.
  await a.app.websocketRooms.disconnectSession(otherId, 4001, 'kicked')
  t.same(await closed(other), { code: 4001, reason: 'kicked' })
})

// Resume across servers sharing Redis (redisAdapter): a session dropped on one server resumes
// on another (taken over from its server while that one lives, from Redis once it closed),
// with no presence change seen by onPresence on any server; or it is refused, saying why:
// 'history', 'lost' (its server died, Redis away), 'unknown' (a token used twice).
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import websocketRooms, { redisAdapter, type RedisAdapterOptions, type WebSocketSession, type WebsocketRoomsOptions } from 'fastify-websocket-rooms'
import { connect, listen, type Client } from './helpers'
import { PrivateRedis, REDIS_URL, RedisProxy, adminClient, redisTest, uniquePrefix } from './redis'
import { clusterTest } from './redis-cluster'
import { chatHandlers, chatRecords, recordPresence, type ChatRecords, type Welcome } from './fixtures/resume-chat'
import { eventually, until, within } from './signals'

interface Node extends ChatRecords {
  app: FastifyInstance
  base: string
  nodeId: string
}

const HISTORY = { size: 100, ttl: 60_000 }

/** A server with the chat route (./fixtures/resume-chat) at /ws; "attr KIND" sets an attribute of that kind and says what happened. */
async function startNode (t: Test, adapter: RedisAdapterOptions, options: WebsocketRoomsOptions = {}): Promise<Node> {
  const app = Fastify({ logger: process.env.RESUME_LOG === '1' ? { level: 'debug' } : false })
  const records = chatRecords()
  await app.register(websocketRooms, {
    adapter: redisAdapter({ url: REDIS_URL, ...adapter }),
    presenceInterval: 10,
    resume: { window: 60_000 },
    history: HISTORY,
    onPresence: recordPresence(records),
    ...options
  })
  app.registerWebsocket('/ws', chatHandlers(records, (session, command, body) => {
    if (command !== 'attr') return false
    try {
      session.setAttribute(body, attributeValues[body])
      session.send('ok')
    } catch (error) {
      session.send(`${error instanceof TypeError ? 'TypeError' : 'not a TypeError'} ${(error as { code?: string }).code} ${(error as Error).message}`)
    }
    return true
  }))
  app.registerWebsocket('/other', {
    onOpen (session: WebSocketSession) { session.sendJson({ resumed: session.resumed, failure: session.resumeFailure }) }
  })
  t.teardown(() => app.close())
  return { app, base: await listen(app), nodeId: app.websocketRooms.stats().cluster!.nodeId, ...records }
}

const cycle: Record<string, unknown> = {}
cycle.self = cycle
const attributeValues: Record<string, unknown> = {
  fn: () => {},
  sym: Symbol('s'),
  big: 1n,
  cycle,
  undef: undefined,
  nested: { list: [1, undefined] },
  nan: Number.NaN,
  plain: { list: [1, 'x', null, true], at: { deep: 2 } },
  date: new Date(0)
}

async function join (node: Node, query: string): Promise<{ client: Client, welcome: Welcome }> {
  const client = await connect(node.base, `/ws?${query}`)
  const [welcome] = await client.json(1)
  return { client, welcome }
}

/** The messages a resuming client was sent before its welcome, and the welcome. */
async function resumeOn (node: Node, token: string, kept: number): Promise<{ client: Client, kept: string[], welcome: Welcome }> {
  const client = await connect(node.base, `/ws?user=ignored&resume=${token}`)
  const texts = await client.texts(kept + 1)
  return { client, kept: texts.slice(0, kept), welcome: JSON.parse(texts[kept]!) }
}

/** Cuts the client's connection without a close frame, and waits for its server to keep its session. */
async function drop (node: Node, client: Client, id: string): Promise<void> {
  client.ws.terminate()
  await client.closed
  await until(() => !node.app.websocketSessions.has(id), `session ${id} to leave the registry`)
}

/** Waits until every server counts `count` members in chat. */
async function members (nodes: Node[], count: number): Promise<void> {
  for (const node of nodes) await eventually(async () => await node.app.websocketRooms.room('chat').clusterMembers() === count, `${count} members of chat on ${node.nodeId}`)
}

/**
 * Joins a witness to chat on the server and waits for its join to be told there: presence
 * changes are told in order, so any told before it is in `presence` by then.
 */
async function presenceSettled (node: Node): Promise<Client> {
  const witness = await join(node, 'user=witness')
  await until(() => node.presence.some(([kind, id]) => kind === 'join' && id === witness.welcome.id), 'the witness\'s join told')
  return witness.client
}

/** The drop-on-A, resume-on-B walk, on one Redis or on a Redis Cluster. */
async function dropAndResumeElsewhere (t: Test, adapter: RedisAdapterOptions): Promise<void> {
  const a = await startNode(t, adapter)
  const b = await startNode(t, adapter)
  const ann = await join(a, 'user=ann')
  const carl = await join(a, 'user=carl') // on A: once carl has a message, so has A's keeper of ann
  const bob = await join(b, 'user=bob')
  await members([a, b], 3)
  t.match(ann.welcome.token, /^[\w-]{36}$/, 'a token that names its server')
  const oldAnn = a.sessions.get(ann.welcome.id)!
  await drop(a, ann.client, ann.welcome.id)

  bob.client.send('say one')
  bob.client.send('publish two')
  await carl.client.texts(3)
  oldAnn.send('direct three') // the app on A still holds the session: what it sends is kept too
  bob.client.send('say four')
  await carl.client.texts(4)

  const back = await resumeOn(b, ann.welcome.token!, 4)
  t.same(back.kept, ['one', '1 two', 'direct three', 'four'], 'what it missed, in order, before onOpen, handed over by A')
  t.same({ ...back.welcome, token: undefined }, { type: 'welcome', id: ann.welcome.id, resumed: true, failure: null, token: undefined, user: 'ann', rooms: ['chat'] })
  t.not(back.welcome.token, ann.welcome.token)
  t.equal(back.welcome.token!.slice(0, 12), b.nodeId, 'its new token names B')
  t.ok(b.app.websocketSessions.has(ann.welcome.id) && !a.app.websocketSessions.has(ann.welcome.id))

  bob.client.send('publish five')
  bob.client.send('say six')
  t.same((await back.client.texts(7)).slice(5), ['2 five', 'six'], 'then the live ones, once')
  await members([a, b], 3)
  const presence = await b.app.websocketRooms.room('chat').presence()
  t.same(presence.members.map((m) => [m.sessionId, m.info]).sort(), [[ann.welcome.id, { user: 'ann' }], [bob.welcome.id, { user: 'bob' }], [carl.welcome.id, { user: 'carl' }]].sort(), 'presence info moved with it')

  await presenceSettled(a)
  await presenceSettled(b)
  t.notOk(a.presence.some(([kind, id]) => id === ann.welcome.id && kind === 'leave'), 'A told no leave')
  t.notOk(b.presence.some(([, id]) => id === ann.welcome.id), 'B told no join')
  t.same(a.closes.list, [], 'A let go of it without onClose')

  const stale = await join(a, `user=x&resume=${ann.welcome.token!}`)
  t.same([stale.welcome.resumed, stale.welcome.failure], [false, 'unknown'], 'the old token is used up')
}

redisTest('a session dropped on A resumes on B: id, attributes, rooms, presence info, what it missed in order and once; no presence change', async (t) => {
  await dropAndResumeElsewhere(t, { keyPrefix: uniquePrefix('resume-across') })
})

clusterTest('on a Redis Cluster, a session dropped on A resumes on B', async (t, url) => {
  await dropAndResumeElsewhere(t, { url: undefined, cluster: { rootNodes: [{ url }] }, keyPrefix: uniquePrefix('resume-cluster') })
})

redisTest('a session still connected to A is taken over by B: A cuts it and lets it go', async (t) => {
  const keyPrefix = uniquePrefix('resume-live')
  const a = await startNode(t, { keyPrefix })
  const b = await startNode(t, { keyPrefix })
  const ann = await join(a, 'user=ann')
  const back = await resumeOn(b, ann.welcome.token!, 0)
  t.same([back.welcome.resumed, back.welcome.id, back.welcome.user], [true, ann.welcome.id, 'ann'])
  t.equal((await ann.client.closed).code, 1006, 'the old connection cut')
  t.same(a.closes.list, [])
})

redisTest('app.close() on A parks its sessions in Redis: they resume on B with what was published since, and no presence change', async (t) => {
  const keyPrefix = uniquePrefix('resume-park')
  const a = await startNode(t, { keyPrefix })
  const b = await startNode(t, { keyPrefix })
  const ann = await join(a, 'user=ann')
  const carl = await join(a, 'user=carl')
  const bob = await join(b, 'user=bob')
  await members([a, b], 3)
  bob.client.send('publish before')
  await ann.client.texts(2)
  await carl.client.texts(2)
  await within(a.app.close(), 'A to close')
  t.same([(await ann.client.closed).code, (await carl.client.closed).code], [1012, 1012])
  t.same(a.closes.list, [], 'no onClose on A: they live on')
  t.notOk(a.presence.some(([kind]) => kind === 'leave'), 'no leave told at the close')
  t.equal(await b.app.websocketRooms.room('chat').clusterMembers(), 3, 'still counted while parked')

  bob.client.send('publish after')
  await bob.client.texts(3)
  const back = await resumeOn(b, ann.welcome.token!, 1)
  t.same(back.kept, ['2 after'], 'what was published while it was on no server, from the history')
  t.same([back.welcome.resumed, back.welcome.id, back.welcome.user, back.welcome.rooms], [true, ann.welcome.id, 'ann', ['chat']])
  bob.client.send('say live')
  t.same((await back.client.texts(3))[2], 'live')
  await presenceSettled(b)
  t.notOk(b.presence.some(([, id]) => id === ann.welcome.id), 'B told no join')
  const presence = await b.app.websocketRooms.room('chat').presence()
  t.same(presence.members.map((m) => m.sessionId).filter((id) => id === ann.welcome.id), [ann.welcome.id], 'ann once in presence')
  t.ok(presence.members.some((m) => m.sessionId === carl.welcome.id), 'carl, parked, still in presence')

  const again = await join(b, `user=x&resume=${ann.welcome.token!}`)
  t.same([again.welcome.resumed, again.welcome.failure], [false, 'unknown'], 'a parked session is taken once')
})

redisTest('a parked session nobody resumes within the window: its leave is told by a surviving server, and its token says expired', async (t) => {
  const keyPrefix = uniquePrefix('resume-park-expire')
  const adapter = { keyPrefix, nodeHeartbeat: 50, nodeTimeout: 200 }
  const a = await startNode(t, adapter, { resume: { window: 300 } })
  const b = await startNode(t, adapter, { resume: { window: 300 } })
  const ann = await join(a, 'user=ann')
  await join(b, 'user=bob')
  await members([a, b], 2)
  await within(a.app.close(), 'A to close')
  await until(() => b.presence.some(([kind, id]) => kind === 'leave' && id === ann.welcome.id), 'B to tell ann\'s leave')
  t.notOk(a.presence.some(([kind]) => kind === 'leave'), 'A told none at its close')
  const late = await join(b, `user=x&resume=${ann.welcome.token!}`)
  t.same([late.welcome.resumed, late.welcome.failure], [false, 'expired'])
  const redis = await adminClient(t)
  const left = async (): Promise<string[]> => [...await redis.keys(`*${a.nodeId}*`), ...await redis.keys(`{${keyPrefix}:resume:*`)]
  await eventually(async () => (await left()).length === 0, 'every key of A, its holder and its parked session to expire')
})

redisTest('a parked session whose rooms published more than the history keeps is refused with history', async (t) => {
  const keyPrefix = uniquePrefix('resume-history')
  const history = { size: 3, ttl: 60_000 }
  const a = await startNode(t, { keyPrefix }, { history })
  const b = await startNode(t, { keyPrefix }, { history })
  const ann = await join(a, 'user=ann')
  const bob = await join(b, 'user=bob')
  await members([a, b], 2)
  await within(a.app.close(), 'A to close')
  for (let i = 1; i <= 5; i++) bob.client.send(`publish m${i}`)
  await bob.client.texts(6)
  const back = await join(b, `user=x&resume=${ann.welcome.token!}`)
  t.same([back.welcome.resumed, back.welcome.failure, back.welcome.user], [false, 'history', 'x'])
  t.not(back.welcome.id, ann.welcome.id, 'a fresh session')
  await until(() => b.presence.some(([kind, id]) => kind === 'leave' && id === ann.welcome.id), 'B to tell the leave of the refused session')
  const presence = await b.app.websocketRooms.room('chat').presence()
  t.notOk(presence.members.some((m) => m.sessionId === ann.welcome.id), 'out of presence at once, not at the end of its window')
})

redisTest('a session kept on a server that died is refused as lost', async (t) => {
  const keyPrefix = uniquePrefix('resume-dead')
  const proxy = await RedisProxy.start(t, REDIS_URL)
  const adapter = { keyPrefix, nodeHeartbeat: 50, nodeTimeout: 200, connectTimeout: 500 }
  const a = await startNode(t, { ...adapter, url: proxy.url })
  const b = await startNode(t, adapter)
  const ann = await join(a, 'user=ann')
  await members([a, b], 1)
  await drop(a, ann.client, ann.welcome.id)
  proxy.cut() // A can no longer beat: dead to the others once nodeTimeout has passed
  const redis = await adminClient(t)
  await eventually(async () => {
    const score = await redis.zScore(`{${keyPrefix}}:nodes`, a.nodeId)
    return score === null || score < Date.now() - 200
  }, 'A to be dead to the cluster')
  const back = await join(b, `user=x&resume=${ann.welcome.token!}`)
  t.same([back.welcome.resumed, back.welcome.failure], [false, 'lost'])
  t.not(back.welcome.id, ann.welcome.id)
})

redisTest('two connections racing with one token on two servers: one resumes, the other is fresh with unknown', async (t) => {
  const keyPrefix = uniquePrefix('resume-race')
  const a = await startNode(t, { keyPrefix })
  const b = await startNode(t, { keyPrefix })
  const c = await startNode(t, { keyPrefix })
  const kept = await join(a, 'user=ann')
  const parked = await join(a, 'user=carl')
  await members([a, b, c], 2)
  await drop(a, kept.client, kept.welcome.id)
  const onA = await Promise.all([join(a, `user=x&resume=${kept.welcome.token!}`), join(b, `user=x&resume=${kept.welcome.token!}`)])
  t.same(onA.map((r) => [r.welcome.resumed, r.welcome.failure, r.welcome.id === kept.welcome.id]).sort(), [[false, 'unknown', false], [true, null, true]], 'kept on A: A decides')
  await within(a.app.close(), 'A to close')
  await parked.client.closed
  const fromRedis = await Promise.all([join(b, `user=x&resume=${parked.welcome.token!}`), join(c, `user=x&resume=${parked.welcome.token!}`)])
  t.same(fromRedis.map((r) => [r.welcome.resumed, r.welcome.failure, r.welcome.id === parked.welcome.id]).sort(), [[false, 'unknown', false], [true, null, true]], 'parked in Redis: the claim decides')
})

redisTest('on a resuming route with the Redis adapter, an attribute that is not JSON throws a TypeError naming its key', async (t) => {
  const a = await startNode(t, { keyPrefix: uniquePrefix('resume-json') })
  const { client } = await join(a, 'user=ann')
  const kinds = ['fn', 'sym', 'big', 'cycle', 'undef', 'nested', 'nan', 'plain', 'date']
  for (const kind of kinds) client.send(`attr ${kind}`)
  const replies = (await client.texts(1 + kinds.length)).slice(1)
  kinds.slice(0, 7).forEach((kind, i) => {
    t.match(replies[i], new RegExp(`^TypeError FST_WS_ROOMS_INVALID_ARGUMENT fastify-websocket-rooms: the value of attribute "${kind}" must be JSON`), kind)
  })
  t.same(replies.slice(7), ['ok', 'ok'], 'JSON values, and values with toJSON, are taken')
})

redisTest('with Redis frozen, a resume on another server is refused as lost within connectTimeout, and the connection served fresh', async (t) => {
  const redis = await PrivateRedis.start(t)
  const adapter = { url: redis.url, keyPrefix: uniquePrefix('resume-frozen'), connectTimeout: 300 }
  const a = await startNode(t, adapter)
  const b = await startNode(t, adapter)
  const ann = await join(a, 'user=ann')
  await drop(a, ann.client, ann.welcome.id)
  redis.pause()
  t.teardown(() => redis.resume())
  const back = await join(b, `user=ann&resume=${ann.welcome.token!}`)
  t.same([back.welcome.resumed, back.welcome.failure, back.welcome.user], [false, 'lost', 'ann'], 'a fresh session')
  redis.resume()
})

redisTest('app.close() with Redis frozen: parking gives up within connectTimeout, and the kept sessions end there as without Redis', async (t) => {
  const redis = await PrivateRedis.start(t)
  const a = await startNode(t, { url: redis.url, keyPrefix: uniquePrefix('resume-frozen-close'), connectTimeout: 300 })
  const ann = await join(a, 'user=ann')
  const bob = await join(a, 'user=bob')
  await drop(a, ann.client, ann.welcome.id)
  redis.pause()
  t.teardown(() => redis.resume())
  await within(a.app.close(), 'A to close')
  t.equal((await bob.client.closed).code, 1012)
  t.same(a.closes.list.map(([id]) => id).sort(), [ann.welcome.id, bob.welcome.id].sort(), 'onClose ran for both: nothing was parked')
  redis.resume()
})

redisTest('across servers a token is bound to its route: another route does not know it, and does not use it up', async (t) => {
  const keyPrefix = uniquePrefix('resume-route')
  const a = await startNode(t, { keyPrefix })
  const b = await startNode(t, { keyPrefix })
  const ann = await join(a, 'user=ann')
  const carl = await join(a, 'user=carl')
  await drop(a, ann.client, ann.welcome.id)
  const elsewhere = async (token: string): Promise<unknown> => (await (await connect(b.base, `/other?resume=${token}`)).json(1))[0]
  t.same(await elsewhere(ann.welcome.token!), { resumed: false, failure: 'unknown' }, 'kept on A: A does not know it on /other')
  t.same((await resumeOn(b, ann.welcome.token!, 0)).welcome.resumed, true, 'still good on /ws')
  await within(a.app.close(), 'A to close')
  await carl.client.closed
  t.same(await elsewhere(carl.welcome.token!), { resumed: false, failure: 'unknown' }, 'parked: the claim does not take it for /other')
  t.same((await resumeOn(b, carl.welcome.token!, 0)).welcome.resumed, true, 'still good on /ws')
})

redisTest('the last server out with parked sessions leaves nothing behind once their window has passed', async (t) => {
  const keyPrefix = uniquePrefix('resume-last-out')
  const a = await startNode(t, { keyPrefix, nodeHeartbeat: 50, nodeTimeout: 200 }, { resume: { window: 300 } })
  const ann = await join(a, 'user=ann')
  await drop(a, ann.client, ann.welcome.id)
  await within(a.app.close(), 'A to close')
  const redis = await adminClient(t)
  t.ok(await redis.exists(`{${keyPrefix}:resume:${ann.welcome.token!}}`), 'parked')
  t.ok(await redis.pTTL(`{${keyPrefix}}:nodes`) > 0, 'the list of nodes, with only the holder left, expires')
  // The room's history lives on for its ttl, as it does without resume.
  const notHistory = async (): Promise<string[]> => (await redis.keys(`*${keyPrefix}*`)).filter((key) => !key.includes(':room:'))
  await eventually(async () => (await notHistory()).length === 0, 'every key but the history\'s to expire')
  for (const key of await redis.keys(`*${keyPrefix}*`)) t.ok(await redis.pTTL(key) > 0, `${key} expires`)
})

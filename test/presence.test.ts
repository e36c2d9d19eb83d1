// Presence: room.presence() lists every member with the info its session set, on every node;
// onPresence gets each room's joins and leaves, gathered over presenceInterval, once in the
// cluster (a dead node's members: told gone by one survivor).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { test } from 'tap'
import websocketRooms, { redisAdapter, type PresenceDiff, type PresenceEntry, type WebsocketRoomsOptions } from 'fastify-websocket-rooms'
import { type Client, build, connect, listen, throwsLike, untilNoSessions } from './helpers'
import { PrivateRedis, REDIS_URL, adminClient, redisTest, uniquePrefix } from './redis'
import { Events, eventually, until, within } from './signals'
import * as clusterHandlers from './fixtures/cluster-handlers'

interface Call { room: string, joins: Array<[string, unknown]>, leaves: Array<[string, unknown]> }

/** An app whose onPresence calls are recorded (entries as [sessionId, info]). */
async function presenceApp (t: Test, options: WebsocketRoomsOptions = {}): Promise<{ app: FastifyInstance, calls: Events<Call> }> {
  const calls = new Events<Call>()
  const pairs = (entries: PresenceEntry[]): Array<[string, unknown]> => entries.map((entry) => [entry.sessionId, entry.info])
  const app = await build(t, {
    presenceInterval: 50,
    ...options,
    onPresence (room, diff: PresenceDiff) { calls.push({ room: room.getName(), joins: pairs(diff.joins), leaves: pairs(diff.leaves) }) }
  })
  app.registerWebsocket('/ws', clusterHandlers)
  return { app, calls }
}

/** A client of the cluster handlers, in the rooms given, once it has been told "ready". */
async function member (base: string, rooms: string): Promise<Client> {
  const client = await connect(base, `/ws?rooms=${rooms}`)
  await client.texts(1)
  return client
}

function sessionIds (app: FastifyInstance): string[] {
  return [...app.websocketSessions.keys()]
}

const byId = (a: { sessionId: string }, b: { sessionId: string }): number => a.sessionId < b.sessionId ? -1 : 1

test('presence() lists the members with the info they set (null by default), on this node, complete', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', clusterHandlers)
  const base = await listen(app)
  const [ann, bob] = [await member(base, 'lobby'), await member(base, 'lobby,other')]
  const [annId, bobId] = sessionIds(app)
  bob!.send('info lobby {"user":"bob","status":"typing"}')
  await bob!.texts(2)
  const nodeId = app.websocketRooms.nodeId
  t.match(nodeId, /^[\w-]{12}$/)
  const presence = await app.websocketRooms.room('lobby').presence()
  t.same({ ...presence, members: presence.members.sort(byId) }, {
    members: [{ sessionId: annId, nodeId, info: null }, { sessionId: bobId, nodeId, info: { user: 'bob', status: 'typing' } }].sort(byId),
    complete: true
  })
  t.same(await app.websocketRooms.room('other').presence(), { members: [{ sessionId: bobId, nodeId, info: { user: 'bob', status: 'typing' } }], complete: true }, 'the info holds in every room')
  t.same(await app.websocketRooms.room('nobody').presence(), { members: [], complete: true })
  await ann!.close()
  await until(() => app.websocketRooms.room('lobby').members() === 1)
  t.same((await app.websocketRooms.room('lobby').presence()).members.map((entry) => entry.sessionId), [bobId])
})

test('setPresence takes a JSON value; anything else is a TypeError naming info', async (t) => {
  const app = await build(t)
  const errors = new Events<unknown>()
  app.registerWebsocket('/ws', {
    onOpen (session) {
      for (const info of [undefined, 10n, () => {}]) {
        try {
          session.setPresence(info)
        } catch (error) {
          errors.push(error)
        }
      }
      session.send('done')
    }
  })
  const client = await connect(await listen(app), '/ws')
  await client.texts(1)
  for (const error of await errors.until(3)) {
    t.type(error, TypeError)
    t.match(error, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /info must be a JSON value/ })
  }
})

test('onPresence: joins gathered over presenceInterval into one diff; a mass join in one turn is one call', async (t) => {
  const { app, calls } = await presenceApp(t)
  const base = await listen(app)
  const clients = await Promise.all(Array.from({ length: 200 }, () => member(base, '')))
  const ids = sessionIds(app)
  // Every session joins in one turn of the event loop, as a reconnecting crowd could.
  for (const session of app.websocketSessions.values()) session.room('mass').join()
  const [call] = await calls.until(1)
  t.equal(call!.room, 'mass')
  t.same(call!.joins.map(([id]) => id).sort(), [...ids].sort(), 'every session, once')
  t.same(call!.leaves, [])
  // A later change, to show that no other call came for the mass join.
  await clients[0]!.close()
  const [, second] = await calls.until(2)
  t.same(second, { room: 'mass', joins: [], leaves: [[ids[0], null]] })
})

test('onPresence: a join and a leave within one window cancel out; a changed info is a leave and a join in one diff', async (t) => {
  // A window long enough for the steps below to fall in one, even on a busy machine.
  const { app, calls } = await presenceApp(t, { presenceInterval: 1500 })
  const base = await listen(app)
  const ann = await member(base, 'lobby')
  const [first] = await calls.until(1)
  const annId = first!.joins[0]![0]
  t.same(first, { room: 'lobby', joins: [[annId, null]], leaves: [] })

  // Within one window: bob comes and goes, ann changes her info twice.
  const bob = await member(base, 'lobby')
  ann.send('info lobby {"status":"away"}')
  ann.send('info lobby {"status":"back"}')
  await ann.texts(3)
  await bob.close()
  await until(() => app.websocketRooms.room('lobby').members() === 1)
  const [, second] = await calls.until(2)
  t.same(second, { room: 'lobby', joins: [[annId, { status: 'back' }]], leaves: [[annId, null]] },
    'bob appears in neither list; ann\'s change is her old entry leaving and her new one joining')
})

test('onPresence that throws or rejects is logged; presence goes on', async (t) => {
  const lines: string[] = []
  const calls = new Events<string>()
  const app = await build(t, {
    presenceInterval: 20,
    onPresence (room, diff) {
      calls.push(`${room.getName()} ${diff.joins.length} ${diff.leaves.length}`)
      if (diff.leaves.length > 0) return Promise.reject(new Error('async boom'))
      throw new Error('boom')
    }
  }, { logger: { level: 'error', stream: { write: (line: string) => lines.push(line) } } })
  app.registerWebsocket('/ws', clusterHandlers)
  const client = await member(await listen(app), 'lobby')
  await calls.until(1)
  await client.close()
  t.same(await calls.until(2), ['lobby 1 0', 'lobby 0 1'])
  await until(() => lines.filter((line) => line.includes('onPresence failed')).length === 2)
  t.ok(lines.some((line) => line.includes('async boom')) && lines.some((line) => line.includes('"boom"')))
})

test('app.close() tells the last leaves before it resolves', async (t) => {
  const calls = new Events<Call>()
  const app = Fastify()
  await app.register(websocketRooms, {
    presenceInterval: 1000,
    onPresence (room, diff) { calls.push({ room: room.getName(), joins: diff.joins.map((e) => [e.sessionId, e.info]), leaves: diff.leaves.map((e) => [e.sessionId, e.info]) }) }
  })
  app.registerWebsocket('/ws', clusterHandlers)
  const base = await listen(app)
  await Promise.all([member(base, 'lobby'), member(base, 'lobby')])
  const ids = sessionIds(app).sort()
  await until(() => calls.list.flatMap((call) => call.joins).length === 2, 'both joins to be told')
  const told = calls.list.length
  // The next window would end after close() has resolved: close() tells what it gathered itself.
  await app.close()
  t.equal(calls.list.length, told + 1)
  t.same(calls.list.at(-1)!.leaves.map(([id]) => id).sort(), ids, 'the closed sessions\' leaves')
})

test('presence options are checked at registration', async (t) => {
  for (const [options, message] of [
    [{ presenceInterval: 0 }, /option "presenceInterval" must be an integer >= 1, got number 0/],
    [{ onPresence: 'yes' }, /option "onPresence" must be a function \(room, diff\), got "yes"/]
  ] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(websocketRooms, options as any) }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message })
  }
  const app = await build(t)
  throwsLike(t, () => app.websocketRooms.room('').presence(), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT' })
})

// ---------------------------------------------------------------------------------------
// Across nodes

const NODE_HEARTBEAT = 100
const NODE_TIMEOUT = 800

async function node (t: Test, keyPrefix: string, url = REDIS_URL, options: WebsocketRoomsOptions = {}): Promise<{ app: FastifyInstance, base: string, calls: Events<Call> }> {
  const { app, calls } = await presenceApp(t, { adapter: redisAdapter({ url, keyPrefix, nodeHeartbeat: NODE_HEARTBEAT, nodeTimeout: NODE_TIMEOUT }), ...options })
  return { app, base: await listen(app), calls }
}

redisTest('presence() on any node lists the members of every node, with their info', async (t) => {
  const keyPrefix = uniquePrefix('presence')
  const a = await node(t, keyPrefix)
  const b = await node(t, keyPrefix)
  await member(a.base, 'lobby')
  const onB = await member(b.base, 'lobby')
  await b.app.websocketRooms.room('lobby').clusterMembers()
  const [aId] = sessionIds(a.app)
  const [bId] = sessionIds(b.app)
  const expected = (bInfo: unknown): PresenceEntry[] => [
    { sessionId: aId!, nodeId: a.app.websocketRooms.nodeId, info: null },
    { sessionId: bId!, nodeId: b.app.websocketRooms.nodeId, info: bInfo }
  ].sort(byId)
  for (const app of [a.app, b.app]) {
    const presence = await app.websocketRooms.room('lobby').presence()
    t.same({ complete: presence.complete, members: presence.members.sort(byId) }, { complete: true, members: expected(null) })
  }
  onB.send('info lobby {"user":"bob"}')
  await onB.texts(2)
  await eventually(async () => JSON.stringify((await a.app.websocketRooms.room('lobby').presence()).members.sort(byId)) === JSON.stringify(expected({ user: 'bob' })),
    'node A to list bob\'s info')
  t.same(a.app.websocketRooms.stats().cluster!.nodeId, a.app.websocketRooms.nodeId, 'the node id of the cluster stats')
})

redisTest('onPresence is called once in the cluster for each change: on the node where it happened', async (t) => {
  const keyPrefix = uniquePrefix('presence-once')
  const a = await node(t, keyPrefix)
  const b = await node(t, keyPrefix)
  await member(b.base, 'lobby')
  const [bCall] = await b.calls.until(1)
  t.equal(bCall!.joins.length, 1)
  await member(a.base, 'lobby')
  const [aCall] = await a.calls.until(1)
  t.same(aCall!.joins.map(([id]) => id), sessionIds(a.app), 'node A tells its own member\'s join')
  t.equal(a.calls.list.length, 1, 'and not node B\'s')
  t.equal(b.calls.list.length, 1, 'nor node B node A\'s')
})

redisTest('Redis away: presence() answers at once with this node\'s members, complete: false', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('presence-away')
  const a = await node(t, keyPrefix, redis.url)
  await member(a.base, 'lobby')
  await redis.crash()
  await until(() => a.app.websocketRooms.stats().cluster!.connected === false)
  const presence = await a.app.websocketRooms.room('lobby').presence()
  t.same(presence, { members: [{ sessionId: sessionIds(a.app)[0], nodeId: a.app.websocketRooms.nodeId, info: null }], complete: false })
})

redisTest('a node killed with members: one survivor tells their leaves, once, and presence() no longer lists them', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('presence-dead')
  const child = spawn(process.execPath, ['--import', 'tsx', require.resolve('./fixtures/cluster-node.ts')], {
    env: { ...process.env, REDIS_URL: redis.url, KEY_PREFIX: keyPrefix, NODE_HEARTBEAT: String(NODE_HEARTBEAT), NODE_TIMEOUT: String(NODE_TIMEOUT) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const [line] = await within(once(createInterface({ input: child.stdout! }), 'line'), 'the node in a child process to say it listens') as [string]
  const { port } = JSON.parse(line) as { port: number }
  const doomed = `ws://127.0.0.1:${port}`
  const [a, b] = [await node(t, keyPrefix, redis.url), await node(t, keyPrefix, redis.url)]
  await member(a.base, 'lobby')
  const victims = [await member(doomed, 'lobby,other'), await member(doomed, 'lobby')]
  victims[0]!.send('info lobby {"user":"vic"}')
  await victims[0]!.texts(2)
  victims[1]!.send('count lobby')
  await victims[1]!.texts(2)
  const before = await a.app.websocketRooms.room('lobby').presence()
  t.equal(before.members.length, 3, 'three members, two on the doomed node')
  const doomedIds = before.members.filter((entry) => entry.nodeId !== a.app.websocketRooms.nodeId).map((entry) => entry.sessionId).sort()

  child.kill('SIGKILL')
  const leavesOf = (room: string): Array<[string, unknown]> => [...a.calls.list, ...b.calls.list].filter((call) => call.room === room).flatMap((call) => call.leaves)
  await until(() => leavesOf('lobby').length >= 2 && leavesOf('other').length >= 1, 'the dead node\'s leaves')
  t.same(leavesOf('lobby').map(([id]) => id).sort(), doomedIds, 'each member of the dead node is told gone once')
  const [[vicId, vicInfo]] = leavesOf('other') as [[string, unknown]]
  t.same(vicInfo, { user: 'vic' }, 'with the info it had')
  t.same(leavesOf('lobby').find(([id]) => id === vicId)?.[1], { user: 'vic' }, 'in every room')
  t.equal(leavesOf('other').length, 1)
  // One more window on both survivors: a change on each, told, and no second report came.
  await member(a.base, 'later')
  await member(b.base, 'later')
  await until(() => [...a.calls.list, ...b.calls.list].filter((call) => call.room === 'later').length >= 2)
  t.equal(leavesOf('lobby').length, 2, 'told once in the cluster, not once per node')
  const after = await b.app.websocketRooms.room('lobby').presence()
  t.same(after.members.map((entry) => entry.nodeId), [a.app.websocketRooms.nodeId], 'presence() lists the survivors\' members only')
})

test('without an adapter, nodeId still names this instance', async (t) => {
  const [one, two] = [await build(t), await build(t)]
  t.not(one.websocketRooms.nodeId, two.websocketRooms.nodeId)
  await untilNoSessions(one)
})

redisTest('a node the cluster took for dead (it could not beat for nodeTimeout) tells its members back, and writes them again', async (t) => {
  const keyPrefix = uniquePrefix('presence-back')
  const a = await node(t, keyPrefix)
  const b = await node(t, keyPrefix)
  await member(a.base, 'lobby')
  await a.calls.until(1)
  const [aId] = sessionIds(a.app)
  // What a survivor does to a node it takes for dead: claims it and deletes its entries.
  const admin = await adminClient(t)
  await admin.set(`{${keyPrefix}:node:${a.app.websocketRooms.nodeId}}:reaped`, b.app.websocketRooms.nodeId)
  await admin.del(`{${keyPrefix}:node:${a.app.websocketRooms.nodeId}}:presence:lobby`)
  const [, back] = await a.calls.until(2)
  t.same(back, { room: 'lobby', joins: [[aId, null]], leaves: [] }, 'its member is told back')
  await eventually(async () => (await b.app.websocketRooms.room('lobby').presence()).members.length === 1, 'node B to list it again')
  t.equal(await admin.exists(`{${keyPrefix}:node:${a.app.websocketRooms.nodeId}}:reaped`), 0, 'the claim is gone')
})

// ---------------------------------------------------------------------------------------
// A room's life cycle: onRoomOccupied, onRoomVacated

/** An app whose room life cycle is recorded as 'occupied NAME' / 'vacated NAME'. */
async function lifeCycleApp (t: Test, adapter: WebsocketRoomsOptions['adapter'] = null): Promise<{ app: FastifyInstance, base: string, events: Events<string> }> {
  const events = new Events<string>()
  const app = await build(t, {
    adapter,
    onRoomOccupied (room) { events.push(`occupied ${room.getName()}`) },
    onRoomVacated (room) { events.push(`vacated ${room.getName()}`) }
  })
  app.registerWebsocket('/ws', clusterHandlers)
  return { app, base: await listen(app), events }
}

test('without an adapter: a room is occupied at its first member and vacated at its last; within one turn, neither', async (t) => {
  const { app, base, events } = await lifeCycleApp(t)
  const first = await member(base, 'lobby')
  t.same(await events.until(1), ['occupied lobby'])
  const second = await member(base, 'lobby')
  await first.close()
  await until(() => app.websocketRooms.room('lobby').members() === 1)
  await second.close()
  t.same(await events.until(2), ['occupied lobby', 'vacated lobby'], 'the second member and the first leave changed nothing')
  // In one turn: joined and left.
  await member(base, '')
  const session = [...app.websocketSessions.values()].at(-1) // the newest
  session!.room('brief').join()
  session!.room('brief').leave()
  session!.room('later').join()
  t.same(await events.until(3), ['occupied lobby', 'vacated lobby', 'occupied later'], 'the room joined and left within one turn was neither')
})

redisTest('with the adapter: told once in the cluster, by the first node in and the last node out', async (t) => {
  const keyPrefix = uniquePrefix('life-cycle')
  const adapter = (): WebsocketRoomsOptions['adapter'] => redisAdapter({ url: REDIS_URL, keyPrefix, nodeHeartbeat: NODE_HEARTBEAT, nodeTimeout: NODE_TIMEOUT })
  const a = await lifeCycleApp(t, adapter())
  const b = await lifeCycleApp(t, adapter())
  const onA = await member(a.base, 'match')
  t.same(await a.events.until(1), ['occupied match'])
  const onB = await member(b.base, 'match')
  await b.app.websocketRooms.room('match').clusterMembers()
  await onA.close()
  await until(() => a.app.websocketRooms.room('match').members() === 0)
  await a.app.websocketRooms.room('match').clusterMembers()
  await onB.close()
  t.same(await b.events.until(1), ['vacated match'], 'the last node out tells it')
  // A change on node A after all that, told there: nothing else was told on A meanwhile.
  await member(a.base, 'after')
  t.same(await a.events.until(2), ['occupied match', 'occupied after'])
  t.equal(b.events.list.length, 1)
})

redisTest('a room whose only members were on a node that died is told vacated by the one survivor that claims it', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('life-cycle-dead')
  const child = spawn(process.execPath, ['--import', 'tsx', require.resolve('./fixtures/cluster-node.ts')], {
    env: { ...process.env, REDIS_URL: redis.url, KEY_PREFIX: keyPrefix, NODE_HEARTBEAT: String(NODE_HEARTBEAT), NODE_TIMEOUT: String(NODE_TIMEOUT), TRACK_ROOMS: '1' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const [line] = await within(once(createInterface({ input: child.stdout! }), 'line'), 'the node in a child process to say it listens') as [string]
  const doomed = `ws://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`
  const adapter = (): WebsocketRoomsOptions['adapter'] => redisAdapter({ url: redis.url, keyPrefix, nodeHeartbeat: NODE_HEARTBEAT, nodeTimeout: NODE_TIMEOUT })
  const [a, b] = [await lifeCycleApp(t, adapter()), await lifeCycleApp(t, adapter())]
  const victim = await member(doomed, 'doomed')
  victim.send('count doomed')
  await victim.texts(2)
  child.kill('SIGKILL')
  const told = (): string[] => [...a.events.list, ...b.events.list]
  await until(() => told().includes('vacated doomed'), 'the dead node\'s room to be told vacated')
  // One more event on each survivor after that: a second report would have come first.
  await member(a.base, 'next-a')
  await member(b.base, 'next-b')
  await until(() => told().includes('occupied next-a') && told().includes('occupied next-b'))
  t.equal(told().filter((event) => event === 'vacated doomed').length, 1, 'once in the cluster')
})

test('life cycle options are checked at registration', async (t) => {
  for (const name of ['onRoomOccupied', 'onRoomVacated']) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(websocketRooms, { [name]: 42 } as any) }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message: new RegExp(`option "${name}" must be a function \\(room\\), got number 42`) })
  }
})

redisTest('a survivor with nothing to tell (no onPresence) never claims a dead node: the one that listens tells its leaves', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('presence-quiet')
  const settings = { REDIS_URL: redis.url, KEY_PREFIX: keyPrefix, NODE_HEARTBEAT: String(NODE_HEARTBEAT), NODE_TIMEOUT: String(NODE_TIMEOUT) }
  const child = spawn(process.execPath, ['--import', 'tsx', require.resolve('./fixtures/cluster-node.ts')], { env: { ...process.env, ...settings }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const [line] = await within(once(createInterface({ input: child.stdout! }), 'line'), 'the node in a child process to say it listens') as [string]
  const doomed = `ws://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`
  // Several quiet survivors, so that one of them would win the claim if quiet ones took part.
  for (let i = 0; i < 3; i++) {
    const quiet = await build(t, { adapter: redisAdapter({ url: redis.url, keyPrefix, nodeHeartbeat: NODE_HEARTBEAT, nodeTimeout: NODE_TIMEOUT }) })
    await listen(quiet)
  }
  const listener = await node(t, keyPrefix, redis.url)
  const victim = await member(doomed, 'lobby')
  victim.send('count lobby')
  await victim.texts(2)
  child.kill('SIGKILL')
  await until(() => listener.calls.list.some((call) => call.room === 'lobby' && call.leaves.length === 1), 'the listening survivor to tell the leave')
  t.equal(listener.calls.list.filter((call) => call.room === 'lobby').flatMap((call) => call.leaves).length, 1, 'the victim\'s leave, told once')
})

redisTest('Redis restarted with nothing kept: every node writes its entries again, and presence() lists them all', async (t) => {
  const redis = await PrivateRedis.start(t)
  const keyPrefix = uniquePrefix('presence-restart')
  const a = await node(t, keyPrefix, redis.url)
  const b = await node(t, keyPrefix, redis.url)
  await member(a.base, 'lobby')
  const onB = await member(b.base, 'lobby')
  onB.send('info lobby {"user":"bob"}')
  await onB.texts(2)
  await eventually(async () => (await a.app.websocketRooms.room('lobby').presence()).members.length === 2, 'both members before the restart')
  await redis.crash()
  await until(() => !a.app.websocketRooms.stats().cluster!.connected && !b.app.websocketRooms.stats().cluster!.connected, 'both nodes to see Redis gone')
  await redis.start()
  await eventually(async () => {
    const { members, complete } = await a.app.websocketRooms.room('lobby').presence()
    return complete && members.some((entry) => entry.nodeId === b.app.websocketRooms.nodeId && (entry.info as { user?: string } | null)?.user === 'bob')
  }, 'node A to list bob, with his info, from the rewritten state')
  t.equal((await b.app.websocketRooms.room('lobby').presence()).members.length, 2, 'and node B both')
})

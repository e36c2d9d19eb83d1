// Resume on one server: a session whose connection is lost is kept for the window, in its
// rooms, what it is sent kept for it; a handshake with its token is that session again (same
// id, attributes, presence info, rooms, what it missed first, in order, once) or a fresh
// session that says why not.
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { test } from 'tap'
import websocketRooms, { type WebsocketRoomsOptions } from 'fastify-websocket-rooms'
import { chatHandlers, chatRecords, recordPresence, type ChatRecords, type Welcome } from './fixtures/resume-chat'
import { Client, build, connect, listen, throwsLike } from './helpers'
import { until, within } from './signals'

interface Harness extends ChatRecords {
  app: FastifyInstance
  base: string
}

/** An app with the chat route (./fixtures/resume-chat) at /ws; "bye" closes with 1000 from the server, "hang" never settles. */
async function resumeApp (t: Test, options: WebsocketRoomsOptions = {}, route: Record<string, unknown> = {}): Promise<Harness> {
  const records = chatRecords()
  const app = await build(t, {
    presenceInterval: 10,
    resume: { window: 60_000 },
    history: { size: 100, ttl: 60_000 },
    onPresence: recordPresence(records),
    ...options
  })
  app.registerWebsocket('/ws', {
    ...chatHandlers(records, async (session, command) => {
      if (command === 'bye') session.close(1000, 'bye')
      else if (command === 'hang') await new Promise(() => {})
      return true
    }),
    ...route
  })
  return { app, base: await listen(app), ...records }
}

/** A client and its welcome (the first message). */
async function join (h: Harness, query: string): Promise<{ client: Client, welcome: Welcome }> {
  const client = await connect(h.base, `/ws?${query}`)
  const [welcome] = await client.json(1)
  return { client, welcome }
}

/** Cuts the client's connection without a close frame, and waits for the server to keep its session. */
async function drop (h: Harness, client: Client, id: string): Promise<void> {
  client.ws.terminate()
  await client.closed
  await until(() => !h.app.websocketSessions.has(id), `session ${id} to leave the registry`)
}

/** The messages after the welcome a client was sent before its welcome: what was kept for it, then the welcome. */
async function resumeWith (h: Harness, query: string, kept: number): Promise<{ client: Client, kept: string[], welcome: Welcome }> {
  const client = await connect(h.base, `/ws?${query}`)
  const texts = await client.texts(kept + 1)
  return { client, kept: texts.slice(0, kept), welcome: JSON.parse(texts[kept]!) }
}

test('a lost connection resumes: same id, attributes, presence info and rooms; what it missed first, in order; onClose not run; no presence change', async (t) => {
  const h = await resumeApp(t)
  const ann = await join(h, 'user=ann')
  const bob = await join(h, 'user=bob')
  t.equal(ann.welcome.resumed, false)
  t.equal(ann.welcome.failure, null, 'no token given: no failure')
  t.match(ann.welcome.token, /^[\w-]{24}$/)
  await bob.client.json(1) // welcome only: the broadcasts below follow
  await until(() => h.presence.length === 2, 'both joins told')
  const oldAnn = h.sessions.get(ann.welcome.id)!
  await drop(h, ann.client, ann.welcome.id)
  t.same(h.closes.list, [], 'onClose has not run')

  bob.client.send('say one')
  bob.client.send('publish two')
  await bob.client.texts(3)
  oldAnn.send('direct three') // the app still holds the old object: what it sends is kept too
  bob.client.send('say four')
  await bob.client.texts(4)

  const back = await resumeWith(h, `user=ignored&resume=${ann.welcome.token!}`, 4)
  t.same(back.kept, ['one', '1 two', 'direct three', 'four'], 'missed messages, in order, before onOpen')
  t.same({ ...back.welcome, token: undefined }, { type: 'welcome', id: ann.welcome.id, resumed: true, failure: null, token: undefined, user: 'ann', rooms: ['chat'] })
  t.match(back.welcome.token, /^[\w-]{24}$/)
  t.not(back.welcome.token, ann.welcome.token, 'a new token at each resume')
  t.ok(h.app.websocketSessions.has(ann.welcome.id))
  const presence = await h.app.websocketRooms.room('chat').presence()
  t.same(presence.members.map((m) => [m.sessionId, m.info]).sort(), [[ann.welcome.id, { user: 'ann' }], [bob.welcome.id, { user: 'bob' }]].sort(), 'presence info kept')

  bob.client.send('say live')
  t.same((await back.client.texts(6)).slice(5), ['live'], 'live messages after, once')
  t.same(h.presence.map(([kind]) => kind), ['join', 'join'], 'no leave nor join for the resume')

  const stolen = await join(h, `resume=${ann.welcome.token!}`)
  t.equal(stolen.welcome.failure, 'unknown', 'the old token is worthless once used')
  t.not(stolen.welcome.id, ann.welcome.id)
  t.equal(stolen.welcome.resumed, false)

  await back.client.close()
  const [[id, code]] = await h.closes.until(1) as Array<[string, number]>
  t.same([id, code], [ann.welcome.id, 1005], 'onClose runs once, when the session really ends')
})

test('a close frame from the client ends the session at once; its token is then unknown', async (t) => {
  const h = await resumeApp(t)
  const ann = await join(h, 'user=ann')
  ann.client.ws.close(1000)
  t.same(await h.closes.until(1), [[ann.welcome.id, 1000]])
  const again = await join(h, `resume=${ann.welcome.token!}`)
  t.same([again.welcome.resumed, again.welcome.failure], [false, 'unknown'])
  const app = await join(h, 'user=bob')
  app.client.send('bye')
  t.same((await h.closes.until(2))[1], [app.welcome.id, 1000], 'a close by the server ends it too')
  const byServer = await join(h, `resume=${app.welcome.token!}`)
  t.equal(byServer.welcome.failure, 'unknown')
})

test('a kept session outlives closeTimeout: only the window ends it', async (t) => {
  const closeTimeout = 20
  const h = await resumeApp(t, { closeTimeout })
  const ann = await join(h, 'user=ann')
  await drop(h, ann.client, ann.welcome.id)
  // Started after the server saw the drop, with a longer delay, this timer fires after any
  // closeTimeout deadline the drop could have started.
  await new Promise((resolve) => setTimeout(resolve, 5 * closeTimeout))
  t.same(h.closes.list, [], 'onClose has not run')
  const back = await join(h, `resume=${ann.welcome.token!}`)
  t.same([back.welcome.resumed, back.welcome.id], [true, ann.welcome.id])
})

test('past the window the session ends (onClose, presence leave) and its token says expired', async (t) => {
  const h = await resumeApp(t, { resume: { window: 100 } })
  const ann = await join(h, 'user=ann')
  await until(() => h.presence.length === 1, 'the join told')
  await drop(h, ann.client, ann.welcome.id)
  t.same(await h.closes.until(1), [[ann.welcome.id, 1006]], 'onClose with the code of the drop')
  await until(() => h.presence.some(([kind]) => kind === 'leave'), 'the leave told')
  const late = await join(h, `user=ann&resume=${ann.welcome.token!}`)
  t.same([late.welcome.resumed, late.welcome.failure, late.welcome.rooms], [false, 'expired', ['chat']])
  t.not(late.welcome.id, ann.welcome.id, 'a fresh session')
})

test('more sent while away than maxBackpressure: the session ends at once, and its token says overflow', async (t) => {
  const h = await resumeApp(t, {}, { maxBackpressure: 1000 })
  const ann = await join(h, 'user=ann')
  const bob = await join(h, 'user=bob')
  await drop(h, ann.client, ann.welcome.id)
  bob.client.send(`say ${'x'.repeat(600)}`)
  await bob.client.texts(2)
  t.same(h.closes.list, [], 'within the bound: still kept')
  bob.client.send(`say ${'y'.repeat(600)}`)
  t.same(await h.closes.until(1), [[ann.welcome.id, 1006]], 'past it: ended')
  const back = await join(h, `resume=${ann.welcome.token!}`)
  t.same([back.welcome.resumed, back.welcome.failure], [false, 'overflow'])
})

test('the app closing a kept session ends it at once: onClose, presence leave, its token unknown', async (t) => {
  const h = await resumeApp(t)
  const ann = await join(h, 'user=ann')
  await until(() => h.presence.length === 1, 'the join told')
  await drop(h, ann.client, ann.welcome.id)
  await h.app.websocketRooms.room('chat').disconnectAll(4000, 'banned')
  t.same(await h.closes.until(1), [[ann.welcome.id, 1006]], 'with the code of the drop')
  await until(() => h.presence.some(([kind]) => kind === 'leave'), 'the leave told')
  t.same(h.app.websocketRooms.room('chat').sessions(), [], 'out of the room')
  const back = await join(h, `resume=${ann.welcome.token!}`)
  t.same([back.welcome.resumed, back.welcome.failure], [false, 'unknown'])
})

test('disconnectSession() reaches a kept session: it ends at once, and its client cannot come back', async (t) => {
  const h = await resumeApp(t)
  const ann = await join(h, 'user=ann')
  await drop(h, ann.client, ann.welcome.id)
  await h.app.websocketRooms.disconnectSession(ann.welcome.id, 4001, 'kicked')
  t.same(await h.closes.until(1), [[ann.welcome.id, 1006]], 'onClose ran, with the code of the drop')
  t.same(h.app.websocketRooms.room('chat').sessions(), [], 'out of the room')
  const back = await join(h, `resume=${ann.welcome.token!}`)
  t.same([back.welcome.resumed, back.welcome.failure], [false, 'unknown'])
})

test('two connections racing with one token: one resumes, the other is fresh with unknown', async (t) => {
  const h = await resumeApp(t)
  const ann = await join(h, 'user=ann')
  await drop(h, ann.client, ann.welcome.id)
  const [a, b] = await Promise.all([join(h, `resume=${ann.welcome.token!}`), join(h, `resume=${ann.welcome.token!}`)])
  const welcomes = [a.welcome, b.welcome].sort((x, y) => Number(y.resumed) - Number(x.resumed))
  t.same(welcomes.map((w) => [w.resumed, w.failure, w.id === ann.welcome.id]), [[true, null, true], [false, 'unknown', false]])
})

test('a token brought while its session is still connected takes it over: the old connection is cut', async (t) => {
  const h = await resumeApp(t)
  const ann = await join(h, 'user=ann')
  const bob = await join(h, 'user=bob')
  const back = await join(h, `resume=${ann.welcome.token!}`)
  t.same([back.welcome.resumed, back.welcome.id], [true, ann.welcome.id])
  t.equal((await ann.client.closed).code, 1006, 'the old connection cut')
  bob.client.send('say hi')
  t.same((await back.client.texts(2))[1], 'hi')
  t.same(h.closes.list, [])
  t.equal(h.app.websocketSessions.size, 2)
})

test('a token brought while its session\'s handler hangs: the session is dropped after closeTimeout, the resume refused as lost', async (t) => {
  const h = await resumeApp(t, { closeTimeout: 100 })
  const ann = await join(h, 'user=ann')
  ann.client.send('hang')
  const back = await join(h, `resume=${ann.welcome.token!}`)
  t.same([back.welcome.resumed, back.welcome.failure], [false, 'lost'])
  t.not(back.welcome.id, ann.welcome.id)
  t.same(await h.closes.until(1), [[ann.welcome.id, 1006]], 'the old session ended, onClose once')
})

test('a client cut off by the heartbeat is kept, and resumes', async (t) => {
  const h = await resumeApp(t, { heartbeatInterval: 50 })
  const mute = new Client(`${h.base}/ws?user=ann`, { autoPong: false })
  const [welcome] = await mute.json(1) as Welcome[]
  t.equal((await mute.closed).code, 1006, 'cut off by the heartbeat')
  await until(() => !h.app.websocketSessions.has(welcome!.id), 'the session to leave the registry')
  t.same(h.closes.list, [], 'kept: onClose has not run')
  const back = await join(h, `resume=${welcome!.token!}`)
  t.same([back.welcome.resumed, back.welcome.id, back.welcome.user], [true, welcome!.id, 'ann'])
})

test('hostile and foreign tokens are unknown, and the parameter never reaches the schema nor query', async (t) => {
  const queries: unknown[] = []
  const h = await resumeApp(t, {}, {
    schema: { querystring: { type: 'object', properties: { user: { type: 'string' } }, additionalProperties: false } },
    preHandler: async (request: { query: unknown }) => { queries.push({ ...request.query as object }) }
  })
  const ann = await join(h, 'user=ann')
  const hostile = ['x'.repeat(5000), '%00%01%02', 'é'.repeat(24), `${ann.welcome.token!.slice(0, 23)}!`, '', `${ann.welcome.token!}&resume=${ann.welcome.token!}`]
  for (const token of hostile) {
    const other = await join(h, `user=eve&resume=${token}`)
    t.same([other.welcome.resumed, other.welcome.failure], [false, 'unknown'], `token ${token.slice(0, 30)}`)
  }
  t.same(queries, [{ user: 'ann' }, ...hostile.map(() => ({ user: 'eve' }))], 'validated without it')
  t.equal(h.app.websocketSessions.size, 1 + hostile.length)
  t.equal(h.closes.list.length, 0, 'ann still connected')
})

test('a token is bound to its route; a route may opt out', async (t) => {
  const app = await build(t, { resume: { window: 60_000, param: 'r' } })
  const opened: Array<[string, boolean, string | null, string | null]> = []
  const closes: string[] = []
  for (const path of ['/a', '/b']) {
    app.registerWebsocket(path, {
      onOpen (session) {
        opened.push([path, session.resumed, session.resumeFailure, session.resumeToken])
        session.send(session.resumeToken ?? 'none')
      },
      onClose (session) { closes.push(path) }
    })
  }
  app.registerWebsocket('/plain', {
    resume: false,
    onOpen (session) { session.send(session.resumeToken ?? 'none') },
    onClose () { closes.push('/plain') }
  })
  const base = await listen(app)
  const a = await connect(base, '/a')
  const [token] = await a.texts(1)
  a.ws.terminate()
  await until(() => app.websocketSessions.size === 0)
  const b = await connect(base, `/b?r=${token!}`)
  await b.texts(1)
  t.same(opened[1]!.slice(0, 3), ['/b', false, 'unknown'], 'another route does not know it')
  const plain = await connect(base, `/plain?r=${token!}`)
  t.same(await plain.texts(1), ['none'], 'an opted-out route has no token')
  plain.ws.terminate()
  await until(() => closes.includes('/plain'), 'the opted-out session to end at once')
  const back = await connect(base, `/a?r=${token!}`)
  await back.texts(1)
  t.same(opened[2]!.slice(0, 3), ['/a', true, null], 'its own route resumes it')
})

test('app.close() closes resuming sessions with 1012, the others with 1001', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(websocketRooms, { resume: { window: 60_000 } })
  const closes: number[] = []
  app.registerWebsocket('/ws', { onOpen () {}, onClose (session, code) { closes.push(code) } })
  app.registerWebsocket('/plain', { resume: false, onOpen () {}, onClose (session, code) { closes.push(code) } })
  const base = await listen(app)
  const [kept, plain] = await Promise.all([connect(base, '/ws'), connect(base, '/plain')])
  await within(app.close(), 'app.close()')
  t.same([(await kept.closed).code, (await plain.closed).code], [1012, 1001])
  t.same(closes.sort(), [1001, 1012], 'without an adapter the state dies with the instance: onClose runs')
})

test('app.close() ends the sessions kept in its memory: their onClose runs with the code of the drop', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(websocketRooms, { resume: { window: 60_000 } })
  const closes: number[] = []
  app.registerWebsocket('/ws', { onOpen () {}, onClose (session, code) { closes.push(code) } })
  const base = await listen(app)
  const kept = await connect(base, '/ws')
  kept.ws.terminate()
  await until(() => app.websocketSessions.size === 0, 'the session to be kept')
  t.same(closes, [])
  await within(app.close(), 'app.close()')
  t.same(closes, [1006])
})

test('the resume option and a route\'s are checked', async (t) => {
  for (const [resume, pattern] of [
    [{}, /"resume.window" must be an integer >= 1/],
    [{ window: 0 }, /"resume.window" must be an integer >= 1/],
    [{ window: 2 ** 31 }, /"resume.window" must be an integer from 1 to 2147483647/],
    [{ window: 10, param: 'a b' }, /"resume.param" must be a query parameter name/],
    [{ window: 10, param: '' }, /"resume.param"/],
    [{ window: 10, windw: 5 }, /"resume.windw" must be unset.*did you mean "window"/],
    [true, /"resume" must be false or an object/]
  ] as Array<[unknown, RegExp]>) {
    const app = Fastify({ logger: false })
    await t.rejects(async () => { await app.register(websocketRooms, { resume } as WebsocketRoomsOptions) }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message: pattern }, JSON.stringify(resume))
    await app.close()
  }
  const app = await build(t, { resume: { window: 10 } })
  throwsLike(t, () => app.registerWebsocket('/ws', { resume: true, onOpen () {} } as any), TypeError, { code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: /"resume" may only be false here/ })
})

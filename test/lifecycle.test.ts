// The life of sessions around app.close(): 1001 for every session, every onDisconnected
// awaited, no upgrade while closing, closeTimeout for clients that never answer and for
// handlers that never settle, and an empty registry after churn.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { test } from 'tap'
import websocketRooms, { redisAdapter, type WebSocketSession, type WebsocketRoomsOptions } from 'fastify-websocket-rooms'
import { Client, WS_CLOSE_TIMEOUT, build, connect, listen, untilNoSessions } from './helpers'
import { HandshakeError, RawClient, opcodes } from './raw-client'
import { Events, gate, until } from './signals'

async function ready (base: string, path: string): Promise<Client> {
  const client = await connect(base, path)
  await client.texts(1)
  return client
}

test('app.close() closes every session with 1001 and resolves after every onDisconnected finished', async (t) => {
  const app = await build(t)
  const started = new Events<{ code: number, reason: string, everyone: number, has: boolean }>()
  const finished = new Events<string>()
  const release = gate()
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('everyone').join()
      session.room(`team-${session.getParameter('team')}`).join()
      session.send('ready')
    },
    async onDisconnected (session, code, reason) {
      const everyone = session.room('everyone')
      started.push({ code, reason, everyone: everyone.members(), has: everyone.has() })
      await release.opened
      finished.push(session.id)
    }
  })
  // Hooks of the app run after the plugin's preClose and before its onClose (which clears all).
  const seen: Record<string, unknown> = {}
  const registry = (): unknown => ({ sessions: app.websocketSessions.size, rooms: app.websocketRooms.roomNames() })
  app.addHook('preClose', async () => { seen.preClose = registry() })
  app.addHook('onClose', async () => { seen.onClose = registry() })
  const base = await listen(app)
  const clients = await Promise.all(Array.from({ length: 6 }, (_, i) => ready(base, `/ws?team=${i % 2}`)))
  t.same(app.websocketRooms.roomNames().sort(), ['everyone', 'team-0', 'team-1'])

  let finishedWhenClosed = -1
  const closing = app.close().then(() => { finishedWhenClosed = finished.list.length })
  for (const client of clients) t.same(await client.closed, { code: 1001, reason: 'server shutting down' })
  const calls = await started.until(6)
  t.same(calls, Array(6).fill({ code: 1001, reason: 'server shutting down', everyone: 6, has: true }),
    'every session is still a member while its onDisconnected runs')
  // Every connection has closed and every onDisconnected has started: what close() still waits
  // for is an empty registry, and a session stays in it until its onDisconnected has finished.
  t.equal(app.websocketSessions.size, 6, 'the sessions stay registered while their onDisconnected runs')
  t.equal(finishedWhenClosed, -1, 'close() waits for the pending onDisconnected handlers')
  release.open()
  await closing
  t.equal(finishedWhenClosed, 6, 'close() resolved after the last onDisconnected finished')
  t.same(seen.preClose, { sessions: 0, rooms: [] }, 'the sessions left the registry before the server closed')
  t.same(seen.onClose, { sessions: 0, rooms: [] })
  t.equal(app.websocketSessions.size, 0)
  t.same(app.websocketRooms.roomNames(), [])
})

test('onDisconnected and onClose can say goodbye to the room; the session leaves its rooms once they return', async (t) => {
  const app = await build(t)
  const calls = new Events<{ name: string, code: number, members: number, has: boolean }>()
  const finished = new Events<string>()
  const aliceMayGo = gate()
  function join (session: WebSocketSession): void {
    session.room('chat').join()
    session.send('ready')
  }
  function goodbye (session: WebSocketSession, code: number): void {
    const chat = session.room('chat')
    const name = session.getParameter('name')!
    calls.push({ name, code, members: chat.members(), has: chat.has() })
    chat.broadcastExcept(`bye from ${name}`)
  }
  app.registerWebsocket('/async', {
    onConnected: join,
    async onDisconnected (session, code) {
      goodbye(session, code)
      await aliceMayGo.opened
      finished.push(session.getParameter('name')!)
    }
  })
  app.registerWebsocket('/sync', { onOpen: join, onClose: goodbye })
  const base = await listen(app)
  const alice = await ready(base, '/async?name=alice')
  const bob = await ready(base, '/sync?name=bob')
  const carol = await ready(base, '/async?name=carol')
  const chat = app.websocketRooms.room('chat')
  const [aliceId, bobId] = chat.sessions().map((session) => session.id)

  await alice.close()
  t.same(await bob.texts(2), ['ready', 'bye from alice'])
  t.same(await carol.texts(2), ['ready', 'bye from alice'])
  t.same(calls.list, [{ name: 'alice', code: 1005, members: 3, has: true }])
  t.equal(chat.members(), 3, 'alice stays a member while her async onDisconnected is pending')
  t.ok(app.websocketSessions.has(aliceId!))
  aliceMayGo.open()
  await finished.until(1)
  await until(() => !app.websocketSessions.has(aliceId!))
  t.equal(chat.members(), 2, 'alice left the room once onDisconnected settled')

  bob.ws.close(4000, 'done')
  await calls.until(2)
  t.same(calls.list[1], { name: 'bob', code: 4000, members: 2, has: true })
  t.same(await carol.texts(3), ['ready', 'bye from alice', 'bye from bob'])
  await until(() => !app.websocketSessions.has(bobId!))
  t.equal(chat.members(), 1, 'bob left the room once onClose returned')
  t.same(app.websocketRooms.roomNames(), ['chat'])

  await app.close()
  t.same(calls.list[2], { name: 'carol', code: 1001, members: 1, has: true })
  t.same(await carol.closed, { code: 1001, reason: 'server shutting down' })
  t.same(app.websocketRooms.roomNames(), [])
})

test('no upgrade is accepted while app.close() is in progress', async (t) => {
  const app = await build(t)
  let connected = 0
  const disconnecting = gate()
  const release = gate()
  app.registerWebsocket('/ws', {
    onConnected (session) { connected++; session.send('ready') },
    async onDisconnected () {
      disconnecting.open()
      await release.opened
    }
  })
  const base = await listen(app)
  const first = await ready(base, '/ws')
  const closing = app.close()
  await disconnecting.opened
  t.same(await first.closed, { code: 1001, reason: 'server shutting down' })

  const refused = await RawClient.connect(base, '/ws').then(() => null, (error: unknown) => error)
  t.type(refused, HandshakeError)
  t.equal((refused as HandshakeError).statusCode, 503, 'a raw upgrade request gets 503')
  const late = new Client(base + '/ws')
  await t.rejects(late.opened, /Unexpected server response: 503/, 'a ws client gets 503')
  await late.closed
  t.equal(connected, 1, 'no session was started')
  t.equal(app.websocketSessions.size, 1, 'only the closing session is left')

  release.open()
  await closing
  t.equal(app.websocketSessions.size, 0)
})

test('an upgrade still in its route hooks when app.close() starts gets no session', async (t) => {
  const app = await build(t)
  const inHook = gate()
  const mayProceed = gate()
  const shutDown = gate()
  let connected = 0
  app.registerWebsocket('/ws', {
    async preHandler () {
      inHook.open()
      await mayProceed.opened
    },
    onConnected () { connected++ }
  })
  app.addHook('preClose', async () => { shutDown.open() }) // runs after the plugin's
  const base = await listen(app)
  const attempt = RawClient.connect(base, '/ws').then(() => null, (error: unknown) => error)
  await inHook.opened
  const closing = app.close()
  await shutDown.opened
  mayProceed.open()
  const refused = await attempt
  t.type(refused, HandshakeError)
  t.equal((refused as HandshakeError).statusCode, 503)
  await closing
  t.equal(connected, 0, 'no session was started')
  t.equal(app.websocketSessions.size, 0)
})

test('closeTimeout cuts off a client that never answers the close frame; close() waits for it and for onDisconnected, up to closeTimeout', async (t) => {
  const closeTimeout = 500
  const app = await build(t, { closeTimeout })
  const disconnects = new Events<{ who: string, code: number, reason: string }>()
  const politeMayFinish = gate()
  let politeFinished = false
  const ids: Record<string, string> = {}
  app.registerWebsocket('/ws', {
    onConnected (session) {
      ids[session.getParameter('who')!] = session.id
      session.room('room').join()
      session.send('ready')
    },
    async onDisconnected (session, code, reason) {
      const who = session.getParameter('who')!
      disconnects.push({ who, code, reason })
      if (who !== 'polite') return
      await politeMayFinish.opened
      politeFinished = true
    }
  })
  const base = await listen(app)
  const silent = await RawClient.connect(base, '/ws?who=silent', { echoClose: false })
  await silent.text('ready')
  silent.socket.pause() // reads nothing more, so never answers the close frame
  const polite = await ready(base, '/ws?who=polite')

  let closed = false
  const startedAt = performance.now()
  const closing = app.close().then(() => { closed = true })
  t.same(await polite.closed, { code: 1001, reason: 'server shutting down' })
  t.same(await disconnects.until(1), [{ who: 'polite', code: 1001, reason: 'server shutting down' }], 'the polite client ends first')
  // close() waits for an empty registry, and a session stays in it until its onDisconnected has finished.
  t.ok(app.websocketSessions.has(ids.polite!), 'the polite session stays registered while its onDisconnected runs')
  t.equal(closed, false, 'close() waits for the pending onDisconnected')
  politeMayFinish.open()
  await until(() => !app.websocketSessions.has(ids.polite!), 'the polite session to leave the registry')
  t.ok(politeFinished, 'once its onDisconnected has finished')
  t.same([...app.websocketSessions.keys()], [ids.silent], 'the silent session is left')
  t.equal(closed, false, 'and close() waits for the client that has not answered')
  const [, silentEnd] = await disconnects.until(2)
  const cutAfter = performance.now() - startedAt
  t.same(silentEnd, { who: 'silent', code: 1006, reason: '' }, 'the silent client is cut off')
  t.ok(cutAfter >= closeTimeout - 5, `cut off after closeTimeout (${Math.round(cutAfter)} ms)`)
  t.ok(cutAfter < WS_CLOSE_TIMEOUT, 'before ws gives up by itself (30 s)')
  await closing
  t.equal(app.websocketSessions.size, 0)
  t.same(app.websocketRooms.roomNames(), [])

  // The silent client was sent the close frame; it finds it, then the end, once it reads.
  silent.socket.resume()
  t.same(await silent.closeFrame(), { code: 1001, reason: 'server shutting down' })
  await silent.closed
  t.ok(silent.ended, 'the server cut the connection')
})

/** An app whose log lines at warn level and above are kept. */
async function logged (t: Parameters<typeof build>[0], options: WebsocketRoomsOptions, fastifyOptions: FastifyServerOptions = {}): Promise<{ app: FastifyInstance, lines: any[] }> {
  const lines: any[] = []
  const app = await build(t, options, { ...fastifyOptions, logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  return { app, lines }
}

test('a handler that never settles: once the client has gone the session leaves within closeTimeout, and nothing comes back when it settles', async (t) => {
  const closeTimeout = 300
  const { app, lines } = await logged(t, { closeTimeout, maxSessions: 1 })
  const stuck = gate()
  const handled: string[] = []
  const settled = new Events<boolean>()
  const disconnects = new Events<{ code: number, reason: string, rooms: string[] }>()
  app.registerWebsocket('/ws', {
    onOpen (session) { session.room('lobby').join(); session.send('ready') },
    async onMessage (session, text) {
      handled.push(text)
      if (text !== 'hang') return
      await stuck.opened // a database call that never answers
      session.room('late').join()
      session.send('late')
      settled.push(session.isOpen())
    },
    onClose (session, code, reason) { disconnects.push({ code, reason, rooms: session.roomNames() }) }
  })
  const base = await listen(app)
  const client = await ready(base, '/ws')
  client.send('hang')
  client.send('queued behind it')
  await until(() => handled.length === 1)
  const leftAt = performance.now()
  client.ws.close(4000, 'bye')
  await client.closed
  await untilNoSessions(app)
  const after = performance.now() - leftAt
  t.ok(after >= closeTimeout - 5 && after < closeTimeout + 2000, `dropped ${Math.round(after)} ms after the client left`)
  t.same(disconnects.list, [{ code: 4000, reason: 'bye', rooms: ['lobby'] }], 'onClose ran once, with the client\'s code, still a member')
  t.same(app.websocketRooms.roomNames(), [])
  const stuckLines = lines.filter((line) => line.handler !== undefined)
  t.equal(stuckLines.length, 1, 'logged once')
  t.match(stuckLines[0], { level: 50, handler: 'onMessage', sessionId: String, msg: 'onMessage has not settled within closeTimeout (300 ms); the session is dropped without waiting for it' })

  const next = await ready(base, '/ws') // maxSessions: 1, so the place was freed
  stuck.open()
  t.same(await settled.until(1), [false], 'the handler settles late, on a closed session')
  next.send('a round trip, so the queued message would have had its turn')
  await until(() => handled.length === 2)
  t.same(handled, ['hang', 'a round trip, so the queued message would have had its turn'], 'the message queued behind it is never handled')
  t.equal(app.websocketRooms.room('late').members(), 0, 'no late join')
  t.same(app.websocketRooms.roomNames(), ['lobby'])
  t.equal(app.websocketRooms.room('lobby').members(), 1, 'only the new session')
  t.equal(disconnects.list.length, 1)
  t.equal(app.websocketRooms.stats().sessions, 1)
  next.ws.terminate()
})

test('a session paused behind a handler that never settles still sees its client leave (the heartbeat), and is dropped', async (t) => {
  const closeTimeout = 200
  const { app, lines } = await logged(t, { closeTimeout, heartbeatInterval: 100, maxQueuedMessages: 5 })
  app.registerWebsocket('/ws', {
    onConnected (session) { session.room('lobby').join(); session.send('ready') },
    handleText: () => new Promise(() => {})
  })
  const client = await RawClient.connect(await listen(app), '/ws')
  await client.text('ready')
  // Past maxQueuedMessages the socket is paused; past the stream's buffer Node stops reading it.
  for (let i = 0; i < 40; i++) client.send(opcodes.text, `${i} `.padEnd(32 * 1024, '.'))
  await until(() => app.websocketRooms.stats().pausedSessions === 1)
  client.destroy() // gone, and the paused socket reads nothing more: not even the end of the connection
  await untilNoSessions(app)
  t.same(app.websocketRooms.roomNames(), [])
  t.equal(app.websocketRooms.stats().pausedSessions, 0)
  t.match(lines.filter((line) => line.handler !== undefined), [{ handler: 'handleText' }], 'the stuck handler is logged once')
})

for (const how of ['session.close()', 'the backpressure bound'] as const) {
  test(`a client that does not answer a close the server started (${how}) is cut off after closeTimeout`, async (t) => {
    const closeTimeout = 300
    const app = await build(t, { closeTimeout, maxSessions: 1, maxBackpressure: 64 * 1024, heartbeatInterval: 0 })
    const disconnects = new Events<number>()
    app.registerWebsocket('/ws', {
      onConnected (session) { session.room('lobby').join(); session.send('ready') },
      async handleText (session) {
        if (how === 'session.close()') return session.close(4000, 'kicked')
        while (session.isOpen()) { // a client that stops reading: 1013 once the bound is passed
          session.send(Buffer.alloc(64 * 1024))
          await new Promise((resolve) => setImmediate(resolve))
        }
      },
      onDisconnected (_session, code) { disconnects.push(code) }
    })
    const base = await listen(app)
    const client = await RawClient.connect(base, '/ws', { echoClose: false })
    await client.text('ready')
    if (how === 'the backpressure bound') client.socket.pause()
    const startedAt = performance.now()
    client.send(opcodes.text, 'go')
    t.same(await disconnects.until(1), [1006], 'cut off: no close frame came back')
    const after = performance.now() - startedAt
    t.ok(after >= closeTimeout - 5 && after < WS_CLOSE_TIMEOUT, `after ${Math.round(after)} ms (ws alone waits 30 s)`)
    t.equal(app.websocketSessions.size, 0)
    t.same(app.websocketRooms.roomNames(), [])
    const next = await ready(base, '/ws') // maxSessions: 1, so the place was freed
    next.ws.terminate()
    client.destroy()
  })
}

test('an onDisconnected that never settles: the session is dropped after closeTimeout', async (t) => {
  const closeTimeout = 200
  const { app, lines } = await logged(t, { closeTimeout })
  app.registerWebsocket('/ws', {
    onConnected (session) { session.room('lobby').join(); session.send('ready') },
    handleText () {},
    onDisconnected: () => new Promise(() => {})
  })
  const client = await ready(await listen(app), '/ws')
  client.ws.terminate()
  await untilNoSessions(app)
  t.same(app.websocketRooms.roomNames(), [])
  t.match(lines.filter((line) => line.handler !== undefined), [{ handler: 'onDisconnected', msg: /^onDisconnected has not settled within closeTimeout \(200 ms\)/ }])
})

for (const pluginTimeout of [10_000, 0]) {
  test(`app.close() resolves within closeTimeout whatever the handlers do (pluginTimeout ${pluginTimeout})`, async (t) => {
    const closeTimeout = 300
    const { app, lines } = await logged(t, { closeTimeout }, { pluginTimeout })
    const disconnected: string[] = []
    app.registerWebsocket('/ws', {
      onConnected (session) { session.room('all').join(); session.send('ready') },
      handleText: () => new Promise(() => {}),
      onDisconnected (session) {
        const who = session.getParameter('who')!
        disconnected.push(who)
        if (who === 'stuck-in-onDisconnected') return new Promise(() => {})
      }
    })
    const base = await listen(app)
    const inHandler = await ready(base, '/ws?who=stuck-in-handleText')
    inHandler.send('hang')
    const inDisconnected = await ready(base, '/ws?who=stuck-in-onDisconnected')
    const silent = await RawClient.connect(base, '/ws?who=silent', { echoClose: false })
    await silent.text('ready')
    silent.socket.pause()
    await until(() => app.websocketRooms.room('all').members() === 3)

    const startedAt = performance.now()
    await app.close()
    const took = performance.now() - startedAt
    t.ok(took < closeTimeout + 1000, `resolved after ${Math.round(took)} ms`)
    t.same(disconnected.sort(), ['silent', 'stuck-in-handleText', 'stuck-in-onDisconnected'], 'every onDisconnected ran')
    t.same(lines.filter((line) => line.handler !== undefined).map((line) => line.handler).sort(), ['handleText', 'onDisconnected'])
    t.equal(app.websocketSessions.size, 0)
    t.same(await inHandler.closed, { code: 1001, reason: 'server shutting down' })
    await inDisconnected.closed
    silent.destroy()
  })
}

test('closeTimeout, and the adapter\'s connectTimeout, must fit in Fastify\'s pluginTimeout, within which app.close() runs its hooks', async (t) => {
  const register = async (fastifyOptions: FastifyServerOptions, options: WebsocketRoomsOptions): Promise<void> => {
    const app = Fastify(fastifyOptions)
    try {
      await app.register(websocketRooms, options)
    } finally {
      await app.close()
    }
  }
  const invalid = { code: 'FST_WS_ROOMS_INVALID_OPTION' }
  await t.rejects(register({ pluginTimeout: 10_000 }, { closeTimeout: 12_000 }), {
    ...invalid, message: 'fastify-websocket-rooms: option "closeTimeout" must be less than Fastify\'s pluginTimeout (10000 ms) minus 1000 ms, as app.close() must end within it, got number 12000'
  })
  await t.rejects(register({ pluginTimeout: 4000 }, {}), { ...invalid, message: /"closeTimeout" must be less than Fastify's pluginTimeout \(4000 ms\).* got number 5000/ }, 'the default too')
  await t.rejects(register({ pluginTimeout: 4000 }, { closeTimeout: 1000, adapter: redisAdapter({ url: 'redis://127.0.0.1:1', connectTimeout: 5000 }) }), {
    ...invalid, message: /"redisAdapter connectTimeout" must be less than Fastify's pluginTimeout \(4000 ms\)/
  })
  await register({ pluginTimeout: 4000 }, { closeTimeout: 2999 })
  await register({ pluginTimeout: 0 }, { closeTimeout: 60_000 }) // no limit
  t.pass('values that fit are accepted')
})

test('300 clients in random rooms leave, half cleanly and half abruptly, and leave nothing behind', async (t) => {
  const app = await build(t)
  const rooms = ['red', 'green', 'blue', 'gold']
  const codes = new Events<number>()
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room(session.getParameter('room')!).join()
      session.room('everyone').join()
      session.send('ready')
    },
    onDisconnected (_session, code) { codes.push(code) }
  })
  const base = await listen(app)
  const picks = Array.from({ length: 300 }, () => rooms[Math.floor(Math.random() * rooms.length)]!)
  const clients = await Promise.all(picks.map((room) => ready(base, `/ws?room=${room}`)))
  t.equal(app.websocketSessions.size, 300)
  t.equal(app.websocketRooms.room('everyone').members(), 300)
  for (const room of rooms) t.equal(app.websocketRooms.room(room).members(), picks.filter((pick) => pick === room).length, `${room} has its members`)

  clients.forEach((client, i) => { if (i % 2 === 0) client.ws.close(1000); else client.ws.terminate() })
  const all = await codes.until(300)
  t.equal(all.filter((code) => code === 1000).length, 150, '150 clean closes')
  t.equal(all.filter((code) => code === 1006).length, 150, '150 abrupt ends')
  await untilNoSessions(app)
  t.same(app.websocketRooms.roomNames(), [], 'no room is left')
  for (const room of [...rooms, 'everyone']) t.equal(app.websocketRooms.room(room).members(), 0)
})

test('clients come and go while others broadcast', async (t) => {
  const app = await build(t)
  const churned = new Events<number>()
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('busy').join()
      session.send('ready')
    },
    handleText (session, text) { session.room('busy').broadcast(text) },
    onDisconnected (session, code) { if (session.getParameter('role') === 'churn') churned.push(code) }
  })
  const base = await listen(app)
  const SPEAKERS = 10
  const MESSAGES = 30
  const CHURN = 200
  const speakers = await Promise.all(Array.from({ length: SPEAKERS }, () => ready(base, '/ws?role=speaker')))
  // Each speaker sends its next message once its previous one came back through the room.
  speakers.forEach((speaker, i) => {
    let k = 0
    speaker.ws.on('message', (data) => { if (String(data) === `${i}:${k}` && ++k < MESSAGES) speaker.send(`${i}:${k}`) })
    speaker.send(`${i}:0`)
  })
  // Meanwhile clients join the room and leave at once or after a message of their own came
  // back, with a close frame or none.
  const churn = Array.from({ length: CHURN }, async (_, i) => {
    const client = await connect(base, '/ws?role=churn')
    if (i % 4 >= 2) {
      const echoed = new Promise<void>((resolve) => client.ws.on('message', (data) => { if (String(data) === `churn:${i}`) resolve() }))
      client.send(`churn:${i}`)
      await echoed
    }
    if (i % 2 === 0) await client.close()
    else client.ws.terminate()
  })
  await Promise.all(churn)
  const codes = await churned.until(CHURN)
  t.equal(codes.filter((code) => code === 1005).length, CHURN / 2)
  t.equal(codes.filter((code) => code === 1006).length, CHURN / 2)

  const expected = 1 + SPEAKERS * MESSAGES + CHURN / 2
  for (const speaker of speakers) {
    const texts = (await speaker.texts(expected)).slice(1)
    for (let i = 0; i < SPEAKERS; i++) {
      t.same(texts.filter((text) => text.startsWith(`${i}:`)), Array.from({ length: MESSAGES }, (_, k) => `${i}:${k}`))
    }
    t.equal(texts.filter((text) => text.startsWith('churn:')).length, CHURN / 2)
  }
  await until(() => app.websocketSessions.size === SPEAKERS)
  t.same(app.websocketRooms.roomNames(), ['busy'])
  t.equal(app.websocketRooms.room('busy').members(), SPEAKERS)

  await app.close()
  for (const speaker of speakers) t.same(await speaker.closed, { code: 1001, reason: 'server shutting down' })
  t.equal(app.websocketSessions.size, 0)
  t.same(app.websocketRooms.roomNames(), [])
})

test('an onDisconnected that throws or rejects is logged and still leaves nothing behind', async (t) => {
  const lines: any[] = []
  const app = await build(t, {}, { logger: { level: 'error', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('lobby').join()
      session.room(session.getParameter('mode')!).join()
      session.send('in')
    },
    onDisconnected (session) {
      if (session.getParameter('mode') === 'throw') throw new Error('sync failure')
      return Promise.reject(new Error('async failure'))
    }
  })
  const base = await listen(app)
  const clients = await Promise.all([connect(base, '/ws?mode=throw'), connect(base, '/ws?mode=reject')])
  await Promise.all(clients.map((client) => client.texts(1)))
  t.equal(app.websocketRooms.room('lobby').members(), 2)
  await Promise.all(clients.map((client) => client.close()))
  await untilNoSessions(app)
  t.same(app.websocketRooms.roomNames(), [], 'no room is left')
  const failures = lines.filter((line) => line.msg === 'onDisconnected failed')
  t.same(failures.map((line) => line.err.message).sort(), ['async failure', 'sync failure'])
  t.ok(failures.every((line) => typeof line.sessionId === 'string'), 'logged with the session id')
})

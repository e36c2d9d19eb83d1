// Rooms: joining and leaving, broadcasting from a session and from the server, counts,
// lifetime of a room, and what a bad room name gets.
import { test } from 'tap'
import type { WebSocketSession } from 'fastify-websocket-rooms'
import { build, checkInterleavedBurst, connect, listen, throwsLike, until, untilNoSessions } from './helpers'

test('join and leave are idempotent; a room exists while it has members', async (t) => {
  const app = await build(t)
  let done!: () => void
  const checked = new Promise<void>((resolve) => { done = resolve })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      const lobby = session.room('lobby')
      t.equal(lobby.getName(), 'lobby')
      t.equal(lobby.members(), 0)
      t.equal(lobby.has(), false)
      t.same(app.websocketRooms.roomNames(), [], 'a handle does not join')
      lobby.join().join()
      t.equal(lobby.members(), 1)
      t.equal(lobby.has(), true)
      t.same(app.websocketRooms.roomNames(), ['lobby'])
      session.room('other').join()
      t.same(session.roomNames().sort(), ['lobby', 'other'])
      lobby.leave().leave()
      t.equal(lobby.members(), 0)
      t.same(app.websocketRooms.roomNames(), ['other'], 'an empty room is deleted')
      session.room('never-joined').leave()
      t.same(session.roomNames(), ['other'])
      done()
    }
  })
  await connect(await listen(app), '/ws')
  await checked
})

test('broadcast reaches every member, the sender too; broadcastExcept skips the sender', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room(session.getParameter('room')!).join()
      session.send('joined')
    },
    handleText (session, text) {
      const [kind, room, payload] = text.split(':') as [string, string, string]
      if (kind === 'all') session.room(room).broadcast(payload)
      else session.room(room).broadcastExcept(payload)
    }
  })
  const base = await listen(app)
  const [a, b, c] = await Promise.all(['red', 'red', 'blue'].map((room) => connect(base, `/ws?room=${room}`)))
  await Promise.all([a!.texts(1), b!.texts(1), c!.texts(1)])
  a!.send('all:red:one')
  t.same(await a!.texts(2), ['joined', 'one'])
  t.same(await b!.texts(2), ['joined', 'one'])
  a!.send('except:red:two')
  t.same(await b!.texts(3), ['joined', 'one', 'two'])
  // A sender that is not a member reaches the members only.
  c!.send('all:red:three')
  t.same(await a!.texts(3), ['joined', 'one', 'three'])
  t.same(await b!.texts(4), ['joined', 'one', 'two', 'three'])
  // Ordering on one connection: 'three' came after 'one' on a; nothing else reached c.
  c!.send('all:blue:own')
  t.same(await c!.texts(2), ['joined', 'own'])
  t.same(a!.received.map((m) => m.data), ['joined', 'one', 'three'])
})

test('binary broadcasts go out as binary frames, strings as text', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('r').join()
      if (session.getParameter('sender') !== null) {
        session.room('r').broadcastExcept(Buffer.from([1, 2]))
        session.room('r').broadcastExcept(new Uint8Array([3]))
        session.room('r').broadcastExcept('text')
      }
    }
  })
  const base = await listen(app)
  const receiver = await connect(base, '/ws')
  await connect(base, '/ws?sender')
  const messages = await receiver.messages(3)
  t.same(messages.map((m) => m.binary), [true, true, false])
  t.same([...messages[0]!.data as Buffer], [1, 2])
  t.same([...messages[1]!.data as Buffer], [3])
  t.equal(messages[2]!.data, 'text')
})

test('a room name that is not a non-empty, well-formed string is a TypeError; a bad message too', async (t) => {
  const app = await build(t)
  let done!: () => void
  const checked = new Promise<void>((resolve) => { done = resolve })
  // Lone surrogates, as JSON.parse('"\\ud800x"') gives them from any client's message.
  const loneSurrogates = ['\ud800x', 'x\udfff', '\udc00\ud800']
  app.registerWebsocket('/ws', {
    onConnected (session) {
      for (const name of ['', undefined, null, 42, {}, ...loneSurrogates]) {
        throwsLike(t, () => session.room(name as any), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /room name must be a non-empty, well-formed string \(no lone surrogate\)/ })
        throwsLike(t, () => app.websocketRooms.room(name as any), TypeError, { message: /room name must be a non-empty, well-formed string/ })
      }
      t.same(['\ufffdx', '😀', '\ud83d\ude00x'].map((name) => session.room(name).join().getName()), ['\ufffdx', '😀', '😀x'], 'well-formed names, astral characters included, are rooms')
      for (const name of ['\ufffdx', '😀', '😀x']) session.room(name).leave()
      session.room('r').join()
      throwsLike(t, () => session.room('r').broadcast(42 as any), TypeError, { message: /message must be a string, a Buffer/ })
      throwsLike(t, () => app.websocketRooms.room('empty').broadcast({} as any), TypeError, { message: /message must be/ })
      done()
    }
  })
  await connect(await listen(app), '/ws')
  await checked
})

test('the server side reaches rooms from HTTP routes', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('news').join()
      session.send('ready')
    }
  })
  app.post('/announce', async (request) => {
    const room = app.websocketRooms.room('news')
    room.broadcast(request.body as string)
    return { room: room.getName(), members: room.members(), ids: room.sessions().map((s) => s.id).sort() }
  })
  const base = await listen(app)
  const clients = await Promise.all([1, 2, 3].map(() => connect(base, '/ws')))
  await Promise.all(clients.map((client) => client.texts(1)))
  const response = await app.inject({ method: 'POST', url: '/announce', payload: 'breaking', headers: { 'content-type': 'text/plain' } })
  t.same(response.json(), { room: 'news', members: 3, ids: [...app.websocketSessions.keys()].sort() })
  for (const client of clients) t.same(await client.texts(2), ['ready', 'breaking'])
  t.equal(app.websocketRooms.room('nobody').members(), 0)
  t.same(app.websocketRooms.room('nobody').sessions(), [])
  app.websocketRooms.room('nobody').broadcast('into the void')
})

test('memberships end after onDisconnected returns; inside it the session still counts', async (t) => {
  const app = await build(t)
  const countsInside: number[] = []
  let left!: () => void
  const goodbyeHandled = new Promise<void>((resolve) => { left = resolve })
  app.registerWebsocket('/ws', {
    onOpen (session) {
      session.setAttribute('user', session.getParameter('user'))
      session.room('chat').join()
      session.room(`private-${session.getParameter('user')!}`).join()
      session.send('in')
    },
    async onClose (session: WebSocketSession) {
      countsInside.push(session.room('chat').members())
      await Promise.resolve()
      session.room('chat').broadcastExcept(`bye from ${String(session.getAttribute('user'))}`)
      left()
    }
  })
  const base = await listen(app)
  const alice = await connect(base, '/ws?user=alice')
  const bob = await connect(base, '/ws?user=bob')
  await Promise.all([alice.texts(1), bob.texts(1)])
  t.same(app.websocketRooms.roomNames().sort(), ['chat', 'private-alice', 'private-bob'])
  await alice.close()
  await goodbyeHandled
  t.same(await bob.texts(2), ['in', 'bye from alice'])
  t.same(countsInside, [2])
  await until(() => app.websocketSessions.size === 1)
  t.equal(app.websocketRooms.room('chat').members(), 1)
  t.same(app.websocketRooms.roomNames().sort(), ['chat', 'private-bob'])
  t.same(alice.received.map((m) => m.data), ['in'], 'broadcastExcept skipped the leaving session')
})

test('a closing or closed session joins nothing, so nothing is left behind', async (t) => {
  const app = await build(t)
  let finished!: () => void
  const done = new Promise<void>((resolve) => { finished = resolve })
  let late: WebSocketSession | undefined
  app.registerWebsocket('/ws', {
    async onConnected (session) {
      late = session
      session.close()
      session.room('after-close').join()
    },
    onDisconnected (session) {
      session.room('in-disconnect').join()
      finished()
    }
  })
  const client = await connect(await listen(app), '/ws')
  await client.closed
  await done
  await untilNoSessions(app)
  late!.room('after-finish').join()
  t.same(app.websocketRooms.roomNames(), [])
  t.same(late!.roomNames(), [])
})

test('app.websocketSessions lists open sessions by id', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', { onConnected (session) { session.send(session.id) } })
  const base = await listen(app)
  const a = await connect(base, '/ws')
  const [id] = await a.texts(1)
  t.equal(app.websocketSessions.size, 1)
  t.equal(app.websocketSessions.get(id!)!.id, id)
  t.equal(app.websocketSessions.has(id!), true)
  t.same([...app.websocketSessions].map(([key]) => key), [id])
  t.notOk('set' in app.websocketSessions || 'delete' in app.websocketSessions || 'clear' in app.websocketSessions)
  await a.close()
  await untilNoSessions(app)
  t.equal(app.websocketSessions.has(id!), false)
})

test('a burst of broadcasts and direct sends in one tick arrives whole and in order, at every frame size', async (t) => {
  await checkInterleavedBurst(t, await build(t), [0, 1, 125, 126, 65535, 65536, 16 * 1024, 16 * 1024 + 1, 200_000])
})

test('broadcasts reach a client that negotiated permessage-deflate (ws frames them itself)', async (t) => {
  const app = await build(t, { websocketOptions: { perMessageDeflate: true } })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('r').join()
      session.room('r').broadcast('compressed '.repeat(100))
      session.room('r').broadcast(Buffer.alloc(2000, 1))
    }
  })
  const base = await listen(app)
  const deflating = await connect(base, '/ws', { perMessageDeflate: true })
  const plain = await connect(base, '/ws', { perMessageDeflate: false })
  t.equal(deflating.ws.extensions, 'permessage-deflate')
  t.equal(plain.ws.extensions, '')
  const [text, binary] = await deflating.messages(2)
  t.equal(text!.data, 'compressed '.repeat(100))
  t.same([binary!.binary, (binary!.data as Buffer).length], [true, 2000])
  t.same((await plain.texts(1))[0], 'compressed '.repeat(100))
})

test('one room, then several, then one again: membership, has() and roomNames() agree; closing leaves them all', async (t) => {
  const app = await build(t, { maxRoomsPerSession: 2 })
  let done!: () => void
  const checked = new Promise<void>((resolve) => { done = resolve })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      const [a, b, c] = ['a', 'b', 'c'].map((name) => session.room(name))
      a!.join().join()
      t.same(session.roomNames(), ['a'])
      t.equal(a!.has(), true)
      t.equal(b!.has(), false)
      b!.leave()
      t.same(session.roomNames(), ['a'], 'leaving another room leaves this one alone')
      b!.join()
      t.same(session.roomNames(), ['a', 'b'])
      t.equal(b!.has(), true)
      t.throws(() => c!.join(), { code: 'FST_WS_ROOMS_TOO_MANY_ROOMS' })
      a!.leave()
      t.same(session.roomNames(), ['b'])
      t.equal(a!.has(), false)
      t.equal(a!.members(), 0)
      b!.leave()
      t.same(session.roomNames(), [])
      a!.join()
      c!.join()
      t.same(session.roomNames(), ['a', 'c'])
      done()
    }
  })
  const base = await listen(app)
  const client = await connect(base, '/ws')
  await checked
  t.same(app.websocketRooms.roomNames().sort(), ['a', 'c'])
  client.close()
  await untilNoSessions(app)
  t.same(app.websocketRooms.roomNames(), [], 'a closed session leaves its rooms')
})

test('maxRoomsPerSession: 1 allows one room', async (t) => {
  const app = await build(t, { maxRoomsPerSession: 1 })
  let done!: () => void
  const checked = new Promise<void>((resolve) => { done = resolve })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('a').join().join()
      t.throws(() => session.room('b').join(), { code: 'FST_WS_ROOMS_TOO_MANY_ROOMS' })
      t.same(session.roomNames(), ['a'])
      session.room('a').leave()
      session.room('b').join()
      t.same(session.roomNames(), ['b'])
      done()
    }
  })
  const client = await connect(await listen(app), '/ws')
  await checked
  client.close()
  await untilNoSessions(app)
  t.same(app.websocketRooms.roomNames(), [])
})

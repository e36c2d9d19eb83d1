// Limits for hostile or slow clients: the heartbeat, the outbound backpressure bound, inbound
// flow control, the per-session rate limit, their option checks, and the traffic counters of
// app.websocketRooms.stats(). Real sockets on loopback: raw TCP clients play the peer that
// never answers a ping (a real client answers them by itself) and the one that never reads.
import Fastify from 'fastify'
import { test } from 'tap'
import WebSocket from 'ws'
import websocketRooms from 'fastify-websocket-rooms'
import type { WebSocketSession } from 'fastify-websocket-rooms'
import { build, connect, listen, throwsLike, until } from './helpers'
import { RawClient, buildFrame, opcodes, type ServerFrame } from './raw-client'
import { Events, gate } from './signals'

const SIZE = 64 * 1024
const BOUND = 4 * SIZE
/** Most messages a flood sends: 64 MiB, far more than loopback buffers hold for a peer that does not read. */
const CAP = 1024

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)
/** A binary message of `size` bytes that starts with its number. */
function numbered (i: number, size = SIZE): Buffer {
  const data = Buffer.alloc(size)
  data.writeUInt32BE(i)
  return data
}
const isPing = (frame: ServerFrame): boolean => frame.opcode === opcodes.ping
/** The next turn of the event loop: the bound applies to what is left from earlier turns. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
/** The numbers of the binary messages a raw client received. */
const numbers = (client: RawClient): number[] => client.frames.filter((f) => f.opcode === opcodes.binary).map((f) => f.payload.readUInt32BE(0))

test('heartbeat: a client that never answers pings is cut off, one that answers stays', async (t) => {
  // The ws client answers each ping at once; the server sees the pong when it next reads, which
  // a busy machine may hold off for a good part of a short interval (and the beat's timer runs
  // before the read): 1 s keeps this about the clients, not about the machine.
  const app = await build(t, { heartbeatInterval: 1000 })
  const pongs = new Events<string>()
  const disconnects = new Events<{ code: number, rooms: string[] }>()
  app.registerWebsocket('/ws', {
    onConnected (session) { session.room('lobby').join() },
    onPong (session) { pongs.push(session.id) },
    onDisconnected (session, code) { disconnects.push({ code, rooms: session.roomNames() }) }
  })
  const base = await listen(app)
  const lobby = app.websocketRooms.room('lobby')
  const live = await connect(base, '/ws') // ws answers every ping with a pong
  await until(() => lobby.members() === 1)
  const mute = await RawClient.connect(base, '/ws') // reads the pings, answers none

  t.same(await disconnects.until(1), [{ code: 1006, rooms: ['lobby'] }], 'onDisconnected ran with 1006, still a member')
  await mute.closed
  t.equal(mute.frames.filter(isPing).length, 1, 'one ping went unanswered, the next beat cut it off')
  t.equal(lobby.members(), 1, 'it left its rooms')
  t.equal(app.websocketRooms.stats().closed.heartbeat, 1)

  // Two more beats answered: the ws client is still there.
  const seen = pongs.list.length
  await pongs.until(seen + 2)
  t.equal(live.ws.readyState, WebSocket.OPEN)
  t.equal(disconnects.list.length, 1)
  t.same([app.websocketSessions.size, lobby.members(), app.websocketRooms.stats().closed.heartbeat], [1, 1, 1])
})

test('heartbeat: a live client whose pong waits behind its own messages, while a slow handler holds them, is not cut off', async (t) => {
  const app = await build(t, { heartbeatInterval: 100 })
  const release = gate()
  let handled = 0
  app.registerWebsocket('/ws', {
    async handleText (_session, text) {
      if (text === 'hang') await release.opened
      else await new Promise((resolve) => setImmediate(resolve)) // a backlog that takes many turns to drain
      handled++
    }
  })
  const client = await RawClient.connect(await listen(app), '/ws')
  const pings = (): number => client.frames.filter(isPing).length
  client.send(opcodes.text, 'hang')
  for (let i = 0; i < 300; i++) client.send(opcodes.text, `${i} `.padEnd(16 * 1024, '.'))
  await until(() => app.websocketRooms.stats().pausedSessions === 1, () => JSON.stringify(app.websocketRooms.stats()))
  const before = pings()
  await until(() => pings() >= before + 3) // paused sessions are still pinged
  for (let i = 0; i < 3; i++) client.send(opcodes.pong) // answered, behind the client's own messages
  release.open()
  await until(() => handled === 301 || app.websocketSessions.size === 0)
  t.equal(handled, 301, 'every message was handled')
  t.equal(app.websocketRooms.stats().closed.heartbeat, 0, 'not cut off')
  t.equal(app.websocketSessions.size, 1)
  client.destroy()
})

test('heartbeatInterval 0 sends no pings', async (t) => {
  const off = await build(t, { heartbeatInterval: 0 })
  off.registerWebsocket('/ws', { handleText (session, text) { session.send(text) } })
  const quiet = await RawClient.connect(await listen(off), '/ws') // would be cut off by a heartbeat
  // Another app's heartbeat marks the time: its mute client is cut off two beats after it
  // connected, after the quiet one, so more than one interval has passed for both.
  const on = await build(t, { heartbeatInterval: 10 })
  on.registerWebsocket('/ws', { onPong () {} })
  const marker = await RawClient.connect(await listen(on), '/ws')
  await marker.closed
  t.equal(marker.frames.filter(isPing).length, 1)
  for (const text of ['a', 'b', 'c', 'd', 'e']) {
    quiet.send(opcodes.text, text)
    await quiet.text(text)
  }
  t.equal(quiet.frames.filter(isPing).length, 0, 'no ping frame')
  t.equal(quiet.frames.length, 5, 'only the echoes')
  t.equal(off.websocketSessions.size, 1, 'not cut off')
})

test('backpressure "close": a client that does not read is closed with 1013 and nothing more is queued', async (t) => {
  const app = await build(t, { maxBackpressure: BOUND })
  const overflows: number[] = []
  const disconnects = new Events<number>()
  let attempted = 0
  let bufferedAfter = -1
  app.registerWebsocket('/ws', {
    async handleText (session) {
      // One message a turn, so what the client has not taken builds up from turn to turn.
      while (session.isOpen() && attempted < CAP) {
        session.send(numbered(attempted++))
        await nextTurn()
      }
      bufferedAfter = session.bufferedAmount
    },
    onBackpressure (session, bufferedAmount) { overflows.push(bufferedAmount === session.bufferedAmount ? bufferedAmount : NaN) },
    onDisconnected (session, code) { disconnects.push(code) }
  })
  const client = await RawClient.connect(await listen(app), '/ws')
  client.socket.pause() // reads nothing: the kernel's buffers fill, then the server's
  client.send(opcodes.text, 'flood')
  await until(() => bufferedAfter !== -1)

  t.ok(attempted < CAP, `the bound was reached after ${attempted} messages`)
  t.equal(overflows.length, 1, 'onBackpressure ran once: the session was closing after it')
  t.ok(overflows[0]! + SIZE > BOUND && overflows[0]! <= BOUND + SIZE, `bufferedAmount ${overflows[0]} at the overflow`)
  t.ok(bufferedAfter < BOUND + SIZE, `bufferedAmount ${bufferedAfter} stays under maxBackpressure + one message`)
  const stats = app.websocketRooms.stats()
  t.same([stats.closed.backpressure, stats.dropped.backpressure, stats.messagesOut], [1, 0, attempted - 1])

  client.socket.resume()
  t.same(await client.closeFrame(), { code: 1013, reason: 'send buffer full' })
  t.same(numbers(client), range(attempted - 1), 'every message sent before the bound, in order')
  t.same(await disconnects.until(1), [1013])
})

test('a send from inside onBackpressure that overflows again is dropped without calling it again', async (t) => {
  const app = await build(t, { maxBackpressure: BOUND, backpressurePolicy: 'drop' })
  let calls = 0
  let attempted = 0
  app.registerWebsocket('/ws', {
    async handleText (session) {
      // onBackpressure, called from inside send(), ends the loop.
      while (attempted < CAP) {
        session.send(numbered(attempted++))
        if (calls > 0) break
        await nextTurn()
      }
    },
    onBackpressure (session) {
      calls++
      session.send(numbered(0))
    }
  })
  const client = await RawClient.connect(await listen(app), '/ws')
  client.socket.pause()
  client.send(opcodes.text, 'flood')
  await until(() => calls === 1)
  t.equal(calls, 1, 'one call for the outer overflow, none for the nested one')
  t.equal(app.websocketRooms.stats().dropped.backpressure, 2, 'both messages dropped and counted')
  client.destroy()
})

test('an onBackpressure that throws or rejects is logged, and the policy still applies', async (t) => {
  const lines: any[] = []
  const app = await build(t, { maxBackpressure: BOUND }, { logger: { level: 'error', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  app.registerWebsocket('/ws', {
    async handleText (session) {
      while (session.isOpen()) {
        session.send(numbered(0))
        await nextTurn()
      }
    },
    onBackpressure (session) {
      // An async handler: its rejection would end the process if nobody caught it.
      if (session.getParameter('how') === 'throw') throw new Error('sync failure')
      return Promise.reject(new Error('async failure'))
    },
  })
  const base = await listen(app)
  const clients = await Promise.all([RawClient.connect(base, '/ws?how=throw'), RawClient.connect(base, '/ws?how=reject')])
  for (const client of clients) {
    client.socket.pause()
    client.send(opcodes.text, 'flood')
  }
  await until(() => app.websocketRooms.stats().closed.backpressure === 2)
  const failures = lines.filter((line) => line.msg === 'onBackpressure failed')
  t.same(failures.map((line) => line.err.message).sort(), ['async failure', 'sync failure'])
  for (const client of clients) client.destroy()
})

test('backpressure "drop" set on the route overrides the plugin: messages past the bound are dropped, the session stays', async (t) => {
  const app = await build(t, { maxBackpressure: 1024 ** 3, backpressurePolicy: 'close' })
  const overflows: number[] = []
  let attempted = 0
  app.registerWebsocket('/ws', {
    maxBackpressure: BOUND,
    backpressurePolicy: 'drop',
    async handleText (session, text) {
      if (text !== 'flood') return session.send(`echo:${text}`)
      while (overflows.length < 3 && attempted < CAP) {
        session.send(numbered(attempted++))
        await nextTurn()
      }
    },
    onBackpressure (session, bufferedAmount) { overflows.push(bufferedAmount) }
  })
  const client = await RawClient.connect(await listen(app), '/ws')
  client.socket.pause()
  client.send(opcodes.text, 'flood')
  await until(() => overflows.length === 3)

  t.ok(attempted < CAP, `the route's bound was reached after ${attempted} messages`)
  t.ok(overflows.every((buffered) => buffered + SIZE > BOUND && buffered <= BOUND + SIZE), 'onBackpressure got the bufferedAmount')
  let stats = app.websocketRooms.stats()
  t.same([stats.dropped.backpressure, stats.closed.backpressure, stats.messagesOut], [3, 0, attempted - 3])

  client.socket.resume()
  await until(() => numbers(client).length === attempted - 3)
  t.same(numbers(client), range(attempted - 3), 'the messages before the bound arrive; the last three were dropped')
  client.send(opcodes.text, 'still there')
  await client.text('echo:still there')
  stats = app.websocketRooms.stats()
  t.equal(stats.sessions, 1)
  t.equal(stats.dropped.backpressure, 3)
})

// What a client has not taken from earlier turns is what the bound is about: the app's own
// burst in one turn (a history replay, a snapshot in pieces) is written in one go, whatever
// its size, and a client that reads it all is neither closed nor dropped for.
for (const policy of ['close', 'drop'] as const) {
  test(`a burst past maxBackpressure in one turn reaches a client that reads it all (policy "${policy}")`, async (t) => {
    const app = await build(t, { backpressurePolicy: policy }) // the default bound, 1 MiB
    app.registerWebsocket('/ws', {
      onConnected (session) { session.room('feed').join() },
      handleText (session) {
        for (let i = 0; i < 300; i++) session.send(`${'z'.repeat(16384)}${i}`)
      }
    })
    const client = await connect(await listen(app), '/ws')
    const feed = app.websocketRooms.room('feed')
    await until(() => feed.members() === 1)
    for (let i = 0; i < 300; i++) feed.broadcast(`${'y'.repeat(16384)}${i}`) // 4.8 MiB in one turn
    await client.texts(300)
    client.send('and one of your own') // the same through session.send()
    const texts = await client.texts(600)
    t.same(texts.map((text) => text[0] + text.slice(16384)), [...range(300).map((i) => `y${i}`), ...range(300).map((i) => `z${i}`)], 'every message, in order')
    const stats = app.websocketRooms.stats()
    t.same([stats.closed.backpressure, stats.dropped.backpressure, stats.messagesOut], [0, 0, 600])
    t.equal(client.ws.readyState, WebSocket.OPEN)
  })
}

test('a client that stops reading holds at most maxBackpressure plus one turn\'s writes, and is closed at the first turn past the bound', async (t) => {
  const app = await build(t, { maxBackpressure: BOUND })
  const BURST = 8 // messages a turn: 512 KiB, twice the bound
  const leftovers: number[] = []
  let bufferedAfter = -1
  let attempted = 0
  app.registerWebsocket('/ws', {
    async handleText (session) {
      while (session.isOpen() && attempted < CAP) {
        leftovers.push(session.bufferedAmount)
        for (let i = 0; i < BURST; i++) session.send(numbered(attempted++))
        bufferedAfter = Math.max(bufferedAfter, session.bufferedAmount)
        await nextTurn()
      }
    }
  })
  const client = await RawClient.connect(await listen(app), '/ws')
  client.socket.pause()
  client.send(opcodes.text, 'flood')
  const closed = client.closeFrame()
  await until(() => app.websocketRooms.stats().closed.backpressure === 1)

  const last = leftovers.at(-1)!
  t.ok(last + SIZE > BOUND, `closed in the turn that began with ${last} bytes left over`)
  t.ok(leftovers.slice(0, -1).every((left) => left === 0 || left + SIZE <= BOUND), 'not before: every earlier turn began under the bound')
  t.ok(bufferedAfter <= BOUND + BURST * SIZE, `at most maxBackpressure + one turn's writes buffered (${bufferedAfter})`)
  t.ok(attempted < CAP)
  client.socket.resume()
  t.same(await closed, { code: 1013, reason: 'send buffer full' })
  const received = numbers(client)
  t.same(received, range(received.length), 'what was sent arrives in order')
  t.equal(received.length, app.websocketRooms.stats().messagesOut)
})

// A turn's burst is the app's, but a client can make a turn big: many small requests in one
// TCP segment, each answered at once with a large reply. The burst has a bound of its own.
for (const policy of ['close', 'drop'] as const) {
  test(`one segment of requests whose replies pass 16 × maxBackpressure is bounded (policy "${policy}")`, async (t) => {
    const app = await build(t, { maxBackpressure: BOUND, backpressurePolicy: policy })
    const REQUESTS = 200 // 12.5 MiB of replies if nothing bounded them
    app.registerWebsocket('/ws', { handleText (session) { session.send(numbered(0)) } })
    const client = await RawClient.connect(await listen(app), '/ws')
    client.socket.pause()
    client.write(range(REQUESTS).map(() => buildFrame(opcodes.text, 'more', { mask: true })))
    const done = policy === 'close'
      ? () => app.websocketRooms.stats().closed.backpressure === 1
      : () => app.websocketRooms.stats().dropped.backpressure + app.websocketRooms.stats().messagesOut === REQUESTS
    await until(done)
    const stats = app.websocketRooms.stats()
    t.ok(stats.messagesOut <= 16 * BOUND / SIZE, `at most 16 × maxBackpressure written (${stats.messagesOut} replies of ${SIZE} bytes)`)
    if (policy === 'drop') t.equal(app.websocketSessions.size, 1, 'the session stays')
    client.destroy()
  })
}

test('a message bigger than maxBackpressure still reaches a client with nothing queued', async (t) => {
  const app = await build(t, { maxBackpressure: 1024 })
  app.registerWebsocket('/ws', { handleText (session, text) { session.send(`You said: ${text}`) } })
  const client = await connect(await listen(app), '/ws')
  client.send('x'.repeat(1024))
  t.same(await client.texts(1), [`You said: ${'x'.repeat(1024)}`])
  t.equal(client.ws.readyState, WebSocket.OPEN)
  t.same(app.websocketRooms.stats().closed, { heartbeat: 0, backpressure: 0, rateLimit: 0, unsupportedData: 0, handlerError: 0, invalidMessage: 0 })
})

test('one slow reader does not hold up the other members of its room', async (t) => {
  const app = await build(t, { maxBackpressure: BOUND })
  const disconnects = new Events<number>()
  app.registerWebsocket('/ws', {
    onConnected (session) { session.room('room').join() },
    onDisconnected (session, code) { disconnects.push(code) }
  })
  const base = await listen(app)
  const slow = await RawClient.connect(base, '/ws')
  slow.socket.pause()
  const fast = await connect(base, '/ws')
  const room = app.websocketRooms.room('room')
  await until(() => room.members() === 2)

  // Broadcast, one message at a time, until the slow reader's bound is passed, then 10 more.
  let sent = 0
  let overflowAt = 0
  while (sent < CAP && (overflowAt === 0 || sent < overflowAt + 10)) {
    room.broadcast(numbered(sent++))
    await fast.messages(sent)
    if (overflowAt === 0 && app.websocketRooms.stats().closed.backpressure === 1) overflowAt = sent
  }
  t.ok(overflowAt > 0, `broadcast ${overflowAt} passed the slow reader's bound`)
  t.equal(app.websocketRooms.stats().closed.backpressure, 1)
  t.same(fast.received.map((m) => (m.data as Buffer).readUInt32BE(0)), range(sent), 'the fast client got every broadcast, in order')

  slow.socket.resume()
  t.same(await slow.closeFrame(), { code: 1013, reason: 'send buffer full' })
  t.same(await disconnects.until(1), [1013])
  t.same(numbers(slow), range(overflowAt - 1), 'the slow reader got the broadcasts before its bound only')
  t.equal(room.members(), 1)
  room.broadcast('after')
  t.equal((await fast.messages(sent + 1))[sent]!.data, 'after')
})

test('inbound flow control: a slow handler pauses reading past maxQueuedMessages, then every message is handled in order', async (t) => {
  const app = await build(t, { maxQueuedMessages: 4 })
  const { opened, open } = gate()
  const handled: number[] = []
  app.registerWebsocket('/ws', {
    async handleBinary (session, data) {
      await opened
      handled.push(data.readUInt32BE(0))
    }
  })
  const client = await connect(await listen(app), '/ws')
  const N = 200 // 16 KiB each: 3.2 MiB in all
  for (let i = 0; i < N; i++) client.send(numbered(i, 16 * 1024))

  await until(() => app.websocketRooms.stats().pausedSessions === 1)
  const { messagesIn } = app.websocketRooms.stats()
  t.ok(messagesIn < N, `the server read ${messagesIn} of ${N} messages, then stopped`)
  const [session] = app.websocketSessions.values()
  const tcp = session!.request.raw.socket
  t.ok(session!.socket.isPaused, 'the WebSocket is paused')
  t.equal(tcp.readableFlowing, false, 'and its TCP socket is not read')
  // The rest of the messages is on its way: bytes that wait in the TCP socket's buffer were
  // received after the pause, and would have reached ws had it still been reading.
  await until(() => tcp.readableLength > 0, 'bytes waiting in the paused TCP socket')
  t.equal(app.websocketRooms.stats().messagesIn, messagesIn, 'nothing more is read while paused')
  t.equal(handled.length, 0)
  t.equal(app.websocketRooms.stats().pausedSessions, 1)

  open()
  await until(() => handled.length === N)
  t.same(handled, range(N), 'every message handled, in order, none lost')
  const stats = app.websocketRooms.stats()
  t.same([stats.pausedSessions, stats.messagesIn, client.ws.readyState], [0, N, WebSocket.OPEN])
})

test('rateLimit: past max messages in an interval the session is closed with 1008', async (t) => {
  const app = await build(t, { rateLimit: { max: 3, interval: 60_000 } })
  const disconnects = new Events<number>()
  app.registerWebsocket('/ws', {
    handleText (session, text) { session.send(`echo:${text}`) },
    onDisconnected (session, code) { disconnects.push(code) }
  })
  const client = await connect(await listen(app), '/ws')
  for (const text of ['1', '2', '3', '4', '5']) client.send(text)
  t.same(await client.closed, { code: 1008, reason: 'rate limit exceeded' })
  t.same(client.received.map((m) => m.data), ['echo:1', 'echo:2', 'echo:3'])
  t.same(await disconnects.until(1), [1008])
  t.equal(app.websocketRooms.stats().closed.rateLimit, 1)
  t.equal(app.websocketRooms.stats().dropped.rateLimit, 0)
})

test('rateLimit "drop": extra messages are dropped, the session stays and is served in the next interval', async (t) => {
  const interval = 100
  const app = await build(t, { rateLimit: { max: 2, interval, policy: 'drop' } })
  let firstAt = 0
  app.registerWebsocket('/ws', {
    handleText (session, text) {
      if (firstAt === 0) firstAt = Date.now() // the plugin's window began at or before this
      session.send(`echo:${text}`)
    }
  })
  const client = await connect(await listen(app), '/ws')
  for (const text of ['a', 'b', 'c', 'd']) client.send(text)
  await until(() => app.websocketRooms.stats().dropped.rateLimit === 2)
  t.same(await client.texts(2), ['echo:a', 'echo:b'])

  // The behaviour under test is time-based: the window that "a" opened must end. No event
  // marks that, so this waits on the plugin's own clock (Date.now()), for `interval` ms at most.
  await until(() => Date.now() - firstAt >= interval)
  client.send('e')
  t.same(await client.texts(3), ['echo:a', 'echo:b', 'echo:e'])
  t.equal(client.received.length, 3)
  t.equal(client.ws.readyState, WebSocket.OPEN)
  const stats = app.websocketRooms.stats()
  t.same([stats.dropped.rateLimit, stats.closed.rateLimit, stats.messagesIn], [2, 0, 5])
})

test('a route rateLimit overrides the plugin one, and rateLimit: false turns it off', async (t) => {
  const app = await build(t, { rateLimit: { max: 1, interval: 60_000 } })
  const handled: string[] = []
  const echo = (session: WebSocketSession, text: string): void => { handled.push(text); session.send(text) }
  app.registerWebsocket('/plugin', { handleText: echo })
  app.registerWebsocket('/route', { rateLimit: { max: 2, interval: 60_000, policy: 'drop' }, handleText: echo })
  app.registerWebsocket('/free', { rateLimit: false, handleText: echo })
  const base = await listen(app)

  const free = await connect(base, '/free')
  const many = range(20).map((i) => `free${i}`)
  for (const text of many) free.send(text)
  t.same(await free.texts(20), many, 'rateLimit: false: no limit')

  const route = await connect(base, '/route')
  for (const text of ['r0', 'r1', 'r2', 'r3']) route.send(text)
  await until(() => app.websocketRooms.stats().dropped.rateLimit === 2)
  t.same(await route.texts(2), ['r0', 'r1'], 'the route\'s max and policy apply')

  const plugin = await connect(base, '/plugin')
  plugin.send('p0')
  plugin.send('p1')
  t.same(await plugin.closed, { code: 1008, reason: 'rate limit exceeded' }, 'the plugin\'s limit applies elsewhere')
  t.same(plugin.received.map((m) => m.data), ['p0'])

  t.same(handled, [...many, 'r0', 'r1', 'p0'])
  t.equal(free.ws.readyState, WebSocket.OPEN)
  t.equal(route.ws.readyState, WebSocket.OPEN)
  t.equal(app.websocketRooms.stats().closed.rateLimit, 1)
})

test('bad limit options fail app.register() or registerWebsocket() with FST_WS_ROOMS_INVALID_OPTION naming the option', async (t) => {
  const cases: Array<[Record<string, unknown>, string, string]> = [
    [{ heartbeatInterval: -1 }, 'heartbeatInterval', 'must be an integer >= 0, got number -1'],
    [{ heartbeatInterval: 0.5 }, 'heartbeatInterval', 'must be an integer >= 0, got number 0.5'],
    [{ maxBackpressure: 0 }, 'maxBackpressure', 'must be an integer >= 1, got number 0'],
    [{ maxBackpressure: Infinity }, 'maxBackpressure', 'must be an integer >= 1, got number Infinity'],
    [{ backpressurePolicy: 'block' }, 'backpressurePolicy', 'must be "close" or "drop", got "block"'],
    [{ maxQueuedMessages: 0 }, 'maxQueuedMessages', 'must be an integer >= 1, got number 0'],
    [{ maxQueuedMessages: '10' }, 'maxQueuedMessages', 'must be an integer >= 1, got "10"'],
    [{ rateLimit: true }, 'rateLimit', 'must be false or an object { max, interval, policy? }, got boolean true'],
    [{ rateLimit: [] }, 'rateLimit', 'must be false or an object { max, interval, policy? }, got an array'],
    [{ rateLimit: { max: 0, interval: 1000 } }, 'rateLimit.max', 'must be an integer >= 1, got number 0'],
    [{ rateLimit: { max: 10, interval: 1.5 } }, 'rateLimit.interval', 'must be an integer >= 1, got number 1.5'],
    [{ rateLimit: { interval: 1000 } }, 'rateLimit.max', 'must be an integer >= 1, got undefined'],
    [{ rateLimit: { max: 10 } }, 'rateLimit.interval', 'must be an integer >= 1, got undefined'],
    [{ rateLimit: { max: 10, interval: 1000, policy: 'ban' } }, 'rateLimit.policy', 'must be "close" or "drop", got "ban"']
  ]
  const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const app = await build(t)
  for (const [options, name, rest] of cases) {
    const fastify = Fastify({ logger: false })
    t.teardown(() => fastify.close())
    const error = await fastify.register(websocketRooms, options as any).then(() => null, (err: unknown) => err)
    t.type(error, TypeError, name)
    t.match(error, { code: 'FST_WS_ROOMS_INVALID_OPTION', message: new RegExp(`option "${escape(name)}" ${escape(rest)}`) }, name)
    if (name === 'heartbeatInterval') continue // a plugin option only
    throwsLike(t, () => app.registerWebsocket('/ws', { handleText () {}, ...options } as any), TypeError, {
      code: 'FST_WS_ROOMS_INVALID_OPTION',
      message: new RegExp(`option "registerWebsocket\\("/ws"\\) ${escape(name)}" ${escape(rest)}`)
    })
  }
  await app.ready()
  t.equal(app.hasRoute({ method: 'GET', url: '/ws' }), false, 'no route was added')
})

test('stats() counts the messages and bytes of an exchange, a broadcast once per member', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    onConnected (session) { session.room('room').join() },
    handleText (session, text) {
      if (text === 'all') session.room('room').broadcast('news')
      else session.send(`re:${text}`)
    },
    handleBinary (session, data) { session.send(data) }
  })
  const zero = { dropped: { backpressure: 0, rateLimit: 0 }, closed: { heartbeat: 0, backpressure: 0, rateLimit: 0, unsupportedData: 0, handlerError: 0, invalidMessage: 0 }, refused: { origin: 0, maxSessions: 0 }, cluster: null, history: null }
  t.same(app.websocketRooms.stats(), { sessions: 0, rooms: 0, pausedSessions: 0, messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, invalidMessages: 0, ...zero })
  const base = await listen(app)
  const [a, b, c] = await Promise.all([connect(base, '/ws'), connect(base, '/ws'), connect(base, '/ws')])
  await until(() => app.websocketRooms.room('room').members() === 3)

  a.send('hé') // in: 1 message, 3 bytes; out: "re:hé", 6 bytes
  await a.messages(1)
  b.send(Buffer.from([1, 2, 3])) // in: 3 bytes; out: 3 bytes
  await b.messages(1)
  c.send('all') // in: 3 bytes; out: "news" to 3 members, 12 bytes
  await Promise.all([a.messages(2), b.messages(2), c.messages(1)])
  t.same(a.received.map((m) => String(m.data)), ['re:hé', 'news'])
  t.same(app.websocketRooms.stats(), { sessions: 3, rooms: 1, pausedSessions: 0, messagesIn: 3, bytesIn: 9, messagesOut: 5, bytesOut: 21, invalidMessages: 0, ...zero })
})

// History and recovery on one server (no adapter): publish() numbers a room's messages 1, 2,
// 3... in an epoch and keeps the last `size` for `ttl` ms; recover() sends a session what it
// missed, then the live messages, none lost or twice, or nothing at all when any is gone.
import { test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type { StreamPosition } from 'fastify-websocket-rooms'
import { Client, build, connect, listen, throwsLike } from './helpers'
import { eventually, until } from './signals'
import * as historyHandlers from './fixtures/history-handlers'

interface Said { offset: number, epoch: string, text: string }

async function historyApp (t: Parameters<typeof build>[0], history: { size?: number, ttl?: number } = { size: 10, ttl: 60_000 }): Promise<{ app: FastifyInstance, base: string }> {
  const app = await build(t, { history })
  app.registerWebsocket('/ws', historyHandlers)
  return { app, base: await listen(app) }
}

/** A member of the room, once it has been told "ready". */
async function member (base: string, room = 'chat'): Promise<Client> {
  const client = await connect(base, `/ws?room=${encodeURIComponent(room)}`)
  await client.texts(1)
  return client
}

/** Publishes texts from the server, one after the other; returns their positions. */
async function publishAll (app: FastifyInstance, texts: string[], room = 'chat'): Promise<StreamPosition[]> {
  const positions: StreamPosition[] = []
  for (const text of texts) positions.push(await app.websocketRooms.room(room).publish(({ offset, epoch }) => JSON.stringify({ offset, epoch, text })))
  return positions
}

/** The published messages a client got after its first `skip` messages. */
async function said (client: Client, skip: number, count: number): Promise<Said[]> {
  return (await client.texts(skip + count)).slice(skip).map((text) => JSON.parse(text))
}

test('publish() gives a room\'s messages the positions 1, 2, 3... of one epoch, and the builder gets each', async (t) => {
  const { app, base } = await historyApp(t)
  const [ann, bob] = [await member(base), await member(base)]
  const positions = await publishAll(app, ['a', 'b', 'c'])
  t.same(positions.map((p) => p.offset), [1, 2, 3])
  t.equal(new Set(positions.map((p) => p.epoch)).size, 1, 'one epoch')
  t.match(positions[0]!.epoch, /^[\w-]{8}$/)
  for (const client of [ann!, bob!]) {
    t.same(await said(client, 1, 3), positions.map((p, i) => ({ ...p, text: 'abc'[i] })))
  }
  // Another room has its own stream.
  const [other] = await publishAll(app, ['x'], 'other')
  t.equal(other!.offset, 1)
  t.not(other!.epoch, positions[0]!.epoch)
})

test('publish() from a session and publishExcept(): the sender\'s position counts, it does not get its own', async (t) => {
  const { base } = await historyApp(t)
  const [ann, bob] = [await member(base), await member(base)]
  ann!.send('say chat hello')
  t.same(await ann!.texts(3).then((texts) => texts.slice(1).map((text) => text.startsWith('{') ? JSON.parse(text).text : text)), ['hello', 'said 1'])
  ann!.send('others chat psst')
  t.equal((await ann!.texts(4))[3], 'said 2')
  t.same((await said(bob!, 1, 2)).map((m) => [m.offset, m.text]), [[1, 'hello'], [2, 'psst']])
  ann!.send('say chat again')
  t.same((await ann!.texts(6)).slice(4).map((text) => text.startsWith('{') ? JSON.parse(text).offset : text), [3, 'said 3'])
})

test('recover() sends what was missed, in order, then the live messages', async (t) => {
  const { app, base } = await historyApp(t)
  const [first] = await publishAll(app, ['a', 'b', 'c', 'd'])
  const epoch = first!.epoch
  const client = await connect(base, `/ws?room=chat&offset=1&epoch=${epoch}`)
  const got = await client.json(4)
  t.same(got.slice(0, 3).map((m) => m.offset), [2, 3, 4], 'the missed ones')
  t.same(got[3], { recovered: true, replayed: 3 })
  await publishAll(app, ['e'])
  t.same((await client.json(5))[4].offset, 5, 'then live')
  // Up to date already: nothing to replay, and it is in the room.
  const current = await connect(base, `/ws?room=chat&offset=5&epoch=${epoch}`)
  t.same(await current.json(1), [{ recovered: true, replayed: 0 }])
  t.equal(app.websocketRooms.room('chat').members(), 2)
  // From the start of the epoch.
  const fromStart = await connect(base, `/ws?room=chat&offset=0&epoch=${epoch}`)
  t.same((await fromStart.json(6)).map((m) => m.offset ?? m.replayed), [1, 2, 3, 4, 5, 5])
  const failed = await connect(base, '/ws?room=chat&offset=0&epoch=another')
  await failed.json(1)
  t.same(app.websocketRooms.stats().history, { published: 5, recovered: 3, notRecovered: 1, replayed: 8 })
})

test('recover() replays nothing when any missed message is gone: too old for size, another epoch, a future offset', async (t) => {
  const { app, base } = await historyApp(t, { size: 3, ttl: 60_000 })
  const positions = await publishAll(app, ['a', 'b', 'c', 'd', 'e'])
  const { epoch } = positions[0]!
  const cases: Array<[string, string]> = [
    ['offset 1: message 2 is no longer kept', `offset=1&epoch=${epoch}`],
    ['another epoch', 'offset=4&epoch=elsewhere'],
    ['an offset past the last', `offset=100&epoch=${epoch}`]
  ]
  for (const [why, query] of cases) {
    const client = await connect(base, `/ws?room=chat&${query}`)
    t.same(await client.json(1), [{ recovered: false, replayed: 0 }], why)
    await publishAll(app, [why])
    t.equal((await client.json(2))[1].text, why, `${why}: in the room, live from now`)
  }
  // Eight published, size 3: 6, 7 and 8 are kept.
  const late = await connect(base, `/ws?room=chat&offset=4&epoch=${epoch}`)
  t.same(await late.json(1), [{ recovered: false, replayed: 0 }], 'from 4: 5 is gone')
  const inTime = await connect(base, `/ws?room=chat&offset=6&epoch=${epoch}`)
  t.same((await inTime.json(3)).map((m) => m.offset ?? m.replayed), [7, 8, 2])
})

test('history() reads the last messages or those after a position, and says whether any is missing', async (t) => {
  const { app } = await historyApp(t, { size: 4, ttl: 60_000 })
  const room = app.websocketRooms.room('chat')
  const empty = await room.history()
  t.match(empty, { offset: 0, messages: [], complete: true }, 'a room never published to: its stream starts')
  const positions = await publishAll(app, ['a', 'b', 'c', 'd', 'e', 'f'])
  t.equal(positions[0]!.epoch, empty.epoch, 'the epoch history() handed out is the one publish() uses')
  const text = (m: { message: string | Buffer }): string => JSON.parse(String(m.message)).text
  const last2 = await room.history({ limit: 2 })
  t.same([last2.offset, last2.messages.map((m) => m.offset), last2.messages.map(text), last2.complete], [6, [5, 6], ['e', 'f'], true])
  const all = await room.history()
  t.same([all.messages.map((m) => m.offset), all.complete], [[3, 4, 5, 6], true], 'the size kept: complete for what could be kept')
  const more = await room.history({ limit: 10 })
  t.same([more.messages.length, more.complete], [4, true], 'a limit past size reads size')
  const since = await room.history({ since: positions[3]!, limit: 1 })
  t.same([since.messages.map((m) => m.offset), since.complete], [[5], true], 'the first after a position')
  const tooOld = await room.history({ since: positions[0]! })
  t.same([tooOld.messages.map((m) => m.offset), tooOld.complete], [[3, 4, 5, 6], false], 'after 1: 2 is gone')
  const otherEpoch = await room.history({ since: { offset: 4, epoch: 'other' } })
  t.same([otherEpoch.messages, otherEpoch.complete, otherEpoch.epoch], [[], false, empty.epoch])
  const none = await room.history({ limit: 0 })
  t.same([none.messages, none.offset, none.complete], [[], 6, true], 'limit 0: the position alone')
  // Binary messages come back as Buffers, text as strings.
  await app.websocketRooms.room('bytes').publish(() => Buffer.from([0, 1, 2]))
  const bytes = await app.websocketRooms.room('bytes').history()
  t.ok(Buffer.isBuffer(bytes.messages[0]!.message))
  t.same([...bytes.messages[0]!.message as Buffer], [0, 1, 2])
})

test('messages older than ttl are gone from history and recovery; a stream with no message for ttl ends, and the next has a new epoch', async (t) => {
  const { app, base } = await historyApp(t, { size: 10, ttl: 200 })
  const room = app.websocketRooms.room('chat')
  const [first] = await publishAll(app, ['old'])
  // No timer of the test's own: what is awaited is the message leaving the history.
  await eventually(async () => (await room.history()).messages.length === 0, 'the message to expire')
  const client = await connect(base, `/ws?room=chat&offset=0&epoch=${first!.epoch}`)
  t.same(await client.json(1), [{ recovered: false, replayed: 0 }], 'its recovery fails')
  let read = await room.history()
  await eventually(async () => (read = await room.history()).epoch !== first!.epoch, 'the stream to end and a new one to start')
  const [next] = await publishAll(app, ['new'])
  t.same([next!.offset, next!.epoch === first!.epoch], [read.offset + 1, false])
})

test('publish() with another publisher hammering the room: every member and every recovering session sees consecutive offsets', async (t) => {
  const { app, base } = await historyApp(t, { size: 1000, ttl: 60_000 })
  const watcher = await member(base)
  const hammering = { on: true }
  let published = 0
  const hammer = (async () => {
    while (hammering.on) {
      await app.websocketRooms.room('chat').publish(({ offset, epoch }) => JSON.stringify({ offset, epoch, text: 'h' }))
      published++
      if (published % 10 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  await until(() => published >= 50, 'the hammer to start')
  const { epoch } = await app.websocketRooms.room('chat').history({ limit: 0 })
  const recovering: Array<{ client: Client, from: number }> = []
  for (let i = 0; i < 10; i++) {
    const { offset } = await app.websocketRooms.room('chat').history({ limit: 0 })
    const from = Math.max(0, offset - 20 - i)
    recovering.push({ client: new Client(`${base}/ws?room=chat&offset=${from}&epoch=${epoch}`), from })
  }
  await until(() => recovering.every(({ client }) => client.received.some((m) => String(m.data).includes('recovered'))), 'every recovery to finish')
  hammering.on = false
  await hammer
  const last = (await app.websocketRooms.room('chat').history({ limit: 0 })).offset
  for (const { client, from } of recovering) {
    await until(() => client.received.some((m) => JSON.parse(String(m.data)).offset === last), `a recovering client to see offset ${last}`)
    const offsets = client.received.map((m) => JSON.parse(String(m.data))).filter((m) => m.offset !== undefined).map((m) => m.offset)
    t.same(offsets, Array.from({ length: last - from }, (_, i) => from + 1 + i), `from ${from}: exactly ${from + 1}..${last}`)
  }
  await until(() => watcher.received.length === 1 + last, 'the watcher to see every message')
  t.same(watcher.received.slice(1).map((m) => JSON.parse(String(m.data)).offset), Array.from({ length: last }, (_, i) => i + 1))
})

test('a builder that throws: publish() rejects and the position goes to the next message; a builder that publishes to the room', async (t) => {
  const { app, base } = await historyApp(t)
  const watcher = await member(base)
  const room = app.websocketRooms.room('chat')
  await t.rejects(room.publish(() => { throw new Error('no message') }), { message: 'no message' })
  await t.rejects(room.publish(() => 42 as unknown as string), { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /the message publish\(\) built must be a string, a Buffer/ })
  t.same(await room.publish(() => 'first'), { offset: 1, epoch: (await room.history({ limit: 0 })).epoch })
  // A builder that itself publishes: its message takes the next position, and the outer one the one after.
  const outer = await room.publish(({ offset }) => {
    if (offset === 2) room.publish(({ offset }) => `inner ${offset}`).catch(() => {})
    return `outer ${offset}`
  })
  t.equal(outer.offset, 3)
  t.same((await watcher.texts(4)).slice(1), ['first', 'inner 2', 'outer 3'])
})

test('bad arguments are TypeErrors naming them; without the history option, FST_WS_ROOMS_NO_HISTORY', async (t) => {
  const { app } = await historyApp(t)
  const room = app.websocketRooms.room('chat')
  throwsLike(t, () => room.publish('text' as any), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /build must be a function/ })
  throwsLike(t, () => room.history({ limit: -1 }), TypeError, { message: /query.limit must be an integer >= 0, got number -1/ })
  throwsLike(t, () => room.history({ since: { offset: 1 } as any }), TypeError, { message: /query.since.epoch must be a string/ })
  throwsLike(t, () => room.history(7 as any), TypeError, { message: /query must be an object/ })
  let session: any
  const plain = await build(t)
  plain.registerWebsocket('/ws', { onConnected (s) { session = s } })
  await plain.ready()
  const ws = await plain.injectWS('/ws')
  t.teardown(() => ws.terminate())
  await until(() => session !== undefined)
  throwsLike(t, () => plain.websocketRooms.room('chat').publish(() => 'x'), Error, { code: 'FST_WS_ROOMS_NO_HISTORY', message: /publish\(\) needs the plugin option history/ })
  throwsLike(t, () => session.room('chat').recover({ offset: 0, epoch: 'e' }), Error, { code: 'FST_WS_ROOMS_NO_HISTORY' })
  throwsLike(t, () => session.room('chat').history(), Error, { code: 'FST_WS_ROOMS_NO_HISTORY' })
  for (const [value, message] of [
    ['yes', /option "history" must be false, true or an object/],
    [{ size: 0 }, /option "history.size" must be an integer >= 1, got number 0/],
    [{ ttl: 1.5 }, /option "history.ttl" must be an integer >= 1/]
  ] as const) {
    await t.rejects(build(t, { history: value as any }), { code: 'FST_WS_ROOMS_INVALID_OPTION', message }, JSON.stringify(value))
  }
  t.equal((await (await build(t, { history: true })).websocketRooms.room('r').history()).offset, 0, 'history: true takes the defaults')
})

test('recover(): a bad position is a TypeError naming it; two at once for one room are refused; a session that leaves meanwhile gets nothing', async (t) => {
  const app = await build(t, { history: { size: 10, ttl: 60_000 } })
  let session: any
  app.registerWebsocket('/plain', { onConnected (s) { session = s } })
  await app.ready()
  const [first] = await publishAll(app, ['a', 'b'])
  const ws = await app.injectWS('/plain')
  t.teardown(() => ws.terminate())
  await until(() => session !== undefined)
  const room = session.room('chat')
  throwsLike(t, () => room.recover(null), TypeError, { message: /position must be an object \{ offset, epoch \}, got null/ })
  throwsLike(t, () => room.recover({ offset: '3', epoch: 'e' }), TypeError, { message: /position.offset must be an integer from 0 to 9007199254740991 \(Number.MAX_SAFE_INTEGER\), got "3"/ })
  // What Number() makes of a query string that is no offset: never taken for one.
  for (const offset of [-1, 1.5, 1e300, Infinity, NaN, 2 ** 53]) {
    throwsLike(t, () => room.recover({ offset, epoch: 'e' }), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: new RegExp(`position.offset must be an integer from 0 to 9007199254740991 .*, got number ${String(offset).replace('+', '\\+')}$`) })
  }
  throwsLike(t, () => room.history({ since: { offset: 1e300, epoch: 'e' } }), TypeError, { message: /query.since.offset must be an integer from 0 to 9007199254740991/ })
  throwsLike(t, () => room.recover({ offset: 1 }), TypeError, { message: /position.epoch must be a string, got undefined/ })
  const running = room.recover({ offset: 0, epoch: first!.epoch })
  t.throws(() => room.recover({ offset: 0, epoch: first!.epoch }), { code: 'FST_WS_ROOMS_RECOVERY_RUNNING', message: /already recovering room "chat"/ })
  room.leave()
  t.same(await running, { recovered: false, replayed: 0 }, 'left before the read came back')
  const received: string[] = []
  ws.on('message', (data: Buffer) => received.push(String(data)))
  t.same(await room.recover({ offset: 0, epoch: first!.epoch }), { recovered: true, replayed: 2 }, 'then a new recovery runs')
  await until(() => received.length === 2)
  t.same(received.map((text) => JSON.parse(text).text), ['a', 'b'])
})

test('recover() past maxRoomsPerSession rejects with FST_WS_ROOMS_TOO_MANY_ROOMS, and the room\'s live messages still reach the session where it is', async (t) => {
  const app = await build(t, { history: { size: 10, ttl: 60_000 }, maxRoomsPerSession: 1 })
  let session: any
  app.registerWebsocket('/ws', { onConnected (s) { session = s; s.room('home').join() } })
  const base = await listen(app)
  const client = await connect(base, '/ws')
  await until(() => session !== undefined)
  const [first] = await publishAll(app, ['a'], 'chat')
  await t.rejects(session.room('chat').recover({ offset: 0, epoch: first!.epoch }), { code: 'FST_WS_ROOMS_TOO_MANY_ROOMS' })
  await t.rejects(session.room('chat').recover({ offset: 0, epoch: first!.epoch }), { code: 'FST_WS_ROOMS_TOO_MANY_ROOMS' }, 'again: the refused recovery left nothing running')
  t.same(session.roomNames(), ['home'])
  await publishAll(app, ['home news'], 'home')
  t.equal((await client.json(1))[0].text, 'home news')
})

test('binary data the app changes after publish() resolved: history() and recover() give the bytes as they were published', async (t) => {
  const { app, base } = await historyApp(t)
  const room = app.websocketRooms.room('chat')
  // The app reuses its buffers: a Buffer, a view into a larger ArrayBuffer, an ArrayBuffer.
  const buffer = Buffer.from('first')
  const backing = new ArrayBuffer(16)
  const view = new Uint8Array(backing, 4, 6)
  view.set(Buffer.from('second'))
  const whole = new Uint8Array([116, 104, 105, 114, 100]).buffer // "third"
  const { epoch } = await room.publish(() => buffer)
  buffer.write('XXXXX')
  await room.publish(() => view)
  new Uint8Array(backing).fill(88)
  await room.publish(() => whole)
  new Uint8Array(whole).fill(88)
  const expected = ['first', 'second', 'third']
  const kept = await room.history()
  t.same(kept.messages.map((m) => [Buffer.isBuffer(m.message), String(m.message)]), expected.map((text) => [true, text]), 'history() has the bytes as published')
  // What history() hands out is the app's own: changing it changes nothing kept.
  for (const message of kept.messages) (message.message as Buffer).fill(89)
  t.same((await room.history()).messages.map((m) => String(m.message)), expected, 'history() gave copies')
  const back = await connect(base, `/ws?room=chat&offset=0&epoch=${epoch}`)
  const replay = await back.messages(4)
  t.same(replay.slice(0, 3).map((m) => [m.binary, String(m.data)]), expected.map((text) => [true, text]), 'and so has a recovery')
  t.same(JSON.parse(String(replay[3]!.data)), { recovered: true, replayed: 3 })
})

test('a restarted process (no adapter) has new epochs: a position from before is not recovered', async (t) => {
  const before = await historyApp(t)
  const [old] = await publishAll(before.app, ['before'])
  await before.app.close()
  const after = await historyApp(t)
  const [fresh] = await publishAll(after.app, ['after'])
  t.same([fresh!.offset, fresh!.epoch === old!.epoch], [1, false])
  const client = await connect(after.base, `/ws?room=chat&offset=1&epoch=${old!.epoch}`)
  t.same(await client.json(1), [{ recovered: false, replayed: 0 }])
})

test('a ttl past what a timer can wait is refused; a builder that returns a promise is refused, named; after close: FST_WS_ROOMS_CLOSED', async (t) => {
  await t.rejects(build(t, { history: { ttl: 2 ** 31 } }), { code: 'FST_WS_ROOMS_INVALID_OPTION', message: /option "history.ttl" must be an integer from 1 to 2147483647 \(about 24.8 days\), got number 2147483648/ })
  const { app } = await historyApp(t)
  const room = app.websocketRooms.room('chat')
  await t.rejects(room.publish((async () => 'late') as any), { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /the message publish\(\) built must be .*a builder cannot be async.*, got a promise/ })
  t.equal((await room.publish(() => 'now')).offset, 1, 'the position was not taken')
  await app.close()
  await t.rejects(room.publish(() => 'after'), { code: 'FST_WS_ROOMS_CLOSED' })
  await t.rejects(room.history(), { code: 'FST_WS_ROOMS_CLOSED', message: /history\(\) after app.close\(\)/ })
})

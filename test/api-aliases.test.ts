// Both sets of handler and session names (aliases: onOpen/onMessage/send and
// onConnected/handleText/handleBinary/onDisconnected/writeText/writeData), through the examples
// written with each, driven by real ws clients: the chat room with onOpen... (examples/chat,
// its presence notices included), the runnable chat server, and the examples with
// onConnected... (examples/echo, examples/binary, examples/broadcast). The examples import
// 'fastify-websocket-rooms', which is dist/: run `npm run build` first (npm test does).
// The chat page in a real browser is test/browser.test.ts; the other examples,
// test/examples.test.ts.
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { test, type Test } from 'tap'
import WebSocket from 'ws'
import type { WebsocketHandlers, WebsocketRoomsOptions } from 'fastify-websocket-rooms'
import { Client, build, connect, listen } from './helpers'
import { program } from './programs'
import { gate, until, within } from './signals'

type ChatModule = Required<Pick<WebsocketHandlers, 'onOpen' | 'onInvalidMessage' | 'onError' | 'messages' | 'schema'>>
interface PresenceModule { onPresence: NonNullable<WebsocketRoomsOptions['onPresence']> }
interface ExampleModule { build (options?: FastifyServerOptions): Promise<FastifyInstance> }
interface ChatServerModule { history: NonNullable<WebsocketRoomsOptions['history']> }

const examples = resolve(__dirname, '..', 'examples')

/** Imports an example as the ES module it is (a computed specifier: TypeScript leaves it untyped). */
async function importExample<T> (path: string): Promise<T> {
  return await import(pathToFileURL(resolve(examples, path)).href) as T
}

/**
 * An app serving the chat module as it is (a frozen module namespace, its schemas included),
 * or `handlers` made of it, with the chat's onPresence and history, as examples/chat/server.mjs
 * has them (`history` changes the latter).
 */
async function chatApp (t: Parameters<typeof build>[0], handlers?: (chat: ChatModule) => WebsocketHandlers<any, any, any, any, any>, history?: WebsocketRoomsOptions['history'], fastifyOptions?: FastifyServerOptions): Promise<{ app: FastifyInstance, base: string }> {
  const chat = await importExample<ChatModule>('chat/chat.mjs')
  const { onPresence } = await importExample<PresenceModule>('chat/presence.mjs')
  const server = await importExample<ChatServerModule>('chat/server.mjs')
  const app = await build(t, { onPresence, history: history ?? server.history }, fastifyOptions)
  app.registerWebsocket('/ws/chat', handlers === undefined ? chat : handlers(chat))
  return { app, base: await listen(app) }
}

/** Builds an example's app (examples/NAME/server.mjs), closed after the test, listening on a loopback port. */
async function example (t: Parameters<typeof build>[0], name: string): Promise<{ app: FastifyInstance, base: string }> {
  const { build: buildExample } = await importExample<ExampleModule>(`${name}/server.mjs`)
  const app = await buildExample()
  t.teardown(() => app.close())
  return { app, base: await listen(app) }
}

/** Resolves once the app holds exactly `count` sessions (a closing client's session ends on the server's own schedule). */
function untilSessions (app: FastifyInstance, count: number): Promise<void> {
  return until(() => app.websocketSessions.size === count, () => `${count} sessions (${app.websocketSessions.size} now)`)
}

/** The HTTP answer to a handshake the server refuses: its status and its error message. */
async function refusal (url: string): Promise<{ status: number, message: string }> {
  const ws = new WebSocket(url)
  ws.on('error', () => {}) // terminate() below aborts the handshake
  const [, response] = await within(once(ws, 'unexpected-response'), `${url} to be refused`) as [unknown, IncomingMessage]
  let body = ''
  for await (const chunk of response) body += chunk
  ws.terminate()
  return { status: response.statusCode!, message: (JSON.parse(body) as { message: string }).message }
}

/**
 * What the server answers a handshake, within the deadline: its refusal (status and message),
 * or, when it opens, its first message or its close code.
 */
async function answer (url: string): Promise<{ status: number, message: string } | { first: unknown } | { closed: number }> {
  const ws = new WebSocket(url)
  ws.on('error', () => {}) // terminate() below ends the socket, whatever its state
  const answered = new Promise<{ status: number, message: string } | { first: unknown } | { closed: number }>((resolve) => {
    ws.once('unexpected-response', (request, response: IncomingMessage) => {
      let body = ''
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode!, message: (JSON.parse(body) as { message: string }).message }))
    })
    ws.once('message', (data) => resolve({ first: JSON.parse(String(data)) }))
    ws.once('close', (code) => resolve({ closed: code }))
  })
  try {
    return await within(answered, `an answer to ${url.slice(0, 120)}`)
  } finally {
    ws.terminate()
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** A chat message as clients send it (no id: no reply). */
function say (text: string): string {
  return JSON.stringify({ type: 'chat.send', data: { text } })
}

interface Member { id: string, user: string }

/** The presence notice of these joins and leaves, as onPresence broadcasts it. */
function presence (joined: Member[], left: Member[] = []): { type: 'presence', joined: Member[], left: Member[] } {
  return { type: 'presence', joined, left }
}

/** Members in the order of their user names, for lists whose order says nothing. */
function byUser (members: Member[]): Member[] {
  return [...members].sort((a, b) => a.user < b.user ? -1 : 1)
}

interface Entered { client: Client, member: Member, welcome: any }

/**
 * Connects a chat client and waits for its welcome and for the presence notice of its own
 * join, which the whole room gets (without an adapter, it is the next message): the room's
 * next notice tells a later change. Checks both.
 */
async function enter (t: Test, base: string, user: string, room?: string): Promise<Entered> {
  const client = await connect(base, `/ws/chat?user=${user}${room === undefined ? '' : `&room=${room}`}`)
  const [welcome, notice] = await client.json(2)
  t.match(welcome, { type: 'welcome', id: UUID, room: room ?? 'chat' })
  const member = { id: welcome.id, user }
  t.ok(welcome.online.some((entry: Member) => entry.id === member.id && entry.user === user), `${user}'s welcome lists ${user}`)
  t.same(notice, presence([member]), `${user}'s join is told to the room, ${user} included`)
  return { client, member, welcome }
}

test('the chat module exports exactly its handlers and its schema, and registers as a module namespace', async (t) => {
  const chat = await importExample<ChatModule>('chat/chat.mjs')
  t.same(Object.keys(chat).sort(), ['messages', 'onError', 'onInvalidMessage', 'onOpen', 'schema'])
  t.same(Object.keys(chat.schema).sort(), ['outbound', 'querystring'])
  t.same(Object.keys(chat.messages), ['chat.send'])
  t.equal((chat as any)[Symbol.toStringTag], 'Module', 'the real module namespace, not a copy')
  t.notOk(Object.isExtensible(chat), 'a module namespace is sealed: the plugin only reads it')
  const { app, base } = await chatApp(t)
  const alice = await connect(base, '/ws/chat?user=alice')
  const [welcome] = await alice.json(1)
  t.match(welcome, { type: 'welcome', id: UUID, room: 'chat', online: [{ id: welcome.id, user: 'alice' }] })
  t.equal(app.websocketSessions.get(welcome.id)?.getAttribute('username'), 'alice', 'the welcome carries the session id')
})

test('chat room: the welcome lists who is online, presence notices tell every member who joined and who left, messages go to every member at their position', async (t) => {
  const { app, base } = await chatApp(t)

  const alice = await enter(t, base, 'alice')
  t.same(alice.welcome.online, [alice.member], 'alone')

  const bob = await enter(t, base, 'bob')
  t.same(byUser(bob.welcome.online), [alice.member, bob.member])
  t.same((await alice.client.json(3))[2], presence([bob.member]), 'alice is told bob joined')

  const carol = await enter(t, base, 'carol')
  t.same(byUser(carol.welcome.online), [alice.member, bob.member, carol.member])
  t.same((await alice.client.json(4))[3], presence([carol.member]))
  t.same((await bob.client.json(3))[2], presence([carol.member]))
  t.equal(app.websocketRooms.room('chat').members(), 3)

  const before = Date.now()
  const { epoch } = alice.welcome
  t.match(alice.welcome, { resumed: false, epoch: String, offset: 0, messages: [] }, 'the welcome gives the room\'s position: no message yet')
  alice.client.send(say('hello from alice'))
  const [fromAliceToBob] = (await bob.client.json(4)).slice(3)
  const [fromAliceToCarol] = (await carol.client.json(3)).slice(2)
  t.match(fromAliceToBob, { type: 'message', epoch, offset: 1, from: 'alice', text: 'hello from alice', timestamp: Number })
  t.same(fromAliceToCarol, fromAliceToBob, 'every other member gets the same message')
  t.same((await alice.client.json(5))[4], fromAliceToBob, 'and so does its sender, at the same position')
  t.ok(fromAliceToBob.timestamp >= before && fromAliceToBob.timestamp <= Date.now(), 'timestamp is the server time')

  bob.client.send(say('hi alice'))
  const hiAlice = { type: 'message', epoch, offset: 2, from: 'bob', text: 'hi alice' }
  t.match((await alice.client.json(6))[5], hiAlice, 'the next position')
  t.match((await carol.client.json(4))[3], hiAlice)
  t.match((await bob.client.json(5))[4], hiAlice)

  t.same(await carol.client.close(), { code: 1005, reason: '' })
  t.same((await alice.client.json(7))[6], presence([], [carol.member]), 'carol\'s leave is told once she has gone')
  t.same((await bob.client.json(6))[5], presence([], [carol.member]))
  t.equal(carol.client.received.length, 4, 'carol gets nothing of her own leave')
  t.equal(app.websocketRooms.room('chat').members(), 2)

  await bob.client.close()
  t.same((await alice.client.json(8))[7], presence([], [bob.member]))
  t.same((await app.websocketRooms.room('chat').presence()).members.map((entry) => entry.info), [{ user: 'alice' }], 'the info each session set')
  await alice.client.close()
  await untilSessions(app, 0)
  t.same(app.websocketRooms.roomNames(), [], 'the empty room is gone')
})

test('chat room: members who join at once are told in one notice, and each change once', async (t) => {
  const held = gate()
  const { app, base } = await chatApp(t, (chat) => ({
    ...chat,
    // Everyone but alice waits here until all are connected: their joins then come in one
    // turn of the event loop, as a crowd's do when it reconnects after a restart.
    async onOpen (session) {
      if (session.query.user !== 'alice') await held.opened
      return await chat.onOpen(session)
    }
  }))
  const alice = await enter(t, base, 'alice')
  const [bob, carol] = await Promise.all(['bob', 'carol'].map((user) => connect(base, `/ws/chat?user=${user}`))) as [Client, Client]
  await until(() => app.websocketSessions.size === 3)
  held.open()
  const [bobWelcome] = await bob.json(1)
  const [carolWelcome] = await carol.json(1)
  const joined = [{ id: bobWelcome.id, user: 'bob' }, { id: carolWelcome.id, user: 'carol' }]
  const notice = (await alice.client.json(3))[2]
  t.same({ ...notice, joined: byUser(notice.joined) }, presence(joined), 'bob and carol in one notice')
  // Each welcome lists alice and its own session; the other one's only if it joined first.
  for (const [welcome, member] of [[bobWelcome, joined[0]!], [carolWelcome, joined[1]!]] as const) {
    const listed = (welcome.online as Member[]).map((entry) => entry.id)
    t.ok(listed.includes(alice.member.id) && listed.includes(member.id), `${member.user}'s welcome lists alice and ${member.user}`)
  }

  // The next change is told alone: the joins were told once.
  await bob.close()
  t.same((await alice.client.json(4))[3], presence([], [joined[0]!]))
  t.same((await carol.json(3)).slice(1).map((message) => ({ ...message, joined: byUser(message.joined) })),
    [presence(joined), presence([], [joined[0]!])], 'carol is told the same')
})

test('chat room: ?room= separates rooms, each with its own list and notices', async (t) => {
  const { app, base } = await chatApp(t)
  const alice = await enter(t, base, 'alice', 'red')
  const bob = await enter(t, base, 'bob', 'blue')
  t.same(bob.welcome.online, [bob.member], 'blue lists only its own members')
  const carol = await enter(t, base, 'carol', 'red')
  t.same(byUser(carol.welcome.online), [alice.member, carol.member])
  t.same((await alice.client.json(3))[2], presence([carol.member]))
  const dave = await enter(t, base, 'dave', 'blue')
  t.same((await bob.client.json(3))[2], presence([dave.member]), 'bob gets no notice of red')
  t.same(app.websocketRooms.roomNames().sort(), ['blue', 'red'])

  // Each step waits for the server to have handled the one before (its recipient got it), so
  // a message that leaked to another room would reach its socket before the next one checked.
  bob.client.send(say('anyone in blue?'))
  t.match((await dave.client.json(3))[2], { type: 'message', from: 'bob', text: 'anyone in blue?' })
  alice.client.send(say('red only'))
  t.match((await carol.client.json(3))[2], { type: 'message', from: 'alice', text: 'red only' })
  carol.client.send(say('red too'))
  t.match((await alice.client.json(5)).slice(3), [{ type: 'message', from: 'alice', text: 'red only' }, { type: 'message', from: 'carol', text: 'red too' }], 'alice never gets blue messages')
  await alice.client.close()
  t.same((await carol.client.json(5))[4], presence([], [alice.member]), 'a leave is told to its own room')
  dave.client.send(say('bye blue'))
  t.match((await bob.client.json(5)).slice(3), [{ type: 'message', from: 'bob', text: 'anyone in blue?' }, { type: 'message', from: 'dave', text: 'bye blue' }], 'bob never gets red messages or notices')
  t.not(alice.welcome.epoch, bob.welcome.epoch, 'each room has its own stream of positions')
  t.equal(app.websocketRooms.room('red').members(), 1)
  t.equal(app.websocketRooms.room('blue').members(), 2)
})

test('chat room: without ?room= the room is "chat"; without ?user= the module\'s own schema refuses the handshake', async (t) => {
  const { app, base } = await chatApp(t)
  const ann = await connect(base, '/ws/chat?user=ann')
  t.match((await ann.json(1))[0], { type: 'welcome', room: 'chat', online: [{ user: 'ann' }] })
  t.same(await refusal(`${base}/ws/chat`), { status: 400, message: "querystring must have required property 'user'" })
  t.same(await refusal(`${base}/ws/chat?user=bob&room=`), { status: 400, message: 'querystring/room must NOT have fewer than 1 characters' })
  t.equal(app.websocketSessions.size, 1)
})

test('chat room: a message that is not JSON, or not a chat message, gets an error notice, to its sender only; the session stays open', async (t) => {
  const { app, base } = await chatApp(t)
  const { client: alice } = await enter(t, base, 'alice')
  const { client: bob } = await enter(t, base, 'bob')
  await alice.json(3)

  const refused: Array<[string, string]> = [
    ['hello', 'message is not valid JSON: '],
    [JSON.stringify({ type: 'chat.send' }), 'data must be object'],
    [JSON.stringify({ type: 'chat.send', data: {} }), "data must have required property 'text'"],
    [say(''), 'data/text must NOT have fewer than 1 characters'],
    [say('x'.repeat(2001)), 'data/text must NOT have more than 2000 characters'],
    [JSON.stringify({ type: 'shout', data: { text: 'hi' } }), 'unknown message type "shout"'],
    [JSON.stringify({ type: 'message', text: 'hi' }), 'unknown message type "message"'],
    ['{"type":"chat.send","data":{"text":"hi","__proto__":{"admin":true}}}', 'message is not valid JSON: Object contains forbidden prototype property']
  ]
  for (const [text] of refused) alice.send(text)
  alice.send(say('x'.repeat(2000)))
  const notices = (await alice.json(3 + refused.length)).slice(3)
  t.same(notices.map((notice) => Object.keys(notice)), refused.map(() => ['type', 'reason']), 'an error notice has its type and reason, nothing else')
  refused.forEach(([text, reason], i) => {
    t.equal(notices[i].type, 'error')
    t.ok(notices[i].reason.startsWith(reason), `${text.slice(0, 60)}: ${notices[i].reason}`)
  })
  t.match((await bob.json(3))[2], { type: 'message', from: 'alice', text: 'x'.repeat(2000) }, '2000 characters pass, and the session is still open')
  t.equal(bob.received.length, 3, 'the others got no error notice and none of the refused messages')
  t.equal(alice.ws.readyState, alice.ws.OPEN)
  t.equal(app.websocketRooms.stats().invalidMessages, refused.length)
  t.equal(app.websocketRooms.stats().closed.invalidMessage, 0)
})

test('chat room: a chat.send with an id gets a reply with its position in the room, or an error reply', async (t) => {
  const { base } = await chatApp(t)
  const { client: alice } = await enter(t, base, 'alice')
  const [welcome] = await alice.json(2)
  alice.send(JSON.stringify({ type: 'chat.send', id: 1, data: { text: 'one' } }))
  alice.send(JSON.stringify({ type: 'chat.send', id: 'two', data: { text: '' } }))
  alice.send(JSON.stringify({ type: 'chat.send', id: 3, data: { text: 'three' } }))
  const [said, reply, refused, , last] = (await alice.json(7)).slice(2)
  t.match(said, { type: 'message', epoch: welcome.epoch, offset: 1, text: 'one' })
  t.same(reply, { type: 'reply', id: 1, data: { epoch: welcome.epoch, offset: 1 } }, 'the reply carries the position the message went out at')
  t.same(refused, { type: 'reply', id: 'two', error: { code: 'FST_ERR_VALIDATION', message: 'data/text must NOT have fewer than 1 characters' } })
  t.same(last, { type: 'reply', id: 3, data: { epoch: welcome.epoch, offset: 2 } })
})

test('chat room: what a client adds to its message is not relayed, and it cannot pass for another user', async (t) => {
  const { base } = await chatApp(t)
  const { client: alice } = await enter(t, base, 'alice')
  const { client: bob } = await enter(t, base, 'bob')
  await alice.json(3)
  alice.send(JSON.stringify({ type: 'chat.send', data: { text: 'hi', from: 'mallory', timestamp: 0, html: '<script>alert(1)</script>' } }))
  const [message] = (await bob.json(3)).slice(2)
  t.same(Object.keys(message).sort(), ['epoch', 'from', 'offset', 'text', 'timestamp', 'type'], 'the fields chat.send names only')
  t.match(message, { type: 'message', from: 'alice', text: 'hi' })
  t.ok(message.timestamp > 0, 'the server\'s timestamp')
  t.notOk(String(bob.received[2]!.data).includes('script'))
})

/** What a chat client has received, parsed. */
function parsed (client: Client): any[] {
  return client.received.map((message) => JSON.parse(String(message.data)))
}

/** The chat messages a client has received, and where its welcome came among them (-1: not yet). */
function said (client: Client): { texts: string[], offsets: number[], welcomeAt: number } {
  const messages = parsed(client).filter((message) => message.type === 'message' || message.type === 'welcome')
  const chat = messages.filter((message) => message.type === 'message')
  return { texts: chat.map((message) => `${message.from}: ${message.text}`), offsets: chat.map((message) => message.offset), welcomeAt: messages.findIndex((message) => message.type === 'welcome') }
}

/** Resolves once a chat client has its welcome and `count` chat messages. */
async function untilSaid (client: Client, count: number): Promise<void> {
  await until(() => said(client).welcomeAt !== -1 && said(client).texts.length >= count, () => `${count} messages and a welcome (${JSON.stringify(said(client))})`)
}

test('chat room: a client back from a drop sends its position and gets what it missed, in order, before its welcome, then the live ones; past what the history keeps, the room\'s last messages instead', async (t) => {
  const { base } = await chatApp(t, undefined, { size: 3, ttl: 60_000 })
  const alice = await enter(t, base, 'alice', 'lobby')
  const bob = await enter(t, base, 'bob', 'lobby')
  bob.client.send(say('one'))
  await untilSaid(alice.client, 1)
  const { epoch } = alice.welcome
  t.match(parsed(alice.client).find((message) => message.type === 'message'), { epoch, offset: 1, text: 'one' })
  await alice.client.close()

  // Missed: two and three. Back with { epoch, offset: 1 }: both, in order, then the welcome.
  bob.client.send(say('two'))
  bob.client.send(say('three'))
  await untilSaid(bob.client, 3)
  const back = await connect(base, `/ws/chat?user=alice&room=lobby&epoch=${epoch}&offset=1`)
  await untilSaid(back, 2)
  t.same(said(back), { texts: ['bob: two', 'bob: three'], offsets: [2, 3], welcomeAt: 2 }, 'the missed messages, then the welcome')
  t.match(parsed(back).find((message) => message.type === 'welcome'), { type: 'welcome', room: 'lobby', resumed: true })
  t.notOk('messages' in parsed(back).find((message) => message.type === 'welcome'), 'a welcome that resumes carries no messages')
  bob.client.send(say('four'))
  await untilSaid(back, 3)
  t.same(said(back).offsets, [2, 3, 4], 'then the live ones, none twice')
  await back.close()

  // Missed: five to eight, but the history keeps three messages: the welcome brings the last
  // ones and their position instead, and nothing comes before it.
  for (const text of ['five', 'six', 'seven', 'eight']) bob.client.send(say(text))
  await untilSaid(bob.client, 8)
  const late = await connect(base, `/ws/chat?user=alice&room=lobby&epoch=${epoch}&offset=4`)
  await untilSaid(late, 0)
  const welcome = parsed(late).find((message) => message.type === 'welcome')
  t.match(welcome, { resumed: false, epoch, offset: 8 })
  t.same(welcome.messages.map((message: any) => [message.offset, message.text]), [[6, 'six'], [7, 'seven'], [8, 'eight']])
  t.equal(said(late).welcomeAt, 0, 'nothing replayed before it')

  // A position of another epoch (a history lost since) is not resumed either.
  const lost = await connect(base, `/ws/chat?user=alice&room=lobby&epoch=not-${epoch}&offset=8`)
  await untilSaid(lost, 0)
  t.match(parsed(lost).find((message) => message.type === 'welcome'), { resumed: false, epoch, offset: 8 })
})

test('chat room: a position that is none (a fraction, past 2^53, Infinity, a huge or odd epoch) gets a 400 at the handshake, or the room\'s last messages: never a 1011, nothing logged as an error', async (t) => {
  const logged: Array<{ level: number, msg: string }> = []
  const logger = { level: 'info', stream: { write: (line: string) => { logged.push(JSON.parse(line)) } } }
  const { app, base } = await chatApp(t, undefined, undefined, { logger })
  const alice = await enter(t, base, 'alice')
  const { epoch } = alice.welcome
  const tooLarge = 'querystring/offset must be <= 9007199254740991'
  for (const [query, message] of [
    [`epoch=${epoch}&offset=1.5`, 'querystring/offset must be integer'],
    [`epoch=${epoch}&offset=1e300`, tooLarge],
    [`epoch=${epoch}&offset=9007199254740993`, tooLarge],
    [`epoch=${epoch}&offset=-1`, 'querystring/offset must be >= 0'],
    [`epoch=${'e'.repeat(5000)}&offset=0`, 'querystring/epoch must NOT have more than 64 characters'],
    [`epoch=${encodeURIComponent(`${epoch} `)}&offset=0`, 'querystring/epoch must match pattern "^[A-Za-z0-9_-]+$"']
  ]) {
    t.same(await answer(`${base}/ws/chat?user=bob&${query}`), { status: 400, message }, query.slice(0, 60))
  }
  t.equal(app.websocketSessions.size, 1, 'no session for any of them')
  // Infinity passes the schema (Ajv's coercion skips the bounds of a number that is not
  // finite); the largest safe offset is past the room's last: both get the last messages.
  for (const offset of ['Infinity', '9007199254740991']) {
    t.match(await answer(`${base}/ws/chat?user=bob&epoch=${epoch}&offset=${offset}`), { first: { type: 'welcome', resumed: false, epoch, offset: 0, messages: [] } }, offset)
  }
  t.equal(app.websocketRooms.stats().closed.handlerError, 0)
  t.same(logged.filter((line) => line.level >= 50), [], 'nothing logged as an error')
})

test('chat server build(): end to end on port 0, with the handshake schema and the presence notices', async (t) => {
  const { app, base } = await example(t, 'chat')

  const alice = await enter(t, base, 'alice', 'lobby')
  const bob = await enter(t, base, 'bob', 'lobby')
  t.same(byUser(bob.welcome.online), [alice.member, bob.member])
  t.same((await alice.client.json(3))[2], presence([bob.member]))
  alice.client.send(say('hi bob'))
  t.match((await bob.client.json(3))[2], { type: 'message', from: 'alice', text: 'hi bob' })

  t.same(await refusal(`${base}/ws/chat`), { status: 400, message: "querystring must have required property 'user'" })
  t.same(await refusal(`${base}/ws/chat?room=lobby`), { status: 400, message: "querystring must have required property 'user'" })
  t.same(await refusal(`${base}/ws/chat?user=`), { status: 400, message: 'querystring/user must NOT have fewer than 1 characters' })
  t.same(await refusal(`${base}/ws/chat?user=carol&room=`), { status: 400, message: 'querystring/room must NOT have fewer than 1 characters' })
  t.equal(app.websocketSessions.size, 2, 'refused handshakes open no session')

  // The chat keeps its sessions for a resume: app.close() closes them with 1012 (service restart).
  await app.close()
  t.same(await alice.client.closed, { code: 1012, reason: 'service restart' })
  t.same(await bob.client.closed, { code: 1012, reason: 'service restart' })
})

test('chat server build(): a client whose connection drops comes back with the welcome\'s token as the same session, what it missed before its new welcome', async (t) => {
  const { app, base } = await example(t, 'chat')
  const alice = await enter(t, base, 'alice', 'lobby')
  const bob = await enter(t, base, 'bob', 'lobby')
  t.match(alice.welcome, { resumed: false, resume: /^[A-Za-z0-9_-]{24}$/ }, 'the welcome carries the token to resume with')
  t.same((await alice.client.json(3))[2], presence([bob.member]))

  // Alice's network drops (no close frame): her session waits for her, still in the room, and
  // nobody is told she left.
  alice.client.ws.terminate()
  await until(() => app.websocketSessions.size === 1, 'alice\'s connection lost on the server')
  bob.client.send(say('one'))
  bob.client.send(say('two'))
  await bob.client.json(4)

  // Back with her token, and a room her new handshake names otherwise: the same session, in
  // the same room. What she missed comes first, then a welcome with a new token.
  const back = await connect(base, `/ws/chat?user=alice&room=elsewhere&resume=${alice.welcome.resume}`)
  const [one, two, welcome] = await back.json(3)
  t.match([one, two], [{ type: 'message', from: 'bob', text: 'one', offset: 1 }, { type: 'message', from: 'bob', text: 'two', offset: 2 }], 'what she missed, in order, before the welcome')
  t.match(welcome, { type: 'welcome', id: alice.member.id, room: 'lobby', resumed: true, resume: /^[A-Za-z0-9_-]{24}$/ }, 'the same session, in its room')
  t.not(welcome.resume, alice.welcome.resume, 'a new token: each is used once')
  t.notOk('messages' in welcome, 'nothing to reload')
  t.same(byUser(welcome.online), [alice.member, bob.member])
  back.send(say('back'))
  t.match((await bob.client.json(5))[4], { type: 'message', from: 'alice', text: 'back', offset: 3 }, 'she speaks as herself, in the lobby')
  t.equal(app.websocketRooms.room('elsewhere').members(), 0)
  t.same(bob.client.received.length, 5, 'bob was told no leave and no join')

  // The used token again: a new session, which recovers from the position the client sent.
  const again = await connect(base, `/ws/chat?user=alice&room=lobby&resume=${alice.welcome.resume}&epoch=${one.epoch}&offset=1`)
  const messages = await again.json(3)
  t.match(messages.slice(0, 2), [{ type: 'message', text: 'two' }, { type: 'message', text: 'back' }], 'from its position')
  t.match(messages[2], { type: 'welcome', resumed: true, resume: String })
  t.not(messages[2].id, alice.member.id, 'another session')
})

test('chat server as the main module: listens on PORT and HOST, logs the address, closes on SIGINT and SIGTERM', async (t) => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const run = program(t, 'chat', { PORT: '0', HOST: '127.0.0.1' })
    const base = (await run.url('chat')).replace(/\/ws\/chat\?user=NAME&room=NAME$/, '')
    const page = await fetch(base.replace(/^ws/, 'http') + '/')
    t.equal(page.status, 200)
    t.equal(page.headers.get('content-type'), 'text/html; charset=utf-8', 'the chat page is served at /')
    t.match(await page.text(), /new WebSocket\(url\)/)
    const client = await connect(base, '/ws/chat?user=alice')
    t.match((await client.json(1))[0], { type: 'welcome', room: 'chat', online: [{ user: 'alice' }] })
    const stopped = run.stop(signal)
    t.same(await client.closed, { code: 1012, reason: 'service restart' }, `${signal}: sessions are closed with 1012 (they resume)`)
    t.same((await stopped).exit, [0, null], `${signal}: the process exits with 0 on its own`)
    t.equal(run.messages.length, 5)
    t.match(run.messages, [
      /^Server listening at http:\/\/127\.0\.0\.1:\d+$/,
      /^chat: http:\/\/127\.0\.0\.1:\d+\/$/,
      /^chat: ws:\/\/127\.0\.0\.1:\d+\/ws\/chat\?user=NAME&room=NAME$/,
      `${signal} received, closing`,
      'closed'
    ], `${signal}: logs where it listens, then its shutdown`)
  }
})

test('onConnected/handleText/writeText: the echo example', async (t) => {
  const { base } = await example(t, 'echo')
  const client = await connect(base, '/echo')
  client.send('hello')
  client.send('world')
  const messages = await client.messages(3)
  t.same(messages, [
    { data: 'Welcome to the chat room!', binary: false },
    { data: 'You said: hello', binary: false },
    { data: 'You said: world', binary: false }
  ])
})

test('handleBinary/writeData: the binary example sends and echoes binary frames', async (t) => {
  const { base } = await example(t, 'binary')
  const client = await connect(base, '/binary')
  const [message] = await client.messages(1)
  t.equal(message!.binary, true)
  t.ok(Buffer.isBuffer(message!.data))
  t.equal(message!.data.toString('utf-8'), 'Binary hello')

  // handleBinary gets a Buffer and sends it back as it came.
  const bytes = Buffer.from([0, 1, 2, 253, 254, 255])
  client.send(bytes)
  const [, echoed] = await client.messages(2)
  t.same(echoed, { data: bytes, binary: true })

  // No text handler on this route: a text message closes the session with 1003.
  client.send('text')
  t.same(await client.closed, { code: 1003, reason: 'text messages are not accepted' })
})

test('handleText/close(): "bye" gets Goodbye! and a normal close', async (t) => {
  const { base } = await example(t, 'echo')
  const client = await connect(base, '/bye')
  client.send('hello')
  client.send('bye')
  t.same(await client.closed, { code: 1000, reason: '' })
  t.same(client.received, [{ data: 'Goodbye!', binary: false }], 'only "bye" is answered, and before the close')
})

test('onConnected/handleText/onDisconnected: broadcast to every client through a room', async (t) => {
  const { app, base } = await example(t, 'broadcast')
  const clients = await Promise.all([connect(base, '/broadcast'), connect(base, '/broadcast'), connect(base, '/broadcast')])
  const [a, b, c] = clients as [Client, Client, Client]
  for (const client of clients) t.same(await client.texts(1), ['Connection established!'])
  t.equal(app.websocketRooms.room('everyone').members(), 3)

  a.send('one')
  for (const client of clients) t.same((await client.texts(2))[1], 'Broadcast: one', 'the sender gets it too')

  // Binary data is only logged: no answer, and the session stays open.
  b.send(Buffer.from([1, 2, 3]))
  b.send('two')
  for (const client of clients) t.same((await client.texts(3))[2], 'Broadcast: two')

  await c.close()
  await untilSessions(app, 2)
  t.equal(app.websocketRooms.room('everyone').members(), 2, 'a disconnected client leaves the room by itself')
  a.send('three')
  t.same((await a.texts(4))[3], 'Broadcast: three')
  t.same((await b.texts(4))[3], 'Broadcast: three')
  t.equal(c.received.length, 3)
})

test('onConnected/handleText: the simple chat counts who is online and broadcasts to all', async (t) => {
  const { app, base } = await example(t, 'broadcast')
  const a = await connect(base, '/chat')
  t.same(await a.texts(1), ['Welcome! There are 1 users online.'])
  const b = await connect(base, '/chat')
  t.same(await b.texts(1), ['Welcome! There are 2 users online.'])
  a.send('Hello everyone!')
  t.same(await a.texts(2), ['Welcome! There are 1 users online.', 'Hello everyone!'])
  t.same(await b.texts(2), ['Welcome! There are 2 users online.', 'Hello everyone!'])
  await b.close()
  await untilSessions(app, 1)
  const c = await connect(base, '/chat')
  t.same(await c.texts(1), ['Welcome! There are 2 users online.'], 'a client that left is no longer counted')
})

test('a browser-style client (addEventListener): text and binary, close with a code and reason', async (t) => {
  const { base } = await example(t, 'echo')

  const ws = new WebSocket(`${base}/echo`)
  const received: Array<string | Buffer> = []
  let gotAll!: () => void
  const all = new Promise<void>((resolve) => { gotAll = resolve })
  ws.addEventListener('open', () => ws.send('Hello, Server!'))
  ws.addEventListener('message', (event) => {
    received.push(event.data as string | Buffer)
    if (received.length === 2) gotAll()
  })
  const closed = new Promise<WebSocket.CloseEvent>((resolve) => ws.addEventListener('close', resolve))
  await all
  t.same(received.map(String), ['Welcome to the chat room!', 'You said: Hello, Server!'])
  ws.close(1000, 'Closing connection after test')
  const event = await closed
  t.equal(event.code, 1000)
  t.equal(event.wasClean, true)

  const { base: binaryBase } = await example(t, 'binary')
  const binary = new WebSocket(`${binaryBase}/binary`)
  binary.binaryType = 'nodebuffer'
  const [data, isBinary] = await within(once(binary, 'message'), 'the binary example\'s greeting') as [Buffer, boolean]
  t.equal(isBinary, true)
  t.equal(data.toString(), 'Binary hello')
  binary.close()
  await within(once(binary, 'close'), 'the binary example\'s client to close')
})

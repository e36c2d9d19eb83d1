// The examples not covered by test/api-aliases.test.ts (examples/dashboard, examples/auth
// with its bearer token and its signed cookie, and examples/cluster against the real Redis),
// and every example run as the program its npm script starts. Real sockets throughout: ws
// clients and fetch() against servers on loopback ports. The examples import
// 'fastify-websocket-rooms', which is dist/: run `npm run build` first (npm test does).
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import WebSocket from 'ws'
import { Client, connect, listen } from './helpers'
import { program } from './programs'
import { REDIS_URL, redisTest, uniquePrefix } from './redis'
import { clusterTest } from './redis-cluster'
import { until, within } from './signals'

interface Example { build (options?: Record<string, unknown>): Promise<FastifyInstance> }

/** A chat message as clients of examples/chat and examples/cluster send it (no id: no reply). */
function say (text: string): string {
  return JSON.stringify({ type: 'chat.send', data: { text } })
}

const root = resolve(__dirname, '..')
const examples = resolve(root, 'examples')

/** Builds examples/NAME/server.mjs with `options`, closed after the test, listening on a loopback port. */
async function example (t: Test, name: string, options: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, base: string, http: string }> {
  const { build } = await import(pathToFileURL(resolve(examples, name, 'server.mjs')).href) as Example
  const app = await build(options)
  t.teardown(() => app.close())
  const base = await listen(app)
  return { app, base, http: base.replace(/^ws/, 'http') }
}

/** The HTTP answer to a handshake the server refuses. */
async function refusal (url: string, options?: WebSocket.ClientOptions): Promise<{ status: number, headers: IncomingMessage['headers'], body: unknown }> {
  const ws = new WebSocket(url, options)
  ws.on('error', () => {}) // terminate() below aborts the handshake
  const [, response] = await within(once(ws, 'unexpected-response'), `${url} to be refused`) as [unknown, IncomingMessage]
  let body = ''
  for await (const chunk of response) body += chunk
  ws.terminate()
  return { status: response.statusCode!, headers: response.headers, body: JSON.parse(body) }
}

async function postMetric (http: string, body: unknown): Promise<{ status: number, body: any }> {
  const response = await fetch(`${http}/api/metrics`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  return { status: response.status, body: await response.json() }
}

test('dashboard: an HTTP route broadcasts to every dashboard in the room', async (t) => {
  const { app, http, base } = await example(t, 'dashboard')
  const first = await connect(base, '/ws/dashboard')
  t.same(await first.json(1), [{ type: 'hello', viewers: 1 }])
  const second = await connect(base, '/ws/dashboard')
  t.same(await second.json(1), [{ type: 'hello', viewers: 2 }])

  const before = Date.now()
  t.same(await postMetric(http, { name: 'orders', value: 42 }), { status: 200, body: { delivered: 2 } })
  for (const client of [first, second]) {
    const [metric] = (await client.json(2)).slice(1)
    t.match(metric, { type: 'metric', name: 'orders', value: 42, at: Number })
    t.ok(metric.at >= before && metric.at <= Date.now(), 'stamped with the server time')
  }

  // A body that fails the route's schema is refused with 400 and broadcasts nothing: the next
  // message the dashboards get is the next valid metric.
  const invalid = await postMetric(http, { name: 'orders', value: 'many' })
  t.equal(invalid.status, 400)
  t.equal(invalid.body.message, 'body/value must be number')
  t.same(await postMetric(http, { name: 'visitors', value: 7 }), { status: 200, body: { delivered: 2 } })
  t.match((await first.json(3))[2], { type: 'metric', name: 'visitors', value: 7 })
  t.match((await second.json(3))[2], { type: 'metric', name: 'visitors', value: 7 })

  // A dashboard only listens: one that sends is closed with 1003, and leaves the room.
  second.send('hello?')
  t.same(await second.closed, { code: 1003, reason: 'text messages are not accepted' })
  await until(() => app.websocketSessions.size === 1)
  t.same(await postMetric(http, { name: 'orders', value: 43 }), { status: 200, body: { delivered: 1 } })
  t.match((await first.json(4))[3], { type: 'metric', name: 'orders', value: 43 })
  t.equal(second.received.length, 3)

  const stats = await (await fetch(`${http}/api/stats`)).json() as { messagesOut: number }
  t.match(stats, { sessions: 1, rooms: 1, closed: { unsupportedData: 1 } })
  t.ok(stats.messagesOut >= 7, 'every hello and metric sent is counted')
})

test('dashboard: the sampling job sends the server\'s heap to the dashboards', async (t) => {
  const { base } = await example(t, 'dashboard', { sampleInterval: 5 })
  const client = await connect(base, '/ws/dashboard')
  const [hello, sample] = await client.json(2)
  t.same(hello, { type: 'hello', viewers: 1 })
  t.match(sample, { type: 'metric', name: 'heapUsed', value: Number, at: Number })
  t.ok(sample.value > 0)
})

test('dashboard: the charts\' samples come from the plugin\'s metrics, which /metrics serves to Prometheus', async (t) => {
  const { http, base } = await example(t, 'dashboard', { chartInterval: 20 })
  const dashboard = await connect(base, '/ws/dashboard')
  const talkers = await Promise.all([0, 1].map(() => connect(base, '/ws/echo')))
  const samples = (): any[] => dashboard.received.map((m) => JSON.parse(String(m.data))).filter((m) => m.type === 'sample')
  await until(() => samples().at(-1)?.sessions === 3, () => `a sample with 3 sessions (${JSON.stringify(samples().at(-1))})`)
  for (let i = 1; i <= 5; i++) {
    for (const talker of talkers) talker.send(`ping ${i}`)
    await Promise.all(talkers.map((talker) => talker.texts(i)))
  }
  await until(() => samples().some((sample) => sample.messagesPerSecond > 0 && sample.p99Ms > 0), () => `a sample with traffic (${JSON.stringify(samples().at(-1))})`)
  const busy = samples().filter((sample) => sample.messagesPerSecond > 0)
  t.ok(busy.every((sample) => sample.p99Ms > 0 && sample.p99Ms < 10_000), 'p99 handler time, in ms, where there was traffic')
  const metrics = await (await fetch(`${http}/metrics`)).text()
  t.match(metrics, /^websocket_rooms_messages_received_total\{route="\/ws\/echo"\} 10$/m, 'the same counts, as Prometheus scrapes them')
  t.match(metrics, /^websocket_rooms_sessions\{route="\/ws\/dashboard"\} 1$/m)
  const page = await fetch(`${http}/`)
  t.equal(page.headers.get('content-type'), 'text/html; charset=utf-8')
  t.match(await page.text(), /<svg>/)
})

test('auth: no token or a wrong one gets 401 before the upgrade, and no session', async (t) => {
  const { app, base } = await example(t, 'auth')
  const unauthorized = { statusCode: 401, error: 'Unauthorized', message: 'a valid token is required' }
  for (const [url, options] of [
    [`${base}/ws`, undefined],
    [`${base}/ws?token=`, undefined],
    [`${base}/ws?token=mallory-token`, undefined],
    [`${base}/ws`, { headers: { authorization: 'Bearer mallory-token' } }],
    [`${base}/ws?token=alice-token`, { headers: { authorization: 'Basic YWxpY2U6c2VjcmV0' } }]
  ] as const) {
    const answer = await refusal(url, options)
    t.equal(answer.status, 401, `${url} ${JSON.stringify(options ?? {})}`)
    t.equal(answer.headers['www-authenticate'], 'Bearer')
    t.same(answer.body, unauthorized)
  }
  t.equal(app.websocketSessions.size, 0)
})

test('auth: a valid token, in the query or as a bearer header; the user id lives in the session attributes', async (t) => {
  const { app, base } = await example(t, 'auth')
  const alice = await connect(base, '/ws?token=alice-token')
  t.same(await alice.json(1), [{ type: 'hello', userId: 'alice', online: 1 }])
  const bob = await connect(base, '/ws?user=alice', { headers: { authorization: 'Bearer bob-token' } })
  t.same(await bob.json(1), [{ type: 'hello', userId: 'bob', online: 2 }], 'the user comes from the token, not the query')

  const users = [...app.websocketSessions.values()].map((session) => session.getAttribute('userId')).sort()
  t.same(users, ['alice', 'bob'])

  bob.send('hi all')
  t.same((await alice.json(2))[1], { type: 'message', from: 'bob', text: 'hi all' })
  t.same((await bob.json(2))[1], { type: 'message', from: 'bob', text: 'hi all' })
})

test('auth: build() takes its own tokens', async (t) => {
  const { base } = await example(t, 'auth', { tokens: new Map([['carol-token', 'carol']]) })
  t.equal((await refusal(`${base}/ws?token=alice-token`)).status, 401, 'the demo tokens are gone')
  const carol = await connect(base, '/ws?token=carol-token')
  t.same(await carol.json(1), [{ type: 'hello', userId: 'carol', online: 1 }])
})

/** Logs in at POST /login with `token`: the answer's status and its Set-Cookie header. */
async function login (http: string, token: string): Promise<{ status: number, cookie: string | null }> {
  const response = await fetch(`${http}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token })
  })
  await response.arrayBuffer()
  return { status: response.status, cookie: response.headers.get('set-cookie') }
}

test('auth with a signed cookie: POST /login sets it, and /ws/cookie accepts it', async (t) => {
  const { app, base, http } = await example(t, 'auth')
  const { status, cookie } = await login(http, 'alice-token')
  t.equal(status, 200)
  t.match(cookie, /^user=alice\.[\w+/=-]+; Path=\/; HttpOnly; SameSite=Strict$/, 'signed, HttpOnly, SameSite=Strict')
  const pair = cookie!.split(';')[0]!

  const alice = await connect(base, '/ws/cookie', { headers: { cookie: pair } })
  t.same(await alice.json(1), [{ type: 'hello', userId: 'alice', online: 1 }], 'the user comes from the cookie')
  t.equal([...app.websocketSessions.values()][0]?.getAttribute('userId'), 'alice')
  // A page of the app's own origin, as a browser sends it, is accepted too.
  const fromPage = await connect(base, '/ws/cookie', { headers: { cookie: pair, origin: http } })
  t.same(await fromPage.json(1), [{ type: 'hello', userId: 'alice', online: 2 }])
  fromPage.send('hi')
  t.same((await alice.json(2))[1], { type: 'message', from: 'alice', text: 'hi' })
})

test('auth with a signed cookie: 401 before the upgrade without one, with a tampered or unsigned one, and no session; 403 from another origin', async (t) => {
  const { app, base, http } = await example(t, 'auth')
  const { cookie } = await login(http, 'bob-token')
  const [name, signed] = cookie!.split(';')[0]!.split('=') as [string, string]
  t.equal(name, 'user')
  const signature = signed.slice(signed.indexOf('.') + 1)
  const unauthorized = { statusCode: 401, error: 'Unauthorized', message: 'a valid session cookie is required' }
  for (const [what, headers] of [
    ['no cookie', {}],
    ['another cookie only', { cookie: 'theme=dark' }],
    ['the value changed, the signature kept', { cookie: `user=alice.${signature}` }],
    ['the signature changed', { cookie: `user=bob.${signature.slice(1)}x` }],
    ['an unsigned value', { cookie: 'user=bob' }]
  ] as const) {
    const answer = await refusal(`${base}/ws/cookie`, { headers })
    t.equal(answer.status, 401, what)
    t.same(answer.body, unauthorized, what)
    t.equal(answer.headers['www-authenticate'], undefined, `${what}: no Bearer challenge for a cookie`)
  }
  t.equal(app.websocketSessions.size, 0, 'no session was opened')

  const crossSite = await refusal(`${base}/ws/cookie`, { headers: { cookie: `user=${signed}`, origin: 'https://evil.example' } })
  t.equal(crossSite.status, 403, 'a page of another site cannot use the cookie (cross-site WebSocket hijacking)')
  t.equal(app.websocketSessions.size, 0)

  t.same(await login(http, 'mallory-token'), { status: 401, cookie: null }, 'no cookie without a valid token')
  const bob = await connect(base, '/ws/cookie', { headers: { cookie: `user=${signed}` } })
  t.same(await bob.json(1), [{ type: 'hello', userId: 'bob', online: 1 }], 'the untouched cookie still works')
})

interface Member { id: string, user: string }

/** What a chat client has received, parsed. */
function parsed (client: Client): any[] {
  return client.received.map((message) => JSON.parse(String(message.data)))
}

/** The first message a chat client received that matches, once it has arrived. */
async function first (client: Client, match: (message: any) => boolean, what: string): Promise<any> {
  await until(() => parsed(client).some(match), () => `${what} (received: ${JSON.stringify(parsed(client)).slice(0, 300)})`)
  return parsed(client).find(match)
}

/** How many times each member's join (or leave) was told to a chat client, by user name. */
function told (client: Client, change: 'joined' | 'left'): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const notice of parsed(client).filter((message) => message.type === 'presence')) {
    for (const member of notice[change] as Member[]) counts[member.user] = (counts[member.user] ?? 0) + 1
  }
  return counts
}

/** Resolves once a chat client has been told of this member's join (or leave). */
async function untilTold (client: Client, change: 'joined' | 'left', member: Member): Promise<void> {
  await first(client, (message) => message.type === 'presence' && (message[change] as Member[]).some((entry) => entry.id === member.id),
    `a presence notice that ${member.user} ${change}`)
}

/** The user names of a list of members, sorted. */
function users (members: Member[]): string[] {
  return members.map((member) => member.user).sort()
}

redisTest('cluster: members on two servers share a room: one list of who is online, presence notices and messages across both; a server restarts and its client resumes on the other', async (t) => {
  const options = { redisUrl: REDIS_URL, keyPrefix: uniquePrefix('example-cluster') }
  const a = await example(t, 'cluster', options)
  const b = await example(t, 'cluster', options)

  /**
   * A user in a room of a server, once it has its welcome and has been told of its own join.
   * Across servers the two may come in either order: the welcome waits for Redis, and a
   * session is a member, sent what the room is sent, from its join on.
   */
  async function enter (base: string, user: string, room = 'lobby'): Promise<{ client: Client, member: Member, welcome: any }> {
    const client = await connect(base, `/ws/chat?user=${user}&room=${room}`)
    const welcome = await first(client, (message) => message.type === 'welcome', `${user}'s welcome`)
    t.match(welcome, { type: 'welcome', id: String, room })
    const member = { id: welcome.id, user }
    await untilTold(client, 'joined', member)
    return { client, member, welcome }
  }

  const alice = await enter(a.base, 'alice')
  t.same(alice.welcome.online, [alice.member])
  const bob = await enter(b.base, 'bob')
  t.same(users(bob.welcome.online), ['alice', 'bob'], 'bob\'s welcome, on server B, lists alice, on server A')
  await untilTold(alice.client, 'joined', bob.member) // told by server B, to alice on server A
  const carol = await enter(b.base, 'carol')
  t.same(users(carol.welcome.online), ['alice', 'bob', 'carol'])
  await untilTold(alice.client, 'joined', carol.member)
  await untilTold(bob.client, 'joined', carol.member)
  // In another room on server A: listed apart, and sent nothing of the lobby.
  const dave = await enter(a.base, 'dave', 'other')
  t.same(dave.welcome.online, [dave.member])

  // What alice adds to her message stays on server A: the outbound schema of examples/chat
  // serializes it there, once, and server B relays those bytes.
  alice.client.send(JSON.stringify({ type: 'chat.send', data: { text: 'hello from A', extra: 'not relayed' } }))
  for (const { client } of [bob, carol]) {
    const message = await first(client, (message) => message.type === 'message', 'alice\'s message')
    t.match(message, { type: 'message', epoch: alice.welcome.epoch, offset: 1, from: 'alice', text: 'hello from A', timestamp: Number }, 'from server A to server B')
    t.same(Object.keys(message).sort(), ['epoch', 'from', 'offset', 'text', 'timestamp', 'type'])
  }
  bob.client.send(say('hello from B'))
  const fromB = (message: any): boolean => message.type === 'message' && message.from === 'bob'
  t.match(await first(alice.client, fromB, 'bob\'s message on server A'), { text: 'hello from B' }, 'from server B to server A')
  t.match(await first(carol.client, fromB, 'bob\'s message on server B'), { text: 'hello from B' }, 'and to bob\'s own server')
  t.match(await first(bob.client, fromB, 'bob\'s own message'), { offset: 2 }, 'bob gets his own message too, at its position')
  t.equal(bob.welcome.epoch, alice.welcome.epoch, 'one stream of positions for the room, in Redis')
  // The same protocol as examples/chat: what is not a chat message gets an error notice, and
  // reaches nobody else.
  bob.client.send('hello?')
  t.match(await first(bob.client, (message) => message.type === 'error', 'the error notice'), { reason: /^message is not valid JSON/ })

  t.same(await bob.client.close(), { code: 1005, reason: '' })
  await untilTold(alice.client, 'left', bob.member) // told by server B, to alice on server A
  await untilTold(carol.client, 'left', bob.member)
  // Once server B has written bob's leave, both servers list the same members.
  await b.app.websocketRooms.room('lobby').clusterMembers()
  for (const { app } of [a, b]) {
    const { members, complete } = await app.websocketRooms.room('lobby').presence()
    t.same({ users: members.map((entry) => (entry.info as { user: string }).user).sort(), complete }, { users: ['alice', 'carol'], complete: true })
  }

  // Server A restarts: app.close() closes its sessions with 1012 and keeps them in Redis. Alice
  // comes back on server B with her welcome's token: the same session, in the lobby, and
  // nobody is told she left or joined.
  await a.app.close()
  t.same(await alice.client.closed, { code: 1012, reason: 'service restart' })
  const back = await connect(b.base, `/ws/chat?user=alice&room=lobby&resume=${alice.welcome.resume}`)
  const resumed = await first(back, (message) => message.type === 'welcome', 'alice\'s welcome on server B')
  t.match(resumed, { id: alice.member.id, room: 'lobby', resumed: true, resume: String })
  t.same(users(resumed.online), ['alice', 'carol'])
  back.send(say('back on B'))
  t.match(await first(carol.client, (message) => message.type === 'message' && message.text === 'back on B', 'alice\'s message from server B'), { from: 'alice' })
  // Then she leaves for good: told once, on server B.
  t.same(await back.close(), { code: 1005, reason: '' })
  await untilTold(carol.client, 'left', alice.member)
  t.same(told(alice.client, 'joined'), { alice: 1, bob: 1, carol: 1 }, 'each join told once on server A')
  t.same(told(alice.client, 'left'), { bob: 1 }, 'and each leave')
  t.same(told(carol.client, 'joined'), { carol: 1 }, 'on server B too: alice\'s comeback is no join')
  t.same(told(carol.client, 'left'), { bob: 1, alice: 1 }, 'and her restart no leave')
  t.same(parsed(back).filter((message) => message.type === 'presence'), [], 'alice, back, was told no change either')
  t.same(parsed(dave.client).map((message) => message.type).sort(), ['presence', 'welcome'], 'the other room got its own join only')
})

redisTest('cluster: a client that was on one server resumes on the other from its position: what it missed, in order, then the live ones', async (t) => {
  await resumesAcross(t, { redisUrl: REDIS_URL, keyPrefix: uniquePrefix('example-cluster-resume') })
})

clusterTest('cluster on a Redis Cluster (REDIS_CLUSTER_URL): a client resumes on the other server, what it missed in order, then the live ones', async (t, url) => {
  await resumesAcross(t, { clusterUrl: url, keyPrefix: uniquePrefix('example-cluster-sharded') })
})

async function resumesAcross (t: Test, options: Record<string, unknown>): Promise<void> {
  const a = await example(t, 'cluster', options)
  const b = await example(t, 'cluster', options)
  const messages = (client: Client): any[] => parsed(client).filter((message) => message.type === 'message')
  const bob = await connect(b.base, '/ws/chat?user=bob&room=lobby')
  await first(bob, (message) => message.type === 'welcome', 'bob\'s welcome')
  const alice = await connect(a.base, '/ws/chat?user=alice&room=lobby')
  const welcome = await first(alice, (message) => message.type === 'welcome', 'alice\'s welcome')
  bob.send(say('one'))
  await until(() => messages(alice).length === 1, 'one, on server A')
  const { epoch, offset } = messages(alice)[0]
  t.same({ epoch, offset }, { epoch: welcome.epoch, offset: 1 })
  await alice.close()

  for (const text of ['two', 'three', 'four']) bob.send(say(text))
  await until(() => messages(bob).length === 4, 'bob\'s four messages')
  const back = await connect(b.base, `/ws/chat?user=alice&room=lobby&epoch=${epoch}&offset=${offset}`)
  const resumed = await first(back, (message) => message.type === 'welcome', 'alice\'s welcome on server B')
  t.match(resumed, { resumed: true })
  t.same(parsed(back).filter((message) => message.type === 'message' || message.type === 'welcome').map((message) => message.text ?? message.type),
    ['two', 'three', 'four', 'welcome'], 'the missed messages, from Redis, before the welcome')
  bob.send(say('five'))
  await until(() => messages(back).length === 4, 'five, live')
  t.same(messages(back).map((message) => message.offset), [2, 3, 4, 5], 'in order, none twice')
}

/** What each example's program offers first, to check that it serves. */
const programs: Record<string, (client: Client, t: Test) => Promise<void>> = {
  chat: async (client, t) => { t.match((await client.json(1))[0], { type: 'welcome', room: 'lobby', online: [{ user: 'alice' }] }) },
  echo: async (client, t) => { t.same(await client.texts(1), ['Welcome to the chat room!']) },
  binary: async (client, t) => { t.same(await client.messages(1), [{ data: Buffer.from('Binary hello'), binary: true }]) },
  broadcast: async (client, t) => { t.same(await client.texts(1), ['Connection established!']) },
  dashboard: async (client, t) => { t.same(await client.json(1), [{ type: 'hello', viewers: 1 }]) },
  auth: async (client, t) => { t.same(await client.json(1), [{ type: 'hello', userId: 'alice', online: 1 }]) }
}

test('every example has its npm script, and `npm start` is the chat', async (t) => {
  const { scripts } = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  const names = [...Object.keys(programs), 'cluster']
  t.same(Object.keys(scripts).filter((name) => name.startsWith('example:')).sort(), names.map((name) => `example:${name}`).sort())
  for (const name of names) {
    t.equal(scripts[`example:${name}`], `npm run build --silent && node examples/${name}/server.mjs`)
  }
  t.equal(scripts.start, scripts['example:chat'])
})

for (const [name, check] of Object.entries(programs)) {
  test(`examples/${name}/server.mjs as a program: listens on PORT and HOST, logs its URLs, closes on SIGTERM`, async (t) => {
    const run = program(t, name, { PORT: '0', HOST: '127.0.0.1' })
    // The chat's URL has placeholders: ?user=NAME&room=NAME.
    const client = new Client((await run.url(name)).replace('user=NAME', 'user=alice').replace('room=NAME', 'room=lobby'))
    await client.opened
    await check(client, t)
    const stopped = run.stop()
    // The chat keeps its sessions for a resume: it closes them with 1012 (service restart).
    t.same(await client.closed, name === 'chat' ? { code: 1012, reason: 'service restart' } : { code: 1001, reason: 'server shutting down' }, 'sessions are closed with 1001, or 1012 where they resume')
    t.same((await stopped).exit, [0, null], 'the process exits with 0 on its own')
    const { messages } = run
    t.match(messages[0], /^Server listening at http:\/\/127\.0\.0\.1:\d+$/)
    t.ok(messages.slice(1, -2).length > 0, 'logs at least one URL')
    for (const message of messages.slice(1, -2)) t.match(message, new RegExp(`^${name}: `))
    t.same(messages.slice(-2), ['SIGTERM received, closing', 'closed'])
  })
}

redisTest('examples/cluster/server.mjs as a program: servers A and B on PORT_A and PORT_B share the room, both close on SIGTERM', async (t) => {
  const run = program(t, 'cluster', { PORT_A: '0', PORT_B: '0', HOST: '127.0.0.1', REDIS_URL, KEY_PREFIX: uniquePrefix('example-cluster-program') })
  const [pageA, socketA, socketB] = await Promise.all([run.url('cluster A', true), run.url('cluster A'), run.url('cluster B')])
  t.not(new URL(socketA).port, new URL(socketB).port, 'two servers')
  const page = await fetch(pageA)
  t.equal(page.headers.get('content-type'), 'text/html; charset=utf-8', 'each serves the chat page')
  t.match(await page.text(), /new WebSocket\(url\)/)

  const alice = new Client(socketA.replace('user=NAME', 'user=alice').replace('room=NAME', 'room=lobby'))
  const isWelcome = (message: any): boolean => message.type === 'welcome'
  t.match(await first(alice, isWelcome, 'alice\'s welcome'), { room: 'lobby', online: [{ user: 'alice' }] })
  const bob = new Client(socketB.replace('user=NAME', 'user=bob').replace('room=NAME', 'room=lobby'))
  const bobWelcome = await first(bob, isWelcome, 'bob\'s welcome')
  t.same(users(bobWelcome.online), ['alice', 'bob'], 'server B lists the users of both')
  await untilTold(alice, 'joined', { id: bobWelcome.id, user: 'bob' })
  bob.send(say('hi alice'))
  t.match(await first(alice, (message) => message.type === 'message', 'bob\'s message'), { from: 'bob', text: 'hi alice' })

  const stopped = run.stop()
  for (const client of [alice, bob]) t.same(await client.closed, { code: 1012, reason: 'service restart' }, 'both servers close their sessions with 1012: they resume')
  t.same((await stopped).exit, [0, null], 'the process exits with 0 on its own')
  const { messages } = run
  t.same(messages.filter((message) => message.startsWith('Server listening at ')).length, 2)
  t.same(messages.filter((message) => message.startsWith('cluster ')).length, 4, 'a page and a socket URL for each server')
  t.same(messages.slice(-2), ['SIGTERM received, closing', 'closed'])
})

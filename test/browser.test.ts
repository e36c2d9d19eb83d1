// The chat example (examples/chat) in a real browser: headless Chromium, driven by
// playwright-core, loads the page the server serves at / and talks to /ws/chat with the
// browser's own WebSocket. Two users in two browser contexts join one room, see each other in
// the list of who is online and in the log as they join and leave (the presence notices), and
// exchange messages (JSON both ways); a second tab of one user counts in the list, not in the
// log; a message the server refuses shows as an error notice on its sender's page only;
// screenshots of both pages are saved under artifacts/. Then the page's connection drops: it
// reconnects by itself and shows what it missed, once and in order, or, when the room's
// history no longer covers the gap, says it reloaded the room. Pages on one of two servers
// sharing Redis (examples/cluster) while that server restarts (app.close(), then a new app on
// its port) and messages are published on the other: each page comes back with its token as
// the same session, and shows every message once, in order. A page in a room of a server
// with compression: 'shared' gets compressed broadcasts exactly as sent.
//
// Chromium comes from Debian's packages (chromium, chromium-driver), not from Playwright's
// downloads: .ci/run installs them when they are missing. CHROMIUM_PATH points the test at a
// binary; without it, `chromium` (or `chromium-browser`) on the PATH. Where there is none, the
// test is skipped with one line that says how to run it, as the Redis tests are without Redis;
// under CI=true it must run, so a missing Chromium fails it.
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { delimiter, join as joinPath, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { type Browser, type Page, chromium } from 'playwright-core'
import { test, type Test } from 'tap'
import { Client, build as buildApp, connect, listen } from './helpers'
import { REDIS_URL, redisTest, uniquePrefix } from './redis'
import { DEADLINE, gate, until } from './signals'

/** CHROMIUM_PATH, else the first Chromium on the PATH; null when there is none. */
function findChromium (): string | null {
  const given = process.env.CHROMIUM_PATH
  if (given !== undefined && given !== '') return existsSync(given) ? given : null
  const folders = (process.env.PATH ?? '').split(delimiter).filter((folder) => folder !== '')
  for (const name of ['chromium', 'chromium-browser']) {
    for (const folder of folders) if (existsSync(joinPath(folder, name))) return joinPath(folder, name)
  }
  return null
}

const executablePath = findChromium()
const INSTALL = 'apt-get update && apt-get install -y chromium chromium-driver'
const artifacts = resolve(__dirname, '..', 'artifacts')

// Flags that work in containers and CI. Playwright adds --headless, and a fresh
// --user-data-dir of its own for each launch (deleted at close).
const args = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run'
]

/** A fresh browser context (its own cookies and storage: another user) with one page on the chat. */
async function open (browser: Browser, url: string, errors: string[]): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 720, height: 560 } })
  const page = await context.newPage()
  page.setDefaultTimeout(DEADLINE)
  page.on('pageerror', (error) => errors.push(`page error: ${error.message}`))
  page.on('console', (message) => { if (message.type() === 'error') errors.push(`console: ${message.text()}`) })
  await page.goto(url)
  return page
}

async function join (page: Page, user: string, room: string): Promise<void> {
  await page.fill('#user', user)
  await page.fill('#room', room)
  await page.click('#join-button')
}

async function say (page: Page, text: string): Promise<void> {
  await page.fill('#text', text)
  await page.press('#text', 'Enter')
}

/** Waits until the page's list of who is online reads `names` (as the page shows them: sorted, ×N for several sessions). */
async function untilOnline (page: Page, names: string[]): Promise<void> {
  const expected = JSON.stringify(names)
  await page.waitForFunction(`JSON.stringify([...document.querySelectorAll('#online li')].map((item) => item.textContent)) === ${JSON.stringify(expected)}`)
}

/** Waits for a line of the chat log holding `text`. */
async function untilLine (page: Page, text: string): Promise<void> {
  await page.locator('#log li', { hasText: text }).waitFor()
}

const lines = (page: Page): Promise<string[]> => page.locator('#log li').allTextContents()

/** False, having skipped the test (or failed it, under CI=true), when there is no Chromium. */
function haveChromium (t: Test): boolean {
  if (executablePath !== null) return true
  const where = process.env.CHROMIUM_PATH ? `at CHROMIUM_PATH=${process.env.CHROMIUM_PATH}` : 'on the PATH'
  const why = `no Chromium ${where}; to run it, install one (\`${INSTALL}\`, as root) or set CHROMIUM_PATH, ` +
    'then: npx tap test/browser.test.ts'
  if (process.env.CI === 'true') t.fail(`${why} (CI=true: the browser test must run, never skip)`)
  else t.plan(0, `skipped: ${why}`)
  return false
}

interface ChatServer { build (options?: { history?: { size: number, ttl: number } }): Promise<FastifyInstance> }

/** The chat example's app (examples/chat/server.mjs), not yet listening, closed after the test. */
async function chat (t: Test, options?: Parameters<ChatServer['build']>[0]): Promise<FastifyInstance> {
  const { build } = await import(pathToFileURL(resolve(__dirname, '..', 'examples', 'chat', 'server.mjs')).href) as ChatServer
  const app = await build(options)
  t.teardown(() => app.close())
  return app
}

async function launch (t: Test): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: executablePath!, headless: true, args })
  t.teardown(() => browser.close())
  return browser
}

test('chat example in headless Chromium: two users join a room, talk, see who is online, joins, leaves and an error notice', async (t) => {
  if (!haveChromium(t)) return
  const app = await chat(t)
  const http = (await listen(app)).replace(/^ws/, 'http')

  const browser = await launch(t)
  t.match(browser.version(), /^\d+\./, `Chromium ${browser.version()}`)
  const errors: string[] = []

  // Alice joins the lobby: her welcome lists who is online, herself.
  const alice = await open(browser, `${http}/`, errors)
  t.equal(await alice.title(), 'Chat')
  t.equal(await alice.inputValue('#room'), 'chat', 'the default room')
  await join(alice, 'alice', 'lobby')
  await untilOnline(alice, ['alice'])
  t.equal(await alice.textContent('#status'), 'connected as alice')
  t.equal(await alice.textContent('#room-name'), 'lobby')
  t.same(await lines(alice), ['you joined lobby'])

  // Bob's page comes with his name and room in its URL; his welcome lists alice, and alice's
  // page is told he joined.
  const bob = await open(browser, `${http}/?user=bob&room=lobby`, errors)
  t.equal(await bob.inputValue('#user'), 'bob')
  t.equal(await bob.inputValue('#room'), 'lobby')
  await bob.click('#join-button')
  await untilOnline(bob, ['alice', 'bob'])
  await untilLine(alice, 'bob joined')
  await untilOnline(alice, ['alice', 'bob'])
  t.equal(await alice.textContent('#online-count'), '2')
  t.equal(app.websocketRooms.room('lobby').members(), 2)

  // Messages both ways. The server sends each message to every member, its sender too: each
  // page shows it when it comes back, at its position, so both show the same order.
  await say(alice, 'hello bob')
  await untilLine(bob, 'alice: hello bob')
  // The server's reply to the page's chat.send (its id) says it went out.
  await alice.waitForFunction('document.getElementById(\'delivery\').textContent === \'sent\'')
  t.equal(await alice.textContent('#delivery'), 'sent')
  await say(bob, 'hi alice')
  await untilLine(alice, 'bob: hi alice')
  // Text is shown as text: markup in a message does not become elements.
  await say(alice, '<b>bold?</b> & "quotes"')
  await untilLine(bob, 'alice: <b>bold?</b> & "quotes"')
  await untilLine(alice, 'alice: <b>bold?</b> & "quotes"')
  t.equal(await bob.locator('#log b').count(), 0, 'no element made from a message')
  t.same(await lines(alice), ['you joined lobby', 'bob joined', 'alice: hello bob', 'bob: hi alice', 'alice: <b>bold?</b> & "quotes"'])
  t.same(await lines(bob), ['you joined lobby', 'alice: hello bob', 'bob: hi alice', 'alice: <b>bold?</b> & "quotes"'])
  t.equal(await alice.locator('#log li.mine').count(), 2, 'alice\'s own messages are marked as hers')

  // The page sends JSON and keeps its input within the server's 2000 characters, so only
  // another client can send what the server refuses: this one is the page's own socket.
  // The error notice reaches alice only, and her session stays open.
  t.equal(await alice.getAttribute('#text', 'maxlength'), '2000')
  await alice.evaluate('socket.send("hello?")')
  await untilLine(alice, 'error: message is not valid JSON')
  await say(alice, 'still here')
  await untilLine(bob, 'alice: still here')
  await untilLine(alice, 'alice: still here')
  t.equal(await bob.locator('#log li', { hasText: 'error' }).count(), 0, 'bob got no error notice')
  t.equal(await alice.locator('#log li.error').count(), 1)

  mkdirSync(artifacts, { recursive: true })
  for (const [name, page] of [['alice', alice], ['bob', bob]] as const) {
    const path = resolve(artifacts, `chat-${name}.png`)
    await page.screenshot({ path, fullPage: true })
    const png = readFileSync(path)
    t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${path} is a PNG`)
    t.ok(png.length > 5_000, `${path} holds a picture (${png.length} bytes)`)
  }

  // A second tab of alice's, under the same name: one more session in her list, no news in
  // the log. Closing it takes it out again.
  const aliceAgain = await alice.context().newPage()
  await aliceAgain.goto(`${http}/?user=alice&room=lobby`)
  await aliceAgain.click('#join-button')
  await untilOnline(aliceAgain, ['alice ×2', 'bob'])
  await untilOnline(alice, ['alice ×2', 'bob'])
  await untilOnline(bob, ['alice ×2', 'bob'])
  t.equal(await alice.textContent('#online-count'), '2', 'two users online')
  await aliceAgain.close()
  await untilOnline(alice, ['alice', 'bob'])
  await untilOnline(bob, ['alice', 'bob'])
  t.same((await lines(bob)).filter((line) => line.startsWith('alice ')), [], 'alice\'s second tab made no line in the log')

  // Bob leaves: his page says so, alice sees the notice and bob gone from her list.
  await bob.click('#leave')
  await bob.locator('#closed', { hasText: 'disconnected (1000: left the room)' }).waitFor()
  t.equal(await bob.isVisible('#join'), true, 'bob can join again')
  await untilLine(alice, 'bob left')
  await untilOnline(alice, ['alice'])
  t.same((await lines(alice)).slice(-1), ['bob left'])
  await until(() => app.websocketRooms.room('lobby').members() === 1)

  // A handshake the server refuses (the schema wants a non-empty user): the browser's
  // WebSocket closes with 1006, and the page says so.
  await join(bob, '   ', 'lobby')
  await bob.locator('#closed', { hasText: 'disconnected (1006)' }).waitFor()
  t.equal(app.websocketRooms.room('lobby').members(), 1, 'no session for a refused handshake')

  // Bob is back, then closes his tab: alice's list has him, then no longer.
  await join(bob, 'bob', 'lobby')
  await untilOnline(bob, ['alice', 'bob'])
  await untilOnline(alice, ['alice', 'bob'])
  await bob.close()
  await untilOnline(alice, ['alice'])
  t.same((await lines(alice)).slice(-3), ['bob left', 'bob joined', 'bob left'])

  // Closing alice's tab ends her session, and the empty room goes away.
  await alice.close()
  await until(() => app.websocketSessions.size === 0)
  t.same(app.websocketRooms.roomNames(), [])

  // The refused handshake makes Chromium log a console error; nothing else may.
  t.same(errors.filter((error) => !/WebSocket connection to .* failed/.test(error)), [], 'no page or console errors')
})

test('compression: \'shared\' in headless Chromium: a page in a room gets compressed broadcasts, direct sends and pings, each exactly as sent, in order', async (t) => {
  if (executablePath === null) {
    t.plan(0, 'skipped: no Chromium (see the test above)')
    return
  }
  const app = await buildApp(t, { compression: 'shared', heartbeatInterval: 0 })
  const json = (size: number, seed: number): string => {
    let text = '['
    for (let i = 0; text.length < size; i++) text += `{"id":${seed * 1000 + i},"name":"user${(i * 7919 + seed) % 97}","é":"ü ${i}"},`
    return text.slice(0, size)
  }
  const sizes = [10, 1023, 1024, 2048, 70_000]
  const expected: string[] = []
  for (const [i, size] of sizes.entries()) {
    expected.push(`text ${json(size, i)}`, `direct ${i}`, `binary ${Buffer.alloc(size, i + 1).toString('base64')}`)
  }
  let offered: string | undefined
  let negotiated = ''
  app.registerWebsocket('/ws', {
    onConnected (session) {
      offered = session.getHeader('sec-websocket-extensions') ?? undefined
      negotiated = session.socket.extensions
      session.room('browser').join()
      session.send('ready')
    },
    handleText (session, text) {
      if (text !== 'go') return
      for (const [i, size] of sizes.entries()) {
        session.room('browser').broadcast(`text ${json(size, i)}`)
        session.send(`direct ${i}`)
        session.room('browser').broadcast(Buffer.alloc(size, i + 1))
        session.socket.ping()
      }
    }
  })
  const url = await listen(app)

  const browser = await chromium.launch({ executablePath, headless: true, args })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  page.setDefaultTimeout(DEADLINE)
  const got = await page.evaluate(`new Promise((resolve, reject) => {
    const socket = new WebSocket(${JSON.stringify(url + '/ws')})
    socket.binaryType = 'arraybuffer'
    const got = []
    socket.onerror = () => reject(new Error('socket error'))
    socket.onmessage = (event) => {
      if (event.data === 'ready') return socket.send('go')
      if (typeof event.data === 'string') got.push(event.data)
      else {
        let binary = ''
        for (const byte of new Uint8Array(event.data)) binary += String.fromCharCode(byte)
        got.push('binary ' + btoa(binary))
      }
      if (got.length === ${expected.length}) resolve(got)
    }
  })`) as string[]
  t.match(offered, /permessage-deflate/, `Chromium offered: ${offered}`)
  t.equal(negotiated, 'permessage-deflate', 'and it was negotiated')
  t.equal(got.length, expected.length)
  t.equal(got.findIndex((message, i) => message !== expected[i]), -1, 'every message exactly as sent, in order')
})

/** What a chat server does with the handshakes of pages that come back with a position (those that reconnect). */
interface Reconnections {
  /** Each one's query string, and when it came (Date.now()). */
  queries: Array<Record<string, string | undefined>>
  times: number[]
  /** How many of the first ones are refused with 503 (a server not ready yet). */
  refuse: number
  /** The others wait for this gate, so that the test decides what the page misses meanwhile. */
  held: ReturnType<typeof gate>
}

/** The chat example on a loopback port, with its reconnections in the test's hands. */
async function chatWithReconnections (t: Test, history?: { size: number, ttl: number }): Promise<{ app: FastifyInstance, base: string, http: string, reconnections: Reconnections }> {
  const app = await chat(t, history === undefined ? undefined : { history })
  const reconnections: Reconnections = { queries: [], times: [], refuse: 0, held: gate() }
  app.addHook('onRequest', async (request, reply) => {
    const query = request.query as Record<string, string | undefined>
    if (!request.url.startsWith('/ws/chat?') || query.epoch === undefined) return
    reconnections.queries.push(query)
    reconnections.times.push(Date.now())
    if (reconnections.queries.length <= reconnections.refuse) return await reply.code(503).send({ message: 'not yet' })
    await reconnections.held.opened
  })
  const base = await listen(app)
  return { app, base, http: base.replace(/^ws/, 'http'), reconnections }
}

/** Cuts the user's session on the server without a close handshake, as a network that drops does: the page sees 1006. */
function cut (app: FastifyInstance, user: string): void {
  const sessions = [...app.websocketSessions.values()].filter((session) => session.getAttribute('username') === user)
  if (sessions.length !== 1) throw new Error(`${sessions.length} sessions of ${user}`)
  sessions[0]!.terminate()
}

/** A chat client in the test, outside the browser, in the room lobby. */
class Speaker {
  constructor (readonly client: Client) {}

  /** The chat messages it got back (its own included), as `from: text`. */
  said (): string[] {
    return this.client.received.map((message) => JSON.parse(String(message.data))).filter((message) => message.type === 'message').map((message) => `${message.from}: ${message.text}`)
  }

  /** Says each text, and resolves once the server has published them all (it got them back). */
  async say (...texts: string[]): Promise<void> {
    const count = this.said().length + texts.length
    for (const text of texts) this.client.send(JSON.stringify({ type: 'chat.send', data: { text } }))
    await until(() => this.said().length >= count, () => `${count} messages back (${JSON.stringify(this.said())})`)
  }
}

const said = (page: Page): Promise<string[]> => page.locator('#log li.message').allTextContents()

test('chat page in headless Chromium: after a drop it reconnects by itself, with backoff, and shows what it missed once and in order; past what the history keeps, it says it reloaded the room', async (t) => {
  if (!haveChromium(t)) return
  const browser = await launch(t)
  const errors: string[] = []

  // The page reconnects after 40 ms, then 80, 160... each drawn between its half and its whole.
  const { app, base, http, reconnections } = await chatWithReconnections(t)
  const dan = new Speaker(await connect(base, '/ws/chat?user=dan&room=lobby'))
  const carol = await open(browser, `${http}/?user=carol&room=lobby&reconnect=40`, errors)
  await carol.click('#join-button')
  await untilOnline(carol, ['carol', 'dan'])
  await dan.say('before the drop')
  await say(carol, 'me too')
  await untilLine(carol, 'carol: me too')
  await until(() => dan.said().length === 2)

  // The connection drops; dan says three things meanwhile, while the page's reconnection waits
  // at the server's door.
  cut(app, 'carol')
  await carol.locator('#status', { hasText: 'reconnecting' }).waitFor()
  t.equal(await carol.isVisible('#chat'), true, 'the room stays on screen')
  await dan.say('one', 'two', 'three')
  await until(() => reconnections.queries.length === 1, 'the page\'s reconnection')
  t.match(reconnections.queries[0], { user: 'carol', room: 'lobby', epoch: String, offset: '2' }, 'from the position of the last message it showed')
  reconnections.held.open()

  // Back: the three missed, once each and in order, then the live ones.
  await untilLine(carol, 'dan: three')
  await carol.locator('#status', { hasText: 'connected as carol' }).waitFor()
  const before = ['dan: before the drop', 'carol: me too']
  t.same(await said(carol), [...before, 'dan: one', 'dan: two', 'dan: three'], 'what it missed, once each, in order')
  await dan.say('after the drop')
  await say(carol, 'back')
  await untilLine(carol, 'carol: back')
  t.same(await said(carol), [...before, 'dan: one', 'dan: two', 'dan: three', 'dan: after the drop', 'carol: back'], 'then the live ones, none twice')
  t.equal(await carol.locator('#log li.reloaded').count(), 0, 'no reload')
  await until(() => dan.said().length === 7)
  t.same(dan.said(), await said(carol), 'the same order as another member\'s')

  // Another server whose history keeps two messages per room; its first three reconnections
  // are refused (503), as a server not ready yet does, so the page retries with backoff.
  const short = await chatWithReconnections(t, { size: 2, ttl: 60_000 })
  short.reconnections.refuse = 3
  const eve = new Speaker(await connect(short.base, '/ws/chat?user=eve&room=lobby'))
  const page = await open(browser, `${short.http}/?user=carol&room=lobby&reconnect=40`, errors)
  await page.click('#join-button')
  await untilOnline(page, ['carol', 'eve'])
  await eve.say('old')
  await untilLine(page, 'eve: old')
  cut(short.app, 'carol')
  await page.locator('#status', { hasText: 'reconnecting' }).waitFor()
  // Missed: three messages, one more than the history keeps.
  await eve.say('a', 'b', 'c')
  await until(() => short.reconnections.queries.length === 4, 'three refused reconnections, then one held')
  const waits = short.reconnections.times.slice(1).map((time, i) => time - short.reconnections.times[i]!)
  // Attempts 2, 3 and 4 wait 80, 160 and 320 ms, at least half of that (jitter), give or take a timer's slack.
  waits.forEach((wait, i) => t.ok(wait >= 40 * 2 ** i - 5, `attempt ${i + 2} came ${wait} ms after the one before (backoff ${80 * 2 ** i} ms, half at least)`))
  t.match(short.reconnections.queries[3], { epoch: String, offset: '1' })
  short.reconnections.held.open()

  // The history no longer has 'a': the page says it reloaded the room, and shows its last messages.
  await page.locator('#log li.reloaded').waitFor()
  await untilLine(page, 'eve: c')
  await page.locator('#status', { hasText: 'connected as carol' }).waitFor()
  t.same(await lines(page), ['reloaded the room: too much was missed while disconnected', 'eve: b', 'eve: c'], 'the list replaced by the room\'s last messages')
  await eve.say('d')
  await untilLine(page, 'eve: d')
  t.same(await said(page), ['eve: b', 'eve: c', 'eve: d'], 'then the live ones, none twice')

  mkdirSync(artifacts, { recursive: true })
  await page.screenshot({ path: resolve(artifacts, 'chat-reloaded.png'), fullPage: true })
  // Refused handshakes make Chromium log a console error; nothing else may.
  t.same(errors.filter((error) => !/WebSocket connection to .* failed/.test(error)), [], 'no page or console errors')
})

/** examples/cluster's app: the chat with the Redis adapter, its sessions kept in Redis for a resume. */
async function clusterChat (t: Test, keyPrefix: string): Promise<FastifyInstance> {
  const { build } = await import(pathToFileURL(resolve(__dirname, '..', 'examples', 'cluster', 'server.mjs')).href) as { build (options: Record<string, unknown>): Promise<FastifyInstance> }
  const app = await build({ redisUrl: REDIS_URL, keyPrefix })
  t.teardown(() => app.close())
  return app
}

redisTest('chat pages in headless Chromium: their server restarts (app.close(), a new app on its port, one Redis) while messages are published; each page resumes as the same session, every message once, in order', async (t) => {
  if (!haveChromium(t)) return
  const keyPrefix = uniquePrefix('browser-restart')
  // Server B stays up: dan publishes there all along. The pages are on server A, which restarts.
  const b = await clusterChat(t, keyPrefix)
  const dan = new Speaker(await connect(await listen(b), '/ws/chat?user=dan&room=lobby'))
  const a = await clusterChat(t, keyPrefix)
  const http = (await listen(a)).replace(/^ws/, 'http')
  const port = (a.server.address() as { port: number }).port

  const browser = await launch(t)
  const errors: string[] = []
  const users = ['ann', 'ben', 'cat']
  const pages: Page[] = []
  for (const user of users) {
    const page = await open(browser, `${http}/?user=${user}&room=lobby&reconnect=40`, errors)
    await page.click('#join-button')
    pages.push(page)
  }
  for (const page of pages) await untilOnline(page, [...users, 'dan'].sort())
  const ids = await Promise.all(pages.map((page) => page.evaluate('sessionId')))
  t.equal(new Set(ids).size, 3, 'three sessions')
  // What each page's log and dan were told of the joins, before anything restarts.
  const notices = (from: number): any[] => dan.client.received.slice(from).map((message) => JSON.parse(String(message.data))).filter((message) => message.type === 'presence')
  await until(() => users.every((user) => notices(0).some((notice) => notice.joined.some((member: { user: string }) => member.user === user))), 'dan told of the three joins')
  const told = dan.client.received.length
  const people = await Promise.all(pages.map(async (page) => (await lines(page)).filter((line) => !line.startsWith('dan: '))))

  // Dan says m1, m2... one after the other (each once it came back to him), until told to stop.
  const talk = { on: true }
  let count = 0
  const talking = (async () => {
    while (talk.on) await dan.say(`m${++count}`)
  })()
  await until(() => count >= 5, 'five messages before the restart')

  // Server A restarts: its sessions closed with 1012, kept in Redis; a new app on its port.
  await a.close()
  for (const page of pages) await page.locator('#status', { hasText: 'reconnecting' }).waitFor()
  const down = count
  await until(() => count >= down + 5, 'five messages while server A is down')
  const again = await clusterChat(t, keyPrefix)
  await again.listen({ port, host: '127.0.0.1' })
  for (const page of pages) await page.locator('#status', { hasText: 'resumed' }).waitFor()
  const up = count
  await until(() => count >= up + 5, 'five messages once back')
  talk.on = false
  await talking

  // Every page shows what dan got back: every message once, in order, no gap.
  const all = dan.said()
  t.equal(all.length, count)
  for (const [i, page] of pages.entries()) {
    await page.waitForFunction(`document.querySelectorAll('#log li.message').length >= ${count}`)
    t.same(await said(page), all, `${users[i]}: every message once, in order`)
    t.equal(await page.locator('#log li.reloaded').count(), 0, `${users[i]}: no reload`)
    t.equal(await page.evaluate('sessionId'), ids[i], `${users[i]}: the same session`)
    t.match(await page.textContent('#status'), `connected as ${users[i]}, resumed`)
    t.same(await lines(page), [...people[i]!, ...all], `${users[i]}: no join or leave in the log since`)
  }
  // Nobody left, nobody joined: dan, on server B, was told no presence change.
  t.same(notices(told), [], 'no presence notice while server A restarted')
  await Promise.all(pages.map((page) => untilOnline(page, [...users, 'dan'].sort())))
  t.same(errors.filter((error) => !/WebSocket connection to .* failed/.test(error)), [], 'no page or console errors')
})

test('dashboard example in headless Chromium: live charts of the plugin\'s own metrics (sessions, messages per second, p99 handler time)', async (t) => {
  if (!haveChromium(t)) return
  const { build } = await import(pathToFileURL(resolve(__dirname, '..', 'examples', 'dashboard', 'server.mjs')).href) as { build (options: { chartInterval: number }): Promise<FastifyInstance> }
  const app = await build({ chartInterval: 50 })
  t.teardown(() => app.close())
  const base = await listen(app)
  const browser = await launch(t)
  const errors: string[] = []
  const page = await open(browser, base.replace(/^ws/, 'http') + '/', errors)
  const value = (id: string): Promise<string> => page.locator(`#${id} .value`).innerText()
  const talkers = await Promise.all([0, 1].map(() => connect(base, '/ws/echo')))
  await page.waitForFunction('document.querySelector("#sessions .value").textContent === "3"')
  t.equal(await value('sessions'), '3', 'the page and two clients')
  // Traffic until a sample shows it: the charts say what the clients do.
  let sent = 0
  const deadline = Date.now() + DEADLINE
  while (!(Number(await value('rate')) > 0 && Number(await value('p99')) > 0)) {
    if (Date.now() > deadline) throw new Error(`no sample with traffic on the page after ${sent} rounds of messages`)
    sent++
    for (const talker of talkers) talker.send(`ping ${sent}`)
    await Promise.all(talkers.map((talker) => talker.texts(sent)))
  }
  const points = await page.locator('#rate polyline').getAttribute('points')
  t.ok(points!.split(' ').length >= 2, `the messages chart has a line (${points!.split(' ').length} points)`)
  await Promise.all(talkers.map((talker) => talker.close()))
  await page.waitForFunction('document.querySelector("#sessions .value").textContent === "1"')
  t.equal(await value('sessions'), '1', 'clients that leave leave the chart')
  mkdirSync(artifacts, { recursive: true })
  await page.screenshot({ path: resolve(artifacts, 'dashboard.png') })
  t.same(errors, [], 'no error on the page')
})

// The chat example (examples/chat) in a real browser: headless Chromium, driven by
// playwright-core, loads the page the server serves at / and talks to /ws/chat with the
// browser's own WebSocket. Two users in two browser contexts join one room, see each other in
// the list of who is online and in the log as they join and leave (the presence notices), and
// exchange messages (JSON both ways); a second tab of one user counts in the list, not in the
// log; a message the server refuses shows as an error notice on its sender's page only;
// screenshots of both pages are saved under artifacts/. A page in a room of a server with
// compression: 'shared' gets compressed broadcasts exactly as sent.
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
import { test } from 'tap'
import { build as buildApp, listen } from './helpers'
import { until } from './signals'

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
  page.setDefaultTimeout(15_000)
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

test('chat example in headless Chromium: two users join a room, talk, see who is online, joins, leaves and an error notice', async (t) => {
  if (executablePath === null) {
    const where = process.env.CHROMIUM_PATH ? `at CHROMIUM_PATH=${process.env.CHROMIUM_PATH}` : 'on the PATH'
    const why = `no Chromium ${where}; to run it, install one (\`${INSTALL}\`, as root) or set CHROMIUM_PATH, ` +
      'then: npx tap test/browser.test.ts'
    if (process.env.CI === 'true') t.fail(`${why} (CI=true: the browser test must run, never skip)`)
    else t.plan(0, `skipped: ${why}`)
    return
  }

  const { build } = await import(pathToFileURL(resolve(__dirname, '..', 'examples', 'chat', 'server.mjs')).href) as
    { build (): Promise<FastifyInstance> }
  const app = await build()
  t.teardown(() => app.close())
  const http = (await listen(app)).replace(/^ws/, 'http')

  const browser = await chromium.launch({ executablePath, headless: true, args })
  t.teardown(() => browser.close())
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

  // Messages both ways. The server sends a message to the others only; each page shows its own.
  await say(alice, 'hello bob')
  await untilLine(bob, 'alice: hello bob')
  await say(bob, 'hi alice')
  await untilLine(alice, 'bob: hi alice')
  // Text is shown as text: markup in a message does not become elements.
  await say(alice, '<b>bold?</b> & "quotes"')
  await untilLine(bob, 'alice: <b>bold?</b> & "quotes"')
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
  page.setDefaultTimeout(15_000)
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

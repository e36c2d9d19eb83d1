// The README's TypeScript must compile: every ```ts block is type-checked against the
// package's public types (see ./readme-blocks.ts for how a snippet gets its context).
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { test } from 'tap'
import { build } from './helpers'
import { checkBlocks, typescriptBlocks } from './readme-blocks'
import { Events } from './signals'

const readme = readFileSync(resolve(__dirname, '..', 'README.md'), 'utf8')

test('every TypeScript block of the README compiles', async (t) => {
  const blocks = typescriptBlocks(readme)
  t.ok(blocks.length >= 10, `the README has its TypeScript blocks (${blocks.length})`)
  const errors = checkBlocks(blocks)
  t.same(errors.map(({ line, message }) => `README.md:${line}: ${message}`), [], 'no type error')
})

test('the check finds what is wrong, at its line of the Markdown file', async (t) => {
  const markdown = [
    '# A README', //                                                 1
    '', //                                                           2
    '```ts', //                                                      3
    "session.room('lobby').join()", //                               4
    'session.writeText(42)', //                                      5
    '```', //                                                        6
    '', //                                                           7
    '```js', //                                                      8
    'this is not checked', //                                        9
    '```', //                                                        10
    '', //                                                           11
    '```ts', //                                                      12
    'const app = 42 // the block declares app: no preamble for it', // 13
    "app.registerWebsocket('/ws', { onOpen () {} })", //             14
    "import { Type } from '@sinclair/typebox'", //                   15
    'Type.Object({})', //                                            16
    '```', //                                                        17
    '', //                                                           18
    '<!-- check in examples/chat -->', //                            19
    '```ts', //                                                      20
    "const chat = await import('./chat.mjs')", //                    21
    "app.registerWebsocket('/ws', { ...chat, onConect () {} })", //  22
    '```', //                                                        23
    '```ts', //                                                      24
    "await import('./chat.mjs') // the directive applied once", //   25
    '```' //                                                         26
  ].join('\n')
  const blocks = typescriptBlocks(markdown)
  t.same(blocks.map(({ line, folder }) => ({ line, folder })), [
    { line: 4, folder: '.' },
    { line: 13, folder: '.' },
    { line: 21, folder: 'examples/chat' },
    { line: 25, folder: '.' }
  ])
  const errors = checkBlocks(blocks)
  t.match(errors, [
    { line: 5, message: /Argument of type 'number' is not assignable to parameter of type 'string'/ },
    { line: 14, message: /Property 'registerWebsocket' does not exist on type '42'/ },
    { line: 22, message: /'onConect' does not exist/ },
    { line: 25, message: /Cannot find module '\.\/chat\.mjs'/ }
  ])
  t.equal(errors.length, 4)
})

// What "Testing your app with injectWS" says about early messages, checked.
test('README, injectWS: a welcome sent on open reaches onInit, and is gone for a listener added after the await', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    onOpen (session) { session.send('welcome') },
    onMessage (session, message) { session.send('echo: ' + message) }
  })
  await app.ready()

  const early = new Events<string>()
  const ws = await app.injectWS('/ws', {}, { onInit (ws) { ws.on('message', (data) => early.push(String(data))) } })
  ws.send('hi')
  t.same(await early.until(2), ['welcome', 'echo: hi'], 'listening in onInit: the welcome is there')
  ws.terminate()

  const late = await app.injectWS('/ws')
  const first = once(late, 'message')
  late.send('hi')
  t.equal(String((await first)[0]), 'echo: hi', 'listening after the await: the welcome was missed')
  late.terminate()
})

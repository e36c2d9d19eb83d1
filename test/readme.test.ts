// The README's TypeScript must compile: every ```ts block of README.md and docs/*.md is
// type-checked against the package's public types (see ./readme-blocks.ts for how a snippet
// gets its context). The injectWS recipe (docs/testing.md, linked from the README's
// "Testing with injectWS") is also run as it is written.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { test } from 'tap'
import { build } from './helpers'
import { INJECTWS_RECIPE, blockAfterComment, type BlockError, type CodeBlock, checkBlocks, typescriptBlocks } from './readme-blocks'
import { Events } from './signals'

const root = resolve(__dirname, '..')
const readme = readFileSync(resolve(root, 'README.md'), 'utf8')
const testing = readFileSync(resolve(root, 'docs', 'testing.md'), 'utf8')
const documents = readdirSync(resolve(root, 'docs')).filter((name) => name.endsWith('.md'))

/** A Markdown text with a mistake in each of its blocks, to show the check finds them, each at its line. */
const SAMPLE = [
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

const readmeBlocks = typescriptBlocks(readme)
const documentBlocks = new Map(documents.map((name) => [name, typescriptBlocks(readFileSync(resolve(root, 'docs', name), 'utf8'))]))
const sampleBlocks = typescriptBlocks(SAMPLE)

let checked: BlockError[] | undefined
/**
 * The errors of every block (the README's, docs/*.md's, the sample's), checked in one program:
 * the package's, Fastify's and Node's types are loaded and resolved once, not once per test
 * (each block is a module of its own, so they do not see each other).
 */
function allErrors (): BlockError[] {
  checked ??= checkBlocks([...readmeBlocks, ...[...documentBlocks.values()].flat(), ...sampleBlocks])
  return checked
}

/** The errors in `blocks`, in the order checkBlocks() reports them. */
function errorsIn (blocks: CodeBlock[]): BlockError[] {
  return allErrors().filter((error) => error.block !== undefined && blocks.includes(error.block))
}

// A user's document, kept short enough to read: detail goes to docs/.
test('the README stays under 25,000 bytes', async (t) => {
  const bytes = Buffer.byteLength(readme)
  t.ok(bytes < 25_000, `README.md is ${bytes} bytes`)
})

test('docs/errors.md has one row for each error code of lib/errors.ts, and the documents name no other', async (t) => {
  const defined = new Set(readFileSync(resolve(root, 'lib', 'errors.ts'), 'utf8').match(/'FST_WS_ROOMS_[A-Z_]+'/g)!.map((quoted) => quoted.slice(1, -1)))
  t.ok(defined.size >= 15, `lib/errors.ts defines its codes (${defined.size})`)
  const table = readFileSync(resolve(root, 'docs', 'errors.md'), 'utf8').split('\n')
    .map((line) => /^\| `(FST_WS_ROOMS_[A-Z_]+)` \|/.exec(line)?.[1]).filter((code) => code !== undefined)
  t.same([...table].sort(), [...defined].sort(), 'one row per code, none missing, none extra')
  const documents = ['README.md', 'types/index.d.ts', ...readdirSync(resolve(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)]
  for (const name of documents) {
    const named = readFileSync(resolve(root, name), 'utf8').match(/FST_WS_ROOMS_[A-Z_]+/g) ?? []
    t.same(named.filter((code) => !defined.has(code)), [], `${name} names only codes that exist`)
  }
})

test('every TypeScript block of the README compiles', async (t) => {
  const blocks = readmeBlocks
  t.ok(blocks.length >= 5, `the README has its TypeScript blocks (${blocks.length})`)
  t.ok(blocks.some((block) => /\.recover\(/.test(block.code) && /\.publish\(/.test(block.code)), 'History and recovery\'s example among them')
  const errors = errorsIn(blocks)
  t.same(errors.map(({ line, message }) => `README.md:${line}: ${message}`), [], 'no type error')
})

test('every TypeScript block of docs/*.md compiles', async (t) => {
  t.ok(documents.length > 0, 'docs/ has its documents')
  const blocks = documentBlocks
  t.same(allErrors().filter((error) => error.block === undefined).map(({ message }) => message), [], 'no error of the whole program')
  for (const [name, own] of blocks) {
    const mine = errorsIn(own)
    t.same(mine.map(({ line, message }) => `docs/${name}:${line}: ${message}`), [], `docs/${name}: no type error`)
  }
  const total = [...blocks.values()].reduce((sum, own) => sum + own.length, 0)
  t.ok(total >= 5, `the documents have their TypeScript blocks (${total})`)
})

/** The ```ts block that follows the HTML comment starting with `marker` in docs/testing.md. */
const blockAfter = (marker: string): string => blockAfterComment(testing, marker)

/**
 * Runs `code` as a module of its own in a child process (node --import=tsx, from the
 * repository, so that 'fastify-websocket-rooms' is dist/), killed after `deadline` ms.
 */
async function runModule (code: string, deadline: number): Promise<{ code: number | null, signal: string | null, output: string }> {
  const file = resolve(root, `.readme-recipe-${process.pid}-${Math.random().toString(36).slice(2)}.mts`)
  writeFileSync(file, code)
  try {
    const child = spawn(process.execPath, ['--import=tsx', '--test-reporter=tap', file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: deadline })
    let output = ''
    child.stdout.on('data', (chunk) => { output += chunk })
    child.stderr.on('data', (chunk) => { output += chunk })
    const [exitCode, signal] = await once(child, 'close') as [number | null, string | null]
    return { code: exitCode, signal, output }
  } finally {
    rmSync(file, { force: true })
  }
}

const RECIPE = INJECTWS_RECIPE

test('docs/testing.md, injectWS: the recipe, run as it is written, passes and does not wait closeTimeout', async (t) => {
  const recipe = blockAfter(RECIPE)
  t.match(recipe, /await app\.ready\(\)/)
  t.match(recipe, /ws\.terminate\(\)[^]*await app\.close\(\)/, 'terminate() comes before app.close()')
  const run = await runModule(recipe, 60_000)
  t.same({ code: run.code, signal: run.signal }, { code: 0, signal: null }, run.code === 0 ? 'the process exits with 0' : run.output)
  t.match(run.output, /^# pass 1$/m)
  t.match(run.output, /^# fail 0$/m)
  // app.close() would wait closeTimeout (5 s) for a client that was not terminated.
  const duration = /^# duration_ms ([\d.]+)$/m.exec(run.output)
  t.ok(duration !== null && Number(duration[1]) < 5000, `the test itself took less than closeTimeout (${duration?.[1]} ms)`)
})

test('docs/testing.md, injectWS: the recipe without its app.ready() does not pass', async (t) => {
  const recipe = blockAfter(RECIPE)
  const withoutReady = recipe.replace(/^\s*await app\.ready\(\).*$/m, '')
  t.not(withoutReady, recipe)
  const run = await runModule(withoutReady, 30_000)
  t.not(run.code, 0, 'injectWS() never resolves: node:test fails the pending test, or the deadline kills it')
  t.notMatch(run.output, /^# pass 1$/m)
  t.ok(run.signal !== null || /Promise resolution is still pending but the event loop has already resolved/.test(run.output),
    'it hangs: node:test cancels it once nothing else keeps the process alive (a runner with open handles waits forever)')
})

test('the check finds what is wrong, at its line of the Markdown file', async (t) => {
  const blocks = sampleBlocks
  t.same(blocks.map(({ line, folder }) => ({ line, folder })), [
    { line: 4, folder: '.' },
    { line: 13, folder: '.' },
    { line: 21, folder: 'examples/chat' },
    { line: 25, folder: '.' }
  ])
  const errors = errorsIn(blocks)
  t.match(errors, [
    { line: 5, message: /Argument of type 'number' is not assignable to parameter of type 'string'/ },
    { line: 14, message: /Property 'registerWebsocket' does not exist on type '42'/ },
    { line: 22, message: /'onConect' does not exist/ },
    { line: 25, message: /Cannot find module '\.\/chat\.mjs'/ }
  ])
  t.equal(errors.length, 4)
})

// What docs/testing.md says about early messages, checked.
test('docs/testing.md, injectWS: a welcome sent on open reaches onInit, and is gone for a listener added after the await', async (t) => {
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

// The published package, as a user gets it: `npm pack` the repository, install the tarball
// in empty projects, then require() it, import it and type-check against it there: with the
// current Fastify, with the oldest Fastify the peerDependencies claim, and without TypeBox 1.x
// (the types must not need it). Packs the dist/ of the last build (npm run test:ci builds
// before tap), with --ignore-scripts: the prepack script would rebuild dist/ while other test
// files are loading it. Slow (npm install, tsc without skipLibCheck): part of `npm run test:ci`,
// not of `npm test`. The projects get the versions installed here (the lockfile's), so that
// a run is reproducible; test/fresh-install/run.sh (in CI) installs the newest ones instead
// and runs the injectWS recipe and a Redis app with them.
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { closeCodes } from '../lib/close-codes'

t.setTimeout(300_000) // npm install takes a while, more so with a cold cache

const run = promisify(execFile)
const root = resolve(__dirname, '..')
const work = realpathSync(mkdtempSync(join(tmpdir(), 'fastify-websocket-rooms-package-')))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> }
/** The oldest Fastify the package claims: the lower bound of its peer range (`^5.0.0`). */
const oldestFastify = /^\^(\d+\.\d+\.\d+)$/.exec(pkg.peerDependencies.fastify)?.[1]
if (oldestFastify === undefined) throw new Error(`peerDependencies.fastify is ${pkg.peerDependencies.fastify}: expected ^x.y.z`)

// A user's shell rather than tap's: no coverage or loader options, no npm_* settings of `npm test`.
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(NODE_OPTIONS$|NODE_V8_COVERAGE$|TAP|_TAPJS|npm_)/i.test(key)))

/** Runs a command; resolves with its stdout, or rejects with everything it printed. */
async function sh (file: string, args: string[], cwd: string): Promise<string> {
  try {
    return (await run(file, args, { cwd, env, maxBuffer: 16 * 1024 * 1024 })).stdout
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string, stderr?: string }
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}:\n${stdout}${stderr}`)
  }
}

/** The version of a package installed here, so the project gets the same one (from npm's cache). */
function installedVersion (name: string): string {
  return (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
}

interface Packed { filename: string, files: Array<{ path: string }> }
let packed: Packed

/**
 * An empty project that installs the tarball with a Fastify of its own (a peer dependency),
 * and the schema libraries its code imports. @types/ws comes with the package; @types/node
 * is only there for the type-checks (the declarations use Node's types).
 */
interface Consumer { name: string, fastify: string, typebox1: boolean, folder: string }
const consumers = {
  current: { name: 'current', fastify: installedVersion('fastify'), typebox1: true },
  oldest: { name: 'oldest', fastify: oldestFastify, typebox1: true },
  // TypeBox 1.x is optional: a project without it must type-check too.
  noTypebox1: { name: 'no-typebox1', fastify: installedVersion('fastify'), typebox1: false }
}
const projects = new Map<string, Consumer>(Object.values(consumers).map((consumer) =>
  [consumer.name, { ...consumer, folder: join(work, `project-${consumer.name}`) }]))

async function install (consumer: Consumer): Promise<void> {
  mkdirSync(consumer.folder)
  writeFileSync(join(consumer.folder, 'package.json'), JSON.stringify({ name: `consumer-${consumer.name}`, version: '1.0.0', private: true }))
  await sh('npm', [
    'install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error',
    join(work, packed.filename),
    `fastify@${consumer.fastify}`,
    `@sinclair/typebox@${installedVersion('@sinclair/typebox')}`,
    ...(consumer.typebox1 ? [`typebox@${installedVersion('typebox')}`] : []),
    `@types/node@${installedVersion('@types/node')}`
  ], consumer.folder)
}

t.before(async () => {
  if (!existsSync(join(root, 'dist', 'index.js'))) throw new Error('dist/index.js is missing: run `npm run build` first')
  const output = await sh('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], root)
  packed = (JSON.parse(output) as Packed[])[0]!
  // One after the other: npm installs that share a cache at once are no faster here.
  for (const consumer of projects.values()) await install(consumer)
})

t.test('the tarball holds the build and the types, and no tests or sources', async (t) => {
  const paths = packed.files.map((file) => file.path).sort()
  t.ok(existsSync(join(work, packed.filename)), 'the tarball is written to --pack-destination')
  t.ok(paths.includes('package.json'))
  t.ok(paths.includes('LICENSE'), 'the license')
  t.ok(paths.includes('dist/index.js'))
  t.ok(paths.includes('types/index.d.ts'))
  const libs = readdirSync(join(root, 'lib'), { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.ts')).map((name) => `dist/lib/${name.slice(0, -3)}.js`)
  t.ok(libs.length > 0)
  for (const lib of libs) t.ok(paths.includes(lib), `${lib} is packed`)
  const scripts = readdirSync(join(root, 'lib', 'cluster', 'scripts')).map((name) => `dist/lib/cluster/scripts/${name}`)
  t.ok(scripts.length > 0)
  for (const script of scripts) t.ok(paths.includes(script), `${script} is packed`)
  t.same(paths.filter((path) => /(^|\/)test\//.test(path)), [], 'no test files')
  t.same(paths.filter((path) => path.startsWith('examples/')), [], 'no examples')
  const docs = readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)
  t.same(paths.filter((path) => path.startsWith('docs/')), docs.sort(), 'the docs the README links to')
  t.same(paths.filter((path) => path.endsWith('.ts') && path !== 'types/index.d.ts'), [], 'no TypeScript sources')
})

/** GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens. */
function slug (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
}

// The installed README is what npm's site and a user's editor show: its links must lead
// somewhere in the package (the docs/ it points to are shipped).
t.test('every relative link of the packed README leads to a file in the tarball, and to a heading there', async (t) => {
  const installed = join(projects.get('current')!.folder, 'node_modules', 'fastify-websocket-rooms')
  const readme = readFileSync(join(installed, 'README.md'), 'utf8')
  const paths = new Set(packed.files.map((file) => file.path))
  t.ok(paths.has('README.md'), 'the README is packed')
  const links = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1]!).filter((link) => !/^[a-z]+:/i.test(link))
  t.ok(links.filter((link) => link.startsWith('docs/')).length >= 10, `the README links to its docs (${links.length} relative links)`)
  for (const link of links) {
    const [file = '', anchor] = link.split('#')
    const target = file === '' ? 'README.md' : file
    if (!paths.has(target)) {
      t.fail(`${link}: ${target} is not in the tarball`)
      continue
    }
    if (anchor === undefined) continue
    const headings = readFileSync(join(installed, target), 'utf8').split('\n').filter((line) => /^#+ /.test(line)).map((line) => slug(line.replace(/^#+ /, '')))
    t.ok(headings.includes(anchor), `${link}: ${target} has that heading`)
  }
})

// Each script starts a server with the installed plugin, echoes a message to a ws client (ws
// is installed as a dependency of @fastify/websocket), closes the app and prints what it saw.
const echoServer = (name: string): string => `
  const app = Fastify()
  await app.register(websocketRooms)
  app.registerWebsocket('/echo', {
    handleText (session, text) { session.writeText('echo: ' + text) }
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const ws = new WebSocket(address.replace('http', 'ws') + '/echo')
  await once(ws, 'open')
  ws.send('hello from ${name}')
  const [echo] = await once(ws, 'message')
  const closed = once(ws, 'close')
  await app.close()
  const [closeCode] = await closed
`

const report = `{
    type: typeof websocketRooms,
    defaultIsPlugin: websocketRooms.default === websocketRooms,
    namedIsPlugin: websocketRooms.fastifyWebsocketRooms === websocketRooms,
    closeCodes: websocketRooms.closeCodes,
    redisAdapter: typeof websocketRooms.redisAdapter,
    echo: String(echo),
    closeCode
  }`

// Run with the current Fastify and with the oldest one claimed: in each, the plugin must use
// the project's own Fastify (a peer), not a copy of its own.
for (const name of ['current', 'oldest']) {
  const { folder, fastify } = projects.get(name)!
  const installed = join(folder, 'node_modules', 'fastify-websocket-rooms', 'dist', 'index.js')
  const projectFastify = join(folder, 'node_modules', 'fastify', 'fastify.js')

  t.test(`Fastify ${fastify} (${name}): require() returns the plugin, with .default, .fastifyWebsocketRooms and .closeCodes`, async (t) => {
    writeFileSync(join(folder, 'check.cjs'), `'use strict'
const { once } = require('node:events')
const Fastify = require('fastify')
const WebSocket = require('ws')
const websocketRooms = require('fastify-websocket-rooms')

async function main () {
  ${echoServer('require')}
  console.log(JSON.stringify({
    resolved: require.resolve('fastify-websocket-rooms'),
    pluginFastify: require.resolve('fastify', { paths: [require.resolve('fastify-websocket-rooms')] }),
    fastifyVersion: require('fastify/package.json').version,
    ...${report}
  }))
}
main().catch((error) => { console.error(error); process.exitCode = 1 })
`)
    const result = JSON.parse(await sh(process.execPath, ['check.cjs'], folder))
    t.equal(result.resolved, installed, 'the installed copy')
    t.equal(result.fastifyVersion, fastify, `the project's Fastify is ${fastify}`)
    t.equal(result.pluginFastify, projectFastify, 'the plugin uses the project\'s Fastify, not one of its own')
    t.equal(result.type, 'function')
    t.equal(result.defaultIsPlugin, true)
    t.equal(result.namedIsPlugin, true)
    t.same(result.closeCodes, closeCodes)
    t.equal(result.redisAdapter, 'function', 'require(...).redisAdapter')
    t.equal(result.echo, 'echo: hello from require')
    t.equal(result.closeCode, closeCodes.GOING_AWAY, 'app.close() closes the session with 1001')
  })

  t.test(`Fastify ${fastify} (${name}): ESM import gives the plugin as default export and the named exports`, async (t) => {
    writeFileSync(join(folder, 'check.mjs'), `import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import WebSocket from 'ws'
import websocketRooms, { closeCodes, fastifyWebsocketRooms, redisAdapter } from 'fastify-websocket-rooms'

${echoServer('import')}
console.log(JSON.stringify({
  namedRedisAdapter: redisAdapter === websocketRooms.redisAdapter,
  resolved: fileURLToPath(import.meta.resolve('fastify-websocket-rooms')),
  namedCloseCodes: closeCodes === websocketRooms.closeCodes,
  namedPlugin: fastifyWebsocketRooms === websocketRooms,
  ...${report}
}))
`)
    const result = JSON.parse(await sh(process.execPath, ['check.mjs'], folder))
    t.equal(result.resolved, installed, 'the installed copy')
    t.equal(result.type, 'function')
    t.equal(result.namedCloseCodes, true, 'import { closeCodes } works')
    t.equal(result.namedPlugin, true, 'import { fastifyWebsocketRooms } works')
    t.equal(result.namedRedisAdapter, true, 'import { redisAdapter } works')
    t.equal(result.redisAdapter, 'function')
    t.equal(result.defaultIsPlugin, true)
    t.same(result.closeCodes, closeCodes)
    t.equal(result.echo, 'echo: hello from import')
    t.equal(result.closeCode, closeCodes.GOING_AWAY)
  })
}

// The same code, type-checked as a user's project sees the package under each module
// resolution TypeScript offers: node16 and nodenext (Node's own rules, ESM and CommonJS
// files), and bundler (Vite, esbuild, webpack...). Schemas of @sinclair/typebox 0.3x
// everywhere; of TypeBox 1.x (`typebox`, an ES module only) in the ES module files of the
// projects that have it.
const usage = `
export async function start (): Promise<void> {
  const app = Fastify()
  await app.register(websocketRooms, { maxPayload: 1024 })
  app.registerWebsocket('/ws', {
    onOpen (session) {
      session.room('lobby').join().broadcastExcept(session.id)
    },
    onMessage (session, message: string) {
      session.send(message)
    }
  })
  app.registerWebsocket('/typed/:room', {
    schema: { querystring: Type.Object({ user: Type.String() }), params: Type.Object({ room: Type.String() }) },
    preValidation: async (request, reply) => {
      const user: string = request.query.user
      const room: string = request.params.room
      // @ts-expect-error the hooks' query holds only what the schema says
      console.log(request.query.token)
      if (user === room) await reply.code(401).send()
    },
    onConnected (session) {
      const user: string = session.query.user
      // @ts-expect-error the query holds only what the schema says
      session.send(session.query.room)
      session.send(user + session.params.room)
    }
  })
  // @ts-expect-error the types catch a misspelt handler
  app.registerWebsocket('/typo', { onMesage () {} })
  const code: 1001 = closeCodes.GOING_AWAY
  const members: number = app.websocketRooms.room('lobby').members()
  const everywhere: Promise<number> = app.websocketRooms.room('lobby').clusterMembers()
  const adapter = redisAdapter({ url: 'redis://127.0.0.1:6379', keyPrefix: 'myapp' })
  // @ts-expect-error the types catch a misspelt adapter option
  redisAdapter({ url: 'redis://127.0.0.1:6379', keyprefix: 'myapp' })
  console.log(everywhere, adapter)
  const session: WebSocketSession | undefined = app.websocketSessions.get('id')
  // @fastify/websocket's decorators come with the plugin's types: no import of it needed.
  const client = await app.injectWS('/ws', {}, { onInit (ws) { ws.on('message', (data) => console.log(String(data))) } })
  client.terminate()
  // @ts-expect-error the types catch a misspelt option
  await app.register(websocketRooms, { maxPayLoad: 1 })
  console.log(code, members, session?.id)
}
`
const typebox1Usage = `
export async function typebox1 (): Promise<void> {
  const app = Fastify()
  await app.register(websocketRooms)
  app.registerWebsocket('/typebox1/:room', {
    schema: {
      querystring: Type1.Object({ user: Type1.String(), limit: Type1.Optional(Type1.Integer()) }),
      headers: Type1.Object({ cookie: Type1.String() }),
      params: Type1.Object({ room: Type1.String() })
    },
    preHandler: async (request) => {
      const cookie: string = request.headers.cookie
      // @ts-expect-error the hooks' query is typed by TypeBox 1.x: user is a string
      const wrong: number = request.query.user
      console.log(cookie, wrong)
    },
    onOpen (session) {
      const user: string = session.query.user
      const limit: number | undefined = session.query.limit
      // @ts-expect-error the query holds only what the TypeBox 1.x schema says
      session.send(session.query.room)
      session.send(user + String(limit) + session.params.room + session.headers.cookie)
    }
  })
}
`
const esmImports = `import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import websocketRooms, { closeCodes, redisAdapter, type WebSocketSession } from 'fastify-websocket-rooms'
`
const typebox1Import = `import { Type as Type1 } from 'typebox'
`
const cjsImports = `import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import websocketRooms = require('fastify-websocket-rooms')
type WebSocketSession = websocketRooms.WebSocketSession
const { closeCodes, redisAdapter } = websocketRooms
`
interface Setup { name: string, compilerOptions: { module: string, moduleResolution: string }, files: Record<string, 'esm' | 'cjs'> }
const typescriptSetups: Setup[] = [
  { name: 'node16', compilerOptions: { module: 'node16', moduleResolution: 'node16' }, files: { 'esm.mts': 'esm', 'cjs.cts': 'cjs' } },
  { name: 'nodenext', compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext' }, files: { 'esm.mts': 'esm', 'cjs.cts': 'cjs' } },
  { name: 'bundler', compilerOptions: { module: 'esnext', moduleResolution: 'bundler' }, files: { 'bundled.ts': 'esm' } }
]
const setup = (name: string): Setup => typescriptSetups.find((candidate) => candidate.name === name)!
/** Each project with the setups it is checked under: every one with the current Fastify. */
const checks: Array<{ consumer: Consumer, setup: Setup }> = [
  ...typescriptSetups.map((each) => ({ consumer: projects.get('current')!, setup: each })),
  { consumer: projects.get('oldest')!, setup: setup('nodenext') },
  { consumer: projects.get('no-typebox1')!, setup: setup('node16') }
]

/** The source of one file: its imports, the usage, and TypeBox 1.x's in ES modules that can have it. */
function source (kind: 'esm' | 'cjs', consumer: Consumer): string {
  if (kind === 'cjs') return cjsImports + usage
  return consumer.typebox1 ? esmImports + typebox1Import + usage + typebox1Usage : esmImports + usage
}

/** Type-checks one setup in its own folder of a project; resolves with the files tsc read. */
async function typeCheck (consumer: Consumer, setup: Setup): Promise<string[]> {
  const folder = join(consumer.folder, `ts-${setup.name}`)
  mkdirSync(folder)
  for (const [file, kind] of Object.entries(setup.files)) writeFileSync(join(folder, file), source(kind, consumer))
  writeFileSync(join(folder, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { ...setup.compilerOptions, target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
    files: Object.keys(setup.files)
  }))
  // The repository's compiler, run in the project: everything it resolves comes from there.
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  // Rejects, with tsc's errors on stdout, when the check fails; lists the files it read otherwise.
  return (await sh(process.execPath, [tsc, '-p', 'tsconfig.json', '--listFiles'], folder)).split('\n')
}

/** Runs each function given when one of `slots` is free. */
function limited (slots: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let free = slots
  const waiting: Array<() => void> = []
  return async (fn) => {
    if (free > 0) free--
    else await new Promise<void>((resolve) => waiting.push(resolve))
    try {
      return await fn()
    } finally {
      const next = waiting.shift()
      if (next === undefined) free++
      else next()
    }
  }
}

// The checks take a while each (skipLibCheck is off): they start as soon as the projects are
// installed, two at a time (more only slow a 2-core machine down), and each test awaits its own.
const typeChecks = new Map<string, Promise<string[]>>()
const key = (consumer: Consumer, setup: Setup): string => `${consumer.name}/${setup.name}`
t.before(() => {
  const twoAtATime = limited(2)
  for (const { consumer, setup } of checks) {
    const check = twoAtATime(() => typeCheck(consumer, setup))
    check.catch(() => {}) // the test below reports the failure
    typeChecks.set(key(consumer, setup), check)
  }
})

for (const { consumer, setup } of checks) {
  const { module, moduleResolution } = setup.compilerOptions
  const typebox = consumer.typebox1 ? 'both TypeBox lines' : '@sinclair/typebox only'
  t.test(`Fastify ${consumer.fastify} (${consumer.name}), ${typebox}: TypeScript with moduleResolution ${moduleResolution} (module ${module}) resolves and checks the shipped types`, async (t) => {
    const files = await typeChecks.get(key(consumer, setup))!
    const folder = join(consumer.folder, `ts-${setup.name}`)
    const modules = join(consumer.folder, 'node_modules')
    t.ok(files.includes(join(modules, 'fastify-websocket-rooms', 'types', 'index.d.ts')), 'types/index.d.ts of the installed package')
    t.ok(files.some((file) => file.startsWith(join(modules, '@types', 'ws') + '/')), 'and the ws types it imports (a dependency of the package)')
    t.ok(files.includes(join(modules, 'fastify', 'fastify.d.ts')), `the project's Fastify ${consumer.fastify}`)
    t.notOk(files.some((file) => file.includes('/node_modules/fastify-websocket-rooms/node_modules/')), 'nothing from a copy nested in the package')
    if (consumer.typebox1) {
      t.ok(files.some((file) => file.startsWith(join(modules, 'typebox') + '/')), 'TypeBox 1.x, imported by the ES modules')
    }
    for (const file of Object.keys(setup.files)) t.ok(files.includes(join(folder, file)), `${file} is checked`)
  })
}

// The published package, as a user gets it: `npm pack` the repository, install the tarball
// in an empty project, then require() it, import it and type-check against it there. Packs
// the dist/ of the last build (npm test builds before tap), with --ignore-scripts: the
// prepare script would rebuild dist/ while other test files are loading it.
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
const project = join(work, 'project')
t.teardown(() => rmSync(work, { recursive: true, force: true }))

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

t.before(async () => {
  if (!existsSync(join(root, 'dist', 'index.js'))) throw new Error('dist/index.js is missing: run `npm run build` first')
  const output = await sh('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], root)
  packed = (JSON.parse(output) as Packed[])[0]!

  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  await sh('npm', [
    'install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error',
    join(work, packed.filename),
    `fastify@${installedVersion('fastify')}`,
    // Only for the type-check below: the declarations use Node's and ws's types.
    `@types/node@${installedVersion('@types/node')}`,
    `@types/ws@${installedVersion('@types/ws')}`
  ], project)
})

t.test('the tarball holds the build and the types, and no tests or sources', async (t) => {
  const paths = packed.files.map((file) => file.path).sort()
  t.ok(existsSync(join(work, packed.filename)), 'the tarball is written to --pack-destination')
  t.ok(paths.includes('package.json'))
  t.ok(paths.includes('dist/index.js'))
  t.ok(paths.includes('types/index.d.ts'))
  const libs = readdirSync(join(root, 'lib')).filter((name) => name.endsWith('.ts')).map((name) => `dist/lib/${name.slice(0, -3)}.js`)
  t.ok(libs.length > 0)
  for (const lib of libs) t.ok(paths.includes(lib), `${lib} is packed`)
  t.same(paths.filter((path) => /(^|\/)test\//.test(path)), [], 'no test files')
  t.same(paths.filter((path) => path.startsWith('examples/')), [], 'no examples')
  t.same(paths.filter((path) => path.endsWith('.ts') && path !== 'types/index.d.ts'), [], 'no TypeScript sources')
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

t.test('require() returns the plugin, with .default, .fastifyWebsocketRooms and .closeCodes', async (t) => {
  writeFileSync(join(project, 'check.cjs'), `'use strict'
const { once } = require('node:events')
const Fastify = require('fastify')
const WebSocket = require('ws')
const websocketRooms = require('fastify-websocket-rooms')

async function main () {
  ${echoServer('require')}
  console.log(JSON.stringify({ resolved: require.resolve('fastify-websocket-rooms'), ...${report} }))
}
main().catch((error) => { console.error(error); process.exitCode = 1 })
`)
  const result = JSON.parse(await sh(process.execPath, ['check.cjs'], project))
  t.equal(result.resolved, join(project, 'node_modules', 'fastify-websocket-rooms', 'dist', 'index.js'), 'the installed copy')
  t.equal(result.type, 'function')
  t.equal(result.defaultIsPlugin, true)
  t.equal(result.namedIsPlugin, true)
  t.same(result.closeCodes, closeCodes)
  t.equal(result.redisAdapter, 'function', 'require(...).redisAdapter')
  t.equal(result.echo, 'echo: hello from require')
  t.equal(result.closeCode, closeCodes.GOING_AWAY, 'app.close() closes the session with 1001')
})

t.test('ESM import gives the plugin as default export and the named exports', async (t) => {
  writeFileSync(join(project, 'check.mjs'), `import { once } from 'node:events'
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
  const result = JSON.parse(await sh(process.execPath, ['check.mjs'], project))
  t.equal(result.resolved, join(project, 'node_modules', 'fastify-websocket-rooms', 'dist', 'index.js'), 'the installed copy')
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

// The same code, type-checked as a user's project sees the package under each module
// resolution TypeScript offers: node16 and nodenext (Node's own rules, ESM and CommonJS
// files), and bundler (Vite, esbuild, webpack...), with module esnext and preserve.
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
  app.registerWebsocket('/typed', {
    schema: { querystring: Type.Object({ user: Type.String() }) },
    onConnected (session) {
      const user: string = session.query.user
      // @ts-expect-error the query holds only what the schema says
      session.send(session.query.room)
      session.send(user)
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
const esmImports = `import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import websocketRooms, { closeCodes, redisAdapter, type WebSocketSession } from 'fastify-websocket-rooms'
`
const cjsImports = `import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import websocketRooms = require('fastify-websocket-rooms')
type WebSocketSession = websocketRooms.WebSocketSession
const { closeCodes, redisAdapter } = websocketRooms
`
const typescriptSetups = [
  { name: 'node16', compilerOptions: { module: 'node16', moduleResolution: 'node16' }, files: { 'esm.mts': esmImports, 'cjs.cts': cjsImports } },
  { name: 'nodenext', compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext' }, files: { 'esm.mts': esmImports, 'cjs.cts': cjsImports } },
  { name: 'bundler', compilerOptions: { module: 'esnext', moduleResolution: 'bundler' }, files: { 'bundled.ts': esmImports } }
]

/** Type-checks one setup in its own folder of the project; resolves with the files tsc read. */
async function typeCheck (setup: typeof typescriptSetups[number]): Promise<string[]> {
  const folder = join(project, `ts-${setup.name}`)
  mkdirSync(folder)
  for (const [file, imports] of Object.entries(setup.files)) writeFileSync(join(folder, file), imports + usage)
  writeFileSync(join(folder, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { ...setup.compilerOptions, target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
    files: Object.keys(setup.files)
  }))
  // The repository's compiler, run in the project: everything it resolves comes from there.
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  // Rejects, with tsc's errors on stdout, when the check fails; lists the files it read otherwise.
  return (await sh(process.execPath, [tsc, '-p', 'tsconfig.json', '--listFiles'], folder)).split('\n')
}

// The checks take a while each (skipLibCheck is off): they run side by side, from the moment
// the project is installed, and each test awaits its own.
let typeChecks: Map<string, Promise<string[]>>
t.before(() => {
  typeChecks = new Map(typescriptSetups.map((setup) => {
    const check = typeCheck(setup)
    check.catch(() => {}) // the test below reports the failure
    return [setup.name, check]
  }))
})

for (const setup of typescriptSetups) {
  const { module, moduleResolution } = setup.compilerOptions
  t.test(`TypeScript with moduleResolution ${moduleResolution} (module ${module}) resolves and checks the shipped types`, async (t) => {
    const files = await typeChecks.get(setup.name)!
    const folder = join(project, `ts-${setup.name}`)
    t.ok(files.includes(join(project, 'node_modules', 'fastify-websocket-rooms', 'types', 'index.d.ts')), 'types/index.d.ts of the installed package')
    t.ok(files.some((file) => file.startsWith(join(project, 'node_modules', '@types', 'ws') + '/')), 'and the ws types it imports')
    for (const file of Object.keys(setup.files)) t.ok(files.includes(join(folder, file)), `${file} is checked`)
  })
}

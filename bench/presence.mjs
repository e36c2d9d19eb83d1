// The presence benchmark: `npm run bench:presence` (builds first; never part of npm test).
// A mass join and a mass leave, as after a deploy: N sessions over 2 nodes join one room as
// fast as the clients can connect, then all leave. Counts what presence costs: onPresence
// calls and the entries they carry, and the Redis commands of each phase, read from a private
// redis-server (INFO commandstats), so nothing else is counted. Writes bench/results-presence.md.
//
// Environment:
//   BENCH_SESSIONS=5000   N, split evenly over the two nodes
//   BENCH_INTERVAL=250    presenceInterval, in ms
//   BENCH_REDIS_SERVER    the redis-server binary (default: redis-server on the PATH)
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { createClient } from '@redis/client'
import Fastify from 'fastify'
import WebSocket from 'ws'
import websocketRooms, { redisAdapter } from 'fastify-websocket-rooms'

const here = dirname(fileURLToPath(import.meta.url))
const number = (name, fallback) => process.env[name] === undefined || process.env[name] === '' ? fallback : Number(process.env[name])
const SESSIONS = number('BENCH_SESSIONS', 5000)
const INTERVAL = number('BENCH_INTERVAL', 250)
const CONNECTING = 200 // handshakes in flight at once

async function freePort () {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  return port
}

async function startRedis () {
  const port = await freePort()
  const child = spawn(process.env.BENCH_REDIS_SERVER ?? 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  process.on('exit', () => child.kill('SIGKILL'))
  let output = ''
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      output += chunk
      if (output.includes('Ready to accept connections')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)))
  })
  child.stdout.resume()
  return `redis://127.0.0.1:${port}`
}

/** Calls per Redis command since the server started (INFO commandstats). */
async function commandCounts (admin) {
  const counts = {}
  for (const line of (await admin.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim())
    if (match !== null) counts[match[1]] = Number(match[2])
  }
  return counts
}

function difference (after, before, exclude) {
  const delta = {}
  for (const [command, calls] of Object.entries(after)) {
    const n = calls - (before[command] ?? 0) - (exclude[command] ?? 0)
    if (n > 0) delta[command] = n
  }
  return delta
}

async function node (url, keyPrefix) {
  const calls = { count: 0, joins: 0, leaves: 0 }
  const app = Fastify()
  await app.register(websocketRooms, {
    heartbeatInterval: 0,
    presenceInterval: INTERVAL,
    adapter: redisAdapter({ url, keyPrefix }),
    onPresence (room, diff) {
      calls.count++
      calls.joins += diff.joins.length
      calls.leaves += diff.leaves.length
    }
  })
  app.registerWebsocket('/ws', {
    onOpen (session) {
      session.setPresence({ user: session.getParameter('user') })
      session.room('mass').join()
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, calls, url: `ws://127.0.0.1:${app.server.address().port}/ws` }
}

/** Opens `count` clients, `CONNECTING` at a time, alternating between the nodes. */
async function connectAll (nodes, count) {
  const clients = []
  let next = 0
  await Promise.all(Array.from({ length: CONNECTING }, async () => {
    while (next < count) {
      const i = next++
      const client = new WebSocket(`${nodes[i % nodes.length].url}?user=u${i}`)
      clients.push(client)
      await once(client, 'open')
    }
  }))
  return clients
}

async function until (condition, what, ms = 60_000) {
  const started = performance.now()
  while (!condition()) {
    if (performance.now() - started > ms) throw new Error(`still waiting after ${ms} ms for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const url = await startRedis()
const admin = createClient({ url })
await admin.connect()
const keyPrefix = 'bench-presence'
const nodes = [await node(url, keyPrefix), await node(url, keyPrefix)]
const ours = { info: 1 } // this script's own INFO, not the nodes'
const total = (key) => nodes.reduce((sum, n) => sum + n.calls[key], 0)

let before = await commandCounts(admin)
let started = performance.now()
const clients = await connectAll(nodes, SESSIONS)
const joinSeconds = (performance.now() - started) / 1000
await until(() => total('joins') === SESSIONS, 'every join to be told')
// One more window, so that nothing told late is missed.
await new Promise((resolve) => setTimeout(resolve, 2 * INTERVAL))
const presence = await nodes[0].app.websocketRooms.room('mass').presence()
const joined = { seconds: joinSeconds, calls: nodes.map((n) => n.calls.count), joins: total('joins'), listed: presence.members.length, redis: difference(await commandCounts(admin), before, ours) }

for (const n of nodes) Object.assign(n.calls, { count: 0, joins: 0, leaves: 0 })
before = await commandCounts(admin)
started = performance.now()
for (const client of clients) client.close()
await until(() => total('leaves') === SESSIONS, 'every leave to be told')
const leaveSeconds = (performance.now() - started) / 1000
await new Promise((resolve) => setTimeout(resolve, 2 * INTERVAL))
const left = { seconds: leaveSeconds, calls: nodes.map((n) => n.calls.count), leaves: total('leaves'), redis: difference(await commandCounts(admin), before, ours) }

for (const n of nodes) await n.app.close()
await admin.quit()

const commands = (redis) => Object.entries(redis).sort((a, b) => b[1] - a[1]).map(([command, calls]) => `${command.toUpperCase()} ${calls}`).join(', ')
const sum = (redis) => Object.values(redis).reduce((a, b) => a + b, 0)
const report = `# Presence benchmark

${new Date().toISOString()} · node ${process.version} · ${SESSIONS.toLocaleString('en')} sessions over 2 nodes (in one process, with their clients), one room, presenceInterval ${INTERVAL} ms, Redis commands counted on a private redis-server.

| | mass join | mass leave |
| --- | ---: | ---: |
| time for every client to connect / to close (s) | ${joined.seconds.toFixed(2)} | ${left.seconds.toFixed(2)} |
| onPresence calls, node 1 + node 2 | ${joined.calls.join(' + ')} | ${left.calls.join(' + ')} |
| entries told (must be ${SESSIONS}) | ${joined.joins} | ${left.leaves} |
| Redis commands in all | ${sum(joined.redis)} | ${sum(left.redis)} |
| Redis commands per session | ${(sum(joined.redis) / SESSIONS).toFixed(2)} | ${(sum(left.redis) / SESSIONS).toFixed(2)} |
| by command | ${commands(joined.redis)} | ${commands(left.redis)} |

presence() after the join listed ${joined.listed} members (complete on both nodes). The commands include the counts, subscriptions and heartbeats that rooms cost without presence, written in the same MULTI once per turn of each node's event loop; EXEC and MULTI count once per such batch.
`
console.log(report)
writeFileSync(join(here, 'results-presence.md'), report)
process.exit(0)

// The reconnect storm benchmark: `npm run bench:resume-storm` (builds first; never part of npm
// test). Needs redis-server on the PATH: each round starts one of its own on a free port, so
// that its command counts and memory are this benchmark's only. Two servers
// (bench/servers/resume-node.mjs, each a process of its own, the Redis adapter, history and
// resume) share that Redis; N clients (in this process) in 10 rooms are on server 1. Server 1
// is closed with app.close(): its sessions are closed with 1012 and kept in Redis. One message
// is published to each room meanwhile (on server 2). Then every client comes back to server 2
// with its token, each at a moment drawn over a spread of S seconds (jitter), and must get the
// message it missed, then `resumed`. Writes bench/results-resume-storm.md: medians over rounds of
//   - the time from app.close() until every client has resumed, and from the first comeback
//     until the last client resumed, with each comeback's own handshake-to-resumed latency;
//   - CPU seconds of each process (server 1 closing, server 2 and Redis in the storm);
//   - Redis commands per session kept (during app.close()) and per resume (during the storm),
//     from INFO commandstats;
//   - Redis memory per session while away: MEMORY USAGE of the keys app.close() left that were
//     not there before, and the used_memory delta, each divided by N.
//
// Environment:
//   BENCH_QUICK=1          a smoke run: N = 1000, S = 2, 1 round
//   BENCH_SESSIONS=10000   N
//   BENCH_SPREAD=10        S, seconds
//   BENCH_ROUNDS=3         rounds
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createClient } from '@redis/client'
import WebSocket from 'ws'
import { start } from './lib/children.mjs'
import { median } from './lib/cluster-report.mjs'
import { environment } from './lib/environment.mjs'
import { clockTicks, processTicks, quiet } from './lib/meter.mjs'
import { operations, startRedis } from './lib/redis-cluster.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const QUICK = process.env.BENCH_QUICK === '1'
const number = (name, fallback) => process.env[name] === undefined || process.env[name] === '' ? fallback : Number(process.env[name])
const config = {
  sessions: number('BENCH_SESSIONS', QUICK ? 1000 : 10_000),
  spreadMs: number('BENCH_SPREAD', QUICK ? 2 : 10) * 1000,
  rounds: number('BENCH_ROUNDS', QUICK ? 1 : 3),
  rooms: 10,
  // Handshakes in flight at once while the clients first connect (not during the storm, whose pace is the spread).
  connecting: 200,
  // The longest any one step may take before the round fails.
  stepMs: 180_000
}
const runId = randomBytes(4).toString('hex')

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping`)
    process.exit(130)
  })
}

async function until (condition, what, ms = config.stepMs) {
  const started = performance.now()
  while (!condition()) {
    if (performance.now() - started > ms) throw new Error(`still waiting after ${ms} ms for ${what}`)
    await sleep(10)
  }
}

const seconds = (ticks) => ticks / clockTicks
const quantile = (sorted, q) => sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

/** Every key of the Redis, with SCAN. */
async function keys (redis) {
  const found = new Set()
  for await (const batch of redis.scanIterator({ COUNT: 1000 })) for (const key of batch) found.add(key)
  return found
}

function usedMemory (info) {
  return Number(/^used_memory:(\d+)/m.exec(info)[1])
}

/** One client: on server 1, then away, then back on server 2 with its token. */
class Client {
  constructor (i) {
    this.i = i
    this.token = null
    this.socket = null
    this.away = false
    this.missed = []
    this.outcome = null // 'resumed' | 'refused:<why>'
    this.retries = 0
    this.comeback = 0 // performance.now() of its (last) comeback handshake
    this.done = 0
  }

  /** Resolves once it has its first message (`fresh <token>`). */
  open (url) {
    return new Promise((resolve, reject) => {
      const socket = this.socket = new WebSocket(`${url}?user=u${this.i}&i=${this.i}`, { perMessageDeflate: false })
      socket.once('message', (data) => {
        this.token = String(data).split(' ')[1]
        resolve()
      })
      socket.once('error', (error) => reject(new Error(`client ${this.i}: ${error.message}`)))
      socket.once('close', (code) => {
        if (code === 1012) this.away = true
        else reject(new Error(`client ${this.i} closed with ${code}`))
      })
    })
  }

  /** Back with its token, again after 100 ms if the handshake fails. */
  comeBack (url) {
    this.comeback = performance.now()
    const socket = this.socket = new WebSocket(`${url}?resume=${this.token}`, { perMessageDeflate: false })
    socket.on('message', (data) => {
      const text = String(data)
      if (text.startsWith('while away ')) this.missed.push(text)
      else if (this.outcome === null) {
        this.outcome = text.split(' ')[0]
        this.done = performance.now()
      }
    })
    socket.on('error', () => {})
    socket.once('close', () => {
      if (this.outcome !== null || this.socket !== socket) return
      this.retries++
      setTimeout(() => this.comeBack(url), 100)
    })
  }
}

/** Opens every client, `connecting` handshakes at a time. */
async function openAll (clients, url) {
  let next = 0
  await Promise.all(Array.from({ length: config.connecting }, async () => {
    while (next < clients.length) await clients[next++].open(url)
  }))
}

async function round (index) {
  const redisServer = await startRedis()
  const env = { BENCH_REDIS_URL: redisServer.url, BENCH_KEY_PREFIX: `bench-storm-${runId}-${index}`, BENCH_ROOMS: String(config.rooms) }
  const nodes = [1, 2].map((n) => start(join(here, 'servers', 'resume-node.mjs'), { env, label: `server ${n}` }))
  const redis = createClient({ url: redisServer.url })
  redis.on('error', () => {})
  const clients = Array.from({ length: config.sessions }, (_, i) => new Client(i))
  try {
    const [first, second] = await Promise.all(nodes.map((node) => node.ready))
    await redis.connect()
    const url = (port) => `ws://127.0.0.1:${port}/ws`
    await openAll(clients, url(first.port))
    const pids = { server1: nodes[0].child.pid, server2: nodes[1].child.pid, redis: redisServer.pid }
    await quiet(Object.values(pids).concat(process.pid))

    // Server 1 closes: every session closed with 1012, kept in Redis.
    const keysBefore = await keys(redis)
    const memoryBefore = usedMemory(await redis.info('memory'))
    const opsBefore = (await operations([redisServer]))[redisServer.address]
    const ticks = { server1: processTicks(pids.server1), redis: processTicks(pids.redis) }
    const closing = performance.now()
    await nodes[0].call('close', {}, config.stepMs)
    const closeSeconds = (performance.now() - closing) / 1000
    const closeCpu = { server1: seconds(processTicks(pids.server1) - ticks.server1), redis: seconds(processTicks(pids.redis) - ticks.redis) }
    const opsKept = (await operations([redisServer]))[redisServer.address] - opsBefore
    await until(() => clients.every((client) => client.away), 'every client closed with 1012')
    await nodes[0].stop()

    // What the kept sessions cost in Redis while away.
    const memoryAway = usedMemory(await redis.info('memory'))
    const newKeys = [...await keys(redis)].filter((key) => !keysBefore.has(key))
    let keyBytes = 0
    for (let i = 0; i < newKeys.length; i += 500) {
      const sizes = await Promise.all(newKeys.slice(i, i + 500).map((key) => redis.memoryUsage(key)))
      keyBytes += sizes.reduce((sum, size) => sum + (size ?? 0), 0)
    }
    await nodes[1].call('publish')

    // The storm: every client back on server 2 with its token, spread over the spread.
    const opsStorm = (await operations([redisServer]))[redisServer.address]
    const stormTicks = { server2: processTicks(pids.server2), redis: processTicks(pids.redis) }
    const storming = performance.now()
    for (const client of clients) setTimeout(() => client.comeBack(url(second.port)), Math.random() * config.spreadMs)
    await until(() => clients.every((client) => client.outcome !== null), 'every client back')
    const stormSeconds = (performance.now() - storming) / 1000
    const stormCpu = { server2: seconds(processTicks(pids.server2) - stormTicks.server2), redis: seconds(processTicks(pids.redis) - stormTicks.redis) }
    const opsResumed = (await operations([redisServer]))[redisServer.address] - opsStorm
    const resumed = clients.filter((client) => client.outcome === 'resumed')
    const whole = resumed.filter((client) => client.missed.length === 1 && client.missed[0] === `while away room-${client.i % config.rooms}`)
    const latencies = clients.map((client) => client.done - client.comeback).sort((a, b) => a - b)
    const firstBack = Math.min(...clients.map((client) => client.comeback))
    const lastDone = Math.max(...clients.map((client) => client.done))
    const refusals = {}
    for (const client of clients) if (client.outcome !== 'resumed') refusals[client.outcome] = (refusals[client.outcome] ?? 0) + 1
    return {
      resumed: resumed.length,
      whole: whole.length,
      refusals,
      retries: clients.reduce((sum, client) => sum + client.retries, 0),
      closeSeconds,
      closeCpu,
      stormSeconds,
      fromClose: (lastDone - closing) / 1000,
      fromFirstComeback: (lastDone - firstBack) / 1000,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      stormCpu,
      opsPerKept: opsKept / config.sessions,
      opsPerResume: resumed.length > 0 ? opsResumed / resumed.length : null,
      keyBytesPerSession: keyBytes / config.sessions,
      newKeys: newKeys.length,
      memoryPerSession: (memoryAway - memoryBefore) / config.sessions
    }
  } finally {
    for (const client of clients) client.socket?.terminate()
    await Promise.all(nodes.map((node) => node.stop()))
    await redis.close().catch(() => {})
    await redisServer.stop()
  }
}

function report (results, env) {
  const ok = results.filter((result) => result.error === undefined)
  const m = (get, digits = 2) => {
    const value = median(ok.map(get))
    return value === null ? '–' : value.toFixed(digits)
  }
  const rows = [
    ['clients resumed, each with the message it missed first', m((r) => r.whole, 0) + ` / ${config.sessions}`],
    ['app.close() of server 1 (s)', m((r) => r.closeSeconds)],
    ['from app.close() until every client resumed (s)', m((r) => r.fromClose)],
    ['from the first comeback until every client resumed (s)', m((r) => r.fromFirstComeback)],
    ['one comeback, handshake to `resumed`: p50 / p99 (ms)', `${m((r) => r.p50, 1)} / ${m((r) => r.p99, 1)}`],
    ['CPU, server 1 in app.close() (s)', m((r) => r.closeCpu.server1)],
    ['CPU, Redis in app.close() (s)', m((r) => r.closeCpu.redis)],
    ['CPU, server 2 in the storm (s)', m((r) => r.stormCpu.server2)],
    ['CPU, Redis in the storm (s)', m((r) => r.stormCpu.redis)],
    ['Redis commands per session kept (app.close())', m((r) => r.opsPerKept, 1)],
    ['Redis commands per resume', m((r) => r.opsPerResume, 1)],
    ['Redis memory per session away: MEMORY USAGE of the new keys (bytes)', m((r) => r.keyBytesPerSession, 0)],
    ['Redis memory per session away: used_memory delta (bytes)', m((r) => r.memoryPerSession, 0)]
  ]
  let text = `# Resume: a reconnect storm across two servers

\`npm run bench:resume-storm\` (bench/resume-storm.mjs), ${env.date.slice(0, 10)}, Node.js ${env.node}, ${env.nproc} CPU(s) (${env.cpu}),
load average ${env.loadavg} at the start. ${config.sessions} sessions in ${config.rooms} rooms on server 1, two server processes
and a private redis-server; server 1 closed with app.close(), one message published to each room meanwhile, then every client
back on server 2 with its token over a spread of ${config.spreadMs / 1000} s. Medians of ${ok.length} round(s)${ok.length < results.length ? ` (${results.length - ok.length} failed)` : ''}.

| | median |
| --- | ---: |
${rows.map(([name, value]) => `| ${name} | ${value} |`).join('\n')}

Every round:

| round | resumed | whole | refused | retries | close (s) | all back (s) | p99 (ms) | ops/kept | ops/resume | key bytes/session | used_memory/session |
| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
`
  for (const [i, r] of results.entries()) {
    text += r.error !== undefined
      ? `| ${i + 1} | failed: ${r.error} |||||||||||\n`
      : `| ${i + 1} | ${r.resumed} | ${r.whole} | ${JSON.stringify(r.refusals)} | ${r.retries} | ${r.closeSeconds.toFixed(2)} | ${r.fromClose.toFixed(2)} | ${r.p99.toFixed(1)} | ${r.opsPerKept.toFixed(1)} | ${r.opsPerResume?.toFixed(1) ?? '–'} | ${r.keyBytesPerSession.toFixed(0)} (${r.newKeys} keys) | ${r.memoryPerSession.toFixed(0)} |\n`
  }
  return text
}

async function main () {
  const env = environment()
  console.log(`resume storm: ${config.sessions} sessions, spread ${config.spreadMs / 1000} s, ${config.rounds} round(s); node ${env.node}, ${env.nproc} CPU(s), load average ${env.loadavg}`)
  const results = []
  for (let i = 1; i <= config.rounds; i++) {
    const began = performance.now()
    let result
    try {
      result = await round(i)
    } catch (error) {
      result = { error: String(error.message ?? error) }
    }
    results.push(result)
    console.log(`round ${i}/${config.rounds} ${((performance.now() - began) / 1000).toFixed(1)} s  ` + (result.error !== undefined
      ? `FAILED: ${result.error}`
      : `resumed ${result.resumed} (${result.whole} with what they missed), all back ${result.fromClose.toFixed(2)} s after close, ${result.opsPerResume?.toFixed(1) ?? '–'} Redis commands per resume, ${result.keyBytesPerSession.toFixed(0)} bytes per session away`))
  }
  const markdown = report(results, env)
  writeFileSync(join(here, 'results-resume-storm.md'), markdown)
  console.log('\n' + markdown + '\nwritten: bench/results-resume-storm.md')
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  })

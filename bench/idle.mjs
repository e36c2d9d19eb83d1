// The idle benchmark: `npm run bench:idle` (builds first). This plugin against raw ws, each
// with a heartbeat, at several counts of idle connections that answer every ping: what a
// session costs in memory (RSS, and heap + external after forced GCs) and what the heartbeat
// costs in CPU. Servers alternate every round; the report (medians) goes to
// bench/results-idle.md, the raw figures to bench/results-idle.json.
//
// Memory: a server with the default heartbeat (the plugin's 30 s; raw ws with the setInterval
// of its README at 30 s), connections opened count by count, memory read after each.
// Heartbeat CPU: at 30 s a measurement would take minutes, so a second server beats every
// BENCH_BEAT_MS; the load generator says when every client has been pinged (one beat over), and
// the server's CPU (process.cpuUsage) is read from the end of one beat to the end of the last,
// less its idle CPU (read in the quiet gaps between beats), over the beats in between: the
// CPU of one beat (pings out, pongs in). At the default interval it costs that every 30 s.
//
// One process holds as many sockets as RLIMIT_NOFILE allows: the children get the hard limit
// (prlimit), and the largest count must fit under it.
//
// Environment:
//   BENCH_IDLE_COUNTS=5000,10000,19000   connection counts, ascending
//   BENCH_ROUNDS=3                       rounds (servers alternate order each round)
//   BENCH_BEAT_MS=2000                   the heartbeat interval of the CPU servers
//   BENCH_BEATS=5                        beats measured at each count
//   BENCH_SERVERS=plugin,ws                which servers (comma list)
//   BENCH_SOURCES=4                      source addresses (127.0.0.1…) the clients spread over
//   BENCH_PROFILE=plugin                 after the rounds, CPU-profile these servers (comma list,
//                                        '' for none) over the beats at the largest count
//   BENCH_QUICK=1                        a smoke run: 500 and 1,000 connections, 1 round
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { launchWithLoad } from './lib/children.mjs'
import { metered, quiet } from './lib/meter.mjs'
import { summarize, toMarkdown } from './lib/profile.mjs'
import { environment as machine } from './lib/environment.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const QUICK = process.env.BENCH_QUICK === '1'
const env = (name, fallback) => process.env[name] === undefined || process.env[name] === '' ? fallback : process.env[name]

const config = {
  counts: env('BENCH_IDLE_COUNTS', QUICK ? '500,1000' : '5000,10000,19000').split(',').map(Number),
  rounds: Number(env('BENCH_ROUNDS', QUICK ? 1 : 3)),
  beatMs: Number(env('BENCH_BEAT_MS', 2000)),
  beats: Number(env('BENCH_BEATS', QUICK ? 3 : 5)),
  sources: Number(env('BENCH_SOURCES', 4)),
  defaultInterval: 30_000,
  /** After a beat, how long the server is left to read the pongs before its idle CPU is read. */
  settleMs: 300
}
const profiled = (process.env.BENCH_PROFILE ?? 'plugin').split(',').map((name) => name.trim()).filter(Boolean)

const ALL_SERVERS = [
  {
    name: 'plugin',
    file: 'plugin.mjs',
    path: '/ws?user=bench',
    memoryEnv: { BENCH_HEARTBEAT: 'default' },
    cpuEnv: { BENCH_HEARTBEAT: String(config.beatMs) }
  },
  {
    name: 'ws',
    file: 'ws.mjs',
    path: '/ws?user=bench',
    memoryEnv: { BENCH_WS_HEARTBEAT: String(config.defaultInterval) },
    cpuEnv: { BENCH_WS_HEARTBEAT: String(config.beatMs) }
  }
]
const SERVERS = ALL_SERVERS.filter((server) => env('BENCH_SERVERS', 'plugin,ws').split(',').includes(server.name))
const largest = Math.max(...config.counts)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping`)
    process.exit(130)
  })
}

// ---------------------------------------------------------------------------------------
// Children, with the open-files limit raised to the hard limit.

function openFilesLimit (pid) {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'latin1'))
  const value = (text) => text === 'unlimited' ? Infinity : Number(text)
  return { soft: value(line[1]), hard: value(line[2]) }
}

function raiseOpenFiles (pid, label) {
  const { soft, hard } = openFilesLimit(pid)
  if (soft < hard) {
    try {
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${hard}:${hard}`])
    } catch (error) {
      console.error(`${label}: prlimit failed (${error.message.split('\n')[0]})`)
    }
  }
  const raised = openFilesLimit(pid).soft
  if (raised < largest + 64) throw new Error(`${label}: the open-files limit is ${raised}, too low for ${largest} connections`)
  return raised
}

function launch (server, serverEnv) {
  return launchWithLoad({
    file: join(here, 'servers', server.file),
    env: serverEnv,
    label: server.name,
    protocol: 'ws',
    clockTicks: 100,
    prepare: (srv, loader) => ({ limits: { server: raiseOpenFiles(srv.child.pid, server.name), load: raiseOpenFiles(loader.child.pid, 'load generator') } })
  })
}

/** Opens clients until `count` are connected; resolves with the handshakes' time. */
async function connectTo (load, server, connected, count) {
  const result = await load.call('connect', { role: 'recv', count: count - connected, path: server.path, sources: config.sources }, 300_000)
  if (result.count !== count) throw new Error(`${result.count} of ${count} clients connected`)
  return result.seconds
}

const cpuMs = async (srv) => {
  const { user, system } = await srv.call('cpu')
  return (user + system) / 1000
}

// ---------------------------------------------------------------------------------------
// Memory, with the default heartbeat.

async function memorySession (server) {
  const { srv, load, stop, limits } = await launch(server, server.memoryEnv)
  try {
    await sleep(300)
    const before = await srv.call('mem')
    if (!before.gc) throw new Error('the server runs without --expose-gc')
    const steps = []
    let connected = 0
    for (const count of config.counts) {
      const seconds = await connectTo(load, server, connected, count)
      connected = count
      await sleep(500)
      const after = await srv.call('mem')
      steps.push({
        count,
        connectSeconds: seconds,
        rss: after.rss,
        heap: after.heapUsed + after.external,
        rssPerSession: (after.rss - before.rss) / count,
        heapPerSession: (after.heapUsed + after.external - before.heapUsed - before.external) / count
      })
    }
    return { limits, before: { rss: before.rss, heap: before.heapUsed + before.external }, steps }
  } finally {
    await stop()
  }
}

// ---------------------------------------------------------------------------------------
// Heartbeat CPU, with a short interval.

/**
 * From the end of one beat to the end of the last: the server's CPU over that time, less its
 * idle CPU (read between `settleMs` after a beat and the middle of the interval), per beat.
 */
async function measureBeats (srv, load, count) {
  await load.call('beat', {}) // a beat of every client, the first after the last connect
  let idleMs = 0
  let idleWallMs = 0
  const first = await cpuMs(srv)
  const began = performance.now()
  let last = null
  for (let i = 0; i < config.beats; i++) {
    await sleep(config.settleMs)
    const a = await cpuMs(srv)
    const t = performance.now()
    await sleep(config.beatMs / 2 - config.settleMs)
    idleMs += await cpuMs(srv) - a
    idleWallMs += performance.now() - t
    last = await load.call('beat', {})
  }
  const end = await cpuMs(srv)
  const wallMs = performance.now() - began
  // Beats over wall time, not the loop's count: a beat missed by a late 'beat' call is still counted.
  const beats = Math.round(wallMs / config.beatMs)
  const idleRate = idleMs / idleWallMs
  const perBeatMs = (end - first - idleRate * wallMs) / beats
  return {
    count,
    beats,
    wallMs,
    totalCpuMs: end - first,
    idleCpuPct: 100 * idleRate,
    perBeatMs,
    perSessionUs: 1000 * perBeatMs / count,
    atDefaultPct: 100 * perBeatMs / config.defaultInterval,
    pings: last.pings,
    disconnected: last.disconnected
  }
}

async function cpuSession (server, { profile = null } = {}) {
  const { srv, loader, load, stop } = await launch(server, server.cpuEnv)
  try {
    const steps = []
    let connected = 0
    const counts = profile === null ? config.counts : [largest]
    for (const count of counts) {
      await connectTo(load, server, connected, count)
      connected = count
      await quiet([srv.child.pid, loader.child.pid], { maxMs: 5000 })
      if (profile !== null) await srv.call('profile-start', { interval: 250 })
      const step = await metered({ server: srv.child.pid, load: loader.child.pid }, [], () => measureBeats(srv, load, count))
      if (profile !== null) await srv.call('profile-stop', { file: profile })
      steps.push({ ...step, otherCpuPct: step.cpu.other, loadCpuPct: step.cpu.load })
      if (step.disconnected !== 0) throw new Error(`${step.disconnected} clients were disconnected (pongs not answered?)`)
    }
    return { steps }
  } finally {
    await stop()
  }
}

// ---------------------------------------------------------------------------------------
// Report

const median = (values) => {
  const sorted = values.filter((value) => typeof value === 'number' && Number.isFinite(value)).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** The median over rounds of `key` at `count`, from `kind` ('memory' or 'cpu') of `name`. */
function med (results, name, kind, count, key) {
  return median((results[name] ?? []).filter((round) => round[kind]?.steps !== undefined).map((round) => round[kind].steps.find((step) => step.count === count)?.[key]))
}

const kib = (bytes) => bytes === null ? '–' : `${(bytes / 1024).toFixed(2)} KiB`
const ratio = (value, base) => value === null || base === null || base === 0 ? '' : ` (${(value / base).toFixed(2)}×)`
const fixed = (digits) => (value) => value === null ? '–' : value.toFixed(digits)
const count = (n) => n.toLocaleString('en')

function report (results, environment, profiles, totalSeconds) {
  const names = SERVERS.map((server) => server.name)
  const row = (label, kind, n, key, format) => `| ${label} | ${names.map((name) => {
    const value = med(results, name, kind, n, key)
    return value === null ? '–' : format(value) + ratio(value, med(results, 'ws', kind, n, key))
  }).join(' | ')} |`
  const lines = [
    '# Idle sessions and the heartbeat',
    '',
    `${environment.date} · node ${environment.node} · nproc ${environment.nproc} · ${environment.cpu} · ${environment.kernel} · ` +
      `load average at start ${environment.loadavg} · open files limit ${environment.openFiles}`,
    '',
    `Medians of ${config.rounds} round(s), servers in alternating order each round${QUICK ? ' (BENCH_QUICK smoke run)' : ''}; in brackets, the ratio to raw \`ws\`. ` +
      `Idle clients (raw TCP, bench/load.mjs) that answer every ping with a pong, spread over ${config.sources} source address(es); ` +
      `every session of the plugin is in one room (\`bench\`, as raw ws's clients are in one Set). Total run time ${totalSeconds.toFixed(0)} s.`,
    '',
    `**100,000 sessions were not measured**: one process may hold at most ${environment.openFiles} open files here (RLIMIT_NOFILE's hard limit, ` +
      'which cannot be raised on this machine), so the largest count is the most that fits in one server process.',
    '',
    '## Memory, with the default heartbeat',
    '',
    'Per session: the server\'s growth from before the first connection, after forced GCs, over the sessions open. ' +
      `Heartbeat: the plugin's default (${config.defaultInterval / 1000} s); raw ws with its README's (setInterval, ping, isAlive on pong) at the same interval.`,
    '',
    `| | ${names.join(' | ')} |`,
    `| --- |${names.map(() => ' ---: |').join('')}`
  ]
  for (const n of config.counts) {
    lines.push(`| **${count(n)} sessions** | |${names.slice(1).map(() => ' |').join('')}`)
    lines.push(row('RSS per session', 'memory', n, 'rssPerSession', kib))
    lines.push(row('heap + external per session', 'memory', n, 'heapPerSession', kib))
    lines.push(row('server RSS (MiB)', 'memory', n, 'rss', (v) => (v / 1048576).toFixed(1)))
  }
  lines.push(
    '',
    '## Heartbeat CPU',
    '',
    `A server that beats every ${config.beatMs} ms, ${config.beats} beats at each count: its CPU (process.cpuUsage) from the end of one beat ` +
      '(every client pinged) to the end of the last, less its idle CPU (read in the gaps between beats), per beat. One beat is the pings ' +
      `out and the pongs in; at the default interval it costs that every ${config.defaultInterval / 1000} s.`,
    '',
    `| | ${names.join(' | ')} |`,
    `| --- |${names.map(() => ' ---: |').join('')}`
  )
  for (const n of config.counts) {
    lines.push(`| **${count(n)} sessions** | |${names.slice(1).map(() => ' |').join('')}`)
    lines.push(row('CPU per beat (ms)', 'cpu', n, 'perBeatMs', fixed(1)))
    lines.push(row('CPU per session per beat (µs)', 'cpu', n, 'perSessionUs', fixed(2)))
    lines.push(row(`% of a core at the default ${config.defaultInterval / 1000} s`, 'cpu', n, 'atDefaultPct', fixed(3)))
    lines.push(row('idle CPU between beats (% of a core)', 'cpu', n, 'idleCpuPct', fixed(2)))
    lines.push(row('other processes during the beats (% of a core)', 'cpu', n, 'otherCpuPct', fixed(0)))
  }
  const disconnected = names.map((name) => `${name} ${results[name].reduce((sum, round) => sum + (round.cpu?.steps ?? []).reduce((s, step) => s + step.disconnected, 0), 0)}`)
  lines.push('', `Clients cut off by a heartbeat during the CPU rounds (every client answers pongs: must be 0): ${disconnected.join(', ')}.`)

  const [low, high] = [Math.min(...config.counts), largest]
  lines.push('', '## Scaling', '', `Per-session cost at ${count(high)} against ${count(low)} sessions (1.00: flat):`, '')
  for (const name of names) {
    const scale = (kind, key) => {
      const a = med(results, name, kind, low, key)
      const b = med(results, name, kind, high, key)
      return a === null || b === null ? '–' : `${(b / a).toFixed(2)}×`
    }
    lines.push(`- ${name}: RSS ${scale('memory', 'rssPerSession')}, heap + external ${scale('memory', 'heapPerSession')}, heartbeat CPU ${scale('cpu', 'perSessionUs')}`)
  }

  lines.push('', '## Targets (issue 17, section 3)', '')
  for (const n of config.counts) {
    const r = med(results, 'plugin', 'memory', n, 'rssPerSession') / med(results, 'ws', 'memory', n, 'rssPerSession')
    if (Number.isFinite(r)) lines.push(`- RSS per session at ${count(n)}, against raw ws: ${r.toFixed(2)}× (target ≤ 1.1×): **${r <= 1.1 ? 'met' : 'missed'}**`)
  }
  for (const n of config.counts) {
    const pct = med(results, 'plugin', 'cpu', n, 'atDefaultPct')
    if (pct !== null) lines.push(`- heartbeat CPU at ${count(n)} sessions and the default interval: ${pct?.toFixed(3)}% of a core (target < 2%): **${pct < 2 ? 'met' : 'missed'}**`)
  }

  const failures = SERVERS.flatMap((server) => results[server.name].filter((round) => round.error !== undefined).map((round) => `- ${server.name}, round ${round.round}: ${round.error}`))
  if (failures.length > 0) lines.push('', 'Failed rounds:', '', ...failures)
  for (const profile of profiles) {
    lines.push('', `## CPU profile: ${profile.name}, heartbeat at ${count(largest)} sessions`, '',
      `${profile.beats} beats of ${config.beatMs} ms while profiled (sampling every 250 µs), ${profile.perBeatMs.toFixed(1)} ms of CPU per beat. ` +
        `Profile: \`bench/${profile.file.slice(here.length + 1)}\`.`, '', toMarkdown(profile.summary))
  }
  return lines.join('\n') + '\n'
}

function environment () {
  return { ...machine(), openFiles: openFilesLimit(process.pid).hard }
}

async function main () {
  const began = performance.now()
  const environmentNow = environment()
  console.log(`idle benchmark: ${SERVERS.map((server) => server.name).join(', ')} at ${config.counts.map(count).join(', ')} sessions; ${config.rounds} round(s)`)
  console.log(`node ${environmentNow.node}, ${environmentNow.nproc} CPU(s), load average ${environmentNow.loadavg}, open files ≤ ${environmentNow.openFiles}`)
  const results = Object.fromEntries(SERVERS.map((server) => [server.name, []]))
  for (let round = 0; round < config.rounds; round++) {
    const order = round % 2 === 0 ? SERVERS : [...SERVERS].reverse()
    for (const server of order) {
      const t0 = performance.now()
      process.stdout.write(`round ${round + 1}/${config.rounds} ${server.name.padEnd(7)} `)
      const result = { round: round + 1 }
      try {
        result.memory = await memorySession(server)
        result.cpu = await cpuSession(server)
      } catch (error) {
        result.error = String(error.message ?? error)
      }
      results[server.name].push(result)
      const top = (kind) => result[kind]?.steps.at(-1)
      console.log(result.error !== undefined
        ? `FAILED: ${result.error}`
        : `${((performance.now() - t0) / 1000).toFixed(0)} s  at ${count(largest)}: RSS ${kib(top('memory').rssPerSession)}, ` +
          `heap ${kib(top('memory').heapPerSession)} per session; ${top('cpu').perBeatMs.toFixed(1)} ms per beat (${top('cpu').atDefaultPct.toFixed(3)}% at 30 s)`)
    }
  }

  const profiles = []
  for (const name of profiled) {
    const server = SERVERS.find((candidate) => candidate.name === name)
    if (server === undefined) throw new Error(`BENCH_PROFILE: unknown server ${name}`)
    mkdirSync(join(here, 'profiles'), { recursive: true })
    const file = join(here, 'profiles', `${name}-idle-heartbeat-${largest}.cpuprofile`)
    console.log(`profiling ${name}'s heartbeat at ${count(largest)} sessions…`)
    const { steps: [step] } = await cpuSession(server, { profile: file })
    profiles.push({ name, file, beats: step.beats, perBeatMs: step.perBeatMs, summary: summarize(file, 20) })
  }

  const markdown = report(results, environmentNow, profiles, (performance.now() - began) / 1000)
  console.log('\n' + markdown)
  writeFileSync(join(here, 'results-idle.md'), markdown)
  writeFileSync(join(here, 'results-idle.json'), JSON.stringify({ environment: environmentNow, config, results }, null, 2) + '\n')
  console.log('written: bench/results-idle.md, bench/results-idle.json')
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  })

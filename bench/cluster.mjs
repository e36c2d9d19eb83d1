// The cluster benchmark: `npm run bench:cluster` (builds first; needs the Redis at
// BENCH_REDIS_URL, default REDIS_URL or redis://127.0.0.1:6379). Fan-out through the Redis
// adapter on 2 nodes against 1 node, each node a server process of its own
// (bench/servers/plugin-redis.mjs, and bench/servers/plugin.mjs without the adapter), driven
// by one load generator process (bench/load.mjs, the fan-out benchmark's: raw TCP clients,
// one clock for every latency), every round in alternating order. Writes a Markdown table of
// medians to bench/results-cluster.md.
//
// Scenarios (the publisher is always on node 1):
//   1 node, no adapter   N receivers on one plugin server without an adapter (the reference)
//   1 node               N receivers on one plugin server with the Redis adapter
//   2 nodes              N/2 receivers on node 1, N/2 on node 2
//   2 nodes, remote      the publisher alone on node 1, all N receivers on node 2: every
//                        delivery crosses Redis
// Phases: saturated fan-out to N receivers (a window of messages in flight, as bench/run.mjs),
// then publish-to-arrival latency at a paced rate of messages per second to small rooms.
//
// Environment:
//   BENCH_QUICK=1            a smoke run: N = 200, short phases, 1 round
//   BENCH_ROUNDS=5           rounds (scenarios alternate order each round)
//   BENCH_RECEIVERS=1000     N, the receivers of the saturated fan-out
//   BENCH_WINDOW=4           messages in flight in the saturated phase
//   BENCH_RATE=10000         messages per second of the paced phases
//   BENCH_ROOMS=2,10         receivers in the room of each paced phase (split as the scenario says)
//   BENCH_SCENARIOS=…        comma list of scenario ids: memory, one, two, remote (default all)
//   BENCH_PROFILE=two        after the rounds, CPU-profile every node of these scenarios during the
//                            saturated phase and the largest paced one (bench/profiles/cluster-*.cpuprofile)
//   BENCH_MAX_SECONDS=540    time budget; past it no new session starts
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createClient } from '@redis/client'
import { start } from './lib/children.mjs'
import { summarize, toMarkdown } from './lib/profile.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const QUICK = process.env.BENCH_QUICK === '1'
const number = (name, fallback) => process.env[name] === undefined || process.env[name] === '' ? fallback : Number(process.env[name])
const list = (name, fallback) => (process.env[name] || fallback).split(',').map((item) => item.trim()).filter(Boolean)

const config = {
  rounds: number('BENCH_ROUNDS', QUICK ? 1 : 5),
  receivers: number('BENCH_RECEIVERS', QUICK ? 200 : 1000),
  window: number('BENCH_WINDOW', 4),
  rate: number('BENCH_RATE', 10_000),
  rooms: list('BENCH_ROOMS', '2,10').map(Number),
  fanoutMs: QUICK ? 600 : 2000,
  pacedMs: QUICK ? 600 : 2000,
  warmup: 20,
  // Before a paced phase: enough messages, a window at a time, for the JIT to have compiled
  // the per-message path (the saturated phase before it sends few, large broadcasts).
  pacedWarmup: QUICK ? 1000 : 3000,
  pacedWarmupWindow: 16,
  drainMs: 10_000,
  maxSeconds: number('BENCH_MAX_SECONDS', 540),
  redisUrl: process.env.BENCH_REDIS_URL || process.env.REDIS_URL || 'redis://127.0.0.1:6379'
}
const runId = randomBytes(4).toString('hex')
const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

/** `place(count)`: how many of `count` receivers go to each node. */
const ALL_SCENARIOS = [
  { id: 'memory', name: '1 node, no adapter', file: 'plugin.mjs', nodes: 1, place: (count) => [count] },
  { id: 'one', name: '1 node', file: 'plugin-redis.mjs', nodes: 1, place: (count) => [count] },
  { id: 'two', name: '2 nodes', file: 'plugin-redis.mjs', nodes: 2, place: (count) => [Math.floor(count / 2), Math.ceil(count / 2)] },
  { id: 'remote', name: '2 nodes, remote', file: 'plugin-redis.mjs', nodes: 2, place: (count) => [0, count] }
]
const BASELINE = 'one'
const selected = list('BENCH_SCENARIOS', ALL_SCENARIOS.map((scenario) => scenario.id).join(','))
for (const id of selected) {
  if (!ALL_SCENARIOS.some((scenario) => scenario.id === id)) throw new Error(`BENCH_SCENARIOS: unknown scenario ${id}`)
}
const scenarios = ALL_SCENARIOS.filter((scenario) => selected.includes(scenario.id))

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping`)
    process.exit(130)
  })
}
setTimeout(() => {
  console.error(`benchmark still running after ${config.maxSeconds + 120} s: cut off`)
  process.exit(1)
}, (config.maxSeconds + 120) * 1000).unref()

// ---------------------------------------------------------------------------------------
// CPU time of each process, from /proc: the servers, Redis, the load generator.

function processTicks (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime
}

/**
 * Busy ticks of the whole machine (every CPU): `irq` the time in interrupts and softirqs (on
 * loopback, the kernel's TCP receive path mostly: no process is charged for it), `rest` the
 * time in user and system code, steal included.
 */
function machineTicks () {
  // cpu user nice system idle iowait irq softirq steal …
  const fields = readFileSync('/proc/stat', 'latin1').slice(0, 200).split('\n')[0].trim().split(/\s+/).map(Number)
  return { irq: fields[6] + fields[7], rest: fields[1] + fields[2] + fields[3] + fields[8] }
}

/** Measures `fn()`, returning its result with the CPU % of one core each named process used meanwhile. */
async function metered (pids, fn) {
  const wall = performance.now()
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processTicks(pid)]))
  const machine = machineTicks()
  const result = await fn()
  const seconds = (performance.now() - wall) / 1000
  const cpu = {}
  let named = 0
  for (const [name, pid] of Object.entries(pids)) {
    const ticks = processTicks(pid) - before[name]
    named += ticks
    cpu[name] = 100 * ticks / clockTicks / seconds
  }
  const after = machineTicks()
  cpu.irq = 100 * (after.irq - machine.irq) / clockTicks / seconds
  cpu.other = Math.max(0, 100 * (after.rest - machine.rest - named) / clockTicks / seconds)
  return { ...result, cpu, cpuSeconds: seconds }
}

/** Every process's ticks on this machine, but those of this benchmark's own process tree. */
function othersTicks (own) {
  const { rest } = machineTicks()
  return rest - own.reduce((sum, pid) => sum + processTicks(pid), 0)
}

/**
 * Waits (at most `maxMs`) until the other processes of the machine use under a quarter of a
 * core over half a second: on a 2-core machine another benchmark or test run would set the
 * pace. Resolves with the milliseconds waited.
 */
async function quiet (maxMs = 30_000) {
  const began = performance.now()
  for (;;) {
    const before = othersTicks([process.pid, redisPid])
    await sleep(500)
    const busy = 100 * (othersTicks([process.pid, redisPid]) - before) / clockTicks / 0.5
    const waited = performance.now() - began
    if (busy < 25 || waited > maxMs) return waited - 500
  }
}

// ---------------------------------------------------------------------------------------
// One scenario, one round: fresh servers (a key prefix of their own), a fresh load generator.

async function session (scenario, round, { profile = null } = {}) {
  const keyPrefix = `bench-cluster-${runId}-${round}-${scenario.id}`
  const env = { BENCH_REDIS_URL: config.redisUrl, BENCH_KEY_PREFIX: keyPrefix }
  const nodes = Array.from({ length: scenario.nodes }, (_, i) =>
    start(join(here, 'servers', scenario.file), { env, label: `${scenario.name}: node ${i + 1}` }))
  const loader = start(join(here, 'load.mjs'), { label: 'load generator' })
  const died = Promise.race(nodes.map((node, i) => node.exited.then(() => {
    throw new Error(`node ${i + 1} exited (${node.child.exitCode ?? node.child.signalCode})`)
  })))
  died.catch(() => {})
  const load = (...args) => Promise.race([loader.call(...args), died])
  const adapter = scenario.file === 'plugin-redis.mjs'
  try {
    const ports = (await Promise.all(nodes.map((node) => node.ready))).map((message) => message.port)
    await loader.ready
    const pids = { load: loader.child.pid, redis: redisPid }
    nodes.forEach((node, i) => { pids[`node${i + 1}`] = node.child.pid })

    /** Opens `count` clients of `role` on node i: the load generator connects to one port at a time. */
    const connect = async (i, role, count) => {
      if (count === 0) return
      await load('init', { port: ports[i], protocol: 'ws', serverPid: nodes[i].child.pid, clockTicks })
      await load('connect', { role, count, path: '/ws?user=bench' })
    }
    /** Resolves once every node has subscribed and the room counts `expected` members across the cluster. */
    const inRoom = async (expected) => {
      if (!adapter) return
      const deadline = performance.now() + 10_000
      for (;;) {
        const counts = await Promise.all(nodes.map((node) => node.call('cluster-members')))
        if (counts.every((count) => count === expected)) return
        if (performance.now() > deadline) throw new Error(`room 'bench' counts ${counts.join(', ')} members, expected ${expected}`)
        await sleep(10)
      }
    }
    const receivers = async (count) => {
      const placed = scenario.place(count)
      for (let i = 0; i < nodes.length; i++) await connect(i, 'recv', placed[i])
      await inRoom(count + 1)
    }
    const phase = async (name, args) => {
      if (profile !== null) await Promise.all(nodes.map((node) => node.call('profile-start', {})))
      const result = await metered(pids, () => load('fanout', { ...args, drainMs: config.drainMs }))
      if (profile !== null) {
        await Promise.all(nodes.map((node, i) => node.call('profile-stop', { file: profile(name, i) })))
      }
      return result
    }

    const result = { placed: scenario.place(config.receivers) }
    await connect(0, 'pub', 1)
    await receivers(config.receivers)
    result.saturated = await phase('saturated', { mode: 'window', window: config.window, warmup: config.warmup, durationMs: config.fanoutMs })
    await load('close', { role: 'recv', settleMs: 0 })
    result.paced = {}
    const rooms = profile === null ? config.rooms : [Math.max(...config.rooms)]
    for (const size of rooms) {
      await receivers(size)
      result.paced[size] = await phase(`paced-${size}`, { mode: 'paced', rate: config.rate, window: config.pacedWarmupWindow, warmup: config.pacedWarmup, durationMs: config.pacedMs })
      await load('close', { role: 'recv', settleMs: 0 })
    }
    if (adapter) result.cluster = await Promise.all(nodes.map((node) => node.call('cluster-stats')))
    // Closing the nodes removes them from Redis; the clients go first (they would not answer a close frame).
    await load('close', { role: 'pub', settleMs: 50 })
    if (adapter) await Promise.all(nodes.map((node) => node.call('close', {}, 10_000)))
    return result
  } finally {
    await Promise.all([loader.stop(), ...nodes.map((node) => node.stop())])
  }
}

// ---------------------------------------------------------------------------------------
// Report

function median (values) {
  const sorted = values.filter((value) => typeof value === 'number' && Number.isFinite(value)).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function si (value) {
  if (value === null) return '–'
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`
  if (value >= 1e4) return `${(value / 1e3).toFixed(0)}k`
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`
  return value.toFixed(0)
}

const msFormat = (value) => value === null ? '–' : value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
const pct = (value) => value === null ? '–' : `${value.toFixed(0)}%`
const get = (object, path) => path.split('.').reduce((at, key) => at?.[key], object) ?? null
const ok = (results, id) => results[id].filter((round) => round.error === undefined)
const med = (results, id, path) => median(ok(results, id).map((round) => get(round, path)))

/** Deliveries per second of CPU of the servers and Redis together. */
function deliveriesPerCpu (phase) {
  const cpu = Object.entries(phase.cpu).filter(([name]) => name.startsWith('node') || name === 'redis').reduce((sum, [, value]) => sum + value, 0)
  return cpu > 0 ? phase.deliveriesPerSec / (cpu / 100) : null
}

function withDerived (round) {
  if (round.error !== undefined) return round
  round.saturated.perCpu = deliveriesPerCpu(round.saturated)
  return round
}

function placement (scenario, count) {
  return scenario.place(count).map((n) => n.toLocaleString('en')).join(' + ')
}

function rows () {
  const paced = config.rooms.flatMap((size) => [
    { label: `room of ${size}: latency p50 / p99 (ms)`, pair: [`paced.${size}.p50`, `paced.${size}.p99`] },
    { label: `room of ${size}: deliveries/s (offered ${si(size * config.rate)})`, path: `paced.${size}.deliveriesPerSec`, format: si }
  ])
  return [
    { section: `**Saturated fan-out to N = ${config.receivers.toLocaleString('en')}** (${config.window} messages in flight)` },
    { label: 'receivers per node', placed: config.receivers },
    { label: 'deliveries/s', path: 'saturated.deliveriesPerSec', format: si, ratio: true },
    { label: 'deliveries per second of CPU (servers + Redis)', path: 'saturated.perCpu', format: si, ratio: true },
    { label: 'latency p50 / p99 (ms)', pair: ['saturated.p50', 'saturated.p99'] },
    { section: `**Paced: ${si(config.rate)} messages/s** from node 1 to a small room` },
    ...config.rooms.map((size) => ({ label: `room of ${size}: receivers per node`, placed: size })),
    ...paced,
    { section: '**Delivery** (sum over rounds and phases; must be 0)' },
    { label: 'lost / duplicated / out of order', sum: ['lost', 'duplicated', 'outOfOrder'] }
  ]
}

function cell (results, scenario, row) {
  const rounds = ok(results, scenario.id)
  if (rounds.length === 0) return '–'
  if (row.placed !== undefined) return placement(scenario, row.placed)
  if (row.sum !== undefined) {
    const phases = rounds.flatMap((round) => [round.saturated, ...Object.values(round.paced)])
    return row.sum.map((key) => phases.reduce((total, phase) => total + phase[key], 0)).join(' / ')
  }
  if (row.pair !== undefined) {
    const [a, b] = row.pair.map((path) => med(results, scenario.id, path))
    return `${msFormat(a)} / ${msFormat(b)}`
  }
  const value = med(results, scenario.id, row.path)
  if (value === null) return '–'
  const base = row.ratio && results[BASELINE] !== undefined ? med(results, BASELINE, row.path) : null
  return row.format(value) + (base === null || base === 0 ? '' : ` (${(value / base).toFixed(2)}×)`)
}

function table (results) {
  const lines = [`| | ${scenarios.map((scenario) => scenario.name).join(' | ')} |`, `| --- |${scenarios.map(() => ' ---: |').join('')}`]
  for (const row of rows()) {
    if (row.section !== undefined) lines.push(`| ${row.section} |${scenarios.map(() => ' |').join('')}`)
    else lines.push(`| ${row.label} | ${scenarios.map((scenario) => cell(results, scenario, row)).join(' | ')} |`)
  }
  return lines.join('\n')
}

function cpuTable (results) {
  const lines = [
    '| CPU % of one core: node 1 / node 2 / Redis / load generator / kernel irq+softirq / other | ' + scenarios.map((scenario) => scenario.name).join(' | ') + ' |',
    `| --- |${scenarios.map(() => ' ---: |').join('')}`
  ]
  const phases = [['saturated fan-out', 'saturated'], ...config.rooms.map((size) => [`paced, room of ${size}`, `paced.${size}`])]
  for (const [label, path] of phases) {
    lines.push(`| ${label} | ${scenarios.map((scenario) => {
      const part = (name) => name === 'node2' && scenario.nodes < 2 ? '–' : pct(med(results, scenario.id, `${path}.cpu.${name}`))
      return ['node1', 'node2', 'redis', 'load', 'irq', 'other'].map(part).join(' / ')
    }).join(' | ')} |`)
  }
  return lines.join('\n')
}

function perRound (results) {
  const lines = ['| round | scenario | saturated deliveries/s | ' + config.rooms.map((size) => `room of ${size}: p50 / p99 ms`).join(' | ') + ' | other processes, busiest phase |',
    `| ---: | --- | ---: |${config.rooms.map(() => ' ---: |').join('')} ---: |`]
  const all = Object.values(results).flat().sort((a, b) => a.order - b.order)
  for (const round of all) {
    if (round.error !== undefined) {
      lines.push(`| ${round.round} | ${round.scenario} | failed: ${round.error} |${config.rooms.map(() => ' |').join('')} |`)
      continue
    }
    lines.push(`| ${round.round} | ${round.scenario} | ${si(round.saturated.deliveriesPerSec)} | ` +
      config.rooms.map((size) => `${msFormat(round.paced[size].p50)} / ${msFormat(round.paced[size].p99)}`).join(' | ') +
      ` | ${pct(Math.max(round.saturated.cpu.other, ...Object.values(round.paced).map((phase) => phase.cpu.other)))} |`)
  }
  return lines.join('\n')
}

function targets (results) {
  if (results.two === undefined || results.one === undefined) return ''
  const two = med(results, 'two', 'saturated.deliveriesPerSec')
  const one = med(results, 'one', 'saturated.deliveriesPerSec')
  const largest = Math.max(...config.rooms)
  const p99 = med(results, 'two', `paced.${largest}.p99`)
  const lost = ['two', 'one'].flatMap((id) => ok(results, id)).flatMap((round) => [round.saturated, ...Object.values(round.paced)])
    .reduce((total, phase) => total + phase.lost, 0)
  const verdict = (met) => met ? '**met**' : '**missed**'
  if (two === null || one === null || p99 === null) return ''
  return [
    '',
    'Targets:',
    '',
    `- 2 nodes, receivers split: ${si(two)} deliveries/s, ${(two / one).toFixed(2)}× the single node's ${si(one)} (target ≥ 0.70×): ${verdict(two / one >= 0.7)}`,
    `- p99 publish to arrival at ${si(config.rate)} messages/s, 2 nodes, room of ${largest} (${si(config.rate * largest)} deliveries/s): ${msFormat(p99)} ms (target < 10 ms): ${verdict(p99 < 10)}`,
    `- lost with the adapter: ${lost} (target 0): ${verdict(lost === 0)}`,
    ''
  ].join('\n')
}

// ---------------------------------------------------------------------------------------

let redisPid = 0
let redisInfo = ''

async function inspectRedis () {
  const client = createClient({ url: config.redisUrl, socket: { connectTimeout: 2000, reconnectStrategy: false } })
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (error) {
    throw new Error(`no Redis at ${config.redisUrl} (${error.message}); start one with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`)
  }
  const info = await client.info('server')
  const field = (name) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim()
  const [, ioThreads] = await client.configGet('io-threads').then((reply) => Object.entries(reply)[0] ?? [null, '?'])
  await client.close()
  redisPid = Number(field('process_id'))
  try {
    processTicks(redisPid)
  } catch {
    throw new Error(`Redis at ${config.redisUrl} runs as pid ${redisPid}, which this machine does not show: its CPU cannot be measured (a Redis in a container or on another host?)`)
  }
  redisInfo = `Redis ${field('redis_version')} (pid ${redisPid}, io-threads ${ioThreads})`
}

function environment () {
  let nproc = String(os.availableParallelism?.() ?? os.cpus().length)
  try {
    nproc = execFileSync('nproc', { encoding: 'utf8' }).trim()
  } catch {}
  return {
    date: new Date().toISOString(),
    node: process.version,
    nproc,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    kernel: `${os.type()} ${os.release()}`,
    loadavg: os.loadavg().map((value) => value.toFixed(2)).join(' ')
  }
}

function summaryLine (result) {
  if (result.error !== undefined) return `FAILED: ${result.error}`
  return `saturated ${si(result.saturated.deliveriesPerSec)}/s (p99 ${msFormat(result.saturated.p99)} ms), ` +
    config.rooms.map((size) => `room of ${size} at ${si(config.rate)}/s: p99 ${msFormat(result.paced[size].p99)} ms`).join(', ') +
    `, lost ${[result.saturated, ...Object.values(result.paced)].reduce((total, phase) => total + phase.lost, 0)}`
}

async function rounds (began) {
  const results = Object.fromEntries(scenarios.map((scenario) => [scenario.id, []]))
  let order = 0
  let skipped = 0
  for (let round = 1; round <= config.rounds; round++) {
    for (const scenario of round % 2 === 1 ? scenarios : [...scenarios].reverse()) {
      if ((performance.now() - began) / 1000 > config.maxSeconds) {
        skipped++
        continue
      }
      const waited = await quiet()
      if (waited > 0) console.log(`(waited ${(waited / 1000).toFixed(1)} s for the machine to be quiet)`)
      const t0 = performance.now()
      process.stdout.write(`round ${round}/${config.rounds} ${scenario.name.padEnd(18)} `)
      let result
      try {
        result = withDerived(await session(scenario, round))
      } catch (error) {
        result = { error: String(error.message ?? error) }
      }
      const seconds = (performance.now() - t0) / 1000
      results[scenario.id].push({ round, order: order++, scenario: scenario.name, seconds, ...result })
      console.log(`${seconds.toFixed(1)} s  ${summaryLine(result)}`)
    }
  }
  return { results, skipped }
}

async function profiles () {
  const sections = []
  for (const id of list('BENCH_PROFILE', '')) {
    const scenario = ALL_SCENARIOS.find((candidate) => candidate.id === id)
    if (scenario === undefined) throw new Error(`BENCH_PROFILE: unknown scenario ${id}`)
    mkdirSync(join(here, 'profiles'), { recursive: true })
    const file = (phase, i) => join(here, 'profiles', `cluster-${id}-${phase}-node${i + 1}.cpuprofile`)
    console.log(`profiling ${scenario.name}…`)
    const measured = await session(scenario, 'profile', { profile: file })
    const phases = [['saturated', measured.saturated], ...Object.entries(measured.paced).map(([size, phase]) => [`paced-${size}`, phase])]
    for (const [phase, result] of phases) {
      for (let i = 0; i < scenario.nodes; i++) {
        const path = file(phase, i)
        sections.push(`\n## CPU profile: ${scenario.name}, node ${i + 1}, ${phase === 'saturated' ? 'saturated fan-out' : `paced, room of ${phase.slice(6)}`}\n\n` +
          `${si(result.deliveriesPerSec)} deliveries/s, p99 ${msFormat(result.p99)} ms while profiled; node ${i + 1} at ${pct(result.cpu[`node${i + 1}`])} CPU. ` +
          `Profile: \`bench/${path.slice(here.length + 1)}\`.\n\n${toMarkdown(summarize(path, 15))}\n`)
      }
    }
  }
  return sections.join('')
}

async function main () {
  const began = performance.now()
  await inspectRedis()
  const env = environment()
  console.log(`cluster benchmark: ${scenarios.map((scenario) => scenario.name).join(', ')}; ${config.rounds} round(s)${QUICK ? ' (BENCH_QUICK)' : ''}`)
  console.log(`node ${env.node}, ${env.nproc} CPU(s) (${env.cpu}), load average ${env.loadavg}; ${redisInfo}`)

  const { results, skipped } = await rounds(began)
  const profileText = await profiles()
  const total = (performance.now() - began) / 1000
  const failures = Object.values(results).flat().filter((round) => round.error !== undefined)
  const markdown = [
    '# Cluster benchmark: fan-out through the Redis adapter',
    '',
    `${env.date} · node ${env.node} · nproc ${env.nproc} · ${env.cpu} · ${env.kernel} · load average at start ${env.loadavg} · ${redisInfo}`,
    '',
    `Medians of ${config.rounds} round(s), scenarios in alternating order each round${QUICK ? ' (BENCH_QUICK smoke run)' : ''}; total run time ${total.toFixed(0)} s. ` +
      'Every node is a server process of its own (the plugin, room `bench`, `P…` → `room.broadcastExcept`), on one machine, with one Redis on loopback; ' +
      'one load generator process holds every client (raw TCP) and stamps every latency with one clock: publish to arrival. ' +
      'The publisher is always on node 1. In brackets, the ratio to `1 node` (the plugin with the Redis adapter on one node).',
    '',
    `Saturated: one publisher keeps ${config.window} messages in flight for ${config.fanoutMs} ms, a message counting as done once all N receivers have it. ` +
      `Paced: ${si(config.rate)} messages per second for ${config.pacedMs} ms to a room of a few receivers, so ${si(config.rate)} × (room size) deliveries per second.`,
    '',
    table(results),
    targets(results),
    'Scenarios: `1 node, no adapter` bench/servers/plugin.mjs (in-memory rooms); `1 node` bench/servers/plugin-redis.mjs, which publishes every broadcast to Redis and, being subscribed to the room, gets it back and drops it; ' +
      '`2 nodes` the same on two processes, receivers split evenly, publisher on node 1; `2 nodes, remote` the publisher alone on node 1 and every receiver on node 2, so every delivery crosses Redis.',
    '',
    `Who was busy (median CPU % of one core, out of ${env.nproc} cores, over the whole phase: warm-up, measurement and drain. "kernel irq+softirq" is the time the kernel spent in interrupts, which on loopback is mostly TCP's receive path, charged to no process; "other" is every other process on the machine, steal included: high values mean a noisy round):`,
    '',
    cpuTable(results),
    '',
    'Every round:',
    '',
    perRound(results),
    ''
  ].join('\n') +
    (failures.length > 0 ? '\nFailed rounds:\n\n' + failures.map((round) => `- round ${round.round}, ${round.scenario}: ${round.error}`).join('\n') + '\n' : '') +
    (skipped > 0 ? `\n${skipped} session(s) skipped: past the time budget of ${config.maxSeconds} s (BENCH_MAX_SECONDS).\n` : '') +
    profileText
  console.log('\n' + markdown)
  writeFileSync(join(here, 'results-cluster.md'), markdown)
  console.log('written: bench/results-cluster.md')
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  })

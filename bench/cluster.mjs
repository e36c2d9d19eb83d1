// The cluster benchmark: `npm run bench:cluster` (builds first; never part of npm test). Needs
// the Redis at BENCH_REDIS_URL (default REDIS_URL, else redis://127.0.0.1:6379), on this
// machine so that its CPU can be read. Fan-out through the Redis adapter on 2 nodes against 1
// node, each node a server process of its own, driven by bench/load.mjs (the fan-out
// benchmark's load generator, unchanged: raw TCP clients, one clock for every latency; it is
// pointed at one node's port, then the other's, with its 'init' command), every round in
// alternating order. Writes a Markdown table of medians to bench/results-cluster.md.
//
// Scenarios (ids for BENCH_SCENARIOS; the publisher is always on node 1):
//   memory   1 node, no adapter: bench/servers/plugin.mjs, the reference
//   one      1 node: bench/servers/plugin-redis.mjs, N receivers
//   two      2 nodes: N/2 receivers on each
//   remote   2 nodes, remote: the publisher alone on node 1, all N receivers on node 2
//   publish  2 nodes as `two`, with publishExcept() (history in Redis) instead of broadcastExcept()
//   cluster  2 nodes as `two`, on a Redis Cluster of 3 masters (bench/lib/redis-cluster.mjs
//            starts one, or BENCH_CLUSTER_URL names a node of yours, on this machine)
//   cluster-publish  as `publish`, on that Redis Cluster
// On the cluster, the Redis CPU is the masters' sum, and the report says how many commands
// each master ran in each phase (INFO commandstats).
// Phases, each measured with the CPU of every process: saturated fan-out to N receivers with
// a window of messages in flight (as bench/run.mjs), then publish-to-arrival latency at a
// paced rate of messages per second to small rooms.
//
// Environment:
//   BENCH_QUICK=1            a smoke run: N = 200, short phases, 1 round
//   BENCH_ROUNDS=5           rounds
//   BENCH_RECEIVERS=1000     N
//   BENCH_WINDOWS=4,16       messages in flight, one saturated phase each (4: bench/run.mjs's)
//   BENCH_RATE=10000         messages per second of the paced phases
//   BENCH_ROOMS=2,10         receivers in the room of each paced phase
//   BENCH_SCENARIOS=…        comma list of scenario ids (default all)
//   BENCH_PROFILE=two        after the rounds, CPU-profile every node of these scenarios in every
//                            phase (bench/profiles/cluster-*.cpuprofile), summarized in the report
//   BENCH_MAX_SECONDS=480    time budget; past it no new session starts

import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createClient } from '@redis/client'
import { start } from './lib/children.mjs'
import { ms, pct, report, si } from './lib/cluster-report.mjs'
import { clockTicks, metered, processTicks, quiet } from './lib/meter.mjs'
import { summarize, toMarkdown } from './lib/profile.mjs'
import { environment } from './lib/environment.mjs'
import { operations, startCluster } from './lib/redis-cluster.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const QUICK = process.env.BENCH_QUICK === '1'
const number = (name, fallback) => process.env[name] === undefined || process.env[name] === '' ? fallback : Number(process.env[name])
const list = (name, fallback) => (process.env[name] || fallback).split(',').map((item) => item.trim()).filter(Boolean)

const config = {
  quick: QUICK,
  rounds: number('BENCH_ROUNDS', QUICK ? 1 : 5),
  receivers: number('BENCH_RECEIVERS', QUICK ? 200 : 1000),
  windows: list('BENCH_WINDOWS', '4,16').map(Number),
  rate: number('BENCH_RATE', 10_000),
  rooms: list('BENCH_ROOMS', '2,10').map(Number),
  fanoutMs: QUICK ? 600 : 1500,
  pacedMs: QUICK ? 600 : 2000,
  warmup: 20,
  // Before a paced phase: enough messages, a window at a time, for the JIT to have compiled
  // the per-message path (the saturated phases send few, large broadcasts).
  pacedWarmup: QUICK ? 1000 : 3000,
  pacedWarmupWindow: 16,
  drainMs: 10_000,
  // The cluster scenarios' last step: this many rooms, this many messages each, from the server.
  spreadRooms: 90,
  spreadEach: 30,
  maxSeconds: number('BENCH_MAX_SECONDS', 480),
  redisUrl: process.env.BENCH_REDIS_URL || process.env.REDIS_URL || 'redis://127.0.0.1:6379'
}
const runId = randomBytes(4).toString('hex')

const half = (count) => [Math.floor(count / 2), Math.ceil(count / 2)]
/** `place(count)`: how many of `count` receivers go to each node; `split`: receivers on both nodes. */
const ALL_SCENARIOS = [
  { id: 'memory', name: '1 node, no adapter', file: 'plugin.mjs', nodes: 1, place: (count) => [count] },
  { id: 'one', name: '1 node', file: 'plugin-redis.mjs', nodes: 1, place: (count) => [count] },
  { id: 'two', name: '2 nodes', file: 'plugin-redis.mjs', nodes: 2, split: true, place: half },
  { id: 'remote', name: '2 nodes, remote', file: 'plugin-redis.mjs', nodes: 2, place: (count) => [0, count] },
  { id: 'publish', name: '2 nodes, publish()', file: 'plugin-redis.mjs', nodes: 2, split: true, place: half, env: { BENCH_PUBLISH: '1' } },
  { id: 'cluster', name: '2 nodes, Redis Cluster', file: 'plugin-redis.mjs', nodes: 2, split: true, place: half, cluster: true },
  { id: 'cluster-publish', name: '2 nodes, Redis Cluster, publish()', file: 'plugin-redis.mjs', nodes: 2, split: true, place: half, cluster: true, env: { BENCH_PUBLISH: '1' } }
]
const LEGEND = 'Scenarios: `1 node, no adapter` bench/servers/plugin.mjs, rooms in memory; ' +
  '`1 node` bench/servers/plugin-redis.mjs, which publishes every broadcast to Redis and, being subscribed to the room, gets it back and drops it; ' +
  '`2 nodes` the same on two processes, the receivers split evenly; ' +
  '`2 nodes, remote` the publisher alone on node 1 and every receiver on node 2, so every delivery crosses Redis; ' +
  '`2 nodes, publish()` as `2 nodes`, each message sent with `room.publishExcept()` (history in Redis: the script that assigns its position, appends it to the room\'s stream and PUBLISHes it) instead of `broadcastExcept()`; ' +
  '`Redis Cluster` the same two on a Redis Cluster of 3 masters (sharded pub/sub), its `redis` CPU the masters\' sum.'
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

let redisPid = 0
let redisInfo = ''
/** The Redis Cluster of the cluster scenarios: { url, masters: [{ address, url, pid }], stop() }. */
let redisCluster = null

// ---------------------------------------------------------------------------------------
// One scenario, one round: fresh servers (a key prefix of their own), a fresh load generator.

/** Starts the nodes and the load generator; `run(nodes, load)`, then stops them all. */
async function withProcesses (scenario, round, run) {
  const env = { BENCH_REDIS_URL: config.redisUrl, BENCH_KEY_PREFIX: `bench-cluster-${runId}-${round}-${scenario.id}`, ...scenario.env }
  if (scenario.cluster) env.BENCH_CLUSTER_URL = redisCluster.url
  const nodes = Array.from({ length: scenario.nodes }, (_, i) =>
    start(join(here, 'servers', scenario.file), { env, label: `${scenario.name}: node ${i + 1}` }))
  const loader = start(join(here, 'load.mjs'), { label: 'load generator' })
  // A node that dies mid-run fails the round with its own name, not a load generator timeout.
  const died = Promise.race(nodes.map((node, i) => node.exited.then(() => {
    throw new Error(`node ${i + 1} exited (${node.child.exitCode ?? node.child.signalCode})`)
  })))
  died.catch(() => {})
  try {
    const ports = (await Promise.all(nodes.map((node) => node.ready))).map((message) => message.port)
    await loader.ready
    nodes.forEach((node, i) => { node.port = ports[i] })
    return await run(nodes, (...args) => Promise.race([loader.call(...args), died]), loader.child.pid)
  } finally {
    await Promise.all([loader.stop(), ...nodes.map((node) => node.stop())])
  }
}

async function session (scenario, round, { profile = null } = {}) {
  const adapter = scenario.file === 'plugin-redis.mjs'
  return withProcesses(scenario, round, async (nodes, load, loaderPid) => {
    const pids = { load: loaderPid }
    if (scenario.cluster) redisCluster.masters.forEach((master, i) => { pids[`redis${i + 1}`] = master.pid })
    else pids.redis = redisPid
    nodes.forEach((node, i) => { pids[`node${i + 1}`] = node.child.pid })
    const writers = nodes.map((_, i) => `node${i + 1}`)

    // The load generator connects to one port at a time: 'init' points it at node i.
    const connect = async (i, role, count) => {
      if (count === 0) return
      await load('init', { port: nodes[i].port, protocol: 'ws', serverPid: nodes[i].child.pid, clockTicks })
      await load('connect', { role, count, path: '/ws?user=bench' })
    }
    // Every node has subscribed (clusterMembers() waits for that) and counts everyone.
    const inRoom = async (expected) => {
      if (!adapter) return // the warm-up proves it: without an adapter, a join is done before the 101
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
      const before = scenario.cluster ? await operations(redisCluster.masters) : null
      const result = await metered(pids, writers, () => load('fanout', { ...args, drainMs: config.drainMs }))
      if (profile !== null) await Promise.all(nodes.map((node, i) => node.call('profile-stop', { file: profile(name, i) })))
      if (scenario.cluster) {
        const after = await operations(redisCluster.masters)
        result.shardOps = Object.fromEntries(Object.entries(after).map(([address, calls]) => [address, calls - before[address]]))
        result.cpu.redis = redisCluster.masters.reduce((sum, _, i) => sum + result.cpu[`redis${i + 1}`], 0)
      }
      const serverCpu = Object.entries(result.cpu).filter(([key]) => key.startsWith('node') || key === 'redis').reduce((sum, [, value]) => sum + value, 0)
      result.perCpu = serverCpu > 0 ? result.deliveriesPerSec / (serverCpu / 100) : null
      // Over the whole phase, warm-up included, as the write calls are counted (nothing is lost).
      result.perWrite = result.writes > 0 ? (result.messages + args.warmup) * result.receivers / result.writes : null
      return result
    }

    const phases = {}
    await connect(0, 'pub', 1)
    await receivers(config.receivers)
    for (const window of config.windows) {
      phases[`saturated-${window}`] = await phase(`saturated-${window}`, { mode: 'window', window, warmup: config.warmup, durationMs: config.fanoutMs })
    }
    await load('close', { role: 'recv', settleMs: 0 })
    for (const room of config.rooms) {
      await receivers(room)
      phases[`paced-${room}`] = await phase(`paced-${room}`, { mode: 'paced', rate: config.rate, window: config.pacedWarmupWindow, warmup: config.pacedWarmup, durationMs: config.pacedMs })
      await load('close', { role: 'recv', settleMs: 0 })
    }
    // Many rooms at once, from node 1: how the masters share them (one room lives on one).
    let spread = null
    if (scenario.cluster) {
      const before = await operations(redisCluster.masters)
      await nodes[0].call('spread', { rooms: config.spreadRooms, each: config.spreadEach })
      const after = await operations(redisCluster.masters)
      spread = Object.fromEntries(Object.entries(after).map(([address, calls]) => [address, calls - before[address]]))
    }
    const cluster = adapter ? await Promise.all(nodes.map((node) => node.call('cluster-stats'))) : null
    // Closing a node removes it from Redis. Its clients go first: they would not answer a close frame.
    await load('close', { role: 'pub', settleMs: 50 })
    if (adapter) await Promise.all(nodes.map((node) => node.call('close', {}, 10_000)))
    return { phases, cluster, spread }
  })
}

// ---------------------------------------------------------------------------------------

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
  const ioThreads = Object.values(await client.configGet('io-threads'))[0] ?? '?'
  await client.close()
  redisPid = Number(field('process_id'))
  try {
    processTicks(redisPid)
  } catch {
    throw new Error(`Redis at ${config.redisUrl} runs as pid ${redisPid}, which this machine does not show: its CPU cannot be measured (in a container, or on another host?)`)
  }
  redisInfo = `Redis ${field('redis_version')} (io-threads ${ioThreads})`
}

/**
 * The commands each master of the cluster ran per phase, the busiest first in each round (a
 * round's rooms hash to other slots than the last's), median over the rounds: how evenly the
 * shards share the load.
 */
function shardTable (results) {
  const clustered = scenarios.filter((scenario) => scenario.cluster)
  if (clustered.length === 0) return ''
  let text = '\n## Redis Cluster: commands per master\n\nINFO commandstats calls run by each of the 3 masters during each phase, sorted busiest first within each round, median over rounds (share of the phase\'s total). The phases use one room, `bench`; `spread` is ' +
    `${config.spreadRooms} rooms × ${config.spreadEach} messages sent from node 1 (broadcast(), or publish() in the publish() scenario).\n\n`
  const ranked = (ops) => Object.values(ops).sort((x, y) => y - x)
  const median = (values) => values.sort((x, y) => x - y)[Math.floor(values.length / 2)]
  for (const scenario of clustered) {
    const runs = results[scenario.id].filter((run) => run.phases !== undefined)
    if (runs.length === 0) continue
    const masters = ranked(Object.values(runs[0].phases)[0].shardOps).map((_, i) => ['busiest master', 'second', 'third'][i] ?? `master ${i + 1}`)
    text += `| ${scenario.name} | ${masters.join(' | ')} |\n| --- |${masters.map(() => ' ---: |').join('')}\n`
    const rows = Object.keys(runs[0].phases).map((phase) => [phase, runs.map((run) => ranked(run.phases[phase].shardOps))])
    if (runs.every((run) => run.spread)) rows.push(['spread', runs.map((run) => ranked(run.spread))])
    for (const [phase, perRun] of rows) {
      const medians = masters.map((_, i) => median(perRun.map((counts) => counts[i])))
      const total = medians.reduce((sum, value) => sum + value, 0) || 1
      text += `| ${phase} | ${medians.map((value) => `${si(value)} (${Math.round(100 * value / total)} %)`).join(' | ')} |\n`
    }
    text += '\n'
  }
  return text
}

function summaryLine ({ phases }) {
  return Object.entries(phases).map(([name, phase]) => name.startsWith('saturated')
    ? `${name} ${si(phase.deliveriesPerSec)}/s`
    : `${name} p99 ${ms(phase.p99)} ms`).join(', ') +
    `, lost ${Object.values(phases).reduce((total, phase) => total + phase.lost, 0)}`
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
      const waited = await quiet([process.pid, redisPid])
      const t0 = performance.now()
      process.stdout.write(`round ${round}/${config.rounds} ${scenario.name.padEnd(27)} ${waited > 0 ? `(waited ${(waited / 1000).toFixed(1)} s for a quiet machine) ` : ''}`)
      let result
      try {
        result = await session(scenario, round)
      } catch (error) {
        result = { error: String(error.message ?? error) }
      }
      const seconds = (performance.now() - t0) / 1000
      results[scenario.id].push({ round, order: order++, scenario: scenario.name, seconds, ...result })
      console.log(`${seconds.toFixed(1)} s  ${result.error === undefined ? summaryLine(result) : `FAILED: ${result.error}`}`)
    }
  }
  return { results, skipped }
}

async function profiles () {
  let text = ''
  for (const id of list('BENCH_PROFILE', '')) {
    const scenario = ALL_SCENARIOS.find((candidate) => candidate.id === id)
    if (scenario === undefined) throw new Error(`BENCH_PROFILE: unknown scenario ${id}`)
    mkdirSync(join(here, 'profiles'), { recursive: true })
    const file = (phase, i) => join(here, 'profiles', `cluster-${id}-${phase}-node${i + 1}.cpuprofile`)
    console.log(`profiling ${scenario.name}…`)
    const { phases } = await session(scenario, 'profile', { profile: file })
    for (const [phase, result] of Object.entries(phases)) {
      for (let i = 0; i < scenario.nodes; i++) {
        const path = file(phase, i)
        text += `\n## CPU profile: ${scenario.name}, node ${i + 1}, ${phase}\n\n` +
          `${si(result.deliveriesPerSec)} deliveries/s, p99 ${ms(result.p99)} ms while profiled (sampling every 250 µs); node ${i + 1} at ${pct(result.cpu[`node${i + 1}`])} CPU. ` +
          `Profile: \`bench/${path.slice(here.length + 1)}\`.\n\n${toMarkdown(summarize(path, 15))}\n`
      }
    }
  }
  return text
}

async function main () {
  const began = performance.now()
  await inspectRedis()
  const env = environment()
  console.log(`cluster benchmark: ${scenarios.map((scenario) => scenario.name).join(', ')}; ${config.rounds} round(s)${QUICK ? ' (BENCH_QUICK)' : ''}`)
  console.log(`node ${env.node}, ${env.nproc} CPU(s) (${env.cpu}), load average ${env.loadavg}; ${redisInfo}`)
  if (scenarios.some((scenario) => scenario.cluster)) {
    redisCluster = await startCluster()
    console.log(`Redis Cluster: masters ${redisCluster.masters.map((master) => master.address).join(', ')}`)
  }
  let results, skipped, profileText
  try {
    ({ results, skipped } = await rounds(began))
    profileText = await profiles()
  } finally {
    await redisCluster?.stop()
  }
  const markdown = report({
    results, scenarios, config, env, redisInfo, skipped, legend: LEGEND, profiles: shardTable(results) + profileText, totalSeconds: (performance.now() - began) / 1000
  })
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

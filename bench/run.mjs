// The fan-out benchmark: `npm run bench` (builds first). Compares, in one run, this plugin,
// raw ws, @fastify/websocket used naively and Socket.IO 4, each server in its own child
// process (bench/servers/), driven by one load generator process (bench/load.mjs), every
// round in alternating order. Prints a Markdown table of medians, each figure with its ratio
// to raw ws, and writes it to bench/results.md (raw figures to bench/results.json).
//
// The compressed fan-out (its own section of bench/results.md): a 2 KiB JSON message to
// N = 1,000 receivers that negotiate permessage-deflate: the plugin with compression: 'shared'
// (one deflate per broadcast) against raw ws and Socket.IO compressing once per receiver.
//
// Environment:
//   BENCH_SCENARIOS=…    comma list, from: fanout (the table above: fan-out, echo, memory,
//                        handshakes), compressed (default both); with compressed alone, only
//                        its section of bench/results.md is rewritten
//   BENCH_QUICK=1        a smoke run: small N, short phases, 1 round
//   BENCH_ROUNDS=3       rounds (servers alternate order each round)
//   BENCH_SERVERS=…      comma list, from: plugin, ws, ws+frame, ws+cork, fastify-ws, socket.io,
//                        plugin+metrics (option metrics on), plugin+tracing (option tracing on,
//                        with OpenTelemetry's SDK recording every span), plugin@base (the plugin
//                        of the worktree at BENCH_BASE, built: before/after in one run)
//                        (default all but ws+frame and the plugin's variants)
//   BENCH_BASE=…         a worktree of main (npm ci && npm run build there), for plugin@base
//   BENCH_OUT=results    the name of the files written (bench/NAME.md, bench/NAME.json)
//   BENCH_WINDOW=4       fan-out messages outstanding in the saturated phase
//   BENCH_PACED=25000    offered deliveries/s of the paced (latency) phase: low enough for
//                        every server to keep up, so it measures latency, not a backlog
//   BENCH_PROFILE=plugin after the rounds, CPU-profile these servers (comma list) during echo,
//                        the large fan-out and handshakes (bench/profiles/*.cpuprofile); summaries go to
//                        the output and results.md. BENCH_ROUNDS=0 to profile only.
//   BENCH_MAX_SECONDS    time budget (default 600); past it no new round starts, and the
//                        whole run is cut off at budget + 120 s
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, isAbsolute, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { launchWithLoad } from './lib/children.mjs'
import { summarize, toMarkdown } from './lib/profile.mjs'
import { environment } from './lib/environment.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const QUICK = process.env.BENCH_QUICK === '1'
const number = (name, fallback) => process.env[name] === undefined || process.env[name] === '' ? fallback : Number(process.env[name])

const config = {
  rounds: number('BENCH_ROUNDS', QUICK ? 1 : 3),
  small: QUICK ? 100 : 1000,
  large: QUICK ? 500 : 5000,
  window: number('BENCH_WINDOW', 4),
  paced: number('BENCH_PACED', QUICK ? 10_000 : 25_000),
  fanoutMs: QUICK ? 600 : 1500,
  pacedMs: QUICK ? 600 : 1500,
  warmupMessages: 10,
  drainMs: 10_000,
  echoClients: QUICK ? 20 : 100,
  echoWarmupMs: QUICK ? 200 : 300,
  echoMs: QUICK ? 500 : 1500,
  handshakes: QUICK ? 200 : 1500,
  handshakeConcurrency: 8,
  compressedN: QUICK ? 100 : 1000,
  messageBytes: 2048,
  maxSeconds: number('BENCH_MAX_SECONDS', 600)
}

const PLUGIN = { protocol: 'ws', path: '/ws?user=bench', schemaPath: '/ws-q?user=bench', jsonPaths: { validated: '/ws-json', byHand: '/ws-json-hand' }, publishPath: '/ws-publish' }
// Message routes (request/reply, room.emit()): the plugin's own server only.
const ROUTES = { requestPath: '/ws-request', emitPaths: { emit: '/ws-emit', json: '/ws-emit-json' } }
const ALL_SERVERS = [
  { name: 'plugin', file: 'plugin.mjs', ...PLUGIN, ...ROUTES },
  { name: 'plugin+metrics', file: 'plugin.mjs', ...PLUGIN, env: { BENCH_OBSERVE: 'metrics' } },
  { name: 'plugin+tracing', file: 'plugin.mjs', ...PLUGIN, env: { BENCH_OBSERVE: 'tracing' } },
  ...(process.env.BENCH_BASE ? [{ name: 'plugin@base', file: join(process.env.BENCH_BASE, 'bench', 'servers', 'plugin.mjs'), ...PLUGIN }] : []),
  { name: 'ws', file: 'ws.mjs', protocol: 'ws', path: '/ws?user=bench' },
  { name: 'ws+frame', file: 'ws.mjs', protocol: 'ws', path: '/ws?user=bench', env: { BENCH_WS_BROADCAST: 'frame' } },
  { name: 'ws+cork', file: 'ws.mjs', protocol: 'ws', path: '/ws?user=bench', env: { BENCH_WS_BROADCAST: 'cork' } },
  { name: 'fastify-ws', file: 'fastify-ws.mjs', protocol: 'ws', path: '/ws?user=bench' },
  { name: 'socket.io', file: 'socketio.mjs', protocol: 'sio', requests: true }
]
const DEFAULT_SERVERS = 'plugin,ws,ws+cork,fastify-ws,socket.io'
const selected = (process.env.BENCH_SERVERS || DEFAULT_SERVERS).split(',').map((name) => name.trim())
for (const name of selected) {
  if (!ALL_SERVERS.some((server) => server.name === name)) throw new Error(`BENCH_SERVERS: unknown server ${name}`)
}
const SCENARIOS = (process.env.BENCH_SCENARIOS || 'fanout,compressed').split(',').map((name) => name.trim())
for (const name of SCENARIOS) {
  if (name !== 'fanout' && name !== 'compressed') throw new Error(`BENCH_SCENARIOS: unknown scenario ${name}`)
}
const servers = SCENARIOS.includes('fanout') ? ALL_SERVERS.filter((server) => selected.includes(server.name)) : []
const BASELINE = 'ws'

/** The compressed fan-out's servers: every receiver negotiates permessage-deflate. */
const COMPRESSED_SERVERS = [
  { name: 'plugin', file: 'plugin.mjs', protocol: 'ws', path: '/ws?user=bench', env: { BENCH_COMPRESSION: 'shared' } },
  { name: 'ws', file: 'ws.mjs', protocol: 'ws', path: '/ws?user=bench', env: { BENCH_WS_DEFLATE: 'default' } },
  { name: 'ws+nct', file: 'ws.mjs', protocol: 'ws', path: '/ws?user=bench', env: { BENCH_WS_DEFLATE: 'no-context-takeover' } },
  { name: 'socket.io', file: 'socketio.mjs', protocol: 'sio', env: { BENCH_SIO_DEFLATE: '1' } }
]
const compressedServers = SCENARIOS.includes('compressed') ? COMPRESSED_SERVERS : []
const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

// ---------------------------------------------------------------------------------------
// Children (bench/lib/children.mjs kills every one when this process exits, however it exits).

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping`)
    process.exit(130)
  })
}
const hardStop = setTimeout(() => {
  console.error(`benchmark still running after ${config.maxSeconds + 120} s: cut off`)
  process.exit(1)
}, (config.maxSeconds + 120) * 1000)
hardStop.unref()

// ---------------------------------------------------------------------------------------
// One server, one round: every scenario against a fresh server and a fresh load generator.

/** A fresh server and load generator, introduced to each other; `load.call` fails if the server dies. */
function launch (server) {
  return launchWithLoad({ file: isAbsolute(server.file) ? server.file : join(here, 'servers', server.file), env: server.env, label: server.name, protocol: server.protocol, clockTicks })
}

/** The compressed fan-out: one publisher, N receivers that all negotiate permessage-deflate. */
async function compressedSession (server) {
  const { load, stop } = await launch(server)
  try {
    const n = config.compressedN
    await load.call('connect', { role: 'pub', count: 1, path: server.path })
    const connected = await load.call('connect', { role: 'recv', count: n, path: server.path, deflate: true })
    if (connected.compressed !== n) throw new Error(`${connected.compressed} of ${n} receivers negotiated permessage-deflate`)
    const fanout = await load.call('fanout', {
      mode: 'window', window: config.window, warmup: config.warmupMessages, durationMs: config.fanoutMs, drainMs: config.drainMs, messageBytes: config.messageBytes
    })
    return { fanout }
  } finally {
    await stop()
  }
}

async function session (server, { profile = null } = {}) {
  const { srv, load, stop } = await launch(server)
  try {
    const result = {}

    // Echo (also warms up the server's connection and message paths).
    await load.call('connect', { role: 'echo', count: config.echoClients, path: server.path })
    if (profile !== null) {
      await load.call('echo', { warmupMs: config.echoWarmupMs, durationMs: 500 })
      await srv.call('profile-start', {})
      result.echo = await load.call('echo', { warmupMs: 0, durationMs: config.echoMs })
      await srv.call('profile-stop', { file: profile.echo })
    } else {
      result.echo = await load.call('echo', { warmupMs: config.echoWarmupMs, durationMs: config.echoMs })
    }
    await load.call('close', { role: 'echo', settleMs: 300 })

    // Echo of a JSON object, validated by schema.message against checked by hand, in ABBA order.
    if (server.jsonPaths !== undefined && profile === null) {
      const jsonEcho = async (path) => {
        await load.call('connect', { role: 'echo', count: config.echoClients, path })
        const measured = await load.call('echo', { warmupMs: config.echoWarmupMs, durationMs: Math.round(config.echoMs / 2), json: true })
        await load.call('close', { role: 'echo', settleMs: 300 })
        return measured
      }
      const { validated, byHand } = server.jsonPaths
      const hand = [await jsonEcho(byHand)]
      const typed = [await jsonEcho(validated)]
      typed.push(await jsonEcho(validated))
      hand.push(await jsonEcho(byHand))
      result.jsonEchoByHand = combineEchoes(hand)
      result.jsonEcho = combineEchoes(typed)
    }

    // Request/reply: a message route's reply (the plugin) and emitWithAck (Socket.IO); for the
    // plugin in ABBA order with the plain text echo, its own baseline.
    if ((server.requestPath !== undefined || server.requests === true) && profile === null) {
      const echoOn = async (path, request) => {
        await load.call('connect', { role: 'echo', count: config.echoClients, path })
        const measured = await load.call('echo', { warmupMs: config.echoWarmupMs, durationMs: Math.round(config.echoMs / 2), request })
        await load.call('close', { role: 'echo', settleMs: 300 })
        return measured
      }
      const requestPath = server.requestPath ?? server.path
      const plain = [await echoOn(server.path, false)]
      const requests = [await echoOn(requestPath, true)]
      requests.push(await echoOn(requestPath, true))
      plain.push(await echoOn(server.path, false))
      result.requestEcho = combineEchoes(requests)
      result.plainEcho = combineEchoes(plain)
    }

    // Idle memory: RSS and heap before and after opening N connections, after forced GCs.
    const before = await srv.call('mem')
    await load.call('connect', { role: 'pub', count: 1, path: server.path })
    const connect = await load.call('connect', { role: 'recv', count: config.large, path: server.path })
    await sleep(300)
    const after = await srv.call('mem')
    const conns = config.large + 1
    result.memory = {
      connections: conns,
      connectSeconds: connect.seconds,
      rssPerConn: (after.rss - before.rss) / conns,
      heapPerConn: (after.heapUsed + after.external - before.heapUsed - before.external) / conns,
      gc: after.gc
    }

    const fanoutPhases = async (n) => {
      const window = await load.call('fanout', { mode: 'window', window: config.window, warmup: config.warmupMessages, durationMs: config.fanoutMs, drainMs: config.drainMs })
      const rate = config.paced / n
      const paced = await load.call('fanout', { mode: 'paced', rate, window: config.window, warmup: 3, durationMs: config.pacedMs, drainMs: config.drainMs })
      return { window, paced: { ...paced, offeredPerSec: config.paced } }
    }

    if (profile !== null) {
      await load.call('fanout', { mode: 'window', window: config.window, warmup: 50, durationMs: 500, drainMs: config.drainMs })
      await srv.call('profile-start', {})
      result.fanout = await load.call('fanout', { mode: 'window', window: config.window, warmup: 1, durationMs: config.fanoutMs, drainMs: config.drainMs })
      await srv.call('profile-stop', { file: profile.fanout })
      await load.call('close', { role: 'recv', settleMs: 0 })
      await load.call('close', { role: 'pub', settleMs: 500 })
      await srv.call('mem')
      await load.call('handshakes', { path: server.path, count: 200, concurrency: config.handshakeConcurrency })
      await srv.call('profile-start', {})
      result.handshakes = await load.call('handshakes', { path: server.path, count: config.handshakes, concurrency: config.handshakeConcurrency })
      await srv.call('profile-stop', { file: profile.handshakes })
      return result
    }

    result.fanoutLarge = await fanoutPhases(config.large)
    await load.call('close', { role: 'recv', count: config.large - config.small, settleMs: 500 })
    result.fanoutSmall = await fanoutPhases(config.small)
    await load.call('close', { role: 'recv', settleMs: 0 })
    await load.call('close', { role: 'pub', settleMs: 500 })

    // publish() (a position for each message, kept in the room's history) to the same N.
    if (server.publishPath !== undefined) {
      await load.call('connect', { role: 'pub', count: 1, path: server.publishPath })
      await load.call('connect', { role: 'recv', count: config.small, path: server.publishPath })
      result.publishSmall = { window: await load.call('fanout', { mode: 'window', window: config.window, warmup: config.warmupMessages, durationMs: config.fanoutMs, drainMs: config.drainMs }) }
      await load.call('close', { role: 'recv', settleMs: 0 })
      await load.call('close', { role: 'pub', settleMs: 500 })
    }

    // room.emit() against broadcastJson() of the same object through schema.outbound, N = small, ABBA.
    if (server.emitPaths !== undefined) {
      const fanoutOn = async (path) => {
        await load.call('connect', { role: 'pub', count: 1, path })
        await load.call('connect', { role: 'recv', count: config.small, path })
        const window = await load.call('fanout', { mode: 'window', window: config.window, warmup: config.warmupMessages, durationMs: Math.round(config.fanoutMs / 2), drainMs: config.drainMs })
        await load.call('close', { role: 'recv', settleMs: 0 })
        await load.call('close', { role: 'pub', settleMs: 500 })
        return window
      }
      const json = [await fanoutOn(server.emitPaths.json)]
      const emit = [await fanoutOn(server.emitPaths.emit)]
      emit.push(await fanoutOn(server.emitPaths.emit))
      json.push(await fanoutOn(server.emitPaths.json))
      result.emitSmall = { window: combineFanouts(emit) }
      result.emitJsonSmall = { window: combineFanouts(json) }
    }

    const handshakes = (path, count) => load.call('handshakes', { path, count, concurrency: config.handshakeConcurrency })
    // The same start for everyone: a forced GC after the fan-out's 5,000 connections, and warm-up.
    await srv.call('mem')
    await handshakes(server.path, 100)
    if (server.schemaPath !== undefined) await handshakes(server.schemaPath, 100)
    if (server.schemaPath === undefined) {
      result.handshakes = await handshakes(server.path, config.handshakes)
    } else {
      // Without and with the schema in ABBA order, so drift (a noisy neighbour) favours neither.
      const half = Math.round(config.handshakes / 2)
      const plain = [await handshakes(server.path, half)]
      const schema = [await handshakes(server.schemaPath, half)]
      schema.push(await handshakes(server.schemaPath, half))
      plain.push(await handshakes(server.path, half))
      result.handshakes = combineHandshakes(plain)
      result.handshakesSchema = combineHandshakes(schema)
    }
    return result
  } finally {
    await stop()
  }
}

/**
 * Phases of one measurement as one: `count` summed, and its rates over the summed time; the
 * CPU shares, and `weightedKeys`, weighted by each phase's time.
 */
function combinePhases (parts, count, perSec, perCpuSec, weightedKeys = []) {
  const sum = (key) => parts.reduce((total, part) => total + part[key], 0)
  const seconds = sum('seconds')
  const serverCpuSeconds = sum('serverCpuSeconds')
  const weighted = (key) => parts.reduce((total, part) => total + part[key] * part.seconds, 0) / seconds
  const total = sum(count)
  return {
    [count]: total,
    [perSec]: total / seconds,
    [perCpuSec]: serverCpuSeconds > 0 ? total / serverCpuSeconds : null,
    ...Object.fromEntries(weightedKeys.map((key) => [key, weighted(key)])),
    seconds,
    serverCpuSeconds,
    serverCpuPct: 100 * serverCpuSeconds / seconds,
    loadCpuPct: weighted('loadCpuPct'),
    otherCpuPct: weighted('otherCpuPct')
  }
}

function combineHandshakes (parts) {
  return {
    path: parts[0].path,
    failed: parts.reduce((total, part) => total + part.failed, 0),
    firstError: parts.find((part) => part.firstError !== null)?.firstError ?? null,
    ...combinePhases(parts, 'handshakes', 'handshakesPerSec', 'handshakesPerCpuSec')
  }
}

/** Echo phases as one; the latencies weighted by each phase's time. */
function combineEchoes (parts) {
  return {
    clients: parts[0].clients,
    unanswered: parts.reduce((total, part) => total + part.unanswered, 0),
    ...combinePhases(parts, 'roundTrips', 'roundTripsPerSec', 'roundTripsPerCpuSec', ['p50', 'p99'])
  }
}

/** Fan-out phases as one; losses summed, the latencies weighted by each phase's time. */
function combineFanouts (parts) {
  return {
    lost: parts.reduce((total, part) => total + part.lost, 0),
    duplicated: parts.reduce((total, part) => total + part.duplicated, 0),
    ...combinePhases(parts, 'deliveries', 'deliveriesPerSec', 'deliveriesPerCpuSec', ['p50', 'p99'])
  }
}

// ---------------------------------------------------------------------------------------
// Report

function median (values) {
  const list = values.filter((value) => typeof value === 'number' && Number.isFinite(value)).sort((a, b) => a - b)
  if (list.length === 0) return null
  const mid = list.length >> 1
  return list.length % 2 === 1 ? list[mid] : (list[mid - 1] + list[mid]) / 2
}

function si (value) {
  if (value === null) return '–'
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`
  if (value >= 1e4) return `${(value / 1e3).toFixed(0)}k`
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`
  return value.toFixed(0)
}

const msFormat = (value) => value === null ? '–' : value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
const kib = (value) => value === null ? '–' : `${(value / 1024).toFixed(1)} KiB`
const pct = (value) => value === null ? '–' : `${value.toFixed(0)}%`
const ratio = (value, base) => value === null || base === null || base === 0 ? '' : ` (${(value / base).toFixed(2)}×)`
const get = (object, path) => path.split('.').reduce((at, key) => at?.[key], object) ?? null

function rows () {
  const { small, large, window, paced } = config
  const fanout = (key, n) => [
    { section: `**Fan-out to N = ${n.toLocaleString('en')}**` },
    { label: `deliveries/s (saturated, ${window} messages in flight)`, path: `${key}.window.deliveriesPerSec`, format: si },
    { label: 'deliveries per second of server CPU', path: `${key}.window.deliveriesPerCpuSec`, format: si },
    { label: 'latency p50 / p99, saturated (ms)', pair: [`${key}.window.p50`, `${key}.window.p99`], format: msFormat },
    { label: `latency p50 / p99 at ${si(paced)} deliveries/s offered (ms)`, pair: [`${key}.paced.p50`, `${key}.paced.p99`], format: msFormat, behind: `${key}.paced.behind` },
    { label: 'lost (sum over rounds and phases; must be 0)', sum: [`${key}.window.lost`, `${key}.paced.lost`, `${key}.window.duplicated`, `${key}.paced.duplicated`] }
  ]
  return [
    ...fanout('fanoutSmall', small),
    ...fanout('fanoutLarge', large),
    { section: `**publish() to N = ${small.toLocaleString('en')}** (a position for each message, kept in the history; ratios to raw ws's broadcast)` },
    { label: `deliveries/s (saturated, ${window} messages in flight)`, path: 'publishSmall.window.deliveriesPerSec', format: si, base: 'fanoutSmall.window.deliveriesPerSec' },
    { label: 'deliveries per second of server CPU', path: 'publishSmall.window.deliveriesPerCpuSec', format: si, base: 'fanoutSmall.window.deliveriesPerCpuSec' },
    { label: 'lost (sum over rounds; must be 0)', sum: ['publishSmall.window.lost', 'publishSmall.window.duplicated'] },
    { section: `**Echo, ${config.echoClients} clients** (one message in flight each)` },
    { label: 'round trips/s', path: 'echo.roundTripsPerSec', format: si },
    { label: 'round trips per second of server CPU', path: 'echo.roundTripsPerCpuSec', format: si },
    { label: 'round trip p50 / p99 (ms)', pair: ['echo.p50', 'echo.p99'], format: msFormat },
    { section: `**Echo of a JSON object, ${config.echoClients} clients** (ratios to raw ws's text echo)` },
    { label: 'round trips per second of server CPU, checked by hand (JSON.parse, JSON.stringify)', path: 'jsonEchoByHand.roundTripsPerCpuSec', format: si, base: 'echo.roundTripsPerCpuSec' },
    { label: 'round trips per second of server CPU, schema.message + sendJson', path: 'jsonEcho.roundTripsPerCpuSec', format: si, base: 'echo.roundTripsPerCpuSec' },
    { section: `**Request/reply, ${config.echoClients} clients** (a message route's reply; Socket.IO's emitWithAck; ratios to each server's own text echo, in the same phases)` },
    { label: 'round trips per second of server CPU', path: 'requestEcho.roundTripsPerCpuSec', format: si, base: 'plainEcho.roundTripsPerCpuSec' },
    { label: 'round trip p50 / p99 (ms)', pair: ['requestEcho.p50', 'requestEcho.p99'], format: msFormat },
    { section: `**Events to N = ${small.toLocaleString('en')}** (room.emit(); ratios to broadcastJson() of the same object through schema.outbound)` },
    { label: 'deliveries per second of server CPU, room.emit()', path: 'emitSmall.window.deliveriesPerCpuSec', format: si, base: 'emitJsonSmall.window.deliveriesPerCpuSec' },
    { label: 'lost (sum over rounds; must be 0)', sum: ['emitSmall.window.lost', 'emitSmall.window.duplicated', 'emitJsonSmall.window.lost', 'emitJsonSmall.window.duplicated'] },
    { section: `**Idle memory at ${large.toLocaleString('en')} connections** (after forced GC)` },
    { label: 'server RSS per connection', path: 'memory.rssPerConn', format: kib },
    { label: 'server heap + external per connection', path: 'memory.heapPerConn', format: kib },
    { section: `**Handshakes** (connect, upgrade, close; ${config.handshakeConcurrency} at a time)` },
    { label: 'handshakes/s', path: 'handshakes.handshakesPerSec', format: si },
    { label: 'handshakes/s with a TypeBox query schema', path: 'handshakesSchema.handshakesPerSec', format: si, base: 'handshakes.handshakesPerSec' },
    { label: 'handshakes per second of server CPU', path: 'handshakes.handshakesPerCpuSec', format: si }
  ]
}

/** A server's rounds that did not fail (none for a server not in this run). */
const okRounds = (results, name) => (results[name] ?? []).filter((round) => round.error === undefined)
/** The median over a server's good rounds of the figure at `path`, or null. */
const medianOf = (results, name, path) => median(okRounds(results, name).map((round) => get(round, path)))

function table (results) {
  const names = servers.map((server) => server.name)
  const ok = (name) => okRounds(results, name)
  const med = (name, path) => medianOf(results, name, path)
  const hasBase = names.includes(BASELINE)
  const lines = [`| | ${names.join(' | ')} |`, `| --- |${names.map(() => ' ---: |').join('')}`]
  for (const row of rows()) {
    if (row.section !== undefined) {
      lines.push(`| ${row.section} |${names.map(() => ' |').join('')}`)
      continue
    }
    const cells = names.map((name) => {
      if (row.sum !== undefined) {
        const rounds = ok(name)
        if (rounds.length === 0) return '–'
        return String(rounds.reduce((total, round) => total + row.sum.reduce((sum, path) => sum + (get(round, path) ?? 0), 0), 0))
      }
      if (row.pair !== undefined) {
        const [a, b] = row.pair.map((path) => med(name, path))
        const [baseA, baseB] = hasBase ? row.pair.map((path) => med(BASELINE, path)) : [null, null]
        if (a === null) return '–'
        const ratios = baseA === null ? '' : ` (${(a / baseA).toFixed(2)}× / ${(b / baseB).toFixed(2)}×)`
        const behind = row.behind !== undefined && ok(name).some((round) => get(round, row.behind) === true) ? ' ⚠' : ''
        return `${row.format(a)} / ${row.format(b)}${ratios}${behind}`
      }
      const value = med(name, row.path)
      if (value === null) return '–'
      const base = hasBase ? med(BASELINE, row.base ?? row.path) : null
      return row.format(value) + ratio(value, base)
    })
    lines.push(`| ${row.label} | ${cells.join(' | ')} |`)
  }
  return lines.join('\n')
}

/** The targets of the fast path, checked against the medians; a line says why one cannot be read. */
function targets (results) {
  const med = (name, path) => medianOf(results, name, path)
  const check = (label, value, base, bound, atMost = false) => {
    if (value === null || base === null) return `- ${label}: not measured in this run`
    const r = value / base
    const met = atMost ? r <= bound : r >= bound
    return `- ${label}: ${r.toFixed(2)}× (target ${atMost ? '≤' : '≥'} ${bound}×): **${met ? 'met' : 'missed'}**`
  }
  const lines = ['Targets (medians of the table above):', '']
  for (const [key, n] of [['fanoutSmall', config.small], ['fanoutLarge', config.large]]) {
    const rate = `${key}.window.deliveriesPerSec`
    const cpu = `${key}.window.deliveriesPerCpuSec`
    lines.push(check(`fan-out to N = ${n}, deliveries/s against ws`, med('plugin', rate), med('ws', rate), 1))
    lines.push(check(`fan-out to N = ${n}, deliveries per server CPU-second against ws`, med('plugin', cpu), med('ws', cpu), 1))
    lines.push(check(`fan-out to N = ${n}, deliveries per server CPU-second against socket.io`, med('plugin', cpu), med('socket.io', cpu), 3))
  }
  lines.push(check(`publish() to N = ${config.small}, deliveries per server CPU-second against the plugin's broadcast`,
    med('plugin', 'publishSmall.window.deliveriesPerCpuSec'), med('plugin', 'fanoutSmall.window.deliveriesPerCpuSec'), 0.9))
  const rss = 'memory.rssPerConn'
  lines.push(check('idle RSS per session against ws', med('plugin', rss), med('ws', rss), 1.25, true))
  lines.push(check('idle RSS per session against socket.io', med('plugin', rss), med('socket.io', rss), 0.5, true))
  lines.push(check('echo round trips/s against fastify-ws', med('plugin', 'echo.roundTripsPerSec'), med('fastify-ws', 'echo.roundTripsPerSec'), 0.9))
  lines.push(check('JSON echo round trips per server CPU-second, schema.message + sendJson against checked by hand',
    med('plugin', 'jsonEcho.roundTripsPerCpuSec'), med('plugin', 'jsonEchoByHand.roundTripsPerCpuSec'), 0.9))
  lines.push(check('request/reply round trips per server CPU-second, a message route against Socket.IO\'s emitWithAck',
    med('plugin', 'requestEcho.roundTripsPerCpuSec'), med('socket.io', 'requestEcho.roundTripsPerCpuSec'), 2))
  lines.push(check('request/reply round trips per server CPU-second, a message route against the plugin\'s plain text echo',
    med('plugin', 'requestEcho.roundTripsPerCpuSec'), med('plugin', 'plainEcho.roundTripsPerCpuSec'), 0.9))
  lines.push(check('request/reply round trips per server CPU-second, a message route against schema.message + sendJson',
    med('plugin', 'requestEcho.roundTripsPerCpuSec'), med('plugin', 'jsonEcho.roundTripsPerCpuSec'), 0.9))
  lines.push(check(`room.emit() to N = ${config.small}, deliveries per server CPU-second against broadcastJson()`,
    med('plugin', 'emitSmall.window.deliveriesPerCpuSec'), med('plugin', 'emitJsonSmall.window.deliveriesPerCpuSec'), 0.95))
  lines.push(check('handshakes/s with a TypeBox query schema against fastify-ws without one',
    med('plugin', 'handshakesSchema.handshakesPerSec'), med('fastify-ws', 'handshakes.handshakesPerSec'), 0.8))
  return lines.join('\n')
}

function loadTable (results) {
  const names = servers.map((server) => server.name)
  const med = (name, path) => medianOf(results, name, path)
  const lines = [
    '| CPU %: server / load generator / other processes | ' + names.join(' | ') + ' |',
    `| --- |${names.map(() => ' ---: |').join('')}`
  ]
  const phases = [
    [`fan-out N = ${config.small}, saturated`, 'fanoutSmall.window'],
    [`fan-out N = ${config.large}, saturated`, 'fanoutLarge.window'],
    [`fan-out N = ${config.large}, paced`, 'fanoutLarge.paced'],
    ['echo', 'echo'],
    ['handshakes', 'handshakes']
  ]
  for (const [label, path] of phases) {
    lines.push(`| ${label} | ${names.map((name) => `${pct(med(name, `${path}.serverCpuPct`))} / ${pct(med(name, `${path}.loadCpuPct`))} / ${pct(med(name, `${path}.otherCpuPct`))}`).join(' | ')} |`)
  }
  return lines.join('\n')
}

/** The compressed fan-out's section of bench/results.md. */
function compressedSection (results, env, rounds) {
  const names = COMPRESSED_SERVERS.map((server) => server.name)
  const med = (name, path) => medianOf(results, name, path)
  const base = (path) => med('ws', path)
  const cell = (name, path, format) => {
    const value = med(name, path)
    return value === null ? '–' : format(value) + ratio(value, base(path))
  }
  const bytes = (value) => `${value.toFixed(0)} B`
  const row = (label, path, format) => `| ${label} | ${names.map((name) => cell(name, path, format)).join(' | ')} |`
  const lost = (name) => {
    const rounds = okRounds(results, name)
    return rounds.length === 0 ? '–' : String(rounds.reduce((total, round) => total + round.fanout.lost + round.fanout.duplicated + round.fanout.outOfOrder, 0))
  }
  const pair = (name) => {
    const [a, b] = [med(name, 'fanout.p50'), med(name, 'fanout.p99')]
    return a === null ? '–' : `${msFormat(a)} / ${msFormat(b)}`
  }
  const message = names.map((name) => med(name, 'fanout.messageBytes')).find((value) => value !== null)
  const lines = [
    '## Compressed fan-out',
    '',
    `${env.date} · node ${env.node} · nproc ${env.nproc} · ${env.cpu} · ${env.kernel} · load average at start ${env.loadavg}`,
    '',
    `A ${message === undefined ? '2 KiB' : `${message}-byte`} message (a \`P…\` header and a JSON body, 64 different bodies in turn) to ` +
      `N = ${config.compressedN.toLocaleString('en')} receivers that all negotiate permessage-deflate; one publisher keeps ${config.window} messages in flight ` +
      `for ${config.fanoutMs} ms. Medians of ${rounds} round(s), servers in alternating order; in brackets, the ratio to \`ws\`. ` +
      'Bytes per delivery: what the receivers read (frames and headers), per message received.',
    '',
    `| | ${names.join(' | ')} |`,
    `| --- |${names.map(() => ' ---: |').join('')}`,
    row('deliveries/s', 'fanout.deliveriesPerSec', si),
    row('deliveries per second of server CPU', 'fanout.deliveriesPerCpuSec', si),
    row('bytes on the wire per delivery', 'fanout.bytesPerDelivery', bytes),
    `| latency p50 / p99 (ms) | ${names.map(pair).join(' | ')} |`,
    `| lost, duplicated or out of order (sum over rounds) | ${names.map(lost).join(' | ')} |`,
    `| CPU %: server / load generator / other processes | ${names.map((name) => `${pct(med(name, 'fanout.serverCpuPct'))} / ${pct(med(name, 'fanout.loadCpuPct'))} / ${pct(med(name, 'fanout.otherCpuPct'))}`).join(' | ')} |`,
    '',
    'Servers: `plugin` this plugin with `compression: \'shared\'` (the server answers with `server_no_context_takeover`; a broadcast is deflated once); ' +
      '`ws` raw ws with `perMessageDeflate: true` (ws\'s defaults: the server keeps its compression context, so every message is deflated once per receiver, on zlib\'s thread pool); ' +
      '`ws+nct` the same with `serverNoContextTakeover: true` (the same bytes as the plugin\'s, still deflated once per receiver); ' +
      '`socket.io` Socket.IO 4 with `perMessageDeflate: true` (WebSocket transport).',
    '',
    'Targets (medians of the table above):',
    ''
  ]
  const check = (label, value, baseline, bound, atMost = false) => {
    if (value === null || baseline === null) return `- ${label}: not measured in this run`
    const r = value / baseline
    return `- ${label}: ${r.toFixed(2)}× (target ${atMost ? '≤' : '≥'} ${bound}×): **${(atMost ? r <= bound : r >= bound) ? 'met' : 'missed'}**`
  }
  const cpu = 'fanout.deliveriesPerCpuSec'
  const wire = 'fanout.bytesPerDelivery'
  lines.push(check('deliveries per server CPU-second against ws', med('plugin', cpu), med('ws', cpu), 10))
  lines.push(check('deliveries per server CPU-second against socket.io', med('plugin', cpu), med('socket.io', cpu), 10))
  lines.push(check('bytes per delivery against ws+nct (per-receiver deflate, no context kept)', med('plugin', wire), med('ws+nct', wire), 1.05, true))
  lines.push(check('bytes per delivery against ws (per-receiver deflate, context kept)', med('plugin', wire), med('ws', wire), 1.05, true))
  const failures = names.flatMap((name) => (results[name] ?? []).filter((round) => round.error !== undefined).map((round) => `- ${name}, round ${round.round}: ${round.error}`))
  if (failures.length > 0) lines.push('', 'Failed rounds:', '', ...failures)
  return lines.join('\n') + '\n'
}

/** results.md with its compressed fan-out section replaced by `section` (or added at the end). */
function withSection (markdown, section) {
  const heading = '## Compressed fan-out'
  const at = markdown.indexOf(heading)
  if (at === -1) return markdown.trimEnd() + '\n\n' + section
  const next = markdown.indexOf('\n## ', at + heading.length)
  return markdown.slice(0, at) + section + (next === -1 ? '' : markdown.slice(next))
}

// ---------------------------------------------------------------------------------------

async function main () {
  const began = performance.now()
  const env = environment()
  console.log(`fan-out benchmark: ${servers.map((server) => server.name).join(', ')}; ${config.rounds} round(s)${QUICK ? ' (BENCH_QUICK)' : ''}`)
  console.log(`node ${env.node}, ${env.nproc} CPU(s) (${env.cpu}), load average ${env.loadavg}`)

  const results = Object.fromEntries(servers.map((server) => [server.name, []]))
  const compressed = Object.fromEntries(compressedServers.map((server) => [server.name, []]))
  const timings = []
  let skipped = 0
  for (let round = 0; round < config.rounds && servers.length > 0; round++) {
    const order = round % 2 === 0 ? servers : [...servers].reverse()
    for (const server of order) {
      if ((performance.now() - began) / 1000 > config.maxSeconds) {
        skipped++
        continue
      }
      const t0 = performance.now()
      process.stdout.write(`round ${round + 1}/${config.rounds} ${server.name.padEnd(11)} `)
      let result
      try {
        result = await session(server)
      } catch (error) {
        result = { error: String(error.message ?? error) }
      }
      const seconds = (performance.now() - t0) / 1000
      timings.push({ round: round + 1, server: server.name, seconds })
      results[server.name].push({ round: round + 1, seconds, ...result })
      console.log(result.error !== undefined
        ? `FAILED: ${result.error}`
        : `${seconds.toFixed(1)} s  fan-out ${config.large}: ${si(result.fanoutLarge.window.deliveriesPerSec)}/s, ` +
          `${config.small}: ${si(result.fanoutSmall.window.deliveriesPerSec)}/s, echo ${si(result.echo.roundTripsPerSec)}/s, ` +
          `handshakes ${si(result.handshakes.handshakesPerSec)}/s`)
    }
  }

  for (let round = 0; round < config.rounds && compressedServers.length > 0; round++) {
    const order = round % 2 === 0 ? compressedServers : [...compressedServers].reverse()
    for (const server of order) {
      if ((performance.now() - began) / 1000 > config.maxSeconds) {
        skipped++
        continue
      }
      const t0 = performance.now()
      process.stdout.write(`compressed round ${round + 1}/${config.rounds} ${server.name.padEnd(10)} `)
      let result
      try {
        result = await compressedSession(server)
      } catch (error) {
        result = { error: String(error.message ?? error) }
      }
      const seconds = (performance.now() - t0) / 1000
      compressed[server.name].push({ round: round + 1, seconds, ...result })
      const fanout = result.fanout
      console.log(result.error !== undefined
        ? `FAILED: ${result.error}`
        : `${seconds.toFixed(1)} s  ${si(fanout.deliveriesPerSec)}/s, ${si(fanout.deliveriesPerCpuSec)} per CPU-s, ${fanout.bytesPerDelivery.toFixed(0)} B per delivery`)
    }
  }
  if (servers.length === 0) {
    const section = compressedSection(compressed, env, config.rounds)
    console.log('\n' + section)
    const file = join(here, 'results.md')
    writeFileSync(file, withSection(existsSync(file) ? readFileSync(file, 'utf8') : '# Fan-out benchmark\n', section))
    writeFileSync(join(here, 'results-compressed.json'), JSON.stringify({ environment: env, config, results: compressed }, null, 2) + '\n')
    console.log('written: bench/results.md (its compressed fan-out section), bench/results-compressed.json')
    return
  }

  const profiles = []
  const toProfile = (process.env.BENCH_PROFILE ?? '').split(',').map((name) => name.trim()).filter(Boolean)
  for (const name of toProfile) {
    const server = ALL_SERVERS.find((candidate) => candidate.name === name)
    if (server === undefined) throw new Error(`BENCH_PROFILE: unknown server ${name}`)
    mkdirSync(join(here, 'profiles'), { recursive: true })
    const base = join(here, 'profiles', name.replace(/\W/g, '_'))
    const files = {
      fanout: `${base}-fanout-${config.large}.cpuprofile`,
      echo: `${base}-echo-${config.echoClients}.cpuprofile`,
      handshakes: `${base}-handshakes.cpuprofile`
    }
    console.log(`profiling ${name} during echo, the N = ${config.large} fan-out and handshakes…`)
    const measured = await session(server, { profile: files })
    profiles.push({
      name,
      fanout: { file: files.fanout, rate: measured.fanout.deliveriesPerSec, summary: summarize(files.fanout, 20) },
      echo: { file: files.echo, rate: measured.echo.roundTripsPerSec, summary: summarize(files.echo, 20) },
      handshakes: { file: files.handshakes, rate: measured.handshakes.handshakesPerSec, summary: summarize(files.handshakes, 20) }
    })
  }

  const total = (performance.now() - began) / 1000
  const heading = [
    '# Fan-out benchmark',
    '',
    `${env.date} · node ${env.node} · nproc ${env.nproc} · ${env.cpu} · ${env.kernel} · load average at start ${env.loadavg}`,
    '',
    `Medians of ${config.rounds} round(s), servers in alternating order each round${QUICK ? ' (BENCH_QUICK smoke run)' : ''}; ` +
      'in brackets, the ratio to raw `ws` (above 1 is more for throughput, worse for latency and memory). ' +
      `Saturated fan-out: one publisher keeps ${config.window} messages in flight, a message counting as done once every receiver has it, ` +
      `for ${config.fanoutMs} ms; paced: ${si(config.paced)} deliveries/s offered for ${config.pacedMs} ms. ` +
      'Latency is publish to arrival, both stamped by the load generator. Total run time ' + `${total.toFixed(0)} s.`,
    ''
  ].join('\n')
  const legend = [
    '',
    'Servers: `plugin` this plugin (onConnected joins room `bench`; `P…` → `room.broadcastExcept`, `E…` → `session.send`); ' +
      '`ws` raw ws with a Set, forwarding the received Buffer to every `send()` (public API); ' +
      '`ws+frame` the same with the frame built once (`Sender.frame`) and written through ws\'s internal `_sender.sendFrame` (as Socket.IO does; not public API); ' +
      '`ws+cork` the frame built once and written to ws\'s internal TCP socket, corked until the end of the tick so the broadcasts of one tick leave as one write per socket (uWebSockets\' technique; not public API: the ceiling of this stack); ' +
      '`fastify-ws` @fastify/websocket with an array and `socket.send(text)` per socket; `socket.io` Socket.IO 4, rooms, WebSocket transport only.',
    ''
  ].join('\n')
  const failures = Object.values(results).flat().filter((round) => round.error !== undefined)
  const tableText = table(results)
  let markdown = heading + '\n' + tableText + '\n' + legend + '\n' + targets(results) + '\n'
  if (tableText.includes('⚠')) {
    markdown += '\n⚠: in at least one round the server fell behind the paced rate (the last message took over 1.5 periods to reach everyone), so that latency includes a backlog.\n'
  }
  markdown += '\nWho was busy (median CPU % of one core, out of ' + env.nproc + ' cores; a load generator near 100% would mean it, not the server, set the pace; ' +
    '"other processes" is everything else on the machine, steal included: high values mean a noisy round):\n\n' + loadTable(results) + '\n'
  if (failures.length > 0) markdown += '\nFailed rounds:\n\n' + failures.map((round) => `- round ${round.round}: ${round.error}`).join('\n') + '\n'
  if (skipped > 0) markdown += `\n${skipped} server round(s) skipped: past the time budget of ${config.maxSeconds} s (BENCH_MAX_SECONDS).\n`
  markdown += '\nTime per server and round (s): ' + timings.map((t) => `${t.server} ${t.seconds.toFixed(1)}`).join(', ') + '\n'
  if (compressedServers.length > 0) markdown += '\n' + compressedSection(compressed, env, config.rounds)
  for (const profile of profiles) {
    markdown += `\n## CPU profile: ${profile.name}, saturated fan-out to N = ${config.large}\n\n` +
      `${si(profile.fanout.rate)} deliveries/s while profiled (sampling every 250 µs). Profile: \`bench/${profile.fanout.file.slice(here.length + 1)}\`.\n\n` +
      toMarkdown(profile.fanout.summary) + '\n' +
      `\n## CPU profile: ${profile.name}, echo with ${config.echoClients} clients\n\n` +
      `${si(profile.echo.rate)} round trips/s while profiled. Profile: \`bench/${profile.echo.file.slice(here.length + 1)}\`.\n\n` +
      toMarkdown(profile.echo.summary) + '\n' +
      `\n## CPU profile: ${profile.name}, handshakes\n\n` +
      `${si(profile.handshakes.rate)} handshakes/s while profiled. Profile: \`bench/${profile.handshakes.file.slice(here.length + 1)}\`.\n\n` +
      toMarkdown(profile.handshakes.summary) + '\n'
  }
  console.log('\n' + markdown)
  const out = process.env.BENCH_OUT || 'results'
  writeFileSync(join(here, `${out}.md`), markdown)
  writeFileSync(join(here, `${out}.json`), JSON.stringify({ environment: env, config, servers: servers.map((server) => server.name), results, compressed, profiles }, null, 2) + '\n')
  console.log(`written: bench/${out}.md, bench/${out}.json`)
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  })

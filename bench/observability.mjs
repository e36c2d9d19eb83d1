// What the observability options cost: `npm run bench:observability` (builds first).
// The plugin of this tree with neither option on, with metrics on (scraped every second) and
// with tracing on (OpenTelemetry's SDK recording every span), against the plugin of a
// worktree of main (BENCH_BASE, built: npm ci && npm run build there), in one run. Only the
// two figures the options could move: echo and fan-out per second of server CPU, each
// variant a fresh server and load generator per round, in rotating order. Ratios are paired:
// each variant against the base in the same round, then the median over rounds, with the
// lowest and highest to show the noise. Writes bench/results-observability.md.
//
// Environment:
//   BENCH_BASE=…        the worktree of main (without it: no base, ratios to `plugin`)
//   BENCH_ROUNDS=7      rounds
//   BENCH_QUICK=1       a smoke run: small N, short phases, 2 rounds
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchWithLoad } from './lib/children.mjs'
import { environment } from './lib/environment.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const QUICK = process.env.BENCH_QUICK === '1'
const config = {
  rounds: Number(process.env.BENCH_ROUNDS || (QUICK ? 2 : 7)),
  echoClients: QUICK ? 20 : 100,
  echoMs: QUICK ? 500 : 1500,
  receivers: QUICK ? 100 : 1000,
  fanoutMs: QUICK ? 500 : 1500,
  window: 4
}
const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
const PATH = '/ws?user=bench'
const variants = [
  ...(process.env.BENCH_BASE ? [{ name: 'main', file: join(process.env.BENCH_BASE, 'bench', 'servers', 'plugin.mjs') }] : []),
  { name: 'off', file: join(here, 'servers', 'plugin.mjs') },
  { name: 'metrics', file: join(here, 'servers', 'plugin.mjs'), env: { BENCH_OBSERVE: 'metrics' } },
  { name: 'tracing', file: join(here, 'servers', 'plugin.mjs'), env: { BENCH_OBSERVE: 'tracing' } }
]
const BASE = variants[0].name

async function measure (variant) {
  const { load, stop } = await launchWithLoad({ file: variant.file, env: variant.env, label: variant.name, protocol: 'ws', clockTicks })
  try {
    await load.call('connect', { role: 'echo', count: config.echoClients, path: PATH })
    const echo = await load.call('echo', { warmupMs: 300, durationMs: config.echoMs })
    await load.call('close', { role: 'echo', settleMs: 300 })
    await load.call('connect', { role: 'pub', count: 1, path: PATH })
    await load.call('connect', { role: 'recv', count: config.receivers, path: PATH })
    const fanout = await load.call('fanout', { mode: 'window', window: config.window, warmup: 10, durationMs: config.fanoutMs, drainMs: 10_000 })
    return { echo: echo.roundTripsPerCpuSec, fanout: fanout.deliveriesPerCpuSec, lost: fanout.lost ?? 0 }
  } finally {
    await stop()
  }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
const si = (value) => value >= 1e6 ? `${(value / 1e6).toFixed(2)}M` : value >= 1e3 ? `${(value / 1e3).toFixed(1)}k` : value.toFixed(0)

const env = environment()
console.log(`observability cost: ${variants.map((v) => v.name).join(', ')}; ${config.rounds} rounds; load average ${env.loadavg}`)
const rounds = []
for (let round = 0; round < config.rounds; round++) {
  const rotated = variants.map((_, i) => variants[(i + round) % variants.length])
  const order = round % 2 === 0 ? rotated : rotated.reverse()
  const results = {}
  for (const variant of order) {
    results[variant.name] = await measure(variant)
    console.log(`round ${round + 1}/${config.rounds} ${variant.name.padEnd(8)} echo ${si(results[variant.name].echo)}/CPU-s, fan-out ${si(results[variant.name].fanout)}/CPU-s`)
  }
  rounds.push(results)
}

const rows = ['echo', 'fanout'].map((key) => {
  const label = key === 'echo' ? `echo, ${config.echoClients} clients: round trips per server CPU-second` : `fan-out to N = ${config.receivers}: deliveries per server CPU-second`
  const cells = variants.map(({ name }) => {
    const value = median(rounds.map((r) => r[name][key]))
    if (name === BASE) return `${si(value)}`
    const ratios = rounds.map((r) => r[name][key] / r[BASE][key])
    return `${si(value)} (${median(ratios).toFixed(2)}×; ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`
  })
  return `| ${label} | ${cells.join(' | ')} |`
})
const markdown = [
  '# What the observability options cost',
  '',
  `${env.date} · node ${env.node} · nproc ${env.nproc} · ${env.cpu} · load average at start ${env.loadavg}`,
  '',
  `Medians of ${config.rounds} rounds, variants in rotating order; in brackets, the median of each round's ratio to \`${BASE}\`, then the lowest and highest.`,
  `\`${BASE}\`${BASE === 'main' ? ': the plugin of main (BENCH_BASE); ' : ''}\`off\`: this tree, neither option on; \`metrics\`: metrics on, scraped every second; \`tracing\`: tracing on, every span recorded and exported in batches.`,
  `Lost messages, every round: ${rounds.reduce((sum, r) => sum + Object.values(r).reduce((s, v) => s + v.lost, 0), 0)}.`,
  '',
  `| | ${variants.map((v) => v.name).join(' | ')} |`,
  `| --- | ${variants.map(() => '---:').join(' | ')} |`,
  ...rows,
  ''
].join('\n')
console.log('\n' + markdown)
writeFileSync(join(here, 'results-observability.md'), markdown)
writeFileSync(join(here, 'results-observability.json'), JSON.stringify({ environment: env, config, rounds }, null, 2) + '\n')
console.log('written: bench/results-observability.md, bench/results-observability.json')

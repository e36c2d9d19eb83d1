// The Markdown report of bench/cluster.mjs: medians over rounds, ratios to the single node
// with the adapter, targets, who was busy, and every round. A round is
// { round, scenario, error? , phases: { 'saturated-<window>' | 'paced-<room>': phase } }, a
// phase what bench/load.mjs's fan-out returns plus `cpu`, `perCpu` and `perWrite`.

/** Other processes busier than this (% of one core) during a phase make that phase noisy. */
export const NOISY = 25
const BASELINE = 'one'

export function median (values) {
  const sorted = values.filter((value) => typeof value === 'number' && Number.isFinite(value)).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

export function si (value) {
  if (value === null) return '–'
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`
  if (value >= 1e4) return `${(value / 1e3).toFixed(0)}k`
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`
  return value.toFixed(0)
}

export const ms = (value) => value === null ? '–' : value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
export const pct = (value) => value === null ? '–' : `${value.toFixed(0)}%`
const get = (object, path) => path.split('.').reduce((at, key) => at?.[key], object) ?? null
const ok = (results, id) => (results[id] ?? []).filter((round) => round.error === undefined)

/**
 * The rounds to take a median of for `path` ('phases.<phase>.…'): those whose phase was
 * quiet, if at least half were; else every round, and `noisy` is true.
 */
function roundsFor (results, id, path) {
  const all = ok(results, id)
  const phase = path.split('.').slice(0, 2).join('.')
  const quiet = all.filter((round) => (get(round, `${phase}.cpu.other`) ?? 0) < NOISY)
  return quiet.length > 0 && quiet.length * 2 >= all.length ? { list: quiet, noisy: false } : { list: all, noisy: true }
}

const med = (results, id, path) => median(roundsFor(results, id, path).list.map((round) => get(round, path)))
const mark = (results, id, path) => roundsFor(results, id, path).noisy ? ' †' : ''

function rows (config) {
  const { receivers, windows, rooms, rate } = config
  return [
    { label: `receivers per node: fan-out to N = ${receivers.toLocaleString('en')}`, placed: receivers },
    ...rooms.map((room) => ({ label: `receivers per node: room of ${room}`, placed: room })),
    ...windows.flatMap((window) => {
      const at = `phases.saturated-${window}`
      return [
        { section: `**Saturated fan-out to N = ${receivers.toLocaleString('en')}, ${window} messages in flight**` },
        { label: 'deliveries/s', path: `${at}.deliveriesPerSec`, format: si, ratio: true },
        { label: 'deliveries per second of CPU (servers + Redis)', path: `${at}.perCpu`, format: si, ratio: true },
        { label: 'deliveries per write system call of the servers', path: `${at}.perWrite`, format: (value) => value.toFixed(2) },
        { label: 'latency p50 / p99 (ms)', pair: [`${at}.p50`, `${at}.p99`] }
      ]
    }),
    { section: `**Paced: ${si(rate)} messages/s** from node 1 to a room of a few receivers` },
    ...rooms.flatMap((room) => [
      { label: `room of ${room} (${si(room * rate)} deliveries/s offered): latency p50 / p99 (ms)`, pair: [`phases.paced-${room}.p50`, `phases.paced-${room}.p99`] },
      { label: `room of ${room}: deliveries/s`, path: `phases.paced-${room}.deliveriesPerSec`, format: si }
    ]),
    { section: '**Delivery** (sum over every round and phase; must be 0)' },
    { label: 'lost / duplicated / out of order', sum: ['lost', 'duplicated', 'outOfOrder'] }
  ]
}

function cell (results, scenario, row) {
  const rounds = ok(results, scenario.id)
  if (rounds.length === 0) return '–'
  if (row.placed !== undefined) return scenario.place(row.placed).map((n) => n.toLocaleString('en')).join(' + ')
  if (row.sum !== undefined) {
    const phases = rounds.flatMap((round) => Object.values(round.phases))
    return row.sum.map((key) => phases.reduce((total, phase) => total + phase[key], 0)).join(' / ')
  }
  if (row.pair !== undefined) {
    const [a, b] = row.pair.map((path) => med(results, scenario.id, path))
    return `${ms(a)} / ${ms(b)}${mark(results, scenario.id, row.pair[0])}`
  }
  const value = med(results, scenario.id, row.path)
  if (value === null) return '–'
  const base = row.ratio && results[BASELINE] !== undefined ? med(results, BASELINE, row.path) : null
  return row.format(value) + (base === null || base === 0 ? '' : ` (${(value / base).toFixed(2)}×)`) + mark(results, scenario.id, row.path)
}

function header (scenarios, first) {
  return [`| ${first} | ${scenarios.map((scenario) => scenario.name).join(' | ')} |`, `| --- |${scenarios.map(() => ' ---: |').join('')}`]
}

function table (results, scenarios, config) {
  const lines = header(scenarios, '')
  for (const row of rows(config)) {
    if (row.section !== undefined) lines.push(`| ${row.section} |${scenarios.map(() => ' |').join('')}`)
    else lines.push(`| ${row.label} | ${scenarios.map((scenario) => cell(results, scenario, row)).join(' | ')} |`)
  }
  return lines.join('\n')
}

function cpuTable (results, scenarios, config) {
  const lines = header(scenarios, 'CPU % of one core: node 1 / node 2 / Redis / load generator / kernel irq / other (Σ: the machine)')
  const phases = [
    ...config.windows.map((window) => [`saturated, ${window} in flight`, `saturated-${window}`]),
    ...config.rooms.map((room) => [`paced, room of ${room}`, `paced-${room}`])
  ]
  for (const [label, phase] of phases) {
    lines.push(`| ${label} | ${scenarios.map((scenario) => {
      const names = ['node1', 'node2', 'redis', 'load', 'irq', 'other']
      const values = names.map((name) => name === 'node2' && scenario.nodes < 2 ? null : med(results, scenario.id, `phases.${phase}.cpu.${name}`))
      const total = values.reduce((sum, value) => sum + (value ?? 0), 0)
      return `${values.map((value) => value === null ? '–' : pct(value)).join(' / ')} (Σ ${pct(total)})`
    }).join(' | ')} |`)
  }
  return lines.join('\n')
}

function everyRound (results, config) {
  const lines = [
    '| round | scenario | ' + config.windows.map((window) => `deliveries/s, ${window} in flight`).join(' | ') + ' | ' +
      config.rooms.map((room) => `room of ${room}: p50 / p99 ms`).join(' | ') + ' | other processes, busiest phase |',
    `| ---: | --- |${[...config.windows, ...config.rooms].map(() => ' ---: |').join('')} ---: |`
  ]
  for (const round of Object.values(results).flat().sort((a, b) => a.order - b.order)) {
    if (round.error !== undefined) {
      lines.push(`| ${round.round} | ${round.scenario} | failed: ${round.error} |${[...config.windows, ...config.rooms].map(() => ' |').join('')}`)
      continue
    }
    const { phases } = round
    lines.push(`| ${round.round} | ${round.scenario} | ` +
      config.windows.map((window) => si(phases[`saturated-${window}`].deliveriesPerSec)).join(' | ') + ' | ' +
      config.rooms.map((room) => `${ms(phases[`paced-${room}`].p50)} / ${ms(phases[`paced-${room}`].p99)}`).join(' | ') +
      ` | ${pct(Math.max(...Object.values(phases).map((phase) => phase.cpu.other)))} |`)
  }
  return lines.join('\n')
}

function targets (results, scenarios, config) {
  const one = ok(results, BASELINE).length > 0
  const verdict = (met) => met ? '**met**' : '**missed**'
  const room = Math.max(...config.rooms)
  const lines = ['Targets (medians of the table above):', '']
  for (const scenario of scenarios.filter((candidate) => candidate.split && ok(results, candidate.id).length > 0)) {
    for (const window of one ? config.windows : []) {
      const path = `phases.saturated-${window}.deliveriesPerSec`
      const [split, single] = [med(results, scenario.id, path), med(results, BASELINE, path)]
      if (split === null || !single) continue
      const ratio = split / single
      const memory = med(results, 'memory', path)
      const reference = memory ? `; ${(split / memory).toFixed(2)}× those of \`1 node, no adapter\`` : ''
      lines.push(`- ${scenario.name}, ${window} in flight: ${ratio.toFixed(2)}× the deliveries/s of \`1 node\` (target ≥ 0.70×): ${verdict(ratio >= 0.7)}${reference}`)
    }
    const p99 = med(results, scenario.id, `phases.paced-${room}.p99`)
    lines.push(`- ${scenario.name}: p99 publish to arrival at ${si(config.rate)} messages/s to a room of ${room}: ${ms(p99)} ms (target < 10 ms): ${verdict(p99 !== null && p99 < 10)}`)
  }
  const lost = scenarios.filter((scenario) => scenario.id !== 'memory').flatMap((scenario) => ok(results, scenario.id))
    .flatMap((round) => Object.values(round.phases)).reduce((total, phase) => total + phase.lost, 0)
  lines.push(`- lost with the adapter, every round and phase: ${lost} (target 0): ${verdict(lost === 0)}`)
  return lines.join('\n')
}

/** The whole report. */
export function report ({ results, scenarios, config, env, redisInfo, totalSeconds, skipped, legend, profiles }) {
  const failures = Object.values(results).flat().filter((round) => round.error !== undefined)
  return [
    '# Cluster benchmark: fan-out through the Redis adapter',
    '',
    `${env.date} · node ${env.node} · nproc ${env.nproc} · ${env.cpu} · ${env.kernel} · load average at start ${env.loadavg} · ${redisInfo}`,
    '',
    `Medians of ${config.rounds} round(s), scenarios in alternating order each round${config.quick ? ' (BENCH_QUICK smoke run)' : ''}; total run time ${totalSeconds.toFixed(0)} s. ` +
      'Every node is a server process of its own (the plugin, room `bench`, `P…` → `room.broadcastExcept`), all on this machine with one Redis, over loopback; ' +
      'one load generator process (bench/load.mjs) holds every client and stamps every latency with one clock: publish to arrival. ' +
      'The publisher is always on node 1. In brackets, the ratio to `1 node` (the plugin with the Redis adapter, on one node).',
    '',
    `Saturated: one publisher keeps a window of messages in flight for ${config.fanoutMs} ms, a message counting as done once all N receivers have it (the server sets the pace). ` +
      `Paced: ${si(config.rate)} messages per second for ${config.pacedMs} ms to a room of a few receivers, after ${config.pacedWarmup.toLocaleString('en')} warm-up messages.`,
    '',
    table(results, scenarios, config),
    '',
    `†: more than half of the rounds of that phase were noisy (other processes above ${NOISY}% of a core), so the median is over every round; ` +
      'elsewhere it is over the quiet rounds only (the last column of the table of rounds).',
    '',
    targets(results, scenarios, config),
    '',
    ...(Number(env.nproc) < 4
      ? [`With ${env.nproc} cores for two nodes, Redis, the load generator and the kernel's loopback work, a second node adds no CPU: ` +
          'the 2-node scenarios measure what splitting the receivers costs, not what a second machine would add.', '']
      : []),
    legend,
    '',
    `Who was busy (median CPU % of one core, out of ${env.nproc} cores, over the whole phase: warm-up, measurement and drain). ` +
      '"kernel irq" is the time in interrupts and softirqs, on loopback mostly TCP\'s receive path, which no process is charged for; ' +
      '"other" is every other process on the machine, steal included. Σ at 100% × nproc or more means the machine was saturated ' +
      '(it can pass it: the kernel may count softirq work done in a process\'s time both ways); a process near 100% was itself the limit:',
    '',
    cpuTable(results, scenarios, config),
    '',
    'Every round:',
    '',
    everyRound(results, config),
    ''
  ].join('\n') +
    (failures.length > 0 ? '\nFailed rounds:\n\n' + failures.map((round) => `- round ${round.round}, ${round.scenario}: ${round.error}`).join('\n') + '\n' : '') +
    (skipped > 0 ? `\n${skipped} session(s) skipped: past the time budget of ${config.maxSeconds} s (BENCH_MAX_SECONDS).\n` : '') +
    profiles
}

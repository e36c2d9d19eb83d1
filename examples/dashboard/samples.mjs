// What the dashboard page charts, read from the plugin's own Prometheus metrics (the registry
// the plugin registered them with): open sessions, messages received per second, and the 99th
// percentile of handler time over the last interval, from the histogram's buckets as
// Prometheus's histogram_quantile() reads them.

/** Returns sample(): each call, the figures since the previous one. */
export function sampler (registry, prefix = 'websocket_rooms_') {
  let previous = null
  return async function sample () {
    const metrics = new Map((await registry.getMetricsAsJSON()).map((metric) => [metric.name, metric.values]))
    const sum = (name, keep = () => true) => (metrics.get(prefix + name) ?? []).filter(keep).reduce((total, { value }) => total + value, 0)
    const now = { at: Date.now(), received: sum('messages_received_total'), buckets: buckets(metrics.get(prefix + 'handler_duration_seconds') ?? []) }
    const last = previous ?? now
    previous = now
    const seconds = Math.max(now.at - last.at, 1) / 1000
    return {
      type: 'sample',
      at: now.at,
      sessions: sum('sessions'),
      messagesPerSecond: (now.received - last.received) / seconds,
      p99Ms: quantile(0.99, now.buckets.map(([le, count], i) => [le, count - (last.buckets[i]?.[1] ?? 0)])) * 1000
    }
  }
}

/** The histogram's cumulative buckets, every label set added up: [[le, count]...], by le. */
function buckets (values) {
  const byBound = new Map()
  for (const { labels, value, metricName } of values) {
    if (!metricName?.endsWith('_bucket')) continue
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le)
    byBound.set(le, (byBound.get(le) ?? 0) + value)
  }
  return [...byBound].sort(([a], [b]) => a - b)
}

/** histogram_quantile(): linear within the bucket the rank falls in; 0 with no observation. */
function quantile (q, cumulative) {
  const total = cumulative.at(-1)?.[1] ?? 0
  if (total === 0) return 0
  const rank = q * total
  let lower = 0
  let below = 0
  for (const [le, count] of cumulative) {
    if (count >= rank) {
      // Past the last finite bound, the last finite bound is the answer, as Prometheus says.
      if (le === Infinity) return lower
      return lower + (le - lower) * (count === below ? 0 : (rank - below) / (count - below))
    }
    lower = le
    below = count
  }
  return lower
}

// A prom-client Histogram fed in bulk. prom-client's observe() with labels costs about 5 µs
// (it hashes the labels and converts the bound to a key each time), more than a handler run;
// here each label set's counts are kept in an array (a few ns an observation) and written into
// the histogram's value map (its `hashMap`, which its get() exports) when it is scraped.
// That map is prom-client's own: probed once per histogram, and when it is not the shape this
// module knows, observations go through observe() instead, the same output at prom-client's cost.
import type { Histogram } from 'prom-client'

interface Counts { labels: Record<string, string>, buckets: number[], sum: number, count: number }
/** A value of prom-client's map: a label set's buckets (each its own count, by bound), sum and count. */
interface MapValue { labels: Record<string, string>, bucketValues: Record<string, number>, sum: number, count: number }
type Mapped = Histogram & { hashMap?: Record<string, MapValue> }

export interface BulkHistogram {
  /** `key` names the label set (the same labels for the same key). */
  observe (key: string, labels: Record<string, string>, value: number): void
  /** Writes the counts into the histogram: call it from the histogram's collect(). */
  flush (): void
  /** False when the probe found another shape: observations go through observe(). */
  readonly bulk: boolean
}

/** The histogram's values by label set, when its map is the shape this module writes (every bucket at 0: just zeroed); else null. */
function valuesOf (histogram: Mapped, bounds: number[]): Map<Record<string, string>, MapValue> | null {
  const map = histogram.hashMap
  if (map === null || typeof map !== 'object') return null
  const byLabels = new Map<Record<string, string>, MapValue>()
  for (const value of Object.values(map)) {
    if (value === null || typeof value !== 'object' || value.bucketValues === null || typeof value.bucketValues !== 'object' ||
      typeof value.sum !== 'number' || typeof value.count !== 'number' || !bounds.every((bound) => value.bucketValues[bound] === 0)) return null
    byLabels.set(value.labels, value)
  }
  return byLabels
}

export function bulkHistogram (histogram: Histogram, bounds: number[], probeLabels: Record<string, string>): BulkHistogram {
  const mapped = histogram as Mapped
  histogram.zero(probeLabels)
  const bulk = valuesOf(mapped, bounds)?.has(probeLabels) === true
  histogram.reset()
  if (!bulk) {
    return { bulk, observe: (_key, labels, value) => { histogram.observe(labels, value) }, flush: () => {} }
  }
  const counts = new Map<string, Counts>()
  return {
    bulk,
    observe (key, labels, value) {
      let entry = counts.get(key)
      if (entry === undefined) counts.set(key, entry = { labels, buckets: new Array<number>(bounds.length).fill(0), sum: 0, count: 0 })
      // The first bound at or above the value (none past the last: it counts in +Inf only).
      let i = 0
      while (i < bounds.length && value > bounds[i]!) i++
      if (i < bounds.length) entry.buckets[i]!++
      entry.sum += value
      entry.count++
    },
    flush () {
      histogram.reset()
      for (const entry of counts.values()) histogram.zero(entry.labels)
      const byLabels = valuesOf(mapped, bounds)
      if (byLabels === null) return
      for (const entry of counts.values()) {
        const value = byLabels.get(entry.labels)
        if (value === undefined) continue
        for (let i = 0; i < bounds.length; i++) value.bucketValues[bounds[i]!] = entry.buckets[i]!
        value.sum = entry.sum
        value.count = entry.count
      }
    }
  }
}

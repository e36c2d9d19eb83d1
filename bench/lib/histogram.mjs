// A log-linear latency histogram over integer microseconds: exact below 2048 µs, then 1024
// buckets per power of two (relative error under 0.1%). Recording is an increment, so the
// load generator can record every delivery instead of a sample.
const LINEAR = 2048
const SUB_BITS = 10
const SUB = 1 << SUB_BITS
const MAX_EXPONENT = 30
const BUCKETS = LINEAR + (MAX_EXPONENT - 10) * SUB

function bucketOf (us) {
  if (us < LINEAR) return us
  const exponent = 31 - Math.clz32(us)
  return LINEAR + (exponent - 11) * SUB + ((us >>> (exponent - SUB_BITS)) & (SUB - 1))
}

/** The middle of a bucket's range, in µs. */
function valueOf (bucket) {
  if (bucket < LINEAR) return bucket
  const exponent = 11 + Math.floor((bucket - LINEAR) / SUB)
  const sub = (bucket - LINEAR) % SUB
  const low = (SUB + sub) * 2 ** (exponent - SUB_BITS)
  return low + 2 ** (exponent - SUB_BITS) / 2
}

export class Histogram {
  constructor () {
    this.counts = new Float64Array(BUCKETS)
    this.count = 0
  }

  record (us) {
    let v = us < 0 ? 0 : Math.floor(us)
    if (v >= 2 ** MAX_EXPONENT) v = 2 ** MAX_EXPONENT - 1
    this.counts[bucketOf(v)]++
    this.count++
  }

  /** The p-th percentile (0 < p < 1), in µs; null when nothing was recorded. */
  percentile (p) {
    if (this.count === 0) return null
    const target = Math.max(1, Math.ceil(p * this.count))
    let seen = 0
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b]
      if (seen >= target) return valueOf(b)
    }
    return valueOf(BUCKETS - 1)
  }
}

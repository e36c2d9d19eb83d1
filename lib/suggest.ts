// "Did you mean ...?": the known name closest to a misspelt one, for the errors that refuse
// an unknown handler, route option or plugin option.

/** Edit distance, letters compared without case. */
function distance (a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

/** The closest of `names` within `edits` edits (letters compared without case), or null. */
export function closest (key: string, names: Iterable<string>, edits = 3): string | null {
  let best: string | null = null
  let bestDistance = Infinity
  for (const name of names) {
    const d = distance(key, name)
    if (d < bestDistance) { best = name; bestDistance = d }
  }
  return bestDistance <= edits ? best : null
}

/** ` (did you mean "name"?)` for the closest of `names` within three edits, else ''. */
export function didYouMean (key: string, names: Iterable<string>): string {
  const best = closest(key, names)
  return best === null ? '' : ` (did you mean "${best}"?)`
}

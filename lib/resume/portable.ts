// A session as it crosses servers (./store's Portable): its attributes as JSON, what was kept
// for it as base64, and the check that keeps attributes JSON on a route whose sessions may
// resume on another server, at setAttribute() time rather than at the drop.
import { InvalidArgumentError } from '../errors'
import { BINARY, Encoded, TEXT } from '../transport/frame'

/** Kept messages, as a Portable carries them. */
export function packKept (kept: readonly Encoded[]): Array<[boolean, string]> {
  return kept.map((encoded) => [encoded.options === BINARY, encoded.data.toString('base64')])
}

export function unpackKept (kept: ReadonlyArray<[boolean, string]>): Encoded[] {
  return kept.map(([binary, data]) => new Encoded(Buffer.from(data, 'base64'), binary ? BINARY : TEXT))
}

/** Attributes, as a Portable carries them: JSON text of [key, value] pairs. */
export function packAttributes (attributes: Record<string, unknown>): string {
  return JSON.stringify(Object.entries(attributes))
}

export function unpackAttributes (text: string): Array<[string, unknown]> {
  return JSON.parse(text) as Array<[string, unknown]>
}

/**
 * Throws a TypeError naming the key when `value` would not come back the same from JSON: a
 * function, a symbol, a bigint, undefined (at any depth), a cycle, a number that is not finite.
 */
export function assertJsonAttribute (key: string, value: unknown): void {
  const why = whyNotJson(value, new Set())
  if (why !== null) throw new InvalidArgumentError(`the value of attribute "${key}"`, 'JSON (a route whose sessions resume on another server keeps attributes as JSON)', why)
}

function whyNotJson (value: unknown, path: Set<object>): string | null {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return null
    case 'number':
      return Number.isFinite(value) ? null : String(value)
    case 'object':
      break
    default:
      return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`
  }
  if (value === null) return null
  if (path.has(value)) return 'a cycle'
  // toJSON (a Date) decides what is written.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return null
  path.add(value)
  const values = Array.isArray(value) ? value : Object.values(value)
  for (const item of values) {
    const why = whyNotJson(item, path)
    if (why !== null) return why
  }
  path.delete(value)
  return null
}

// Identifiers of an AsyncAPI document (channels, messages, operations, components): AsyncAPI
// allows letters, digits, ".", "-" and "_"; each run of other characters becomes "_", and a
// name already taken gets a numbered suffix, so every id is valid, unique and the same for
// the same input.

const OTHER = /[^A-Za-z0-9._-]+/g

/** A readable id for `name`: the characters AsyncAPI allows kept, each run of others as "_". */
export function idFor (name: string, fallback: string): string {
  const id = name.replace(OTHER, '_')
  return id === '' || id === '_' ? fallback : id
}

/** Hands out ids unique among those it gave. */
export class IdSet {
  readonly #taken = new Set<string>()

  take (name: string, fallback: string): string {
    const base = idFor(name, fallback)
    let id = base
    for (let n = 2; this.#taken.has(id); n++) id = `${base}_${n}`
    this.#taken.add(id)
    return id
  }
}

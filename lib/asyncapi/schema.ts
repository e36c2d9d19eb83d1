// The schemas of routes as plain JSON Schema inside an AsyncAPI document: TypeBox's own
// fields (0.3x's symbols, 1.x's non-enumerable "~kind") left out, and every schema with an
// `$id` moved to components/schemas, where every `$ref` to it points (Fastify resolves
// `$ref: 'user#'` against ajv's shared schemas; a document resolves JSON pointers).
import { IdSet } from './ids'

export type JsonSchema = Record<string, unknown> | boolean

/** Keywords whose value is data, never a schema: copied as they are. */
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples', 'example', 'required', 'type', 'format', 'pattern', 'description', 'title'])
/** Keywords whose value maps names to schemas. */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependencies', 'dependentSchemas'])

const COMPONENTS = '#/components/schemas/'

/** A schema that cannot go into the document; `where` names the route and the schema. */
export class SchemaConversionError extends Error {
  constructor (readonly where: string, message: string) {
    super(message)
  }
}

/** The components/schemas of one document, filled as schemas are converted. */
export class SchemaComponents {
  readonly schemas: Record<string, JsonSchema> = {}
  readonly #keys = new IdSet()
  /** $id -> component key, for the schemas already moved. */
  readonly #byId = new Map<string, string>()
  /** $id -> schema: every schema with an $id seen so far, and the shared ones (addSchema). */
  readonly #known = new Map<string, Record<string, unknown>>()
  #where = ''

  /**
   * `schema` as plain JSON Schema, placed at the document's JSON pointer `at` (local `$ref`s
   * such as `#/$defs/node` are made relative to it). `shared`: the schemas the route may
   * refer to by `$id`. `where` names the schema in errors.
   */
  convert (schema: unknown, at: string, where: string, shared: Record<string, unknown> = {}): JsonSchema {
    this.#where = where
    const plain = plainCopy(schema, where)
    for (const [id, value] of Object.entries(shared)) {
      if (!this.#known.has(id) && isObject(value)) this.#known.set(id, plainCopy(value, `shared schema "${id}"`) as Record<string, unknown>)
    }
    collectIds(plain, this.#known)
    return this.#walk(plain, at)
  }

  #walk (node: unknown, base: string): any {
    if (Array.isArray(node)) return node.map((item) => this.#walk(item, base))
    if (!isObject(node)) return node
    if (typeof node.$id === 'string') return { $ref: COMPONENTS + this.#component(node.$id, node) }
    return this.#walkSchema(node, base)
  }

  #walkSchema (node: Record<string, unknown>, base: string): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref') {
        out.$ref = this.#ref(value, base)
      } else if (DATA_KEYWORDS.has(key) || key.startsWith('x-')) {
        out[key] = value
      } else if (SCHEMA_MAPS.has(key) && isObject(value)) {
        out[key] = Object.fromEntries(Object.entries(value).map(([name, schema]) => [name, this.#walk(schema, base)]))
      } else {
        out[key] = this.#walk(value, base)
      }
    }
    return out
  }

  /** The component key of the schema with this $id, moving it to components/schemas the first time. */
  #component (id: string, schema: Record<string, unknown>): string {
    const known = this.#byId.get(id)
    if (known !== undefined) return known
    const key = this.#keys.take(id.replace(/#$/, ''), 'schema')
    this.#byId.set(id, key)
    const { $id, ...rest } = schema
    this.schemas[key] = {}
    this.schemas[key] = this.#walkSchema(rest, COMPONENTS + key)
    return key
  }

  /** A `$ref` as a pointer into the document: `id`, `id#`, `id#/pointer` or a local `#/pointer`. */
  #ref (ref: unknown, base: string): string {
    // TypeBox 1.x's Type.Ref(schema) holds the schema itself.
    if (isObject(ref) && typeof ref.$id === 'string') return COMPONENTS + this.#component(ref.$id, ref)
    if (typeof ref !== 'string') throw new SchemaConversionError(this.#where, `has a $ref that is neither a string nor a schema with an $id (${typeof ref})`)
    const hash = ref.indexOf('#')
    const id = hash === -1 ? ref : ref.slice(0, hash)
    const pointer = hash === -1 ? '' : ref.slice(hash + 1)
    if (id === '') return base + pointer
    const target = this.#known.get(id) ?? this.#known.get(`${id}#`)
    if (target === undefined) {
      throw new SchemaConversionError(this.#where, `has $ref "${ref}", which names no schema: add that schema with app.addSchema(), or give it an $id inside the route's schemas`)
    }
    return COMPONENTS + this.#component(typeof target.$id === 'string' ? target.$id : id, target) + pointer
  }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * A copy with only what JSON keeps: own enumerable string keys (TypeBox's symbols and
 * non-enumerable fields dropped), no functions or undefined. TypeBox 1.x's Type.Ref(schema)
 * keeps the schema under `$ref`, which the copy keeps for #ref.
 */
export function plainCopy (schema: unknown, where: string): unknown {
  let text: string | undefined
  try {
    text = JSON.stringify(schema)
  } catch (error) {
    throw new SchemaConversionError(where, `is not JSON: ${(error as Error).message}`)
  }
  return text === undefined ? {} : JSON.parse(text)
}

/** Every schema with an $id inside `node`, so that a `$ref` met before its target still resolves. */
function collectIds (node: unknown, into: Map<string, Record<string, unknown>>): void {
  if (Array.isArray(node)) {
    for (const item of node) collectIds(item, into)
  } else if (isObject(node)) {
    if (typeof node.$id === 'string' && !into.has(node.$id)) into.set(node.$id, node)
    for (const [key, value] of Object.entries(node)) {
      if (SCHEMA_MAPS.has(key) && isObject(value)) {
        for (const schema of Object.values(value)) collectIds(schema, into)
      } else if (!DATA_KEYWORDS.has(key)) {
        collectIds(value, into)
      }
    }
  }
}

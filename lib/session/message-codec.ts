// A route's typed messages: schema.message checks what clients send (JSON text frames) and
// schema.outbound shapes what sendJson() and broadcastJson() send. Both are compiled by the
// route's own compilers, through Fastify's public request.compileValidationSchema() and
// reply.compileSerializationSchema(): a compiler given to the route, the one the app
// installed (setValidatorCompiler, a type provider's), or Fastify's default (ajv with the
// app's ajv options and shared schemas, fast-json-stringify). They compile at app.ready(),
// so that a schema that does not compile fails there as an HTTP route's does; the route's
// first handshake compiles what could not be compiled then.
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaCompiler, FastifySerializerCompiler, preHandlerHookHandler } from 'fastify'
import { parse as parseJson } from 'secure-json-parse'
import { isThenable } from '../call-hook'
import { InvalidArgumentError, InvalidJsonMessageError, MessageSchemaBuildError, describe } from '../errors'

/** What a validator compiler returns: ajv's boolean with `errors`, a `{ value, error }` result, or a promise. */
type Validate = ((data: unknown, context?: object) => unknown) & { errors?: unknown, $async?: boolean, schemaEnv?: unknown }
type Serialize = (value: unknown) => string

/** A JSON text frame read against schema.message: its value, or the error that names what failed. */
export type ReadMessage = { valid: true, value: unknown } | { valid: false, error: Error }

/** What Fastify does with `__proto__` and `constructor.prototype` keys in JSON bodies. */
export interface PoisoningActions {
  onProtoPoisoning?: 'error' | 'remove' | 'ignore'
  onConstructorPoisoning?: 'error' | 'remove' | 'ignore'
}

/** The serialization of a value with no outbound schema: JSON.stringify, refusing what it cannot write (`name`: the argument's). */
export function stringify (value: unknown, name = 'value'): string {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (error) {
    // A BigInt, a cycle, a toJSON() that throws.
    throw new InvalidArgumentError(name, 'a JSON value', `${describe(value)} (${(error as Error).message})`)
  }
  if (typeof text !== 'string') throw new InvalidArgumentError(name, 'a JSON value', describe(value))
  return text
}

/** How a codec names its schemas and values in errors: a route's schema.message, or a message type's schema of `messages`. */
export interface CodecLabels {
  /** The schema checking what comes in ('schema.message'). */
  message: string
  /** The schema serializing what goes out ('schema.outbound'). */
  outbound: string
  /** The argument serialize() is given ('value'). */
  argument: string
  /** The checked value, as validation errors name it ('message'). */
  checked: string
}

const ROUTE_LABELS: CodecLabels = { message: 'schema.message', outbound: 'schema.outbound', argument: 'value', checked: 'message' }

export class MessageCodec {
  readonly #path: string
  readonly #labels: CodecLabels
  readonly #messageSchema: unknown
  readonly #outboundSchema: unknown
  readonly #union: TaggedUnion | null
  readonly #parseOptions: { protoAction: NonNullable<PoisoningActions['onProtoPoisoning']>, constructorAction: NonNullable<PoisoningActions['onConstructorPoisoning']> }
  #validate: Validate | null = null
  #serialize: Serialize | null = null
  /** A schema the compiler refused: the same answer for every handshake after the first. */
  #buildError: Error | null = null

  /** `messageSchema`, `outboundSchema`: undefined when the route has none. */
  constructor (path: string, messageSchema: unknown, outboundSchema: unknown, poisoning: PoisoningActions, labels: CodecLabels = ROUTE_LABELS) {
    this.#path = path
    this.#labels = labels
    this.#messageSchema = messageSchema
    this.#outboundSchema = outboundSchema
    this.#union = taggedUnion(messageSchema)
    // Fastify's defaults: a JSON body with either is refused.
    this.#parseOptions = { protoAction: poisoning.onProtoPoisoning ?? 'error', constructorAction: poisoning.onConstructorPoisoning ?? 'error' }
  }

  get readsMessages (): boolean {
    return this.#messageSchema !== undefined
  }

  /**
   * Makes the route's schemas compile at app.ready(), in an onReady hook of `instance` (the
   * route's): with the route's own compiler, else the instance's. Fastify sets its default
   * compilers up for an instance only once one of its routes has a schema to compile, so a
   * route with no other schema gets one that checks nothing (params: any object; a response
   * schema for status 101, which Fastify never serializes): `routeSchema` is the schema Fastify
   * gets, changed in place.
   */
  compileAtReady (instance: FastifyInstance, url: string, routeSchema: Record<string, unknown>, routeCompilers: { validatorCompiler?: unknown, serializerCompiler?: unknown }): void {
    if (this.#messageSchema === undefined && this.#outboundSchema === undefined) return
    const ownValidator = routeCompilers.validatorCompiler as FastifySchemaCompiler<unknown> | undefined
    const ownSerializer = routeCompilers.serializerCompiler as FastifySerializerCompiler<unknown> | undefined
    if (this.#messageSchema !== undefined && ownValidator === undefined && instance.validatorCompiler === undefined &&
      ['body', 'headers', 'querystring', 'params'].every((part) => routeSchema[part] === undefined)) {
      routeSchema.params = { type: 'object' }
    }
    if (this.#outboundSchema !== undefined && ownSerializer === undefined && instance.serializerCompiler === undefined && routeSchema.response === undefined) {
      routeSchema.response = { 101: {} }
    }
    const codec = this
    instance.addHook('onReady', function compileMessageSchemas (this: FastifyInstance, done) {
      done(codec.#compileWith(ownValidator ?? this.validatorCompiler, ownSerializer ?? this.serializerCompiler, url) ?? undefined)
    })
  }

  /** Compiles with compilers found without a request; the error that fails app.ready() when a schema does not compile. */
  #compileWith (validatorCompiler: FastifySchemaCompiler<unknown> | undefined, serializerCompiler: FastifySerializerCompiler<unknown> | undefined, url: string): Error | null {
    let part = this.#labels.message
    try {
      if (this.#messageSchema !== undefined && validatorCompiler !== undefined) {
        this.#validate = validatorCompiler({ schema: this.#messageSchema as object, method: 'GET', url, httpPart: 'body' }) as Validate
      }
      part = this.#labels.outbound
      if (this.#outboundSchema !== undefined && serializerCompiler !== undefined) {
        this.#serialize = serializerCompiler({ schema: this.#outboundSchema as object, method: 'GET', url, httpStatus: '200' }) as Serialize
      }
      return null
    } catch (error) {
      this.#buildError = new MessageSchemaBuildError(part, this.#path, (error as Error).message)
      this.#buildError.cause = error
      return this.#buildError
    }
  }

  /** The route's preHandler that compiles the schemas, in its first handshake (once they compiled, it only returns). */
  readonly compileHook: preHandlerHookHandler = (request, reply, done) => {
    done(this.compileFor(request, reply))
  }

  /** What compileHook does, for a hook that compiles several codecs: the error that answers the handshake, if any. */
  compileFor (request: FastifyRequest, reply: FastifyReply): Error | undefined {
    if (!this.#compiled) this.#buildError ??= this.#compile(request, reply) ?? null
    return this.#buildError ?? undefined
  }

  /** True once every schema it has is compiled. */
  get compiled (): boolean {
    return this.#compiled
  }

  get #compiled (): boolean {
    return (this.#messageSchema === undefined || this.#validate !== null) &&
      (this.#outboundSchema === undefined || this.#serialize !== null)
  }

  /**
   * Compiles what is not compiled yet; the error that answers the handshake (500) when a schema
   * does not compile. A message is validated as a body is: compilers that treat the parts of a
   * request differently (TypeBox's converts the querystring's strings, never a body) treat it so.
   */
  #compile (request: FastifyRequest, reply: FastifyReply): Error | undefined {
    let part = this.#labels.message
    try {
      if (this.#messageSchema !== undefined && this.#validate === null) {
        this.#validate = request.compileValidationSchema(this.#messageSchema as object, 'body') as Validate
      }
      part = this.#labels.outbound
      if (this.#outboundSchema !== undefined && this.#serialize === null) {
        this.#serialize = reply.compileSerializationSchema(this.#outboundSchema as Record<string, unknown>) as Serialize
      }
      return undefined
    } catch (error) {
      const built = new MessageSchemaBuildError(part, this.#path, (error as Error).message)
      built.cause = error
      return built
    }
  }

  /**
   * Parses a text frame as JSON (refusing prototype poisoning as Fastify does for bodies) and
   * validates it. A promise only when the validator is asynchronous (an `$async` schema).
   */
  read (text: string): ReadMessage | Promise<ReadMessage> {
    let value: unknown
    try {
      value = this.parse(text)
    } catch (error) {
      return { valid: false, error: validationError(error, undefined, null, this.#labels.checked) }
    }
    return this.check(value)
  }

  /** A text frame's JSON value, refusing prototype poisoning as Fastify does for bodies; throws FST_WS_ROOMS_INVALID_JSON. */
  parse (text: string): unknown {
    try {
      return parseJson(text, null, this.#parseOptions)
    } catch (error) {
      throw new InvalidJsonMessageError((error as Error).message)
    }
  }

  /** Validates a parsed value against the message schema (which must be there). A promise only for an asynchronous validator. */
  check (value: unknown): ReadMessage | Promise<ReadMessage> {
    const checked = this.#labels.checked
    // A root that ajv replaces (coercion, defaults) is written back to its parent; other
    // validators are called with the value alone, as Fastify calls them.
    const parent = { message: value }
    const validate = this.#validate!
    let result: unknown
    try {
      result = validate.schemaEnv === undefined ? validate(value) : validate(value, { parentData: parent, parentDataProperty: 'message' })
    } catch (error) {
      // A validator that throws: a recursive schema on a deeply nested value overflows the stack.
      const failed = new Error(`message could not be validated: ${(error as Error)?.message ?? String(error)}`, { cause: error })
      return { valid: false, error: validationError(failed, undefined, null, checked) }
    }
    if (isThenable(result)) {
      // ajv's asynchronous validators resolve with the value itself, which may well hold an
      // `error` or a `value` key; other compilers' resolve with what a synchronous one returns.
      const resolvesValue = this.#validate!.$async === true
      return (result as Promise<unknown>).then(
        (outcome) => resolvesValue ? { valid: true, value: parent.message } : this.#outcome(outcome, parent.message),
        (error: unknown) => ({ valid: false, error: validationError((error as { errors?: unknown }).errors ?? error, parent.message, this.#union, checked) })
      )
    }
    return this.#outcome(result, parent.message)
  }

  /** A validator's answer, read as Fastify reads it; `value`: the parsed value, as the validator left it. */
  #outcome (result: unknown, value: unknown): ReadMessage {
    if (result === false) return { valid: false, error: validationError(this.#validate!.errors, value, this.#union, this.#labels.checked) }
    // Custom compilers (TypeBox's for one) answer { value } or { error }, read as Fastify reads them.
    if (result !== null && typeof result === 'object') {
      const { error, value: checked } = result as { error?: unknown, value?: unknown }
      if (error) return { valid: false, error: validationError(error, value, this.#union, this.#labels.checked) }
      if (checked) return { valid: true, value: checked }
    }
    return { valid: true, value }
  }

  /** A value as JSON text, through the outbound schema's serializer when the route has one (a field, to be handed around). */
  readonly serialize = (value: unknown): string => {
    const serialize = this.#serialize
    if (serialize === null) return stringify(value)
    try {
      return serialize(value)
    } catch (error) {
      throw new InvalidArgumentError(this.#labels.argument, `a value that ${this.#labels.outbound} can serialize`, `${describe(value)} (${(error as Error).message})`)
    }
  }
}

/** An error in the shape Fastify gives validation errors: code, `validation`, `validationContext`. */
export function validationError (result: unknown, value: unknown, union: TaggedUnion | null, checked: string): Error {
  let error: Error & { code?: string, statusCode?: number, validation?: unknown, validationContext?: string }
  if (result instanceof Error) {
    error = result
  } else if (Array.isArray(result)) {
    error = new Error(explain(result as ValidationFault[], value, union).map((e) => `${checked}${e.instancePath ?? ''} ${e.message ?? 'is invalid'}`).join(', '))
    error.validation = result
  } else {
    error = new Error(`${checked} is invalid`)
  }
  error.statusCode ??= 400
  error.code ??= 'FST_ERR_VALIDATION'
  error.validationContext ??= 'message'
  return error
}

/** The part of ajv's ErrorObject read here; other validators' lists may have less. */
interface ValidationFault {
  instancePath?: string
  schemaPath?: string
  message?: string
}

/** A schema.message that is a union of objects told apart by one property's constant (TypeBox's Union of objects with a Literal `type`). */
interface TaggedUnion {
  keyword: 'anyOf' | 'oneOf'
  property: string
  /** Each branch's constant, by branch index. */
  tags: unknown[]
}

/** The tag of a union at the schema's root, or null when it has none. */
function taggedUnion (schema: unknown): TaggedUnion | null {
  if (schema === null || typeof schema !== 'object') return null
  const record = schema as Record<string, unknown>
  const keyword = Array.isArray(record.anyOf) ? 'anyOf' : Array.isArray(record.oneOf) ? 'oneOf' : null
  if (keyword === null) return null
  const branches = record[keyword] as unknown[]
  const constant = (branch: unknown, property: string): { found: boolean, value?: unknown } => {
    const field = (branch as { properties?: Record<string, { const?: unknown, enum?: unknown[] }> } | null)?.properties?.[property]
    if (field === undefined || field === null || typeof field !== 'object') return { found: false }
    if ('const' in field) return { found: true, value: field.const }
    if (Array.isArray(field.enum) && field.enum.length === 1) return { found: true, value: field.enum[0] }
    return { found: false }
  }
  const first = (branches[0] as { properties?: object } | null)?.properties ?? {}
  for (const property of Object.keys(first)) {
    const tags = branches.map((branch) => constant(branch, property))
    if (tags.every((tag) => tag.found)) return { keyword, property, tags: tags.map((tag) => tag.value) }
  }
  return null
}

/**
 * The errors a client can act on. A failed union lists every branch's errors, then its own:
 * for a tagged union, only the errors of the branch the message's tag names are kept, or,
 * when it names none, which tags there are.
 */
function explain (faults: ValidationFault[], value: unknown, union: TaggedUnion | null): ValidationFault[] {
  if (union === null) return faults
  const oneOf = `one of ${union.tags.map((candidate) => JSON.stringify(candidate)).join(', ')}`
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [{ instancePath: '', message: `must be an object whose "${union.property}" is ${oneOf}` }]
  }
  if (!Object.hasOwn(value, union.property)) return [{ instancePath: '', message: `must have required property '${union.property}' (${oneOf})` }]
  const tag = (value as Record<string, unknown>)[union.property]
  const branch = union.tags.findIndex((candidate) => candidate === tag)
  if (branch === -1) return [{ instancePath: `/${union.property}`, message: `must be ${oneOf}` }]
  const prefix = `#/${union.keyword}/${branch}/`
  const own = faults.filter((fault) => fault.schemaPath?.startsWith(prefix) === true)
  return own.length > 0 ? own : faults
}

// A route's typed messages: schema.message checks what clients send (JSON text frames) and
// schema.outbound shapes what sendJson() and broadcastJson() send. Both are compiled by the
// route's own compilers, through Fastify's public request.compileValidationSchema() and
// reply.compileSerializationSchema(): a compiler given to the route, the one the app
// installed (setValidatorCompiler, a type provider's), or Fastify's default (ajv with the
// app's ajv options and shared schemas, fast-json-stringify). Those compilers are reachable
// from a request only, so they run once, in the route's first handshake, before its upgrade.
import type { FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify'
import { parse as parseJson } from 'secure-json-parse'
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

export class MessageCodec {
  readonly #path: string
  readonly #messageSchema: unknown
  readonly #outboundSchema: unknown
  readonly #parseOptions: { protoAction: NonNullable<PoisoningActions['onProtoPoisoning']>, constructorAction: NonNullable<PoisoningActions['onConstructorPoisoning']> }
  #validate: Validate | null = null
  #serialize: Serialize | null = null
  /** A schema the compiler refused: the same answer for every handshake after the first. */
  #buildError: Error | null = null

  /** `messageSchema`, `outboundSchema`: undefined when the route has none. */
  constructor (path: string, messageSchema: unknown, outboundSchema: unknown, poisoning: PoisoningActions) {
    this.#path = path
    this.#messageSchema = messageSchema
    this.#outboundSchema = outboundSchema
    // Fastify's defaults: a JSON body with either is refused.
    this.#parseOptions = { protoAction: poisoning.onProtoPoisoning ?? 'error', constructorAction: poisoning.onConstructorPoisoning ?? 'error' }
  }

  get readsMessages (): boolean {
    return this.#messageSchema !== undefined
  }

  /** The route's preHandler that compiles the schemas, in its first handshake (once they compiled, it only returns). */
  readonly compileHook: preHandlerHookHandler = (request, reply, done) => {
    if (!this.#compiled) this.#buildError ??= this.#compile(request, reply) ?? null
    done(this.#buildError ?? undefined)
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
    let part = 'message'
    try {
      if (this.#messageSchema !== undefined && this.#validate === null) {
        this.#validate = request.compileValidationSchema(this.#messageSchema as object, 'body') as Validate
      }
      part = 'outbound'
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
      value = parseJson(text, null, this.#parseOptions)
    } catch (error) {
      return { valid: false, error: validationError(new InvalidJsonMessageError((error as Error).message)) }
    }
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
      return { valid: false, error: validationError(failed) }
    }
    if (result !== null && typeof (result as Promise<unknown>)?.then === 'function') {
      // ajv's asynchronous validators resolve with the value itself, which may well hold an
      // `error` or a `value` key; other compilers' resolve with what a synchronous one returns.
      const resolvesValue = this.#validate!.$async === true
      return (result as Promise<unknown>).then(
        (outcome) => resolvesValue ? { valid: true, value: parent.message } : this.#outcome(outcome, parent.message),
        (error: unknown) => ({ valid: false, error: validationError((error as { errors?: unknown }).errors ?? error) })
      )
    }
    return this.#outcome(result, parent.message)
  }

  /** A validator's answer, read as Fastify reads it; `value`: the parsed value, as the validator left it. */
  #outcome (result: unknown, value: unknown): ReadMessage {
    if (result === false) return { valid: false, error: validationError(this.#validate!.errors) }
    // Custom compilers (TypeBox's for one) answer { value } or { error }, read as Fastify reads them.
    if (result !== null && typeof result === 'object') {
      const { error, value: checked } = result as { error?: unknown, value?: unknown }
      if (error) return { valid: false, error: validationError(error) }
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
      throw new InvalidArgumentError('value', 'a value that schema.outbound can serialize', `${describe(value)} (${(error as Error).message})`)
    }
  }
}

/** An error in the shape Fastify gives validation errors: code, `validation`, `validationContext`. */
function validationError (result: unknown): Error {
  let error: Error & { code?: string, statusCode?: number, validation?: unknown, validationContext?: string }
  if (result instanceof Error) {
    error = result
  } else if (Array.isArray(result)) {
    error = new Error(result.map((e: { instancePath?: string, message?: string }) => `message${e.instancePath ?? ''} ${e.message ?? 'is invalid'}`).join(', '))
    error.validation = result
  } else {
    error = new Error('message is invalid')
  }
  error.statusCode ??= 400
  error.code ??= 'FST_ERR_VALIDATION'
  error.validationContext ??= 'message'
  return error
}

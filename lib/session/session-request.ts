// What a session knows of its handshake (the request, its query, headers and params, the
// client's address) and the attributes the app gives it: the part of a session that is plain
// data, under the session's queue and its socket (./session).
import type { FastifyRequest } from 'fastify'
import { InvalidArgumentError, describe } from '../errors'
import { SessionQueue } from './queue'
import { assertJsonAttribute } from '../resume/portable'

/** Gives a session the attributes of the one it resumes. */
export const kAdoptAttributes = Symbol('fastify-websocket-rooms.adoptAttributes')

export abstract class SessionRequest extends SessionQueue {
  readonly request: FastifyRequest
  readonly #remoteAddr: string
  #attributes: Map<string, unknown> | null = null
  #parameters: URLSearchParams | null = null
  /** Attributes must be JSON: the session may resume on another server. */
  readonly #jsonAttributes: boolean

  constructor (request: FastifyRequest, jsonAttributes: boolean) {
    super()
    this.request = request
    this.#remoteAddr = remoteAddressOf(request)
    this.#jsonAttributes = jsonAttributes
  }

  get query (): any { return this.request.query }
  get headers (): any { return this.request.headers }
  get params (): any { return this.request.params }

  getParameter (name: string): string | null {
    if (typeof name !== 'string') throw new InvalidArgumentError('name', 'a string', describe(name))
    if (this.#parameters === null) {
      const url = this.request.url
      const at = url.indexOf('?')
      this.#parameters = new URLSearchParams(at === -1 ? '' : url.slice(at + 1))
    }
    return this.#parameters.get(name)
  }

  getHeader (name: string): string | null {
    if (typeof name !== 'string') throw new InvalidArgumentError('name', 'a string', describe(name))
    const headers = this.request.headers
    const key = name.toLowerCase()
    // Own headers only: `__proto__` or `constructor` is no header.
    if (!Object.hasOwn(headers, key)) return null
    const value = headers[key]
    if (value === undefined) return null
    return Array.isArray(value) ? value.join(', ') : value
  }

  getRequestPath (): string {
    const url = this.request.url
    const at = url.indexOf('?')
    return at === -1 ? url : url.slice(0, at)
  }

  getRemoteAddr (): string {
    return this.#remoteAddr
  }

  setAttribute (key: string, value: unknown): void {
    if (typeof key !== 'string') throw new InvalidArgumentError('key', 'a string', describe(key))
    if (this.#jsonAttributes) assertJsonAttribute(key, value)
    ;(this.#attributes ??= new Map()).set(key, value)
  }

  [kAdoptAttributes] (attributes: Array<[string, unknown]>): void {
    this.#attributes = attributes.length === 0 ? null : new Map(attributes)
  }

  getAttribute (key: string): any {
    return this.#attributes?.get(key)
  }

  getAttributes (): Record<string, any> {
    return this.#attributes === null ? {} : Object.fromEntries(this.#attributes)
  }
}

function remoteAddressOf (request: FastifyRequest): string {
  // request.ip reads the raw socket, which injectWS requests lack unless the test gives one.
  return request.raw.socket === undefined ? '' : (request.ip ?? '')
}

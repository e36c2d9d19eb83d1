// Shared compression (the option compression: 'shared'): a broadcast is deflated once and the
// same compressed frame written to every member that negotiated permessage-deflate, as
// uWebSockets' shared compressor does. That is sound because the server answers every offer
// with server_no_context_takeover (RFC 7692 7.1.1.1): each message is deflated with a fresh
// context, so it deflates to the same bytes for every member with the same window size.
//
// This reads ws internals: a socket's PerMessageDeflate (_extensions['permessage-deflate']),
// its negotiated `params`, its `_threshold` and its `_options.zlibDeflateOptions`, so the
// shared frame is what ws itself would have sent. Their meaning is probed once per class
// (probeDeflate); where it is not as expected the session's broadcasts go through ws.send(),
// which compresses per member, and that is said once (./fallbacks).
import { constants, deflateRawSync, type ZlibOptions } from 'node:zlib'
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import { InvalidOptionError, describe } from '../errors'
import { BINARY, buildFrame, type Encoded } from './frame'
import { reportFallback } from './fallbacks'

const EXTENSION = 'permessage-deflate'
/** The ws server option that makes the server's answer say server_no_context_takeover. */
const NO_CONTEXT_TAKEOVER = 'serverNoContextTakeover'

interface DeflateInternals {
  params?: { server_no_context_takeover?: unknown, server_max_window_bits?: unknown } | null
  _threshold?: unknown
  _options?: { zlibDeflateOptions?: ZlibOptions }
}
type DeflateClass = new (...args: any[]) => unknown

/**
 * The ws server's perMessageDeflate for compression: 'shared': the user's own, with
 * serverNoContextTakeover set. A contradiction (compression off, or context takeover asked
 * for) fails the registration, naming the option.
 */
export function sharedPerMessageDeflate (perMessageDeflate: unknown): Record<string, unknown> {
  const name = 'websocketOptions.perMessageDeflate'
  if (perMessageDeflate === undefined || perMessageDeflate === true) return { [NO_CONTEXT_TAKEOVER]: true }
  if (perMessageDeflate === null || typeof perMessageDeflate !== 'object' || Array.isArray(perMessageDeflate)) {
    throw new InvalidOptionError(name, 'unset, true or an object with compression: \'shared\' (which needs permessage-deflate)', describe(perMessageDeflate))
  }
  const own = perMessageDeflate as Record<string, unknown>
  const takeover = own[NO_CONTEXT_TAKEOVER]
  if (takeover !== undefined && takeover !== true) {
    throw new InvalidOptionError(`${name}.${NO_CONTEXT_TAKEOVER}`, 'unset or true with compression: \'shared\' (a compressed broadcast is shared only when the server keeps no context between messages)', describe(takeover))
  }
  return { ...own, [NO_CONTEXT_TAKEOVER]: true }
}

/** Each PerMessageDeflate class probed: true when its fields mean what this module reads. */
const probed = new WeakMap<object, boolean>()

/**
 * Learns whether a ws PerMessageDeflate class keeps its threshold, its zlib options and the
 * negotiated parameters where this module reads them: one is made as a server and accepts an
 * offer, as ws's server does.
 */
export function probeDeflate (PerMessageDeflate: DeflateClass): boolean {
  const zlibDeflateOptions = { level: 1 }
  const options = { [NO_CONTEXT_TAKEOVER]: true, threshold: 7, zlibDeflateOptions, isServer: true, maxPayload: 0 }
  try {
    const deflate = new PerMessageDeflate(options, true, 0) as DeflateInternals & { accept (offers: unknown): unknown }
    deflate.accept([{ server_max_window_bits: ['10'] }])
    const params = deflate.params
    return deflate._threshold === 7 && deflate._options?.zlibDeflateOptions === zlibDeflateOptions &&
      params?.server_no_context_takeover === true && params.server_max_window_bits === 10
  } catch {
    return false
  }
}

/**
 * What one setting of the server's deflate (zlib options, window size, threshold) makes of
 * a broadcast: its compressed frame, built once per message and kept on the Encoded.
 */
export class SharedDeflate {
  readonly #zlibOptions: ZlibOptions
  readonly #threshold: number

  constructor (zlibOptions: ZlibOptions | undefined, windowBits: number, threshold: number) {
    // As ws: its zlib options with the negotiated window; a sync flush, whose 4-byte tail
    // (00 00 ff ff) is then removed (RFC 7692 7.2.1).
    this.#zlibOptions = { ...zlibOptions, windowBits, finishFlush: constants.Z_SYNC_FLUSH }
    this.#threshold = threshold
  }

  matches (windowBits: number, threshold: number): boolean {
    return this.#zlibOptions.windowBits === windowBits && this.#threshold === threshold
  }

  /** The frame to write for this message: compressed with RSV1 set, or plain below the threshold (as ws). */
  frameOf (encoded: Encoded): Buffer[] {
    const data = encoded.data
    if (data.length < this.#threshold) return encoded.frame
    const deflated = encoded.deflated
    if (deflated !== null && deflated.by === this) return deflated.frame
    let frame = deflated?.others?.get(this)
    if (frame === undefined) {
      const compressed = deflateRawSync(data, this.#zlibOptions)
      const payload = compressed.subarray(0, compressed.length - 4)
      frame = buildFrame(payload, 0xc0 | (encoded.options === BINARY ? 0x2 : 0x1)) // FIN, RSV1
      if (deflated === null) encoded.deflated = { by: this, frame, others: null }
      else (deflated.others ??= new Map()).set(this, frame)
    }
    return frame
  }
}

/**
 * The settings in use, by the server's zlib options (one object for all of a server's sockets:
 * ws copies its perMessageDeflate options shallowly), then by window size and threshold.
 */
const deflates = new WeakMap<object, SharedDeflate[]>()
const NO_OPTIONS = {}

function sharedDeflate (zlibOptions: ZlibOptions | undefined, windowBits: number, threshold: number): SharedDeflate {
  const key = zlibOptions ?? NO_OPTIONS
  let list = deflates.get(key)
  if (list === undefined) deflates.set(key, (list = []))
  let deflate = list.find((candidate) => candidate.matches(windowBits, threshold))
  if (deflate === undefined) {
    deflate = new SharedDeflate(zlibOptions, windowBits, threshold)
    list.push(deflate)
  }
  return deflate
}

/**
 * The shared deflate for a socket that negotiated permessage-deflate with
 * server_no_context_takeover; null when it negotiated none, when the server keeps a context
 * (an app's own @fastify/websocket without serverNoContextTakeover), or when ws's internals
 * are not as expected: its broadcasts then go through ws.send().
 */
export function sharedDeflateOf (socket: WebSocket, log: FastifyBaseLogger): SharedDeflate | null {
  const deflate = (socket as unknown as { _extensions?: Record<string, DeflateInternals> })._extensions?.[EXTENSION]
  if (deflate === undefined) return null
  const Class = deflate.constructor
  if (!probed.has(Class)) probed.set(Class, probeDeflate(Class as DeflateClass))
  if (probed.get(Class) !== true) {
    reportFallback(log, 'ws\'s permessage-deflate internals are not as expected; compressed broadcasts go through ws.send(), deflated once per member')
    return null
  }
  const params = deflate.params
  if (params?.server_no_context_takeover !== true) return null
  const bits = params.server_max_window_bits
  const windowBits = typeof bits === 'number' ? bits : constants.Z_DEFAULT_WINDOWBITS
  return sharedDeflate(deflate._options?.zlibDeflateOptions, windowBits, deflate._threshold as number)
}

/** True when a ws server (an app's own @fastify/websocket) answers permessage-deflate with server_no_context_takeover. */
export function serverSharesDeflate (server: unknown): boolean {
  const options = (server as { options?: { perMessageDeflate?: unknown } } | undefined)?.options
  const perMessageDeflate = options?.perMessageDeflate
  return perMessageDeflate !== null && typeof perMessageDeflate === 'object' && (perMessageDeflate as Record<string, unknown>)[NO_CONTEXT_TAKEOVER] === true
}

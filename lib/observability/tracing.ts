// OpenTelemetry tracing (option tracing), through @opentelemetry/api, whose SDK the app sets
// up: a span per handler run, child of the handshake's context (the active one when the app
// traces its HTTP requests, else the `traceparent` header or query parameter), and, with
// redisAdapter, the trace context carried in the cluster's packets, so that another server's
// delivery of a broadcast is a span linked to the one that sent it.
import type * as Api from '@opentelemetry/api'
import type { ClusterTracing } from '../rooms/port'
import { isThenable } from '../call-hook'
import { channels, type HandlerRunContext, type SessionOpenEvent } from './channels'
import type { HandlerTracer } from './handler-run'
import { loadPeer } from './settings'

/** A W3C traceparent: version, trace id, parent id, flags (version ff is invalid). */
const TRACEPARENT = /^(?!ff)[\da-f]{2}-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})(?:-|$)/

export class Tracing implements HandlerTracer, ClusterTracing {
  readonly #api: typeof Api
  readonly #tracer: Api.Tracer
  readonly #nodeId: string
  /** Each session's parent context: its handshake's. */
  readonly #parents = new WeakMap<object, Api.Context>()
  readonly #onOpen = (message: unknown): void => {
    const event = message as SessionOpenEvent
    if (event.nodeId === this.#nodeId) this.#parents.set(event.session, this.#parentOf(event.session))
  }

  constructor (nodeId: string, version: string) {
    this.#api = loadPeer<typeof Api>('@opentelemetry/api', 'tracing')
    this.#tracer = this.#api.trace.getTracer('fastify-websocket-rooms', version)
    this.#nodeId = nodeId
    channels.sessionOpen.subscribe(this.#onOpen)
  }

  close (): void {
    channels.sessionOpen.unsubscribe(this.#onOpen)
  }

  /** The active context when it has a span (the app traces its HTTP requests), else the handshake's traceparent. */
  #parentOf (session: SessionOpenEvent['session']): Api.Context {
    const { context, trace, ROOT_CONTEXT } = this.#api
    const active = context.active()
    if (trace.getSpan(active) !== undefined) return active
    const remote = this.#spanContext(session.getHeader('traceparent') ?? session.getParameter('traceparent'))
    return remote === null ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, remote)
  }

  #spanContext (traceparent: string | null): Api.SpanContext | null {
    const match = traceparent === null ? null : TRACEPARENT.exec(traceparent)
    if (match === null) return null
    const spanContext = { traceId: match[1]!, spanId: match[2]!, traceFlags: parseInt(match[3]!, 16) & 1, isRemote: true }
    return this.#api.isSpanContextValid(spanContext) ? spanContext : null
  }

  run (run: HandlerRunContext, session: object, call: () => unknown): unknown {
    const { context, trace, SpanKind, SpanStatusCode } = this.#api
    const parent = this.#parents.get(session) ?? context.active()
    const attributes: Api.Attributes = { 'websocket.route': run.route, 'websocket.event': run.event, 'websocket.session_id': run.sessionId }
    if (run.type !== undefined) attributes['websocket.message_type'] = run.type
    const span = this.#tracer.startSpan(`websocket ${run.event} ${run.route}`, { kind: SpanKind.SERVER, attributes }, parent)
    const failed = (error: unknown): void => {
      span.recordException(error instanceof Error ? error : String(error))
      span.setStatus({ code: SpanStatusCode.ERROR })
      span.end()
    }
    return context.with(trace.setSpan(parent, span), () => {
      let result: unknown
      try {
        result = call()
      } catch (error) {
        failed(error)
        throw error
      }
      if (!isThenable(result)) {
        span.end()
        return result
      }
      return result.then((value) => {
        span.end()
        return value
      }, (error: unknown) => {
        failed(error)
        throw error
      })
    })
  }

  current (): string | null {
    const span = this.#api.trace.getSpan(this.#api.context.active())
    if (span === undefined) return null
    const { traceId, spanId, traceFlags } = span.spanContext()
    if (!this.#api.isSpanContextValid({ traceId, spanId, traceFlags })) return null
    return `00-${traceId}-${spanId}-0${traceFlags & 1}`
  }

  delivered (traceparent: string, room: string, deliver: () => void): void {
    const { context, trace, SpanKind, ROOT_CONTEXT } = this.#api
    const remote = this.#spanContext(traceparent)
    const span = this.#tracer.startSpan('websocket deliver', {
      kind: SpanKind.CONSUMER,
      attributes: { 'websocket.room': room },
      links: remote === null ? [] : [{ context: remote }]
    }, ROOT_CONTEXT)
    try {
      context.with(trace.setSpan(ROOT_CONTEXT, span), deliver)
    } finally {
      span.end()
    }
  }
}

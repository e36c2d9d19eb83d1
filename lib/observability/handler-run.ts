// A handler run, traced: the TracingChannel's events (start, end, and asyncStart/asyncEnd when
// the handler returns a promise, error when it throws or rejects) and, with tracing: true, the
// OpenTelemetry span that is the handler's active context. The session calls it only when
// someone listens (handlerRuns.active): otherwise a handler is called as it is.
import { isThenable } from '../call-hook'
import { handlerRun, type HandlerRunContext } from './channels'

/** Runs a handler inside the app's tracer (an OpenTelemetry span); see ./tracing. */
export interface HandlerTracer {
  run (context: HandlerRunContext, session: object, run: () => unknown): unknown
}

/** One instance's view of the handler runs: whether to trace them, and its tracer. */
export class HandlerRuns {
  readonly nodeId: string
  tracer: HandlerTracer | null = null

  constructor (nodeId: string) {
    this.nodeId = nodeId
  }

  /** Someone listens: the tracer, or a subscriber of the TracingChannel (the metrics, an APM). */
  get active (): boolean {
    return this.tracer !== null || handlerRun.hasSubscribers
  }

  /**
   * Runs `run` as the handler of `event`. `type` is the message's type, for routes that
   * dispatch messages by type (undefined otherwise): such a route passes it here.
   */
  run (session: { readonly id: string }, route: string, event: HandlerRunContext['event'], type: string | undefined, run: () => unknown): unknown {
    const context: HandlerRunContext = { nodeId: this.nodeId, route, sessionId: session.id, event, type }
    const tracer = this.tracer
    if (!handlerRun.hasSubscribers) return tracer!.run(context, session, run)
    const inner = tracer === null ? run : () => tracer.run(context, session, run)
    return handlerRun.start.runStores(context, traced, undefined, context, inner)
  }
}

/** The TracingChannel protocol around a call that may return a promise. */
function traced (context: HandlerRunContext, run: () => unknown): unknown {
  let result: unknown
  try {
    result = run()
  } catch (error) {
    context.error = error
    handlerRun.error.publish(context)
    throw error
  } finally {
    if (!isThenable(result)) context.result = result
    handlerRun.end.publish(context)
  }
  if (!isThenable(result)) return result
  return result.then((value) => {
    context.result = value
    handlerRun.asyncStart.publish(context)
    handlerRun.asyncEnd.publish(context)
    return value
  }, (error: unknown) => {
    context.error = error
    handlerRun.error.publish(context)
    handlerRun.asyncStart.publish(context)
    handlerRun.asyncEnd.publish(context)
    throw error
  })
}

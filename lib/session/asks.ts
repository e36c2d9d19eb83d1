// session.ask(): the server's requests to a client, each waiting for the client's reply
// ({"type":"reply","id":"s1",...}) until its timeout or the session's end. Kept beside the
// session rather than in it: few sessions ever ask, and a session that does not pays nothing.
// Server ids are "s1", "s2"...: a client's reply is told from a client's request by its type
// ("reply"), so a client's own ids, whatever they look like, never meet these.
import { ClientError, InvalidArgumentError, RequestTimeoutError, SessionClosedError, TooManyAsksError, describe } from '../errors'

/** Asks of one session waiting for their answer, past which ask() rejects. */
export const MAX_PENDING_ASKS = 1000
export const DEFAULT_ASK_TIMEOUT = 10_000
/** setTimeout's largest delay. */
const MAX_TIMEOUT = 2 ** 31 - 1

interface Pending {
  type: string
  resolve: (value: unknown) => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout
}

interface SessionAsks {
  next: number
  readonly byId: Map<string, Pending>
}

const asks = new WeakMap<object, SessionAsks>()

/** The timeout of ask()'s options, checked. */
export function askTimeout (options: unknown): number {
  if (options === undefined) return DEFAULT_ASK_TIMEOUT
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'an object ({ timeout })', describe(options))
  const timeout = (options as { timeout?: unknown }).timeout
  if (timeout === undefined) return DEFAULT_ASK_TIMEOUT
  if (typeof timeout !== 'number' || !(timeout > 0) || timeout > MAX_TIMEOUT) throw new InvalidArgumentError('options.timeout', `a number of ms over 0 and at most ${MAX_TIMEOUT}`, describe(timeout))
  return timeout
}

/**
 * Sends an ask with `send(id)` (which throws for a bad type or data, before anything is
 * pending) and resolves with the data of the client's reply.
 */
export function ask (session: object, open: boolean, type: string, timeout: number, send: (id: string) => void): Promise<unknown> {
  if (!open) return Promise.reject(new SessionClosedError(JSON.stringify(type)))
  let state = asks.get(session)
  if (state === undefined) asks.set(session, state = { next: 0, byId: new Map() })
  if (state.byId.size >= MAX_PENDING_ASKS) return Promise.reject(new TooManyAsksError(MAX_PENDING_ASKS))
  // Counted once sent: an ask that send() refuses takes no id.
  const id = `s${state.next + 1}`
  send(id)
  state.next++
  const byId = state.byId
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      byId.delete(id)
      reject(new RequestTimeoutError(JSON.stringify(type), timeout))
    }, timeout)
    byId.set(id, { type, resolve, reject, timer })
  })
}

/** The client's reply to ask `id`: true when an ask was waiting for it. */
export function answer (session: object, id: string | number, data: unknown, error: unknown): boolean {
  const pending = typeof id === 'string' ? asks.get(session)?.byId.get(id) : undefined
  if (pending === undefined) return false
  asks.get(session)!.byId.delete(id as string)
  clearTimeout(pending.timer)
  // `error: null` is how many serializers write "no error".
  if (error === undefined || error === null) {
    pending.resolve(data === undefined ? null : data)
  } else {
    const { code, message } = (error !== null && typeof error === 'object' ? error : {}) as { code?: unknown, message?: unknown }
    const failure = new ClientError(JSON.stringify(pending.type), typeof message === 'string' ? message : describe(error))
    Object.assign(failure, { clientCode: typeof code === 'string' ? code : null })
    pending.reject(failure)
  }
  return true
}

/** The session has ended (or is closing): every ask still waiting rejects with FST_WS_ROOMS_CLOSED. */
export function endAsks (session: object): void {
  const state = asks.get(session)
  if (state === undefined || state.byId.size === 0) return
  const pending = [...state.byId.values()]
  state.byId.clear()
  for (const { type, reject, timer } of pending) {
    clearTimeout(timer)
    reject(new SessionClosedError(JSON.stringify(type)))
  }
}

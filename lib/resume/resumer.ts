// Resume, for one Fastify instance: each session of a resuming route gets a token; a session
// whose connection is lost is kept (in its rooms, what it is sent kept for it) for `window`
// ms; a handshake that brings its token within the window takes it over, and the new
// connection is that session again; otherwise it ends, and its token tells why a resume is
// refused. Where tokens live is the store's (./store); the session does the rest through the
// symbols below. Across servers (a store with a node id), a token of another server is taken
// over from there (./arrival), this server serves such takeovers of its own sessions, and
// app.close() parks its kept sessions in the store rather than ending them.
//
// Over 400 lines, for a reason: a session's resume state (kept, claimed, handed over, parked)
// changes only here, and split, each part would reach into the others' maps of sessions.
//
// Over 300 lines, for a reason: the states of one instance's sessions (kept, claimed, handed
// over, parked) are one map and one set, which every path here reads and writes.
import { kSendEncoded, type Member } from '../rooms/member'
import type { Encoded } from '../transport/frame'
import { within } from '../within'
import { Keeper } from './keeper'
import { isTokenShaped, newToken, nodeOfToken } from './token'
import { packAttributes, packKept, unpackAttributes } from './portable'
import { Arrivals, type Replay, type ResumeHistory } from './arrival'
import type { Portable, PortableRoom, ResumeFailure, ResumeStore, Taken } from './store'

export type { ResumeFailure }

/** The resume option, checked. */
export interface ResumeOptions {
  /** How long a dropped session is kept, in ms. */
  window: number
  /** The handshake's query parameter that carries the token. */
  param: string
}

/** Ends a kept session for good: onClose runs (with the code of the drop), it leaves its rooms. */
export const kEnd = Symbol('fastify-websocket-rooms.end')
/** A new connection brings this live session's token: cut its connection as lost, and keep it. */
export const kTakeOver = Symbol('fastify-websocket-rooms.takeOver')
/** Another session object is this session now: done, without leaving its rooms or running onClose. */
export const kHandOver = Symbol('fastify-websocket-rooms.handOver')

export interface Resumable extends Member {
  getAttributes (): Record<string, unknown>
  [kEnd] (code: number, reason: string): void
  [kTakeOver] (): void
  [kHandOver] (): void
}

/** What the rooms do for a resume. */
export interface ResumeRooms<S> {
  /** `member` takes the place of `old` in every room, with its presence info, with nothing told. */
  replace (old: S, member: S): void
  /** A member resumed from another server: in these rooms with this info, nothing told to onPresence. */
  adopt (member: S, names: string[], info: string): void
  /** A member another server took over: out of its rooms, nothing told to onPresence. */
  release (member: S): void
  /** Tells the leaves of a member another server let go of, whose resume here was then refused. */
  presenceLeft (name: string, entries: Array<{ sessionId: string, nodeId: string, info: string }>): void
  roomsOf (member: S): string[]
  infoOf (member: S): string
  readonly roomHistory: ResumeHistory<S>
}

/**
 * What a handshake's token gave: the session it resumes (kept here, or the state of one taken
 * over from another server, with what its rooms published meanwhile), or why not (failure
 * null: no token was given).
 */
export interface Claimed<S> {
  session: S | null
  portable: Portable | null
  /** With portable: the node id of the server it came from. */
  from: string | null
  replay: Replay[] | null
  failure: ResumeFailure | null
}

/** What a resumed session is, before it starts: its id and attributes. */
export interface Identity {
  id: string
  attributes: Array<[string, unknown]>
}

interface State {
  token: string
  routeKey: string
  resumed: boolean
  failure: ResumeFailure | null
  /** maxBackpressure of the session's route: the most kept for it while away, in bytes. */
  bound: number
  /** What is sent to it since its connection was lost; null while connected. */
  keeper: Keeper | null
  /** Dropped: when its window ends (Date.now() ms), its timer, and the close it dropped with. */
  deadline: number
  timer: NodeJS.Timeout | null
  code: number
  reason: string
  /** Ended with its token naming a failure, which stays for the window. */
  refused: boolean
  /** Ended for good (closed, refused, abandoned): a takeover of it finds nothing to take. */
  ended: boolean
}

const NO_RESUME: Claimed<never> = Object.freeze({ session: null, portable: null, from: null, replay: null, failure: null })
const UNKNOWN: Claimed<never> = refusal('unknown')
const LOST: Claimed<never> = refusal('lost')

function refusal (failure: ResumeFailure): Claimed<never> {
  return Object.freeze({ session: null, portable: null, from: null, replay: null, failure })
}

const LOST_TAKEN: Taken = Object.freeze({ portable: null, failure: 'lost' as const })
const UNKNOWN_TAKEN: Taken = Object.freeze({ portable: null, failure: 'unknown' as const })

export class Resumer<S extends Resumable> {
  readonly window: number
  readonly param: string
  readonly #store: ResumeStore<S>
  readonly #rooms: ResumeRooms<S>
  readonly #states = new WeakMap<S, State>()
  /** The sessions kept in this process, waiting for their client. */
  readonly #dropped = new Set<S>()
  /** Handshakes waiting for a live session they take over to be dropped. */
  readonly #takeovers = new Map<S, Array<() => void>>()
  /** Sessions resumed from another server, and what they still wait for before onOpen. */
  readonly #arrivals: Arrivals<S>
  /** Tokens of the sessions this instance parked in the store at its close: another server takes them there. */
  readonly #parked = new Set<string>()
  #closed = false
  /** park() has run: a session dropped after it ends, as without a store across servers. */
  #afterPark = false
  /** park()'s write to the store: true once the sessions are there. */
  #parking: Promise<boolean> | boolean = false

  constructor (options: ResumeOptions, store: ResumeStore<S>, rooms: ResumeRooms<S>) {
    this.window = options.window
    this.param = options.param
    this.#store = store
    this.#rooms = rooms
    this.#arrivals = new Arrivals(rooms, store)
    store.serve(this.#handOver)
  }

  /** Sessions may resume on another server: their attributes must be JSON. */
  get acrossServers (): boolean {
    return this.#store.nodeId !== null
  }

  tokenOf (session: S): string | null {
    const state = this.#states.get(session)
    return state === undefined || state.refused ? null : state.token
  }

  resumedOf (session: S): boolean {
    return this.#states.get(session)?.resumed ?? false
  }

  failureOf (session: S): ResumeFailure | null {
    return this.#states.get(session)?.failure ?? null
  }

  /**
   * A session of a resuming route starts, fresh or resuming `claimed.session`: it gets its
   * token, and a resumed one takes the old one's place in its rooms and is sent, before
   * anything else, what was kept for it.
   */
  start (session: S, routeKey: string, claimed: Claimed<S> | null, bound: number): void {
    const old = claimed?.session ?? null
    const token = newToken(this.#store.nodeId)
    const failure = claimed?.failure ?? null
    const resumed = old !== null || claimed?.portable != null
    this.#states.set(session, { token, routeKey, resumed, failure, bound, keeper: null, deadline: 0, timer: null, code: 0, reason: '', refused: false, ended: false })
    this.#store.set(token, routeKey, { state: 'live', session }, Infinity)
    if (claimed?.portable != null) this.#arrivals.arrive(session, claimed.portable, claimed.replay!)
    if (old === null) return
    const kept = this.#states.get(old)!.keeper!.take()
    old[kHandOver]()
    this.#rooms.replace(old, session)
    for (const encoded of kept) session[kSendEncoded](encoded, true)
  }

  /** The id and attributes of the session a claim resumes; null for a fresh one. */
  identityOf (claimed: Claimed<S> | null): Identity | null {
    if (claimed?.session != null) return { id: claimed.session.id, attributes: Object.entries(claimed.session.getAttributes()) }
    if (claimed?.portable != null) return { id: claimed.portable.id, attributes: unpackAttributes(claimed.portable.attributes) }
    return null
  }

  /** Runs onOpen once a session resumed from another server has been sent what its rooms published meanwhile. */
  opening (session: S, onOpen: (session: S) => unknown): unknown {
    return this.#arrivals.opening(session, onOpen)
  }

  /** The session's connection is lost (or being cut to be kept): what it is sent from now on is kept for it. */
  keeping (session: S): void {
    const state = this.#states.get(session)!
    state.keeper ??= new Keeper(state.bound)
  }

  keep (session: S, encoded: Encoded): void {
    const state = this.#states.get(session)!
    const keeper = state.keeper!
    keeper.keep(encoded)
    if (!keeper.whole && this.#dropped.has(session)) this.#refuse(session, state, 'overflow')
  }

  /**
   * The session's disconnect came through its queue: it waits for its client, `window` ms at
   * most. False when it cannot (too much was sent to it already, or the instance is closing):
   * then it ends now, as without resume.
   */
  drop (session: S, code: number, reason: string): boolean {
    const state = this.#states.get(session)!
    // A closing instance keeps what it can park in the store (see park()).
    if (this.#closed && (!this.acrossServers || this.#afterPark)) return false
    state.code = code
    state.reason = reason
    if (!state.keeper!.whole) {
      this.#fail(state, 'overflow')
      return false
    }
    state.deadline = Date.now() + this.window
    state.timer = setTimeout(this.#expire, this.window, session).unref()
    this.#store.set(state.token, state.routeKey, { state: 'dropped', session }, state.deadline)
    this.#dropped.add(session)
    this.#wake(session)
    return true
  }

  readonly #expire = (session: S): void => {
    const state = this.#states.get(session)
    if (state !== undefined && this.#dropped.has(session)) this.#refuse(session, state, 'expired')
  }

  /** A dropped session ends: its token says why for the window, and its onClose runs. */
  #refuse (session: S, state: State, failure: ResumeFailure): void {
    this.#fail(state, failure)
    if (state.timer !== null) clearTimeout(state.timer)
    state.timer = null
    this.#dropped.delete(session)
    session[kEnd](state.code, state.reason)
  }

  #fail (state: State, failure: ResumeFailure): void {
    state.refused = true
    this.#store.set(state.token, state.routeKey, { state: 'refused', failure }, Date.now() + this.window)
  }

  /** The kept session with this id, waiting for its client here: disconnectSession() reaches it too. */
  keptSession (id: string): S | undefined {
    for (const session of this.#dropped) if (session.id === id) return session
    return undefined
  }

  /** The app closes a session kept for a resume: it ends now if it waits for its client (its token then unknown). */
  end (session: S): void {
    if (!this.#dropped.has(session)) return
    const state = this.#states.get(session)!
    if (state.timer !== null) clearTimeout(state.timer)
    state.timer = null
    this.#dropped.delete(session)
    session[kEnd](state.code, state.reason)
  }

  /** The session has ended (closed for good, or handed over): its token names nothing more, unless a failure. */
  gone (session: S): void {
    const state = this.#states.get(session)
    if (state === undefined) return
    state.ended = true
    if (!state.refused) this.#store.delete(state.token)
    this.#wake(session)
  }

  #wake (session: S): void {
    const waiters = this.#takeovers.get(session)
    if (waiters === undefined) return
    this.#takeovers.delete(session)
    for (const resolve of waiters) resolve()
  }

  /**
   * What a handshake's token resumes, taken once. A token whose session is still connected (its
   * client came back before the server saw it leave) cuts that connection and waits for the
   * session to be kept, `wait` ms at most: 'lost' when it was not, or ended instead (a
   * handler of it did not settle within closeTimeout).
   */
  async claim (token: unknown, routeKey: string, wait: number): Promise<Claimed<S>> {
    if (token === undefined) return NO_RESUME
    if (!isTokenShaped(token)) return UNKNOWN
    const node = nodeOfToken(token)
    if (node !== this.#store.nodeId) return node === null ? UNKNOWN : await this.#claimFrom(node, token, routeKey, wait)
    const named = await this.#store.peek(token, routeKey)
    let live: S | null = null
    if (named?.state === 'live') {
      const session = live = named.session
      const dropped = new Promise<void>((resolve) => {
        const waiters = this.#takeovers.get(session)
        if (waiters === undefined) this.#takeovers.set(session, [resolve])
        else waiters.push(resolve)
      })
      session[kTakeOver]()
      await within(dropped, wait, undefined)
    }
    const taken = await this.#store.claim(token, routeKey)
    if (taken === undefined) return live !== null && this.#states.get(live)!.ended ? LOST : UNKNOWN
    if (taken.state === 'refused') return refusal(taken.failure)
    if (taken.state === 'live') {
      this.#store.set(token, routeKey, taken, Infinity)
      return LOST
    }
    const session = taken.session
    const state = this.#states.get(session)!
    if (state.timer !== null) clearTimeout(state.timer)
    state.timer = null
    this.#dropped.delete(session)
    return { session, portable: null, from: null, replay: null, failure: null }
  }

  /** A token of another server: its session taken over from there, with what its rooms published since, or why not. */
  async #claimFrom (node: string, token: string, routeKey: string, wait: number): Promise<Claimed<S>> {
    const taken = await this.#store.takeFrom(node, token, routeKey, wait)
    const portable = taken.portable
    if (portable === null) return refusal(taken.failure)
    // Past its window, its holder tells its leaves (or did); the session ended nowhere else.
    if (portable.deadline <= Date.now()) return refusal('expired')
    let replay: Replay[] | null
    let failure: ResumeFailure = 'history'
    try {
      replay = await this.#arrivals.missed(portable)
    } catch {
      // The history could not be read (Redis away or frozen): what it missed is out of reach.
      replay = null
      failure = 'lost'
    }
    if (replay !== null) return { session: null, portable, from: node, replay, failure: null }
    // Taken, and refused: it ends here, its leaves told now (its holder, if any, lets go of it).
    this.#arrivals.ended(portable, node)
    return refusal(failure)
  }

  /** Another server takes over one of this server's sessions by its token: exported, and let go here. */
  readonly #handOver = async (token: string, routeKey: string, wait: number): Promise<Taken | 'moved'> => {
    if (this.#parked.has(token)) return await this.#parking ? 'moved' : UNKNOWN_TAKEN
    const claimed = await this.claim(token, routeKey, wait)
    const session = claimed.session
    if (session === null) return { portable: null, failure: claimed.failure ?? 'unknown' }
    let rooms: PortableRoom[]
    try {
      rooms = await this.#arrivals.positions(session)
    } catch {
      this.giveBack(claimed)
      return LOST_TAKEN
    }
    const portable = this.#export(session, rooms)
    this.#letGo(session)
    return { portable, failure: null }
  }

  /** A kept session as it leaves this server: what it is, and what was kept for it (taken from its keeper). */
  #export (session: S, rooms: PortableRoom[]): Portable {
    const state = this.#states.get(session)!
    return {
      id: session.id,
      attributes: packAttributes(session.getAttributes()),
      info: this.#rooms.infoOf(session),
      rooms: this.#arrivals.latest(rooms),
      kept: packKept(state.keeper!.take()),
      deadline: state.deadline,
      code: state.code,
      reason: state.reason,
      holder: null
    }
  }

  /** The session lives on elsewhere: done here, without onClose nor a presence leave. */
  #letGo (session: S): void {
    const state = this.#states.get(session)!
    if (state.timer !== null) clearTimeout(state.timer)
    state.timer = null
    state.ended = true
    this.#dropped.delete(session)
    this.#store.delete(state.token)
    session[kHandOver]()
    this.#rooms.release(session)
    this.#wake(session)
  }

  /**
   * After app.close() closed the sessions: those kept here are parked in the store for the
   * rest of their window, and let go (no onClose, no presence leave: a holder keeps their
   * presence entries); when the store cannot take them, they end here, as without it.
   */
  async park (): Promise<void> {
    this.#afterPark = true
    if (!this.acrossServers || this.#dropped.size === 0) return
    const sessions = [...this.#dropped]
    const read = new Map()
    const positions = await Promise.allSettled(sessions.map((session) => this.#arrivals.positions(session, read)))
    const parked: Array<{ session: S, token: string, routeKey: string, portable: Portable }> = []
    sessions.forEach((session, i) => {
      const state = this.#states.get(session)!
      const rooms = positions[i]!
      if (!this.#dropped.has(session) || rooms.status !== 'fulfilled') return
      parked.push({ session, token: state.token, routeKey: state.routeKey, portable: this.#export(session, rooms.value) })
      // Exported: another server's takeover of it now waits for the write, then takes it from Redis.
      this.#dropped.delete(session)
      if (state.timer !== null) clearTimeout(state.timer)
      state.timer = null
      this.#parked.add(state.token)
    })
    const stored = await (this.#parking = parked.length > 0 && this.#store.park(parked))
    for (const { session, token } of parked) {
      if (stored) {
        this.#letGo(session)
      } else {
        this.#parked.delete(token)
        const state = this.#states.get(session)!
        session[kEnd](state.code, state.reason)
      }
    }
    for (const session of [...this.#dropped]) this.end(session)
  }

  /** A claimed session whose new connection could not start (it closed meanwhile): kept again, under its token, for what is left of its window. */
  giveBack (claimed: Claimed<S>): void {
    const session = claimed.session
    if (session === null) {
      // Taken over from another server for a connection that closed meanwhile: it ends.
      if (claimed.portable !== null) this.#arrivals.ended(claimed.portable, claimed.from!)
      return
    }
    const state = this.#states.get(session)!
    const left = state.deadline - Date.now()
    this.#dropped.add(session)
    if (left <= 0 || this.#closed) {
      this.#refuse(session, state, 'expired')
      return
    }
    state.timer = setTimeout(this.#expire, left, session).unref()
    this.#store.set(state.token, state.routeKey, { state: 'dropped', session }, state.deadline)
  }

  /**
   * The instance closes: the sessions kept in this process end now, and so does any dropped
   * later; across servers they wait for park() instead.
   */
  close (): void {
    this.#closed = true
    if (this.acrossServers) return
    for (const session of [...this.#dropped]) {
      const state = this.#states.get(session)!
      if (state.timer !== null) clearTimeout(state.timer)
      state.timer = null
      this.#dropped.delete(session)
      this.#store.delete(state.token)
      session[kEnd](state.code, state.reason)
    }
  }

  /** After the sessions have ended. */
  clear (): void {
    this.#arrivals.clear()
    this.#parked.clear()
    this.#store.close()
  }
}

// A session: one client connection, its handshake, its attributes and its rooms.
// Socket events enter the session's ordered queue (./queue) and leave it as handler
// calls; every send is guarded (open? under the route's backpressure bound?); when the
// socket closes, the session leaves every room after onDisconnected. Its handshake and
// attributes are ./session-request's.
//
// Over 400 lines, for a reason: the send path, the event handling and the close all read and
// write one set of private fields (one object per connection, its booleans packed in one
// field); split further, each part would need that state made reachable from outside.
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { WebSocketSession } from '../../types/index'
import { callHook, isThenable } from '../call-hook'
import { assertCloseArguments, closeCodes } from '../close-codes'
import { FAILING, IDLE, kFail, kHandle, kIdle } from './queue'
import { SessionRequest, kAdoptAttributes } from './session-request'
import { InvalidArgumentError, describe } from '../errors'
import { BINARY, Encoded, TEXT, binaryFrame, textFrame, toBuffer } from '../transport/frame'
import type { HandlerNames, Handlers } from './handlers'
import { stringify, type MessageCodec, type ReadMessage } from './message-codec'
import { ANSWERED, kAnswer, kInvalidMessage, type MessageRouter } from './message-routes'
import { answer, ask, askTimeout, endAsks } from './asks'
import type { EventEncoder } from '../rooms/room-view'
import type { RouteLimits } from '../options'
import { kFinished, kSendEncoded } from '../rooms/member'
import type { RoomIndex } from '../rooms/room-index'
import { RoomHandle } from '../rooms/room-handle'
import type { SessionRegistry } from './registry'
import { closeCodeSentFor } from '../transport/protocol-errors'
import { guardReceiver } from '../transport/receiver-guard'
import { directSocketOf, pastBound, senderIdle, sendWindow, unreadBytes, writeFrame } from '../transport/wire'
import { sharedDeflateOf, type SharedDeflate } from '../transport/deflate'
import { kEnd, kHandOver, kTakeOver, type Claimed, type Identity, type ResumeFailure, type Resumer } from '../resume/resumer'
import { channels } from '../observability/channels'
import type { HandlerRuns } from '../observability/handler-run'

/** What the sessions of one route share: its handlers, its limits, and the instance's registries. */
export interface Route {
  handlers: Handlers
  /** The name each handler was given under (onMessage or handleText...), for log lines. */
  handlerNames: HandlerNames
  limits: RouteLimits
  /** The route's message schemas (and JSON.stringify for sendJson when it has none). */
  codec: MessageCodec
  /** The route's `messages` and `events`, or null without either. */
  router: MessageRouter | null
  /** What emit() encodes with: the router, or an encoder that refuses every type. */
  events: EventEncoder
  /** How long a session whose client has gone waits for its handlers before it is dropped, in ms. */
  closeTimeout: number
  /** Socket errors are logged (debug) by the session, not by @fastify/websocket's errorHandler. */
  logsSocketErrors: boolean
  /** The server pings, so sessions listen for pongs. */
  heartbeat: boolean
  /** compression: 'shared': broadcasts are deflated once for the sessions that negotiated permessage-deflate. */
  sharedCompression: boolean
  sessions: SessionRegistry<Session>
  rooms: RoomIndex<Session>
  /** Sessions of this route survive a lost connection (../resume); null when it does not resume. */
  resume: Resumer<Session> | null
  /** What its tokens are bound to: the route's URL. */
  resumeKey: string
  /** The route's path (with its prefix), as the probes (../observability) name it. */
  path: string
  /** Messages and bytes sent to the route's sessions, for the metrics. */
  sent: { messages: number, bytes: number }
  handlerRuns: HandlerRuns
}

const enum Event { Connected, Text, Binary, Pong, Disconnected }
const enum Flag {
  /** The server started the close (close(), an error, a guard, shutdown): queued messages are dropped. */
  ClosedByServer = 1,
  /** Closed, onDisconnected run, every room left. */
  Finished = 2,
  /** A ping went out and its pong has not come back. */
  AwaitingPong = 4,
  /** The socket is not read, because the handlers are behind (inbound flow control). */
  Paused = 8,
  /** onBackpressure is running: an overflow from inside it does not call it again. */
  InBackpressureHandler = 16,
  /** The text message being handled is with its asynchronous validator (schema.message). */
  Validating = 32,
  /** The text message being handled is with onInvalidMessage. */
  InInvalidMessage = 64,
  /** Its connection is lost, or being cut, and the session kept for a resume (../resume): what it is sent is kept for it. */
  Kept = 128
}
const OPEN = 1 // WebSocket.OPEN
const CLOSED = 3 // WebSocket.CLOSED
const ABNORMAL_CLOSURE = 1006 // what 'close' says of a connection cut without a close frame
/** Each event's handler, as handlerNames has it. */
const EVENT_HANDLERS = ['connected', 'text', 'binary', 'pong', 'disconnected'] as const
/** Each event's name in the probes (../observability). */
const EVENT_NAMES = ['connected', 'message', 'binary', 'pong', 'disconnected'] as const

/**
 * How many times maxBackpressure what waits in ws for its deflate may reach before a session
 * counts as full (see Session#leftOver): far above the bound, so that a burst the bound lets
 * through does not count against a client that keeps up, yet a bound on that memory too.
 */
export const DEFLATE_BACKLOG = 8

/**
 * The timers of the sessions whose client has gone while a handler still runs (see [kAbandon]):
 * kept here rather than in a field, as few sessions ever need one.
 */
const deadlines = new Map<Session, NodeJS.Timeout>()

/**
 * What the plugin's own modules call on a session, beside its public API: symbols, so that a
 * user holding the session cannot call them by accident.
 */
export const kStart = Symbol('fastify-websocket-rooms.start')
export const kShutdown = Symbol('fastify-websocket-rooms.shutdown')
export const kHeartbeat = Symbol('fastify-websocket-rooms.heartbeat')
export const kCutOff = Symbol('fastify-websocket-rooms.cutOff')
export const kAbandon = Symbol('fastify-websocket-rooms.abandon')
/** The path of the session's route, as the probes and metrics (../observability) name it. */
export const kRoutePath = Symbol('fastify-websocket-rooms.routePath')

/** The session that owns a socket, so the socket listeners can be shared functions. */
const kSession = Symbol('fastify-websocket-rooms.session')
/** The socket's events, for the listeners below: symbols, out of reach of a user's session. */
const kOnMessage = Symbol('fastify-websocket-rooms.onMessage')
const kOnClose = Symbol('fastify-websocket-rooms.onClose')
const kOnError = Symbol('fastify-websocket-rooms.onError')
const kOnPong = Symbol('fastify-websocket-rooms.onPong')
const kExpire = Symbol('fastify-websocket-rooms.expire')
type OwnedSocket = WebSocket & { [kSession]: Session }

export class Session extends SessionRequest implements WebSocketSession<unknown, unknown, unknown> {
  readonly #id: string
  readonly #socket: OwnedSocket
  readonly #route: Route
  /** The TCP socket below, when broadcasts may write their prebuilt frames to it directly. */
  readonly #tcp: Socket | null
  /** With #tcp, the deflate setting its broadcasts are compressed with; null: uncompressed frames. */
  readonly #deflate: SharedDeflate | null
  #log: FastifyBaseLogger | null = null
  /** Flag bits (one field for five booleans: 32 bytes less per session). */
  #flags = 0
  /** The close code ws sent when the client broke the protocol (1002, 1007, 1009), or 0. */
  #protocolErrorCode = 0
  #rateWindowStart = 0
  #rateWindowCount = 0
  /** The send window (../transport/wire) of this session's last send, and what was left over when it began (#leftOver). */
  #window = 0
  #leftBefore = 0

  /** `resumes`: the id and attributes of the session this connection resumes (../resume). */
  constructor (socket: WebSocket, request: FastifyRequest, route: Route, resumes: Identity | null = null) {
    super(request, route.resume?.acrossServers ?? false)
    this.#id = resumes === null ? newSessionId() : resumes.id
    if (resumes !== null) this[kAdoptAttributes](resumes.attributes)
    this.#socket = socket as OwnedSocket
    this.#route = route
    this.#deflate = route.sharedCompression ? sharedDeflateOf(socket, request.log) : null
    this.#tcp = directSocketOf(socket, request.log, this.#deflate !== null)
    this.#socket[kSession] = this
    guardReceiver(socket, request.log)
    socket.on('message', onSocketMessage)
    socket.on('close', onSocketClose)
    socket.on('error', onSocketError)
    if (route.handlers.pong !== undefined || route.heartbeat) socket.on('pong', onSocketPong)
  }

  /** Registers the session and runs onConnected; called once the caller is ready for events. */
  [kStart] (claimed: Claimed<Session> | null = null): void {
    this.#route.sessions.add(this)
    // A resumed session is sent what was kept for it first.
    this.#route.resume?.start(this, this.#route.resumeKey, claimed, this.#route.limits.maxBackpressure)
    if (channels.sessionOpen.hasSubscribers) channels.sessionOpen.publish({ nodeId: this.#route.rooms.nodeId, route: this.#route.path, sessionId: this.#id, session: this })
    if (this.#route.handlers.connected !== undefined) this.enqueue(Event.Connected)
  }

  get id (): string { return this.#id }
  get [kRoutePath] (): string { return this.#route.path }
  get socket (): WebSocket { return this.#socket }
  get bufferedAmount (): number { return this.#socket.bufferedAmount }
  get resumed (): boolean { return this.#route.resume?.resumedOf(this) ?? false }
  get resumeToken (): string | null { return this.#route.resume?.tokenOf(this) ?? null }
  get resumeFailure (): ResumeFailure | null { return this.#route.resume?.failureOf(this) ?? null }

  get log (): FastifyBaseLogger {
    return (this.#log ??= this.request.log.child({ sessionId: this.#id }))
  }

  isOpen (): boolean {
    return this.#socket.readyState === OPEN
  }

  writeText (text: string): void {
    if (typeof text !== 'string') throw new InvalidArgumentError('text', 'a string', describe(text))
    this.#write(text, Buffer.byteLength(text), TEXT)
  }

  writeData (data: Buffer | Uint8Array | ArrayBuffer | ArrayBufferView): void {
    const bytes = toBuffer(data)
    if (bytes === null) throw new InvalidArgumentError('data', 'a Buffer, a Uint8Array or an ArrayBuffer', describe(data))
    this.#write(bytes, bytes.length, BINARY)
  }

  send (message: string | Buffer | Uint8Array | ArrayBuffer | ArrayBufferView): void {
    if (typeof message === 'string') {
      this.#write(message, Buffer.byteLength(message), TEXT)
      return
    }
    const bytes = toBuffer(message)
    if (bytes === null) throw new InvalidArgumentError('message', 'a string, a Buffer, a Uint8Array or an ArrayBuffer', describe(message))
    this.#write(bytes, bytes.length, BINARY)
  }

  sendJson (value: unknown): void {
    const text = this.#route.codec.serialize(value)
    this.#write(text, Buffer.byteLength(text), TEXT)
  }

  /** Sends a message encoded and framed once for many sessions (a broadcast). */
  [kSendEncoded] (encoded: Encoded): void {
    const bytes = encoded.data.length
    if (!this.#admit(bytes)) {
      if ((this.#flags & Flag.Kept) !== 0) this.#route.resume!.keep(this, encoded)
      return
    }
    const tcp = this.#tcp
    if (tcp !== null && senderIdle(this.#socket)) writeFrame(tcp, this.#deflate === null ? encoded.frame : this.#deflate.frameOf(encoded))
    else this.#socket.send(encoded.data, encoded.options)
    this.#sent(bytes)
  }

  #write (data: string | Buffer, bytes: number, options: typeof TEXT | typeof BINARY): void {
    if (!this.#admit(bytes)) {
      if ((this.#flags & Flag.Kept) !== 0) this.#route.resume!.keep(this, new Encoded(Buffer.from(data), options))
      return
    }
    // Framed here and written as a broadcast is, when that keeps ws's order: ws.send() costs
    // more than the rest of a request/response round trip on this side.
    // Not where permessage-deflate was negotiated: ws compresses what one session is sent.
    const tcp = this.#tcp
    if (tcp !== null && this.#deflate === null && senderIdle(this.#socket)) writeFrame(tcp, typeof data === 'string' ? textFrame(data, bytes) : binaryFrame(data))
    else this.#socket.send(data, options)
    this.#sent(bytes)
  }

  /**
   * Every send passes here: nothing goes out on a closed socket or past the backpressure
   * bound. The bound applies to what the client has not taken from earlier turns of the event
   * loop, not to this turn's own burst (which is corked until the check phase, so it counts in
   * bufferedAmount however fast the client reads): what a session holds is at most
   * maxBackpressure plus one turn's writes, and, with compression, what waits for ws's
   * deflate (#leftOver).
   */
  #admit (bytes: number): boolean {
    const socket = this.#socket
    if (socket.readyState !== OPEN) return false
    const window = sendWindow()
    if (this.#window !== window) {
      this.#window = window
      this.#leftBefore = this.#leftOver()
    }
    if (pastBound(this.#leftBefore, bytes, this.#route.limits.maxBackpressure)) {
      this.#overflow()
      return false
    }
    return true
  }

  /**
   * What earlier turns left over, as the bound counts it: what the client has not read from
   * its TCP socket. What waits in ws for its asynchronous deflate (every message, with ws's
   * own per-session compression; a direct send and what queues behind it, with compression:
   * 'shared') has not reached the client, and leaves ws at zlib's pace whatever the client
   * does: counted, it would cut a client that keeps up, for the app's own burst. It is memory
   * all the same, and not bounded by the client's socket (ws deflates whether the client reads
   * or not), so it has its own bound, DEFLATE_BACKLOG times the bound: past it, all that ws
   * holds counts, and the session is full. Not counted only when the socket has unread bytes
   * too: a client that reads everything would then be cut or not as the kernel's buffers
   * happened to stand.
   */
  #leftOver (): number {
    const socket = this.#socket
    const buffered = socket.bufferedAmount
    if (buffered === 0) return 0
    const unread = unreadBytes(socket)
    return buffered - unread > DEFLATE_BACKLOG * this.#route.limits.maxBackpressure ? buffered : unread
  }

  #sent (bytes: number): void {
    const stats = this.#route.sessions.stats
    stats.messagesOut++
    stats.bytesOut += bytes
    const sent = this.#route.sent
    sent.messages++
    sent.bytes += bytes
  }

  #overflow (): void {
    const stats = this.#route.sessions.stats
    const handler = this.#route.handlers.backpressure
    // A send from inside onBackpressure that overflows again must not call it again.
    if (handler !== undefined && (this.#flags & Flag.InBackpressureHandler) === 0) {
      this.#flags |= Flag.InBackpressureHandler
      callHook(handler, [this, this.#socket.bufferedAmount], (error) => { this.log.error({ err: error }, 'onBackpressure failed') })
      this.#flags &= ~Flag.InBackpressureHandler
    }
    const drop = this.#route.limits.backpressurePolicy === 'drop'
    if (!drop && this.#socket.readyState !== OPEN) return
    if (channels.backpressure.hasSubscribers) channels.backpressure.publish({ nodeId: this.#route.rooms.nodeId, route: this.#route.path, sessionId: this.#id, action: drop ? 'drop' : 'close', bufferedAmount: this.#socket.bufferedAmount })
    if (drop) {
      stats.droppedBackpressure++
    } else {
      stats.closedBackpressure++
      this.#closeBy(closeCodes.TRY_AGAIN_LATER, 'send buffer full')
    }
  }

  close (code: number = closeCodes.NORMAL, reason: string = ''): void {
    assertCloseArguments(code, reason)
    if ((this.#flags & Flag.Kept) !== 0) this.#unkeep()
    if (this.#socket.readyState !== OPEN) return
    this.#closeBy(code, reason)
  }

  #closeBy (code: number, reason: string): void {
    this.#flags |= Flag.ClosedByServer
    endAsks(this)
    this.#socket.close(code, reason)
    // ws would wait 30 s for the client's answer; a client that does not answer is cut off sooner.
    this.#startDeadline()
  }

  /** Starts (or starts again) the closeTimeout after which [kExpire]() runs. */
  #startDeadline (): void {
    const previous = deadlines.get(this)
    if (previous !== undefined) clearTimeout(previous)
    deadlines.set(this, setTimeout(expireSession, this.#route.closeTimeout, this).unref())
  }

  /**
   * closeTimeout has passed since the server started the close handshake, or since the client
   * left while a handler still ran. A handshake that has not completed is cut short (its 'close'
   * follows, and starts the deadline again if a handler still runs); a session whose client has
   * gone and whose handler still runs is dropped without it.
   */
  [kExpire] (): void {
    deadlines.delete(this)
    if ((this.#flags & Flag.Finished) !== 0) return
    if (this.#socket.readyState !== CLOSED) this.#cut()
    else this[kAbandon]()
  }

  /**
   * app.close() has waited closeTimeout: the connection is cut, and the session ends through
   * its 'close' as usual, unless a handler still runs, in which case it is dropped now.
   */
  [kCutOff] (): void {
    if (this.runningEvent === IDLE) this.#cut()
    else this[kAbandon]()
  }

  terminate (): void {
    if ((this.#flags & Flag.Kept) !== 0) this.#unkeep()
    this.#cut()
  }

  #cut (): void {
    this.#flags |= Flag.ClosedByServer
    this.#socket.terminate()
  }

  /** The app closes a session kept for a resume: it ends (at once if its client is away) rather than wait for it. */
  #unkeep (): void {
    this.#flags &= ~Flag.Kept
    this.#route.resume!.end(this)
  }

  room (name: string): RoomHandle<Session> {
    const rooms: RoomIndex<Session> = this.#route.rooms
    rooms.assertRoomName(name)
    return new RoomHandle(rooms, this, name, this.#route.codec.serialize, this.#route.events)
  }

  roomNames (): string[] {
    return this.#route.rooms.roomsOf(this)
  }

  emit (type: string, data: unknown): void {
    const text = this.#route.events.encodeEvent(type, data)
    this.#write(text, Buffer.byteLength(text), TEXT)
  }

  ask (type: string, data: unknown, options?: { timeout?: number }): Promise<unknown> {
    const router = this.#route.router
    if (router === null || !router.routesMessages) throw new TypeError(`fastify-websocket-rooms: ask() needs a route with "messages", through which the client's reply comes ("${this.getRequestPath()}" has none)`)
    const timeout = askTimeout(options)
    const open = this.#socket.readyState === OPEN && (this.#flags & Flag.ClosedByServer) === 0
    return ask(this, open, type, timeout, (id) => {
      const text = router.encodeAsk(type, id, data)
      this.#write(text, Buffer.byteLength(text), TEXT)
    })
  }

  [kAnswer] (id: string | number, data: unknown, error: unknown): boolean {
    return answer(this, id, data, error)
  }

  setPresence (info: unknown): void {
    this.#route.rooms.setPresence(this, stringify(info, 'info'))
  }

  /** True once the session has closed, run onDisconnected and left every room. */
  get [kFinished] (): boolean {
    return (this.#flags & Flag.Finished) !== 0
  }

  /** Closes for a server shutdown (a restart, kept, when the route resumes); an already closing session is left to finish. */
  [kShutdown] (): void {
    if (this.#socket.readyState !== OPEN) return
    if (this.#route.resume === null) {
      this.#closeBy(closeCodes.GOING_AWAY, 'server shutting down')
      return
    }
    this.#keepFromNow()
    this.#closeBy(closeCodes.SERVICE_RESTART, 'service restart')
  }

  /** From now on what the session is sent is kept for its resume: its connection is lost or being cut. */
  #keepFromNow (): void {
    if ((this.#flags & Flag.Kept) !== 0) return
    this.#flags |= Flag.Kept
    this.#route.resume!.keeping(this)
  }

  /** A handshake brought this session's token while its connection is still open: cut it, the session is kept. */
  [kTakeOver] (): void {
    if ((this.#flags & Flag.Finished) !== 0 || this.#socket.readyState === CLOSED) return
    this.#keepFromNow()
    this.#cut()
  }

  /** A kept session ends: onDisconnected runs with the code of the drop, and it leaves its rooms. */
  [kEnd] (code: number, reason: string): void {
    this.#flags &= ~Flag.Kept
    this.enqueue(Event.Disconnected, code, reason)
  }

  /** The session resumed as another session object: this one is done, its rooms are the other's. */
  [kHandOver] (): void {
    this.#flags = (this.#flags & ~Flag.Kept) | Flag.Finished
  }

  /**
   * One beat of the heartbeat: cut off a session that has neither answered the last ping nor
   * sent anything since, else ping.
   * A paused session is never cut off for a missing pong: its pongs wait unread behind its
   * messages, and the one that is behind is this server, not the client.
   */
  [kHeartbeat] (): void {
    if (this.#socket.readyState !== OPEN) return
    // Still pinged, with no pong expected: a paused socket reads nothing, so it would never see
    // its client leave, but a write to a peer that has gone fails and ends the session.
    if ((this.#flags & Flag.Paused) !== 0) {
      this.#socket.ping()
      return
    }
    if ((this.#flags & Flag.AwaitingPong) !== 0) {
      this.#route.sessions.stats.closedHeartbeat++
      this.log.debug('no pong since the last ping; terminating')
      if (this.#route.resume !== null) this.#keepFromNow()
      this.#cut()
      return
    }
    this.#flags |= Flag.AwaitingPong
    this.#socket.ping()
  }

  [kHandle] (kind: number, a: unknown, b: unknown): unknown {
    // An event that reaches a session dropped by [kAbandon]: its 'close' after terminate().
    if ((this.#flags & Flag.Finished) !== 0) return undefined
    const runs = this.#route.handlerRuns
    if (runs.active) {
      // With message routes, a text event's b is what the router read: its type labels the run.
      const type = kind === Event.Text && b !== undefined ? this.#route.router?.typeOf(b) : undefined
      return runs.run(this, this.#route.path, EVENT_NAMES[kind as Event]!, type, () => this.#dispatch(kind, a, b))
    }
    return this.#dispatch(kind, a, b)
  }

  #dispatch (kind: number, a: unknown, b: unknown): unknown {
    const handlers = this.#route.handlers
    switch (kind) {
      case Event.Connected: // a session resumed from another server first catches up with its rooms
        return this.#route.resume === null ? handlers.connected!(this) : this.#route.resume.opening(this, handlers.connected!)
      case Event.Text:
        if ((this.#flags & Flag.ClosedByServer) !== 0) return undefined
        // What the last message went through is over: only a text event asks (#handlerName).
        this.#flags &= ~(Flag.Validating | Flag.InInvalidMessage)
        if (this.#route.codec.readsMessages) return this.#readMessage(a as string)
        // b: with `messages`, the value the router read at arrival.
        return b === undefined ? handlers.text!(this, a as string) : handlers.text!(this, a as string, b)
      case Event.Binary:
        return (this.#flags & Flag.ClosedByServer) !== 0 ? undefined : handlers.binary!(this, a as Buffer)
      case Event.Pong:
        return handlers.pong!(this)
      default:
        return this.#disconnected(a as number, b as string)
    }
  }

  /** A text message on a route with schema.message: its handler gets the value, once it is valid JSON that matches. */
  #readMessage (text: string): unknown {
    const read = this.#route.codec.read(text)
    if (!(read instanceof Promise)) return this.#handleMessage(read, text)
    this.#flags |= Flag.Validating
    return read.then((settled) => {
      this.#flags &= ~Flag.Validating
      return this.#handleMessage(settled, text)
    })
  }

  #handleMessage (read: ReadMessage, text: string): unknown {
    // An asynchronous validator may settle after the session was closed or dropped.
    if ((this.#flags & (Flag.ClosedByServer | Flag.Finished)) !== 0) return undefined
    if (read.valid) return this.#route.handlers.text!(this, read.value)
    return this[kInvalidMessage](read.error, text, null)
  }

  /** An invalid message: counted and logged; `reply` (an error reply) is sent, else onInvalidMessage runs, else the session closes with 1007. */
  [kInvalidMessage] (error: Error, text: string, reply: string | null): unknown {
    const stats = this.#route.sessions.stats
    stats.invalidMessages++
    this.log.debug({ err: error }, 'invalid message')
    if (reply !== null) {
      this.writeText(reply)
      return undefined
    }
    const handler = this.#route.handlers.invalidMessage
    if (handler !== undefined) {
      this.#flags |= Flag.InInvalidMessage
      return handler(this, error, text)
    }
    stats.closedInvalidMessage++
    this.#closeBy(closeCodes.INVALID_PAYLOAD, 'invalid message')
    return undefined
  }

  [kFail] (error: unknown): unknown {
    const handler = this.#route.handlers.error
    if (handler === undefined || (this.#flags & Flag.Finished) !== 0) return this.#crash(error)
    try {
      const result = handler(this, toError(error))
      if (isThenable(result)) return result.then(undefined, (err: unknown) => this.#crash(err))
    } catch (err) {
      this.#crash(err)
    }
    return undefined
  }

  /** The queue has handled every event it held: read the socket again if it was paused. */
  [kIdle] (): void {
    if ((this.#flags & Flag.Paused) === 0) return
    // Its pong may wait behind the messages it sent meanwhile: the next beat asks again.
    this.#flags &= ~(Flag.Paused | Flag.AwaitingPong)
    this.#route.sessions.stats.paused--
    this.#socket.resume()
  }

  #crash (error: unknown): void {
    this.log.error({ err: error }, 'websocket handler failed; closing the session with 1011')
    if (this.#socket.readyState !== OPEN) return
    this.#route.sessions.stats.closedHandlerError++
    this.#closeBy(closeCodes.INTERNAL_ERROR, 'internal error')
  }

  #disconnected (code: number, reason: string): unknown {
    if ((this.#flags & Flag.Kept) !== 0) {
      if (this.#route.resume!.drop(this, code, reason)) {
        this.#dropped()
        return undefined
      }
      this.#flags &= ~Flag.Kept
    }
    const result = this.#runDisconnected(code, reason)
    if (result === undefined) return this.#finish()
    return result.then(() => this.#finish())
  }

  /** Runs onDisconnected; its failure is logged. A promise when it is async, which never rejects. */
  #runDisconnected (code: number, reason: string): Promise<void> | undefined {
    // Once per session: from its 'close', or when it is dropped ([kAbandon]).
    if (channels.sessionClose.hasSubscribers) channels.sessionClose.publish({ nodeId: this.#route.rooms.nodeId, route: this.#route.path, sessionId: this.#id, code, reason })
    const handler = this.#route.handlers.disconnected
    if (handler === undefined) return undefined
    return callHook(handler, [this, code, reason], (error) => { this.log.error({ err: error }, 'onDisconnected failed') })
  }

  #finish (): void {
    if ((this.#flags & Flag.Finished) !== 0) return
    this.#flags |= Flag.Finished
    this.#dropped()
    this.#route.rooms.leaveAll(this)
    this.#route.resume?.gone(this)
  }

  /** The session is no longer connected: out of the registry, its deadline and pause over (kept for a resume, or finished). */
  #dropped (): void {
    const deadline = deadlines.get(this)
    if (deadline !== undefined) {
      clearTimeout(deadline)
      deadlines.delete(this)
    }
    if ((this.#flags & Flag.Paused) !== 0) {
      this.#flags &= ~Flag.Paused
      this.#route.sessions.stats.paused--
    }
    endAsks(this)
    this.#route.sessions.remove(this)
  }

  /**
   * Drops the session without waiting for its handlers any longer: its client has gone and a
   * handler has not settled within closeTimeout, or app.close() has waited closeTimeout. The
   * connection is cut if it is not yet, onDisconnected runs now if it has not run (and is not
   * awaited), and the session leaves its rooms and the registry. Whatever the stuck handler
   * does when it settles, if ever, nothing of the session comes back: it joins nothing and
   * sends nothing, and no further event is handled.
   */
  [kAbandon] (): void {
    if ((this.#flags & Flag.Finished) !== 0) return
    this.#flags |= Flag.ClosedByServer
    if (this.#socket.readyState !== CLOSED) this.#socket.terminate()
    const running = this.runningEvent
    const pending = this.takePending()
    if (running === IDLE) {
      this.log.debug(`the client did not complete the close handshake within closeTimeout (${this.#route.closeTimeout} ms); cut off`)
    } else {
      const handler = this.#handlerName(running)
      this.log.error({ handler }, `${handler} has not settled within closeTimeout (${this.#route.closeTimeout} ms); the session is dropped without waiting for it`)
    }
    if (running !== Event.Disconnected) {
      const at = pending === null ? -1 : pending.findIndex((value, i) => i % 3 === 0 && value === Event.Disconnected)
      if (at === -1) this.#runDisconnected(ABNORMAL_CLOSURE, '')
      else this.#runDisconnected(pending![at + 1] as number, pending![at + 2] as string)
    }
    this.#finish()
  }

  #handlerName (running: number): string {
    const names = this.#route.handlerNames
    if (running === FAILING) return names.error
    if (running === Event.Text && (this.#flags & Flag.Validating) !== 0) return 'the validator of schema.message'
    if (running === Event.Text && (this.#flags & Flag.InInvalidMessage) !== 0) return names.invalidMessage
    return names[EVENT_HANDLERS[running]!]
  }

  /** Over the route's rate limit: true when this message must not be handled. */
  #overRateLimit (): boolean {
    const limit = this.#route.limits.rateLimit
    if (limit === null) return false
    const now = Date.now()
    if (now - this.#rateWindowStart >= limit.interval) {
      this.#rateWindowStart = now
      this.#rateWindowCount = 0
    }
    if (++this.#rateWindowCount <= limit.max) return false
    const stats = this.#route.sessions.stats
    if (limit.policy === 'drop') {
      stats.droppedRateLimit++
    } else {
      stats.closedRateLimit++
      this.#closeBy(closeCodes.POLICY_VIOLATION, 'rate limit exceeded')
    }
    return true
  }

  /** The socket's events, from the listeners below: one shared function each, finding their session through the socket. */
  [kOnMessage] (data: Buffer, isBinary: boolean): void {
    if ((this.#flags & Flag.ClosedByServer) !== 0) return
    this.#flags &= ~Flag.AwaitingPong // a client that sends is alive, whatever its pongs do
    const stats = this.#route.sessions.stats
    stats.messagesIn++
    stats.bytesIn += data.length
    if (this.#overRateLimit()) {
      this.#tellMessageIn(data, isBinary, undefined)
      return
    }
    const handlers = this.#route.handlers
    if (isBinary ? handlers.binary === undefined : handlers.text === undefined) {
      this.#tellMessageIn(data, isBinary, undefined)
      stats.closedUnsupportedData++
      this.#closeBy(closeCodes.UNSUPPORTED_DATA, isBinary ? 'binary messages are not accepted' : 'text messages are not accepted')
      return
    }
    if (isBinary) {
      this.#tellMessageIn(data, isBinary, undefined)
      this.enqueue(Event.Binary, data)
    } else {
      const text = data.toString()
      const router = this.#route.router
      if (router === null || !router.routesMessages) {
        this.#tellMessageIn(data, isBinary, undefined)
        this.enqueue(Event.Text, text)
      } else {
        const value = router.receive(this, text)
        this.#tellMessageIn(data, isBinary, value === ANSWERED ? undefined : router.typeOf(value))
        if (value !== ANSWERED) this.enqueue(Event.Text, text, value)
      }
    }
    if ((this.#flags & Flag.Paused) === 0 && this.queuedEvents >= this.#route.limits.maxQueuedMessages) {
      this.#flags |= Flag.Paused
      stats.paused++
      this.#socket.pause()
    }
  }

  /** message:in on diagnostics_channel; type: the declared message type, with message routes. */
  #tellMessageIn (data: Buffer, isBinary: boolean, type: string | undefined): void {
    if (channels.messageIn.hasSubscribers) channels.messageIn.publish({ nodeId: this.#route.rooms.nodeId, route: this.#route.path, sessionId: this.#id, binary: isBinary, bytes: data.length, type })
  }

  [kOnClose] (code: number, reason: Buffer): void {
    // After a protocol error ws sends its close code and reads nothing more, so 'close' says
    // 1006: onDisconnected gets the code that was sent to the client instead.
    if (code === ABNORMAL_CLOSURE && this.#protocolErrorCode !== 0) code = this.#protocolErrorCode
    // Lost without a close frame, and not cut by the app: kept for a resume (../resume).
    else if (code === ABNORMAL_CLOSURE && this.#route.resume !== null && (this.#flags & (Flag.ClosedByServer | Flag.Finished)) === 0) this.#keepFromNow()
    endAsks(this)
    this.enqueue(Event.Disconnected, code, reason.toString())
    // A handler still runs: the session waits for it, but not for ever. (Kept for a resume, it
    // is not finished, yet waits for nothing.)
    if ((this.#flags & Flag.Finished) === 0 && this.runningEvent !== IDLE) this.#startDeadline()
  }

  [kOnError] (error: Error): void {
    if (this.#route.logsSocketErrors) this.request.log.debug({ err: error }, 'websocket client error')
    if (this.#protocolErrorCode === 0) this.#protocolErrorCode = closeCodeSentFor(error)
  }

  [kOnPong] (): void {
    this.#flags &= ~Flag.AwaitingPong
    if (this.#route.handlers.pong !== undefined) this.enqueue(Event.Pong)
  }
}

function expireSession (session: Session): void {
  session[kExpire]()
}

function onSocketMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
  (this as OwnedSocket)[kSession][kOnMessage](data, isBinary)
}

function onSocketClose (this: WebSocket, code: number, reason: Buffer): void {
  (this as OwnedSocket)[kSession][kOnClose](code, reason)
}

function onSocketPong (this: WebSocket): void {
  (this as OwnedSocket)[kSession][kOnPong]()
}

function onSocketError (this: WebSocket, error: Error): void {
  (this as OwnedSocket)[kSession][kOnError](error)
}

/** True for a socket that belongs to a session of this plugin. */
export function isSessionSocket (socket: WebSocket): boolean {
  return kSession in socket
}

const idBuffer = Buffer.alloc(36)

/**
 * A random UUID as one flat string. randomUUID() builds its result by concatenation, a rope
 * of 14 cons strings over the hex pairs (about 450 bytes) that V8 keeps as is for as long as
 * the session lives; copied through a buffer it is one 56-byte string.
 */
function newSessionId (): string {
  idBuffer.write(randomUUID(), 0, 36, 'latin1')
  return idBuffer.toString('latin1', 0, 36)
}

function toError (value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}

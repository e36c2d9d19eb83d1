// A WebSocket client over a bare TCP socket, for tests that must send what no real client
// library sends: frames built by hand (masked or not, fragmented, with reserved bits set,
// unknown opcodes, broken UTF-8) and, when asked, no answer at all to the server's close.
import { createHash, randomBytes } from 'node:crypto'
import { connect as tcpConnect, type Socket } from 'node:net'
import { within } from './signals'

export const opcodes = Object.freeze({ continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa })

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

export interface FrameFlags {
  /** Final fragment (default true). */
  fin?: boolean
  /** Masked, as RFC 6455 5.3 requires of clients (default true). */
  mask?: boolean
  /** Reserved bits RSV1..RSV3 as the three bits 0b100, 0b010, 0b001 (default 0). */
  rsv?: number
  /** The length written in the header, when it must not be the payload's (a lie; may be a 64-bit bigint). */
  length?: number | bigint
  /** The masking key (default: 4 random bytes), for frames that must be the same on every run. */
  maskKey?: Buffer
}

/** Builds one frame as a client would send it. */
export function buildFrame (opcode: number, payload: Buffer | string = Buffer.alloc(0), flags: FrameFlags = {}): Buffer {
  const { fin = true, mask = true, rsv = 0 } = flags
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const length = data.length
  const declared = BigInt(flags.length ?? length)
  const extra = declared < 126n ? 0 : declared < 65536n ? 2 : 8
  const header = Buffer.alloc(2 + extra + (mask ? 4 : 0))
  header[0] = (fin ? 0x80 : 0) | ((rsv & 0b111) << 4) | (opcode & 0x0f)
  header[1] = (mask ? 0x80 : 0) | (extra === 0 ? Number(declared) : extra === 2 ? 126 : 127)
  if (extra === 2) header.writeUInt16BE(Number(declared), 2)
  if (extra === 8) header.writeBigUInt64BE(declared, 2)
  if (!mask) return Buffer.concat([header, data])
  const key = flags.maskKey ?? randomBytes(4)
  key.copy(header, 2 + extra)
  const masked = Buffer.alloc(length)
  for (let i = 0; i < length; i++) masked[i] = data[i]! ^ key[i & 3]!
  return Buffer.concat([header, masked])
}

/** The payload of a close frame: a 2-byte code and a UTF-8 reason. */
export function closePayload (code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason))
  payload.writeUInt16BE(code, 0)
  payload.write(reason, 2)
  return payload
}

export interface ServerFrame { fin: boolean, rsv: number, opcode: number, masked: boolean, payload: Buffer }

/** Splits the server's byte stream into frames; keeps an incomplete frame until the rest arrives. */
export class FrameParser {
  #buffer: Buffer = Buffer.alloc(0)

  push (chunk: Buffer): ServerFrame[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    const frames: ServerFrame[] = []
    for (;;) {
      const buf = this.#buffer
      if (buf.length < 2) break
      const masked = (buf[1]! & 0x80) !== 0
      let length = buf[1]! & 0x7f
      let at = 2
      if (length === 126) {
        if (buf.length < 4) break
        length = buf.readUInt16BE(2)
        at = 4
      } else if (length === 127) {
        if (buf.length < 10) break
        length = Number(buf.readBigUInt64BE(2))
        at = 10
      }
      const key = masked ? buf.subarray(at, at + 4) : null
      if (masked) at += 4
      if (buf.length < at + length) break
      const payload = Buffer.from(buf.subarray(at, at + length))
      if (key !== null) for (let i = 0; i < length; i++) payload[i] = payload[i]! ^ key[i & 3]!
      frames.push({ fin: (buf[0]! & 0x80) !== 0, rsv: (buf[0]! >> 4) & 0b111, opcode: buf[0]! & 0x0f, masked, payload })
      this.#buffer = buf.subarray(at + length)
    }
    return frames
  }
}

export class HandshakeError extends Error {
  constructor (readonly statusCode: number, readonly response: string) {
    super(`handshake refused with ${statusCode}`)
  }
}

export interface RawClientOptions {
  /** Answer the server's close frame with the same code, then end the socket (default true). */
  echoClose?: boolean
  headers?: Record<string, string>
}

export class RawClient {
  readonly socket: Socket
  readonly frames: ServerFrame[] = []
  /** Resolves once the TCP connection is fully closed. */
  readonly closed: Promise<void>
  /** Whether the server ended its side of the connection (a FIN), as opposed to no end at all. */
  ended = false
  readonly errors: Error[] = []
  readonly #echoClose: boolean
  readonly #parser = new FrameParser()
  #waiters: Array<{ test: (frame: ServerFrame) => boolean, resolve: (frame: ServerFrame) => void, reject: (error: Error) => void }> = []
  #closeSent = false
  #isClosed = false

  private constructor (socket: Socket, options: RawClientOptions) {
    this.socket = socket
    this.#echoClose = options.echoClose ?? true
    socket.on('error', (error) => { this.errors.push(error) })
    socket.on('end', () => { this.ended = true })
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.#isClosed = true
      for (const waiter of this.#waiters) waiter.reject(new Error('connection closed before the expected frame'))
      this.#waiters = []
      resolve()
    }))
  }

  /** Opens a TCP connection to base (ws://host:port) and completes the upgrade to path. */
  static async connect (base: string, path: string, options: RawClientOptions = {}): Promise<RawClient> {
    const url = new URL(base)
    const socket = tcpConnect({ host: url.hostname, port: Number(url.port) })
    const client = new RawClient(socket, options)
    const key = randomBytes(16).toString('base64')
    const headers = { Host: url.host, Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', ...options.headers }
    socket.write(`GET ${path} HTTP/1.1\r\n` + Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('') + '\r\n')
    const rest = await new Promise<Buffer>((resolve, reject) => {
      let head = Buffer.alloc(0)
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk])
        const end = head.indexOf('\r\n\r\n')
        if (end === -1) return
        socket.off('data', onData)
        socket.off('close', onClose)
        const response = head.subarray(0, end).toString()
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1])
        const accept = /\r\nsec-websocket-accept: *(\S+)/i.exec(response)?.[1]
        const expected = createHash('sha1').update(key + GUID).digest('base64')
        if (status !== 101 || accept !== expected) {
          socket.destroy()
          reject(new HandshakeError(status, response + '\r\n\r\n' + head.subarray(end + 4).toString()))
          return
        }
        resolve(head.subarray(end + 4))
      }
      const onClose = (): void => reject(new HandshakeError(0, head.toString()))
      socket.on('data', onData)
      socket.on('close', onClose)
    })
    socket.on('data', (chunk: Buffer) => client.#receive(chunk))
    if (rest.length > 0) client.#receive(rest)
    return client
  }

  #receive (chunk: Buffer): void {
    for (const frame of this.#parser.push(chunk)) {
      this.frames.push(frame)
      this.#waiters = this.#waiters.filter((waiter) => {
        if (!waiter.test(frame)) return true
        waiter.resolve(frame)
        return false
      })
      if (frame.opcode === opcodes.close && this.#echoClose && !this.#closeSent) {
        this.#closeSent = true
        this.socket.end(buildFrame(opcodes.close, frame.payload.subarray(0, 2)))
      }
    }
  }

  /** Resolves with the first frame received (or to come) that passes test. */
  frame (test: (frame: ServerFrame) => boolean): Promise<ServerFrame> {
    const found = this.frames.find(test)
    if (found !== undefined) return Promise.resolve(found)
    if (this.#isClosed) return Promise.reject(new Error('connection closed before the expected frame'))
    const arrived = new Promise<ServerFrame>((resolve, reject) => { this.#waiters.push({ test, resolve, reject }) })
    return within(arrived, `a frame that passes ${String(test)}`)
  }

  /** Resolves with the text of the first text frame whose text is `text`. */
  async text (text: string): Promise<string> {
    const frame = await this.frame((f) => f.opcode === opcodes.text && f.payload.toString() === text)
    return frame.payload.toString()
  }

  /** Resolves with the code and reason of the server's close frame. */
  async closeFrame (): Promise<{ code: number, reason: string }> {
    const frame = await this.frame((f) => f.opcode === opcodes.close)
    return { code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005, reason: frame.payload.subarray(2).toString() }
  }

  /** Writes raw bytes (one or more frames, or anything at all). */
  write (bytes: Buffer | Buffer[]): void {
    this.socket.write(Array.isArray(bytes) ? Buffer.concat(bytes) : bytes)
  }

  /** Sends a frame built by buildFrame. */
  send (opcode: number, payload?: Buffer | string, flags?: FrameFlags): void {
    if (opcode === opcodes.close) this.#closeSent = true
    this.write(buildFrame(opcode, payload, flags))
  }

  /** Drops the connection with no close frame. */
  destroy (): void {
    this.socket.destroy()
  }
}

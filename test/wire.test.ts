// The transport's reads of ws internals, and what happens where they are not as expected.
// The direct-write path (lib/transport/wire.ts) probes what a Sender's state means once per
// class; where it is not what it expects, every message goes through ws.send(): slower, and
// still whole and in order. The receiver guard (lib/transport/receiver-guard.ts) stands aside.
// Where the TCP socket below is not found, the backpressure bound counts ws's whole bufferedAmount.
import WebSocket from 'ws'
import { test } from 'tap'
import { probeSender, unreadBytes } from '../lib/transport/wire'
import { build, checkInterleavedBurst, connect, listen, until } from './helpers'
import { RawClient, opcodes } from './raw-client'

type AnySender = new (...args: any[]) => any

/** A queue with push, shift, length and index access, as ws uses it, that is not an Array. */
function listQueue (): unknown {
  const items: unknown[] = []
  return new Proxy({}, {
    get (_target, key) {
      if (key === 'length') return items.length
      if (key === 'push') return (item: unknown) => items.push(item)
      if (key === 'shift') return () => items.shift()
      return typeof key === 'string' && /^\d+$/.test(key) ? items[Number(key)] : undefined
    }
  })
}

/** ws's own Sender, with a queue of another shape: what a future ws might have. */
class ListQueueSender extends (WebSocket as unknown as { Sender: AnySender }).Sender {
  constructor (...args: any[]) {
    super(...args)
    this._queue = listQueue()
  }
}

/** A WebSocket whose sender is a ListQueueSender (the ws server's `WebSocket` option). */
class ListQueueWebSocket extends WebSocket {
  setSocket (...args: unknown[]): void {
    (WebSocket.prototype as any).setSocket.apply(this, args)
    const sender = (this as any)._sender
    Object.setPrototypeOf(sender, ListQueueSender.prototype)
    sender._queue = listQueue()
  }
}

test('probeSender learns the state in which a Sender writes at once, and refuses one that does not queue as expected', async (t) => {
  t.equal(probeSender((WebSocket as unknown as { Sender: AnySender }).Sender), 0, 'ws\'s own Sender: idle is 0')
  t.equal(probeSender(ListQueueSender), undefined, 'a queue that is not an Array')

  /** A sender written like ws's, with its own name for the idle state. */
  class RenumberedSender {
    _state: unknown = 'ready'
    _queue: unknown[] = []
    constructor (readonly socket: { write (chunk: Buffer): void }) {}
    ping (data: Buffer): void {
      if (this._state !== 'ready') this._queue.push(data)
      else this.socket.write(data)
    }
  }
  t.equal(probeSender(RenumberedSender), 'ready', 'whatever the idle state is called')

  class AlwaysWrites extends RenumberedSender {
    override ping (data: Buffer): void { this.socket.write(data) }
  }
  t.equal(probeSender(AlwaysWrites), undefined, 'a sender whose state does not hold frames back')

  class AlwaysQueues extends RenumberedSender {
    override ping (data: Buffer): void { this._queue.push(data) }
  }
  t.equal(probeSender(AlwaysQueues), undefined, 'a sender that does not write at once when idle')

  class Throws { constructor () { throw new Error('another signature') } }
  t.equal(probeSender(Throws as AnySender), undefined, 'a constructor that throws')
})

test('where the probe refuses ws\'s Sender, broadcasts and direct sends go through ws.send(), whole and in order; logged once at debug', async (t) => {
  const lines: any[] = []
  const app = await build(t, { websocketOptions: { WebSocket: ListQueueWebSocket } }, {
    logger: { level: 'debug', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } }
  })
  await checkInterleavedBurst(t, app, [0, 125, 126, 65536, 16 * 1024 + 1, 200_000])
  const fallbacks = lines.filter((line) => /ws internals are not as expected/.test(line.msg))
  t.equal(fallbacks.length, 1, 'said once, for two sessions')
  t.equal(fallbacks[0].level, 20, 'at debug level')
})

/** A WebSocket whose Receiver has no _errored field: what another ws might look like. */
class OtherReceiverWebSocket extends WebSocket {
  setSocket (...args: unknown[]): void {
    (WebSocket.prototype as any).setSocket.apply(this, args)
    Object.defineProperty((this as any)._receiver, '_errored', { get: () => undefined, set () {}, configurable: true })
  }
}

test('where ws\'s Receiver is not as expected, the receiver guard stands aside: sessions work, and it is said once as a warning', async (t) => {
  const lines: any[] = []
  const app = await build(t, { websocketOptions: { WebSocket: OtherReceiverWebSocket } }, {
    logger: { level: 'debug', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } }
  })
  app.registerWebsocket('/ws', { handleText (session, text) { session.send(`echo ${text}`) } })
  const base = await listen(app)
  const clients = await Promise.all([connect(base, '/ws'), connect(base, '/ws')])
  for (const client of clients) client.send('hi')
  for (const client of clients) t.same(await client.texts(1), ['echo hi'])
  const fallbacks = lines.filter((line) => /Receiver is not as expected/.test(line.msg))
  t.equal(fallbacks.length, 1, 'said once, for two sessions')
  t.equal(fallbacks[0].level, 40, 'at warn level: the crash it guards against is back')
  for (const client of clients) client.ws.terminate()
})

test('session.send() written directly: every frame length form (7-bit, 16-bit, 64-bit), multi-byte text, binary, empty, whole and in order', async (t) => {
  const app = await build(t)
  const texts = [0, 1, 125, 126, 65_535, 65_536, 70_000].map((length) => 'é€😀a'.repeat(Math.ceil(length / 5)).slice(0, length))
  const binaries = [0, 125, 126, 16 * 1024, 16 * 1024 + 1, 65_536].map((length) => Buffer.alloc(length, length % 251))
  app.registerWebsocket('/ws', {
    onConnected (session) {
      for (let i = 0; i < texts.length; i++) {
        session.send(texts[i]!)
        if (i < binaries.length) session.send(binaries[i]!)
      }
    }
  })
  const client = await connect(await listen(app), '/ws')
  const expected = texts.flatMap((text, i) => i < binaries.length ? [text, binaries[i]!] : [text])
  const got = await client.messages(expected.length)
  t.same(got.map((m) => m.binary), expected.map((m) => typeof m !== 'string'))
  t.ok(got.every((m, i) => typeof expected[i] === 'string' ? m.data === expected[i] : (m.data as Buffer).equals(expected[i] as Buffer)), 'each message whole')
})

test('unreadBytes: what is left at the TCP socket, without what ws still holds; where no TCP socket is found, ws\'s whole bufferedAmount', async (t) => {
  const like = (fields: object): WebSocket => fields as WebSocket
  t.equal(unreadBytes(like({ bufferedAmount: 7, _socket: { writableLength: 3 } })), 3, 'the TCP socket\'s writableLength')
  t.equal(unreadBytes(like({ bufferedAmount: 7 })), 7, 'no _socket')
  t.equal(unreadBytes(like({ bufferedAmount: 7, _socket: {} })), 7, 'a _socket without writableLength')
})

/** A WebSocket whose TCP socket does not say its writableLength: what another ws might look like. */
class HiddenSocketWebSocket extends WebSocket {
  setSocket (...args: unknown[]): void {
    (WebSocket.prototype as any).setSocket.apply(this, args)
    Object.defineProperty((this as any)._socket, 'writableLength', { get: () => undefined, configurable: true })
  }
}

test('where the TCP socket is not found, the backpressure bound counts ws\'s whole bufferedAmount: a client that does not read is still closed with 1013', async (t) => {
  const SIZE = 64 * 1024
  const app = await build(t, { heartbeatInterval: 0, maxBackpressure: 4 * SIZE, websocketOptions: { WebSocket: HiddenSocketWebSocket } })
  let attempted = 0
  app.registerWebsocket('/ws', {
    async handleText (session) {
      while (session.isOpen() && attempted < 1024) {
        session.send(Buffer.alloc(SIZE, attempted++ % 251))
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
  })
  const client = await RawClient.connect(await listen(app), '/ws')
  t.teardown(() => client.destroy())
  client.socket.pause()
  client.send(opcodes.text, 'flood')
  await until(() => app.websocketRooms.stats().closed.backpressure === 1)
  t.ok(attempted < 1024, `closed after ${attempted} messages`)
  client.socket.resume()
  t.same(await client.closeFrame(), { code: 1013, reason: 'send buffer full' })
})

// The session object: sending, closing, attributes, the handshake accessors and the
// ordering of its events.
import { test } from 'tap'
import type { WebSocketSession } from 'fastify-websocket-rooms'
import { Client, build, connect, listen, throwsLike, untilNoSessions } from './helpers'

test('writeText, writeData and send reach the client as text and binary frames', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.writeText('text')
      session.writeData(Buffer.from([1, 2, 3]))
      session.writeData(new Uint8Array([4, 5]))
      session.writeData(new Uint8Array([9, 6, 7, 9]).subarray(1, 3).buffer.slice(1, 3))
      session.send('sent text')
      session.send(Buffer.from('sent binary'))
    }
  })
  const client = await connect(await listen(app), '/ws')
  const messages = await client.messages(6)
  t.same(messages.map((m) => m.binary), [false, true, true, true, false, true])
  t.equal(messages[0]!.data, 'text')
  t.same([...messages[1]!.data as Buffer], [1, 2, 3])
  t.same([...messages[2]!.data as Buffer], [4, 5])
  t.same([...messages[3]!.data as Buffer], [6, 7])
  t.equal(messages[4]!.data, 'sent text')
  t.equal(String(messages[5]!.data), 'sent binary')
})

test('send and write methods refuse what is not a message, naming the argument', async (t) => {
  const app = await build(t)
  let done!: () => void
  const checked = new Promise<void>((resolve) => { done = resolve })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      throwsLike(t, () => session.writeText(42 as any), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /text must be a string, got number 42/ })
      throwsLike(t, () => session.writeData('text' as any), TypeError, { message: /data must be a Buffer/ })
      throwsLike(t, () => session.send({} as any), TypeError, { message: /message must be a string, a Buffer/ })
      throwsLike(t, () => session.send(null as any), TypeError, { message: /got null/ })
      done()
    }
  })
  await connect(await listen(app), '/ws')
  await checked
})

test('session ids are unique strings and read-only', async (t) => {
  const app = await build(t)
  const ids: string[] = []
  app.registerWebsocket('/ws', {
    onConnected (session) {
      ids.push(session.id)
      t.throws(() => { (session as any).id = 'x' }, TypeError)
      session.send(session.id)
    }
  })
  const base = await listen(app)
  const clients = await Promise.all(Array.from({ length: 20 }, () => connect(base, '/ws')))
  const seen = await Promise.all(clients.map(async (client) => (await client.texts(1))[0]))
  t.equal(new Set(ids).size, 20)
  t.same(seen.sort(), ids.sort())
  t.match(ids[0], /^[0-9a-f-]{36}$/)
  t.same([...app.websocketSessions.keys()].sort(), ids.sort())
})

test('close() sends 1000 by default, or the code and reason given', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    handleText (session, text) {
      if (text === 'default') session.close()
      else session.close(4001, 'custom reason')
    }
  })
  const base = await listen(app)
  const a = await connect(base, '/ws')
  a.send('default')
  t.same(await a.closed, { code: 1000, reason: '' })
  const b = await connect(base, '/ws')
  b.send('custom')
  t.same(await b.closed, { code: 4001, reason: 'custom reason' })
})

test('close() refuses an invalid code or a reason over 123 bytes', async (t) => {
  const app = await build(t)
  let done!: () => void
  const checked = new Promise<void>((resolve) => { done = resolve })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000, 1000.5, '1000']) {
        throwsLike(t, () => session.close(code as any), RangeError, { code: 'FST_WS_ROOMS_INVALID_CLOSE_CODE' })
      }
      throwsLike(t, () => session.close(1000, 'é'.repeat(62)), RangeError, { code: 'FST_WS_ROOMS_CLOSE_REASON_TOO_LONG', message: /got 124 bytes/ })
      throwsLike(t, () => session.close(1000, 5 as any), TypeError, { message: /close reason must be a string/ })
      t.ok(session.isOpen(), 'a refused close leaves the session open')
      session.close(1000, 'é'.repeat(61) + 'x')
      done()
    }
  })
  const client = await connect(await listen(app), '/ws')
  await checked
  t.same(await client.closed, { code: 1000, reason: 'é'.repeat(61) + 'x' })
})

test('isOpen() is false once closed, and sending then is a no-op', async (t) => {
  const app = await build(t)
  let done!: () => void
  const finished = new Promise<void>((resolve) => { done = resolve })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      t.equal(session.isOpen(), true)
      session.close()
      t.equal(session.isOpen(), false)
      session.send('late')
      session.writeText('late')
      session.writeData(Buffer.from('late'))
      session.close()
      session.close(4000, 'again')
    },
    onDisconnected (session, code) {
      t.equal(code, 1000)
      t.equal(session.isOpen(), false)
      session.send('after close')
      done()
    }
  })
  const client = await connect(await listen(app), '/ws')
  t.same(await client.closed, { code: 1000, reason: '' })
  await finished
  t.equal(client.received.length, 0)
})

test('attributes hold per-session state', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    onOpen (session) {
      t.same(session.getAttributes(), {})
      t.equal(session.getAttribute('missing'), undefined)
      session.setAttribute('username', session.getParameter('user'))
      session.setAttribute('count', 0)
      throwsLike(t, () => session.setAttribute(1 as any, 'x'), TypeError, { message: /key must be a string/ })
    },
    onMessage (session, message) {
      session.setAttribute('count', session.getAttribute<number>('count')! + 1)
      session.send(JSON.stringify({ message, ...session.getAttributes() }))
    }
  })
  const client = await connect(await listen(app), '/ws?user=alice')
  client.send('a')
  client.send('b')
  t.same(await client.json(2), [
    { message: 'a', username: 'alice', count: 1 },
    { message: 'b', username: 'alice', count: 2 }
  ])
})

test('events are handled one at a time in arrival order, async handlers included', async (t) => {
  const app = await build(t)
  const log: string[] = []
  let releaseConnected!: () => void
  const connectedMayFinish = new Promise<void>((resolve) => { releaseConnected = resolve })
  let sessionRef!: WebSocketSession
  let allDone!: () => void
  const done = new Promise<void>((resolve) => { allDone = resolve })
  app.registerWebsocket('/ws', {
    async onConnected (session) {
      sessionRef = session
      log.push('connected:start')
      session.send('ready')
      await connectedMayFinish
      log.push('connected:end')
    },
    async handleText (session, text) {
      log.push(`text:${text}:start`)
      // Alternate sync-resolving and later-resolving handlers.
      if (Number(text) % 2 === 0) await new Promise((resolve) => setImmediate(resolve))
      log.push(`text:${text}:end`)
      session.send(`got ${text}`)
    },
    handleBinary (session, data) {
      log.push(`binary:${data.length}`)
    },
    onDisconnected () {
      log.push('disconnected')
      allDone()
    }
  })
  const client = await connect(await listen(app), '/ws')
  await client.texts(1)
  for (let i = 0; i < 50; i++) client.send(String(i))
  client.send(Buffer.alloc(3))
  // All 51 messages are queued behind the unfinished onConnected; none is lost.
  await new Promise<void>((resolve) => client.ws.send('50', () => resolve()))
  t.same(log, ['connected:start'])
  releaseConnected()
  await client.texts(52)
  t.same(client.received.slice(1).map((m) => m.data), Array.from({ length: 51 }, (_, i) => `got ${i}`))
  client.ws.close()
  await done
  const expected = ['connected:start', 'connected:end']
  for (let i = 0; i < 50; i++) expected.push(`text:${i}:start`, `text:${i}:end`)
  expected.push('binary:3', 'text:50:start', 'text:50:end', 'disconnected')
  t.same(log, expected)
  t.equal(sessionRef.isOpen(), false)
  await untilNoSessions(app)
})

test('a handler that throws or rejects closes its session with 1011 and is logged with the session id', async (t) => {
  const lines: any[] = []
  const stream = { write (line: string) { lines.push(JSON.parse(line)) } }
  const app = await build(t, {}, { logger: { level: 'error', stream } })
  app.registerWebsocket('/ws', {
    handleText (_session, text) {
      if (text === 'throw') throw new Error('sync boom')
      return Promise.reject(new Error('async boom'))
    }
  })
  const base = await listen(app)
  const a = await connect(base, '/ws')
  a.send('throw')
  a.send('never handled')
  t.same(await a.closed, { code: 1011, reason: 'internal error' })
  const b = await connect(base, '/ws')
  b.send('reject')
  t.same(await b.closed, { code: 1011, reason: 'internal error' })
  await untilNoSessions(app)
  const failures = lines.filter((line) => line.msg === 'websocket handler failed; closing the session with 1011')
  t.equal(failures.length, 2)
  t.same(failures.map((line) => line.err.message).sort(), ['async boom', 'sync boom'])
  t.ok(failures.every((line) => typeof line.sessionId === 'string' && line.sessionId.length === 36))
})

test('onError decides what a handler failure does', async (t) => {
  const app = await build(t)
  const errors: string[] = []
  app.registerWebsocket('/ws', {
    handleText (session, text) {
      if (text === 'bad') throw new Error('bad input')
      session.send('ok ' + text)
    },
    async onError (session, error) {
      errors.push(error.message)
      session.send('error: ' + error.message)
    }
  })
  const client = await connect(await listen(app), '/ws')
  client.send('bad')
  client.send('good')
  t.same(await client.texts(2), ['error: bad input', 'ok good'])
  t.same(errors, ['bad input'])
  t.ok(app.websocketSessions.size === 1, 'the session stays open')
})

test('an onError that throws falls back to closing with 1011', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    handleText () { throw new Error('first') },
    onError () { throw new Error('second') }
  })
  const client = await connect(await listen(app), '/ws')
  client.send('x')
  t.same(await client.closed, { code: 1011, reason: 'internal error' })
})

test('a message kind with no handler closes the session with 1003', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/text-only', { handleText (session, text) { session.send(text) } })
  app.registerWebsocket('/binary-only', { handleBinary (session, data) { session.send(data) } })
  const base = await listen(app)
  const a = await connect(base, '/text-only')
  a.send(Buffer.from('bin'))
  t.same(await a.closed, { code: 1003, reason: 'binary messages are not accepted' })
  const b = await connect(base, '/binary-only')
  b.send('text')
  t.same(await b.closed, { code: 1003, reason: 'text messages are not accepted' })
})

test('onPong fires for every pong', async (t) => {
  const app = await build(t)
  let pongs = 0
  let twoPongs!: () => void
  const done = new Promise<void>((resolve) => { twoPongs = resolve })
  app.registerWebsocket('/ws', {
    onConnected (session) { session.send('hi') },
    onPong () { if (++pongs === 2) twoPongs() }
  })
  const client = new Client(await listen(app) + '/ws')
  await client.texts(1)
  client.ws.pong()
  client.ws.pong()
  await done
  t.equal(pongs, 2)
})

test('an async onError that rejects falls back to closing with 1011, and later events wait for it', async (t) => {
  const app = await build(t)
  const seen: string[] = []
  app.registerWebsocket('/ws', {
    async handleText (_session, text) {
      seen.push(text)
      throw new Error('first')
    },
    async onError (_session, error) {
      seen.push(`onError:${error.message}`)
      await Promise.resolve()
      throw new Error('second')
    }
  })
  const client = await connect(await listen(app), '/ws')
  client.send('a')
  client.send('b')
  t.same(await client.closed, { code: 1011, reason: 'internal error' })
  await untilNoSessions(app)
  t.same(seen, ['a', 'onError:first'], "'b' arrived behind the failure and was dropped once the session closed")
})

test('a session keeps its request but not what the upgrade left behind', async (t) => {
  const app = await build(t)
  let checked!: () => void
  const done = new Promise<void>((resolve) => { checked = resolve })
  app.addHook('onRequest', async (request) => { (request as any).user = { name: 'ada' } })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      const raw = session.request.raw as any
      t.same((session.request as any).user, { name: 'ada' }, 'what hooks set on the request stays reachable')
      t.match(session.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'the id is a UUID')
      t.equal(raw.socket._httpMessage, null, 'the TCP socket no longer holds the upgrade\'s ServerResponse')
      const head = Object.getOwnPropertySymbols(raw).find((symbol) => symbol.description === 'ws-head')
      t.ok(head !== undefined && raw[head].length === 0, 'the head buffer is released')
      const socket = session.socket
      t.equal(socket.listenerCount('error'), 1, 'only the session listens for socket errors')
      t.equal(socket.listenerCount('close'), 1, 'only the session listens for close')
      t.equal(session.getHeader('upgrade'), 'websocket')
      t.equal(session.getHeader('Sec-WebSocket-Version'), '13')
      for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) t.equal(session.getHeader(name), null, name)
      t.equal(raw.httpVersion, '1.1')
      t.ok(raw.rawHeaders.includes('Upgrade'), 'the raw headers are all there')
      checked()
    }
  })
  await connect(await listen(app), '/ws')
  await done
})

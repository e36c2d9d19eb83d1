// Bad frames end well: whatever a client sends, its session closes with the code ws put on
// the wire, onDisconnected gets that code, the session leaves every room, nothing is logged
// as an error, and the server goes on serving other clients.
import { test, type Test } from 'tap'
import { build, connect, listen, untilNoSessions } from './helpers'
import { RawClient, buildFrame, closePayload, opcodes } from './raw-client'
import { Events } from './signals'

interface Disconnect { code: number, reason: string, lobby: number, rooms: string[] }

/** An echo endpoint whose sessions join two rooms; records every disconnect and every logged warning or error. */
async function server (t: Test) {
  const logged: any[] = []
  const app = await build(t, { maxPayload: 1024 }, { logger: { level: 'warn', stream: { write: (line: string) => { logged.push(JSON.parse(line)) } } } })
  const disconnects = new Events<Disconnect>()
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('lobby').join()
      session.room(`own:${session.id}`).join()
      session.send('ready')
    },
    handleText (session, text) { session.send(`echo:${text}`) },
    handleBinary (session, data) { session.send(data) },
    onDisconnected (session, code, reason) {
      disconnects.push({ code, reason, lobby: session.room('lobby').members(), rooms: session.roomNames() })
    }
  })
  const base = await listen(app)

  /** The ended session left no trace, and a well-behaved client is served as usual. */
  async function assertCleanAndServing (): Promise<void> {
    await untilNoSessions(app)
    t.equal(app.websocketSessions.size, 0, 'no session is left')
    t.equal(app.websocketRooms.room('lobby').members(), 0, 'the lobby is empty')
    t.same(app.websocketRooms.roomNames(), [], 'no room is left')
    const client = await connect(base, '/ws')
    client.send('still serving')
    t.same(await client.texts(2), ['ready', 'echo:still serving'])
    t.equal(app.websocketRooms.room('lobby').members(), 1)
    await client.close()
    await disconnects.until(2)
    await untilNoSessions(app)
    t.same(logged, [], 'nothing was logged as a warning or an error')
  }

  return { app, base, disconnects, assertCleanAndServing }
}

const text = (payload: Buffer | string, flags?: { fin?: boolean, mask?: boolean, rsv?: number }): Buffer => buildFrame(opcodes.text, payload, flags)

const violations: Array<{ name: string, frames: Buffer[], code: number }> = [
  { name: 'a text message over maxPayload', frames: [text('x'.repeat(1025))], code: 1009 },
  { name: 'a binary message over maxPayload', frames: [buildFrame(opcodes.binary, Buffer.alloc(70000))], code: 1009 },
  { name: 'a fragmented message over maxPayload in all', frames: [text('x'.repeat(600), { fin: false }), buildFrame(opcodes.continuation, 'y'.repeat(600))], code: 1009 },
  { name: 'a text frame with invalid UTF-8', frames: [text(Buffer.from([0x68, 0x69, 0xff, 0xfe]))], code: 1007 },
  { name: 'invalid UTF-8 across fragments', frames: [text(Buffer.from([0xe2, 0x82]), { fin: false }), buildFrame(opcodes.continuation, Buffer.from([0x28]))], code: 1007 },
  { name: 'a close frame whose reason is not UTF-8', frames: [buildFrame(opcodes.close, Buffer.from([0x03, 0xe8, 0xc3, 0x28]))], code: 1007 },
  { name: 'an unknown data opcode', frames: [buildFrame(0x3, 'data')], code: 1002 },
  { name: 'an unknown control opcode', frames: [buildFrame(0xb, 'control')], code: 1002 },
  { name: 'an unmasked client frame', frames: [text('unmasked', { mask: false })], code: 1002 },
  { name: 'a fragmented control frame', frames: [buildFrame(opcodes.ping, 'part', { fin: false })], code: 1002 },
  { name: 'a control frame over 125 bytes', frames: [buildFrame(opcodes.ping, Buffer.alloc(126))], code: 1002 },
  { name: 'RSV1 set with no extension negotiated', frames: [text('rsv1', { rsv: 0b100 })], code: 1002 },
  { name: 'RSV2 and RSV3 set', frames: [text('rsv23', { rsv: 0b011 })], code: 1002 },
  { name: 'a continuation frame with nothing to continue', frames: [buildFrame(opcodes.continuation, 'orphan')], code: 1002 },
  { name: 'a new message inside a fragmented one', frames: [text('first', { fin: false }), text('second')], code: 1002 },
  { name: 'a close frame with a code that must not be sent', frames: [buildFrame(opcodes.close, closePayload(1005))], code: 1002 },
  { name: 'plain garbage', frames: [Buffer.from('GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n')], code: 1002 }
]

for (const { name, frames, code } of violations) {
  test(`${name} closes the session with ${code}`, async (t) => {
    const { disconnects, base, assertCleanAndServing } = await server(t)
    const client = await RawClient.connect(base, '/ws')
    await client.text('ready')
    // A valid message first: the connection works until the violation.
    client.send(opcodes.text, 'fine')
    await client.text('echo:fine')
    client.write(frames)
    t.same(await client.closeFrame(), { code, reason: '' }, 'the server sends the close code')
    await client.closed
    t.ok(client.ended, 'the server ends the TCP connection')
    const [disconnect] = await disconnects.until(1)
    t.equal(disconnect!.code, code, 'onDisconnected gets the code sent')
    t.equal(disconnect!.lobby, 1, 'the session is still a member during onDisconnected')
    t.equal(disconnect!.rooms.length, 2)
    await assertCleanAndServing()
  })
}

test('messages of exactly maxPayload bytes, whole or fragmented, are accepted', async (t) => {
  const { disconnects, base, app } = await server(t)
  const client = await RawClient.connect(base, '/ws')
  await client.text('ready')
  client.write(text('a'.repeat(1024)))
  client.write([text('b'.repeat(512), { fin: false }), buildFrame(opcodes.continuation, 'c'.repeat(512))])
  client.write([text('d', { fin: false }), buildFrame(opcodes.ping, 'interleaved'), buildFrame(opcodes.continuation, 'e')])
  await client.text('echo:' + 'a'.repeat(1024))
  await client.text('echo:' + 'b'.repeat(512) + 'c'.repeat(512))
  t.equal((await client.frame((f) => f.opcode === opcodes.pong)).payload.toString(), 'interleaved')
  await client.text('echo:de')
  client.send(opcodes.close, closePayload(4321, 'bye'))
  t.same(await client.closeFrame(), { code: 4321, reason: 'bye' }, 'the server echoes the close')
  await client.closed
  t.same((await disconnects.until(1)).map((d) => [d.code, d.reason]), [[4321, 'bye']])
  await untilNoSessions(app)
  t.same(app.websocketRooms.roomNames(), [])
})

test('a client that vanishes without a close frame ends with 1006', async (t) => {
  const { disconnects, base, assertCleanAndServing } = await server(t)
  const client = await RawClient.connect(base, '/ws')
  await client.text('ready')
  client.destroy()
  const [disconnect] = await disconnects.until(1)
  t.same(disconnect, { code: 1006, reason: '', lobby: 1, rooms: disconnect!.rooms })
  t.equal(disconnect!.rooms.length, 2)
  await assertCleanAndServing()
})

test('a client that vanishes in the middle of a frame ends with 1006', async (t) => {
  const { disconnects, base, assertCleanAndServing } = await server(t)
  const client = await RawClient.connect(base, '/ws')
  await client.text('ready')
  client.write(text('cut short').subarray(0, 8))
  client.destroy()
  t.equal((await disconnects.until(1))[0]!.code, 1006)
  await assertCleanAndServing()
})

test('a ws client that terminates ends with 1006', async (t) => {
  const { disconnects, base, assertCleanAndServing } = await server(t)
  const client = await connect(base, '/ws')
  await client.texts(1)
  client.ws.terminate()
  t.equal((await disconnects.until(1))[0]!.code, 1006)
  await assertCleanAndServing()
})

test('a client that sends its close frame and ends the connection at once ends with its own code', async (t) => {
  const { disconnects, base, assertCleanAndServing } = await server(t)
  const client = await RawClient.connect(base, '/ws', { echoClose: false })
  await client.text('ready')
  client.send(opcodes.close, closePayload(1000, 'leaving'))
  client.socket.end()
  t.same((await disconnects.until(1)).map((d) => [d.code, d.reason]), [[1000, 'leaving']])
  await assertCleanAndServing()
})

test('a plain @fastify/websocket route beside the plugin keeps its own error handling', async (t) => {
  const logged: any[] = []
  const app = await build(t, {}, { logger: { level: 'error', stream: { write: (line: string) => { logged.push(JSON.parse(line)) } } } })
  app.get('/plain', { websocket: true }, (socket) => {
    socket.on('message', (data) => socket.send(String(data)))
  })
  const base = await listen(app)
  const client = await RawClient.connect(base, '/plain')
  client.send(opcodes.text, 'hello')
  await client.text('hello')
  client.write(text(Buffer.from([0xff])))
  await client.closed
  t.equal(app.websocketSessions.size, 0, 'a plain socket is no session')
  t.equal(logged.length, 1, 'its protocol error is logged as an error, as @fastify/websocket does')
  t.match(logged[0], { level: 50, err: { code: 'WS_ERR_INVALID_UTF8' } })
})

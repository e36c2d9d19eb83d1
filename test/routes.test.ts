// Message routes: `messages` (a schema, a handler, a reply and preHandlers per message type),
// the envelope {"type","id","data"} and its replies and error replies, `events` with emit()
// from sessions, rooms and the server, and session.ask(). Real sockets over loopback, and
// injectWS once.
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { test } from 'tap'
import { redisAdapter } from 'fastify-websocket-rooms'
import { Client, build, connect, listen, throwsLike, until, untilNoSessions } from './helpers'
import { REDIS_URL, redisTest, uniquePrefix } from './redis'
import { Events, gate } from './signals'

const Send = Type.Object({ room: Type.String(), text: Type.String({ maxLength: 10 }) })
const Offset = Type.Object({ offset: Type.Integer() })
const Said = Type.Object({ from: Type.String(), text: Type.String() })

/** The route list the plugin keeps (app.websocketRooms[kRouteDefinitions]). */
function routeList (app: FastifyInstance): any[] {
  const symbol = Object.getOwnPropertySymbols(app.websocketRooms).find((s) => s.description === 'fastify-websocket-rooms.routeDefinitions')!
  return (app.websocketRooms as any)[symbol]
}

/** The messages from the `from`-th to the `count`-th, parsed as JSON, once `count` have arrived. */
async function jsonFrom (client: Client, from: number, count: number): Promise<any[]> {
  return (await client.texts(count)).slice(from).map((text) => JSON.parse(text))
}

/** Sends each value as JSON. */
function sendAll (client: Client, ...values: unknown[]): void {
  for (const value of values) client.send(JSON.stringify(value))
}

test('a message with an id gets its reply through the reply schema; without one, none', async (t) => {
  const app = await build(t)
  const handled = new Events<unknown>()
  app.registerWebsocket('/ws', {
    messages: {
      'chat.send': {
        schema: Send,
        reply: Offset,
        async handler (_session, data) {
          handled.push(data)
          return { offset: data.text.length, secret: 'never leaves' } as { offset: number }
        }
      },
      nothing: { handler () {} },
      echo: { handler (_session, data) { return data } }
    }
  })
  const client = await connect(await listen(app), '/ws')
  sendAll(client,
    { type: 'chat.send', id: 7, data: { room: 'a', text: 'hello' } },
    { type: 'chat.send', data: { room: 'a', text: 'no id' } },
    { type: 'chat.send', id: 'abc', data: { room: 'a', text: 'hi' } },
    { type: 'nothing', id: -3 },
    { type: 'echo', id: 0, data: [1, { two: 2 }] },
    { type: 'echo', id: '' })
  t.same(await client.json(5), [
    { type: 'reply', id: 7, data: { offset: 5 } },
    { type: 'reply', id: 'abc', data: { offset: 2 } },
    { type: 'reply', id: -3, data: null },
    { type: 'reply', id: 0, data: [1, { two: 2 }] },
    { type: 'reply', id: '', data: null }
  ])
  t.same(await handled.until(3), [{ room: 'a', text: 'hello' }, { room: 'a', text: 'no id' }, { room: 'a', text: 'hi' }], 'the message without an id was handled, and not answered')
  t.equal(client.received.length, 5)
  t.equal(app.websocketRooms.stats().invalidMessages, 0)
})

test('error replies: validation, a throw, a rejection, an unknown type; the session stays open', async (t) => {
  const app = await build(t)
  const errors = new Events<string>()
  app.registerWebsocket('/ws', {
    messages: {
      'chat.send': { schema: Send, handler () { return 'ok' } },
      boom: { handler () { throw new Error('boom') } },
      coded: { async handler () { throw Object.assign(new Error('not yours'), { code: 'E_FORBIDDEN', statusCode: 403 }) } },
      text: { handler () { throw 'a string' } } // eslint-disable-line no-throw-literal
    },
    onError (_session, error) { errors.push(error.message) }
  })
  const client = await connect(await listen(app), '/ws')
  sendAll(client,
    { type: 'chat.send', id: 1, data: { room: 'a', text: 'far too long a text' } },
    { type: 'chat.send', id: 2, data: { text: 'hi' } },
    { type: 'boom', id: 3 },
    { type: 'coded', id: 4 },
    { type: 'text', id: 5 },
    { type: 'chat.sned', id: 6, data: {} },
    { type: 'elsewhere', id: 7 },
    { type: 'chat.send', id: 8, data: { room: 'a', text: 'fine' } })
  t.same(await client.json(8), [
    { type: 'reply', id: 1, error: { code: 'FST_ERR_VALIDATION', message: 'data/text must NOT have more than 10 characters' } },
    { type: 'reply', id: 2, error: { code: 'FST_ERR_VALIDATION', message: 'data must have required property \'room\'' } },
    { type: 'reply', id: 3, error: { code: 'FST_WS_ROOMS_HANDLER_ERROR', message: 'boom' } },
    { type: 'reply', id: 4, error: { code: 'E_FORBIDDEN', message: 'not yours' } },
    { type: 'reply', id: 5, error: { code: 'FST_WS_ROOMS_HANDLER_ERROR', message: 'a string' } },
    { type: 'reply', id: 6, error: { code: 'FST_WS_ROOMS_UNKNOWN_TYPE', message: 'unknown message type "chat.sned" (did you mean "chat.send"?)' } },
    { type: 'reply', id: 7, error: { code: 'FST_WS_ROOMS_UNKNOWN_TYPE', message: 'unknown message type "elsewhere"' } },
    { type: 'reply', id: 8, data: 'ok' }
  ])
  t.ok(client.ws.readyState === client.ws.OPEN, 'still open')
  t.same(errors.list, [], 'answered errors do not reach onError')
  t.equal(app.websocketRooms.stats().invalidMessages, 4, 'the invalid ones counted: validation twice, the unknown types')
})

test('without an id: an invalid message goes to onInvalidMessage, a throw to onError', async (t) => {
  const app = await build(t)
  const invalid = new Events<[string, string]>()
  const errors = new Events<string>()
  app.registerWebsocket('/ws', {
    messages: {
      'chat.send': { schema: Send, handler (session) { session.send('handled') } },
      boom: { async handler () { throw new Error('boom') } }
    },
    onInvalidMessage (_session, error, text) { invalid.push([error.code, text]) },
    onError (session, error) {
      errors.push(error.message)
      session.send('after the error')
    }
  })
  const client = await connect(await listen(app), '/ws')
  const texts = [
    JSON.stringify({ type: 'chat.send', data: { room: 1 } }),
    JSON.stringify({ type: 'nope' }),
    'not json',
    '[1, 2]',
    JSON.stringify({ type: 7 }),
    JSON.stringify({ type: 'reply', data: 1 }),
    JSON.stringify({ type: 'boom' }),
    JSON.stringify({ type: 'chat.send', data: { room: 'a', text: 'b' } })
  ]
  for (const text of texts) client.send(text)
  t.same(await client.texts(2), ['after the error', 'handled'])
  t.same(await invalid.until(6), [
    ['FST_ERR_VALIDATION', texts[0]],
    ['FST_WS_ROOMS_UNKNOWN_TYPE', texts[1]],
    ['FST_WS_ROOMS_INVALID_JSON', texts[2]],
    ['FST_WS_ROOMS_INVALID_ENVELOPE', texts[3]],
    ['FST_WS_ROOMS_INVALID_ENVELOPE', texts[4]],
    ['FST_WS_ROOMS_INVALID_ENVELOPE', texts[5]]
  ])
  t.same(errors.list, ['boom'])
})

test('without an id nor onInvalidMessage, an invalid message closes with 1007, a throw with 1011', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    messages: { 'chat.send': { schema: Send, handler () {} }, boom: { handler () { throw new Error('boom') } } }
  })
  const base = await listen(app)
  for (const text of ['{"type":"chat.send","data":{}}', '{"type":"other"}', '{', '"text"', '{"data":1}']) {
    const client = await connect(base, '/ws')
    client.send(text)
    t.same(await client.closed, { code: 1007, reason: 'invalid message' }, text)
  }
  const client = await connect(base, '/ws')
  client.send('{"type":"boom"}')
  t.same(await client.closed, { code: 1011, reason: 'internal error' })
  await untilNoSessions(app)
  t.equal(app.websocketRooms.stats().closed.invalidMessage, 5)
})

test('hostile ids: too long, objects, floats and unsafe integers cannot be echoed, so the message is invalid', async (t) => {
  const app = await build(t)
  const invalid = new Events<string>()
  app.registerWebsocket('/ws', {
    messages: { echo: { handler (_session, data) { return data } } },
    onInvalidMessage (_session, error) { invalid.push(error.message) }
  })
  const client = await connect(await listen(app), '/ws')
  const ids: unknown[] = ['x'.repeat(129), { a: 1 }, [1], 1.5, 2 ** 60, true, null]
  for (const id of ids) sendAll(client, { type: 'echo', id, data: 1 })
  sendAll(client, { type: 'echo', id: 'x'.repeat(128), data: 'longest' }, { type: 'echo', id: -(2 ** 53 - 1), data: 'lowest' })
  t.same(await client.json(2), [
    { type: 'reply', id: 'x'.repeat(128), data: 'longest' },
    { type: 'reply', id: -(2 ** 53 - 1), data: 'lowest' }
  ])
  const messages = await invalid.until(ids.length)
  t.match(messages[0], /^message "id" must be a string of at most 128 characters or a safe integer, got a string of length 129$/)
  t.match(messages[1], /got an object$/)
  t.match(messages[3], /got number 1.5$/)
  t.match(messages[6], /got null$/)
})

test('an envelope renamed per route: messages, replies and events use its field names', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    envelope: { type: 't', id: 'i', data: 'd' },
    messages: {
      'chat.send': {
        schema: Send,
        reply: Offset,
        handler (session, data) {
          session.emit('said', { from: 'me', text: data.text })
          return { offset: 1 }
        }
      }
    },
    events: { said: Said }
  })
  const client = await connect(await listen(app), '/ws')
  sendAll(client,
    { t: 'chat.send', i: 1, d: { room: 'a', text: 'hi' } },
    { t: 'chat.send', i: 2, d: { room: 'a' } },
    { type: 'chat.send', id: 3, data: { room: 'a', text: 'hi' } })
  t.same(await client.json(3), [
    { t: 'said', d: { from: 'me', text: 'hi' } },
    { t: 'reply', i: 1, d: { offset: 1 } },
    { t: 'reply', i: 2, error: { code: 'FST_ERR_VALIDATION', message: 'd must have required property \'text\'' } }
  ])
  t.same(await client.closed, { code: 1007, reason: 'invalid message' }, 'the default names mean nothing here')
  t.same(routeList(app)[0].envelope, { type: 't', id: 'i', data: 'd' })
})

test('preHandler: a function, an array, async; a throw refuses the message', async (t) => {
  const app = await build(t)
  const calls: string[] = []
  const errors = new Events<string>()
  const allow = (session: any, data: { room: string }): void => {
    calls.push(`allow ${data.room}`)
    if (data.room === 'secret') throw Object.assign(new Error('not in this room'), { code: 'E_FORBIDDEN', statusCode: 403 })
  }
  app.registerWebsocket('/ws', {
    messages: {
      one: { schema: Type.Object({ room: Type.String() }), preHandler: allow, handler (_session, data) { calls.push(`one ${data.room}`); return 1 } },
      many: {
        schema: Type.Object({ room: Type.String() }),
        preHandler: [
          async (_session, data) => { await new Promise((resolve) => setImmediate(resolve)); calls.push(`first ${data.room}`) },
          allow,
          (_session, data) => { calls.push(`last ${data.room}`) }
        ],
        handler (_session, data) { calls.push(`many ${data.room}`); return 2 }
      },
      rejecting: { preHandler: async () => { throw new Error('refused') }, handler () { calls.push('never') } }
    },
    onError (_session, error) { errors.push(error.message) }
  })
  const client = await connect(await listen(app), '/ws')
  sendAll(client,
    { type: 'one', id: 1, data: { room: 'a' } },
    { type: 'one', id: 2, data: { room: 'secret' } },
    { type: 'many', id: 3, data: { room: 'b' } },
    { type: 'many', id: 4, data: { room: 'secret' } },
    { type: 'rejecting', id: 5 },
    { type: 'rejecting' })
  t.same(await client.json(5), [
    { type: 'reply', id: 1, data: 1 },
    { type: 'reply', id: 2, error: { code: 'E_FORBIDDEN', message: 'not in this room' } },
    { type: 'reply', id: 3, data: 2 },
    { type: 'reply', id: 4, error: { code: 'E_FORBIDDEN', message: 'not in this room' } },
    { type: 'reply', id: 5, error: { code: 'FST_WS_ROOMS_HANDLER_ERROR', message: 'refused' } }
  ])
  t.same(await errors.until(1), ['refused'], 'without an id, a refusal goes to onError')
  t.same(calls, ['allow a', 'one a', 'allow secret', 'first b', 'allow b', 'last b', 'many b', 'first secret', 'allow secret'])
})

test('the handlers of one session run in order, a burst answered whole and in order', async (t) => {
  const app = await build(t)
  const first = gate()
  const log: string[] = []
  app.registerWebsocket('/ws', {
    messages: {
      slow: { async handler () { log.push('slow start'); await first.opened; log.push('slow end'); return 'slow' } },
      fast: { handler (_session, data) { log.push(`fast ${String(data)}`); return data } }
    }
  })
  const client = await connect(await listen(app), '/ws')
  sendAll(client, { type: 'slow', id: 'a' }, { type: 'fast', id: 'b', data: 1 })
  await until(() => log.length === 1)
  t.same(log, ['slow start'], 'the next message waits for the slow handler')
  first.open()
  t.same(await client.json(2), [{ type: 'reply', id: 'a', data: 'slow' }, { type: 'reply', id: 'b', data: 1 }])
  const burst = 2000
  for (let i = 0; i < burst; i++) client.send(JSON.stringify({ type: 'fast', id: i, data: i }))
  const replies = (await client.json(2 + burst)).slice(2)
  t.same(replies.map((reply) => reply.id), Array.from({ length: burst }, (_, i) => i), 'every reply, in order')
  t.ok(replies.every((reply, i) => reply.data === i))
})

test('registration errors name what is wrong', async (t) => {
  const app = await build(t)
  const handler = (): void => {}
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ messages: { a: { handler } }, onMessage: handler }, /"messages" and "onMessage" both handle the text messages/],
    [{ messages: { a: { handler } }, handleText: handler }, /"messages" and "handleText" both handle the text messages/],
    [{ messages: { a: { handler } }, schema: { message: Type.Object({}) } }, /"messages" and schema.message both describe the text messages/],
    [{ messages: { reply: { handler } } }, /messages\["reply"\]: "reply" is the type of replies/],
    [{ messages: { '': { handler } } }, /messages has an empty type/],
    [{ messages: { a: { schema: Send } } }, /messages\["a"\].handler must be a function, got undefined/],
    [{ messages: { a: { handler, shema: Send } } }, /messages\["a"\]: unknown key "shema" \(did you mean "schema"\?\)/],
    [{ messages: { a: { handler, preHandler: [handler, 'x'] } } }, /messages\["a"\].preHandler must be a function or an array of functions, got "x" in it/],
    [{ messages: { a: { handler, reply: 'x' } } }, /messages\["a"\].reply must be a JSON schema/],
    [{ messages: { a: 1 } }, /messages\["a"\] must be an object/],
    [{ messages: [] }, /"messages" must be an object of message types, got an array/],
    [{ messages: {} }, /"messages" is empty/],
    [{ events: { a: 'x' }, onOpen: handler }, /events\["a"\] must be a JSON schema/],
    [{ events: null, onOpen: handler }, /"events" must be an object/],
    [{ envelope: { type: 't' }, onOpen: handler }, /"envelope" is given, but neither "messages" nor "events"/],
    [{ envelope: { kind: 't' }, messages: { a: { handler } } }, /envelope: unknown key "kind"/],
    [{ envelope: { id: 'type' }, messages: { a: { handler } } }, /envelope: the fields type, id and data need three names/],
    [{ envelope: { data: 'error' }, messages: { a: { handler } } }, /three names other than "error"/],
    [{ envelope: { data: '' }, messages: { a: { handler } } }, /envelope.data must be a non-empty string/],
    [{ envelope: { id: '__proto__' }, messages: { a: { handler } } }, /envelope.id cannot be "__proto__"/]
  ]
  for (const [handlers, message] of cases) {
    throwsLike(t, () => app.registerWebsocket('/ws', handlers as any), TypeError, { code: 'FST_WS_ROOMS_INVALID_HANDLERS', message })
  }
  // onInvalidMessage is welcome with messages.
  app.registerWebsocket('/ok', { messages: { a: { handler } }, onInvalidMessage: handler })
  // An event declared by two routes must be one event.
  app.registerWebsocket('/one', { events: { said: Said }, onOpen: handler })
  app.registerWebsocket('/two', { events: { said: Said }, onOpen: handler })
  throwsLike(t, () => app.registerWebsocket('/three', { events: { said: Offset }, onOpen: handler }), TypeError, { message: /event "said" is declared by "\/one" too, with another schema or envelope/ })
  throwsLike(t, () => app.registerWebsocket('/four', { events: { said: Said }, envelope: { type: 'kind' }, onOpen: handler }), TypeError, { message: /event "said" is declared by "\/one" too/ })
})

test('a message or event schema its compiler refuses fails app.ready(), naming it and the route', async (t) => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ messages: { a: { schema: { type: 'no-such-type' }, handler () {} } } }, 'messages["a"].schema'],
    [{ messages: { a: { reply: { type: 'object', properties: { x: { $ref: 'missing#' } } }, handler () {} } } }, 'messages["a"].reply'],
    [{ events: { e: { type: 'object', properties: { x: { $ref: 'missing#' } } } }, onOpen () {} }, 'events["e"]']
  ]
  for (const [handlers, part] of cases) {
    const app = await build(t)
    app.registerWebsocket('/bad', handlers as any)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_WS_ROOMS_SCHEMA_BUILD', message: `fastify-websocket-rooms: ${part} of "/bad" does not compile: ` }, part)
  }
})

test('emit(): through events[type], fields it does not name never leave; a type that is not one is a TypeError', async (t) => {
  const app = await build(t)
  const thrown = new Events<unknown>()
  app.registerWebsocket('/ws', {
    events: { said: Said },
    onOpen (session) {
      session.emit('said', { from: 'server', text: 'welcome', password: 'hunter2' } as any)
      for (const call of [() => session.emit('sad' as any, {}), () => session.emit('said', { from: 1 } as any)]) {
        try {
          call()
        } catch (error) {
          thrown.push(error)
        }
      }
      session.emit('said', { from: 'server', text: 'after' })
    }
  })
  app.registerWebsocket('/none', { onOpen (session) { try { session.emit('said' as never, {} as never) } catch (error) { thrown.push(error) } } })
  const base = await listen(app)
  const client = await connect(base, '/ws')
  t.same(await client.json(2), [{ type: 'said', data: { from: 'server', text: 'welcome' } }, { type: 'said', data: { from: 'server', text: 'after' } }])
  await connect(base, '/none')
  const [unknown, wrong, none] = await thrown.until(3)
  t.type(unknown, TypeError)
  t.match(unknown, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: 'fastify-websocket-rooms: type must be one of the events of "/ws" ("said"), got "sad" (did you mean "said"?)' })
  t.match(wrong, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /data must be a value that events\["said"\] can serialize/ })
  t.match(none, { message: /type must be one of the route's events \(none is declared\), got "said"/ })
})

test('room.emit(), emitExcept(), the server\'s room(name).emit() and to().except().emit(): serialized once for every member', async (t) => {
  const app = await build(t)
  let serialized = 0
  app.registerWebsocket('/ws', {
    // A route's own serializer compiler: counts the serializations of its events.
    serializerCompiler: ({ schema }) => {
      const keys = Object.keys((schema as { properties: object }).properties)
      return (value: any) => { serialized++; return JSON.stringify(Object.fromEntries(keys.map((key) => [key, value[key]]))) }
    },
    events: { said: Said },
    messages: {
      say: {
        schema: Type.Object({ text: Type.String() }),
        handler (session, data) {
          session.room('lobby').emit('said', { from: session.getParameter('me')!, text: data.text, extra: 1 } as any)
          session.room('lobby').emitExcept('said', { from: session.getParameter('me')!, text: `${data.text} again` })
        }
      }
    },
    onOpen (session) {
      session.room('lobby').join()
      if (session.getParameter('me') === 'c') session.room('other').join()
      session.send('joined')
    }
  })
  const base = await listen(app)
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((me) => connect(base, `/ws?me=${me}`)))
  await Promise.all([a!.texts(1), b!.texts(1), c!.texts(1)])
  sendAll(a!, { type: 'say', data: { text: 'hi' } })
  const said = { type: 'said', data: { from: 'a', text: 'hi' } }
  const again = { type: 'said', data: { from: 'a', text: 'hi again' } }
  t.same(await jsonFrom(a!, 1, 2), [said])
  t.same(await jsonFrom(b!, 1, 3), [said, again])
  t.same(await jsonFrom(c!, 1, 3), [said, again])
  t.equal(serialized, 2, 'one serialization per broadcast, for three and two members')
  app.websocketRooms.room('lobby').emit('said', { from: 'server', text: 'all', extra: 2 })
  app.websocketRooms.to(['lobby']).except('other').emit('said', { from: 'server', text: 'not c' })
  t.same(await jsonFrom(a!, 2, 4), [{ type: 'said', data: { from: 'server', text: 'all' } }, { type: 'said', data: { from: 'server', text: 'not c' } }])
  t.same(await jsonFrom(b!, 3, 5), [{ type: 'said', data: { from: 'server', text: 'all' } }, { type: 'said', data: { from: 'server', text: 'not c' } }])
  t.same(await jsonFrom(c!, 3, 4), [{ type: 'said', data: { from: 'server', text: 'all' } }])
  t.equal(serialized, 4)
  throwsLike(t, () => app.websocketRooms.room('lobby').emit('nope', {}), TypeError, { message: /type must be one of the events of the routes \("said"\), got "nope"/ })
  throwsLike(t, () => app.websocketRooms.to('lobby').emit('sad', {}), TypeError, { message: /got "sad" \(did you mean "said"\?\)/ })
})

test('session.ask(): resolves with the client\'s reply; a client\'s own ids like "s1" stay the client\'s', async (t) => {
  const app = await build(t)
  const answers = new Events<unknown>()
  app.registerWebsocket('/ws', {
    events: { question: Type.Object({ q: Type.String() }) },
    messages: {
      // A handler that awaits an ask: the reply is not queued behind it.
      quiz: {
        async handler (session) {
          const answer = await session.ask('question', { q: 'colour?', hidden: 1 } as any)
          answers.push(answer)
          return { got: answer }
        }
      },
      echo: { handler (_session, data) { return data } }
    }
  })
  const client = await connect(await listen(app), '/ws')
  client.ws.on('message', (raw) => {
    const message = JSON.parse(String(raw))
    if (message.type === 'question') sendAll(client, { type: 'echo', id: 's1', data: 'mine' }, { type: 'reply', id: message.id, data: 'blue' })
  })
  sendAll(client, { type: 'quiz', id: 's2' })
  t.same(await client.json(3), [
    { type: 'question', id: 's1', data: { q: 'colour?' } },
    { type: 'reply', id: 's2', data: { got: 'blue' } },
    { type: 'reply', id: 's1', data: 'mine' }
  ])
  t.same(answers.list, ['blue'])
})

test('session.ask(): timeout, close, late and duplicate replies, client errors, bounds and bad arguments', async (t) => {
  const app = await build(t)
  const outcomes = new Events<unknown>()
  const settle = (promise: Promise<unknown>): void => { promise.then((value) => outcomes.push({ value }), (error) => outcomes.push({ code: error.code, message: error.message, clientCode: error.clientCode })) }
  let session!: any
  const opened = gate()
  app.registerWebsocket('/ws', {
    events: { q: Type.Object({ n: Type.Integer() }) },
    messages: { noop: { handler () {} } },
    onOpen (s) { session = s; opened.open() }
  })
  app.registerWebsocket('/plain', { events: { q: Type.Object({ n: Type.Integer() }) }, onOpen (s) { throwsLike(t, () => s.ask('q', { n: 1 }), TypeError, { message: /ask\(\) needs a route with "messages"/ }); s.send('checked') } })
  const base = await listen(app)
  const plain = await connect(base, '/plain')
  t.same(await plain.texts(1), ['checked'])
  await plain.close()
  const client = await connect(base, '/ws')
  await opened.opened
  throwsLike(t, () => session.ask('nope', {}), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /type must be one of the events/ })
  for (const timeout of [0, -1, Number.NaN, 2 ** 31, '10']) throwsLike(t, () => session.ask('q', { n: 1 }, { timeout }), TypeError, { message: /options.timeout must be a number of ms over 0/ })
  throwsLike(t, () => session.ask('q', { n: 1 }, 5), TypeError, { message: /options must be an object/ })
  t.equal(client.received.length, 0, 'a refused ask sends nothing')

  settle(session.ask('q', { n: 1 }, { timeout: 50 }))
  const [timedOut] = await outcomes.until(1)
  t.same(timedOut, { code: 'FST_WS_ROOMS_REQUEST_TIMEOUT', message: 'fastify-websocket-rooms: the client did not answer ask("q") within 50 ms', clientCode: undefined })
  const [asked] = await client.json(1)
  t.same(asked, { type: 'q', id: 's1', data: { n: 1 } })
  // Late: after its timeout. Nothing waits for it, and the session is not troubled.
  sendAll(client, { type: 'reply', id: 's1', data: 'late' })
  settle(session.ask('q', { n: 2 }))
  settle(session.ask('q', { n: 3 }))
  const [, second, third] = await client.json(3)
  t.same([second.id, third.id], ['s2', 's3'])
  sendAll(client, { type: 'reply', id: 's3', error: { code: 'E_NO', message: 'will not' } }, { type: 'reply', id: 's2', data: { a: 1 } }, { type: 'reply', id: 's2', data: 'twice' }, { type: 'reply', id: 9 })
  const [, refused, answered] = await outcomes.until(3)
  t.same(refused, { code: 'FST_WS_ROOMS_CLIENT_ERROR', message: 'fastify-websocket-rooms: the client answered ask("q") with an error: will not', clientCode: 'E_NO' })
  t.same(answered, { value: { a: 1 } })
  settle(session.ask('q', { n: 4 }))
  const fourth = (await client.json(4))[3]
  sendAll(client, { type: 'reply', id: fourth.id, error: null, data: 5 })
  const [, , , nullError] = await outcomes.until(4)
  t.same(nullError, { value: 5 }, 'error: null is no error')

  // Bounded: the 1001st pending ask is refused.
  for (let i = 0; i < 1000; i++) settle(session.ask('q', { n: i }))
  settle(session.ask('q', { n: 1000 }))
  const [tooMany] = (await outcomes.until(5)).slice(4)
  t.match(tooMany, { code: 'FST_WS_ROOMS_TOO_MANY_ASKS' })
  // The session ends: every pending ask rejects with FST_WS_ROOMS_CLOSED, and later ones at once.
  client.ws.close()
  const closed = (await outcomes.until(1005)).slice(5)
  t.ok(closed.every((outcome: any) => outcome.code === 'FST_WS_ROOMS_CLOSED'), 'all 1000 rejected')
  await untilNoSessions(app)
  await t.rejects(session.ask('q', { n: 1 }), { code: 'FST_WS_ROOMS_CLOSED', message: 'fastify-websocket-rooms: the session closed before the client answered ask("q")' })
  t.equal(app.websocketRooms.stats().invalidMessages, 0, 'late, duplicate and unknown replies are ignored, not invalid')
})

test('the route list keeps every route\'s schemas as given', async (t) => {
  const app = await build(t)
  const shared = Type.Object({ n: Type.Integer() }, { $id: 'shared' })
  app.addSchema(shared)
  const Query = Type.Object({ user: Type.String() })
  app.registerWebsocket('/plain', { schema: { querystring: Query, message: Said, outbound: Said }, onMessage () {} })
  await app.register(async (api) => {
    api.registerWebsocket('/routed', {
      schema: { headers: Type.Object({ 'x-a': Type.String() }) },
      messages: { 'chat.send': { schema: Send, reply: Offset, handler () { return { offset: 1 } } }, bare: { handler () {} } },
      events: { said: Said }
    })
  }, { prefix: '/api' })
  const [withShared, routedWithShared] = routeList(app)
  t.same(Object.keys(withShared.sharedSchemas()), ['shared'], 'the shared schemas the route\'s may refer to, read when asked')
  t.same(Object.keys(routedWithShared.sharedSchemas()), ['shared'], 'a child scope sees its parent\'s')
  const [plain, routed] = routeList(app).map(({ sharedSchemas, ...record }) => record)
  t.same(plain, { path: '/plain', schema: { querystring: Query, message: Said, outbound: Said }, envelope: { type: 'type', id: 'id', data: 'data' } })
  t.equal(plain.schema.querystring, Query, 'the schema itself')
  t.same(routed, {
    path: '/api/routed',
    schema: { headers: Type.Object({ 'x-a': Type.String() }) },
    messages: { 'chat.send': { schema: Send, reply: Offset }, bare: {} },
    events: { said: Said },
    envelope: { type: 'type', id: 'id', data: 'data' }
  })
})

test('TypeBox 1.x schemas validate data and serialize replies and events', async (t) => {
  const app = await build(t)
  const { Type: Type1 } = await import('typebox')
  app.registerWebsocket('/ws', {
    messages: {
      add: {
        schema: Type1.Object({ a: Type1.Integer(), b: Type1.Integer() }),
        reply: Type1.Object({ sum: Type1.Integer() }),
        handler (session, data) {
          session.emit('added', { sum: data.a + data.b })
          return { sum: data.a + data.b, hidden: true } as { sum: number }
        }
      }
    },
    events: { added: Type1.Object({ sum: Type1.Integer() }) }
  })
  const client = await connect(await listen(app), '/ws')
  sendAll(client, { type: 'add', id: 1, data: { a: 1, b: 2 } }, { type: 'add', id: 2, data: { a: 1 } })
  t.same(await client.json(3), [
    { type: 'added', data: { sum: 3 } },
    { type: 'reply', id: 1, data: { sum: 3 } },
    { type: 'reply', id: 2, error: { code: 'FST_ERR_VALIDATION', message: 'data must have required property \'b\'' } }
  ])
})

test('a reply the reply schema cannot serialize is an error reply; binary frames without handleBinary close with 1003', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    messages: {
      bad: { reply: Offset, handler () { return { offset: 'not a number' } as any } },
      big: { handler () { return 10n as any } }
    }
  })
  const client = await connect(await listen(app), '/ws')
  sendAll(client, { type: 'bad', id: 1 }, { type: 'big', id: 2 })
  t.same(await client.json(2), [
    { type: 'reply', id: 1, error: { code: 'FST_WS_ROOMS_HANDLER_ERROR', message: 'the reply could not be serialized' } },
    { type: 'reply', id: 2, error: { code: 'FST_WS_ROOMS_HANDLER_ERROR', message: 'the reply could not be serialized' } }
  ])
  client.send(Buffer.from('{"type":"bad","id":3}'))
  t.same(await client.closed, { code: 1003, reason: 'binary messages are not accepted' })
})

test('app.injectWS speaks the same envelope', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', { messages: { 'chat.send': { schema: Send, reply: Offset, handler () { return { offset: 42 } } } } })
  await app.ready()
  const got = new Events<unknown>()
  const ws = await app.injectWS('/ws', {}, { onInit (socket) { socket.on('message', (data) => got.push(JSON.parse(String(data)))) } })
  ws.send(JSON.stringify({ type: 'chat.send', id: 1, data: { room: 'a', text: 'hi' } }))
  t.same(await got.until(1), [{ type: 'reply', id: 1, data: { offset: 42 } }])
  ws.terminate()
})

redisTest('to().emit() and room(name).emit() reach the members of every server, encoded once', async (t) => {
  const keyPrefix = uniquePrefix('routes-emit')
  const servers = await Promise.all([0, 1].map(async () => {
    const app = await build(t, { adapter: redisAdapter({ url: REDIS_URL, keyPrefix }) })
    app.registerWebsocket('/ws', { events: { said: Said }, onOpen (session) { session.room('lobby').join(); session.send('joined') } })
    return app
  }))
  const clients = await Promise.all(servers.map(async (app) => connect(await listen(app), '/ws')))
  await Promise.all(clients.map((client) => client.texts(1)))
  await until(() => servers.every((app) => app.websocketRooms.stats().cluster!.subscribedRooms === 1))
  const members = await servers[0]!.websocketRooms.room('lobby').clusterMembers()
  t.equal(members, 2)
  servers[0]!.websocketRooms.room('lobby').emit('said', { from: 'one', text: 'hi', secret: 1 })
  servers[1]!.websocketRooms.to('lobby').emit('said', { from: 'two', text: 'hey' })
  for (const client of clients) {
    const got = await jsonFrom(client, 1, 3)
    t.same(got.sort((x, y) => x.data.from.localeCompare(y.data.from)), [{ type: 'said', data: { from: 'one', text: 'hi' } }, { type: 'said', data: { from: 'two', text: 'hey' } }])
  }
})

// Typed messages: schema.message parses and validates every text message before the handler
// sees it (onInvalidMessage, or a close with 1007, for the others), schema.outbound serializes
// sendJson/broadcastJson, both compiled by the route's own compilers, once.
import { Type } from '@sinclair/typebox'
import type { FastifySchemaCompiler } from 'fastify'
import { test } from 'tap'
import { redisAdapter } from 'fastify-websocket-rooms'
import { Client, build, connect, listen, throwsLike, until, untilNoSessions } from './helpers'
import { REDIS_URL, redisTest, uniquePrefix } from './redis'
import { Events } from './signals'

const Chat = Type.Union([
  Type.Object({ type: Type.Literal('say'), text: Type.String({ maxLength: 10 }) }),
  Type.Object({ type: Type.Literal('join'), room: Type.String() })
])
const Said = Type.Object({ type: Type.String(), from: Type.String(), text: Type.String() })

test('a valid message reaches onMessage as its value; the union narrows on its tag', async (t) => {
  const app = await build(t)
  const seen = new Events<unknown>()
  app.registerWebsocket('/ws', {
    schema: { message: Chat },
    onMessage (session, message) {
      seen.push(message)
      if (message.type === 'say') session.sendJson({ echo: message.text })
      else session.sendJson({ joined: message.room })
    }
  })
  const client = await connect(await listen(app), '/ws')
  client.send(JSON.stringify({ type: 'say', text: 'hi' }))
  client.send(JSON.stringify({ type: 'join', room: 'lobby' }))
  t.same(await client.json(2), [{ echo: 'hi' }, { joined: 'lobby' }])
  t.same(await seen.until(2), [{ type: 'say', text: 'hi' }, { type: 'join', room: 'lobby' }], 'parsed values, not text')
  t.equal(app.websocketRooms.stats().invalidMessages, 0)
})

test('without onInvalidMessage, a text that is not JSON closes the session with 1007; what was queued after it is dropped', async (t) => {
  const app = await build(t)
  const seen = new Events<unknown>()
  app.registerWebsocket('/ws', {
    schema: { message: Chat },
    onMessage (_session, message) { seen.push(message) }
  })
  const client = await connect(await listen(app), '/ws')
  client.send(JSON.stringify({ type: 'say', text: 'first' }))
  client.send('{"type": "say", "text": ')
  client.send(JSON.stringify({ type: 'say', text: 'after' }))
  t.same(await client.closed, { code: 1007, reason: 'invalid message' })
  await untilNoSessions(app)
  t.same(seen.list, [{ type: 'say', text: 'first' }], 'the message after the invalid one was not handled')
  const stats = app.websocketRooms.stats()
  t.equal(stats.invalidMessages, 1)
  t.equal(stats.closed.invalidMessage, 1)
})

test('without onInvalidMessage, a value that does not match the schema closes the session with 1007', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', { schema: { message: Chat }, onMessage () {} })
  const base = await listen(app)
  for (const text of [JSON.stringify({ type: 'say', text: 'far too long for the schema' }), JSON.stringify({ type: 'shout' }), '42', '""', 'null']) {
    const client = await connect(base, '/ws')
    client.send(text)
    t.same(await client.closed, { code: 1007, reason: 'invalid message' }, text)
  }
  t.equal(app.websocketRooms.stats().closed.invalidMessage, 5)
})

test('onInvalidMessage gets an error in Fastify\'s validation shape and the text; the session stays open, in order', async (t) => {
  const app = await build(t)
  const invalid = new Events<{ code: string, statusCode: number, validationContext: string, validation: unknown, message: string, text: string }>()
  app.registerWebsocket('/ws', {
    schema: { message: Chat },
    onMessage (session, message) {
      if (message.type === 'say') session.sendJson({ ok: message.text })
    },
    onInvalidMessage (session, error, text) {
      invalid.push({ code: error.code, statusCode: error.statusCode, validationContext: error.validationContext, validation: error.validation, message: error.message, text })
      session.sendJson({ invalid: error.code })
    }
  })
  const client = await connect(await listen(app), '/ws')
  client.send(JSON.stringify({ type: 'say', text: 'one' }))
  client.send('not json')
  client.send(JSON.stringify({ type: 'say', text: 12345678901234 }))
  client.send(JSON.stringify({ type: 'say', text: 'two' }))
  t.same(await client.json(4), [{ ok: 'one' }, { invalid: 'FST_WS_ROOMS_INVALID_JSON' }, { invalid: 'FST_ERR_VALIDATION' }, { ok: 'two' }])
  const [notJson, mismatch] = await invalid.until(2)
  t.match(notJson, { code: 'FST_WS_ROOMS_INVALID_JSON', statusCode: 400, validationContext: 'message', message: /^message is not valid JSON/, text: 'not json' })
  t.match(mismatch, { code: 'FST_ERR_VALIDATION', statusCode: 400, validationContext: 'message', message: /message\/text must NOT have more than 10 characters/ })
  t.ok(Array.isArray(mismatch!.validation) && (mismatch!.validation as Array<{ instancePath: string }>).some((e) => e.instancePath === '/text'), 'the validator\'s errors, with their paths')
  t.equal(app.websocketRooms.stats().invalidMessages, 2)
  t.equal(app.websocketRooms.stats().closed.invalidMessage, 0)
  t.equal(app.websocketSessions.size, 1)
})

test('a message that fails a tagged union is told what its own branch wants, or which tags there are', async (t) => {
  const app = await build(t)
  const messages = new Events<string>()
  app.registerWebsocket('/ws', {
    schema: { message: Chat },
    onMessage () {},
    onInvalidMessage (session, error) { messages.push(error.message) }
  })
  const client = await connect(await listen(app), '/ws')
  client.send(JSON.stringify({ type: 'say', text: 'far too long for it' }))
  client.send(JSON.stringify({ type: 'join' }))
  client.send(JSON.stringify({ type: 'shout', text: 'hi' }))
  client.send(JSON.stringify({ text: 'hi' }))
  client.send('42')
  client.send(JSON.stringify({ type: 'say', text: { not: 'a string' } }))
  t.same(await messages.until(6), [
    'message/text must NOT have more than 10 characters',
    'message must have required property \'room\'',
    'message/type must be one of "say", "join"',
    'message must have required property \'type\' (one of "say", "join")',
    'message must be an object whose "type" is one of "say", "join"',
    'message/text must be string'
  ])
})

test('an onInvalidMessage that throws is a handler error (1011), like any other', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    schema: { message: Chat },
    onMessage () {},
    onInvalidMessage () { throw new Error('boom') }
  })
  const client = await connect(await listen(app), '/ws')
  client.send('[')
  t.same(await client.closed, { code: 1011, reason: 'internal error' })
  t.equal(app.websocketRooms.stats().closed.handlerError, 1)
})

test('binary messages still go to handleBinary; a route with schema.message and no handleBinary closes on binary with 1003', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    schema: { message: Type.Object({ n: Type.Integer() }) },
    onMessage (session, message) { session.sendJson({ n: message.n + 1 }) },
    handleBinary (session, data) { session.send(data.reverse()) }
  })
  app.registerWebsocket('/text-only', { schema: { message: Type.Object({ n: Type.Integer() }) }, onMessage () {} })
  const base = await listen(app)
  const client = await connect(base, '/ws')
  client.send(Buffer.from([1, 2, 3]))
  client.send(JSON.stringify({ n: 1 }))
  const [binary, text] = await client.messages(2)
  t.same([...binary!.data as Buffer], [3, 2, 1])
  t.same(JSON.parse(String(text!.data)), { n: 2 })
  const textOnly = await connect(base, '/text-only')
  textOnly.send(Buffer.from('{"n":1}'))
  t.equal((await textOnly.closed).code, 1003)
})

test('prototype poisoning is refused as Fastify refuses it in bodies, and the app\'s onProtoPoisoning applies', async (t) => {
  const poisoned = '{"__proto__": {"admin": true}, "n": 1}'
  const constructorPoisoned = '{"constructor": {"prototype": {"admin": true}}, "n": 1}'
  for (const [fastifyOptions, expected] of [
    [{}, ['FST_WS_ROOMS_INVALID_JSON', 'FST_WS_ROOMS_INVALID_JSON']],
    [{ onProtoPoisoning: 'remove', onConstructorPoisoning: 'remove' }, ['valid {"n":1}', 'valid {"n":1}']]
  ] as const) {
    const app = await build(t, {}, fastifyOptions)
    app.registerWebsocket('/ws', {
      schema: { message: Type.Object({ n: Type.Integer() }) },
      onMessage (session, message) { session.send(`valid ${JSON.stringify(message)}`) },
      onInvalidMessage (session, error) { session.send(error.code) }
    })
    const client = await connect(await listen(app), '/ws')
    client.send(poisoned)
    client.send(constructorPoisoned)
    t.same(await client.texts(2), expected, JSON.stringify(fastifyOptions))
    t.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype was touched')
    await app.close()
  }
})

test('the app\'s ajv options apply, as to a body: Fastify\'s defaults coerce, ajv\'s customOptions can turn that off', async (t) => {
  for (const [ajv, expected] of [[undefined, '{"n":5}'], [{ customOptions: { coerceTypes: false } }, 'FST_ERR_VALIDATION']] as const) {
    const app = await build(t, {}, ajv === undefined ? {} : { ajv })
    app.registerWebsocket('/ws', {
      schema: { message: Type.Object({ n: Type.Integer(), tag: Type.String({ default: 'none' }) }, { additionalProperties: false }) },
      onMessage (session, message) { session.send(JSON.stringify({ n: message.n })) },
      onInvalidMessage (session, error) { session.send(error.code) }
    })
    const client = await connect(await listen(app), '/ws')
    client.send('{"n": "5"}')
    t.same(await client.texts(1), [expected], ajv === undefined ? 'default ajv options' : 'coerceTypes: false')
    await app.close()
  }
  const app = await build(t)
  const seen = new Events<unknown>()
  app.registerWebsocket('/ws', {
    schema: { message: Type.Object({ n: Type.Integer(), tag: Type.String({ default: 'none' }) }, { additionalProperties: false }) },
    onMessage (_session, message) { seen.push(message) }
  })
  const client = await connect(await listen(app), '/ws')
  client.send('{"n": 1, "extra": true}')
  t.same(await seen.until(1), [{ n: 1, tag: 'none' }], 'defaults applied and additional properties removed, as Fastify\'s ajv does')
})

test('shared schemas added with app.addSchema() can be referenced', async (t) => {
  const app = await build(t)
  app.addSchema({ $id: 'chat-message', type: 'object', properties: { text: { type: 'string' } }, required: ['text'] })
  app.registerWebsocket('/ws', {
    schema: { message: { $ref: 'chat-message#' } },
    onMessage (session, message) { session.sendJson(message) },
    onInvalidMessage (session, error) { session.send(error.code) }
  })
  const client = await connect(await listen(app), '/ws')
  client.send('{"text": "hi"}')
  client.send('{"txt": "hi"}')
  t.same(await client.texts(2), ['{"text":"hi"}', 'FST_ERR_VALIDATION'])
})

test('TypeBox 1.x schemas validate and serialize as 0.3x ones do', async (t) => {
  const { Type: Type1 } = await import('typebox')
  const app = await build(t)
  app.registerWebsocket('/ws', {
    schema: {
      message: Type1.Union([Type1.Object({ type: Type1.Literal('say'), text: Type1.String() }), Type1.Object({ type: Type1.Literal('ping') })]),
      outbound: Type1.Object({ type: Type1.String(), text: Type1.String() })
    },
    onMessage (session, message) {
      session.sendJson(message.type === 'say' ? { type: 'said', text: message.text, hidden: 1 } as any : { type: 'pong', text: '' })
    },
    onInvalidMessage (session, error) { session.sendJson({ type: 'invalid', text: error.code }) }
  })
  const client = await connect(await listen(app), '/ws')
  client.send('{"type": "say", "text": "hi"}')
  client.send('{"type": "ping"}')
  client.send('{"type": "say"}')
  t.same(await client.json(3), [{ type: 'said', text: 'hi' }, { type: 'pong', text: '' }, { type: 'invalid', text: 'FST_ERR_VALIDATION' }])
})

test('schema.outbound: fields it does not name never leave the server, from sendJson, broadcastJson and broadcastExceptJson', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    schema: { message: Type.Object({ text: Type.String() }), outbound: Said },
    onConnected (session) { session.room('lobby').join() },
    onMessage (session, message) {
      const user = { type: 'said', from: 'ann', text: message.text, password: 'secret' }
      session.sendJson(user)
      session.room('lobby').broadcastJson(user)
      session.room('lobby').broadcastExceptJson({ ...user, type: 'others' })
    }
  })
  const base = await listen(app)
  const [ann, bob] = await Promise.all([connect(base, '/ws'), connect(base, '/ws')])
  ann!.send('{"text": "hi"}')
  t.same(await ann!.json(2), [{ type: 'said', from: 'ann', text: 'hi' }, { type: 'said', from: 'ann', text: 'hi' }])
  t.same(await bob!.json(2), [{ type: 'said', from: 'ann', text: 'hi' }, { type: 'others', from: 'ann', text: 'hi' }])
  t.notOk(ann!.received.concat(bob!.received).some((m) => String(m.data).includes('secret')))
})

test('without schema.outbound, sendJson and broadcastJson write JSON.stringify\'s text; a value that is not JSON is a TypeError naming it', async (t) => {
  const app = await build(t)
  let session: any
  app.registerWebsocket('/ws', {
    onConnected (s) {
      session = s
      s.room('r').join()
      s.sendJson({ a: 1, nested: { b: [true, null] } })
      s.room('r').broadcastJson('text')
    }
  })
  const client = await connect(await listen(app), '/ws')
  t.same(await client.texts(2), ['{"a":1,"nested":{"b":[true,null]}}', '"text"'])
  app.websocketRooms.room('r').broadcastJson({ from: 'server', extra: 1 })
  t.same((await client.texts(3))[2], '{"from":"server","extra":1}', 'app.websocketRooms.room(name).broadcastJson: JSON.stringify')
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  for (const value of [undefined, () => {}, 10n, cycle]) {
    throwsLike(t, () => session.sendJson(value), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /^fastify-websocket-rooms: value must be a JSON value/ })
    throwsLike(t, () => app.websocketRooms.room('r').broadcastJson(value), TypeError, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT' })
  }
})

test('a value schema.outbound cannot serialize is a TypeError naming it', async (t) => {
  const app = await build(t)
  const errors = new Events<unknown>()
  app.registerWebsocket('/ws', {
    schema: { outbound: Said },
    onConnected (session) {
      try {
        session.sendJson({ type: 'said', text: 'no from' } as any)
      } catch (error) {
        errors.push(error)
      }
      session.sendJson({ type: 'said', from: 'server', text: 'after' })
    }
  })
  const client = await connect(await listen(app), '/ws')
  t.same(await client.json(1), [{ type: 'said', from: 'server', text: 'after' }])
  const [error] = await errors.until(1)
  t.type(error, TypeError)
  t.match(error, { code: 'FST_WS_ROOMS_INVALID_ARGUMENT', message: /value must be a value that schema\.outbound can serialize.*from/ })
})

test('a broadcastJson to many members is serialized once; the compilers run once per route, at app.ready()', async (t) => {
  const app = await build(t)
  const compiled = { validator: 0, serializer: 0 }
  let serialized = 0
  const validatorCompiler: FastifySchemaCompiler<any> = () => {
    compiled.validator++
    return (data: any) => typeof data?.text === 'string' ? { value: data } : { error: new Error('text must be a string') }
  }
  app.registerWebsocket('/ws', {
    schema: { message: Type.Object({ text: Type.String() }), outbound: Said },
    validatorCompiler,
    serializerCompiler: () => {
      compiled.serializer++
      return (value: any) => { serialized++; return JSON.stringify({ type: value.type, from: value.from, text: value.text }) }
    },
    onConnected (session) { session.room('many').join() },
    onMessage (session, message) { session.room('many').broadcastJson({ type: 'said', from: session.id, text: message.text }) },
    onInvalidMessage (session, error) { session.send(error.message) }
  })
  t.same(compiled, { validator: 0, serializer: 0 }, 'nothing compiled before app.ready()')
  await app.ready()
  t.same(compiled, { validator: 1, serializer: 1 }, 'compiled at app.ready()')
  const base = await listen(app)
  const clients: Client[] = []
  for (let i = 0; i < 50; i++) clients.push(await connect(base, '/ws'))
  t.same(compiled, { validator: 1, serializer: 1 }, 'compiled once for 50 sessions')
  clients[0]!.send('{"text": "to all"}')
  for (const client of clients) t.equal(JSON.parse((await client.texts(1))[0]!).text, 'to all')
  t.equal(serialized, 1, 'one serialization for 50 members')
  clients[1]!.send('{"text": 5}')
  t.same((await clients[1]!.texts(2))[1], 'text must be a string', 'a custom compiler\'s { error } result is an invalid message')
})

test('a validator compiler the app installed (setValidatorCompiler) is the one used', async (t) => {
  const app = await build(t)
  const compiledFor: unknown[] = []
  app.setValidatorCompiler(({ schema, httpPart }) => {
    compiledFor.push(httpPart)
    return (data: any) => (schema as { const?: unknown }).const === undefined || data === (schema as { const?: unknown }).const
  })
  app.registerWebsocket('/ws', {
    schema: { message: { const: 'hello' } },
    onMessage (session, message) { session.sendJson({ got: message }) },
    onInvalidMessage (session, error) { session.sendJson({ invalid: error.code }) }
  })
  const client = await connect(await listen(app), '/ws')
  client.send('"hello"')
  client.send('"bye"')
  t.same(await client.json(2), [{ got: 'hello' }, { invalid: 'FST_ERR_VALIDATION' }])
  t.same(compiledFor, ['body'], 'compiled as a body is')
})

test('an asynchronous validator ($async schema) keeps the order of messages', async (t) => {
  const app = await build(t, {}, {
    ajv: {
      plugins: [(ajv: any) => ajv.addKeyword({ keyword: 'slowEven', async: true, validate: async (_: unknown, n: number) => { await new Promise((resolve) => setImmediate(resolve)); return n % 2 === 0 } })]
    }
  })
  app.registerWebsocket('/ws', {
    schema: { message: { $async: true, type: 'integer', slowEven: true } },
    onMessage (session, message) { session.send(`even ${message as number}`) },
    onInvalidMessage (session, _error, text) { session.send(`odd ${text}`) }
  })
  const client = await connect(await listen(app), '/ws')
  for (let n = 0; n < 6; n++) client.send(String(n))
  t.same(await client.texts(6), ['even 0', 'odd 1', 'even 2', 'odd 3', 'even 4', 'odd 5'])
})

test('a custom compiler\'s asynchronous validator: { error } is an invalid message, { value } is what the handler gets', async (t) => {
  const app = await build(t)
  // Fastify's types admit only its own branded promises from a validator; at run time it awaits any.
  const validate = async (data: any): Promise<unknown> => typeof data?.text === 'string'
    ? { value: { text: data.text.toUpperCase() } }
    : { error: new Error('text must be a string') }
  app.registerWebsocket('/ws', {
    schema: { message: { type: 'object' } },
    validatorCompiler: () => validate as any,
    onMessage (session, message) { session.send(`valid ${JSON.stringify(message)}`) },
    onInvalidMessage (session, error) { session.send(`invalid ${error.message}`) }
  })
  const client = await connect(await listen(app), '/ws')
  client.send('{"text": "hi"}')
  client.send('{"text": 5}')
  t.same(await client.texts(2), ['valid {"text":"HI"}', 'invalid text must be a string'])
})

test('an ajv $async validator resolves with the value itself, even one with `error` or `value` keys', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    schema: { message: { $async: true, type: 'object', properties: { error: { type: 'string' }, value: { type: 'integer' } } } },
    onMessage (session, message) { session.send(`valid ${JSON.stringify(message)}`) },
    onInvalidMessage (session, error) { session.send(`invalid ${error.code}`) }
  })
  const client = await connect(await listen(app), '/ws')
  client.send('{"error": "not one", "value": 1}')
  client.send('{"value": "x"}')
  t.same(await client.texts(2), ['valid {"error":"not one","value":1}', 'invalid FST_ERR_VALIDATION'])
})

test('a schema its compiler refuses fails app.ready() naming the route and the schema, as an HTTP route\'s does', async (t) => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ message: { type: 'no-such-type' } }, 'message', /schema is invalid/],
    [{ outbound: { type: 'object', properties: { a: { $ref: 'missing#' } } } }, 'outbound', /Cannot resolve ref "missing#"/],
    // With a handshake schema of its own, the route has Fastify's compilers set up already.
    [{ querystring: Type.Object({ user: Type.String() }), message: { type: 'object', properties: { a: { type: 'strin' } } } }, 'message', /schema is invalid/]
  ]
  for (const [schema, part, cause] of cases) {
    const app = await build(t)
    await app.register(async (api) => {
      api.registerWebsocket('/bad', { schema, onMessage () {}, onConnected () {} } as any)
    }, { prefix: '/api' })
    const error = await app.ready().then(() => null, (err: Error) => err)
    t.match(error, { code: 'FST_WS_ROOMS_SCHEMA_BUILD', message: `fastify-websocket-rooms: schema.${part} of "/bad" does not compile: ` }, part)
    t.match(error?.message, cause, part)
    t.equal(app.websocketSessions.size, 0)
  }
})

test('a 1 MiB deeply nested JSON array costs a parse, not the process: closed with 1007, or handed to onInvalidMessage', async (t) => {
  const depth = 512 * 1024 // '[' and ']' each: 1 MiB in all, the default maxPayload
  const nested = '['.repeat(depth) + ']'.repeat(depth)
  const app = await build(t)
  const treeSchema = { definitions: { tree: { anyOf: [{ type: 'integer' }, { type: 'array', items: { $ref: '#/definitions/tree' } }] } }, $ref: '#/definitions/tree' }
  app.registerWebsocket('/object', { schema: { message: Type.Object({ text: Type.String() }) }, onMessage () {} })
  app.registerWebsocket('/tree', {
    schema: { message: treeSchema },
    onMessage (session) { session.send('valid') },
    onInvalidMessage (session, error) { session.send(`invalid: ${error.message}`) }
  })
  const base = await listen(app)
  const object = await connect(base, '/object')
  object.send(nested)
  t.same(await object.closed, { code: 1007, reason: 'invalid message' })
  const tree = await connect(base, '/tree')
  tree.send(nested)
  tree.send('[[1, [2]], 3]')
  const [first, second] = await tree.texts(2)
  // A recursive schema descends as deep as the value: past the stack, that is an invalid message.
  t.ok(first === 'valid' || /^invalid: message could not be validated: Maximum call stack size exceeded$/.test(first!), `the nested array: ${first}`)
  t.equal(second, 'valid', 'the session goes on')
})

test('registration refuses schema.message without a text handler, onInvalidMessage without schema.message, and a schema that is not one', async (t) => {
  const app = await build(t)
  throwsLike(t, () => app.registerWebsocket('/a', { schema: { message: Chat }, onOpen () {} }), TypeError, {
    code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: /schema\.message describes text messages, but no handleText\/onMessage handler is given/
  })
  throwsLike(t, () => app.registerWebsocket('/b', { onMessage () {}, onInvalidMessage () {} }), TypeError, {
    code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: /onInvalidMessage is given, but no schema\.message/
  })
  throwsLike(t, () => app.registerWebsocket('/c', { schema: { message: 'string' as any }, onMessage () {} }), TypeError, {
    code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: /schema\.message must be a JSON schema \(an object\), got "string"/
  })
  throwsLike(t, () => app.registerWebsocket('/d', { schema: { outbound: [] as any }, onMessage () {} }), TypeError, {
    code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: /schema\.outbound must be a JSON schema/
  })
})

test('the handshake schema Fastify gets has no message schemas, and the user\'s schema object is left as it was', async (t) => {
  const app = await build(t)
  const schema = Object.freeze({ querystring: Type.Object({ user: Type.String() }), message: Chat, outbound: Said })
  let routeSchema: Record<string, unknown> | undefined
  app.addHook('onRoute', (route) => { if (route.url === '/ws') routeSchema = route.schema as Record<string, unknown> })
  app.registerWebsocket('/ws', { schema, onMessage () {} })
  t.ok(routeSchema !== undefined && 'querystring' in routeSchema && !('message' in routeSchema) && !('outbound' in routeSchema))
  t.same(Object.keys(schema), ['querystring', 'message', 'outbound'])
  const base = await listen(app)
  const refused = new Client(base + '/ws')
  t.equal(await new Promise<number>((resolve) => refused.ws.once('unexpected-response', (_request, res) => resolve(res.statusCode!))), 400, 'the handshake is still validated')
})

redisTest('broadcastJson across the cluster: serialized once, on the node that broadcasts; the others get the bytes', async (t) => {
  const keyPrefix = uniquePrefix('json')
  let serialized = 0
  const nodes = []
  for (let i = 0; i < 2; i++) {
    const app = await build(t, { adapter: redisAdapter({ url: REDIS_URL, keyPrefix }) })
    app.registerWebsocket('/ws', {
      schema: { message: Type.Object({ text: Type.String() }), outbound: Said },
      serializerCompiler: () => (value: any) => { serialized++; return JSON.stringify({ type: value.type, from: value.from, text: value.text }) },
      onConnected (session) { session.room('everywhere').join(); session.send('joined') },
      onMessage (session, message) { session.room('everywhere').broadcastJson({ type: 'said', from: 'a', text: message.text, secret: 1 } as any) }
    })
    nodes.push({ app, base: await listen(app) })
  }
  const clients = await Promise.all(nodes.flatMap(({ base }) => [connect(base, '/ws'), connect(base, '/ws')]))
  await Promise.all(clients.map((client) => client.texts(1)))
  // Each node's subscription is live in Redis once its count answers.
  for (const { app } of nodes) await app.websocketRooms.room('everywhere').clusterMembers()
  clients[0]!.send('{"text": "hello"}')
  for (const client of clients) t.same(JSON.parse((await client.texts(2))[1]!), { type: 'said', from: 'a', text: 'hello' })
  t.equal(serialized, 1, 'one serialization for four members on two nodes')
})

test('validatorCompiler and serializerCompiler are route options, as in Fastify: the handshake schemas use them too', async (t) => {
  const app = await build(t)
  let used = false
  app.registerWebsocket('/ws', {
    schema: { querystring: Type.Object({ n: Type.String() }) },
    validatorCompiler: () => { used = true; return () => true },
    onOpen (session) { session.send('open') }
  })
  const client = await connect(await listen(app), '/ws?n=1')
  t.same(await client.texts(1), ['open'])
  t.ok(used, 'the route\'s validatorCompiler compiled its querystring schema')
})

test('under injectWS too: messages are validated and serialized through the schemas', async (t) => {
  const app = await build(t)
  app.registerWebsocket('/ws', {
    schema: { message: Chat, outbound: Said },
    onMessage (session, message) {
      if (message.type === 'say') session.sendJson({ type: 'said', from: 'me', text: message.text, extra: true } as any)
    },
    onInvalidMessage (session, error) { session.sendJson({ type: 'invalid', from: 'server', text: error.code }) }
  })
  await app.ready()
  const socket = await app.injectWS('/ws')
  const received = new Events<string>()
  socket.on('message', (data: Buffer) => received.push(String(data)))
  socket.send(JSON.stringify({ type: 'say', text: 'hi' }))
  socket.send('{')
  t.same(await received.until(2), ['{"type":"said","from":"me","text":"hi"}', '{"type":"invalid","from":"server","text":"FST_WS_ROOMS_INVALID_JSON"}'])
  socket.terminate()
  await untilNoSessions(app)
})

test('a stuck onInvalidMessage, or a stuck asynchronous validator, is named in the log when the session is dropped', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const app = await build(t, { closeTimeout: 200 }, {
    ajv: { plugins: [(ajv: any) => ajv.addKeyword({ keyword: 'never', async: true, validate: () => new Promise(() => {}) })] },
    logger: { level: 'error', stream: { write: (line: string) => lines.push(JSON.parse(line)) } }
  })
  app.registerWebsocket('/invalid', {
    schema: { message: Type.Object({ n: Type.Integer() }) },
    onMessage () {},
    onInvalidMessage () { return new Promise(() => {}) }
  })
  app.registerWebsocket('/validator', {
    schema: { message: { $async: true, type: 'integer', never: true } },
    onMessage () {}
  })
  const base = await listen(app)
  for (const [path, handler] of [['/invalid', 'onInvalidMessage'], ['/validator', 'the validator of schema.message']]) {
    const client = await connect(base, path)
    client.send(path === '/invalid' ? '"not an object"' : '1')
    client.ws.terminate()
    await until(() => lines.some((line) => line.handler === handler), `the log line naming ${handler}`)
    t.match(lines.find((line) => line.handler === handler), { msg: `${handler} has not settled within closeTimeout (200 ms); the session is dropped without waiting for it` })
  }
  await untilNoSessions(app)
})

test('a route\'s own compiler that refuses its schema fails app.ready(), called once', async (t) => {
  const app = await build(t)
  let compiles = 0
  app.registerWebsocket('/ws', {
    schema: { message: { type: 'object' } },
    validatorCompiler: () => { compiles++; throw new Error(`refused, attempt ${compiles}`) },
    onMessage () {}
  })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_WS_ROOMS_SCHEMA_BUILD', message: 'fastify-websocket-rooms: schema.message of "/ws" does not compile: refused, attempt 1' })
  t.equal(compiles, 1)
})

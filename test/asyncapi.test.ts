// The AsyncAPI document: built from route records (lib/asyncapi/document.ts) for every kind
// of route, and served by a real app (the `asyncapi` option, app.websocketRooms.asyncapi()).
// Every document is validated by @asyncapi/parser: no error and no warning, and of the
// other diagnostics only the notice that a newer 3.x exists. A parse takes seconds, so the
// route records of the tests below are validated together, in one document, by the last one.
import { Parser, DiagnosticSeverity } from '@asyncapi/parser'
import { Type } from '@sinclair/typebox'
import { test, type Test } from 'tap'
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'
import type { RouteRecord } from '../lib/asyncapi/document'
import { build, throwsLike } from './helpers'

// The built module, which coverage counts (the tests run dist/, as users do), typed by its source.
const { asyncApiDocument } = require('../dist/lib/asyncapi/document') as typeof import('../lib/asyncapi/document')
const parser = new Parser()
const ENVELOPE = { type: 'type', id: 'id', data: 'data' }
const INFO = { title: 'Chat', version: '2.1.0' }
/** What AsyncAPI allows in the keys of channels, messages, operations and components. */
const ID = /^[\w.-]+$/

/** Parses `document`: no diagnostic of any severity but the notice that 3.0.0 is not the newest 3.x. */
async function validate (t: Test, document: unknown): Promise<void> {
  const { diagnostics } = await parser.parse(document as any)
  const serious = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning)
  t.same(serious.map((d) => `${d.code}: ${d.message} at ${d.path.join('/')}`), [], 'no error nor warning')
  const others = diagnostics.filter((d) => !serious.includes(d))
  t.same(others.map((d) => d.code), ['asyncapi-latest-version'], 'only the notice that a newer 3.x exists')
}

/** The route records of the tests, validated together at the end. */
const validated: RouteRecord[] = []

/** The document of these routes, whose records are kept for the validation at the end. */
function documentOf (routes: RouteRecord[]): any {
  validated.push(...routes)
  return asyncApiDocument(routes, INFO)
}

/** Every id of the document, where AsyncAPI restricts them. */
function ids (document: any): string[] {
  return [
    ...Object.keys(document.channels),
    ...Object.values(document.channels).flatMap((channel: any) => Object.keys(channel.messages)),
    ...Object.keys(document.operations),
    ...Object.keys(document.components?.schemas ?? {})
  ]
}

/** Whether any object of the value has a key or symbol TypeBox puts on schemas. */
function hasTypeBoxFields (value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false
  if (Reflect.ownKeys(value).some((key) => typeof key === 'symbol' || key.startsWith('~'))) return true
  return Object.values(value).some(hasTypeBoxFields)
}

const chat: RouteRecord = {
  path: '/chat',
  schema: { querystring: Type.Object({ user: Type.String() }) },
  messages: {
    'chat.send': {
      schema: Type.Object({ room: Type.String(), text: Type.String({ maxLength: 2000 }) }),
      reply: Type.Object({ offset: Type.Integer() })
    },
    'room.join': { schema: Type.Object({ room: Type.String() }) }
  },
  events: { 'chat.message': Type.Object({ from: Type.String(), text: Type.String() }) },
  envelope: ENVELOPE
}

test('message routes: a receive operation per type with its reply, a send operation per event, envelopes explicit', async (t) => {
  const document = documentOf([chat])
  t.equal(document.asyncapi, '3.0.0')
  t.same(document.info, INFO)
  const channel = document.channels.chat
  t.equal(channel.address, '/chat')
  t.same(channel.bindings.ws, { method: 'GET', query: { type: 'object', required: ['user'], properties: { user: { type: 'string' } } }, bindingVersion: '0.1.0' })
  t.same(Object.keys(channel.messages), ['chat.send', 'chat.send.reply', 'reply.error', 'room.join', 'chat.message', 'ask.reply'])
  t.same(channel.messages['chat.send'].payload, {
    type: 'object',
    properties: {
      type: { const: 'chat.send' },
      id: { description: 'Chosen by the sender to get a reply, which carries it back.', anyOf: [{ type: 'string', maxLength: 128 }, { type: 'integer', minimum: -(2 ** 53 - 1), maximum: 2 ** 53 - 1 }] },
      data: { type: 'object', required: ['room', 'text'], properties: { room: { type: 'string' }, text: { type: 'string', maxLength: 2000 } } }
    },
    required: ['type', 'data']
  })
  t.match(channel.messages['chat.send.reply'].payload, { properties: { type: { const: 'reply' }, data: { properties: { offset: { type: 'integer' } } } }, required: ['type', 'id', 'data'] })
  t.match(channel.messages['reply.error'].payload, { properties: { type: { const: 'reply' }, error: { required: ['code', 'message'] } }, required: ['type', 'id', 'error'] })
  t.same(channel.messages['chat.message'].payload.required, ['type', 'data'])
  t.same(channel.messages['chat.message'].payload.properties.id.type, 'string', 'an event may carry the server\'s id: an ask')
  t.match(channel.messages['ask.reply'].payload, { properties: { type: { const: 'reply' }, id: { type: 'string' }, data: {}, error: { required: ['code', 'message'] } }, required: ['type', 'id'] })

  const ref = (message: string) => ({ $ref: `#/channels/chat/messages/${message}` })
  t.same(document.operations, {
    'chat.receive.chat.send': {
      action: 'receive',
      channel: { $ref: '#/channels/chat' },
      messages: [ref('chat.send')],
      reply: { channel: { $ref: '#/channels/chat' }, messages: [ref('chat.send.reply'), ref('reply.error')] }
    },
    'chat.receive.room.join': { action: 'receive', channel: { $ref: '#/channels/chat' }, messages: [ref('room.join')] },
    'chat.send.chat.message': { action: 'send', channel: { $ref: '#/channels/chat' }, messages: [ref('chat.message')] },
    'chat.receive.ask.reply': { action: 'receive', channel: { $ref: '#/channels/chat' }, messages: [ref('ask.reply')] }
  })
  t.equal(JSON.stringify(asyncApiDocument([chat], INFO)), JSON.stringify(document), 'the same routes give the same document')
})

test('renamed envelope fields are the payload\'s property names', async (t) => {
  const document = documentOf([{ ...chat, envelope: { type: 't', id: 'i', data: 'd' } }])
  t.same(Object.keys(document.channels.chat.messages['chat.send'].payload.properties), ['t', 'i', 'd'])
  t.same(document.channels.chat.messages['chat.send.reply'].payload.required, ['t', 'i', 'd'])
  t.same(document.channels.chat.messages['reply.error'].payload.required, ['t', 'i', 'error'])
})

test('onMessage routes: schema.message received, schema.outbound sent; a route with neither has messages of any payload', async (t) => {
  const routes: RouteRecord[] = [
    { path: '/typed', schema: { message: Type.Object({ text: Type.String() }), outbound: Type.Object({ echo: Type.String() }) }, envelope: ENVELOPE },
    { path: '/in', schema: { message: Type.String() }, envelope: ENVELOPE },
    { path: '/out', schema: { outbound: Type.Number() }, envelope: ENVELOPE },
    { path: '/plain', schema: {}, envelope: ENVELOPE }
  ]
  const document = documentOf(routes)
  t.same(document.channels.typed.messages, {
    message: { name: 'message', contentType: 'application/json', payload: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } } },
    outbound: { name: 'outbound', contentType: 'application/json', payload: { type: 'object', required: ['echo'], properties: { echo: { type: 'string' } } } }
  })
  const operations = (channel: string) => Object.values(document.operations)
    .filter((o: any) => o.channel.$ref === `#/channels/${channel}`)
    .map((o: any) => `${o.action} ${o.messages.map((m: any) => m.$ref.split('/').pop()).join()}`)
  t.same(operations('typed'), ['receive message', 'send outbound'])
  t.same(operations('in'), ['receive message', 'send outbound'])
  t.notOk('payload' in document.channels.in.messages.outbound, 'what /in sends is not declared')
  t.same(operations('out'), ['receive message', 'send outbound'])
  t.notOk('payload' in document.channels.out.messages.message, 'what /out receives is not declared')
  t.same(operations('plain'), ['receive message', 'send message'])
  t.same(Object.keys(document.channels.plain.messages), ['message'])
  t.notOk('payload' in document.channels.plain.messages.message)
})

test('params, query and headers: address parameters and the WebSocket binding', async (t) => {
  const routes: RouteRecord[] = [
    {
      path: '/rooms/:room/users/:user(^\\d+)/files/*',
      schema: {
        params: Type.Object({ room: Type.Union([Type.Literal('a'), Type.Literal('b')], { description: 'The room' }), user: Type.String() }),
        querystring: Type.Object({ token: Type.String(), since: Type.Optional(Type.Integer()) }),
        headers: Type.Object({ 'x-client': Type.String() })
      },
      envelope: ENVELOPE
    },
    { path: '/time::now', schema: { querystring: Type.Union([Type.Object({ a: Type.String() }), Type.Object({ b: Type.String() })]) }, envelope: ENVELOPE },
    { path: '/', schema: {}, envelope: ENVELOPE }
  ]
  const document = documentOf(routes)
  const files = document.channels['rooms_room_users_user_d_files_']
  t.equal(files.address, '/rooms/{room}/users/{user}/files/{wildcard}')
  t.equal(files.title, '/rooms/:room/users/:user(^\\d+)/files/*')
  t.same(files.parameters, {
    room: { description: 'The room' },
    user: { description: 'Matches ^\\d+' },
    wildcard: { description: 'The rest of the path (params["*"]).' }
  })
  t.same(files.bindings.ws.query, { type: 'object', required: ['token'], properties: { token: { type: 'string' }, since: { type: 'integer' } } })
  t.same(files.bindings.ws.headers, { type: 'object', required: ['x-client'], properties: { 'x-client': { type: 'string' } } })
  const time = document.channels['time_now']
  t.equal(time.address, '/time:now')
  t.notOk('parameters' in time)
  t.same(time.bindings.ws.query.properties, {}, 'a query schema that is not an object with properties is wrapped in one')
  t.equal(time.bindings.ws.query.allOf[0].anyOf.length, 2)
  t.equal(document.channels.root.address, '/')
})

test('odd type names and paths: valid, unique ids; the names as they are', async (t) => {
  const odd = ['chat send', 'chat/send', 'chat~send', 'chat_send', 'élan', '', '#', '$ref', 'a'.repeat(300)]
  const routes: RouteRecord[] = [
    { path: '/x y', schema: {}, messages: Object.fromEntries(odd.map((type) => [type, { schema: Type.Object({ n: Type.Number() }), reply: Type.Null() }])), events: Object.fromEntries(odd.map((type) => [type, Type.String()])), envelope: ENVELOPE },
    { path: '/x/y', schema: {}, envelope: ENVELOPE },
    { path: '/x_y', schema: {}, envelope: ENVELOPE }
  ]
  const document = documentOf(routes)
  const all = ids(document)
  t.same(all.filter((id) => !ID.test(id)), [], 'every id is one AsyncAPI allows')
  t.same(Object.keys(document.channels), ['x_y', 'x_y_2', 'x_y_3'])
  const messages = Object.values(document.channels.x_y.messages) as any[]
  const constants = messages.map((m) => m.payload?.properties.type.const)
  for (const type of odd) t.equal(constants.filter((c) => c === type).length, 2, `"${type}" is received and sent, under its own name`)
  t.equal(new Set(Object.keys(document.channels.x_y.messages)).size, odd.length * 3 + 2, 'a message, a reply and an event per type, the error reply and the answer to asks')
  t.equal(Object.keys(document.operations).length, odd.length * 2 + 5)
  t.equal(JSON.stringify(asyncApiDocument(routes, INFO)), JSON.stringify(document), 'the same routes give the same document')
})

test('TypeBox 1.x and 0.3x schemas become plain JSON Schema; schemas with an $id go to components', async (t) => {
  const { Type: Type1 } = await import('typebox')
  const User1 = Type1.Object({ name: Type1.String() }, { $id: 'User' })
  const Tree0 = Type.Recursive((This) => Type.Object({ value: Type.Number(), children: Type.Array(This) }), { $id: 'Tree' })
  const route: RouteRecord = {
    path: '/typebox',
    schema: { querystring: Type1.Object({ token: Type1.Optional(Type1.String()) }) },
    messages: {
      one: {
        // Type.Ref(schema), which JavaScript may still call, keeps the schema under $ref.
        schema: Type1.Object({ user: Type1.Ref(User1 as any), tags: Type1.Array(Type1.String()), mode: Type1.Union([Type1.Literal('a'), Type1.Null()]), at: Type1.Readonly(Type1.Integer()) }),
        reply: Type1.Cyclic({ Node: Type1.Object({ next: Type1.Union([Type1.Ref('Node'), Type1.Null()]) }) }, 'Node')
      },
      zero: { schema: Type.Object({ tree: Tree0, author: Type.Ref('User'), opt: Type.Optional(Type.Record(Type.String(), Type.Boolean())) }, { description: 'Zero: a tree' }) }
    },
    events: { user: User1, local: Type.Object({ a: Type.String() }, { $defs: { b: Type.String() } }) },
    envelope: ENVELOPE
  }
  // The local $ref: a schema's own definitions, pointed at from its place in the document.
  ;(route.events!.local as any).properties.b = { $ref: '#/$defs/b' }
  const document = documentOf([route])
  t.notOk(hasTypeBoxFields(document), 'no TypeBox symbol or ~field left')
  t.same(Object.keys(document.components.schemas), ['User', 'Node', 'Tree'])
  t.same(document.components.schemas.User, { type: 'object', required: ['name'], properties: { name: { type: 'string' } } })
  t.same(document.components.schemas.Tree.properties.children.items, { $ref: '#/components/schemas/Tree' })
  const messages = document.channels.typebox.messages
  t.same(messages.one.payload.properties.data.properties.user, { $ref: '#/components/schemas/User' })
  t.same(messages.one.payload.properties.data.required, ['user', 'tags', 'mode', 'at'])
  t.same(messages.zero.payload.properties.data.properties.author, { $ref: '#/components/schemas/User' }, '0.3x Type.Ref(id) points at the component of 1.x\'s schema')
  t.same(messages.zero.payload.properties.data.required, ['tree', 'author'], 'Optional leaves required')
  t.equal(messages.zero.summary, 'Zero: a tree')
  t.same(messages.user.payload.properties.data, { $ref: '#/components/schemas/User' })
  t.same(messages.local.payload.properties.data.properties.b, { $ref: '#/channels/typebox/messages/local/payload/properties/data/$defs/b' })
})

test('every document above validates, and as 3.1.0 without a single diagnostic', async (t) => {
  t.ok(validated.length >= 10)
  const document: any = asyncApiDocument(validated, INFO)
  await validate(t, document)
  t.same(ids(document).filter((id) => !ID.test(id)), [])
  // A relabelled copy meets the newest 3.x too: then not even a notice.
  const { diagnostics } = await parser.parse({ ...document, asyncapi: '3.1.0' } as any)
  t.same(diagnostics.map((d) => `${d.code}: ${d.message}`), [], 'as 3.1.0: no diagnostic of any severity')
})

test('a schema the document cannot hold is named', async (t) => {
  const unknownRef: RouteRecord = { path: '/r', schema: { message: Type.Object({ a: Type.Ref('Missing') }) }, envelope: ENVELOPE }
  t.throws(() => asyncApiDocument([unknownRef], INFO), { where: 'route "/r" schema.message', message: /\$ref "Missing", which names no schema/ })
  const notJson: RouteRecord = { path: '/j', schema: {}, events: { e: { const: 1n } }, envelope: ENVELOPE }
  t.throws(() => asyncApiDocument([notJson], INFO), { where: 'route "/j" events["e"]', message: /is not JSON/ })
  const badRef: RouteRecord = { path: '/b', schema: {}, messages: { m: { schema: { $ref: 42 } } }, envelope: ENVELOPE }
  t.throws(() => asyncApiDocument([badRef], INFO), { where: 'route "/b" messages["m"].schema', message: /neither a string nor a schema/ })
})

test('served: GET /asyncapi.json is the document of the registered routes, with the app\'s shared schemas', async (t) => {
  const { Type: Type1 } = await import('typebox')
  const app = await build(t, { asyncapi: { path: '/asyncapi.json', info: { title: 'Rooms', version: '3.2.1', description: 'Chat rooms' } } })
  app.addSchema({ $id: 'user', type: 'object', properties: { name: { type: 'string' } }, required: ['name'] })
  app.registerWebsocket('/echo', {
    schema: {
      querystring: Type.Object({ user: Type.String() }),
      headers: Type.Object({ 'x-trace': Type.Optional(Type.String()) }),
      message: Type.Object({ text: Type.String(), from: Type.Ref('user') }),
      outbound: Type1.Object({ echo: Type1.String() })
    },
    onMessage () {}
  })
  await app.register(async (child) => {
    child.addSchema({ $id: 'room', type: 'string', minLength: 1 })
    child.registerWebsocket('/rooms/:room', { schema: { params: { type: 'object', properties: { room: { $ref: 'room#' } } } }, onOpen () {} })
  }, { prefix: '/v1' })
  app.registerWebsocket('/raw', { schema: { query: Type.Object({ token: Type.String() }) } as any, onMessage () {} })
  await app.ready()
  t.ok(app.hasRoute({ method: 'GET', url: '/asyncapi.json' }), 'the route is one of the app\'s')

  const response = await app.inject({ method: 'GET', url: '/asyncapi.json' })
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^application\/json/)
  const document = response.json()
  await validate(t, document)
  t.same(document, app.websocketRooms.asyncapi(), 'the decorator gives the document served')
  t.same(document.info, { title: 'Rooms', version: '3.2.1', description: 'Chat rooms' })
  t.same(Object.values(document.channels).map((c: any) => c.address), ['/echo', '/v1/rooms/{room}', '/raw'])
  t.same(document.channels.echo.messages.message.payload.properties.from, { $ref: '#/components/schemas/user' })
  t.same(document.components.schemas.user, { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] })
  t.same(document.channels.echo.bindings.ws.headers.properties, { 'x-trace': { type: 'string' } })
  t.same(Object.keys(document.channels.v1_rooms_room.parameters), ['room'])
  t.same(document.channels.raw.bindings.ws.query.properties, { token: { type: 'string' } }, 'schema.query, Fastify\'s other name for querystring')
  t.same(Object.values(document.operations).map((o: any) => o.action), ['receive', 'send', 'receive', 'send', 'receive', 'send'])
})

test('app.websocketRooms.asyncapi(): before app.ready(), the routes registered so far; a new object each call', async (t) => {
  const app = await build(t)
  t.same(app.websocketRooms.asyncapi().channels, {})
  t.same(app.websocketRooms.asyncapi().info, { title: 'WebSocket API', version: '1.0.0' })
  app.registerWebsocket('/a', { onOpen () {} })
  const first = app.websocketRooms.asyncapi()
  t.same(Object.keys(first.channels), ['a'])
  first.channels.a!.address = '/changed'
  const payload = (document: any) => document.channels.a.messages.message
  payload(first).summary = 'changed'
  t.equal(app.websocketRooms.asyncapi().channels.a!.address, '/a', 'what a caller changes is its own copy')
  t.equal(payload(app.websocketRooms.asyncapi()).summary, 'Any text or binary message: the route declares no schema for it.')
  const info = { title: 'T', version: '1', contact: { name: 'me' } }
  const document: any = asyncApiDocument([chat], info)
  document.info.contact.name = 'changed'
  document.channels.chat.messages['chat.send'].payload.properties.id.anyOf.pop()
  t.equal(info.contact.name, 'me', 'the info given is not the document\'s')
  t.equal((asyncApiDocument([chat], info) as any).channels.chat.messages['chat.send'].payload.properties.id.anyOf.length, 2)
  t.equal(app.hasRoute({ method: 'GET', url: '/asyncapi.json' }), false, 'not served without asyncapi.path')
})

test('a schema the document cannot hold fails app.ready() when the document is served', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(websocketRooms, { asyncapi: { path: '/doc' } })
  // The route's own compiler resolves what it likes; the document knows only the app's schemas.
  app.registerWebsocket('/bad', { schema: { querystring: { type: 'object', properties: { n: { $ref: 'nowhere#' } } } }, validatorCompiler: () => () => true, onOpen () {} })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_WS_ROOMS_ASYNCAPI_SCHEMA', message: /cannot hold route "\/bad" schema\.querystring: it has \$ref "nowhere#"/ })
})

test('asyncapi option: a bad value names the option', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['/asyncapi.json', /option "asyncapi" must be an object \{ path\?, info\? \}, got "\/asyncapi.json"/],
    [{ path: 'asyncapi.json' }, /option "asyncapi.path" must be a path starting with "\/"/],
    [{ path: 42 }, /option "asyncapi.path" must be a path starting with "\/", such as "\/asyncapi.json", got number 42/],
    [{ pth: '/a' }, /option "asyncapi.pth" must be "path" or "info" \(did you mean "path"\?\)/],
    [{ info: 'x' }, /option "asyncapi.info" must be an object/],
    [{ info: { title: '' } }, /option "asyncapi.info.title" must be a non-empty string, got ""/],
    [{ info: { version: 1 } }, /option "asyncapi.info.version" must be a non-empty string, got number 1/],
    [{ info: { licence: { name: 'MIT' } } }, /option "asyncapi.info.licence" must be a field of AsyncAPI's info object \(did you mean "license"\?\)/]
  ]
  for (const [asyncapi, message] of cases) {
    const app = Fastify({ logger: false })
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(websocketRooms, { asyncapi } as any) }, { code: 'FST_WS_ROOMS_INVALID_OPTION', message }, JSON.stringify(asyncapi))
  }
  const app = await build(t, { asyncapi: { info: { 'x-audience': 'internal', contact: { email: 'a@example.com' } } } })
  t.same(app.websocketRooms.asyncapi().info, { title: 'WebSocket API', version: '1.0.0', 'x-audience': 'internal', contact: { email: 'a@example.com' } })
  throwsLike(t, () => app.registerWebsocket('/a', { asyncapi: {}, onOpen () {} } as any), TypeError, { code: 'FST_WS_ROOMS_INVALID_HANDLERS', message: /"asyncapi" is an option of the plugin/ })
})

test('served: message routes as registered, with their replies, events and renamed envelope', async (t) => {
  const { Type: Type1 } = await import('typebox')
  const app = await build(t, { asyncapi: { path: '/asyncapi.json' } })
  app.registerWebsocket('/chat', {
    schema: { querystring: Type.Object({ user: Type.String() }) },
    messages: {
      'chat.send': {
        schema: Type.Object({ room: Type.String(), text: Type.String({ maxLength: 2000 }) }),
        reply: Type.Object({ offset: Type.Integer() }),
        handler () { return { offset: 1 } }
      },
      'room.join': { schema: Type1.Object({ room: Type1.String() }), handler () {} }
    },
    events: { 'chat.message': Type.Object({ from: Type.String(), text: Type.String() }) }
  })
  app.registerWebsocket('/short/:room', {
    envelope: { type: 't', id: 'i', data: 'd' },
    messages: { ping: { schema: Type1.Null(), reply: Type1.Literal('pong'), handler: () => 'pong' as const } }
  })
  await app.ready()
  const document = (await app.inject({ method: 'GET', url: '/asyncapi.json' })).json()
  await validate(t, document)
  const chat = document.channels.chat
  t.same(Object.keys(chat.messages), ['chat.send', 'chat.send.reply', 'reply.error', 'room.join', 'chat.message', 'ask.reply'])
  t.same(chat.messages['chat.send'].payload.properties.data.properties.text, { maxLength: 2000, type: 'string' })
  t.same(chat.messages['room.join'].payload.properties.data, { type: 'object', required: ['room'], properties: { room: { type: 'string' } } })
  t.same(document.operations['chat.receive.chat.send'].reply.messages, [{ $ref: '#/channels/chat/messages/chat.send.reply' }, { $ref: '#/channels/chat/messages/reply.error' }])
  t.equal(document.operations['chat.send.chat.message'].action, 'send')
  const short = document.channels.short_room
  t.equal(short.address, '/short/{room}')
  t.same(short.messages.ping.payload.required, ['t', 'd'])
  t.same(short.messages['ping.reply'].payload.properties, { t: { const: 'reply' }, i: short.messages.ping.payload.properties.i, d: { const: 'pong', type: 'string' } })
})

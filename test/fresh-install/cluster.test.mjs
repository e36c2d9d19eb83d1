// Two servers of the installed package sharing a room through Redis, as an app of a user's
// would: a client on each, and a broadcast on either server reaches both clients. Run by
// ./run.sh in the project that installed the tarball; REDIS_URL (default redis://127.0.0.1:6379).
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import Fastify from 'fastify'
import WebSocket from 'ws'
import websocketRooms, { redisAdapter } from 'fastify-websocket-rooms'

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
// Redis may be shared: this run's keys are its own.
const keyPrefix = `fresh-install-${process.pid}-${Date.now()}`

/** The next message `ws` receives, as a string. */
const nextMessage = (ws) => once(ws, 'message').then(([data]) => String(data))

/** A server whose sessions join 'lobby', closed after the test; resolves with its ws:// URL. */
async function server (t) {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(websocketRooms, { adapter: redisAdapter({ url, keyPrefix }) })
  app.registerWebsocket('/ws', {
    onConnected (session) {
      session.room('lobby').join()
      session.send('joined')
    }
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: address.replace('http', 'ws') + '/ws' }
}

/** A client whose session has joined. */
async function client (t, url) {
  const ws = new WebSocket(url)
  t.after(() => ws.terminate())
  assert.equal(await nextMessage(ws), 'joined')
  return ws
}

test('two servers share a room through Redis: a broadcast on either reaches both clients', { timeout: 30_000 }, async (t) => {
  const a = await server(t)
  const b = await server(t)
  const onA = await client(t, a.url)
  const onB = await client(t, b.url)
  // clusterMembers() first waits for its server's subscriptions: then both get the room's broadcasts.
  assert.ok(await a.app.websocketRooms.room('lobby').clusterMembers() >= 1)
  assert.ok(await b.app.websocketRooms.room('lobby').clusterMembers() >= 1)
  for (const [name, app] of [['A', a.app], ['B', b.app]]) {
    const received = Promise.all([nextMessage(onA), nextMessage(onB)])
    app.websocketRooms.room('lobby').broadcast(`from ${name}`)
    assert.deepEqual(await received, [`from ${name}`, `from ${name}`])
  }
})

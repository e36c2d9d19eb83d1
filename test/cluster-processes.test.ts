// Nodes in processes of their own, as in production: delivery between them, and a node
// killed without any chance to clean up, which drops out of the cluster counts when its
// hash in Redis expires. Uses a private redis-server with keyspace notifications on, so the
// test can await the expiry instead of waiting for a while.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import Fastify from 'fastify'
import websocketRooms, { redisAdapter } from 'fastify-websocket-rooms'
import * as handlers from './fixtures/cluster-handlers'
import { connect, listen, type Client } from './helpers'
import { PrivateRedis, adminClient, redisTest, uniquePrefix } from './redis'
import { within } from './signals'

const NODE_HEARTBEAT = 200
const NODE_TIMEOUT = 1500

interface ChildNode { process: ChildProcess, base: string, nodeId: string }

async function startChild (t: { teardown (fn: () => unknown): void }, env: Record<string, string>): Promise<ChildNode> {
  const child = spawn(process.execPath, ['--import', 'tsx', require.resolve('./fixtures/cluster-node.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const exited = once(child, 'exit').then(([code]) => { throw new Error(`cluster node exited with ${code} before listening`) })
  const [line] = await within(Promise.race([once(createInterface({ input: child.stdout! }), 'line'), exited]), 'the cluster node to say it listens') as [string]
  const { port, nodeId } = JSON.parse(line) as { port: number, nodeId: string }
  return { process: child, base: `ws://127.0.0.1:${port}`, nodeId }
}

/** Resolves with the node's answer to "count ROOM": once it comes, the node's rooms are live in Redis. */
async function count (client: Client, room: string): Promise<number> {
  const before = client.received.length
  client.send(`count ${room}`)
  const [answer] = (await client.texts(before + 1)).slice(before)
  return Number(answer!.split(' ')[2])
}

/** Resolves once the client has been sent this text, whatever came before it. */
async function untilText (client: Client, text: string): Promise<void> {
  for (let n = 1; (await client.texts(n))[n - 1] !== text; n++);
}

redisTest('nodes in separate processes share rooms; a killed node drops out of the counts when its state expires', async (t) => {
  const redis = await PrivateRedis.start(t, ['--notify-keyspace-events', 'Ex'])
  const keyPrefix = uniquePrefix('processes')
  const env = { REDIS_URL: redis.url, KEY_PREFIX: keyPrefix, NODE_HEARTBEAT: String(NODE_HEARTBEAT), NODE_TIMEOUT: String(NODE_TIMEOUT) }
  const [first, second] = await Promise.all([startChild(t, env), startChild(t, env)])
  const app = Fastify()
  await app.register(websocketRooms, { adapter: redisAdapter({ url: redis.url, keyPrefix, nodeHeartbeat: NODE_HEARTBEAT, nodeTimeout: NODE_TIMEOUT }) })
  app.registerWebsocket('/ws', handlers)
  t.teardown(() => app.close())
  const here = await listen(app)

  const [c1, c2, c3] = await Promise.all([first.base, second.base, here].map((base) => connect(base, '/ws?rooms=lobby')))
  for (const client of [c1!, c2!, c3!]) await client.texts(1)
  for (const client of [c1!, c2!, c3!]) await count(client, 'lobby')
  t.equal(await count(c3!, 'lobby'), 3, 'three members on three nodes in three processes')

  c1!.send('others lobby from process one')
  await Promise.all([untilText(c2!, 'from process one'), untilText(c3!, 'from process one')])
  app.websocketRooms.room('lobby').broadcast('from the test\'s process')
  await Promise.all([untilText(c1!, 'from the test\'s process'), untilText(c2!, 'from the test\'s process')])
  t.notOk(c1!.received.some(({ data }) => data === 'from process one'), 'the sender of broadcastExcept did not get it')

  const admin = await adminClient(t, redis.url)
  const events = await adminClient(t, redis.url)
  const secondKey = `{${keyPrefix}:node:${second.nodeId}}`
  let onExpired!: () => void
  const expired = new Promise<void>((resolve) => { onExpired = resolve })
  await events.subscribe('__keyevent@0__:expired', (key) => { if (key === secondKey) onExpired() })
  const ttl = await admin.pTTL(secondKey)
  t.ok(ttl > 0 && ttl <= NODE_TIMEOUT, `a node's state expires within nodeTimeout unless renewed (PTTL ${ttl} ms)`)

  second.process.kill('SIGKILL')
  t.equal((await c2!.closed).code, 1006, 'its client lost the connection')
  await expired
  t.equal(await count(c3!, 'lobby'), 2, 'the killed node no longer counts')
  t.equal(await count(c1!, 'lobby'), 2, 'on any node')

  first.process.kill('SIGTERM')
  const [code] = await within(once(first.process, 'exit'), 'the node to exit on SIGTERM')
  t.equal(code, 0, 'a node stopped with SIGTERM closes cleanly')
  t.equal(await admin.exists(`{${keyPrefix}:node:${first.nodeId}}`), 0, 'and removes its state from Redis at once')
  t.equal(await count(c3!, 'lobby'), 1)
})

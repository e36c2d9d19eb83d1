// Two chat servers sharing their rooms through one Redis: `npm run example:cluster`, then open
// http://127.0.0.1:3001/ and http://127.0.0.1:3002/ in two browser tabs and join the same room.
// Each server is examples/chat's (same page, same handlers, same onPresence, same history)
// with the Redis adapter: nothing else changes, since presence() lists the members of every
// server, the notices onPresence broadcasts reach them all, and the rooms' history and
// positions live in Redis, so a page that reconnects to the other server resumes there, and
// so do the sessions a server closes when it restarts (1012): a page back on either server
// with its token is the same session. PORT_A and PORT_B (default 3001, 3002), HOST
// (default 127.0.0.1), REDIS_URL (default redis://127.0.0.1:6379) and KEY_PREFIX (default
// cluster-chat) change where they listen and what they share; REDIS_CLUSTER_URL, a node of a
// Redis Cluster, puts them on that cluster instead. One process runs both here,
// for the demo; in production each server is a process (or a machine) of its own running build().
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import websocketRooms, { redisAdapter } from 'fastify-websocket-rooms'
import { onPresence } from '../chat/presence.mjs'
import { history, resume } from '../chat/server.mjs'
import { isMain, ws } from '../run.mjs'

const page = await readFile(new URL('../chat/index.html', import.meta.url))

/** One server of the cluster: the chat of examples/chat with the Redis adapter. */
export async function build (options = {}) {
  const { redisUrl = 'redis://127.0.0.1:6379', clusterUrl, keyPrefix = 'cluster-chat', history: kept = history, resume: resuming = resume, ...fastifyOptions } = options
  const app = Fastify(fastifyOptions)
  // Fails with FST_WS_ROOMS_REDIS_UNAVAILABLE when Redis does not answer within connectTimeout.
  // onPresence runs once in the cluster for each change, on the server where it happened, so
  // a page gets one notice for it, not one per server. While Redis is away, that notice
  // reaches this server's members only (docs/examples.md#cluster-two-servers-sharing-rooms-through-redis).
  // The history is in Redis, under `{keyPrefix:room:NAME}:history…` keys that expire with it:
  // on a Redis Cluster, each room's on the shard of its slot.
  const connection = clusterUrl === undefined ? { url: redisUrl } : { cluster: { rootNodes: [{ url: clusterUrl }] } }
  // The sessions a server keeps for a resume are in Redis too: one that closes (1012) or drops
  // resumes on either server.
  await app.register(websocketRooms, { adapter: redisAdapter({ ...connection, keyPrefix }), onPresence, history: kept, resume: resuming })

  app.get('/', (request, reply) => reply.type('text/html; charset=utf-8').send(page))
  app.registerWebsocket('/ws/chat', await import('../chat/chat.mjs'))
  return app
}

/**
 * Starts servers A and B, logs `cluster A: URL` lines, and on SIGINT or SIGTERM closes both
 * (every session with 1012) and lets the process exit by itself.
 */
async function main () {
  const env = process.env
  const host = env.HOST ?? '127.0.0.1'
  const shared = { redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379', clusterUrl: env.REDIS_CLUSTER_URL, keyPrefix: env.KEY_PREFIX ?? 'cluster-chat' }
  const apps = []
  try {
    for (const [node, port] of [['A', env.PORT_A ?? 3001], ['B', env.PORT_B ?? 3002]]) {
      const app = await build({ ...shared, logger: { base: { node } } })
      apps.push(app)
      const base = await app.listen({ port: Number(port), host })
      app.log.info(`cluster ${node}: ${base}/`)
      app.log.info(`cluster ${node}: ${ws(base)}/ws/chat?user=NAME&room=NAME`)
    }
  } catch (error) {
    console.error(error.code === 'FST_WS_ROOMS_REDIS_UNAVAILABLE'
      ? `No Redis at ${shared.clusterUrl ?? shared.redisUrl} (${error.message}). Start one with:\n  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`
      : error)
    await Promise.all(apps.map((app) => app.close()))
    process.exitCode = 1
    return
  }

  const log = apps[0].log
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      log.info(`${signal} received, closing`)
      Promise.all(apps.map((app) => app.close())).then(
        () => log.info('closed'),
        (error) => {
          log.error(error)
          process.exitCode = 1
        })
    })
  }
}

if (isMain(import.meta.url)) await main()

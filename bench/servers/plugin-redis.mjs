// This plugin with the Redis adapter, for bench/cluster.mjs: one node of a cluster whose
// nodes share room 'bench' through the Redis at BENCH_REDIS_URL (or the Redis Cluster of which
// BENCH_CLUSTER_URL is a node), under BENCH_KEY_PREFIX. The
// protocol is bench/servers/plugin.mjs's: every session joins room 'bench'; 'P…' is
// broadcast to the room but the sender (on every node), 'E…' is echoed. The heartbeat is off
// so no pings interfere. With BENCH_PUBLISH=1, 'P…' goes out with publishExcept() instead
// (history on), its position appended (',<offset>,<epoch>', which the load generator's parser
// stops before). Its own commands: 'cluster-members' (the room's count on every node, which
// first waits for this node's pending subscriptions), 'cluster-stats', and 'spread': `each`
// messages to each of `rooms` rooms, from the server (publish() with BENCH_PUBLISH=1, else
// broadcast()), to see how a cluster's masters share many rooms.
import Fastify from 'fastify'
import websocketRooms, { redisAdapter } from 'fastify-websocket-rooms'
import { serve } from '../lib/serve.mjs'

const P = 0x50 // 'P'
const PUBLISH = process.env.BENCH_PUBLISH === '1'

const handlers = {
  onConnected (session) {
    session.room('bench').join()
  },
  handleText (session, text) {
    if (text.charCodeAt(0) !== P) session.send(text)
    else if (!PUBLISH) session.room('bench').broadcastExcept(text)
    else session.room('bench').publishExcept(({ offset, epoch }) => `${text},${offset},${epoch}`).catch(() => {})
  }
}

const app = Fastify({ logger: false })

await serve(async () => {
  await app.register(websocketRooms, {
    heartbeatInterval: 0,
    history: PUBLISH ? { size: 1000, ttl: 60_000 } : false,
    adapter: redisAdapter({
      ...(process.env.BENCH_CLUSTER_URL ? { cluster: { rootNodes: [{ url: process.env.BENCH_CLUSTER_URL }] } } : { url: process.env.BENCH_REDIS_URL }),
      keyPrefix: process.env.BENCH_KEY_PREFIX
    })
  })
  app.registerWebsocket('/ws', handlers)
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app.server.address().port
}, {
  'cluster-members': () => app.websocketRooms.room('bench').clusterMembers(),
  'cluster-stats': () => app.websocketRooms.stats().cluster,
  async spread ({ rooms, each }) {
    const sent = []
    for (let i = 0; i < rooms; i++) {
      const room = app.websocketRooms.room(`spread-${i}`)
      for (let j = 0; j < each; j++) {
        if (PUBLISH) sent.push(room.publish(({ offset }) => `S${i},${offset}`))
        else room.broadcast(`S${i},${j}`)
      }
    }
    await Promise.all(sent)
    return { sent: rooms * each }
  },
  // app.close() removes this node from Redis (its counts, its subscriptions) before exiting.
  async close () {
    await app.close()
    return {}
  }
})

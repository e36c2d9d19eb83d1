// One server of the reconnect storm benchmark (bench/resume-storm.mjs): this plugin with the
// Redis adapter (BENCH_REDIS_URL, under BENCH_KEY_PREFIX), the rooms' history and resume (a
// window of 10 minutes), the heartbeat off. A session of /ws?user=NAME&i=N joins room
// `room-<N % BENCH_ROOMS>` with presence info { user } and is sent `fresh <token>`; a resumed
// one is sent `resumed <token>` (after what it missed), one whose token was refused
// `refused:<why> <token>`. Its own commands: 'publish' (one message published to each room,
// `while away <room>`), 'sessions' (how many it holds) and 'close' (app.close(): its sessions
// closed with 1012 and kept in Redis), on top of bench/lib/serve.mjs's.
import Fastify from 'fastify'
import websocketRooms, { redisAdapter } from 'fastify-websocket-rooms'
import { serve } from '../lib/serve.mjs'

const ROOMS = Number(process.env.BENCH_ROOMS || 10)
const roomNames = Array.from({ length: ROOMS }, (_, i) => `room-${i}`)

const handlers = {
  onOpen (session) {
    if (session.resumed) {
      session.send(`resumed ${session.resumeToken}`)
      return
    }
    if (session.resumeFailure !== null) {
      session.send(`refused:${session.resumeFailure} ${session.resumeToken}`)
      return
    }
    const user = String(session.query.user)
    session.setAttribute('user', user)
    session.setPresence({ user })
    session.room(roomNames[Number(session.query.i) % ROOMS]).join()
    session.send(`fresh ${session.resumeToken}`)
  }
}

// No plugin timeout: closing thousands of sessions parks each in Redis, and on a busy machine
// that takes longer than Fastify's default 10 s, which would fail app.close() (the report
// says how long it took).
const app = Fastify({ logger: false, pluginTimeout: 0 })

await serve(async () => {
  await app.register(websocketRooms, {
    heartbeatInterval: 0,
    maxSessions: Infinity,
    history: { size: 100, ttl: 600_000 },
    resume: { window: 600_000 },
    adapter: redisAdapter({ url: process.env.BENCH_REDIS_URL, keyPrefix: process.env.BENCH_KEY_PREFIX })
  })
  app.registerWebsocket('/ws', handlers)
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app.server.address().port
}, {
  async publish () {
    const positions = await Promise.all(roomNames.map((name) => app.websocketRooms.room(name).publish(() => `while away ${name}`)))
    return { published: positions.length }
  },
  sessions () {
    return { sessions: app.websocketSessions.size }
  },
  async close () {
    await app.close()
    return {}
  }
})

// Server-side broadcasts: dashboards connect to /ws/dashboard and see every metric that is
// POSTed to /api/metrics (by a job, another service, curl...), and, every sampleInterval ms,
// the server's own memory use. `npm run example:dashboard`, connect to
// ws://127.0.0.1:3000/ws/dashboard, then:
//   curl -H 'content-type: application/json' -d '{"name":"orders","value":42}' http://127.0.0.1:3000/api/metrics
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'
import { isMain, run, ws } from '../run.mjs'

export async function build (options = {}) {
  const { sampleInterval = 0, ...fastifyOptions } = options
  const app = Fastify(fastifyOptions)
  await app.register(websocketRooms)
  const dashboards = app.websocketRooms.room('dashboard')

  // A dashboard only listens: it has no text handler, so a message from it closes it with 1003.
  app.registerWebsocket('/ws/dashboard', {
    onConnected: (session) => {
      const room = session.room('dashboard').join()
      session.send(JSON.stringify({ type: 'hello', viewers: room.members() }))
    }
  })

  // An ordinary HTTP route, with a validated body, that broadcasts to the room.
  app.post('/api/metrics', {
    schema: { body: Type.Object({ name: Type.String({ minLength: 1 }), value: Type.Number() }) }
  }, async (request) => {
    dashboards.broadcast(JSON.stringify({ type: 'metric', name: request.body.name, value: request.body.value, at: Date.now() }))
    return { delivered: dashboards.members() }
  })

  app.get('/api/stats', async () => app.websocketRooms.stats())

  // A job: the server's heap, to every dashboard (nothing is sent while none is connected).
  if (sampleInterval > 0) {
    const timer = setInterval(() => {
      if (dashboards.members() === 0) return
      dashboards.broadcast(JSON.stringify({ type: 'metric', name: 'heapUsed', value: process.memoryUsage().heapUsed, at: Date.now() }))
    }, sampleInterval)
    app.addHook('onClose', async () => clearInterval(timer))
  }
  return app
}

if (isMain(import.meta.url)) {
  await run('dashboard', (options) => build({ ...options, sampleInterval: 5000 }), (base) => [
    `${ws(base)}/ws/dashboard`,
    `POST ${base}/api/metrics {"name":"orders","value":42}`
  ])
}

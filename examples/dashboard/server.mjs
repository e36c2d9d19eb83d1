// Server-side broadcasts: dashboards connect to /ws/dashboard and see every metric that is
// POSTed to /api/metrics (by a job, another service, curl...), and, every sampleInterval ms,
// the server's own memory use. With chartInterval, the page at / charts the plugin's own
// metrics live (sessions, messages per second, p99 handler time: ./samples.mjs), which
// Prometheus can scrape at /metrics; clients of /ws/echo make traffic to watch.
// `npm run example:dashboard`, open http://127.0.0.1:3000/, then:
//   curl -H 'content-type: application/json' -d '{"name":"orders","value":42}' http://127.0.0.1:3000/api/metrics
import { readFile } from 'node:fs/promises'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import websocketRooms from 'fastify-websocket-rooms'
import { isMain, run, ws } from '../run.mjs'
import { sampler } from './samples.mjs'

export async function build (options = {}) {
  const { sampleInterval = 0, chartInterval = 0, ...fastifyOptions } = options
  const app = Fastify(fastifyOptions)
  const registry = new Registry()
  await app.register(websocketRooms, { metrics: { registry } })
  const dashboards = app.websocketRooms.room('dashboard')
  const page = await readFile(new URL('./index.html', import.meta.url))
  app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(page))
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
  app.registerWebsocket('/ws/echo', { onMessage: (session, text) => session.send(text) })

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
  // The charts: a sample of the plugin's metrics to every dashboard, each chartInterval ms.
  if (chartInterval > 0) {
    const sample = sampler(registry)
    const timer = setInterval(async () => {
      const figures = await sample()
      if (dashboards.members() > 0) dashboards.broadcast(JSON.stringify(figures))
    }, chartInterval)
    app.addHook('onClose', async () => clearInterval(timer))
  }
  return app
}

if (isMain(import.meta.url)) {
  await run('dashboard', (options) => build({ ...options, sampleInterval: 5000, chartInterval: 1000 }), (base) => [
    `${base}/`,
    `${ws(base)}/ws/dashboard`,
    `${base}/metrics`,
    `POST ${base}/api/metrics {"name":"orders","value":42}`
  ])
}

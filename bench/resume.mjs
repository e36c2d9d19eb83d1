// The resume benchmark: `npm run bench:resume` (builds first; never part of npm test).
// A reconnect storm on one server: N clients in 10 rooms, each told its token; every
// connection is cut at once (as a network outage would), then every client comes back with its
// token, CONNECTING handshakes in flight at once, while the rooms keep broadcasting. Measures
// the time until every session is kept, the time until every client has resumed (against a
// storm of N fresh connections in the same run), the process's CPU time for each storm (the
// clients run in this process too: the figures compare, they do not isolate the server), and
// the heap each kept session costs while away. Writes bench/results-resume.md.
//
// Environment:
//   BENCH_SESSIONS=8000    N (clients and server in one process: two descriptors a session,
//                          under a limit of 20000 open files)
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import WebSocket from 'ws'
import websocketRooms from 'fastify-websocket-rooms'

const here = dirname(fileURLToPath(import.meta.url))
const SESSIONS = Number(process.env.BENCH_SESSIONS || 8000)
const CONNECTING = 200 // handshakes in flight at once
const ROOMS = 10

const app = Fastify({ logger: false })
await app.register(websocketRooms, { resume: { window: 600_000 }, heartbeatInterval: 0, maxSessions: Infinity })
app.registerWebsocket('/ws', {
  onOpen (session) {
    if (!session.resumed) {
      session.setAttribute('user', session.query.user)
      session.room(`room-${Number(session.query.i) % ROOMS}`).join()
      session.setPresence({ user: session.query.user })
    }
    session.send(`${session.resumed ? 'resumed' : 'fresh'} ${session.resumeToken}`)
  }
})
await app.listen({ port: 0, host: '127.0.0.1' })
const base = `ws://127.0.0.1:${app.server.address().port}/ws`

/** Opens `count` clients, CONNECTING at a time; each resolves once it got its first message (its token). */
async function storm (count, urlOf) {
  const clients = new Array(count)
  let next = 0
  const started = performance.now()
  const cpu = process.cpuUsage()
  await Promise.all(Array.from({ length: CONNECTING }, async () => {
    while (next < count) {
      const i = next++
      const client = new WebSocket(urlOf(i))
      const first = await new Promise((resolve, reject) => {
        client.once('message', (data) => resolve(String(data)))
        client.once('error', (error) => reject(new Error(`client ${i} failed before its first message: ${error.message}`)))
        client.once('close', () => reject(new Error(`client ${i} closed before its first message`)))
      })
      clients[i] = { client, first }
    }
  }))
  const used = process.cpuUsage(cpu)
  return { clients, seconds: (performance.now() - started) / 1000, cpuSeconds: (used.user + used.system) / 1e6 }
}

async function until (condition, what, ms = 120_000) {
  const started = performance.now()
  while (!condition()) {
    if (performance.now() - started > ms) throw new Error(`still waiting after ${ms} ms for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

function heapUsed () {
  globalThis.gc?.()
  return process.memoryUsage().heapUsed
}

const baseHeap = heapUsed()
const fresh = await storm(SESSIONS, (i) => `${base}?user=u${i}&i=${i}`)
const tokens = fresh.clients.map(({ first }) => first.split(' ')[1])

// The outage: every connection cut without a close frame.
const started = performance.now()
for (const { client } of fresh.clients) client.terminate()
await until(() => app.websocketSessions.size === 0, 'every session to be kept')
const keptSeconds = (performance.now() - started) / 1000
await new Promise((resolve) => setTimeout(resolve, 200)) // the clients' sockets freed
fresh.clients.length = 0
const keptHeap = heapUsed()

// Broadcasts while away: kept for every session.
for (let r = 0; r < ROOMS; r++) app.websocketRooms.room(`room-${r}`).broadcast(`while away ${r}`)

const back = await storm(SESSIONS, (i) => `${base}?resume=${tokens[i]}`)
const resumed = back.clients.filter(({ first }) => first.startsWith('while away ')).length
for (const { client } of back.clients) client.terminate()
await app.close()

const perSession = (keptHeap - baseHeap) / SESSIONS
const report = `# Resume: a reconnect storm on one server

\`npm run bench:resume\` (bench/resume.mjs), ${new Date().toISOString().slice(0, 10)}, Node.js ${process.version},
${SESSIONS} sessions in ${ROOMS} rooms, ${CONNECTING} handshakes in flight, clients in the same process.

| | fresh connections | resumes |
| --- | --- | --- |
| time until every client has its first message (s) | ${fresh.seconds.toFixed(2)} | ${back.seconds.toFixed(2)} |
| CPU time of the process meanwhile (s) | ${fresh.cpuSeconds.toFixed(2)} | ${back.cpuSeconds.toFixed(2)} |
| sessions that got what was sent while away first | | ${resumed} / ${SESSIONS} |

Every connection cut at once: all ${SESSIONS} sessions kept within ${keptSeconds.toFixed(2)} s.
Heap of the kept sessions, against the process before any connection: ${Math.round(perSession)} bytes per session
(${globalThis.gc === undefined ? 'no --expose-gc: rough' : 'after gc'}; a kept session holds its request, attributes, rooms, token and state; its socket and its clients' are gone).
`
writeFileSync(join(here, 'results-resume.md'), report)
process.stdout.write(report)

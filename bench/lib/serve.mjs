// What every benchmark server shares: it is forked by bench/run.mjs, listens on 127.0.0.1 on
// a free port, reports { type: 'ready', port } over IPC, and answers the runner's commands:
// 'mem' (forced GC, then memoryUsage), 'cpu' (process.cpuUsage(), in µs), 'profile-start' / 'profile-stop' (a CPU profile of
// just one phase, through the inspector: the same format as node --cpu-prof) and 'exit'.
// It exits by itself when the runner goes away (the IPC channel closes).
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { setTimeout as sleep } from 'node:timers/promises'

let profiler = null

const commands = {
  async mem () {
    if (typeof globalThis.gc === 'function') {
      for (let i = 0; i < 3; i++) {
        globalThis.gc()
        await sleep(20)
      }
    }
    const usage = process.memoryUsage()
    return { rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external, arrayBuffers: usage.arrayBuffers, gc: typeof globalThis.gc === 'function' }
  },

  cpu () {
    const { user, system } = process.cpuUsage()
    return { user, system }
  },

  async 'profile-start' ({ interval = 250 }) {
    profiler = new Session()
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.setSamplingInterval', { interval })
    await profiler.post('Profiler.start')
    return {}
  },

  async 'profile-stop' ({ file }) {
    const { profile } = await profiler.post('Profiler.stop')
    profiler.disconnect()
    profiler = null
    writeFileSync(file, JSON.stringify(profile))
    return { file }
  },

  exit () {
    // process.exit() lets a --cpu-prof profile be written, unlike a kill.
    setImmediate(() => process.exit(0))
    return {}
  }
}

/**
 * Starts a benchmark server: `listen` starts it and resolves with the port it listens on.
 * `extra` adds commands of the server's own, by name (a function of the message).
 */
export async function serve (listen, extra = {}) {
  process.on('disconnect', () => process.exit(0))
  process.on('message', (message) => {
    const command = commands[message?.cmd] ?? extra[message?.cmd]
    if (command === undefined) return
    Promise.resolve()
      .then(() => command(message))
      .then(
        (result) => process.send({ id: message.id, result }),
        (error) => process.send({ id: message.id, error: String(error?.stack ?? error) }))
  })
  const port = await listen()
  process.send({ type: 'ready', port })
}

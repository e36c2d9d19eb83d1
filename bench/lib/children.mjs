// The processes of a benchmark run: each is forked with an IPC channel, answers commands
// ({ id, cmd, ...args } → { id, result | error }) and says { type: 'ready' } when it can, as
// bench/lib/serve.mjs and bench/load.mjs do. Every child is killed when this process exits,
// however it exits. Used by bench/run.mjs and bench/cluster.mjs.
import { fork } from 'node:child_process'

const children = new Set()
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

/** Forks `file`; returns { child, ready, call(cmd, args, timeoutMs), stop(), exited }. */
export function start (file, { execArgv = [], env = {}, label }) {
  const child = fork(file, [], { execArgv, env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  children.add(child)
  const waiting = new Map()
  let nextId = 0
  let readyResolve
  let readyReject
  const ready = new Promise((resolve, reject) => {
    readyResolve = resolve
    readyReject = reject
  })
  const readyTimer = setTimeout(() => readyReject(new Error(`${label}: not ready after 20 s`)), 20_000)
  child.on('message', (message) => {
    if (message?.type === 'ready') {
      clearTimeout(readyTimer)
      readyResolve(message)
      return
    }
    const waiter = waiting.get(message?.id)
    if (waiter === undefined) return
    waiting.delete(message.id)
    if (message.error !== undefined) waiter.reject(new Error(`${label}: ${message.error}`))
    else waiter.resolve(message.result)
  })
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    children.delete(child)
    clearTimeout(readyTimer)
    const error = new Error(`${label} exited (${code ?? signal})`)
    readyReject(error)
    for (const waiter of waiting.values()) waiter.reject(error)
    waiting.clear()
    resolve()
  }))
  ready.catch(() => {})

  function call (cmd, args = {}, timeoutMs = 120_000) {
    return new Promise((resolve, reject) => {
      const id = nextId++
      const timer = setTimeout(() => {
        waiting.delete(id)
        reject(new Error(`${label}: ${cmd} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      waiting.set(id, {
        resolve (value) { clearTimeout(timer); resolve(value) },
        reject (error) { clearTimeout(timer); reject(error) }
      })
      child.send({ ...args, id, cmd })
    })
  }

  async function stop () {
    if (child.exitCode !== null || child.signalCode !== null) return
    call('exit', {}, 2000).catch(() => {})
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  }

  return { child, ready, call, stop, exited }
}

/**
 * A server (its file, env and label) and a fresh load generator (./load.mjs), introduced to
 * each other with `init`; `load.call` fails with the server's name if the server dies.
 * `prepare(srv, loader)` runs once both are ready, before `init`; what it returns is added
 * to the result. Both are stopped if anything fails on the way.
 */
export async function launchWithLoad ({ file, env, label, protocol, clockTicks, prepare = () => ({}) }) {
  const srv = start(file, { execArgv: ['--expose-gc'], env, label })
  const loader = start(new URL('../load.mjs', import.meta.url).pathname, { label: 'load generator' })
  // A server that dies mid-run fails the round with its own name, not a load generator timeout.
  const died = srv.exited.then(() => { throw new Error(`server ${label} exited (code ${srv.child.exitCode ?? srv.child.signalCode})`) })
  died.catch(() => {})
  const load = { call: (...args) => Promise.race([loader.call(...args), died]) }
  const stop = () => Promise.all([loader.stop(), srv.stop()])
  try {
    const { port } = await srv.ready
    await loader.ready
    const prepared = prepare(srv, loader)
    await load.call('init', { port, protocol, serverPid: srv.child.pid, clockTicks })
    return { srv, loader, load, stop, ...prepared }
  } catch (error) {
    await stop()
    throw error
  }
}

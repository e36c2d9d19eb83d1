// A Redis Cluster for bench/cluster.mjs: three masters of its own on free loopback ports
// (redis-server --cluster-enabled yes, redis-cli --cluster create), or the one at
// BENCH_CLUSTER_URL; the masters' process ids (their CPU is metered like the single Redis's)
// and their operation counts (INFO commandstats), to show how the load spreads over the shards.
// Also a single private redis-server (bench/resume-storm.mjs), counted the same way.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient, createCluster } from '@redis/client'

async function isFree (port) {
  const server = createServer()
  return new Promise((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

async function freePorts (count) {
  const ports = []
  while (ports.length < count) {
    const port = 20_000 + Math.floor(Math.random() * 30_000)
    if (!ports.includes(port) && await isFree(port) && await isFree(port + 10_000)) ports.push(port)
  }
  return ports
}

async function run (command, args) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk) => { output += chunk })
  child.stderr.on('data', (chunk) => { output += chunk })
  const [code] = await once(child, 'exit')
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${output}`)
}

async function command (url, args) {
  const client = createClient({ url, socket: { connectTimeout: 2000, reconnectStrategy: false } })
  client.on('error', () => {})
  await client.connect()
  try {
    return await client.sendCommand(args)
  } finally {
    client.destroy()
  }
}

/** Stops a redis-server this module started (SIGTERM), once it has exited. */
async function stopServer (child) {
  if (child.exitCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
}

/** Waits until the redis-server at `url` answers PING. */
async function answering (url) {
  for (;;) {
    try {
      await command(url, ['PING'])
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

/**
 * A redis-server of the benchmark's own on a free loopback port, without persistence: its
 * commands and memory are the benchmark's only. { url, address, pid, stop() }.
 */
export async function startRedis () {
  const [port] = await freePorts(1)
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  // However the benchmark exits, its Redis goes with it.
  const kill = () => child.kill('SIGKILL')
  process.once('exit', kill)
  child.once('exit', () => process.off('exit', kill))
  const url = `redis://127.0.0.1:${port}`
  await answering(url)
  return { url, address: `127.0.0.1:${port}`, pid: child.pid, stop: () => stopServer(child) }
}

/** Starts three masters, or takes BENCH_CLUSTER_URL's cluster; `stop()` ends what it started. */
export async function startCluster () {
  const given = process.env.BENCH_CLUSTER_URL
  let children = []
  let dir = null
  let url = given
  if (!given) {
    dir = mkdtempSync(join(tmpdir(), 'bench-cluster-'))
    const ports = await freePorts(3)
    children = ports.map((port) => spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
      '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`
    ], { stdio: 'ignore' }))
    for (const port of ports) await answering(`redis://127.0.0.1:${port}`)
    await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-yes'])
    for (const port of ports) {
      while (!/cluster_state:ok/.test(String(await command(`redis://127.0.0.1:${port}`, ['CLUSTER', 'INFO'])))) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    url = `redis://127.0.0.1:${ports[0]}`
  }
  const cluster = createCluster({ rootNodes: [{ url }] })
  cluster.on('error', () => {})
  await cluster.connect()
  const masters = cluster.masters.map((master) => ({ address: `${master.host}:${master.port}`, url: `redis://${master.host}:${master.port}` }))
  await cluster.close()
  for (const master of masters) {
    master.pid = Number(/^process_id:(\d+)/m.exec(String(await command(master.url, ['INFO', 'server'])))[1])
  }
  masters.sort((x, y) => x.address.localeCompare(y.address))
  return {
    url,
    masters,
    async stop () {
      await Promise.all(children.map(stopServer))
      if (dir !== null) rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** Each master's count of commands run so far (INFO commandstats), by address. */
export async function operations (masters) {
  const counts = {}
  for (const master of masters) {
    const stats = String(await command(master.url, ['INFO', 'commandstats']))
    let calls = 0
    for (const match of stats.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) calls += Number(match[1])
    counts[master.address] = calls
  }
  return counts
}

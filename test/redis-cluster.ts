// Redis Cluster for the tests: the shared one at CLUSTER_URL (a node of it; CI starts one, see
// .ci/run), else one this test process starts for itself; and private clusters of a test's own
// (masters, replicas) for the faults: a master killed, a slot migrated, a shard cut off.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { createClient } from '@redis/client'
import tap, { test, type Test } from 'tap'
import { PrivateRedis, pingRedis } from './redis'
import { eventually } from './signals'

export const START_CLUSTER = 'bash .ci/run starts one; or set CLUSTER_URL to a node of yours'

interface Teardown { teardown (fn: () => unknown): void }

async function isFree (port: number): Promise<boolean> {
  const server = createServer()
  return await new Promise((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A free port whose cluster bus port (+10000) is free too. */
async function freeClusterPort (taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000)
    if (taken.has(port) || taken.has(port + 10_000)) continue
    if (await isFree(port) && await isFree(port + 10_000)) {
      taken.add(port)
      taken.add(port + 10_000)
      return port
    }
  }
}

/** A node of a private cluster: a private redis-server with cluster mode on. */
export class ClusterNode extends PrivateRedis {}

async function run (command: string, args: string[]): Promise<string> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${output}`)
  return output
}

/** A command to one node of a cluster, on a connection of its own. */
export async function nodeCommand (url: string, args: string[]): Promise<string> {
  const client = createClient({ url })
  client.on('error', () => {})
  await client.connect()
  try {
    return String(await client.sendCommand(args))
  } finally {
    client.destroy()
  }
}

/** A Redis Cluster of the test's own on loopback ports, created with redis-cli --cluster create. */
export class PrivateCluster {
  readonly nodes: ClusterNode[]
  readonly #dir: string

  private constructor (nodes: ClusterNode[], dir: string) {
    this.nodes = nodes
    this.#dir = dir
  }

  /** The URL of a node that is a master now. */
  get url (): string {
    return this.nodes.find((node) => node.running)!.url
  }

  static async start (t: Teardown, { masters = 3, replicas = 0, nodeTimeout = 1000 } = {}): Promise<PrivateCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'websocket-rooms-cluster-'))
    const taken = new Set<number>()
    const nodes: ClusterNode[] = []
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const port = await freeClusterPort(taken)
      nodes.push(new ClusterNode(port, [
        '--dir', dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', String(nodeTimeout)
      ]))
    }
    const cluster = new PrivateCluster(nodes, dir)
    t.teardown(() => cluster.stop())
    await Promise.all(nodes.map((node) => node.start()))
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'])
    await cluster.settled()
    return cluster
  }

  /** Resolves once every running node says the cluster is ok, with every slot served. */
  async settled (): Promise<void> {
    await eventually(async () => {
      const infos = await Promise.all(this.nodes.filter((node) => node.running).map((node) => nodeCommand(node.url, ['CLUSTER', 'INFO']).catch(() => '')))
      return infos.every((info) => /cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info))
    }, 'every node of the cluster to say cluster_state:ok')
  }

  /** The running node that is master of a slot now. */
  async masterOf (slot: number): Promise<ClusterNode> {
    for (const node of this.nodes.filter((node) => node.running)) {
      const client = createClient({ url: node.url })
      client.on('error', () => {})
      await client.connect()
      try {
        const slots = await client.sendCommand(['CLUSTER', 'SLOTS']) as Array<[number, number, [string, number, ...unknown[]], ...unknown[]]>
        for (const [from, to, [, port]] of slots) {
          if (slot >= from && slot <= to) return this.nodes.find((candidate) => candidate.port === Number(port))!
        }
      } finally {
        client.destroy()
      }
    }
    throw new Error(`no master of slot ${slot}`)
  }

  async stop (): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()))
    await rm(this.#dir, { recursive: true, force: true })
  }
}

/** The hash slot of a key or channel, as Redis Cluster computes it (CRC16/XMODEM of its hash tag, mod 16384). */
export function slotOf (key: string): number {
  const bytes = Buffer.from(key)
  let hashed = bytes
  const open = bytes.indexOf(0x7b)
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1)
    if (close > open + 1) hashed = bytes.subarray(open + 1, close)
  }
  let crc = 0
  for (const byte of hashed) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = (crc & 0x8000) !== 0 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % 16384
}

let shared: Promise<string | null> | null = null

/** The shared cluster's URL: CLUSTER_URL, else a private cluster this process starts once (null when redis-server is missing). */
async function sharedCluster (): Promise<string | null> {
  const url = process.env.CLUSTER_URL
  if (url !== undefined && url !== '') return await pingRedis(url) ? url : null
  try {
    const cluster = await PrivateCluster.start(tap, { masters: 3 })
    return cluster.url
  } catch {
    return null
  }
}

/**
 * A test that needs a Redis Cluster; `url` is a node of it. Outside CI a missing cluster
 * skips it, saying why; under CI=true the cluster tests must run, so it fails them.
 */
export function clusterTest (name: string, fn: (t: Test, url: string) => Promise<void>): void {
  test(name, async (t) => {
    const url = await (shared ??= sharedCluster())
    if (url === null) {
      const why = `no Redis Cluster at CLUSTER_URL (${process.env.CLUSTER_URL ?? 'unset'}) and none could be started (redis-server, redis-cli); ${START_CLUSTER}`
      if (process.env.CI === 'true') t.fail(`${why} (CI=true: the cluster tests must run, never skip)`)
      else t.plan(0, `skipped: ${why}`)
      return
    }
    await fn(t, url)
  })
}

// Redis for the cluster tests: the shared server on 127.0.0.1:6379 (REDIS_URL to change it),
// a key prefix per test so tests running at once never see each other, and private
// redis-server processes for the tests that stop Redis or change its configuration.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { createClient } from '@redis/client'
import { test, type Test } from 'tap'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

export const START_REDIS = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'

/** Answers whether a Redis server answers PING at the URL. */
export async function pingRedis (url: string = REDIS_URL): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve) => {
    const socket = tcpConnect(Number(port || 6379), hostname)
    socket.setTimeout(2000)
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => { socket.destroy(); resolve(data.toString().startsWith('+PONG')) })
    socket.once('timeout', () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(false))
  })
}

let redisAnswers: Promise<boolean> | null = null

/**
 * A test that needs Redis. Outside CI a missing Redis skips it, saying why and how to start
 * one; under CI=true the Redis tests must run, so a missing Redis fails them.
 */
export function redisTest (name: string, fn: (t: Test) => Promise<void>): void {
  test(name, async (t) => {
    if (!await (redisAnswers ??= pingRedis())) {
      const why = `Redis is not answering at ${REDIS_URL}; start one with: ${START_REDIS}`
      if (process.env.CI === 'true') t.fail(`${why} (CI=true: the Redis tests must run, never skip)`)
      else t.plan(0, `skipped: ${why}`)
      return
    }
    await fn(t)
  })
}

/** A key prefix no other test uses. */
export function uniquePrefix (name: string): string {
  return `test-${name}-${randomUUID().slice(0, 8)}`
}

function createAdminClient (url: string) {
  return createClient({ url })
}

export type AdminClient = ReturnType<typeof createAdminClient>

/** A plain connection for a test's own checks (PUBSUB CHANNELS, EXISTS...). */
export async function adminClient (t: { teardown (fn: () => unknown): void }, url: string = REDIS_URL): Promise<AdminClient> {
  const client = createAdminClient(url)
  client.on('error', () => {}) // a private server the test stops on purpose
  await client.connect()
  t.teardown(() => { if (client.isOpen) client.destroy() })
  return client
}

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** Starts redis-server on `port`: the process, and a promise that it accepts connections. */
export function spawnRedisServer (port: number, args: readonly string[]): { child: ChildProcess, ready: Promise<void> } {
  const child = spawn('redis-server', ['--port', String(port), ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`redis-server on port ${port} exited with ${code}: ${output}`)))
    child.once('error', reject)
  })
  return { child, ready }
}

/** A redis-server of the test's own, on a free port: it may be stopped and started again. */
export class PrivateRedis {
  readonly port: number
  readonly url: string
  readonly #extraArgs: string[]
  #process: ChildProcess | null = null

  /** Not started: start() it, and stop() it at the end (or use PrivateRedis.start). */
  constructor (port: number, extraArgs: string[]) {
    this.port = port
    this.url = `redis://127.0.0.1:${port}`
    this.#extraArgs = extraArgs
  }

  static async start (t: { teardown (fn: () => unknown): void }, extraArgs: string[] = []): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort(), extraArgs)
    await redis.start()
    t.teardown(() => redis.stop())
    return redis
  }

  /** Starts the server and resolves once it accepts connections. */
  async start (): Promise<void> {
    const { child, ready } = spawnRedisServer(this.port, ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...this.#extraArgs])
    this.#process = child
    await ready
  }

  /** Started, and neither stopped nor crashed since. */
  get running (): boolean {
    return this.#process !== null
  }

  /** Freezes the server (SIGSTOP): its connections stay up, and nothing is answered. */
  pause (): void {
    this.#process?.kill('SIGSTOP')
  }

  /** Lets a frozen server go on (SIGCONT). */
  resume (): void {
    this.#process?.kill('SIGCONT')
  }

  /** Stops the server (SIGTERM) and resolves once it has exited. */
  async stop (): Promise<void> {
    await this.#end('SIGTERM')
  }

  /**
   * Kills the server (SIGKILL): its connections drop at once. A SIGTERM'd server may still
   * answer a client that reconnects while it shuts down, which would make two outages of one.
   */
  async crash (): Promise<void> {
    await this.#end('SIGKILL')
  }

  async #end (signal: NodeJS.Signals): Promise<void> {
    const child = this.#process
    if (child === null || child.exitCode !== null || child.signalCode !== null) return
    this.#process = null
    const exited = once(child, 'exit')
    // A paused server would never see the SIGTERM. A SIGKILL ends it as it is: woken first, it
    // could still answer what waits in its connections before it dies.
    if (signal !== 'SIGKILL') child.kill('SIGCONT')
    child.kill(signal)
    await exited
  }
}

/**
 * A TCP proxy to a Redis server, for one node: cut() drops its connections and refuses new
 * ones (that node has lost Redis, the others keep it), restore() lets them through again.
 */
export class RedisProxy {
  readonly url: string
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #cut = false

  private constructor (server: Server, port: number) {
    this.#server = server
    this.url = `redis://127.0.0.1:${port}`
  }

  /** A proxy to the Redis server at `url`. */
  static async start (t: { teardown (fn: () => unknown): void }, url: string): Promise<RedisProxy> {
    const { hostname, port } = new URL(url)
    const server = createServer()
    const proxy = new RedisProxy(server, await new Promise<number>((resolve) => {
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
    }))
    server.on('connection', (client) => proxy.#link(client, Number(port || 6379), hostname))
    t.teardown(() => proxy.close())
    return proxy
  }

  #link (client: Socket, port: number, host: string): void {
    if (this.#cut) {
      client.destroy()
      return
    }
    const redis = tcpConnect(port, host)
    for (const [socket, other] of [[client, redis], [redis, client]] as const) {
      this.#sockets.add(socket)
      socket.on('error', () => other.destroy())
      socket.on('close', () => {
        this.#sockets.delete(socket)
        other.destroy()
      })
      socket.pipe(other)
    }
  }

  /** Drops every connection through the proxy, and refuses new ones until restore(). */
  cut (): void {
    this.#cut = true
    for (const socket of this.#sockets) socket.destroy()
  }

  restore (): void {
    this.#cut = false
  }

  async close (): Promise<void> {
    this.cut()
    await new Promise((resolve) => this.#server.close(resolve))
  }
}

/**
 * A redis-server of the test's own with cluster mode on: one node with no slots, which is
 * enough to answer INFO with cluster_enabled:1. Its cluster config file lives in a directory
 * of its own, removed once the server has stopped.
 */
export async function clusterNode (t: { teardown (fn: () => unknown): void }): Promise<PrivateRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'websocket-rooms-cluster-'))
  const redis = await PrivateRedis.start({ teardown () {} }, ['--cluster-enabled', 'yes', '--dir', dir, '--cluster-config-file', 'nodes.conf'])
  t.teardown(async () => {
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  })
  return redis
}

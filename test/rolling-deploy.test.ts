// A rolling deploy: two chat servers (test/fixtures/rolling-node.ts: examples/chat's module
// with the Redis adapter and resume) in processes of their own, sharing one Redis, behind a
// TCP balancer written here (each new connection piped to the next live server, round-robin,
// skipping one that refuses). 200 ws clients in 10 rooms chat through publish(), each sender
// receiving its own messages too; each server in turn is closed with app.close() and started
// again on its port, while they chat. Its clients are closed with 1012 and come back through
// the balancer with their tokens, on the other server. Every client ends as the session it
// started as, every room's messages reach every client in offset order, with no gap and no
// duplicate, and onPresence is never called for any of it.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { type AddressInfo, type Server, type Socket, connect as tcpConnect, createServer } from 'node:net'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { REDIS_URL, redisTest, uniquePrefix } from './redis'
import { Events, until, within } from './signals'

const CLIENTS = 200
const ROOMS = 10
const roomNames = Array.from({ length: ROOMS }, (_, i) => `room-${i}`)
/** How often each client says something while connected, in ms on average. */
const TALK_EVERY = 1000
/** How many more messages each room gets while the servers stand between two steps. */
const STEP_MESSAGES = 3

interface PresenceCall { room: string, joins: string[], leaves: string[] }

/** A chat server in a process of its own, and what it tells the test. */
class Node {
  readonly presence = new Events<PresenceCall>()
  readonly listening: Promise<number>
  readonly exited: Promise<unknown[]>
  readonly #child: ChildProcess
  #answers: Array<(message: any) => void> = []

  constructor (t: Test, env: Record<string, string>, port: number) {
    this.#child = spawn(process.execPath, ['--import', 'tsx', require.resolve('./fixtures/rolling-node.ts')], {
      env: { ...process.env, ...env, PORT: String(port) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
    const child = this.#child
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    this.exited = once(child, 'exit')
    this.listening = within(new Promise<number>((resolve, reject) => {
      child.on('message', (message: any) => {
        if (message.type === 'listening') resolve(message.port)
        else if (message.type === 'presence') this.presence.push(message)
        else for (const answer of this.#answers.splice(0)) answer(message)
      })
      this.exited.then(([code]) => reject(new Error(`a chat server exited with ${code} before it listened`)), reject)
    }), 'a chat server to listen')
  }

  /** Its next answer to `command`. */
  async #ask (command: object, what: string): Promise<any> {
    const answered = new Promise<any>((resolve) => this.#answers.push(resolve))
    this.#child.send(command)
    const answer = await within(answered, what)
    if (answer.type === 'error') throw new Error(`${what}: ${answer.message}`)
    return answer
  }

  /** Each room's presence, by session id, as the server reads it in Redis. */
  async members (): Promise<Record<string, { ids: string[], nodes: string[], complete: boolean }>> {
    return (await this.#ask({ cmd: 'members', rooms: roomNames }, 'a chat server\'s list of members')).rooms
  }

  /** app.close(), then the process exits. */
  async close (): Promise<void> {
    await this.#ask({ cmd: 'close' }, 'a chat server\'s app.close()')
    await within(this.exited, 'a closed chat server to exit')
  }
}

/** A TCP balancer on a loopback port: each connection goes to the next server, round-robin, skipping those that refuse it. */
async function balancer (t: Test, ports: number[]): Promise<number> {
  const sockets = new Set<Socket>()
  let next = 0
  const server: Server = createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => client.destroy())
    const attempt = (left: number): void => {
      if (left === 0 || client.destroyed) {
        client.destroy()
        return
      }
      const backend = tcpConnect(ports[next++ % ports.length]!, '127.0.0.1')
      const refused = (): void => attempt(left - 1)
      backend.once('error', refused)
      backend.once('connect', () => {
        backend.off('error', refused)
        sockets.add(backend)
        backend.on('close', () => { sockets.delete(backend); client.destroy() })
        backend.on('error', () => backend.destroy())
        client.on('close', () => backend.destroy())
        client.pipe(backend)
        backend.pipe(client)
      })
    }
    attempt(ports.length)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  return (server.address() as AddressInfo).port
}

/** The closes after which a client comes back with its token: a server restarting, a connection lost. */
const COMES_BACK = new Set([1012, 1006])

/** A chat client: connects through the balancer, talks now and then, and comes back with its token when its server closes. */
class Chatter {
  readonly room: string
  /** Every welcome it got: the session's id, and whether it resumed. */
  readonly welcomes: Array<{ id: string, resumed: boolean }> = []
  /** The position of every chat message of its room it got, in the order it got them. */
  readonly offsets: number[] = []
  readonly epochs = new Set<string>()
  /** Closes it did not expect (neither 1012 nor 1006). */
  readonly unexpected: number[] = []
  /** Handshakes that failed (a server closing, or none up): each tried again. */
  retries = 0
  #token: string | null = null
  #socket: WebSocket | null = null
  #welcomed = false
  #stopped = false
  #talking = false
  #said = 0
  #timer: NodeJS.Timeout | null = null

  constructor (readonly url: string, readonly user: string, room: string) {
    this.room = room
  }

  get welcomed (): boolean {
    return this.#welcomed
  }

  connect (): void {
    const query = new URLSearchParams({ user: this.user, room: this.room })
    if (this.#token !== null) query.set('resume', this.#token)
    const socket = this.#socket = new WebSocket(`${this.url}/ws/chat?${query}`)
    this.#welcomed = false
    let opened = false
    socket.on('open', () => { opened = true })
    socket.on('error', () => {}) // a refused handshake: its close follows
    socket.on('message', (data) => {
      const message = JSON.parse(String(data))
      if (message.type === 'welcome') {
        this.#token = message.resume
        this.#welcomed = true
        this.welcomes.push({ id: message.id, resumed: message.resumed })
        this.#schedule()
      } else if (message.type === 'message') {
        this.offsets.push(message.offset)
        this.epochs.add(message.epoch)
      }
    })
    socket.on('close', (code) => {
      if (this.#socket !== socket || this.#stopped) return
      this.#welcomed = false
      if (!COMES_BACK.has(code)) {
        this.unexpected.push(code)
        return
      }
      if (!opened) this.retries++
      // Back at once, within 100 ms: the clients of a server that closes spread a little.
      setTimeout(() => { if (!this.#stopped) this.connect() }, Math.random() * 100)
    })
  }

  /** Says something every TALK_EVERY ms on average, while welcomed. */
  talk (on: boolean): void {
    this.#talking = on
    this.#schedule()
  }

  #schedule (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    if (!this.#talking || this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (this.#welcomed) this.#socket!.send(JSON.stringify({ type: 'chat.send', data: { text: `${this.user} ${++this.#said}` } }))
      this.#schedule()
    }, TALK_EVERY * (0.5 + Math.random()))
  }

  stop (): void {
    this.#stopped = true
    this.talk(false)
    this.#socket?.close()
  }
}

/** The last position each room's clients got, at most. */
function lastOffsets (chatters: Chatter[]): Map<string, number> {
  const last = new Map<string, number>()
  for (const chatter of chatters) last.set(chatter.room, Math.max(last.get(chatter.room) ?? 0, chatter.offsets.at(-1) ?? 0))
  return last
}

redisTest('rolling deploy: each of two servers restarts in turn while 200 clients chat in 10 rooms; every client stays its session, gets every message once, in order, and presence sees nothing', async (t) => {
  const env = { REDIS_URL, KEY_PREFIX: uniquePrefix('rolling-deploy') }
  const started = Date.now()
  const step = (what: string): void => { t.comment(`${what} at ${((Date.now() - started) / 1000).toFixed(1)} s`) }
  const first = [new Node(t, env, 0), new Node(t, env, 0)]
  const ports = await Promise.all(first.map((node) => node.listening))
  const nodes = [...first]
  const url = `ws://127.0.0.1:${await balancer(t, ports)}`

  // Everyone joins, 20 handshakes at a time; the balancer spreads them over both servers.
  const chatters = Array.from({ length: CLIENTS }, (_, i) => new Chatter(url, `user-${i}`, roomNames[i % ROOMS]!))
  t.teardown(() => { for (const chatter of chatters) chatter.stop() })
  for (let i = 0; i < CLIENTS; i += 20) {
    const batch = chatters.slice(i, i + 20)
    for (const chatter of batch) chatter.connect()
    await until(() => batch.every((chatter) => chatter.welcomed), 'a batch of clients welcomed')
  }
  step(`${CLIENTS} clients welcomed`)
  const ids = chatters.map((chatter) => chatter.welcomes[0]!.id)
  t.equal(new Set(ids).size, CLIENTS, `${CLIENTS} sessions`)
  // onPresence told each join once, on the server where it happened: after that, nothing more.
  const joined = (): number => nodes.reduce((sum, node) => sum + node.presence.list.reduce((count, call) => count + call.joins.length, 0), 0)
  await until(() => joined() >= CLIENTS, () => `onPresence told of ${CLIENTS} joins (${joined()} so far)`)
  t.same(nodes.flatMap((node) => node.presence.list).flatMap((call) => call.leaves), [], 'no leave')
  const told = nodes.map((node) => node.presence.list.length)

  /** Resolves once every room has `more` messages past where it is now (as its clients got them). */
  async function progress (more: number, what: string): Promise<void> {
    const from = lastOffsets(chatters)
    await until(() => {
      const now = lastOffsets(chatters)
      return roomNames.every((room) => (now.get(room) ?? 0) >= (from.get(room) ?? 0) + more)
    }, () => `${more} more messages in every room ${what}`)
  }

  for (const chatter of chatters) chatter.talk(true)
  await progress(STEP_MESSAGES, 'before any restart')

  for (const index of [0, 1]) {
    // Server `index` is deployed: closed (its clients close with 1012 and come back on the
    // other one), then started again on its port, while the rooms go on.
    const leaving = nodes[index]!
    const welcomes = chatters.map((chatter) => chatter.welcomes.length)
    await leaving.close()
    step(`server ${index} closed`)
    const moved = (): Chatter[] => chatters.filter((chatter, i) => chatter.welcomes.length > welcomes[i]!)
    await until(() => chatters.every((chatter) => chatter.welcomed), () => `every client welcomed again after server ${index} closed (${moved().length} came back)`)
    step('its clients back on the other server')
    t.ok(moved().length > 0, `server ${index}'s clients came back on the other (${moved().length})`)
    await progress(STEP_MESSAGES, `while server ${index} is down`)
    const node = new Node(t, env, ports[index]!)
    t.equal(await node.listening, ports[index], `server ${index} up again on its port`)
    step(`server ${index} up again`)
    nodes.push(node)
    await progress(STEP_MESSAGES, `once server ${index} is back`)
  }

  // Quiet: every client gets up to the last message of its room.
  for (const chatter of chatters) chatter.talk(false)
  let last = lastOffsets(chatters)
  await until(() => {
    last = lastOffsets(chatters)
    return chatters.every((chatter) => chatter.offsets.at(-1) === last.get(chatter.room))
  }, () => `every client at its room's last message (${chatters.filter((chatter) => chatter.offsets.at(-1) !== last.get(chatter.room)).length} behind)`)

  step('every client at its room\'s last message')
  const sameSession = chatters.filter((chatter, i) => chatter.welcomes.every((welcome) => welcome.id === ids[i]))
  t.equal(sameSession.length, CLIENTS, 'every client is the session it started as, after each of its comebacks')
  const comebacks = chatters.reduce((sum, chatter) => sum + chatter.welcomes.length - 1, 0)
  t.ok(chatters.every((chatter) => chatter.welcomes.length >= 2), `every client came back at least once (${comebacks} comebacks, ${chatters.reduce((sum, chatter) => sum + chatter.retries, 0)} handshakes tried again)`)
  t.ok(chatters.every((chatter) => chatter.welcomes.slice(1).every((welcome) => welcome.resumed)), 'each comeback resumed')
  const inOrder = chatters.filter((chatter) => chatter.offsets.every((offset, i) => offset === i + 1))
  t.equal(inOrder.length, CLIENTS, `every room's messages at every client in offset order from 1, no gap, no duplicate (${[...last.values()].reduce((a, b) => a + b, 0)} messages in all)`)
  t.ok(chatters.every((chatter) => chatter.epochs.size === 1), 'one epoch per room')
  t.same(chatters.flatMap((chatter) => chatter.unexpected), [], 'no close but 1012 and 1006')

  // Nothing for onPresence since the joins, on any server, and every room lists the sessions it
  // started with, each once (not also under the holder of a server that parked it).
  t.same(nodes.map((node, i) => node.presence.list.slice(told[i] ?? 0)).flat(), [], 'onPresence not called for any of it')
  const members = await nodes.at(-1)!.members()
  for (const room of roomNames) {
    const expected = chatters.map((chatter, i) => chatter.room === room ? ids[i]! : null).filter((id) => id !== null).sort()
    const { ids: listed, nodes: where, complete } = members[room]!
    t.same({ ids: listed, complete }, { ids: expected, complete: true }, `${room}: its 20 sessions, as they started, each once`, { where })
  }

  for (const chatter of chatters) chatter.stop()
  await Promise.all(nodes.slice(-2).map((node) => node.close()))
})

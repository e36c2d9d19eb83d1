// Every key and channel the Redis adapter uses, and which live together. On Redis Cluster a
// key's slot is the hash of its tag, the text between its first `{` and the next `}`; keys
// that one MULTI or one script touches must share a slot, so each group below shares a tag,
// and everything else is spread over the shards (docs/cluster-internals.md#where-the-keys-live).
// Each key starts with its group's `{...}`, so whatever a room name or node id holds (a `}`
// too), the keys of one group hash alike. On one Redis the tags change nothing.
//
// - a room: `{<p>:room:<name>}` is its channel; its history stream, its offset counter and its
//   occupancy set follow it, so the history script writes and publishes on one shard;
// - a server: `{<p>:node:<id>}` is its hash of room counts; its presence entries, the list of
//   its rooms and the claim on it once dead follow it, so its updates are one MULTI;
// - the list of servers, read whole: `{<p>}:nodes`; the commands for every server go on
//   `<p>:control`, the takeovers of sessions between servers on `<p>:resume`;
// - a session parked by a closing server: `{<p>:resume:<token>}`, a key of its own.
/** Ends a holder's id: a node id (base64url) never holds a '.'. */
const HOLDER_SUFFIX = '.parked'

export class RedisKeys {
  readonly nodes: string
  readonly control: string
  readonly resumeChannel: string
  readonly #resumePrefix: string
  /** Every room channel starts with it, and ends with `}`: the room's name sits between. */
  readonly channelPrefix: string
  readonly #channelPrefixBytes: number
  readonly #nodePrefix: string

  constructor (keyPrefix: string) {
    this.nodes = `{${keyPrefix}}:nodes`
    this.control = `${keyPrefix}:control`
    this.resumeChannel = `${keyPrefix}:resume`
    this.#resumePrefix = `{${keyPrefix}:resume:`
    this.channelPrefix = `{${keyPrefix}:room:`
    this.#channelPrefixBytes = Buffer.byteLength(this.channelPrefix)
    this.#nodePrefix = `{${keyPrefix}:node:`
  }

  /** A room's channel, and the tag of its other keys. */
  channel (room: string): string {
    return `${this.channelPrefix}${room}}`
  }

  /** The room's name in a channel's bytes. */
  roomOf (channel: Buffer): string {
    return channel.toString('utf8', this.#channelPrefixBytes, channel.length - 1)
  }

  historyMeta (room: string): string {
    return `${this.channel(room)}:history-meta`
  }

  history (room: string): string {
    return `${this.channel(room)}:history`
  }

  occupied (room: string): string {
    return `${this.channel(room)}:occupied`
  }

  /** A server's hash of its rooms' member counts, and the tag of its other keys. */
  node (nodeId: string): string {
    return `${this.#nodePrefix}${nodeId}}`
  }

  presence (nodeId: string, room: string): string {
    return `${this.node(nodeId)}:presence:${room}`
  }

  presenceRooms (nodeId: string): string {
    return `${this.node(nodeId)}:presence-rooms`
  }

  /** The holder of the presence of the sessions a closing server parked: listed as a node, never one. */
  holder (nodeId: string): string {
    return `${nodeId}${HOLDER_SUFFIX}`
  }

  isHolder (nodeId: string): boolean {
    return nodeId.endsWith(HOLDER_SUFFIX)
  }

  /** A parked session's state, by its token. */
  resume (token: string): string {
    return `${this.#resumePrefix}${token}}`
  }

  reaped (nodeId: string): string {
    return `${this.node(nodeId)}:reaped`
  }
}

// The history's Lua scripts (./scripts/*.lua, loaded once), their named arguments, and the
// layout of a message as the stream keeps it. A script's arguments are built from an object
// here, in the order its first line unpacks them (test/redis-scripts.test.ts checks the two
// agree), so that neither side counts positions.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BINARY, Encoded, TEXT } from '../transport/frame'
import { FLAG_BINARY, PUBLISHED_FLAGS_BYTE } from './codec'

/** Sends a raw command to the shard of `key` (any shard of one Redis), with Redis's strings as Buffers. */
export type SendCommand = (key: string, args: Array<string | Buffer>) => Promise<unknown>

/** A script run by its SHA1, sent again in full when Redis does not have it (NOSCRIPT: a restart, SCRIPT FLUSH). */
export class Script<Names extends readonly string[]> {
  readonly source: string
  /** Its named arguments, in the order the script unpacks them from ARGV. */
  readonly names: Names
  readonly #sha: string

  constructor (file: string, names: Names) {
    this.source = readFileSync(join(__dirname, 'scripts', file), 'utf8')
    this.names = names
    this.#sha = createHash('sha1').update(this.source).digest('hex')
  }

  /** Runs it with its named arguments, then `rest` (a script's repeated arguments). */
  async run (send: SendCommand, keys: string[], named: Record<Names[number], string>, rest: Array<string | Buffer> = []): Promise<unknown> {
    const args = [String(keys.length), ...keys, ...this.names.map((name: Names[number]) => named[name]), ...rest]
    try {
      return await send(keys[0]!, ['EVALSHA', this.#sha, ...args])
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error
      return await send(keys[0]!, ['EVAL', this.source, ...args])
    }
  }
}

const PUBLISH_ARGS = ['channel', 'epoch', 'top', 'ttl', 'size', 'newEpoch', 'publishCommand', 'nodeId', 'askTurn', 'turnMs', 'flagsAt'] as const
const READ_ARGS = ['newEpoch', 'ttl', 'after', 'limit', 'epoch'] as const

/** Appends and PUBLISHes a batch if the stream is where the node expects it; then three arguments per message (publishedMessage). */
export const publishScript = new Script('history-publish.lua', PUBLISH_ARGS)
/** Reads a stream's position and entries, creating it when there is none. */
export const readScript = new Script('history-read.lua', READ_ARGS)

/** Where the flags byte the stream keeps is in a published packet: the codec's layout, handed to the script. */
export const FLAGS_AT = String(PUBLISHED_FLAGS_BYTE)

/** A message's arguments to the publish script: its packet, its header's length, the session left out. */
export function publishedMessage (packet: Buffer, headerLength: number, exceptId: string | null): Array<string | Buffer> {
  return [packet, String(headerLength), exceptId ?? '']
}

/** A message as the stream keeps it (the packet's flags byte, then the message's bytes), or null when it is not one. */
export function decodeStored (data: Buffer): Encoded | null {
  if (data.length < 1 || (data[0]! & ~FLAG_BINARY) !== 0) return null
  return new Encoded(data.subarray(1), (data[0]! & FLAG_BINARY) !== 0 ? BINARY : TEXT)
}

// The history's Lua scripts against the code that calls them (lib/cluster/history-scripts.ts):
// each script unpacks the named arguments in the order the code sends them, and what the
// publish script keeps of a packet (its flags byte, then the message) is read back as the
// message it was, in a real Redis.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { test } from 'tap'
import { RESP_TYPES, createClient } from '@redis/client'
import { encodePublished } from '../lib/cluster/codec'
import { FLAGS_AT, decodeStored, publishScript, publishedMessage, readScript } from '../lib/cluster/history-scripts'
import { BINARY, Encoded, TEXT } from '../lib/transport/frame'
import { REDIS_URL, redisTest, uniquePrefix } from './redis'
import { until } from './signals'

/** The names a script's first `local ... = unpack(ARGV, 1, n)` line gives its arguments. */
function unpacked (file: string): { names: string[], count: number } {
  const source = readFileSync(resolve(__dirname, '..', 'lib', 'cluster', 'scripts', file), 'utf8')
  const match = /^local ([\w, ]+) = unpack\(ARGV, 1, (\d+)\)$/m.exec(source)
  if (match === null) throw new Error(`${file} does not unpack its named arguments`)
  return { names: match[1]!.split(',').map((name) => name.trim()), count: Number(match[2]) }
}

test('each script unpacks the arguments the code names, in the same order', async (t) => {
  for (const [file, script] of [['history-publish.lua', publishScript], ['history-read.lua', readScript]] as const) {
    const { names, count } = unpacked(file)
    t.same(names, [...script.names], `${file}: the names`)
    t.equal(count, script.names.length, `${file}: as many as it unpacks`)
  }
  t.match(publishScript.source, /local FIRST_MESSAGE = 12\n/, 'the messages come right after the 11 named arguments')
  t.equal(publishScript.names.length, 11)
})

test('a stored message is read back as it was published, text and binary', async (t) => {
  for (const encoded of [new Encoded(Buffer.from('héllo'), TEXT), new Encoded(Buffer.from([0, 1, 2, 255]), BINARY)]) {
    const packet = encodePublished('node', { epoch: 'e1', offset: 7, exceptId: 'someone', encoded })
    const header = packet.length - encoded.data.length
    // What the script keeps: the byte at FLAGS_AT (0-based), then the bytes after the header.
    const stored = Buffer.concat([packet.subarray(Number(FLAGS_AT), Number(FLAGS_AT) + 1), packet.subarray(header)])
    t.same(decodeStored(stored), encoded)
  }
  t.equal(decodeStored(Buffer.alloc(0)), null, 'empty')
  t.equal(decodeStored(Buffer.from([0x80, 1])), null, 'unknown flags')
})

redisTest('in Redis: the publish script appends what the read script returns, and PUBLISHes the packet', async (t) => {
  const connection = createClient({ url: REDIS_URL })
  await connection.connect()
  t.teardown(() => connection.close())
  // As lib/cluster/redis-log.ts reads its replies: bulk strings as Buffers.
  const client = connection.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
  const subscriber = connection.duplicate()
  await subscriber.connect()
  t.teardown(() => subscriber.close())
  const prefix = uniquePrefix('scripts')
  const keys = [`{${prefix}}:history-meta:room`, `{${prefix}}:history:room`]
  const channel = `${prefix}:room:room`
  const published: Buffer[] = []
  await subscriber.subscribe(channel, (message) => { published.push(message) }, true)
  t.teardown(() => connection.del(keys))
  const read = (): Promise<unknown> => readScript.run((_key, args) => client.sendCommand(args), keys, { newEpoch: 'first', ttl: '60000', after: '0', limit: '10', epoch: '' })
  t.match(await read(), [Buffer.from('first'), Buffer.from('0')], 'the stream is created, empty')
  const encoded = new Encoded(Buffer.from([9, 8, 7]), BINARY)
  const packet = encodePublished('node', { epoch: 'first', offset: 1, exceptId: null, encoded })
  const named = { channel, epoch: 'first', top: '0', ttl: '60000', size: '10', newEpoch: 'unused', publishCommand: 'PUBLISH', nodeId: 'node', askTurn: '0', turnMs: '1000', flagsAt: FLAGS_AT }
  const reply = await publishScript.run((_key, args) => client.sendCommand(args), keys, named, publishedMessage(packet, packet.length - encoded.data.length, null))
  t.same(reply, [1, Buffer.from('first'), Buffer.from('1')], 'written at offset 1')
  const [, top, , entries] = await read() as [Buffer, Buffer, Buffer, Array<[Buffer, Buffer[]]>]
  t.equal(top.toString(), '1')
  const fields = entries[0]![1]
  const data = fields[fields.findIndex((field) => field.toString() === 'd') + 1]!
  t.same(decodeStored(data), encoded, 'kept as the message it was')
  await until(() => published.length > 0, 'the packet is PUBLISHed')
  t.same(published, [packet], 'the packet, PUBLISHed as it was')
})

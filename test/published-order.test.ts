// The order of a room's published messages on one node (lib/cluster/published-order.ts): what
// arrives after a gap waits while the missed messages are read from the history, each
// message is handed over once and in order, and what the history no longer has is skipped
// rather than waited for. The read is the test's own, so that each case is exact.
import { test } from 'tap'
import { PublishedOrder } from '../lib/cluster/published-order'
import type { PublishedMessage } from '../lib/cluster/codec'
import type { LogRead } from '../lib/history/log'
import { Encoded, TEXT } from '../lib/transport/frame'
import { gate } from './signals'

function message (offset: number, epoch = 'e1'): PublishedMessage {
  return { epoch, offset, exceptId: null, encoded: new Encoded(Buffer.from(`m${offset}`), TEXT) }
}

/**
 * An order whose reads answer from `kept` (offsets the history still has, in `history.epoch`,
 * which a test may change: a stream created anew) once `answer` opens; a read of another epoch
 * than the history's gets no entries, as from Redis.
 */
function order (kept: number[], epoch = 'e1') {
  const delivered: string[] = []
  const reads: Array<{ after: number, limit: number, epoch?: string }> = []
  const history = { epoch, kept }
  let answer = gate()
  const failing = { reads: 0 }
  const host = {
    size: 100,
    deliver (name: string, m: PublishedMessage) { delivered.push(`${name}:${m.epoch}:${m.offset}`) },
    async read (name: string, after: number, limit: number, asked: string): Promise<LogRead> {
      reads.push(asked === epoch ? { after, limit } : { after, limit, epoch: asked })
      await answer.opened
      if (failing.reads > 0 && failing.reads-- > 0) throw new Error('Redis away')
      const { epoch: current, kept } = history
      const entries = asked !== current ? [] : kept.filter((offset) => offset > after).slice(0, limit).map((offset) => ({ offset, encoded: message(offset, current).encoded }))
      return { epoch: current, top: Math.max(0, ...kept), entries }
    },
    readFailed () {}
  }
  return { order: new PublishedOrder(host), delivered, reads, failing, history, open: () => { answer.open(); answer = gate() } }
}

const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

test('a gap: later messages wait while the missed ones are read, then all go out once, in order', async (t) => {
  const { order: o, delivered, reads, open } = order([1, 2, 3, 4, 5, 6])
  o.receive('r', message(1))
  o.receive('r', message(2))
  o.receive('r', message(5))
  o.receive('r', message(6))
  t.same(delivered, ['r:e1:1', 'r:e1:2'], '5 and 6 wait')
  t.same(reads, [{ after: 2, limit: 2 }], 'the two missed ones are read')
  open()
  await settled()
  await settled()
  t.same(delivered, ['r:e1:1', 'r:e1:2', 'r:e1:3', 'r:e1:4', 'r:e1:5', 'r:e1:6'])
  o.receive('r', message(4))
  t.equal(delivered.length, 6, 'a duplicate is dropped')
})

test('what the history no longer has is skipped, not waited for', async (t) => {
  const { order: o, delivered, open } = order([4])
  o.receive('r', message(1))
  o.receive('r', message(5))
  open()
  await settled()
  await settled()
  t.same(delivered, ['r:e1:1', 'r:e1:4', 'r:e1:5'], '2 and 3 are gone: the rest goes out')
  o.receive('r', message(6))
  t.same(delivered.at(-1), 'r:e1:6')
})

test('catchUp() reads after the last offset of every room; forget() ends a room\'s order', async (t) => {
  const { order: o, delivered, reads, open } = order([1, 2, 3])
  o.receive('r', message(1))
  o.receive('s', message(1))
  o.forget('r')
  o.receive('r', message(9, 'e1'))
  t.same(delivered.at(-1), 'r:e1:9', 'after forget(), the next message starts the order again')
  o.catchUp()
  t.same(reads.map((read) => read.after), [1, 9], 'room s from 1, room r from 9')
  open()
  await settled()
  await settled()
  t.same(delivered.slice(3), ['s:e1:2', 's:e1:3'], 'room s caught up; room r had nothing after 9')
})

test('a message of a new epoch: the new stream is read from its first offset, and its messages go out in order', async (t) => {
  const { order: o, delivered, reads, history, open } = order([1, 2])
  o.receive('r', message(1))
  o.receive('r', message(2))
  // The stream was created anew (Redis lost it, or it expired), and 1 to 3 of the new one were missed.
  Object.assign(history, { epoch: 'e2', kept: [1, 2, 3, 4] })
  o.receive('r', message(4, 'e2'))
  o.receive('r', message(5, 'e2'))
  t.same(delivered, ['r:e1:1', 'r:e1:2'], 'it waits: Redis says which stream is the room\'s')
  open()
  await settled()
  t.same(reads, [{ after: 2, limit: 100 }, { after: 0, limit: 4, epoch: 'e2' }], 'the e1 read finds e2, which is read from its start')
  open()
  await settled()
  t.same(delivered, ['r:e1:1', 'r:e1:2', 'r:e2:1', 'r:e2:2', 'r:e2:3', 'r:e2:4', 'r:e2:5'])
  o.receive('r', message(6, 'e2'))
  t.equal(delivered.at(-1), 'r:e2:6', 'then live')
})

test('catchUp() after the stream was created anew: the new one from its first offset; an old one\'s message that comes later is dropped', async (t) => {
  const { order: o, delivered, reads, history, open } = order([1])
  o.receive('r', message(1))
  Object.assign(history, { epoch: 'e2', kept: [1, 2, 3] })
  o.catchUp()
  open()
  await settled()
  open()
  await settled()
  t.same(reads, [{ after: 1, limit: 100 }, { after: 0, limit: 3, epoch: 'e2' }])
  t.same(delivered, ['r:e1:1', 'r:e2:1', 'r:e2:2', 'r:e2:3'])
  // An e1 message on its way before the new stream began, reaching the node after the read.
  o.receive('r', message(2))
  o.receive('r', message(4, 'e2'))
  open()
  await settled()
  t.same(reads.at(-1), { after: 3, limit: 100, epoch: 'e2' }, 'read: the room\'s stream is e2')
  t.same(delivered.slice(4), ['r:e2:4'], 'the e1 message is dropped: never an old stream\'s after a new one\'s')
})

test('a stream created anew while a gap is read: what the old one had before the read goes first, then the new one', async (t) => {
  const { order: o, delivered, history, open } = order([1, 2, 3])
  o.receive('r', message(1))
  o.receive('r', message(3))
  Object.assign(history, { epoch: 'e2', kept: [1, 2] })
  open()
  await settled()
  open()
  await settled()
  t.same(delivered, ['r:e1:1', 'r:e1:3', 'r:e2:1', 'r:e2:2'], '2 is gone with its stream; 3 came before the new one began')
})

test('reached(): an offset of the members\' epoch, or the epoch before it; not one of a new epoch on its way', async (t) => {
  const { order: o, history, open } = order([1, 2])
  t.notOk(o.reached('r', 'e1', 1), 'nothing yet')
  o.receive('r', message(1))
  o.receive('r', message(2))
  t.same([o.reached('r', 'e1', 2), o.reached('r', 'e1', 3), o.reached('r', 'e2', 1)], [true, false, false])
  Object.assign(history, { epoch: 'e2', kept: [1] })
  o.catchUp()
  open()
  await settled()
  open()
  await settled()
  t.same([o.reached('r', 'e1', 3), o.reached('r', 'e2', 1), o.reached('r', 'e2', 2)], [true, true, false])
})

test('a read that fails keeps later messages waiting; catchUp() reads again, and all go out in order', async (t) => {
  const { order: o, delivered, reads, failing, open } = order([1, 2, 3, 4])
  failing.reads = 1
  o.receive('r', message(1))
  o.receive('r', message(3))
  open()
  await settled()
  await settled()
  t.same(delivered, ['r:e1:1'], 'the read failed: 3 still waits for 2')
  o.receive('r', message(4))
  o.catchUp()
  t.same(reads.map((read) => read.after), [1, 1], 'read again from 1')
  open()
  await settled()
  await settled()
  t.same(delivered, ['r:e1:1', 'r:e1:2', 'r:e1:3', 'r:e1:4'])
})

test('past the history\'s size of messages waiting after a failed read, the missed ones are given up', async (t) => {
  const { order: o, delivered, failing, open } = order([])
  failing.reads = 1
  o.receive('r', message(1))
  o.receive('r', message(3))
  open()
  await settled()
  await settled()
  for (let offset = 4; offset <= 102; offset++) o.receive('r', message(offset))
  t.same(delivered.length, 1, 'a hundred wait (the size)')
  o.receive('r', message(103))
  t.same(delivered.length, 102, 'one more: 2 is given up, 3..103 go out')
  t.same(delivered.at(1), 'r:e1:3')
})

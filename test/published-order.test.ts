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

/** An order whose reads answer from `kept` (offsets the history still has) once `answer` opens. */
function order (kept: number[], epoch = 'e1') {
  const delivered: string[] = []
  const reads: Array<{ after: number, limit: number }> = []
  let answer = gate()
  const failing = { reads: 0 }
  const host = {
    size: 100,
    deliver (name: string, m: PublishedMessage) { delivered.push(`${name}:${m.epoch}:${m.offset}`) },
    async read (name: string, after: number, limit: number): Promise<LogRead> {
      reads.push({ after, limit })
      await answer.opened
      if (failing.reads > 0 && failing.reads-- > 0) throw new Error('Redis away')
      const entries = kept.filter((offset) => offset > after).slice(0, limit).map((offset) => ({ offset, encoded: message(offset).encoded }))
      return { epoch, top: Math.max(0, ...kept), entries }
    },
    readFailed () {}
  }
  return { order: new PublishedOrder(host), delivered, reads, failing, open: () => { answer.open(); answer = gate() } }
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

test('a new epoch starts over; catchUp() reads after the last offset of every room; forget() ends a room\'s order', async (t) => {
  const { order: o, delivered, reads, open } = order([1, 2, 3])
  o.receive('r', message(1))
  o.receive('r', message(1, 'e2'))
  t.same(delivered, ['r:e1:1', 'r:e2:1'], 'another epoch is not a gap')
  o.receive('s', message(1))
  o.forget('r')
  o.receive('r', message(9, 'e1'))
  t.same(delivered.at(-1), 'r:e1:9', 'after forget(), the next message starts the order again')
  o.catchUp()
  t.same(reads.map((read) => read.after), [1, 9], 'room s from 1, room r from 9')
  open()
  await settled()
  await settled()
  t.same(delivered.slice(4), ['s:e1:2', 's:e1:3'], 'room s caught up; room r had nothing after 9')
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

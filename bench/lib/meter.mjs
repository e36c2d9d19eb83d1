// What the processes of a benchmark cost, from /proc (Linux): the CPU time of each named
// process, the kernel's interrupt time, everyone else's, and the servers' write system calls.
// Also waits for a quiet machine before a measurement, since a shared machine with few cores
// is easily set the pace by another process.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

export const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

/** utime + stime of a process (every thread), in clock ticks. */
export function processTicks (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

/**
 * Busy ticks of the whole machine (every CPU): `irq` the time in interrupts and softirqs (on
 * loopback, mostly TCP's receive path, charged to no process), `rest` the time in user and
 * system code, steal included.
 */
function machineTicks () {
  // cpu user nice system idle iowait irq softirq steal …
  const fields = readFileSync('/proc/stat', 'latin1').slice(0, 200).split('\n')[0].trim().split(/\s+/).map(Number)
  return { irq: fields[6] + fields[7], rest: fields[1] + fields[2] + fields[3] + fields[8] }
}

/** Write system calls of a process so far (a writev carrying several frames counts once). */
function writeCalls (pid) {
  return Number(/^syscw: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'latin1'))[1])
}

/**
 * Runs `fn()` and returns its result with `cpu`: the CPU % of one core each process of `pids`
 * ({ name: pid }) used meanwhile, `irq` (the kernel's interrupts) and `other` (every other
 * process); and `writes`: the write system calls of the processes in `writers` (names).
 */
export async function metered (pids, writers, fn) {
  const wall = performance.now()
  const ticks = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processTicks(pid)]))
  const calls = () => writers.reduce((sum, name) => sum + writeCalls(pids[name]), 0)
  const writesBefore = calls()
  const machine = machineTicks()
  const result = await fn()
  const writes = calls() - writesBefore
  const after = machineTicks()
  const seconds = (performance.now() - wall) / 1000
  const percent = (n) => 100 * n / clockTicks / seconds
  const cpu = {}
  let named = 0
  for (const [name, pid] of Object.entries(pids)) {
    const used = processTicks(pid) - ticks[name]
    named += used
    cpu[name] = percent(used)
  }
  cpu.irq = percent(after.irq - machine.irq)
  cpu.other = Math.max(0, percent(after.rest - machine.rest - named))
  return { ...result, cpu, writes }
}

/**
 * Waits (at most `maxMs`) until the processes but `own` (pids) use under `threshold` % of a
 * core over half a second. Resolves with the milliseconds waited beyond the first look.
 */
export async function quiet (own, { threshold = 25, maxMs = 10_000 } = {}) {
  const others = () => machineTicks().rest - own.reduce((sum, pid) => sum + processTicks(pid), 0)
  const began = performance.now()
  for (;;) {
    const before = others()
    await sleep(500)
    const busy = 100 * (others() - before) / clockTicks / 0.5
    const waited = performance.now() - began - 500
    if (busy < threshold || waited > maxMs) return waited
  }
}

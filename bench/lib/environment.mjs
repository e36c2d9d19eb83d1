// The machine a benchmark ran on, for the head of its report.
import { execFileSync } from 'node:child_process'
import os from 'node:os'

export function environment () {
  let nproc = String(os.availableParallelism?.() ?? os.cpus().length)
  try {
    nproc = execFileSync('nproc', { encoding: 'utf8' }).trim()
  } catch {}
  return {
    date: new Date().toISOString(),
    node: process.version,
    nproc,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    kernel: `${os.type()} ${os.release()}`,
    loadavg: os.loadavg().map((value) => value.toFixed(2)).join(' ')
  }
}

// The example programs, started as their npm scripts start them (after the build), with the
// lines they log kept for the tests.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { resolve } from 'node:path'
import { createInterface } from 'node:readline'
import type { Test } from 'tap'
import { within } from './signals'

const examples = resolve(__dirname, '..', 'examples')

/** A program started with node, as its npm script does after the build. */
export interface Program {
  /** Resolves with the first logged `NAME: URL` (a ws:// URL unless `http` is given) whose NAME matches. */
  url (name: string | RegExp, http?: boolean): Promise<string>
  /** Every log line's message so far, but the request logs of handshakes. */
  messages: string[]
  /** Sends the signal (SIGTERM by default), and resolves once the program has exited. */
  stop (signal?: NodeJS.Signals): Promise<{ exit: unknown[] }>
}

// Not `npm run`: running the build here would rewrite dist/ while other test files load it.
export function program (t: Test, name: string, env: Record<string, string>): Program {
  const child = spawn(process.execPath, [resolve(examples, name, 'server.mjs')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const exited = once(child, 'exit')
  const lines = createInterface({ input: child.stdout })
  const outputEnded = once(lines, 'close')
  const messages: string[] = []
  const waiters: Array<(message: string) => void> = []
  lines.on('line', (line) => {
    const { msg, reqId } = JSON.parse(line) as { msg: string, reqId?: string }
    if (reqId !== undefined) return // the request logs of the handshake
    messages.push(msg)
    for (const waiter of waiters) waiter(msg)
  })
  return {
    messages,
    url (label, http = false) {
      const pattern = new RegExp(`^(?:${typeof label === 'string' ? label : label.source}): (${http ? 'http' : 'ws'}://127\\.0\\.0\\.1:\\d+/\\S*)$`)
      const logged = new Promise<string>((resolve, reject) => {
        const check = (message: string): void => {
          const found = pattern.exec(message)
          if (found !== null) resolve(found[1]!)
        }
        messages.forEach(check)
        waiters.push(check)
        outputEnded.then(() => reject(new Error(`examples/${name} exited before it logged a URL matching ${pattern}`)), reject)
      })
      return within(logged, () => `examples/${name} to log a URL matching ${pattern} (logged: ${JSON.stringify(messages).slice(0, 300)})`)
    },
    async stop (signal = 'SIGTERM') {
      child.kill(signal)
      await within(outputEnded, `examples/${name} to exit on ${signal}`)
      return { exit: await exited }
    }
  }
}

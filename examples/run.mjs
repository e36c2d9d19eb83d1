// How every example starts when it is run as a program (`npm run example:NAME`): it listens
// on PORT (default 3000) and HOST (default 127.0.0.1), logs the URLs to try, and on SIGINT or
// SIGTERM closes every session with 1001, or 1012 where resume is on (app.close() runs each
// onDisconnected/onClose), and lets the process exit by itself. Imported as a module (by the
// tests), an example only exports its build() function and starts nothing.
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** True when the module at `url` (its import.meta.url) is the program node was started with. */
export function isMain (url) {
  return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(url)
}

/**
 * Builds the app with a logger, listens, and logs one line `NAME: URL` for each URL that
 * `urls(base)` returns (base is `http://HOST:PORT`).
 */
export async function run (name, build, urls) {
  const app = await build({ logger: true })
  const base = await app.listen({
    port: Number(process.env.PORT ?? 3000),
    host: process.env.HOST ?? '127.0.0.1'
  })
  for (const url of urls(base)) app.log.info(`${name}: ${url}`)

  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      app.log.info(`${signal} received, closing`)
      app.close().then(
        () => app.log.info('closed'),
        (error) => {
          app.log.error(error)
          process.exitCode = 1
        })
    })
  }
  return app
}

/** `http://host:port` as `ws://host:port` (`https` as `wss`). */
export function ws (base) {
  return base.replace(/^http/, 'ws')
}

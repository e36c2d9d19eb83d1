// A runnable chat server: `npm start`, then connect to ws://127.0.0.1:3000/ws/chat?user=alice
// (add &room=NAME for another room). PORT and HOST change where it listens.
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'

export async function build (options = {}) {
  const app = Fastify(options)
  await app.register(websocketRooms)
  app.registerWebsocket('/ws/chat', {
    ...await import('./chat.mjs'),
    // Checked before the upgrade: a handshake without ?user= is refused with a 400.
    schema: {
      querystring: Type.Object({
        user: Type.String({ minLength: 1 }),
        room: Type.Optional(Type.String({ minLength: 1 }))
      })
    }
  })
  return app
}

function isMain () {
  return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)
}

if (isMain()) {
  const app = await build({ logger: true })
  const address = await app.listen({
    port: Number(process.env.PORT ?? 3000),
    host: process.env.HOST ?? '127.0.0.1'
  })
  app.log.info(`chat: ${address.replace(/^http/, 'ws')}/ws/chat?user=NAME&room=NAME`)

  // app.close() closes every session with 1001 and runs its onClose before the process exits.
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
}

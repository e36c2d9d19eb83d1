// Echo: onConnected, handleText, writeText() and close(). `npm run example:echo`, then
// connect to ws://127.0.0.1:3000/echo or ws://127.0.0.1:3000/bye.
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'
import { isMain, run, ws } from '../run.mjs'

export async function build (options = {}) {
  const app = Fastify(options)
  await app.register(websocketRooms)

  // writeText(): a welcome, then every message echoed back.
  app.registerWebsocket('/echo', {
    onConnected: (session) => { session.writeText('Welcome to the chat room!') },
    handleText: (session, text) => {
      session.log.info({ text }, 'client says')
      session.writeText('You said: ' + text)
    }
  })

  // close(): say goodbye, then close the connection (code 1000).
  app.registerWebsocket('/bye', {
    handleText: (session, text) => {
      if (text === 'bye') {
        session.writeText('Goodbye!')
        session.close()
      }
    }
  })
  return app
}

if (isMain(import.meta.url)) {
  await run('echo', build, (base) => [`${ws(base)}/echo`, `${ws(base)}/bye`])
}

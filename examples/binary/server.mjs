// Binary messages: writeData() and handleBinary. `npm run example:binary`,
// then connect to ws://127.0.0.1:3000/binary: a binary hello, then every binary message
// comes back as it was sent.
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'
import { isMain, run, ws } from '../run.mjs'

export async function build (options = {}) {
  const app = Fastify(options)
  await app.register(websocketRooms)

  app.registerWebsocket('/binary', {
    // Binary data is a Buffer (a Uint8Array or an ArrayBuffer works too).
    onConnected: (session) => { session.writeData(Buffer.from('Binary hello', 'utf-8')) },
    // data is a Buffer. This route has no text handler: a text message closes the session
    // with 1003 (unsupported data).
    handleBinary: (session, data) => {
      session.log.info({ bytes: data.length }, 'received binary data')
      session.writeData(data)
    }
  })
  return app
}

if (isMain(import.meta.url)) {
  await run('binary', build, (base) => [`${ws(base)}/binary`])
}

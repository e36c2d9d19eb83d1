// Broadcasting to every client. `npm run example:broadcast`,
// then connect several clients to ws://127.0.0.1:3000/broadcast or ws://127.0.0.1:3000/chat.
// No array of sessions to keep and splice in onDisconnected: a room holds them, and a
// session leaves its rooms by itself once it has disconnected.
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'
import { isMain, run, ws } from '../run.mjs'

export async function build (options = {}) {
  const app = Fastify(options)
  await app.register(websocketRooms)

  // Every text message goes to every client, the sender included.
  app.registerWebsocket('/broadcast', {
    onConnected: (session) => {
      session.room('everyone').join()
      session.writeText('Connection established!')
    },
    handleText: (session, text) => { session.room('everyone').broadcast('Broadcast: ' + text) },
    handleBinary: (session, data) => { session.log.info({ bytes: data.length }, 'received binary data') },
    onDisconnected: (session) => { session.log.info('client disconnected') }
  })

  // A simple real-time chat: who is online, and every message to everyone.
  app.registerWebsocket('/chat', {
    onConnected: (session) => {
      const room = session.room('chat').join()
      session.writeText('Welcome! There are ' + room.members() + ' users online.')
    },
    handleText: (session, text) => { session.room('chat').broadcast(text) }
  })
  return app
}

if (isMain(import.meta.url)) {
  await run('broadcast', build, (base) => [`${ws(base)}/broadcast`, `${ws(base)}/chat`])
}

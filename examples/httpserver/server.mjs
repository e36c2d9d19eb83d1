// The examples of seed 000 (HttpServer.registerWebsocket and WebSocketSession) in Fastify
// form, each on its own path. Run it with `node examples/httpserver/server.mjs` (after
// `npm run build`); PORT and HOST change where it listens.
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import websocketRooms from 'fastify-websocket-rooms'

/** The endpoints, as a Fastify plugin to register after fastify-websocket-rooms. */
export default async function httpServerExamples (app) {
  // writeText(): a welcome, then every message echoed back.
  app.registerWebsocket('/echo', {
    onConnected (session) {
      session.writeText('Welcome to the chat room!')
    },
    handleText (session, text) {
      session.log.info({ text }, 'client says')
      session.writeText('You said: ' + text)
    }
  })

  // writeData(): a binary frame (the seed's Data.fromRawString is a Buffer here).
  app.registerWebsocket('/binary', {
    onConnected (session) {
      session.writeData(Buffer.from('Binary hello', 'utf-8'))
    }
  })

  // close(): say goodbye, then close the connection (code 1000).
  app.registerWebsocket('/bye', {
    handleText (session, text) {
      if (text === 'bye') {
        session.writeText('Goodbye!')
        session.close()
      }
    }
  })

  // Broadcast to every client: a room replaces the array of sessions, and a session leaves
  // its rooms by itself once it has disconnected.
  app.registerWebsocket('/broadcast', {
    onConnected (session) {
      session.room('everyone').join()
      session.writeText('Connection established!')
    },
    handleText (session, text) {
      session.room('everyone').broadcast('Broadcast: ' + text)
    },
    handleBinary (session, data) {
      session.log.info({ bytes: data.length }, 'received binary data')
    },
    onDisconnected (session) {
      session.log.info('client disconnected')
    }
  })

  // The simple real-time chat: who is online, and every message to everyone.
  app.registerWebsocket('/chat', {
    onConnected (session) {
      const room = session.room('chat').join()
      session.writeText('Welcome! There are ' + room.members() + ' users online.')
    },
    handleText (session, text) {
      session.room('chat').broadcast(text)
    }
  })
}

if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const app = Fastify({ logger: true })
  await app.register(websocketRooms)
  await app.register(httpServerExamples)
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => { app.close() })
}

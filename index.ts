// fastify-websocket-rooms: WebSocket sessions and rooms for Fastify.
// Reads top to bottom: check the options, make sure @fastify/websocket is there, decorate
// the instance, add endpoints through registerWebsocket, and close everything on app.close().
import { setMaxListeners } from 'node:events'
import type { FastifyInstance, FastifyRequest, FastifyTypeProviderDefault } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import type { ServerRoom, WebsocketHandlers, WebsocketRoomsOptions } from './types/index'
import { callHook } from './lib/call-hook'
import { closeCodes } from './lib/close-codes'
import { InvalidArgumentError, describe } from './lib/errors'
import { originGuard, sessionCapGuard } from './lib/session/guards'
import { readHandlers } from './lib/session/handlers'
import { MessageCodec } from './lib/session/message-codec'
import { EventCatalog, MessageRouter, noEvents, plainRouteRecord } from './lib/session/message-routes'
import { Heartbeat } from './lib/session/heartbeat'
import { resolveOptions, resolveRouteLimits } from './lib/options'
import { localAdapter } from './lib/cluster/local-link'
import { redisAdapter } from './lib/cluster/redis-adapter'
import { ServerRooms, SessionsView, kRouteDefinitions } from './lib/decorators'
import { RoomIndex } from './lib/rooms/room-index'
import { SessionRegistry } from './lib/session/registry'
import { Session, isSessionSocket, kRoutePath, kStart } from './lib/session/session'
import { assertShutdownFits, closeAllSessions } from './lib/session/shutdown'
import { releaseUpgrade, untrack } from './lib/transport/upgrade'
import { serverSharesDeflate } from './lib/transport/deflate'
import { checkHandshake, logRefusedHandshakes, normaliseWebsocketRoutes } from './lib/transport/handshake'
import { refuseLaterWebsocket } from './lib/transport/websocket-registration'
import { Resumer } from './lib/resume/resumer'
import { resumeStoreFor } from './lib/resume/store'
import { takeResumeToken, tokenOf } from './lib/resume/handshake'
import { startObservers } from './lib/observability/index'
import { buildAsyncApi, serveAsyncApi } from './lib/asyncapi/route'

async function websocketRoomsPlugin (fastify: FastifyInstance, options: WebsocketRoomsOptions): Promise<void> {
  const resolved = resolveOptions(options)
  const { maxPayload, closeTimeout, heartbeatInterval, maxSessions, websocketOptions, adapter, compression, presenceInterval, onPresence, onRoomOccupied, onRoomVacated, resume } = resolved
  assertShutdownFits(fastify.initialConfig.pluginTimeout ?? 0, closeTimeout, adapter?.connectTimeout ?? null)
  const sessions = new SessionRegistry<Session>()
  /** An application callback about a room, handed the room's handle; what it throws is logged. */
  const roomCallback = <A extends unknown[]>(callback: ((room: ServerRoom, ...args: A) => unknown) | null, name: string): ((room: string, ...args: A) => void) | null =>
    callback === null
      ? null
      : (room: string, ...args: A) => callHook(callback, [serverRooms.room(room), ...args], (error) => { fastify.log.error({ err: error }, `fastify-websocket-rooms: ${name} failed`) })
  /** Aborted when app.close() starts. */
  const closing = new AbortController()
  // Every origin check still running listens for it: as many as upgrades wait, no leak.
  setMaxListeners(0, closing.signal)

  // @fastify/websocket may be registered by the app already (registering it twice fails).
  // When this plugin registers it, the errorHandler is onSocketError below, which for a
  // session only logs: sessions then drop @fastify/websocket's listener and log themselves.
  const ownsWebsocket = !fastify.hasDecorator('websocketServer')
  if (!ownsWebsocket) {
    if (options.maxPayload !== undefined || options.websocketOptions !== undefined) {
      fastify.log.warn('fastify-websocket-rooms: @fastify/websocket was registered before this plugin, so its options apply and this plugin\'s maxPayload/websocketOptions are ignored: pass them to that registration instead (app.register(fastifyWebsocket, { options: { maxPayload, ...websocketOptions } })), or remove it and let this plugin register @fastify/websocket')
    }
    if (compression === 'shared' && !serverSharesDeflate(fastify.websocketServer)) {
      fastify.log.warn('fastify-websocket-rooms: compression: \'shared\' needs perMessageDeflate: { serverNoContextTakeover: true } in the options of the @fastify/websocket registered before this plugin; without it ws compresses each broadcast once per session')
    }
  } else {
    await fastify.register(fastifyWebsocket, { options: { ...websocketOptions, maxPayload }, errorHandler: onSocketError })
    refuseLaterWebsocket(fastify, fastify.log)
  }
  fastify.addHook('onRoute', normaliseWebsocketRoutes)

  // With an adapter, this instance joins the cluster before it serves: a Redis that cannot be
  // reached fails app.register() with FST_WS_ROOMS_REDIS_UNAVAILABLE. Without one, its rooms
  // are this process's alone, by the same code path.
  // Set once the rooms are up; until then no session can be kept (a command for one finds none).
  let resumer: Resumer<Session> | null = null
  const rooms = await RoomIndex.start<Session>(fastify.log, resolved, {
    presenceInterval,
    onPresence: roomCallback(onPresence, 'onPresence'),
    onRoomOccupied: roomCallback(onRoomOccupied, 'onRoomOccupied'),
    onRoomVacated: roomCallback(onRoomVacated, 'onRoomVacated')
  }, resolved.history, (id) => sessions.get(id) ?? resumer?.keptSession(id), adapter ?? localAdapter)
  // Server-side emits belong to no route: they find each event type among every route's.
  const events = new EventCatalog()
  // The AsyncAPI document of the routes registered so far (serverRooms[kRouteDefinitions]).
  const asyncApiDocument = (): Record<string, unknown> => buildAsyncApi(serverRooms[kRouteDefinitions], resolved.asyncapi.info)
  if (resolved.asyncapi.path !== null) serveAsyncApi(fastify, resolved.asyncapi.path, asyncApiDocument)
  const serverRooms = new ServerRooms(rooms, sessions, events, asyncApiDocument)
  // A handshake that ws refuses says why in the log; one from injectWS is not refused for
  // its Sec-WebSocket-Version, the number 13 (lib/transport/handshake.ts).
  logRefusedHandshakes(fastify.websocketServer, fastify.log, rooms.nodeId)
  // diagnostics_channel's subscribers, and the metrics and tracing options (docs/observability.md).
  const observers = startObservers(resolved, rooms, { sessionRoutes: function * () { for (const session of sessions.values()) yield session[kRoutePath] }, stats: () => serverRooms.stats() })
  resumer = resume === null ? null : new Resumer<Session>(resume, resumeStoreFor<Session>(rooms.link, resume.window), rooms)

  fastify.decorate('websocketRooms', serverRooms)
  fastify.decorate('websocketSessions', new SessionsView(sessions))
  fastify.decorate('registerWebsocket', function registerWebsocket (this: FastifyInstance, path: string, source: WebsocketHandlers<unknown, unknown, unknown, unknown, unknown, FastifyTypeProviderDefault, unknown, unknown, unknown>) {
    if (typeof path !== 'string') throw new InvalidArgumentError('path', 'a string', describe(path))
    const { handlers, handlerNames, routeOptions, limits: ownLimits, messageSchema, outboundSchema, handshakeSchema, routing, resumes } = readHandlers(path, source)
    const limits = resolveRouteLimits(ownLimits, resolved, path)
    const codec = new MessageCodec(path, messageSchema, outboundSchema, fastify.initialConfig)
    const url = this.prefix + path
    const router = routing === null ? null : new MessageRouter(url, routing, fastify.initialConfig)
    if (router !== null) {
      events.add(router, routing!.events)
      if (router.routesMessages) handlers.text = router.dispatch
    }
    const routeResumer = resumes ? resumer : null
    const route = { handlers, handlerNames, limits, codec, router, events: router ?? noEvents, closeTimeout, logsSocketErrors: ownsWebsocket, heartbeat: heartbeatInterval > 0, sharedCompression: compression === 'shared', sessions, rooms, path: url, sent: observers.route(url), handlerRuns: observers.handlerRuns, resume: routeResumer, resumeKey: url }
    const checkOrigin = originGuard(sessions.stats, limits, closing.signal)
    const takeToken = routeResumer === null ? [] : [takeResumeToken(routeResumer.param)]
    routeOptions.onRequest = [checkHandshake, ...takeToken, ...(checkOrigin !== null ? [checkOrigin] : []), ...[routeOptions.onRequest ?? []].flat()]
    const preHandler = [routeOptions.preHandler ?? []].flat()
    if (messageSchema !== undefined || outboundSchema !== undefined) {
      codec.compileAtReady(this, url, (routeOptions.schema ??= {}) as Record<string, unknown>, routeOptions)
      preHandler.push(codec.compileHook)
    }
    if (router !== null) {
      router.compileAtReady(this, url, (routeOptions.schema ??= {}) as Record<string, unknown>, routeOptions)
      preHandler.push(router.compileHook)
    }
    const checkSessionCap = sessionCapGuard(sessions, maxSessions)
    if (checkSessionCap !== null) preHandler.push(checkSessionCap)
    if (preHandler.length > 0) routeOptions.preHandler = preHandler

    // `this` is the caller's encapsulated instance: the route gets its prefix and hooks.
    this.get(path, { ...routeOptions, websocket: true }, function onUpgraded (socket: WebSocket, request: FastifyRequest) {
      // Fastify and ws refuse upgrades once closing; this catches an app whose own
      // @fastify/websocket shutdown leaves its ws server open.
      if (closing.signal.aborted) {
        socket.close(closeCodes.GOING_AWAY, 'server shutting down')
        return
      }
      releaseUpgrade(socket, request, ownsWebsocket)
      // @fastify/websocket's shutdown closes the sockets of ws's `clients` with no close code
      // and does not wait for them: sessions are closed by the preClose hook below instead.
      untrack(fastify.websocketServer, socket, request.log)
      const token = routeResumer === null ? undefined : tokenOf(request)
      if (token === undefined) {
        new Session(socket, request, route)[kStart]()
        return
      }
      // The socket is not read until the token's session is known: its messages are that session's.
      socket.pause()
      routeResumer!.claim(token, route.resumeKey, closeTimeout).then((claimed) => {
        if (socket.readyState !== socket.OPEN || closing.signal.aborted) {
          routeResumer!.giveBack(claimed)
          socket.terminate()
          return
        }
        socket.resume()
        new Session(socket, request, route, routeResumer!.identityOf(claimed))[kStart](claimed)
      }).catch((error: unknown) => {
        request.log.error({ err: error }, 'fastify-websocket-rooms: resume failed')
        socket.close(closeCodes.INTERNAL_ERROR, 'internal error')
      })
    })
    const record = router === null
      ? plainRouteRecord(url, handshakeSchema, messageSchema, outboundSchema)
      : router.record(url, handshakeSchema, messageSchema, outboundSchema)
    // The schemas added with this scope's addSchema(), which the route's may refer to by $id.
    record.sharedSchemas = () => this.getSchemas()
    serverRooms[kRouteDefinitions].push(record)
    return this
  })

  const heartbeat = heartbeatInterval > 0 ? new Heartbeat(sessions, heartbeatInterval) : null

  // Protocol errors (oversized, invalid UTF-8, garbage) are the client's fault: ws has
  // already sent the close frame (1009, 1007, 1002), and the session ends through 'close'.
  // A session logs them itself (Session.onError), also when lib/transport/upgrade.ts left
  // @fastify/websocket's listener in place, which is how this can still be reached.
  function onSocketError (error: Error, socket: WebSocket, request: FastifyRequest): void {
    if (isSessionSocket(socket)) return
    request.log.error(error)
    socket.terminate()
  }

  fastify.addHook('preClose', async function () {
    closing.abort()
    heartbeat?.stop()
    resumer?.close()
    await closeAllSessions(sessions, closeTimeout)
    // Across servers, the sessions kept for a resume move to Redis for the rest of their window.
    await resumer?.park()
    // The sessions' last leaves, told before the node leaves the cluster.
    rooms.flushPresence()
  })

  fastify.addHook('onClose', async function () {
    observers.close()
    await rooms.close()
    resumer?.clear()
    sessions.clear()
  })
}

const websocketRooms = fp(websocketRoomsPlugin, {
  fastify: '5.x',
  name: 'fastify-websocket-rooms'
})

export default websocketRooms
export { websocketRooms as fastifyWebsocketRooms, closeCodes, redisAdapter }

// require('fastify-websocket-rooms') returns the plugin itself, as with fastify and every
// @fastify plugin; its named exports ride along as properties.
module.exports = Object.assign(websocketRooms, module.exports)

// Type tests (tstyche) of resume: the plugin option, a route's opt-out, and what a session says of its resume.
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import websocketRooms, { type ResumeFailure, type ResumeOptions, type WebsocketRoomsOptions } from 'fastify-websocket-rooms'

const app = Fastify()

test('the resume option: a window in ms and an optional parameter name, or off', () => {
  expect({ window: 120_000 }).type.toBeAssignableTo<ResumeOptions>()
  expect({ window: 120_000, param: 'r' }).type.toBeAssignableTo<ResumeOptions>()
  expect({ param: 'r' }).type.not.toBeAssignableTo<ResumeOptions>()
  expect(false as const).type.toBeAssignableTo<WebsocketRoomsOptions['resume']>()
  expect(true as const).type.not.toBeAssignableTo<WebsocketRoomsOptions['resume']>()
  app.register(websocketRooms, { history: { size: 1000, ttl: 120_000 }, resume: { window: 120_000 } })
})

test('a session says whether it resumed, its token and why a resume was refused', () => {
  app.registerWebsocket('/ws', {
    onOpen (session) {
      expect(session.resumed).type.toBe<boolean>()
      expect(session.resumeToken).type.toBe<string | null>()
      expect(session.resumeFailure).type.toBe<ResumeFailure | null>()
      expect<ResumeFailure>().type.toBe<'expired' | 'unknown' | 'overflow' | 'history' | 'lost'>()
      // @ts-expect-error: Cannot assign to 'resumed' because it is a read-only property
      session.resumed = true
    }
  })
})

test('a route opts out with resume: false, and only false', () => {
  app.registerWebsocket('/plain', { resume: false, onOpen () {} })
  // @ts-expect-error: Type 'true' is not assignable to type 'false'
  app.registerWebsocket('/on', { resume: true, onOpen () {} })
})

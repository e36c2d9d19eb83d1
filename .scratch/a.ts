import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import websocketRooms from '../index'

async function main () {
  // misspelt only handler
  const app = Fastify()
  await app.register(websocketRooms)
  for (const h of [{ onMesage () {} }, { onConnected () {}, onMesage () {} }, { onConnected () {}, onmessage () {} }, { onConnected: 'x' }, { onOpen: 1 }, {}, { onError () {} }]) {
    try { app.registerWebsocket('/x' + Math.random(), h as any); console.log('accepted', Object.keys(h)) } catch (e: any) { console.log(e.code, e.message, e instanceof TypeError) }
  }
  try { app.registerWebsocket(1 as any, { onOpen () {} }) } catch (e: any) { console.log(e.code, e.message, e instanceof TypeError) }
  // deep frozen schema
  const schema = Object.freeze({ querystring: Type.Object({ n: Type.Integer() }) })
  try { app.registerWebsocket('/frozen', Object.freeze({ schema, onOpen () {} })) ; console.log('frozen schema ok') } catch (e: any) { console.log('frozen schema', e.message) }
  const schema2 = { querystring: Type.Object({ n: Type.Integer() }) }
  app.registerWebsocket('/s2', Object.freeze({ schema: schema2, onOpen (s: any) { s.send(JSON.stringify(s.query)) } }))
  console.log('schema2 keys after', Object.keys(schema2))
  app.registerWebsocket('/s3', { onOpen (s: any) { s.send(JSON.stringify(s.query)) }, preValidation: async (req: any, reply: any) => { } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  await new Promise<void>((resolve) => {
    const req = http.request({ port, host: '127.0.0.1', path: '/s2?n=abc', headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } })
    req.on('response', (res) => { let b = ''; res.on('data', (c) => { b += c }); res.on('end', () => { console.log('response', res.statusCode, res.headers, b); resolve() }) })
    req.on('upgrade', (res) => { console.log('upgrade', res.statusCode); resolve() })
    req.on('error', (e) => { console.log('err', e); resolve() })
    req.end()
  })
  console.log('schema2 keys after', Object.keys(schema2), app.websocketSessions.size)
  await app.close()
}
main()

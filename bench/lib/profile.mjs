// Summarizes a .cpuprofile (node --cpu-prof, or the inspector's Profiler.stop): self time by
// function and by where the code lives. Also a CLI: node bench/lib/profile.mjs FILE [TOP].
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

function where (url) {
  if (url === '') return 'native / V8'
  if (url.startsWith('node:')) return 'node core'
  if (url.includes('/node_modules/ws/')) return 'ws'
  if (url.includes('/node_modules/@fastify/websocket/')) return '@fastify/websocket'
  if (url.includes('/node_modules/fastify/') || url.includes('/node_modules/@fastify/') || url.includes('/node_modules/find-my-way/') || url.includes('/node_modules/avvio/')) return 'fastify'
  if (url.includes('/node_modules/socket.io') || url.includes('/node_modules/engine.io')) return 'socket.io'
  if (url.includes('/node_modules/')) return 'other node_modules'
  if (url.includes('/dist/')) return 'this plugin (dist/)'
  if (url.includes('/bench/')) return 'bench server'
  return url
}

function shortUrl (url) {
  const at = url.lastIndexOf('/node_modules/')
  if (at !== -1) return url.slice(at + '/node_modules/'.length)
  const dist = url.indexOf('/dist/')
  if (dist !== -1) return url.slice(dist + 1)
  return url.replace(/^file:\/\/.*\/bench\//, 'bench/')
}

export function summarize (file, top = 20) {
  const profile = JSON.parse(readFileSync(file, 'utf8'))
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map()
  const { samples, timeDeltas } = profile
  for (let i = 0; i < samples.length; i++) {
    const duration = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0
    self.set(samples[i], (self.get(samples[i]) ?? 0) + duration)
  }
  const functions = new Map()
  const places = new Map()
  let total = 0
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame
    if (functionName === '(idle)') continue
    total += us
    const name = functionName === '' ? '(anonymous)' : functionName
    const key = url === '' ? name : `${name} ${shortUrl(url)}:${lineNumber + 1}`
    functions.set(key, (functions.get(key) ?? 0) + us)
    const place = functionName.startsWith('(') ? functionName : where(url)
    places.set(place, (places.get(place) ?? 0) + us)
  }
  const sorted = (map) => [...map].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({ name, ms: us / 1000, pct: 100 * us / total }))
  return { totalMs: total / 1000, functions: sorted(functions).slice(0, top), places: sorted(places) }
}

export function toMarkdown (summary) {
  const lines = [`Busy (non-idle) time: ${summary.totalMs.toFixed(0)} ms`, '', '| where | self % |', '| --- | ---: |']
  for (const place of summary.places) lines.push(`| ${place.name} | ${place.pct.toFixed(1)} |`)
  lines.push('', '| function | self % |', '| --- | ---: |')
  for (const fn of summary.functions) lines.push(`| \`${fn.name}\` | ${fn.pct.toFixed(1)} |`)
  return lines.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(toMarkdown(summarize(process.argv[2], Number(process.argv[3] ?? 25))))
}

// The load test (not part of npm test; a minute by default):
//   node bench/load.mjs            LOAD_SECONDS=60 LOAD_CONNECTIONS=100 by default
// The Express example, with routes for the store added behind its auth middleware, under
// autocannon over 127.0.0.1: a mix of token issues (10%), verifications (40%), saves (25%) and
// reads (25%) across 1,000 users, while 3 other processes write the same database. It passes when
// there is no 5xx and no error, and every acknowledged save (from HTTP and from the writers) reads
// back; it reports the server's RSS by quarter of the run. Prints a JSON report.
import { fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import autocannon from 'autocannon'

import hoot from '../lib/index.js'
import { median, tempDir } from './lib.mjs'

const SECONDS = Number(process.env.LOAD_SECONDS || 60)
const CONNECTIONS = Number(process.env.LOAD_CONNECTIONS || 100)
const USERS = 1000
const WRITERS = 3
const here = (file) => fileURLToPath(new URL(file, import.meta.url))

const dir = tempDir('load')
const env = {
  ...process.env,
  HOME: dir,
  HOOT_DB_PATH: join(dir, 'hoot-mcp.db'),
  JWT_PRIVATE_KEY_PATH: join(dir, 'keys', 'private-key.json'),
  JWT_JWKS_PATH: join(dir, 'keys', 'jwks.json'),
}
Object.assign(process.env, env)
hoot.generateKeys(join(dir, 'keys'))
hoot.loadKeys()

const server = fork(here('./load-server.mjs'), [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
const { port } = await new Promise((resolve) => server.once('message', resolve))
const rss = () =>
  new Promise((resolve) => {
    server.once('message', (m) => resolve(m.rss))
    server.send('rss')
  })
const writers = Array.from({ length: WRITERS }, (_, i) =>
  fork(here('./load-writer.mjs'), [String(i + 1), '50'], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
)

const users = Array.from({ length: USERS }, () => randomUUID())
const tokens = users.map((u) => hoot.issueToken(u))
const acknowledged = [] // [userId, serverId, access_token] of every save answered 200
const savedBy = users.map(() => []) // each user's acknowledged server ids, for the reads
let seq = 0
let next = 0

const samples = []
const sampler = setInterval(async () => samples.push({ at: Date.now(), rss: await rss() }), 2000)
const started = Date.now()
const result = await autocannon({
  url: `http://127.0.0.1:${port}`,
  connections: CONNECTIONS,
  duration: SECONDS,
  requests: [
    {
      setupRequest(req, context) {
        const u = (next = (next * 1103515245 + 12345) % 2147483648) % USERS
        const roll = next % 20
        const headers = { 'x-hoot-token': tokens[u], 'content-type': 'application/json' }
        if (roll < 2) {
          context.op = null
          return {
            ...req,
            method: 'POST',
            path: '/auth/token',
            headers: { 'content-type': 'application/json', origin: 'http://localhost:8009' },
            body: JSON.stringify({ userId: users[u] }),
          }
        }
        if (roll < 10) {
          context.op = null
          return { ...req, method: 'GET', path: '/load/whoami', headers, body: undefined }
        }
        if (roll < 15) {
          const serverId = `http-${seq++}`
          context.op = [users[u], serverId, `t-${serverId}`, u]
          return {
            ...req,
            method: 'PUT',
            path: `/load/tokens/${serverId}`,
            headers,
            body: JSON.stringify({ access_token: `t-${serverId}`, refresh_token: 'r'.repeat(64) }),
          }
        }
        context.op = null
        const saved = savedBy[u]
        if (!saved.length) return { ...req, method: 'GET', path: '/load/whoami', headers, body: undefined }
        return { ...req, method: 'GET', path: `/load/tokens/${saved[next % saved.length]}`, headers, body: undefined }
      },
      onResponse(status, body, context) {
        if (status !== 200 || !context.op) return
        const [userId, serverId, accessToken, u] = context.op
        acknowledged.push([userId, serverId, accessToken])
        savedBy[u].push(serverId)
      },
    },
  ],
})
clearInterval(sampler)
const seconds = (Date.now() - started) / 1000

const fromWriters = await Promise.all(
  writers.map(
    (w) =>
      new Promise((resolve) => {
        w.once('message', resolve)
        w.send('stop')
      }),
  ),
)
server.disconnect()

// Every acknowledged save, read back through hoot-core in this process.
const all = [...acknowledged, ...fromWriters.flatMap((w) => w.acknowledged)]
let lost = 0
for (const [userId, serverId, accessToken] of all) {
  if (new hoot.OAuthStore(userId).tokens(serverId)?.access_token !== accessToken) lost++
}
// RSS every 2 s: the median of the second quarter (warm) against the median of the last quarter.
const quarter = (q) =>
  median(
    samples.slice(Math.floor((samples.length * q) / 4), Math.floor((samples.length * (q + 1)) / 4)).map((s) => s.rss),
  )
const report = {
  seconds: Math.round(seconds),
  connections: CONNECTIONS,
  requests: result.requests.total,
  'requests/s': Math.round(result.requests.average),
  'p99 ms': result.latency.p99,
  '2xx': result['2xx'],
  non2xx: result.non2xx,
  '5xx': result['5xx'],
  errors: result.errors,
  timeouts: result.timeouts,
  'saves acknowledged over HTTP': acknowledged.length,
  'saves acknowledged by the 3 writers': fromWriters.reduce((a, w) => a + w.acknowledged.length, 0),
  'writer errors': fromWriters.reduce((a, w) => a + w.errors, 0),
  'saves lost': lost,
  'server RSS MB: first sample, median of each quarter': [
    samples[0].rss,
    quarter(0),
    quarter(1),
    quarter(2),
    quarter(3),
  ].map((r) => Math.round(r / 1048576)),
  'server RSS growth, second quarter to last, MB': Math.round((quarter(3) - quarter(1)) / 1048576),
}
console.log(JSON.stringify(report, null, 2))
const passed = report['5xx'] === 0 && report.errors === 0 && lost === 0 && report['writer errors'] === 0
console.log(passed ? 'PASS' : 'FAIL')
process.exit(passed ? 0 : 1)

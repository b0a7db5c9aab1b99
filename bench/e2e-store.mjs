// End to end with a store read: autocannon against the servers of e2e-store-server.mjs over
// 127.0.0.1, `GET /e2e/tokens/srv` behind the auth middleware, each connection sending its own
// user's token and reading that user's row. The example server on hoot-core against the same
// request written with jose + better-sqlite3, on SQLite, and with jose + postgres.js, on
// PostgreSQL; all four take turns round by round, the order rotating.
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { fileURLToPath } from 'node:url'

import autocannon from 'autocannon'

import hoot from '../lib/index.js'
import { QUICK, TOKENS, startServer, tempDir } from './lib.mjs'
import { dropDatabases, freshDatabase } from './postgres.mjs'

const SERVER = fileURLToPath(new URL('./e2e-store-server.mjs', import.meta.url))
export const DURATION = QUICK ? 3 : 10
export const CONNECTIONS = 20
const ROUNDS = QUICK ? 2 : 5
// The server each request reads, beside two others every user also has, so the read picks one row
// of several for the user.
const SERVER_ID = 'srv'
const OTHER_SERVERS = ['other-1', 'other-2']
/** Contender keys: the backend, then hoot-core or its peer. */
export const LABELS = {
  sqlite: { backend: 'SQLite', 'hoot-core': 'hoot-core, SQLite', peer: 'jose + better-sqlite3' },
  postgres: { backend: 'PostgreSQL', 'hoot-core': 'hoot-core, PostgreSQL', peer: 'jose + postgres.js' },
}

function start(kind, location, keys) {
  return startServer(SERVER, [kind, location, keys.privateKeyPath, keys.jwksPath], `${kind} server on ${location}`)
}

/**
 * A database with hoot-core's schema, made by openDatabase, each user's rows saved through its
 * store: every contender reads rows hoot-core wrote, identical in each database.
 */
async function fill(location, users) {
  const db = hoot.openDatabase(location)
  try {
    await db.ready()
    for (const user of users) {
      const store = db.store(user)
      for (const serverId of [SERVER_ID, ...OTHER_SERVERS]) await store.saveTokens(serverId, TOKENS)
    }
  } finally {
    await db.close()
  }
  return location
}

function load(port, tokens, duration) {
  let next = 0
  return autocannon({
    url: `http://127.0.0.1:${port}/e2e/tokens/${SERVER_ID}`,
    connections: CONNECTIONS,
    duration,
    setupClient: (client) => client.setHeaders({ 'x-hoot-token': tokens[next++ % tokens.length] }),
  })
}

/** Each server answers a user's token with that user's tokens, and refuses a forged one. */
async function check(name, port, token) {
  const url = `http://127.0.0.1:${port}/e2e/tokens/${SERVER_ID}`
  const good = await fetch(url, { headers: { 'x-hoot-token': token } })
  const body = await good.json()
  if (good.status !== 200 || !isDeepStrictEqual(body, TOKENS)) {
    throw new Error(`${name} answered ${good.status} ${JSON.stringify(body).slice(0, 200)}`)
  }
  const forged = await fetch(url, { headers: { 'x-hoot-token': token.slice(0, -4) + 'AAAA' } })
  await forged.arrayBuffer()
  if (forged.status !== 401) throw new Error(`${name} answered a forged token with ${forged.status}`)
}

/**
 * `keys` are the key files hoot-core has loaded in this process; `postgres` says whether the
 * PostgreSQL server of postgres.mjs is reachable (without it, SQLite alone runs).
 */
export async function run(keys, { postgres }) {
  const users = Array.from({ length: CONNECTIONS }, () => randomUUID())
  const tokens = users.map((u) => hoot.issueToken(u))
  const backends = postgres ? ['sqlite', 'postgres'] : ['sqlite']
  const servers = {}
  try {
    // Each contender its own database, filled the same way: two SQLite libraries never share a
    // file, and neither server's writes (the example's activity touch) land in the other's.
    const dir = tempDir('e2estore')
    for (const backend of backends) {
      for (const side of ['hoot-core', 'peer']) {
        const location = await fill(
          backend === 'sqlite' ? join(dir, `${side}.db`) : await freshDatabase(`e2estore_${side.replace('-', '_')}`),
          users,
        )
        const name = LABELS[backend][side]
        servers[name] = await start(side === 'hoot-core' ? 'hoot-core' : 'jose', location, keys)
        await check(name, servers[name].port, tokens[0])
      }
    }
    for (const s of Object.values(servers)) await load(s.port, tokens, 2) // warm-up, not counted
    const names = Object.keys(servers)
    const runs = Object.fromEntries(names.map((k) => [k, []]))
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(r + k) % names.length]
        const result = await load(servers[name].port, tokens, DURATION)
        runs[name][r] = {
          rps: result.requests.average,
          p99: result.latency.p99,
          p50: result.latency.p50,
          non2xx: result.non2xx,
          errors: result.errors,
        }
      }
    }
    return { runs, rounds: ROUNDS, backends, rows: users.length * (1 + OTHER_SERVERS.length) }
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.stop()))
    if (postgres) await dropDatabases()
  }
}

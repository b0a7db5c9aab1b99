// The end-to-end example on PostgreSQL with one and with three replicas: autocannon against
// examples/express/server.mjs (each replica its own process, replica-server.mjs) posting
// /mcp/clear-oauth-tokens, each connection with its own user's token: per request a verify, the
// activity touch and invalidateCredentials('all') (one transaction of five deletes). On SQLite
// with one replica for reference, on PostgreSQL with one, and with three on one database, each
// taking a third of the connections; the three configurations take turns round by round.
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import autocannon from 'autocannon'

import { QUICK, startServer, tempDir } from './lib.mjs'
import { dropDatabases, freshDatabase } from './postgres.mjs'

const SERVER = fileURLToPath(new URL('./replica-server.mjs', import.meta.url))
export const DURATION = QUICK ? 3 : 8
export const CONNECTIONS = 24 // a multiple of three: each of three replicas takes a third
export const REPLICAS = 3
const ROUNDS = QUICK ? 2 : 3
const ORIGIN = 'http://localhost:8009'
const BODY = JSON.stringify({ serverId: 'srv' })
export const LABELS = {
  sqlite: 'SQLite, one replica',
  one: 'PostgreSQL, one replica',
  three: `PostgreSQL, ${REPLICAS} replicas`,
}

function start(location, keys) {
  return startServer(SERVER, [location, keys.privateKeyPath, keys.jwksPath], `replica server on ${location}`)
}

/** A token for a new user, from the replica at `port` (POST /auth/token, as the browser asks). */
async function token(port) {
  const res = await fetch(`http://127.0.0.1:${port}/auth/token`, {
    method: 'POST',
    headers: { origin: ORIGIN, 'content-type': 'application/json' },
    body: JSON.stringify({ userId: randomUUID() }),
  })
  if (res.status !== 200) throw new Error(`POST /auth/token answered ${res.status}`)
  return (await res.json()).token
}

async function clear(port, t) {
  const res = await fetch(`http://127.0.0.1:${port}/mcp/clear-oauth-tokens`, {
    method: 'POST',
    headers: { 'x-hoot-token': t, 'content-type': 'application/json' },
    body: BODY,
  })
  if (res.status !== 200) throw new Error(`POST /mcp/clear-oauth-tokens answered ${res.status}`)
}

function load(port, tokens, duration) {
  let next = 0
  return autocannon({
    url: `http://127.0.0.1:${port}/mcp/clear-oauth-tokens`,
    method: 'POST',
    body: BODY,
    connections: tokens.length,
    duration,
    setupClient: (client) =>
      client.setHeaders({ 'content-type': 'application/json', 'x-hoot-token': tokens[next++ % tokens.length] }),
  })
}

/** One run of a configuration: its replicas loaded at once, each with its share of the tokens. */
async function measure(servers, tokens, duration) {
  const share = tokens.length / servers.length
  const results = await Promise.all(
    servers.map((s, i) => load(s.port, tokens.slice(i * share, (i + 1) * share), duration)),
  )
  return {
    rps: results.reduce((a, r) => a + r.requests.average, 0),
    p99: Math.max(...results.map((r) => r.latency.p99)),
    non2xx: results.reduce((a, r) => a + r.non2xx, 0),
    errors: results.reduce((a, r) => a + r.errors, 0),
  }
}

/** `keys` are Hoot's key files (the SQLite replica's keys; PostgreSQL's are the database's). */
export async function run(keys) {
  const configs = {}
  try {
    configs.sqlite = [await start(join(tempDir('replicas'), 'hoot-mcp.db'), keys)]
    configs.one = [await start(await freshDatabase('replica'), keys)]
    // The first of the three makes the shared key set; the other two load it.
    const shared = await freshDatabase('replicas')
    configs.three = [await start(shared, keys)]
    configs.three.push(...(await Promise.all(Array.from({ length: REPLICAS - 1 }, () => start(shared, keys)))))

    // Each connection its own user; on three replicas, tokens from the first verify on all three.
    const tokens = {}
    for (const [name, servers] of Object.entries(configs)) {
      tokens[name] = []
      for (let i = 0; i < CONNECTIONS; i++) tokens[name].push(await token(servers[0].port))
      for (const s of servers) await clear(s.port, tokens[name][0])
      await measure(servers, tokens[name], 2) // warm-up, not counted
    }
    const names = Object.keys(configs)
    const runs = Object.fromEntries(names.map((k) => [k, []]))
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(r + k) % names.length]
        runs[name].push(await measure(configs[name], tokens[name], DURATION))
      }
    }
    return { runs, rounds: ROUNDS }
  } finally {
    await Promise.all(
      Object.values(configs)
        .flat()
        .map((s) => s.stop()),
    )
    await dropDatabases()
  }
}

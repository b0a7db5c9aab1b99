// End to end: autocannon against the Express server of e2e-server.mjs over 127.0.0.1, hoot-core's
// middleware and Hoot's alternating, each connection sending its own user's token.
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'

import autocannon from 'autocannon'

import hoot from '../lib/index.js'
import { QUICK, startServer } from './lib.mjs'

const SERVER = fileURLToPath(new URL('./e2e-server.mjs', import.meta.url))
export const DURATION = QUICK ? 3 : 10
export const CONNECTIONS = 20
const ROUNDS = QUICK ? 2 : 3

function start(kind, keys) {
  return startServer(SERVER, [kind, keys.privateKeyPath, keys.jwksPath], `${kind} server`)
}

function load(port, tokens, duration) {
  let next = 0
  return autocannon({
    url: `http://127.0.0.1:${port}/api/whoami`,
    connections: CONNECTIONS,
    duration,
    setupClient: (client) => client.setHeaders({ 'x-hoot-token': tokens[next++ % tokens.length] }),
  })
}

/** `keys` are the key files hoot-core has loaded in this process. */
export async function run(keys) {
  const tokens = Array.from({ length: CONNECTIONS }, () => hoot.issueToken(randomUUID()))
  const servers = { 'hoot-core': await start('hoot-core', keys), "Hoot's JS middleware": await start('hoot-js', keys) }
  try {
    for (const s of Object.values(servers)) {
      const check = await fetch(`http://127.0.0.1:${s.port}/api/whoami`, { headers: { 'x-hoot-token': tokens[0] } })
      if (check.status !== 200) throw new Error(`end-to-end server answered ${check.status}`)
      await load(s.port, tokens, 2) // warm-up, not counted
    }
    const runs = Object.fromEntries(Object.keys(servers).map((k) => [k, []]))
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 ? Object.keys(servers).reverse() : Object.keys(servers)
      for (const name of order) {
        const result = await load(servers[name].port, tokens, DURATION)
        runs[name].push({
          rps: result.requests.average,
          p99: result.latency.p99,
          p50: result.latency.p50,
          non2xx: result.non2xx,
          errors: result.errors,
        })
      }
    }
    return { runs, rounds: ROUNDS }
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.stop()))
  }
}

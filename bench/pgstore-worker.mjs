// One store contender on PostgreSQL in its own process, on its own database: `hoot-core` (the
// async store of openDatabase(url), pool of 10) or `pg` (node-postgres, a pg.Pool of max 10,
// running hoot-core's statements word for word as named prepared statements). Each answers
// { op, n, concurrency } with the ops/s of n calls, `concurrency` of them in flight at once.
import { createRequire } from 'node:module'

import { USER, serve } from './lib.mjs'

const require = createRequire(import.meta.url)
const [kind, url] = process.argv.slice(2)
const TOKENS = {
  access_token: 'eyJhbGciOiJSUzI1NiJ9.' + 'a'.repeat(600),
  refresh_token: 'r'.repeat(64),
  token_type: 'Bearer',
  expires_in: 3600,
  scope: 'read write',
}
const CLIENT = {
  client_id: 'c'.repeat(36),
  client_secret: 's'.repeat(43),
  redirect_uris: ['http://localhost:8009/oauth/callback'],
}
const VERIFIER = 'v'.repeat(43)
const VERIFIER_TTL = 600
const now = () => Math.floor(Date.now() / 1000)

// hoot-core's statements (src/pg/backend.rs), in the order invalidateCredentials('all') runs them.
const SQL = {
  saveTokens:
    'INSERT INTO oauth_tokens (user_id, server_id, tokens) VALUES ($1, $2, $3) ON CONFLICT (user_id, server_id) DO UPDATE SET tokens = excluded.tokens',
  tokens: 'SELECT tokens FROM oauth_tokens WHERE user_id = $1 AND server_id = $2',
  saveClientInformation:
    'INSERT INTO oauth_client_info (user_id, server_id, client_info) VALUES ($1, $2, $3) ON CONFLICT (user_id, server_id) DO UPDATE SET client_info = excluded.client_info',
  saveCodeVerifier:
    'INSERT INTO oauth_verifiers (user_id, server_id, verifier, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, server_id) DO UPDATE SET verifier = excluded.verifier, created_at = excluded.created_at',
  codeVerifier: 'SELECT verifier FROM oauth_verifiers WHERE user_id = $1 AND server_id = $2 AND created_at >= $3',
}
const INVALIDATE_ALL = [
  'oauth_client_info',
  'oauth_tokens',
  'oauth_verifiers',
  'hoot_oauth_states',
  'hoot_oauth_discovery',
].map((t) => ({ name: `delete_${t}`, text: `DELETE FROM ${t} WHERE user_id = $1 AND server_id = $2` }))

/** The operations of each contender, each returning a promise. */
function contender() {
  if (kind === 'hoot-core') {
    const { openDatabase } = require('../lib/index.js')
    const db = openDatabase(url, { poolSize: 10 })
    const store = db.store(USER)
    return {
      ready: () => db.ready(),
      close: () => db.close(),
      saveTokens: (s) => store.saveTokens(s, TOKENS),
      tokens: (s) => store.tokens(s),
      saveClientInformation: (s) => store.saveClientInformation(s, CLIENT),
      saveCodeVerifier: (s) => store.saveCodeVerifier(s, VERIFIER),
      codeVerifier: (s) => store.codeVerifier(s),
      invalidateAll: (s) => store.invalidateCredentials(s, 'all'),
    }
  }
  const pg = require('pg')
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  pool.on('error', () => {}) // an idle client the server ended; the next query reconnects
  const run = (name, values) => pool.query({ name, text: SQL[name], values })
  return {
    ready: () => pool.query('SELECT 1'),
    close: () => pool.end(),
    saveTokens: (s) => run('saveTokens', [USER, s, JSON.stringify(TOKENS)]),
    tokens: async (s) => {
      const { rows } = await run('tokens', [USER, s])
      return rows.length ? JSON.parse(rows[0].tokens) : undefined
    },
    saveClientInformation: (s) => run('saveClientInformation', [USER, s, JSON.stringify(CLIENT)]),
    saveCodeVerifier: (s) => run('saveCodeVerifier', [USER, s, VERIFIER, now()]),
    codeVerifier: async (s) => {
      const { rows } = await run('codeVerifier', [USER, s, now() - VERIFIER_TTL])
      return rows.length ? rows[0].verifier : undefined
    },
    invalidateAll: async (s) => {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        for (const { name, text } of INVALIDATE_ALL) await client.query({ name, text, values: [USER, s] })
        await client.query('COMMIT')
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {})
        throw error
      } finally {
        client.release()
      }
    },
  }
}

const c = contender()

/** Ops per second of `n` calls of `fn(i)`, `concurrency` awaited at once. */
async function rate(n, concurrency, fn) {
  let next = 0
  const lane = async () => {
    while (next < n) await fn(next++)
  }
  const start = process.hrtime.bigint()
  await Promise.all(Array.from({ length: concurrency }, lane))
  return n / (Number(process.hrtime.bigint() - start) / 1e9)
}
let batch = 0

serve({
  ready: async () => {
    await c.ready()
    // Every statement prepared on the connections and the rows of the reads in place, untimed.
    await rate(200, 10, (i) => c.saveTokens(`server-${i % 50}`))
    await rate(200, 10, (i) => c.saveCodeVerifier(`server-${i % 50}`))
    await rate(200, 10, (i) => c.tokens(`server-${i % 50}`))
    await rate(200, 10, (i) => c.codeVerifier(`server-${i % 50}`))
    await rate(50, 10, (i) => c.invalidateAll(`warm-${i}`))
    return true
  },
  saveTokens: ({ n, concurrency }) => rate(n, concurrency, (i) => c.saveTokens(`server-${i % 50}`)),
  tokens: ({ n, concurrency }) =>
    rate(n, concurrency, async (i) => {
      if ((await c.tokens(`server-${i % 50}`)) === undefined) throw new Error('tokens lost')
    }),
  // A PKCE round trip: the verifier saved before the redirect, read back at the callback.
  verifier: ({ n, concurrency }) =>
    rate(n, concurrency, async (i) => {
      await c.saveCodeVerifier(`server-${i % 50}`)
      if ((await c.codeVerifier(`server-${i % 50}`)) === undefined) throw new Error('verifier lost')
    }),
  // invalidateCredentials('all') on a server that has client info, tokens and a verifier; the
  // rows are written first, untimed.
  invalidate: async ({ n, concurrency }) => {
    const servers = Array.from({ length: n }, (_, i) => `gone-${batch}-${i}`)
    batch++
    await rate(n, 32, async (i) => {
      await c.saveClientInformation(servers[i])
      await c.saveTokens(servers[i])
      await c.saveCodeVerifier(servers[i])
    })
    return rate(n, concurrency, (i) => c.invalidateAll(servers[i]))
  },
})
// The pools keep the event loop alive: close them when the parent lets go.
process.on('disconnect', () =>
  Promise.resolve(c.close())
    .catch(() => {})
    .finally(() => process.exit(0)),
)

// One store contender on PostgreSQL in its own process, on its own database: `hoot-core` (the
// async store of openDatabase(url), pool of 10), `pg` (node-postgres, a pg.Pool of max 10, running
// hoot-core's statements word for word as named prepared statements) or `postgres` (postgres.js,
// max 10, the same statements, prepared). Each answers { op, n, concurrency } with the ops/s of n
// calls, `concurrency` of them in flight at once, call i on row at(i) of USERS × SERVERS rows.
import { createRequire } from 'node:module'

import { TOKENS, USER, serve } from './lib.mjs'

const require = createRequire(import.meta.url)
const [kind, url, users, servers] = process.argv.slice(2)
// Users that differ from USER in their last byte: one store each, as many rows as the issue measured on.
const USERS = Array.from({ length: Number(users) }, (_, u) => USER.slice(0, -2) + u.toString(16).padStart(2, '0'))
const SERVERS = Number(servers)
/** The (user, server) of call i: consecutive calls go to different users, so to different rows. */
const at = (i) => [USERS[i % USERS.length], `server-${Math.floor(i / USERS.length) % SERVERS}`]
const CLIENT = {
  client_id: 'c'.repeat(36),
  client_secret: 's'.repeat(43),
  redirect_uris: ['http://localhost:8009/oauth/callback'],
}
const VERIFIER = 'v'.repeat(43)
const VERIFIER_TTL = 600
const now = () => Math.floor(Date.now() / 1000)

// hoot-core's statements (src/pg/backend.rs), word for word: a write of a sealed slot runs only
// while the database's encryption state is the one the value was prepared for ($4: the key id, ''
// for plain), and a write of tokens or a registration gives the row a new random version.
const STATE = `CASE WHEN $4::text = '' THEN NOT EXISTS (SELECT 1 FROM hoot_encryption) ELSE EXISTS (SELECT 1 FROM hoot_encryption WHERE key_id = $4::text) END`
const versioned = (table, column) =>
  `INSERT INTO ${table} (user_id, server_id, ${column}, version) SELECT $1::text, $2::text, $3::text, floor(random() * 4503599627370496)::bigint * 2 + 1 WHERE ${STATE} ON CONFLICT (user_id, server_id) DO UPDATE SET ${column} = excluded.${column}, version = excluded.version`
const SQL = {
  saveTokens: versioned('oauth_tokens', 'tokens'),
  tokens: 'SELECT tokens FROM oauth_tokens WHERE user_id = $1 AND server_id = $2',
  saveClientInformation: versioned('oauth_client_info', 'client_info'),
  saveCodeVerifier: `INSERT INTO oauth_verifiers (user_id, server_id, verifier, created_at) SELECT $1::text, $2::text, $3::text, $5::bigint WHERE ${STATE} ON CONFLICT (user_id, server_id) DO UPDATE SET verifier = excluded.verifier, created_at = excluded.created_at`,
  codeVerifier: 'SELECT verifier FROM oauth_verifiers WHERE user_id = $1 AND server_id = $2 AND created_at >= $3',
}
const INVALIDATE_ALL = [
  'oauth_client_info',
  'oauth_tokens',
  'oauth_verifiers',
  'hoot_oauth_states',
  'hoot_oauth_discovery',
].map((t) => ({ name: `delete_${t}`, text: `DELETE FROM ${t} WHERE user_id = $1 AND server_id = $2` }))

/** The operations of each contender, each on (user, server) and returning a promise. */
async function contender() {
  if (kind === 'hoot-core') {
    const { openDatabase } = require('../lib/index.js')
    const db = openDatabase(url, { poolSize: 10 })
    // One store per user, made here: what is timed is the calls, not making stores.
    const stores = new Map(USERS.map((u) => [u, db.store(u)]))
    return {
      ready: () => db.ready(),
      close: () => db.close(),
      saveTokens: (u, s) => stores.get(u).saveTokens(s, TOKENS),
      tokens: (u, s) => stores.get(u).tokens(s),
      saveClientInformation: (u, s) => stores.get(u).saveClientInformation(s, CLIENT),
      saveCodeVerifier: (u, s) => stores.get(u).saveCodeVerifier(s, VERIFIER),
      codeVerifier: (u, s) => stores.get(u).codeVerifier(s),
      invalidateAll: (u, s) => stores.get(u).invalidateCredentials(s, 'all'),
    }
  }
  /** The statements as both JavaScript clients run them: `run(name, values)` resolves to the rows. */
  const javascript = ({ run, transaction, ready, close }) => ({
    ready,
    close,
    saveTokens: (u, s) => run('saveTokens', [u, s, JSON.stringify(TOKENS), '']),
    tokens: async (u, s) => {
      const rows = await run('tokens', [u, s])
      return rows.length ? JSON.parse(rows[0].tokens) : undefined
    },
    saveClientInformation: (u, s) => run('saveClientInformation', [u, s, JSON.stringify(CLIENT), '']),
    saveCodeVerifier: (u, s) => run('saveCodeVerifier', [u, s, VERIFIER, '', now()]),
    codeVerifier: async (u, s) => {
      const rows = await run('codeVerifier', [u, s, now() - VERIFIER_TTL])
      return rows.length ? rows[0].verifier : undefined
    },
    invalidateAll: transaction,
  })
  if (kind === 'postgres') {
    const { default: postgres } = await import('postgres')
    const sql = postgres(url, { max: 10 })
    // sql.unsafe runs the text as given, so the statements stay word for word those of SQL; it
    // prepares only when asked, as a tagged template does by default.
    const prepared = { prepare: true }
    return javascript({
      ready: () => sql`SELECT 1`,
      close: () => sql.end(),
      run: (name, values) => sql.unsafe(SQL[name], values, prepared),
      transaction: (u, s) =>
        sql.begin(async (tx) => {
          for (const { text } of INVALIDATE_ALL) await tx.unsafe(text, [u, s], prepared)
        }),
    })
  }
  const pg = require('pg')
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  pool.on('error', () => {}) // an idle client the server ended; the next query reconnects
  return javascript({
    ready: () => pool.query('SELECT 1'),
    close: () => pool.end(),
    run: async (name, values) => (await pool.query({ name, text: SQL[name], values })).rows,
    transaction: async (u, s) => {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        for (const { name, text } of INVALIDATE_ALL) await client.query({ name, text, values: [u, s] })
        await client.query('COMMIT')
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {})
        throw error
      } finally {
        client.release()
      }
    },
  })
}

const c = await contender()

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
    // Every statement prepared on the connections and every row of the reads in place, untimed.
    const rows = USERS.length * SERVERS
    await rate(rows, 10, (i) => c.saveTokens(...at(i)))
    await rate(rows, 10, (i) => c.saveCodeVerifier(...at(i)))
    await rate(200, 10, (i) => c.tokens(...at(i)))
    await rate(200, 10, (i) => c.codeVerifier(...at(i)))
    await rate(50, 10, (i) => c.invalidateAll(at(i)[0], `warm-${i}`))
    return true
  },
  saveTokens: ({ n, concurrency }) => rate(n, concurrency, (i) => c.saveTokens(...at(i))),
  tokens: ({ n, concurrency }) =>
    rate(n, concurrency, async (i) => {
      if ((await c.tokens(...at(i))) === undefined) throw new Error('tokens lost')
    }),
  // A PKCE round trip: the verifier saved before the redirect, read back at the callback.
  verifier: ({ n, concurrency }) =>
    rate(n, concurrency, async (i) => {
      await c.saveCodeVerifier(...at(i))
      if ((await c.codeVerifier(...at(i))) === undefined) throw new Error('verifier lost')
    }),
  // invalidateCredentials('all') on a server that has client info, tokens and a verifier; the
  // rows are written first, untimed.
  invalidate: async ({ n, concurrency }) => {
    const rows = Array.from({ length: n }, (_, i) => [at(i)[0], `gone-${batch}-${i}`])
    batch++
    await rate(n, 32, async (i) => {
      await c.saveClientInformation(...rows[i])
      await c.saveTokens(...rows[i])
      await c.saveCodeVerifier(...rows[i])
    })
    return rate(n, concurrency, (i) => c.invalidateAll(...rows[i]))
  },
})
// The pools keep the event loop alive: close them when the parent lets go.
process.on('disconnect', () =>
  Promise.resolve(c.close())
    .catch(() => {})
    .finally(() => process.exit(0)),
)

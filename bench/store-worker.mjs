// One store contender in its own process (two SQLite libraries must never share a process or a
// file): `hoot-core`, `hoot-path` (better-sqlite3 as Hoot's backend uses it: a statement prepared
// per call, a WAL checkpoint after each save, SQLite's WAL default synchronous=NORMAL) or `tuned`
// (better-sqlite3 with statements prepared once, one transaction per operation, and
// synchronous=FULL like hoot-core). Each answers { op, n } with the ops/s of n calls.
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { TOKENS, USER, serve } from './lib.mjs'

const require = createRequire(import.meta.url)
const [kind, dir] = process.argv.slice(2)
const dbPath = join(dir, `${kind}.db`)
const CLIENT = {
  client_id: 'c'.repeat(36),
  client_secret: 's'.repeat(43),
  redirect_uris: ['http://localhost:8009/oauth/callback'],
}
const VERIFIER = 'v'.repeat(43)
const now = () => Math.floor(Date.now() / 1000)

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS oauth_tokens (user_id TEXT NOT NULL, server_id TEXT NOT NULL, tokens TEXT NOT NULL, PRIMARY KEY (user_id, server_id));
  CREATE TABLE IF NOT EXISTS oauth_client_info (user_id TEXT NOT NULL, server_id TEXT NOT NULL, client_info TEXT NOT NULL, PRIMARY KEY (user_id, server_id));
  CREATE TABLE IF NOT EXISTS oauth_verifiers (user_id TEXT NOT NULL, server_id TEXT NOT NULL, verifier TEXT NOT NULL, created_at INTEGER DEFAULT (strftime('%s', 'now')), PRIMARY KEY (user_id, server_id));`

/** The four operations of each contender, as Hoot's OAuth provider calls them. */
function contender() {
  if (kind === 'hoot-core-async') {
    // The async \`Database\` the example server uses, on the same kind of file.
    const { openDatabase } = require('../lib/index.js')
    const store = openDatabase(dbPath).store(USER)
    return { sync: 'FULL', saveTokens: (s) => store.saveTokens(s, TOKENS), tokens: (s) => store.tokens(s) }
  }
  if (kind === 'tuned-async') {
    // Tuned better-sqlite3, each call's result in a promise, as a server wraps a synchronous store.
    const tuned = contender.tuned()
    return { sync: tuned.sync, saveTokens: async (s) => tuned.saveTokens(s), tokens: async (s) => tuned.tokens(s) }
  }
  if (kind === 'hoot-core' || kind === 'hoot-core-encrypted') {
    // Encrypted: every value sealed with AES-256-GCM on write and opened on read.
    const encryption = kind === 'hoot-core-encrypted' ? 'on' : 'off'
    if (encryption === 'on') process.env.HOOT_ENCRYPTION_KEY = require('crypto').randomBytes(32).toString('base64url')
    const { OAuthStore } = require('../lib/index.js')
    const store = new OAuthStore(USER, { dbPath, encryption })
    return {
      sync: 'FULL',
      saveTokens: (s) => store.saveTokens(s, TOKENS),
      tokens: (s) => store.tokens(s),
      saveClientInformation: (s) => store.saveClientInformation(s, CLIENT),
      saveCodeVerifier: (s) => store.saveCodeVerifier(s, VERIFIER),
      codeVerifier: (s) => store.codeVerifier(s),
      invalidateAll: (s) => store.invalidateCredentials(s, 'all'),
    }
  }
  const db = contender.open()
  if (kind === 'hoot-path') {
    // mcp-backend-server.js, statement for statement.
    return {
      sync: db.pragma('synchronous', { simple: true }),
      saveTokens: (s) => {
        db.prepare('INSERT OR REPLACE INTO oauth_tokens (user_id, server_id, tokens) VALUES (?, ?, ?)').run(
          USER,
          s,
          JSON.stringify(TOKENS),
        )
        db.pragma('wal_checkpoint(PASSIVE)')
      },
      tokens: (s) => {
        const row = db.prepare('SELECT tokens FROM oauth_tokens WHERE user_id = ? AND server_id = ?').get(USER, s)
        return row ? JSON.parse(row.tokens) : undefined
      },
      saveClientInformation: (s) => {
        db.prepare('INSERT OR REPLACE INTO oauth_client_info (user_id, server_id, client_info) VALUES (?, ?, ?)').run(
          USER,
          s,
          JSON.stringify(CLIENT),
        )
      },
      saveCodeVerifier: (s) => {
        db.prepare(
          'INSERT OR REPLACE INTO oauth_verifiers (user_id, server_id, verifier, created_at) VALUES (?, ?, ?, ?)',
        ).run(USER, s, VERIFIER, now())
        db.pragma('wal_checkpoint(PASSIVE)')
      },
      codeVerifier: (s) => {
        const row = db.prepare('SELECT verifier FROM oauth_verifiers WHERE user_id = ? AND server_id = ?').get(USER, s)
        if (!row) throw new Error('Code verifier not found')
        return row.verifier
      },
      invalidateAll: (s) => {
        db.prepare('DELETE FROM oauth_client_info WHERE user_id = ? AND server_id = ?').run(USER, s)
        db.prepare('DELETE FROM oauth_tokens WHERE user_id = ? AND server_id = ?').run(USER, s)
        db.prepare('DELETE FROM oauth_verifiers WHERE user_id = ? AND server_id = ?').run(USER, s)
      },
    }
  }
  return contender.tuned(db)
}

/** Tuned better-sqlite3: statements prepared once, synchronous=FULL, one transaction per call. */
contender.tuned = (db = contender.open()) => {
  db.pragma('synchronous = FULL')
  const put = db.prepare('INSERT OR REPLACE INTO oauth_tokens (user_id, server_id, tokens) VALUES (?, ?, ?)')
  const get = db.prepare('SELECT tokens FROM oauth_tokens WHERE user_id = ? AND server_id = ?')
  const putClient = db.prepare(
    'INSERT OR REPLACE INTO oauth_client_info (user_id, server_id, client_info) VALUES (?, ?, ?)',
  )
  const putVerifier = db.prepare(
    'INSERT OR REPLACE INTO oauth_verifiers (user_id, server_id, verifier, created_at) VALUES (?, ?, ?, ?)',
  )
  const getVerifier = db.prepare('SELECT verifier FROM oauth_verifiers WHERE user_id = ? AND server_id = ?')
  const deletes = ['oauth_client_info', 'oauth_tokens', 'oauth_verifiers'].map((t) =>
    db.prepare(`DELETE FROM ${t} WHERE user_id = ? AND server_id = ?`),
  )
  const invalidate = db.transaction((s) => deletes.forEach((d) => d.run(USER, s)))
  return {
    sync: db.pragma('synchronous', { simple: true }),
    saveTokens: (s) => put.run(USER, s, JSON.stringify(TOKENS)),
    tokens: (s) => {
      const row = get.get(USER, s)
      return row ? JSON.parse(row.tokens) : undefined
    },
    saveClientInformation: (s) => putClient.run(USER, s, JSON.stringify(CLIENT)),
    saveCodeVerifier: (s) => putVerifier.run(USER, s, VERIFIER, now()),
    codeVerifier: (s) => getVerifier.get(USER, s).verifier,
    invalidateAll: (s) => invalidate(s),
  }
}

/** better-sqlite3 on this contender's file, in WAL mode, with Hoot's schema. */
contender.open = () => {
  const Database = require('better-sqlite3')
  const db = new Database(dbPath)
  db.pragma('journal_mode = WAL')
  db.exec(SCHEMA)
  return db
}

const c = contender()
const rate = (n, fn) => {
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) fn(i)
  return n / (Number(process.hrtime.bigint() - start) / 1e9)
}
let batch = 0
/** `rate` for calls that return promises, each awaited before the next (as a request awaits it). */
const rateAwaited = async (n, fn) => {
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await fn(i)
  return n / (Number(process.hrtime.bigint() - start) / 1e9)
}

serve({
  info: () => ({ synchronous: ['OFF', 'NORMAL', 'FULL', 'EXTRA'][c.sync] ?? c.sync }),
  saveTokens: ({ n }) => rate(n, (i) => c.saveTokens(`server-${i % 50}`)),
  tokens: ({ n }) => {
    for (let i = 0; i < 50; i++) c.saveTokens(`server-${i}`)
    return rate(n, (i) => {
      if (c.tokens(`server-${i % 50}`) === undefined) throw new Error('tokens lost')
    })
  },
  tokensAwaited: async ({ n }) => {
    for (let i = 0; i < 50; i++) await c.saveTokens(`server-${i}`)
    return rateAwaited(n, async (i) => {
      if ((await c.tokens(`server-${i % 50}`)) === undefined) throw new Error('tokens lost')
    })
  },
  // A PKCE round trip: the verifier saved before the redirect, read back at the callback.
  verifier: ({ n }) =>
    rate(n, (i) => {
      c.saveCodeVerifier(`server-${i % 50}`)
      c.codeVerifier(`server-${i % 50}`)
    }),
  // invalidateCredentials('all') on a server that has client info, tokens and a verifier; the
  // rows are written first, untimed.
  invalidate: ({ n }) => {
    const servers = Array.from({ length: n }, (_, i) => `gone-${batch}-${i}`)
    batch++
    for (const s of servers) {
      c.saveClientInformation(s)
      c.saveTokens(s)
      c.saveCodeVerifier(s)
    }
    return rate(n, (i) => c.invalidateAll(servers[i]))
  },
})

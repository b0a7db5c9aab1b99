// Migration of a legacy single-user file with 20,000 rows per table: migrateDatabase (its backup
// included) against Hoot's own loop, as Hoot runs it and in one transaction, each on a fresh copy,
// taking turns, in separate processes.
import { execFileSync } from 'node:child_process'
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { QUICK, interleave, tempDir } from './lib.mjs'

const WORKER = fileURLToPath(new URL('./migrate-worker.mjs', import.meta.url))
export const ROWS = QUICK ? 2000 : 20000
const ROUNDS = QUICK ? 2 : 5

/** Hoot's pre-multi-tenant schema, filled with `rows` rows per table, in WAL mode. */
function legacyFile(path, rows) {
  const script = `
    const Database = require('better-sqlite3')
    const db = new Database(${JSON.stringify(path)})
    db.pragma('journal_mode = WAL')
    db.exec(\`
      CREATE TABLE oauth_tokens (server_id TEXT PRIMARY KEY, tokens TEXT NOT NULL);
      CREATE TABLE oauth_client_info (server_id TEXT PRIMARY KEY, client_info TEXT NOT NULL);
      CREATE TABLE oauth_verifiers (server_id TEXT PRIMARY KEY, verifier TEXT NOT NULL, created_at INTEGER DEFAULT (strftime('%s', 'now')));
      CREATE TABLE favicon_cache (server_url TEXT PRIMARY KEY, favicon_url TEXT, oauth_logo_uri TEXT, cached_at INTEGER DEFAULT (strftime('%s', 'now')));\`)
    const now = Math.floor(Date.now() / 1000)
    const t = db.prepare('INSERT INTO oauth_tokens VALUES (?, ?)')
    const c = db.prepare('INSERT INTO oauth_client_info VALUES (?, ?)')
    const v = db.prepare('INSERT INTO oauth_verifiers VALUES (?, ?, ?)')
    db.transaction(() => {
      for (let i = 0; i < ${rows}; i++) {
        t.run('server-' + i, JSON.stringify({ access_token: 'a'.repeat(600), refresh_token: 'r'.repeat(64), token_type: 'Bearer', expires_in: 3600 }))
        c.run('server-' + i, JSON.stringify({ client_id: 'c' + i, client_secret: 's'.repeat(43) }))
        v.run('server-' + i, 'v'.repeat(43), now)
      }
    })()
    db.pragma('wal_checkpoint(TRUNCATE)')
    db.close()`
  execFileSync(process.execPath, ['-e', script], { cwd: fileURLToPath(new URL('.', import.meta.url)) })
}

export async function run() {
  const dir = tempDir('migrate')
  const legacy = join(dir, 'legacy.db')
  legacyFile(legacy, ROWS)
  let copies = 0
  const once = (kind) => {
    const path = join(dir, `copy-${copies++}.db`)
    copyFileSync(legacy, path)
    return Number(execFileSync(process.execPath, [WORKER, kind, path], { encoding: 'utf8' }).trim())
  }
  // Milliseconds, so smaller is better; stored as runs per second to share the rate tables.
  const runs = await interleave(ROUNDS, {
    'hoot-core': () => 1000 / once('hoot-core'),
    "Hoot's loop": () => 1000 / once('hoot-loop'),
    "Hoot's code, one transaction": () => 1000 / once('hoot-loop-tx'),
  })
  return { rows: ROWS, runs }
}

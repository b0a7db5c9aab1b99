// hoot-core's OAuthStore next to better-sqlite3 running Hoot's own code path (a statement
// prepared on every call, a WAL checkpoint after every write), and next to better-sqlite3 tuned
// (statements prepared once, no checkpoint), in one run; plus the time to migrate a legacy file
// of 20,000 rows per table. better-sqlite3 runs in a child process: two SQLite libraries must not
// share a process. Prints medians.
//   node bench/store.mjs
import { spawnSync } from 'node:child_process'
import { copyFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'

import { OAuthStore, closeDatabase, migrateDatabase } from '../index.js'
import { USER, makeLegacyDb, root, tempDir } from '../__test__/helpers.mjs'

const ROUNDS = Number(process.env.ROUNDS || 5)
const N = Number(process.env.N || 2000)
const tokens = { access_token: 'eyJhbGciOiJSUzI1NiJ9.' + 'a'.repeat(600), refresh_token: 'r'.repeat(64), token_type: 'Bearer', expires_in: 3600, scope: 'read write' }

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function rate(fn) {
  const rates = []
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < N; i++) fn(i)
    rates.push(N / (Number(process.hrtime.bigint() - start) / 1e9))
  }
  return median(rates)
}

// hoot-core
const dbPath = join(tempDir('bench-store'), 'hoot-mcp.db')
const store = new OAuthStore(USER, { dbPath })
const ours = {
  save: rate((i) => store.saveTokens(`server-${i % 50}`, tokens)),
  read: rate((i) => store.tokens(`server-${i % 50}`)),
}
closeDatabase(dbPath)

// better-sqlite3, in a child
const peer = spawnSync(process.execPath, ['--input-type=module', '-e', `
  import Database from 'better-sqlite3'
  const { N, ROUNDS, tokens, user, dir } = ${JSON.stringify({ N, ROUNDS, tokens, user: USER, dir: tempDir('bench-bsq') })}
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]
  const rate = (fn) => { const r = []; for (let k = 0; k < ROUNDS; k++) { const s = process.hrtime.bigint(); for (let i = 0; i < N; i++) fn(i); r.push(N / (Number(process.hrtime.bigint() - s) / 1e9)) } return median(r) }
  const open = (name) => {
    const db = new Database(dir + '/' + name)
    db.pragma('journal_mode = WAL')
    db.exec('CREATE TABLE IF NOT EXISTS oauth_tokens (user_id TEXT NOT NULL, server_id TEXT NOT NULL, tokens TEXT NOT NULL, PRIMARY KEY (user_id, server_id))')
    return db
  }
  const hoot = open('hoot.db')
  const hootPath = {
    save: rate((i) => { hoot.prepare('INSERT OR REPLACE INTO oauth_tokens (user_id, server_id, tokens) VALUES (?, ?, ?)').run(user, 'server-' + (i % 50), JSON.stringify(tokens)); hoot.pragma('wal_checkpoint(PASSIVE)') }),
    read: rate((i) => { const row = hoot.prepare('SELECT tokens FROM oauth_tokens WHERE user_id = ? AND server_id = ?').get(user, 'server-' + (i % 50)); return row ? JSON.parse(row.tokens) : undefined }),
  }
  const tuned = open('tuned.db')
  const put = tuned.prepare('INSERT OR REPLACE INTO oauth_tokens (user_id, server_id, tokens) VALUES (?, ?, ?)')
  const get = tuned.prepare('SELECT tokens FROM oauth_tokens WHERE user_id = ? AND server_id = ?')
  const tunedPath = {
    save: rate((i) => put.run(user, 'server-' + (i % 50), JSON.stringify(tokens))),
    read: rate((i) => { const row = get.get(user, 'server-' + (i % 50)); return row ? JSON.parse(row.tokens) : undefined }),
  }
  const sync = tuned.pragma('synchronous', { simple: true })
  console.log(JSON.stringify({ hootPath, tunedPath, sync }))`], { cwd: root, encoding: 'utf8' })
if (peer.status !== 0) throw new Error(peer.stderr)
const { hootPath, tunedPath, sync } = JSON.parse(peer.stdout)

// Migration of 20,000 rows per table (tokens, client info, verifiers), backup included.
const legacy = join(tempDir('bench-legacy'), 'legacy.db')
makeLegacyDb(legacy, 20000)
const migrations = []
for (let r = 0; r < 3; r++) {
  const copy = join(tempDir('bench-migrate'), 'hoot-mcp.db')
  copyFileSync(legacy, copy)
  const start = process.hrtime.bigint()
  migrateDatabase(copy)
  migrations.push(Number(process.hrtime.bigint() - start) / 1e6)
  closeDatabase(copy)
}

const x = (a, b) => `${(a / b).toFixed(2)}x`
console.log(`node ${process.version}, ${cpus()[0].model} x${cpus().length}, ${N} ops x median of ${ROUNDS} rounds`)
console.table([
  { operation: 'saveTokens', 'hoot-core ops/s': Math.round(ours.save), 'Hoot path ops/s': Math.round(hootPath.save), 'vs Hoot path': x(ours.save, hootPath.save), 'tuned bsq3 ops/s': Math.round(tunedPath.save), 'vs tuned': x(ours.save, tunedPath.save) },
  { operation: 'tokens', 'hoot-core ops/s': Math.round(ours.read), 'Hoot path ops/s': Math.round(hootPath.read), 'vs Hoot path': x(ours.read, hootPath.read), 'tuned bsq3 ops/s': Math.round(tunedPath.read), 'vs tuned': x(ours.read, tunedPath.read) },
])
console.log(`hoot-core writes with synchronous=FULL; better-sqlite3 ran with synchronous=${sync} (its default)`)
console.log(`migrate 20,000 rows per table: median ${median(migrations).toFixed(0)} ms (runs: ${migrations.map((m) => m.toFixed(0)).join(', ')} ms)`)

// One migration of a copy of the legacy file, in its own process: `hoot-core` runs
// migrateDatabase (backup, one transaction, integrity check), `hoot-loop` runs Hoot's own
// migration as its backend does it at startup: read each table whole, drop it, recreate it and
// insert row by row with a prepared statement, each insert its own transaction; then the
// TRUNCATE checkpoint. `hoot-loop-tx` is the same steps inside one better-sqlite3 transaction:
// the simplest fix of Hoot's code (one commit instead of one per row, and a crash leaves the legacy
// file as it was), so the bar that hoot-core, with its backup and checks, has to clear. Prints
// the milliseconds taken.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const [kind, path] = process.argv.slice(2)

const TABLES = [
  ['oauth_tokens', 'tokens TEXT NOT NULL', ['tokens']],
  ['oauth_client_info', 'client_info TEXT NOT NULL', ['client_info']],
  [
    'oauth_verifiers',
    "verifier TEXT NOT NULL, created_at INTEGER DEFAULT (strftime('%s', 'now'))",
    ['verifier', 'created_at'],
  ],
]

/** Hoot's migration; `oneTransaction` runs its reads, drops, creates and inserts as one commit. */
function hootLoop(oneTransaction) {
  const Database = require('better-sqlite3')
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  const legacy = !db
    .prepare('PRAGMA table_info(oauth_tokens)')
    .all()
    .some((c) => c.name === 'user_id')
  if (!legacy) throw new Error('not a legacy file')
  const user = 'legacy-user-' + Date.now()
  const migrate = () => {
    for (const [table, columns, names] of TABLES) {
      const rows = db.prepare(`SELECT * FROM ${table}`).all()
      if (rows.length === 0) continue
      db.exec(
        `DROP TABLE ${table}; CREATE TABLE ${table} (user_id TEXT NOT NULL, server_id TEXT NOT NULL, ${columns}, PRIMARY KEY (user_id, server_id));`,
      )
      const insert = db.prepare(
        `INSERT INTO ${table} (user_id, server_id, ${names.join(', ')}) VALUES (?, ?, ${names.map(() => '?').join(', ')})`,
      )
      for (const row of rows) insert.run(user, row.server_id, ...names.map((n) => row[n]))
    }
  }
  if (oneTransaction) db.transaction(migrate)()
  else migrate()
  // After the commit: a checkpoint cannot run inside a transaction.
  db.pragma('wal_checkpoint(TRUNCATE)')
  db.close()
}

const start = process.hrtime.bigint()
if (kind === 'hoot-core') {
  const { closeDatabase, migrateDatabase } = require('../lib/sqlite.js')
  const report = migrateDatabase(path)
  if (!report.migrated) throw new Error('hoot-core did not migrate')
  closeDatabase(path)
} else if (kind === 'hoot-loop' || kind === 'hoot-loop-tx') {
  hootLoop(kind === 'hoot-loop-tx')
} else {
  throw new Error(`unknown contender ${kind}`)
}
console.log(Number(process.hrtime.bigint() - start) / 1e6)

import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import { OAuthStore, migrateDatabase } from '../lib/index.js'
import { closeDatabase, inspectDatabase } from '../lib/sqlite.js'
import { USER, entry, makeLegacyDb, tempDir, withBetterSqlite } from './helpers.mjs'

const dbFile = (label) => join(tempDir(label), 'hoot-mcp.db')

/** Schema and rows of a database, read by better-sqlite3 in a child process. */
function inspect(path) {
  return withBetterSqlite(
    `
    const db = new Database(input.path)
    const out = {}
    for (const table of ['oauth_tokens', 'oauth_client_info', 'oauth_verifiers']) {
      const cols = db.prepare('SELECT name FROM pragma_table_info(?)').all(table).map((c) => c.name)
      out[table] = {
        multiTenant: cols.includes('user_id'),
        rows: cols.length ? db.prepare('SELECT count(*) AS n FROM ' + table).get().n : null,
        users: cols.includes('user_id') ? db.prepare('SELECT DISTINCT user_id FROM ' + table).all().map((r) => r.user_id) : [],
      }
    }
    out.version = db.pragma('user_version', { simple: true })
    out.integrity = db.pragma('integrity_check', { simple: true })
    db.close()
    console.log(JSON.stringify(out))`,
    { path },
  )
}

describe('migrateDatabase', () => {
  test('a legacy file with rows: every row moves to one legacy user, after a backup', () => {
    const path = dbFile('legacy')
    makeLegacyDb(path, 30)
    const before = Date.now()
    const report = migrateDatabase(path)
    assert.equal(report.migrated, true)
    assert.match(report.legacyUserId, /^legacy-user-\d+$/)
    const stamp = Number(report.legacyUserId.slice('legacy-user-'.length))
    assert.ok(stamp >= before && stamp <= Date.now(), 'the id is the migration time in unix ms')
    assert.deepEqual([report.tokens, report.clientInfo, report.verifiers, report.schemaVersion], [30, 30, 30, 3])
    assert.ok(existsSync(report.backupPath), report.backupPath)
    assert.equal(inspect(report.backupPath).oauth_tokens.multiTenant, false, 'the backup is the legacy file')

    assert.equal(statSync(path).mode & 0o777, 0o600, "Hoot's 0644 file is made private")
    const after = inspect(path)
    for (const table of ['oauth_tokens', 'oauth_client_info', 'oauth_verifiers']) {
      assert.deepEqual(after[table], { multiTenant: true, rows: 30, users: [report.legacyUserId] }, table)
    }
    const store = new OAuthStore(report.legacyUserId, { dbPath: path })
    assert.deepEqual(store.tokens('s29'), { access_token: 't29' })
    assert.deepEqual(store.clientInformation('s0'), { client_id: 'c0' })
    assert.equal(store.codeVerifier('s3'), 'v3')

    const again = migrateDatabase(path)
    assert.deepEqual(again, { migrated: false, tokens: 0, clientInfo: 0, verifiers: 0, schemaVersion: 3 })
    assert.equal(readdirSync(join(path, '..')).filter((f) => f.includes('pre-migration')).length, 1, 'no second backup')
  })

  test('empty legacy tables end in the new schema too', () => {
    const path = dbFile('empty')
    makeLegacyDb(path, 0)
    const report = migrateDatabase(path)
    assert.equal(report.migrated, true)
    assert.deepEqual([report.tokens, report.clientInfo, report.verifiers], [0, 0, 0])
    const after = inspect(path)
    assert.ok(
      after.oauth_tokens.multiTenant && after.oauth_client_info.multiTenant && after.oauth_verifiers.multiTenant,
    )
    new OAuthStore(USER, { dbPath: path }).saveTokens('s', { works: true })
  })

  test("a half-migrated file (Hoot's old migration cut short) finishes under the same legacy user", () => {
    const path = dbFile('mixed')
    makeLegacyDb(path, 5)
    withBetterSqlite(
      `
      const db = new Database(input.path)
      const rows = db.prepare('SELECT * FROM oauth_tokens').all()
      db.exec('DROP TABLE oauth_tokens; CREATE TABLE oauth_tokens (user_id TEXT NOT NULL, server_id TEXT NOT NULL, tokens TEXT NOT NULL, PRIMARY KEY (user_id, server_id))')
      for (const r of rows) db.prepare('INSERT INTO oauth_tokens VALUES (?, ?, ?)').run('legacy-user-1700000000000', r.server_id, r.tokens)
      db.close(); console.log('null')`,
      { path },
    )
    const report = migrateDatabase(path)
    assert.equal(report.legacyUserId, 'legacy-user-1700000000000')
    assert.deepEqual([report.tokens, report.clientInfo, report.verifiers], [0, 5, 5])
    const store = new OAuthStore('legacy-user-1700000000000', { dbPath: path })
    assert.deepEqual(store.servers(), ['s0', 's1', 's2', 's3', 's4'])
    assert.deepEqual(store.tokens('s4'), { access_token: 't4' })
  })

  test('a brand-new file gets the schema and reports nothing migrated', () => {
    const path = dbFile('new')
    assert.deepEqual(migrateDatabase(path), {
      migrated: false,
      tokens: 0,
      clientInfo: 0,
      verifiers: 0,
      schemaVersion: 3,
    })
    assert.equal(inspect(path).version, 3)
  })

  test('a file that is not a database is refused and left byte-for-byte untouched', () => {
    const path = dbFile('notadb')
    const content = Buffer.from('{"this": "is JSON, not SQLite"}\n'.repeat(500))
    writeFileSync(path, content)
    assert.throws(() => migrateDatabase(path), { code: 'ERR_HOOT_DB', message: /not a SQLite database/ })
    assert.deepEqual(readFileSync(path), content)
    assert.deepEqual(readdirSync(join(path, '..')), ['hoot-mcp.db'])
  })

  test('opening an OAuthStore on a legacy file migrates it first', () => {
    const path = dbFile('open')
    makeLegacyDb(path, 3)
    const store = new OAuthStore(USER, { dbPath: path })
    assert.deepEqual(store.servers(), [], 'the legacy rows belong to the legacy user, not to this one')
    const after = inspect(path)
    assert.equal(after.oauth_tokens.rows, 3)
    const legacy = new OAuthStore(after.oauth_tokens.users[0], { dbPath: path })
    assert.deepEqual(legacy.servers(), ['s0', 's1', 's2'])
    closeDatabase(path)
  })
})

test('SIGKILL at any moment of a migration leaves the file fully legacy or fully migrated', async () => {
  const rows = 20000
  const template = dbFile('crash-template')
  makeLegacyDb(template, rows)
  const outcomes = { legacy: 0, migrated: 0 }
  // A migration of this file takes about 130 ms here; the last run is not killed at all.
  for (const delay of [0, 1, 3, 6, 10, 20, 35, 60, 90, 120, 150, 250, null]) {
    const path = dbFile(`crash-${delay}`)
    copyFileSync(template, path)
    await new Promise((resolve, reject) => {
      const code = `import { migrateDatabase } from ${JSON.stringify(entry)}
        process.stdout.write('start\\n'); migrateDatabase(${JSON.stringify(path)}); process.stdout.write('done\\n')`
      const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      if (delay !== null) child.stdout.once('data', () => setTimeout(() => child.kill('SIGKILL'), delay))
      child.on('error', reject)
      child.on('close', resolve)
    })
    const state = inspect(path)
    assert.equal(state.integrity, 'ok', `integrity after a kill at ${delay} ms`)
    const tables = [state.oauth_tokens, state.oauth_client_info, state.oauth_verifiers]
    const migrated = tables.every((t) => t.multiTenant)
    assert.ok(migrated || tables.every((t) => !t.multiTenant), `mixed schema after a kill at ${delay} ms`)
    for (const table of tables) assert.equal(table.rows, rows, `rows lost after a kill at ${delay} ms`)
    if (migrated) {
      assert.equal(state.version, 3)
      assert.equal(new Set(tables.flatMap((t) => t.users)).size, 1)
    }
    outcomes[migrated ? 'migrated' : 'legacy']++
    // Whatever the kill left, the next start completes the migration.
    const report = migrateDatabase(path)
    assert.equal(report.migrated, !migrated)
    assert.equal(inspect(path).oauth_verifiers.rows, rows)
    closeDatabase(path)
  }
  // The early kills land before the commit; the unkilled run shows a completed migration passes too.
  assert.ok(outcomes.legacy > 0 && outcomes.migrated > 0, JSON.stringify(outcomes))
})

test('the pre-migration backup is never written through a link planted at its name', () => {
  const path = dbFile('planted-backup')
  makeLegacyDb(path, 3)
  const elsewhere = tempDir('planter')
  // The name carries the time in ms: plant a dangling link at every name of the next few seconds.
  const start = Date.now()
  for (let ms = start; ms < start + 5000; ms++) {
    symlinkSync(join(elsewhere, `copy-${ms}`), `${path}.pre-migration-${ms}.bak`)
  }
  const report = migrateDatabase(path)
  assert.equal(report.migrated, true)
  assert.ok(!lstatSync(report.backupPath).isSymbolicLink(), report.backupPath)
  assert.equal(statSync(report.backupPath).mode & 0o777, 0o600)
  assert.deepEqual(readdirSync(elsewhere), [], 'no copy of the tokens reached the planter')
})

test(
  'a migration that fails removes its own backup, and the file stays legacy',
  { skip: process.platform !== 'linux' && 'needs ulimit -f' },
  () => {
    const path = dbFile('failed-migration')
    makeLegacyDb(path, 2000)
    const before = readFileSync(path)
    // A file size limit just above the file's size: the backup or the migration's writes fail
    // as on a full disk (SIGXFSZ ignored, so the write returns an error).
    const blocks = Math.ceil(before.length / 512) + 8
    const child = spawnSync(
      'sh',
      [
        '-c',
        `ulimit -f ${blocks}; exec "${process.execPath}" --input-type=module -e "$0"`,
        `import { migrateDatabase } from ${JSON.stringify(entry)}
        process.on('SIGXFSZ', () => {})
        try { migrateDatabase(${JSON.stringify(path)}); console.log('"migrated"') } catch (e) { console.log(JSON.stringify(e.code)) }`,
      ],
      { encoding: 'utf8' },
    )
    assert.equal(child.stdout.trim(), '"ERR_HOOT_DB"', child.stderr)
    assert.deepEqual(
      readdirSync(join(path, '..')).filter((f) => f.includes('pre-migration')),
      [],
      'the failed attempt left no copy of every token behind',
    )
    assert.equal(inspect(path).oauth_tokens.multiTenant, false)
    assert.equal(inspect(path).oauth_tokens.rows, 2000)
  },
)

describe('legacy files a plain conversion could not take', () => {
  test('colliding NULL server ids are converted, the extra rows kept aside and reported', () => {
    const path = dbFile('nulls')
    makeLegacyDb(path, 1)
    withBetterSqlite(
      `const db = new Database(input.path)
      db.prepare('INSERT INTO oauth_tokens VALUES (NULL, ?)').run('{"access_token":"a"}')
      db.prepare('INSERT INTO oauth_tokens VALUES (NULL, ?)').run('{"access_token":"b"}')
      db.close(); console.log('null')`,
      { path },
    )
    const report = migrateDatabase(path)
    assert.equal(report.migrated, true)
    assert.equal(report.tokens, 2)
    assert.equal(report.conflicts, 1)
    assert.equal(report.conflictsTable, 'hoot_migration_conflicts')
    const kept = withBetterSqlite(
      `const db = new Database(input.path, { readonly: true })
      console.log(JSON.stringify(db.prepare('SELECT table_name, row FROM hoot_migration_conflicts').all()))`,
      { path },
    )
    assert.deepEqual(kept, [{ table_name: 'oauth_tokens', row: '{"tokens":"{\\"access_token\\":\\"b\\"}"}' }])
  })

  test('a file that cannot be migrated gives every call one clear error, and leaves no backups', () => {
    const path = dbFile('unmigratable')
    withBetterSqlite(
      `const db = new Database(input.path); db.pragma('journal_mode = WAL')
      db.exec('CREATE TABLE oauth_tokens (id TEXT PRIMARY KEY, tokens TEXT)'); db.close(); console.log('null')`,
      { path },
    )
    const messages = new Set()
    for (let i = 0; i < 20; i++) {
      assert.throws(
        () => new OAuthStore(USER, { dbPath: path }),
        (e) => {
          messages.add(e.message)
          return e.code === 'ERR_HOOT_DB'
        },
      )
    }
    assert.equal(messages.size, 1)
    assert.match([...messages][0], /table oauth_tokens has no server_id column .*Rename or drop that table/)
    assert.deepEqual(
      readdirSync(join(path, '..')).filter((f) => f.includes('pre-migration')),
      [],
    )
  })

  test('user_version 1 over legacy tables: inspect, doctor and migrate agree it needs migrating', () => {
    const path = dbFile('v1')
    makeLegacyDb(path, 2)
    withBetterSqlite(
      `const db = new Database(input.path); db.pragma('user_version = 1'); db.close(); console.log('null')`,
      {
        path,
      },
    )
    const status = inspectDatabase(path)
    assert.equal(status.upToDate, false)
    assert.deepEqual(status.legacyTables, ['oauth_tokens', 'oauth_client_info', 'oauth_verifiers'])
    const report = migrateDatabase(path)
    assert.equal(report.migrated, true)
    assert.equal(report.tokens, 2)
    assert.equal(inspectDatabase(path).upToDate, true)
    assert.deepEqual(new OAuthStore(report.legacyUserId, { dbPath: path }).tokens('s1'), { access_token: 't1' })
  })
})

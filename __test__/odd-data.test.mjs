// Odd data left in a database by hand or by another program: a stored value that is not JSON is a
// coded ERR_HOOT_DB that quotes none of it, and a hoot-core table that is a view (say, a recursive
// one that never ends) is refused at open, so nothing hangs on it. The file is changed with the
// real sqlite3 CLI, from another process, as an operator would.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import * as hoot from '../lib/index.js'
import { createDatabaseAdapter } from '../lib/hoot.js'
import * as sqlite from '../lib/sqlite.js'
import { USER, runIsolated, tempDir } from './helpers.mjs'
import { admin, freshDatabase, postgresAvailable } from './postgres.mjs'

const TOKEN = 'secret-access-token-do-not-leak'
const sqlite3 = (path, sql) => execFileSync('sqlite3', [path, sql], { encoding: 'utf8', timeout: 10_000 })

function assertCodedWithoutValue(error) {
  assert.equal(error.code, 'ERR_HOOT_DB')
  assert.ok(!error.message.includes(TOKEN.slice(0, 6)), error.message)
  return true
}

test('a stored value that is not JSON: ERR_HOOT_DB, quoting none of it, on every read path', async () => {
  const dbPath = join(tempDir('odd'), 'hoot-mcp.db')
  const store = new hoot.OAuthStore(USER, { dbPath })
  store.saveTokens('s', { access_token: 'a' })
  store.saveServerConfig('s', { url: 'https://example.com' })
  sqlite3(dbPath, `UPDATE oauth_tokens SET tokens = '${TOKEN}'; UPDATE server_configs SET config = '${TOKEN}'`)
  assert.throws(() => store.tokens('s'), assertCodedWithoutValue)
  assert.throws(() => store.serverConfig('s'), assertCodedWithoutValue)
  const db = hoot.openDatabase(dbPath)
  await assert.rejects(db.store(USER).tokens('s'), assertCodedWithoutValue)
  const adapter = createDatabaseAdapter({ dbPath })
  await assert.rejects(adapter.getOAuthTokens(USER, 's'), assertCodedWithoutValue)
  sqlite.closeDatabase(dbPath)
})

test('a hoot-core table that is a never-ending view is refused at open; nothing hangs', () => {
  const dbPath = join(tempDir('odd-view'), 'hoot-mcp.db')
  // A current database first, then its tokens table swapped for a recursive view.
  runIsolated(
    `new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} }).saveTokens('s', { a: 1 })
     console.log('{}')`,
    { timeout: 20_000 },
  )
  sqlite3(
    dbPath,
    `DROP TABLE oauth_tokens; CREATE VIEW oauth_tokens AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)
     SELECT '${USER}' AS user_id, 's' || n AS server_id, '{}' AS tokens FROM r`,
  )
  const outcome = runIsolated(
    `const path = ${JSON.stringify(dbPath)}
     const codes = {}
     const attempt = (name, f) => { try { f(); codes[name] = 'no error' } catch (e) { codes[name] = e.code } }
     attempt('store', () => new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: path }).tokens('s'))
     attempt('inspect', () => sqlite.inspectDatabase(path))
     attempt('activity', () => sqlite.activitySummary({ dbPath: path }))
     attempt('purge', () => sqlite.purgeInactiveUsers({ dbPath: path, inactiveDays: 1 }))
     console.log(JSON.stringify(codes))`,
    { timeout: 20_000 },
  )
  assert.deepEqual(outcome, {
    store: 'ERR_HOOT_DB',
    inspect: 'ERR_HOOT_DB',
    activity: 'ERR_HOOT_DB',
    purge: 'ERR_HOOT_DB',
  })
})

describe('on PostgreSQL', { timeout: 60_000 }, () => {
  if (!postgresAvailable('odd data')) return
  test('a stored value that is not JSON: ERR_HOOT_DB, quoting none of it', async () => {
    const url = await freshDatabase('odd')
    const db = hoot.openDatabase(url)
    try {
      await db.store(USER).saveTokens('s', { access_token: 'a' })
      await admin(`UPDATE oauth_tokens SET tokens = '${TOKEN}'`, [], url)
      await assert.rejects(db.store(USER).tokens('s'), assertCodedWithoutValue)
    } finally {
      await db.close()
    }
  })
})

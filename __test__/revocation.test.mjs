// Revocation across restarts and at the moment it happens: a restarted process refuses a revoked
// token from its first verification (before any store opens the database, and on PostgreSQL
// before loadKeys resolves), and a token issued right after "forget me" or revokeUserTokens works.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import { USER, runIsolatedAsync, tempDir } from './helpers.mjs'
import { freshDatabase, postgresAvailable } from './postgres.mjs'

/** A HOME of its own (default keys in ~/.hoot/keys) and a database file, shared by every process of a test. */
function installation() {
  const home = tempDir('revocation')
  return { HOME: home, HOOT_DB_PATH: join(home, '.hoot', 'hoot-mcp.db'), HOOT_DATABASE_URL: '' }
}

test('a restarted process refuses a revoked token at its first verification, before opening the database', async () => {
  const env = installation()
  const { token } = await runIsolatedAsync(
    `const token = hoot.issueToken(${JSON.stringify(USER)})
     new hoot.OAuthStore(${JSON.stringify(USER)}).deleteAll({ revokeTokens: true })
     console.log(JSON.stringify({ token }))`,
    env,
  )
  // No loadKeys, no store: the first thing the new process does is verify (a request's middleware).
  const first = await runIsolatedAsync(`console.log(JSON.stringify(hoot.verifyToken(${JSON.stringify(token)})))`, env)
  assert.equal(first.valid, false)
  assert.equal(first.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED')
  const loaded = await runIsolatedAsync(
    `hoot.loadKeys()
     console.log(JSON.stringify(hoot.verifyToken(${JSON.stringify(token)})))`,
    env,
  )
  assert.equal(loaded.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED')
})

test('"forget me", then a token at once: the new token verifies, here and in a restarted process', async () => {
  const env = installation()
  const { token, valid } = await runIsolatedAsync(
    `new hoot.OAuthStore(${JSON.stringify(USER)}).saveTokens('s', { access_token: 'a' })
     new hoot.OAuthStore(${JSON.stringify(USER)}).deleteAll({ revokeTokens: true })
     const token = hoot.issueToken(${JSON.stringify(USER)})
     console.log(JSON.stringify({ token, valid: hoot.verifyToken(token).valid }))`,
    env,
  )
  assert.equal(valid, true, 'the browser asking again in the same second is not handed a dead token')
  const later = await runIsolatedAsync(`console.log(JSON.stringify(hoot.verifyToken(${JSON.stringify(token)})))`, env)
  assert.equal(later.valid, true)
})

test('a transfer code made right after "forget me" with the new token redeems', async () => {
  const env = installation()
  const result = await runIsolatedAsync(
    `const store = new hoot.OAuthStore(${JSON.stringify(USER)})
     store.deleteAll({ revokeTokens: true })
     const token = hoot.issueToken(${JSON.stringify(USER)})
     const { payload } = hoot.verifyToken(token)
     const { code } = store.createTransferCode({ tokenIssuedAt: payload.iat })
     console.log(JSON.stringify(sqlite.redeemTransferCode(code)))`,
    env,
  )
  assert.equal(result.userId, USER)
})

describe('on PostgreSQL', { timeout: 60_000 }, () => {
  if (!postgresAvailable('revocation')) return
  test('a restarted replica refuses a revoked token as soon as loadKeys resolves', async () => {
    const url = await freshDatabase('revocation')
    const env = { HOOT_DATABASE_URL: url, HOME: tempDir('revocation-pg') }
    const { token } = await runIsolatedAsync(
      `const db = hoot.openDatabase()
       await db.loadKeys()
       const token = await hoot.issueTokenAsync(${JSON.stringify(USER)})
       await db.store(${JSON.stringify(USER)}).deleteAll({ revokeTokens: true })
       await db.close()
       console.log(JSON.stringify({ token }))`,
      env,
    )
    const first = await runIsolatedAsync(
      `const db = hoot.openDatabase()
       await db.loadKeys()
       const result = hoot.verifyToken(${JSON.stringify(token)})
       await db.close()
       console.log(JSON.stringify(result))`,
      env,
    )
    assert.equal(first.valid, false)
    assert.equal(first.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED')
  })

  test('"forget me" then a token at once: it verifies', async () => {
    const url = await freshDatabase('revocation_fresh')
    const result = await runIsolatedAsync(
      `const db = hoot.openDatabase()
       await db.loadKeys()
       await db.store(${JSON.stringify(USER)}).deleteAll({ revokeTokens: true })
       const token = await hoot.issueTokenAsync(${JSON.stringify(USER)})
       const valid = hoot.verifyToken(token).valid
       await db.close()
       console.log(JSON.stringify({ valid }))`,
      { HOOT_DATABASE_URL: url, HOME: tempDir('revocation-pg') },
    )
    assert.equal(result.valid, true)
  })
})

test('a restarted process on a database of its own path refuses a revoked token once db.loadKeys() resolves', async () => {
  const env = installation()
  const dbPath = join(env.HOME, 'elsewhere', 'hoot.db')
  const { token } = await runIsolatedAsync(
    `const db = hoot.openDatabase(${JSON.stringify(dbPath)})
     await db.loadKeys()
     const token = hoot.issueToken(${JSON.stringify(USER)})
     await db.revokeUserTokens(${JSON.stringify(USER)})
     console.log(JSON.stringify({ token }))`,
    env,
  )
  const first = await runIsolatedAsync(
    `const db = hoot.openDatabase(${JSON.stringify(dbPath)})
     await db.loadKeys()
     console.log(JSON.stringify(hoot.verifyToken(${JSON.stringify(token)})))`,
    env,
  )
  assert.equal(first.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED')
})

test('a restarted server whose adapter is over openDatabase(path) refuses a revoked token from its first request', async () => {
  const env = installation()
  const dbPath = join(env.HOME, 'elsewhere', 'hoot.db')
  const hootEntry = JSON.stringify(new URL('../lib/hoot.js', import.meta.url).href)
  const { token } = await runIsolatedAsync(
    `const db = hoot.openDatabase(${JSON.stringify(dbPath)})
     const token = hoot.issueToken(${JSON.stringify(USER)})
     await db.revokeUserTokens(${JSON.stringify(USER)})
     console.log(JSON.stringify({ token }))`,
    env,
  )
  // Hoot's server makes its adapter at start-up, then serves: no store call before the first
  // verification, so the adapter itself must have opened the file.
  const first = await runIsolatedAsync(
    `const { createDatabaseAdapter } = await import(${hootEntry})
     createDatabaseAdapter(hoot.openDatabase(${JSON.stringify(dbPath)}))
     console.log(JSON.stringify(hoot.verifyToken(${JSON.stringify(token)})))`,
    env,
  )
  assert.equal(first.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED')
})

test('closing the default database leaves another one followed: its revocations still reach this process', async () => {
  const env = installation()
  const other = join(env.HOME, 'other', 'hoot.db')
  const sqliteEntry = JSON.stringify(new URL('../lib/sqlite.js', import.meta.url).href)
  const outcome = await runIsolatedAsync(
    `import { execFileSync } from 'node:child_process'
     const fallback = hoot.openDatabase()
     const db = hoot.openDatabase(${JSON.stringify(other)})
     await fallback.loadKeys()
     await db.ready()
     const token = hoot.issueToken(${JSON.stringify(USER)})
     await fallback.close()
     // Another process revokes the user in the other database, which this one still has open.
     execFileSync(process.execPath, ['--input-type=module', '-e',
       'const s = await import(' + ${JSON.stringify(sqliteEntry)} + '); s.revokeUserTokens(' + ${JSON.stringify(JSON.stringify(USER))} + ', { dbPath: ' + ${JSON.stringify(JSON.stringify(other))} + ' })'])
     // The poller reads every open database each 2 s: bounded at 15 s, the answer is awaited, not slept for.
     const until = Date.now() + 15_000
     let code
     while ((code = hoot.verifyToken(token).code) === undefined && Date.now() < until) {
       await new Promise((resolve) => setTimeout(resolve, 100))
     }
     await db.close()
     console.log(JSON.stringify({ code }))`,
    env,
  )
  assert.equal(outcome.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED')
})

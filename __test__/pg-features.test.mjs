// The database-level operations SQLite had alone, on PostgreSQL's native handle
// (`postgresOpen(url)`): activity counts and purge, moveUserData, legacy adoption
// (legacyTransferCode, redeemed into a browser's user), inspect (doctor's report) and encryption
// at rest's transitions (encrypt, encrypt --rotate, decrypt). Each resolves to the shape SQLite's
// package function returns (compared key for key on a SQLite file run through the same steps),
// rejects with the same codes, and refuses a bad argument with its code (thrown as the arguments are
// read, or rejected by the store core's rules: the Database of lib/database.js rejects either way).
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import binding from '../lib/native.js'
import {
  OAuthStore,
  activitySummary,
  closeDatabase,
  decryptDatabase,
  encryptDatabase,
  inspectDatabase,
  legacyTransferCode,
  moveUserData,
  purgeInactiveUsers,
  redeemTransferCode,
} from '../lib/sqlite.js'
import { makeLegacyDb, tempDir } from './helpers.mjs'
import { PG_TIMEOUT, freshDatabase, postgresAvailable, rows } from './postgres.mjs'

// A home of its own: the encryption key file and the store secret are made in ~/.hoot/keys.
process.env.HOME = tempDir('pg-features-home')
delete process.env.HOOT_ENCRYPTION_KEY
delete process.env.HOOT_ENCRYPT_AT_REST

const DAY = 86_400
const now = () => Math.floor(Date.now() / 1000)
const keysOf = (value) => Object.keys(value).sort()
/** A fresh PostgreSQL database and its native handle. */
const fresh = async (label, params) => {
  const url = await freshDatabase(label, params)
  return { url, db: binding.postgresOpen(url) }
}
const parse = (text) => (text === null ? undefined : JSON.parse(text))

describe('PostgreSQL: the database-level operations', () => {
  if (!postgresAvailable('pg-features')) return

  test('activitySummary and purgeInactiveUsers count and remove as on SQLite', PG_TIMEOUT, async () => {
    const { url, db } = await fresh('purge')
    const [alice, bob, carol] = [randomUUID(), randomUUID(), randomUUID()]
    for (const user of [alice, bob, carol]) {
      const store = db.store(user)
      await store.saveTokens('srv', { access_token: 't' })
      await store.saveServerConfig('srv', { url: 'https://mcp.example' })
    }
    await db.store(alice).touch()
    await db.store(bob).touch()
    await rows(url, 'UPDATE hoot_users SET last_seen = $1 WHERE user_id = $2', [now() - 91 * DAY, alice])
    await rows(url, 'UPDATE hoot_users SET last_seen = $1 WHERE user_id = $2', [now() - 8 * DAY, bob])
    const summary = await db.activitySummary()
    assert.deepEqual(summary, { users: 3, active1d: 0, active7d: 0, active30d: 1, untracked: 1 })

    const dry = await db.purgeInactiveUsers({ inactiveDays: 90, dryRun: true })
    assert.deepEqual(dry, { users: 1, rows: 2, adopted: 1, dryRun: true })
    assert.equal(parse(await db.store(alice).tokensText('srv')).access_token, 't', 'a dry run changes nothing')
    const done = await db.purgeInactiveUsers({ inactiveDays: 90 })
    assert.deepEqual(done, { users: 1, rows: 2, adopted: 1, dryRun: false })
    assert.deepEqual(await db.store(alice).servers(), [])
    assert.deepEqual(await db.activitySummary(), { users: 2, active1d: 1, active7d: 1, active30d: 2, untracked: 0 })

    // The same shapes as SQLite's package functions.
    const dbPath = join(tempDir('pg-features-purge'), 'hoot.db')
    new OAuthStore(alice, { dbPath }).saveTokens('srv', {})
    assert.deepEqual(keysOf(activitySummary({ dbPath })), keysOf(summary))
    assert.deepEqual(keysOf(purgeInactiveUsers({ inactiveDays: 90, dbPath })), keysOf(done))
    closeDatabase(dbPath)

    // Bad options throw before anything is sent, with SQLite's codes.
    await assert.rejects(async () => db.purgeInactiveUsers({}), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' })
    await assert.rejects(async () => db.purgeInactiveUsers(), { code: 'ERR_INVALID_ARG_TYPE' })
    await assert.rejects(async () => db.purgeInactiveUsers({ inactiveDays: 0 }), {
      code: 'ERR_INVALID_ARG_VALUE',
      name: 'RangeError',
    })
    await assert.rejects(async () => db.purgeInactiveUsers({ inactiveDays: 1.5 }), { code: 'ERR_INVALID_ARG_VALUE' })
    await assert.rejects(async () => db.purgeInactiveUsers({ inactiveDays: 90, dryRun: 'yes' }), {
      code: 'ERR_INVALID_ARG_TYPE',
    })
    db.close()
  })

  test('moveUserData merges by the chosen rule, in one transaction', PG_TIMEOUT, async () => {
    const { db } = await fresh('move')
    const [alice, bob] = [randomUUID(), randomUUID()]
    await db.store(alice).saveTokens('shared', { who: 'alice' })
    await db.store(alice).saveTokens('mine', { who: 'alice' })
    await db.store(alice).linkAccount('github|1')
    await db.store(bob).saveTokens('shared', { who: 'bob' })
    await assert.rejects(db.moveUserData(alice, bob), { code: 'ERR_INVALID_ARG_VALUE', message: /1 server\(s\)/ })
    assert.equal(parse(await db.store(alice).tokensText('mine')).who, 'alice', 'a refused move changes nothing')

    const report = await db.moveUserData(alice.toUpperCase(), bob, { onConflict: 'keep-target' })
    assert.deepEqual(report, { moved: 2, replaced: 0, dropped: 1, conflicts: 1 })
    assert.equal(parse(await db.store(bob).tokensText('shared')).who, 'bob')
    assert.equal(parse(await db.store(bob).tokensText('mine')).who, 'alice')
    assert.deepEqual(await db.store(alice).servers(), [])
    assert.equal(await db.userIdForAccount('github|1'), bob)

    await db.store(alice).saveTokens('x', { v: 2 })
    await db.store(bob).saveTokens('x', { v: 1 })
    assert.deepEqual(await db.moveUserData(alice, bob, { onConflict: 'take-source' }), {
      moved: 1,
      replaced: 1,
      dropped: 0,
      conflicts: 1,
    })
    assert.equal(parse(await db.store(bob).tokensText('x')).v, 2)

    // The shape of SQLite's.
    const dbPath = join(tempDir('pg-features-move'), 'hoot.db')
    new OAuthStore(alice, { dbPath }).saveTokens('srv', {})
    assert.deepEqual(keysOf(moveUserData(alice, bob, { dbPath })), keysOf(report))
    closeDatabase(dbPath)

    await assert.rejects(async () => db.moveUserData(alice, alice), { code: 'ERR_INVALID_ARG_VALUE' })
    await assert.rejects(async () => db.moveUserData('nope', bob), { code: 'ERR_INVALID_USER_ID' })
    await assert.rejects(async () => db.moveUserData(alice, 42), { code: 'ERR_INVALID_ARG_TYPE' })
    await assert.rejects(async () => db.moveUserData(alice, bob, { onConflict: 'merge' }), {
      code: 'ERR_INVALID_ARG_VALUE',
    })
    db.close()
  })

  test("a copied legacy file's user is adopted by a browser through legacyTransferCode", PG_TIMEOUT, async () => {
    const { db } = await fresh('adopt')
    assert.equal(await db.legacyTransferCode(), null, 'no legacy data')
    const file = join(tempDir('pg-features-legacy'), 'hoot-mcp.db')
    makeLegacyDb(file, 5)
    const copied = await db.copyFromSqlite(file)
    assert.match(copied.legacyUserId, /^legacy-user-\d+$/)
    const browser = randomUUID()
    await db.store(browser).saveTokens('s0', { access_token: 'mine' })

    const made = await db.legacyTransferCode({ ttlSeconds: 300 })
    assert.equal(made.legacyUserId, copied.legacyUserId)
    assert.match(made.code, /^[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}$/)
    assert.ok(Math.abs(made.expiresAt - (now() + 300)) <= 5)
    await assert.rejects(db.redeemTransferCode(made.code), { code: 'ERR_INVALID_ARG_VALUE', message: /intoUserId/ })
    await assert.rejects(async () => db.redeemTransferCode(made.code, { intoUserId: made.legacyUserId }), {
      code: 'ERR_INVALID_USER_ID',
    })
    const redeemed = await db.redeemTransferCode(made.code, { intoUserId: browser })
    assert.deepEqual(redeemed, { userId: browser, moved: { moved: 12, replaced: 0, dropped: 3, conflicts: 1 } })
    assert.equal((await db.store(browser).servers()).length, 5)
    assert.equal(parse(await db.store(browser).tokensText('s0')).access_token, 'mine', "the browser's own stays")
    assert.equal(parse(await db.store(browser).tokensText('s4')).access_token, 't4')
    assert.equal(await db.legacyTransferCode(), null, 'nothing legacy is left')
    await assert.rejects(db.redeemTransferCode(made.code, { intoUserId: browser }), { code: 'ERR_HOOT_TRANSFER_CODE' })
    await assert.rejects(async () => db.legacyTransferCode({ ttlSeconds: 5 }), { code: 'ERR_INVALID_ARG_VALUE' })

    // The shapes of SQLite's.
    const dbPath = join(tempDir('pg-features-adopt'), 'hoot-mcp.db')
    makeLegacyDb(dbPath, 1)
    const sqliteCode = legacyTransferCode({ dbPath })
    assert.deepEqual(keysOf(sqliteCode), keysOf(made))
    assert.deepEqual(keysOf(redeemTransferCode(sqliteCode.code, { intoUserId: browser, dbPath })), keysOf(redeemed))
    closeDatabase(dbPath)
    db.close()
  })

  test('inspect reads the schema and the figures without making anything', PG_TIMEOUT, async () => {
    const { url, db } = await fresh('inspect')
    const empty = await db.inspect()
    assert.equal(empty.path, `PostgreSQL at ${new URL(url).host}${new URL(url).pathname}`)
    assert.deepEqual(
      { ...empty, missingTables: empty.missingTables.length },
      {
        path: empty.path,
        exists: true,
        schemaVersion: 0,
        legacyTables: [],
        missingTables: 19,
        mixedCaseTables: [],
        upToDate: false,
      },
      'no activity or encryption figures until every table is there (left out, as SQLite leaves them)',
    )
    assert.deepEqual(await rows(url, 'SELECT tablename FROM pg_tables WHERE schemaname = current_schema()'), [])

    await db.store(randomUUID()).saveTokens('srv', {})
    const status = await db.inspect()
    assert.equal(status.upToDate, true)
    assert.equal(status.schemaVersion, 3)
    assert.deepEqual(status.activity, { users: 1, active1d: 0, active7d: 0, active30d: 0, untracked: 1 })
    assert.deepEqual(status.encryption, { encrypted: false, keyIds: [], sealed: {}, plaintext: 1, keptAside: 0 })
    // The shape of SQLite's.
    const dbPath = join(tempDir('pg-features-inspect'), 'hoot.db')
    new OAuthStore(randomUUID(), { dbPath }).saveTokens('srv', {})
    const sqlite = inspectDatabase(dbPath)
    assert.deepEqual(keysOf(sqlite), keysOf(status))
    assert.deepEqual(keysOf(sqlite.encryption), keysOf(status.encryption))
    closeDatabase(dbPath)
    db.close()
  })

  test('encrypt, encrypt --rotate and decrypt reach every value, and a replica follows each', PG_TIMEOUT, async () => {
    const { url, db } = await fresh('encrypt')
    // A second pool on the same database: a replica that opened it before each change.
    const replica = binding.postgresOpen(`${url}&application_name=replica`)
    const [alice, bob] = [randomUUID(), randomUUID()]
    await db.store(alice).saveTokens('srv', { refresh_token: 'alice-secret' })
    await replica.store(bob).saveServerConfig('srv', { url: 'https://mcp.example' })
    await db.loadKeys()
    const stored = async (user) =>
      (await rows(url, 'SELECT tokens FROM oauth_tokens WHERE user_id = $1', [user]))[0].tokens
    const sealedWith = (text) => /^hoot-sealed:1:([0-9a-f]{16}):/.exec(text)?.[1]

    const on = await db.encrypt()
    assert.deepEqual(keysOf(on), ['keyIds', 'opened', 'sealed'])
    assert.equal(on.keyIds.length, 1)
    const [k1] = on.keyIds
    assert.deepEqual(on, { sealed: 3, opened: 0, keyIds: [k1] }, 'two values and the signing key')
    assert.equal(sealedWith(await stored(alice)), k1)
    assert.ok(!(await stored(alice)).includes('alice-secret'))
    assert.equal(parse(await replica.store(alice).tokensText('srv')).refresh_token, 'alice-secret')
    await replica.store(bob).saveTokens('srv', { refresh_token: 'bob-1' })
    assert.equal(sealedWith(await stored(bob)), k1, "the replica's next write is sealed")
    assert.deepEqual((await db.inspect()).encryption, {
      encrypted: true,
      keyIds: [k1],
      sealed: { [k1]: 4 },
      plaintext: 0,
      keptAside: 0,
    })

    const rotated = await db.encrypt({ rotate: true })
    const [k2] = rotated.keyIds
    assert.notEqual(k2, k1)
    assert.deepEqual(rotated, { sealed: 4, opened: 0, keyIds: [k2] })
    await replica.store(bob).saveTokens('srv', { refresh_token: 'bob-2' })
    assert.equal(sealedWith(await stored(bob)), k2, 'the replica seals with the new key')

    const off = await db.decrypt()
    assert.deepEqual(off, { sealed: 0, opened: 4, keyIds: [] })
    assert.deepEqual(JSON.parse(await stored(alice)), { refresh_token: 'alice-secret' })
    await replica.store(bob).saveTokens('srv', { refresh_token: 'bob-3' })
    assert.deepEqual(JSON.parse(await stored(bob)), { refresh_token: 'bob-3' }, 'the replica writes plain again')
    const [signing] = await rows(url, 'SELECT private_jwk FROM hoot_signing_keys')
    assert.equal(sealedWith(signing.private_jwk), undefined)
    assert.equal((await db.inspect()).encryption.encrypted, false)

    // The shapes of SQLite's.
    const dbPath = join(tempDir('pg-features-encrypt'), 'hoot.db')
    new OAuthStore(alice, { dbPath }).saveTokens('srv', {})
    assert.deepEqual(keysOf(encryptDatabase({ dbPath })), keysOf(on))
    assert.deepEqual(keysOf(decryptDatabase({ dbPath })), keysOf(off))
    closeDatabase(dbPath)

    await assert.rejects(async () => db.encrypt({ rotate: 'yes' }), { code: 'ERR_INVALID_ARG_TYPE' })
    await assert.rejects(async () => db.encrypt(42), { code: 'ERR_INVALID_ARG_TYPE' })
    replica.close()
    db.close()
  })

  test('a database that cannot be reached rejects each with ERR_HOOT_DB', PG_TIMEOUT, async () => {
    const { url } = await fresh('gone')
    const missing = new URL(url)
    missing.pathname = `/hoot_test_missing_${randomUUID().slice(0, 8).replace(/-/g, '')}`
    const db = binding.postgresOpen(missing.toString(), { connectTimeoutMs: 2000 })
    for (const call of [
      () => db.activitySummary(),
      () => db.purgeInactiveUsers({ inactiveDays: 30 }),
      () => db.moveUserData(randomUUID(), randomUUID()),
      () => db.legacyTransferCode(),
      () => db.inspect(),
      () => db.encrypt(),
      () => db.decrypt(),
    ]) {
      await assert.rejects(call(), { code: 'ERR_HOOT_DB', message: /does not exist/ })
    }
    db.close()
  })
})

// The anonymous session's life: activity (touch), counts that name no one (activitySummary), and
// removing the data of users inactive for too long (purgeInactiveUsers, `hoot-core purge`), moving
// a user to another device (transfer codes), merging identities, legacy data, accounts, revocation.
// Timing rules (once per hour, the inactivity window) are tested with time as a parameter in the
// Rust core (src/store/tests.rs); these tests run the real exports, processes and CLI.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { test } from 'node:test'

import { OAuthStore, issueToken, loadKeys, migrateDatabase, verifyToken } from '../lib/index.js'
import {
  activitySummary,
  closeDatabase,
  inspectDatabase,
  legacyTransferCode,
  moveUserData,
  purgeInactiveUsers,
  redeemTransferCode,
  revokeUserTokens,
  userIdForAccount,
} from '../lib/sqlite.js'
import {
  delays,
  hootKeyFiles,
  killDuring,
  makeLegacyDb,
  root,
  runIsolatedAsync,
  tempDir,
  withBetterSqlite,
} from './helpers.mjs'

const cli = join(root, 'bin', 'hoot-core.js')

// The store secret (~/.hoot/keys/store-secret) of this process and the ones it starts: a home of
// the tests' own, never the runner's.
process.env.HOME = tempDir('sessions-home')
delete process.env.HOOT_STORE_SECRET

/** Sets a user's last activity `days` ago, through Hoot's own kind of SQL. */
function lastSeen(dbPath, userId, days) {
  withBetterSqlite(
    `const db = new Database(input.dbPath)
     const at = Math.floor(Date.now() / 1000) - input.days * 86400
     db.prepare('UPDATE hoot_users SET last_seen = ?, first_seen = min(first_seen, ?) WHERE user_id = ?').run(at, at, input.userId)
     db.close(); console.log('null')`,
    { dbPath, userId, days },
  )
}

test('touch records activity once per hour per process; the summary counts and names no one', () => {
  const dbPath = join(tempDir('touch'), 'hoot-mcp.db')
  const [alice, bob] = [randomUUID(), randomUUID()]
  const store = new OAuthStore(alice, { dbPath })
  assert.equal(store.touch(), true)
  assert.equal(store.touch(), false, 'the second call within the hour writes nothing')
  assert.equal(new OAuthStore(alice, { dbPath }).touch(), false, 'per user, not per store object')
  assert.equal(new OAuthStore(bob, { dbPath }).touch(), true)
  new OAuthStore(randomUUID(), { dbPath }).saveTokens('srv', { access_token: 't' })
  lastSeen(dbPath, bob, 10)
  const summary = activitySummary({ dbPath })
  assert.deepEqual(summary, { users: 3, active1d: 1, active7d: 1, active30d: 2, untracked: 1 })
  assert.deepEqual(inspectDatabase(dbPath).activity, summary, 'inspectDatabase (doctor) reads the same, read-only')
  assert.ok(!JSON.stringify(summary).includes(alice))
})

test('purgeInactiveUsers removes every row of the inactive users only, and a dry run changes nothing', () => {
  const dbPath = join(tempDir('purge'), 'hoot-mcp.db')
  const [gone, kept, untracked] = [randomUUID(), randomUUID(), randomUUID()]
  for (const id of [gone, kept, untracked]) {
    const store = new OAuthStore(id, { dbPath })
    store.saveTokens('srv', { access_token: id })
    store.saveServerConfig('srv', { url: 'u' })
    store.saveDiscoveryState('srv', { authorizationServerUrl: 'https://as.example/' })
    if (id !== untracked) store.touch()
  }
  lastSeen(dbPath, gone, 91)
  lastSeen(dbPath, kept, 89)
  assert.deepEqual(purgeInactiveUsers({ inactiveDays: 90, dryRun: true, dbPath }), {
    users: 1,
    rows: 3,
    adopted: 1,
    dryRun: true,
  })
  assert.deepEqual(new OAuthStore(gone, { dbPath }).servers(), ['srv'], 'the dry run removed nothing')
  assert.deepEqual(purgeInactiveUsers({ inactiveDays: 90, dbPath }), { users: 1, rows: 3, adopted: 1, dryRun: false })
  assert.deepEqual(new OAuthStore(gone, { dbPath }).servers(), [])
  assert.deepEqual(new OAuthStore(kept, { dbPath }).tokens('srv'), { access_token: kept })
  assert.deepEqual(
    new OAuthStore(untracked, { dbPath }).tokens('srv'),
    { access_token: untracked },
    'adopted, not purged',
  )
  assert.equal(activitySummary({ dbPath }).untracked, 0)
})

test('bad purge options throw with their codes and remove nothing', () => {
  const dbPath = join(tempDir('purge-bad'), 'hoot-mcp.db')
  const id = randomUUID()
  new OAuthStore(id, { dbPath }).saveTokens('srv', { access_token: 't' })
  for (const [opts, code] of [
    [undefined, 'ERR_INVALID_ARG_TYPE'],
    [{ dbPath }, 'ERR_INVALID_ARG_TYPE'],
    [{ inactiveDays: '90', dbPath }, 'ERR_INVALID_ARG_TYPE'],
    [{ inactiveDays: 0, dbPath }, 'ERR_INVALID_ARG_VALUE'],
    [{ inactiveDays: 1.5, dbPath }, 'ERR_INVALID_ARG_VALUE'],
    [{ inactiveDays: -3, dbPath }, 'ERR_INVALID_ARG_VALUE'],
    [{ inactiveDays: 90, dryRun: 'yes', dbPath }, 'ERR_INVALID_ARG_TYPE'],
  ]) {
    assert.throws(() => purgeInactiveUsers(opts), { code }, JSON.stringify(opts))
  }
  assert.deepEqual(new OAuthStore(id, { dbPath }).tokens('srv'), { access_token: 't' })
})

test('hoot-core purge and the doctor line', () => {
  const dbPath = join(tempDir('purge-cli'), 'hoot-mcp.db')
  const id = randomUUID()
  const store = new OAuthStore(id, { dbPath })
  store.saveTokens('srv', { access_token: 't' })
  store.touch()
  lastSeen(dbPath, id, 100)
  const run = (args) =>
    spawnSync(process.execPath, [cli, ...args], {
      encoding: 'utf8',
      env: { ...process.env, HOME: tempDir('purge-cli-home') },
    })
  const doctor = run(['doctor', '--db', dbPath])
  assert.match(doctor.stdout, /✓ users: 1 known, active in the last day 0, 7 days 0, 30 days 0/)
  const dry = run(['purge', '--inactive-days', '90', '--dry-run', '--db', dbPath])
  assert.equal(dry.status, 0, dry.stderr)
  assert.match(dry.stdout, /^Would remove 1 row\(s\) of 1 user\(s\) inactive for more than 90 days\.$/m)
  assert.equal(run(['purge', '--db', dbPath]).status, 2, 'without --inactive-days: wrong usage')
  assert.equal(run(['purge', '--inactive-days', 'x', '--db', dbPath]).status, 1)
  const done = run(['purge', '--inactive-days', '90', '--json', '--db', dbPath])
  assert.deepEqual(JSON.parse(done.stdout), { users: 1, rows: 1, adopted: 0, dryRun: false })
  assert.deepEqual(new OAuthStore(id, { dbPath }).servers(), [])
})

test('SIGKILL during a purge, at 6 random moments: every user is whole or gone, never half', async () => {
  for (const delay of delays(11, 6, 40)) {
    const dbPath = join(tempDir('kill-purge'), 'hoot-mcp.db')
    new OAuthStore(randomUUID(), { dbPath }).touch() // the schema, made by hoot-core
    // 4,000 users inactive for 100 days, three rows each, written in one go with Hoot's kind of SQL.
    withBetterSqlite(
      `const db = new Database(input.dbPath)
       const old = Math.floor(Date.now() / 1000) - 100 * 86400
       db.transaction(() => {
         for (let i = 0; i < 4000; i++) {
           const id = crypto.randomUUID()
           db.prepare('INSERT INTO oauth_tokens (user_id, server_id, tokens) VALUES (?, ?, ?)').run(id, 'srv', JSON.stringify({ access_token: 'a'.repeat(200) }))
           db.prepare('INSERT INTO oauth_client_info (user_id, server_id, client_info) VALUES (?, ?, ?)').run(id, 'srv', JSON.stringify({ client_id: id }))
           db.prepare('INSERT INTO server_configs (user_id, server_id, config, created_at) VALUES (?, ?, ?, ?)').run(id, 'srv', '{}', old)
           db.prepare('INSERT INTO hoot_users (user_id, first_seen, last_seen) VALUES (?, ?, ?)').run(id, old, old)
         }
       })()
       db.close(); console.log('null')`,
      { dbPath },
    )
    await killDuring(
      `writeSync(1, 'purging\\n')
       sqlite.purgeInactiveUsers({ inactiveDays: 90, dbPath: ${JSON.stringify(dbPath)} })
       writeSync(1, 'purged\\n')`,
      delay,
    )
    const counts = withBetterSqlite(
      `const db = new Database(input.dbPath)
       const rows = db.prepare("SELECT user_id, count(*) AS n FROM (SELECT user_id FROM oauth_tokens UNION ALL SELECT user_id FROM oauth_client_info UNION ALL SELECT user_id FROM server_configs) GROUP BY user_id").all()
       db.close(); console.log(JSON.stringify([...new Set(rows.map((r) => r.n))]))`,
      { dbPath },
    )
    assert.ok(
      counts.every((n) => n === 3),
      `a user was left with ${counts} of 3 rows`,
    )
  }
})

// ----------------------------------------------------------------------------------------------
// Moving to another device, merging identities, legacy data, accounts, revocation.

test('a transfer code moves a user to another process once; a second redemption, even concurrent, fails', async () => {
  const dbPath = join(tempDir('transfer'), 'hoot-mcp.db')
  const alice = randomUUID()
  const { code, expiresAt } = new OAuthStore(alice, { dbPath }).createTransferCode()
  assert.match(code, /^[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}$/)
  assert.ok(Math.abs(expiresAt - (Date.now() / 1000 + 600)) < 5, 'ten minutes')
  const redeem = `try { console.log(JSON.stringify(sqlite.redeemTransferCode(${JSON.stringify(code.toLowerCase())}, { dbPath: ${JSON.stringify(dbPath)} }))) }
    catch (e) { console.log(JSON.stringify({ code: e.code })) }`
  const results = await Promise.all([runIsolatedAsync(redeem), runIsolatedAsync(redeem)])
  assert.deepEqual(
    results.map((r) => r.userId ?? r.code).sort(),
    ['ERR_HOOT_TRANSFER_CODE', alice].sort(),
    'exactly one of two concurrent redemptions succeeds',
  )
  assert.throws(() => redeemTransferCode(code, { dbPath }), { code: 'ERR_HOOT_TRANSFER_CODE' })
})

test('failed redemptions are throttled across processes, the right code included', async () => {
  const dbPath = join(tempDir('throttle'), 'hoot-mcp.db')
  const { code } = new OAuthStore(randomUUID(), { dbPath }).createTransferCode()
  const failures = await runIsolatedAsync(`
    let failed = 0
    for (let i = 0; i < 100; i++) {
      try { sqlite.redeemTransferCode('2222-2222-' + String(i).padStart(4, '2').replace(/[01]/g, '3'), { dbPath: ${JSON.stringify(dbPath)} }) }
      catch (e) { if (e.code === 'ERR_HOOT_TRANSFER_CODE') failed++ }
    }
    console.log(failed)`)
  assert.equal(failures, 100)
  assert.throws(() => redeemTransferCode(code, { dbPath }), {
    code: 'ERR_HOOT_TRANSFER_THROTTLED',
    message: /try again in \d+ seconds/,
  })
})

test('revocation ends a pending transfer code, one made by a process that had not yet learnt of it included', async () => {
  const dbPath = join(tempDir('revoked-code'), 'hoot-mcp.db')
  const files = await hootKeyFiles(tempDir('revoked-code-keys'))
  loadKeys({ privateKeyPath: files.privateKeyPath, jwksPath: files.jwksPath })
  const alice = randomUUID()
  const stolen = verifyToken(issueToken(alice))
  assert.equal(stolen.valid, true)
  const iat = stolen.payload.iat
  const store = new OAuthStore(alice, { dbPath })
  const { code } = store.createTransferCode({ tokenIssuedAt: iat })
  revokeUserTokens(alice, { dbPath })
  assert.throws(() => redeemTransferCode(code, { dbPath }), { code: 'ERR_HOOT_TRANSFER_CODE' })

  // Another process revokes; this one, before its poll learns of it, makes a code from the
  // stolen token: the redemption reads the revocation and refuses it.
  const bob = randomUUID()
  const bobIat = verifyToken(issueToken(bob)).payload.iat
  await runIsolatedAsync(
    `sqlite.revokeUserTokens(${JSON.stringify(bob)}, { dbPath: ${JSON.stringify(dbPath)} }); console.log(1)`,
  )
  const late = new OAuthStore(bob, { dbPath }).createTransferCode({ tokenIssuedAt: bobIat })
  assert.throws(() => redeemTransferCode(late.code, { dbPath }), { code: 'ERR_HOOT_TRANSFER_CODE' })

  // Forget me ends the code too.
  const carol = randomUUID()
  const carolStore = new OAuthStore(carol, { dbPath })
  const forgotten = carolStore.createTransferCode({ tokenIssuedAt: verifyToken(issueToken(carol)).payload.iat })
  carolStore.deleteAll({ revokeTokens: true })
  assert.throws(() => redeemTransferCode(forgotten.code, { dbPath }), { code: 'ERR_HOOT_TRANSFER_CODE' })
  assert.throws(() => store.createTransferCode({ tokenIssuedAt: -1 }), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => store.createTransferCode({ tokenIssuedAt: '1' }), { code: 'ERR_INVALID_ARG_TYPE' })
})

test("one source's failures cannot get another source's valid code refused", () => {
  const dbPath = join(tempDir('per-source'), 'hoot-mcp.db')
  const alice = randomUUID()
  const { code } = new OAuthStore(alice, { dbPath }).createTransferCode()
  const outcomes = {}
  for (let i = 0; i < 150; i++) {
    try {
      redeemTransferCode('2222-2222-2222', { dbPath, source: '203.0.113.9' })
    } catch (e) {
      outcomes[e.code] = (outcomes[e.code] ?? 0) + 1
    }
  }
  assert.deepEqual(outcomes, { ERR_HOOT_TRANSFER_CODE: 10, ERR_HOOT_TRANSFER_THROTTLED: 140 })
  assert.equal(redeemTransferCode(code, { dbPath, source: '198.51.100.7' }).userId, alice)
  assert.throws(() => redeemTransferCode(code, { dbPath, source: '' }), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => redeemTransferCode(code, { dbPath, source: 7 }), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('a code or an account link planted by a database writer without the store secret is refused', () => {
  const dbPath = join(tempDir('planted'), 'hoot-mcp.db')
  const victim = randomUUID()
  const store = new OAuthStore(victim, { dbPath })
  store.linkAccount('github|1')
  const planted = withBetterSqlite(
    `const { createHash } = require('node:crypto')
    const db = new Database(input.dbPath)
    const hash = createHash('sha256').update('23456789ABCD').digest('hex')
    const now = Math.floor(Date.now() / 1000)
    db.prepare('INSERT INTO hoot_transfer_codes (code_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)')
      .run(hash, input.victim, now, now + 600)
    db.prepare('INSERT INTO hoot_accounts (account_id, user_id, linked_at) VALUES (?, ?, ?)').run('evil|1', input.victim, 0)
    db.close()
    console.log(JSON.stringify('2345-6789-ABCD'))`,
    { dbPath, victim },
  )
  assert.throws(() => redeemTransferCode(planted, { dbPath }), { code: 'ERR_HOOT_TRANSFER_CODE' })
  assert.equal(userIdForAccount('evil|1', { dbPath }), undefined)
  assert.equal(userIdForAccount('github|1', { dbPath }), victim)
})

test('transfer codes and moves refuse bad input with their codes, and write nothing', () => {
  const dbPath = join(tempDir('transfer-bad'), 'hoot-mcp.db')
  const [alice, bob] = [randomUUID(), randomUUID()]
  const store = new OAuthStore(alice, { dbPath })
  store.saveTokens('srv', { access_token: 'a' })
  for (const [call, code] of [
    [() => store.createTransferCode({ ttlSeconds: 5 }), 'ERR_INVALID_ARG_VALUE'],
    [() => store.createTransferCode({ ttlSeconds: 7200 }), 'ERR_INVALID_ARG_VALUE'],
    [() => store.createTransferCode({ ttlSeconds: '60' }), 'ERR_INVALID_ARG_TYPE'],
    [() => redeemTransferCode(42, { dbPath }), 'ERR_INVALID_ARG_TYPE'],
    [() => redeemTransferCode('', { dbPath }), 'ERR_HOOT_TRANSFER_CODE'],
    [() => redeemTransferCode('x'.repeat(5000), { dbPath }), 'ERR_HOOT_TRANSFER_CODE'],
    [() => redeemTransferCode('2222-2222-2222', { dbPath, intoUserId: 'nope' }), 'ERR_INVALID_USER_ID'],
    [() => moveUserData(alice, alice.toUpperCase(), { dbPath }), 'ERR_INVALID_ARG_VALUE'],
    [() => moveUserData(alice, 'not-a-user', { dbPath }), 'ERR_INVALID_USER_ID'],
    [() => moveUserData(alice, bob, { onConflict: 'merge', dbPath }), 'ERR_INVALID_ARG_VALUE'],
    [() => moveUserData(alice, 5, { dbPath }), 'ERR_INVALID_ARG_TYPE'],
    [() => store.linkAccount(''), 'ERR_INVALID_ARG_VALUE'],
    [() => store.linkAccount('a'.repeat(5000)), 'ERR_INVALID_ARG_VALUE'],
    [() => store.linkAccount(7), 'ERR_INVALID_ARG_TYPE'],
    [() => userIdForAccount(null, { dbPath }), 'ERR_INVALID_ARG_TYPE'],
    [() => revokeUserTokens('nope', { dbPath }), 'ERR_INVALID_USER_ID'],
  ]) {
    assert.throws(call, { code })
  }
  assert.deepEqual(new OAuthStore(alice, { dbPath }).servers(), ['srv'])
  assert.deepEqual(new OAuthStore(bob, { dbPath }).servers(), [])
})

test('moveUserData merges two anonymous identities and empties the source', () => {
  const dbPath = join(tempDir('move'), 'hoot-mcp.db')
  const [from, to] = [randomUUID(), randomUUID()]
  new OAuthStore(from, { dbPath }).saveTokens('a', { v: 'from' })
  new OAuthStore(from, { dbPath }).saveTokens('shared', { v: 'from' })
  new OAuthStore(to, { dbPath }).saveTokens('shared', { v: 'to' })
  assert.throws(() => moveUserData(from, to, { dbPath }), { code: 'ERR_INVALID_ARG_VALUE', message: /1 server/ })
  assert.deepEqual(moveUserData(from, to, { onConflict: 'keep-target', dbPath }), {
    moved: 1,
    replaced: 0,
    dropped: 1,
    conflicts: 1,
  })
  const target = new OAuthStore(to, { dbPath })
  assert.deepEqual([target.tokens('a'), target.tokens('shared')], [{ v: 'from' }, { v: 'to' }])
  assert.deepEqual(new OAuthStore(from, { dbPath }).servers(), [])
})

test('a legacy install: adopt-legacy prints a code, and redeeming it hands the legacy data to the browser', () => {
  const dbPath = join(tempDir('adopt'), 'hoot-mcp.db')
  makeLegacyDb(dbPath, 2)
  const { legacyUserId } = migrateDatabase(dbPath)
  const browser = randomUUID()
  const cliRun = spawnSync(process.execPath, [cli, 'adopt-legacy', '--db', dbPath], { encoding: 'utf8' })
  assert.equal(cliRun.status, 0, cliRun.stderr)
  const code = /code for legacy-user-\d+: (\S+)/.exec(cliRun.stdout)[1]
  assert.throws(() => redeemTransferCode(code, { dbPath }), { code: 'ERR_INVALID_ARG_VALUE', message: /intoUserId/ })
  const redeemed = redeemTransferCode(code, { dbPath, intoUserId: browser })
  assert.equal(redeemed.userId, browser)
  assert.equal(redeemed.moved.moved, 6)
  assert.deepEqual(new OAuthStore(browser, { dbPath }).servers(), ['s0', 's1'])
  assert.deepEqual(new OAuthStore(legacyUserId, { dbPath }).servers(), [])
  assert.equal(legacyTransferCode({ dbPath }), null, 'nothing left to adopt')
})

test('accounts: one account finds one user from any device; another user cannot take it', () => {
  const dbPath = join(tempDir('accounts'), 'hoot-mcp.db')
  const [alice, bob] = [randomUUID(), randomUUID()]
  new OAuthStore(alice, { dbPath }).linkAccount('github|42')
  assert.equal(userIdForAccount('github|42', { dbPath }), alice)
  assert.throws(() => new OAuthStore(bob, { dbPath }).linkAccount('github|42'), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /already linked to another user/,
  })
  assert.equal(new OAuthStore(bob, { dbPath }).unlinkAccount('github|42'), false)
  assert.equal(new OAuthStore(alice, { dbPath }).unlinkAccount('github|42'), true)
  assert.equal(userIdForAccount('github|42', { dbPath }), undefined)
})

test('revokeUserTokens: refused at once here, cached or not, and in another process within the poll delay', async () => {
  const dbPath = join(tempDir('revoke'), 'hoot-mcp.db')
  const files = await hootKeyFiles(tempDir('revoke-keys'))
  loadKeys({ privateKeyPath: files.privateKeyPath, jwksPath: files.jwksPath })
  const alice = randomUUID()
  const token = issueToken(alice)
  assert.ok(verifyToken(token).valid && verifyToken(token).valid, 'verified twice: cached')

  // Another process with the same keys, the database open, the token verified (and cached) there.
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import * as hoot from ${JSON.stringify(new URL('../lib/index.js', import.meta.url).href)}
       hoot.loadKeys({ privateKeyPath: ${JSON.stringify(files.privateKeyPath)}, jwksPath: ${JSON.stringify(files.jwksPath)} })
       new hoot.OAuthStore(${JSON.stringify(alice)}, { dbPath: ${JSON.stringify(dbPath)} }).touch()
       const token = ${JSON.stringify(token)}
       if (!hoot.verifyToken(token).valid || !hoot.verifyToken(token).valid) throw new Error('not valid at first')
       process.stdout.write('ready\\n')
       process.stdin.once('data', async () => {
         const asked = Date.now()
         while (hoot.verifyToken(token).valid && Date.now() - asked < 10000) await new Promise((r) => setImmediate(r))
         const result = hoot.verifyToken(token)
         process.stdout.write(JSON.stringify({ valid: result.valid, code: result.code, ms: Date.now() - asked }) + '\\n')
         process.exit(0)
       })`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  const lines = []
  const line = () =>
    new Promise((resolve) => {
      const waiting = () => (lines.length ? resolve(lines.shift()) : child.stdout.once('data', read))
      const read = (chunk) => {
        lines.push(...String(chunk).split('\n').filter(Boolean))
        waiting()
      }
      waiting()
    })
  assert.equal(await line(), 'ready')
  new OAuthStore(alice, { dbPath }) // this process has the database open too
  revokeUserTokens(alice, { dbPath })
  const here = verifyToken(token)
  assert.equal(here.valid, false, 'refused at once in this process, though it was cached')
  assert.equal(here.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED')
  assert.match(here.error, /revoked/)
  child.stdin.write('go\n')
  const there = JSON.parse(await line())
  assert.equal(there.valid, false)
  assert.equal(there.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED')
  assert.ok(there.ms <= 2000 + 1000, `seen by the other process after ${there.ms} ms (poll every 2 s)`)

  // Forget me: the data goes and the tokens stop verifying.
  const bob = randomUUID()
  const bobToken = issueToken(bob)
  const bobStore = new OAuthStore(bob, { dbPath })
  bobStore.saveTokens('srv', { access_token: 'b' })
  assert.equal(bobStore.deleteAll({ revokeTokens: true }), 1)
  assert.equal(verifyToken(bobToken).valid, false)
  assert.equal(verifyToken(issueToken(randomUUID())).valid, true, 'other users are untouched')
})

test('an account link made under schema 1 survives the upgrade to schema 2, once: a downgrade adopts nothing', () => {
  const dbPath = join(tempDir('links-schema1'), 'hoot-mcp.db')
  const user = randomUUID()
  new OAuthStore(user, { dbPath }).linkAccount('github|7')
  closeDatabase(dbPath)
  // Schema 1: hoot_accounts and hoot_transfer_codes without the columns schema 2 added.
  const downgrade = (plant) =>
    withBetterSqlite(
      `const db = new Database(input.dbPath)
      db.exec('ALTER TABLE hoot_accounts DROP COLUMN mac; ALTER TABLE hoot_transfer_codes DROP COLUMN mac; ALTER TABLE hoot_transfer_codes DROP COLUMN derived_from')
      if (input.plant) db.prepare('INSERT INTO hoot_accounts (account_id, user_id, linked_at) VALUES (?, ?, 0)').run('evil|1', input.user)
      db.pragma('user_version = 1')
      db.close()
      console.log('null')`,
      { dbPath, user, plant },
    )
  downgrade(false)
  assert.equal(userIdForAccount('github|7', { dbPath }), user)
  closeDatabase(dbPath)
  downgrade(true)
  assert.equal(userIdForAccount('evil|1', { dbPath }), undefined)
  closeDatabase(dbPath)
})

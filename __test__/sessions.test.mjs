// The anonymous session's life: activity (touch), counts that name no one (activitySummary), and
// removing the data of users inactive for too long (purgeInactiveUsers, `hoot-core purge`).
// Timing rules (once per hour, the inactivity window) are tested with time as a parameter in the
// Rust core (src/store/tests.rs); these tests run the real exports, processes and CLI.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { test } from 'node:test'

import { OAuthStore, activitySummary, inspectDatabase, purgeInactiveUsers } from '../lib/index.js'
import { delays, killDuring, root, tempDir, withBetterSqlite } from './helpers.mjs'

const cli = join(root, 'bin', 'hoot-core.js')

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
       hoot.purgeInactiveUsers({ inactiveDays: 90, dbPath: ${JSON.stringify(dbPath)} })
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

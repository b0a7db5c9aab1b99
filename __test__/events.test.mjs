// The security events (onEvent): each fires once, with its documented fields, on SQLite and on
// PostgreSQL, in a process of the test's own (fixtures/events-run.mjs); no event and no metric
// label carries a user id, token, transfer code, account id or key the run used. Then the events'
// way across threads, their bound when the event loop does not run, and the argument rules.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { Worker } from 'node:worker_threads'

import { loadKeys, onEvent, verifyToken } from '../lib/index.js'
import { flushEvents } from '../lib/events.js'
import { PG_SUITE_TIMEOUT, admin, freshDatabase, postgresAvailable } from './postgres.mjs'

// This process's key set, in a directory of the test's: verifyToken would otherwise make one in ~/.hoot.
loadKeys({ keyDir: mkdtempSync(join(tmpdir(), 'hoot-events-keys-')) })

const FIXTURE = new URL('./fixtures/events-run.mjs', import.meta.url).pathname
const HASH = /^[0-9a-f]{16}$/

function run(location, ...rest) {
  const home = mkdtempSync(join(tmpdir(), 'hoot-events-'))
  const env = {
    ...process.env,
    HOME: home,
    HOOT_ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
    HOOT_EVENT_KEY: randomBytes(32).toString('base64url'),
  }
  const out = execFileSync(process.execPath, [FIXTURE, location ?? join(home, 'events.db'), ...rest], {
    env,
    encoding: 'utf8',
    timeout: 120_000,
  })
  return JSON.parse(out)
}

/** The step's events as `[type, fields]`, `at` checked and left out. */
function typesOf(events) {
  return events.map(({ at, type, ...fields }) => {
    assert.ok(Number.isInteger(at) && Math.abs(at - Date.now()) < 600_000, `${type}: at is a time in ms`)
    return [type, fields]
  })
}

/** Checks each step reported exactly its one event with these fields (a hash matching HASH). */
function checkSteps(result, backend) {
  const { steps } = result
  const one = (name, type, fields) => {
    const got = typesOf(steps[name])
    assert.equal(got.length, 1, `${name}: one event, got ${JSON.stringify(got)}`)
    assert.equal(got[0][0], type, name)
    for (const [field, expected] of Object.entries(fields)) {
      const value = got[0][1][field]
      if (expected === HASH) assert.match(String(value), HASH, `${name}: ${field}`)
      else if (typeof expected === 'function') assert.ok(expected(value), `${name}: ${field} = ${value}`)
      else assert.deepEqual(value, expected, `${name}: ${field}`)
    }
    assert.deepEqual(
      Object.keys(got[0][1]).sort(),
      Object.keys(fields).sort(),
      `${name}: exactly the documented fields`,
    )
    return got[0][1]
  }
  const positive = (v) => Number.isInteger(v) && v > 0
  const count = (v) => Number.isInteger(v) && v >= 0
  one('loadKeys', 'keys_loaded', { kid: result.kid, source: 'generated', publicKeys: 1 })
  const issued = one('issueToken', 'token_issued', { userHash: HASH, kid: result.kid, ttlSeconds: 3600 })
  one('verifyToken refused', 'token_refused', {
    code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
    reason: 'signature verification failed',
  })
  assert.deepEqual(steps['verifyToken valid, twice'], [], 'a valid token reports nothing')
  one('first open', 'database_migrated', {
    backend,
    fromVersion: 0,
    toVersion: 3,
    ...(backend === 'sqlite' ? { legacy: false, rows: 0, conflicts: 0, backup: false } : {}),
  })
  assert.deepEqual(steps.saveTokens, [], 'a store write reports nothing')
  const created = one('createTransferCode', 'transfer_code_created', { userHash: HASH, expiresAt: positive, backend })
  const redeemed = one('redeemTransferCode', 'transfer_code_redeemed', { userHash: HASH, legacy: false, backend })
  one('redeemTransferCode refused', 'transfer_code_refused', { backend })
  const throttling = typesOf(steps['redeemTransferCode throttled'])
  assert.deepEqual(
    throttling.map(([type]) => type),
    [...Array(10).fill('transfer_code_refused'), 'transfer_code_throttled'],
  )
  assert.deepEqual(Object.keys(throttling[10][1]).sort(), ['backend', 'retryAfterSeconds', 'source'])
  assert.ok(positive(throttling[10][1].retryAfterSeconds) && throttling[10][1].source === true)
  const linked = one('linkAccount', 'account_linked', { userHash: HASH, accountHash: HASH, backend })
  const unlinked = one('unlinkAccount', 'account_unlinked', { userHash: HASH, accountHash: HASH, backend })
  const revoked = one('revokeUserTokens', 'tokens_revoked', { userHash: HASH, before: positive, backend })
  const moved = one('moveUserData', 'user_moved', {
    fromUserHash: HASH,
    toUserHash: HASH,
    moved: 1,
    replaced: 0,
    dropped: 0,
    backend,
  })
  const deleted = one('deleteAll', 'user_deleted', { userHash: HASH, rows: count, revoked: false, backend })
  one('purgeInactiveUsers', 'users_purged', { users: 0, rows: 0, inactiveDays: 30, backend })
  const on = one('encrypt', 'encryption_on', { keyId: HASH, sealed: positive, backend })
  assert.deepEqual(steps['encrypt again'], [], 'encrypting again with nothing to seal changed nothing')
  const rotated = one('encrypt rotate', 'encryption_rotated', { keyId: HASH, sealed: positive, backend })
  assert.notEqual(on.keyId, rotated.keyId)
  one('decrypt', 'encryption_off', { opened: positive, backend })
  one('refused database', 'database_refused', {
    backend,
    reason: backend === 'sqlite' ? 'not_a_database' : 'newer_schema',
  })

  // One user, one hash, within a process: alice's every event names her the same way.
  const aliceHash = issued.userHash
  for (const event of [created, redeemed, linked, unlinked, revoked]) assert.equal(event.userHash, aliceHash)
  assert.equal(linked.accountHash, unlinked.accountHash)
  assert.notEqual(moved.fromUserHash, moved.toUserHash)
  assert.equal(deleted.userHash, moved.toUserHash)
}

/** No secret of the run in any event or anywhere in the metrics text (labels included). */
function checkNoSecrets(result) {
  const everything = JSON.stringify(result.steps) + result.metrics
  for (const secret of result.secrets) {
    assert.ok(secret.length >= 8)
    assert.ok(!everything.includes(secret), `a secret of the run (${secret.length} characters) appears`)
    assert.ok(!everything.toLowerCase().includes(secret.toLowerCase()), 'a secret appears, in another case')
  }
}

test('on SQLite, each operation reports its one event with the documented fields, and no secret', () => {
  const result = run()
  checkSteps(result, 'sqlite')
  checkNoSecrets(result)
  const { steps } = result
  assert.deepEqual(typesOf(steps['refused directory']), [
    ['database_refused', { backend: 'sqlite', reason: 'not_a_regular_file' }],
  ])
  const linked = typesOf(steps['refused hard link'])
  assert.deepEqual(linked.at(-1), ['database_refused', { backend: 'sqlite', reason: 'hard_links' }])
  assert.deepEqual(
    linked.map(([type]) => type),
    ['database_migrated', 'database_refused'],
  )
})

test("a script's events reach its listener before it exits, though listening never keeps it alive", () => {
  const home = mkdtempSync(join(tmpdir(), 'hoot-events-exit-'))
  const script = `
    const { onEvent, openDatabase, verifyToken } = require(${JSON.stringify(new URL('../lib/index.js', import.meta.url).pathname)})
    onEvent((event) => process.stdout.write(event.type + '\\n'))
    const db = openDatabase(${JSON.stringify(join(home, 'exit.db'))})
    ;(async () => {
      await db.purgeInactiveUsers({ inactiveDays: 30 })
      await db.close()
      verifyToken('x')
    })()`
  const out = execFileSync(process.execPath, ['-e', script], {
    env: { ...process.env, HOME: home },
    encoding: 'utf8',
    timeout: 60_000,
  })
  assert.deepEqual(out.trimEnd().split('\n'), ['database_migrated', 'users_purged', 'keys_loaded', 'token_refused'])
})

describe('on PostgreSQL', PG_SUITE_TIMEOUT, () => {
  if (!postgresAvailable('events')) return
  test('each operation reports its one event with the documented fields, and no secret', async () => {
    const url = await freshDatabase('events')
    const refused = await freshDatabase('events_newer')
    await admin(
      'CREATE TABLE hoot_schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, migrated_at BIGINT NOT NULL); ' +
        'INSERT INTO hoot_schema_version VALUES (1, 99, 0)',
      [],
      refused,
    )
    const result = run(url, refused)
    checkSteps(result, 'postgres')
    checkNoSecrets(result)
    const { steps } = result
    const copied = typesOf(steps.copyFromSqlite)
    assert.deepEqual(copied, [
      ['database_copied', { from: 'sqlite', backend: 'postgres', legacy: false, users: 1, rows: 1, skippedUsers: 0 }],
    ])
    assert.deepEqual(
      typesOf(steps['loadKeys shared']).map(([type, f]) => [type, f.source]),
      [['keys_loaded', 'database']],
    )
    const rotation = typesOf(steps.rotateKeys)
    assert.equal(rotation.filter(([type]) => type === 'keys_rotated').length, 1)
    const [, rotatedFields] = rotation.find(([type]) => type === 'keys_rotated')
    assert.deepEqual(Object.keys(rotatedFields).sort(), ['backend', 'kept', 'kid', 'removed'])
    assert.equal(rotatedFields.kept, 1)
  })
})

test("an event on a worker thread reaches the main thread's listener", async () => {
  const seen = []
  const stop = onEvent((event) => seen.push(event))
  try {
    const worker = new Worker(
      `const { verifyToken } = require(${JSON.stringify(new URL('../lib/index.js', import.meta.url).pathname)})
       verifyToken('not.a.token!')`,
      { eval: true },
    )
    await new Promise((resolve, reject) => worker.on('exit', resolve).on('error', reject))
    flushEvents()
    assert.deepEqual(
      seen.map((e) => [e.type, e.code]),
      [['token_refused', 'ERR_JWS_INVALID']],
    )
  } finally {
    stop()
  }
})

test('events queued while the event loop is busy are delivered in order; past 10,000 they are counted', () => {
  const seen = []
  const stop = onEvent((event) => seen.push(event))
  try {
    for (let i = 0; i < 10_005; i++) verifyToken('x')
    flushEvents()
    assert.equal(seen.length, 10_001)
    assert.ok(seen.slice(0, 10_000).every((e) => e.type === 'token_refused'))
    assert.deepEqual([seen[10_000].type, seen[10_000].count], ['events_dropped', 5])
  } finally {
    stop()
  }
  // What a stopped channel had queued (and dropped) is no one's: a listener after it starts afresh.
  const stopEarly = onEvent(() => {})
  for (let i = 0; i < 10_005; i++) verifyToken('x')
  stopEarly()
  const later = []
  const stopLater = onEvent((event) => later.push(event.type))
  verifyToken('x')
  flushEvents()
  stopLater()
  assert.deepEqual(later, ['token_refused'])
})

test('a listener added by a listener gets the events after the batch in progress', () => {
  const added = []
  let stopAdded
  const stopFirst = onEvent(() => {
    stopAdded ??= onEvent((event) => added.push(event.type))
  })
  verifyToken('x')
  verifyToken('x')
  flushEvents()
  assert.deepEqual(added, [])
  verifyToken('x')
  flushEvents()
  assert.deepEqual(added, ['token_refused'])
  stopFirst()
  stopAdded()
})

test('a throwing listener is a warning; the other listeners still get the event; stop() stops one registration', async () => {
  const seen = []
  const warned = new Promise((resolve) => process.once('warning', resolve))
  const stopThrowing = onEvent(() => {
    throw new Error('the audit log is full')
  })
  const record = (event) => seen.push(event.type)
  const stopOne = onEvent(record)
  const stopTwo = onEvent(record)
  verifyToken('x')
  flushEvents()
  assert.deepEqual(seen, ['token_refused', 'token_refused'])
  const warning = await warned
  assert.equal(warning.code, 'ERR_HOOT_EVENT_LISTENER')
  stopThrowing()
  stopOne()
  stopOne()
  verifyToken('x')
  flushEvents()
  assert.deepEqual(seen, ['token_refused', 'token_refused', 'token_refused'])
  stopTwo()
})

test('onEvent refuses anything but a function', () => {
  for (const value of [undefined, null, 'log', {}]) {
    assert.throws(() => onEvent(value), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' })
  }
})

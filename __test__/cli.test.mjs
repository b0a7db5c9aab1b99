import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import { openDatabase } from '../lib/index.js'
import { makeLegacyDb, root, tempDir } from './helpers.mjs'
import { PG_TIMEOUT, freshDatabase, postgresAvailable, rows } from './postgres.mjs'

const cli = join(root, 'bin', 'hoot-core.js')

/**
 * Runs the CLI in `cwd` with a private HOME and database path, and none of the runner's database
 * or encryption settings; a child still running after 60 s is killed (and its status is null).
 */
function hootCore(args, { cwd = tempDir('cli-cwd'), env = {} } = {}) {
  const result = spawnSync(process.execPath, [cli, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
    env: {
      ...process.env,
      HOME: tempDir('cli-home'),
      HOOT_DB_PATH: join(tempDir('cli-db'), 'hoot-mcp.db'),
      HOOT_DATABASE_URL: '',
      HOOT_ENCRYPTION_KEY: '',
      HOOT_ENCRYPT_AT_REST: '',
      ...env,
    },
  })
  return { code: result.status, out: result.stdout, err: result.stderr }
}

test('help and usage errors', () => {
  const top = hootCore(['--help'])
  assert.equal(top.code, 0)
  assert.match(top.out, /keygen \[dir\][\s\S]*migrate[\s\S]*doctor[\s\S]*--database <path\|url>/)
  for (const command of ['keygen', 'migrate', 'purge', 'adopt-legacy', 'encrypt', 'decrypt', 'doctor']) {
    const help = hootCore([command, '--help'])
    assert.equal(help.code, 0, command)
    assert.match(help.out, new RegExp(`^Usage: hoot-core ${command}`))
    if (command !== 'keygen') assert.match(help.out, /--database <path\|url>/, command)
  }
  assert.equal(hootCore([]).code, 2)
  const unknown = hootCore(['frobnicate'])
  assert.equal(unknown.code, 2)
  assert.match(unknown.err, /unknown command "frobnicate"/)
  assert.equal(hootCore(['keygen', 'a', 'b']).code, 2)
  assert.equal(hootCore(['doctor', '--nope']).code, 2)
})

test("keygen writes Hoot's files, and doctor then reports healthy", () => {
  const dir = tempDir('cli-keys')
  const made = hootCore(['keygen', dir, '--kid', 'cli-kid'])
  assert.equal(made.code, 0, made.err)
  assert.match(made.out, /kid cli-kid/)
  assert.equal(statSync(join(dir, 'private-key.json')).mode & 0o777, 0o600)
  const again = hootCore(['keygen', dir])
  assert.equal(again.code, 1)
  assert.match(again.err, /never overwrites.*ERR_HOOT_KEYS/)

  const doctor = hootCore(['doctor'], { cwd: dir })
  assert.equal(doctor.code, 0, doctor.out)
  assert.match(doctor.out, /✓ keys: kid cli-kid \(files/)
  assert.match(doctor.out, /does not exist yet/)
  assert.match(doctor.out, /^healthy$/m)

  chmodSync(join(dir, 'private-key.json'), 0o644)
  const leaky = hootCore(['doctor'], { cwd: dir })
  assert.equal(leaky.code, 1)
  assert.match(leaky.out, /fix: chmod 600 .*private-key\.json/)
})

test('doctor on a legacy database says to migrate; after migrate it is clean', () => {
  const db = join(tempDir('cli-legacy'), 'hoot-mcp.db')
  makeLegacyDb(db, 4)
  const env = { HOOT_DB_PATH: db }
  const before = hootCore(['doctor'], { env })
  assert.equal(before.code, 1, before.out)
  assert.match(before.out, /single-user tables[\s\S]*fix: npx hoot-core migrate/)

  const migrated = hootCore(['migrate', '--json'], { env })
  assert.equal(migrated.code, 0, migrated.err)
  const report = JSON.parse(migrated.out)
  assert.equal(report.migrated, true)
  assert.equal(report.tokens, 4)

  const after = hootCore(['doctor'], { env })
  assert.equal(after.code, 0, after.out)
  assert.match(after.out, /✓ database: .*schema version 3/)
  assert.match(hootCore(['migrate', db]).out, /up to date/)
})

test('a failing command exits 1 with its error code', () => {
  const notDb = join(root, 'README.md')
  const result = hootCore(['migrate', notDb])
  assert.equal(result.code, 1)
  assert.match(result.err, /not a SQLite database.*\(ERR_HOOT_DB\)/)
})

test(
  'doctor reports key files and database files another user owns, with owner and directory mode',
  { skip: process.getuid?.() !== 0 && 'chown needs root' },
  () => {
    const dir = tempDir('cli-planted')
    assert.equal(hootCore(['keygen', dir]).code, 0)
    const healthy = hootCore(['doctor'], { cwd: dir })
    assert.match(healthy.out, /private-key\.json: owner uid 0, mode 600, directory mode 700/)

    chownSync(join(dir, 'private-key.json'), 65534, 65534)
    const planted = hootCore(['doctor'], { cwd: dir })
    assert.equal(planted.code, 1, planted.out)
    assert.match(planted.out, /✗ keys: Refusing .*private-key\.json: .*owned by another user \(uid 65534\)/)

    const db = join(tempDir('cli-foreign-db'), 'hoot-mcp.db')
    makeLegacyDb(db, 1)
    chownSync(db, 65534, 65534)
    const foreign = hootCore(['doctor'], { env: { HOOT_DB_PATH: db } })
    assert.equal(foreign.code, 1, foreign.out)
    assert.match(foreign.out, /hoot-mcp\.db is owned by another user \(uid 65534\)/)
  },
)

test("doctor counts a database directory open to others as a problem; opening the database tightens Hoot's ~/.hoot", () => {
  const home = tempDir('cli-open-dir')
  const hootDir = join(home, '.hoot')
  const db = join(hootDir, 'hoot-mcp.db')
  mkdirSync(hootDir, { mode: 0o755 }) // as Hoot's mkdirSync leaves it
  chmodSync(hootDir, 0o755)
  makeLegacyDb(db, 1)
  const env = { HOME: home, HOOT_DB_PATH: db }
  assert.equal(hootCore(['migrate'], { env }).code, 0)
  assert.equal(statSync(hootDir).mode & 0o777, 0o700, 'tightened when hoot-core opened it')
  chmodSync(hootDir, 0o755)
  const open = hootCore(['doctor'], { env })
  assert.equal(open.code, 1, open.out)
  assert.match(open.out, /✗ database: its directory .*\.hoot is open to others \(mode 755\)\n {2}fix: chmod 700 /)
})

test('doctor with an unreachable HOOT_DATABASE_URL reports it, exits 1, and never prints the password', () => {
  const doctor = hootCore(['doctor'], { env: { HOOT_DATABASE_URL: 'postgres://hoot:hunter2@127.0.0.1:1/hoot' } })
  assert.equal(doctor.code, 1, doctor.out)
  assert.match(doctor.out, /^✓ keys: the key set every server on this PostgreSQL database shares/m)
  assert.match(doctor.out, /^✗ database: Cannot connect to PostgreSQL at 127\.0\.0\.1:1\/hoot: /m)
  assert.match(doctor.out, /^1 problem\(s\) to fix$/m)
  assert.doesNotMatch(doctor.out + doctor.err, /hunter2|kid undefined|\n\s+at /)

  // Each command that reaches the database fails the same way, with the message and its code.
  const purge = hootCore(['purge', '--inactive-days', '90', '--database', 'postgres://hoot:hunter2@127.0.0.1:1/hoot'])
  assert.equal(purge.code, 1)
  assert.match(purge.err, /^hoot-core: Cannot connect to PostgreSQL at 127\.0\.0\.1:1\/hoot: .*\(ERR_HOOT_DB\)$/m)
  assert.doesNotMatch(purge.err, /hunter2|\n\s+at /)
})

test('every database command takes --database <path>, and the older spellings still work', () => {
  const dir = tempDir('cli-spellings')
  const db = join(dir, 'hoot-mcp.db')
  makeLegacyDb(db, 2)
  // HOOT_DB_PATH names another file: each run below reaches `db` only through its argument.
  const env = { HOME: tempDir('cli-spellings-home') }

  const migrated = hootCore(['migrate', '--database', db], { env })
  assert.equal(migrated.code, 0, migrated.err)
  assert.match(migrated.out, /^Migrated .*hoot-mcp\.db to schema version 3:$/m)
  assert.match(migrated.out, /^ {2}2 OAuth tokens, 2 client registrations, 2 verifiers$/m)
  assert.match(hootCore(['migrate', db], { env }).out, /up to date \(schema version 3\); nothing was migrated/)

  const adopt = hootCore(['adopt-legacy', '--database', db], { env })
  assert.equal(adopt.code, 0, adopt.err)
  assert.match(adopt.out, /^Transfer code for legacy-user-\d+: \S+$/m)
  assert.match(hootCore(['adopt-legacy', '--db', db], { env }).out, /^Transfer code for legacy-user-\d+/m)

  const dry = hootCore(['purge', '--inactive-days', '90', '--dry-run', '--database', db], { env })
  assert.equal(dry.code, 0, dry.err)
  assert.match(dry.out, /^Would remove 0 row\(s\) of 0 user\(s\) inactive for more than 90 days\.$/m)

  const keyEnv = { ...env, HOOT_ENCRYPTION_KEY: randomBytes(32).toString('base64url') }
  const sealed = hootCore(['encrypt', '--database', db], { env: keyEnv })
  assert.equal(sealed.code, 0, sealed.err)
  assert.match(sealed.out, /^Encrypted: 6 value\(s\) sealed; the database records key\(s\) [0-9a-f]{16}\.$/m)
  assert.match(sealed.out, /pre-migration-\d+\.bak is a backup from before encryption and holds plaintext/)
  assert.doesNotMatch(sealed.out, /Every server on this database needs the key/, 'a PostgreSQL note')

  const doctor = hootCore(['doctor', '--database', db], { env: keyEnv })
  assert.equal(doctor.code, 0, doctor.out)
  assert.match(doctor.out, /^✓ database: .*hoot-mcp\.db, schema version 3$/m)
  assert.match(doctor.out, /^✓ encryption at rest: on, key\(s\) [0-9a-f]{16}; 6 sealed with/m)
  assert.match(doctor.out, /purge --inactive-days 90 --dry-run --database .*hoot-mcp\.db shows/)

  const opened = hootCore(['decrypt', '--database', db], { env: keyEnv })
  assert.equal(opened.code, 0, opened.err)
  assert.match(opened.out, /^Decrypted: 6 value\(s\) are plaintext again/m)

  for (const args of [
    ['migrate', db, '--database', db],
    ['encrypt', db, '--database', db],
    ['decrypt', db, '--database', db],
    ['purge', '--inactive-days', '1', '--db', db, '--database', db],
    ['adopt-legacy', '--db', db, '--database', db],
    ['doctor', '--db', db, '--database', db],
    ['doctor', '--database', ''],
    ['migrate', '--from', db, '--to', 'postgres://127.0.0.1:1/x', '--database', db],
  ]) {
    const twice = hootCore(args, { env })
    assert.equal(twice.code, 2, args.join(' '))
    assert.match(
      twice.err,
      /^hoot-core: (name the database once|--database needs|--from and --to take no other)/,
      args.join(' '),
    )
  }
})

describe('the database commands on PostgreSQL', () => {
  if (!postgresAvailable('cli')) return

  /**
   * The CLI on the database at `url`, through --database, with a password in the URL (the test
   * server trusts any): no output may show it. A home of its own for each run.
   */
  const onPostgres = (url, args, env = {}) => {
    const withPassword = new URL(url)
    withPassword.password = 'hunter2'
    const run = hootCore([...args, '--database', withPassword.toString()], { env })
    assert.doesNotMatch(run.out + run.err, /hunter2/, args.join(' '))
    return run
  }
  const publicTables = async (url) =>
    Number((await rows(url, "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'"))[0].n)

  test(
    'doctor reads a fresh database without making anything; migrate makes the schema, then finds it up to date',
    PG_TIMEOUT,
    async () => {
      const url = await freshDatabase('cli_migrate')
      const name = new URL(url).pathname.slice(1)
      const fresh = onPostgres(url, ['doctor'])
      assert.equal(fresh.code, 0, fresh.out + fresh.err)
      assert.match(fresh.out, /^✓ native addon loads: /m)
      assert.match(fresh.out, /^✓ keys: the key set every server on this PostgreSQL database shares/m)
      assert.match(
        fresh.out,
        new RegExp(
          `^✓ database: PostgreSQL at 127\\.0\\.0\\.1:5432/${name} has no hoot-core schema yet; .*migrate --database <url>\\)$`,
          'm',
        ),
      )
      assert.match(fresh.out, /^healthy$/m)
      assert.equal(await publicTables(url), 0, 'doctor made nothing')

      const made = onPostgres(url, ['migrate'])
      assert.equal(made.code, 0, made.err)
      assert.equal(made.out, `Made the schema of PostgreSQL at 127.0.0.1:5432/${name} (schema version 3).\n`)
      assert.ok((await publicTables(url)) > 0)
      // $HOOT_DATABASE_URL is the default.
      const again = hootCore(['migrate'], { env: { HOOT_DATABASE_URL: url } })
      assert.equal(again.code, 0, again.err)
      assert.match(again.out, /^PostgreSQL at .* is up to date \(schema version 3\); nothing was migrated\.$/m)
      const json = onPostgres(url, ['migrate', '--json'])
      assert.deepEqual(JSON.parse(json.out), {
        kind: 'postgres',
        database: `PostgreSQL at 127.0.0.1:5432/${name}`,
        schemaVersion: 3,
        encrypted: false,
        previousSchemaVersion: 3,
        upToDate: true,
      })

      const doctor = hootCore(['doctor'], { env: { HOOT_DATABASE_URL: url } })
      assert.equal(doctor.code, 0, doctor.out)
      assert.match(
        doctor.out,
        new RegExp(`^✓ database: PostgreSQL at 127\\.0\\.0\\.1:5432/${name}, schema version 3$`, 'm'),
      )
      assert.match(doctor.out, /^✓ encryption at rest: off \(npx hoot-core encrypt seals the stored OAuth values\)$/m)
      assert.match(doctor.out, /^✓ users: 0 known, active in the last day 0, 7 days 0, 30 days 0 /m)
      assert.doesNotMatch(doctor.out, /mode|owned by/, 'no file checks')
    },
  )

  test(
    'doctor reports user ids in upper case and a missing table with fixes for PostgreSQL; migrate says what it leaves',
    PG_TIMEOUT,
    async () => {
      const url = await freshDatabase('cli_doctor')
      assert.equal(onPostgres(url, ['migrate']).code, 0)
      await rows(url, "INSERT INTO server_configs (user_id, server_id, config) VALUES ($1, 's', '{}')", [
        randomUUID().toUpperCase(),
      ])
      const mixed = onPostgres(url, ['doctor'])
      assert.equal(mixed.code, 1, mixed.out)
      assert.match(mixed.out, /^✗ database: .* holds user ids in upper case \(server_configs\): .*\n {2}fix: .*psql/m)
      const lowered = onPostgres(url, ['migrate'])
      assert.equal(lowered.code, 1, lowered.out)
      assert.match(lowered.out, /^ {2}server_configs hold\(s\) user ids in upper case, which no store reads/m)
      await rows(url, 'DELETE FROM server_configs')
      await rows(url, 'DROP TABLE hoot_copied_files')
      const older = onPostgres(url, ['doctor'])
      assert.equal(older.code, 0, older.out)
      assert.match(
        older.out,
        /^! database: .* is at schema version 3, without hoot_copied_files\n {2}fix: npx hoot-core migrate --database <url>$/m,
      )
      // A table dropped by hand at this version is not made again: migrate says so and fails.
      const dropped = onPostgres(url, ['migrate'])
      assert.equal(dropped.code, 1, dropped.out)
      assert.match(dropped.out, /^PostgreSQL at .* is at schema version 3; nothing was migrated\.$/m)
      assert.match(
        dropped.out,
        /^ {2}It lacks hoot_copied_files, which a migration at this version does not make again/m,
      )
      assert.equal(JSON.parse(onPostgres(url, ['migrate', '--json']).out).upToDate, false)
    },
  )

  test('purge --dry-run counts, purge removes, and doctor shows the activity it works from', PG_TIMEOUT, async () => {
    const url = await freshDatabase('cli_purge')
    const db = openDatabase(url)
    const [old, recent] = [randomUUID(), randomUUID()]
    try {
      for (const user of [old, recent]) {
        await db.store(user).saveTokens('srv', { access_token: 't' })
        await db.store(user).touch()
      }
      await rows(url, 'UPDATE hoot_users SET last_seen = $1 WHERE user_id = $2', [
        Math.floor(Date.now() / 1000) - 100 * 86_400,
        old,
      ])
    } finally {
      await db.close()
    }
    const doctor = onPostgres(url, ['doctor'])
    assert.match(doctor.out, /^✓ users: 2 known, active in the last day 1, 7 days 1, 30 days 1 /m)

    const dry = onPostgres(url, ['purge', '--inactive-days', '90', '--dry-run'])
    assert.equal(dry.code, 0, dry.err)
    assert.equal(dry.out, 'Would remove 1 row(s) of 1 user(s) inactive for more than 90 days.\n')
    assert.equal((await rows(url, 'SELECT count(*) AS n FROM oauth_tokens'))[0].n, '2', 'a dry run removes nothing')

    const done = onPostgres(url, ['purge', '--inactive-days', '90', '--json'])
    assert.equal(done.code, 0, done.err)
    assert.deepEqual(JSON.parse(done.out), { users: 1, rows: 1, adopted: 0, dryRun: false })
    assert.deepEqual(
      (await rows(url, 'SELECT user_id FROM oauth_tokens')).map((r) => r.user_id),
      [recent],
    )
    const bad = onPostgres(url, ['purge', '--inactive-days', 'x'])
    assert.equal(bad.code, 1)
    assert.match(bad.err, /^hoot-core: .*\(ERR_INVALID_ARG_VALUE\)$/m)
    assert.doesNotMatch(bad.err, /\n\s+at /)
  })

  test(
    "adopt-legacy prints a code for a copied single-user file's data, which a browser redeems",
    PG_TIMEOUT,
    async () => {
      const url = await freshDatabase('cli_adopt')
      assert.equal(onPostgres(url, ['adopt-legacy']).out, 'No legacy data in this database: nothing to adopt.\n')
      const file = join(tempDir('cli-adopt'), 'hoot-mcp.db')
      makeLegacyDb(file, 2)
      const copied = hootCore(['migrate', '--from', file, '--to', url])
      assert.equal(copied.code, 0, copied.err)

      const adopt = onPostgres(url, ['adopt-legacy', '--ttl-seconds', '300'])
      assert.equal(adopt.code, 0, adopt.err)
      const [, legacyUserId, code] = /^Transfer code for (legacy-user-\d+): (\S+)$/m.exec(adopt.out)
      assert.match(adopt.out, /within 5 minute\(s\)\.$/m)
      const browser = randomUUID()
      const db = openDatabase(url)
      try {
        const redeemed = await db.redeemTransferCode(code, { intoUserId: browser })
        assert.equal(redeemed.userId, browser)
        assert.equal(redeemed.moved.moved, 6)
        assert.deepEqual(await db.store(browser).servers(), ['s0', 's1'])
        assert.deepEqual(await db.store(legacyUserId).servers(), [])
      } finally {
        await db.close()
      }
      assert.match(onPostgres(url, ['adopt-legacy']).out, /^No legacy data in this database/)
    },
  )

  test(
    'encrypt, encrypt --rotate and decrypt with HOOT_ENCRYPTION_KEY, and doctor reports each state',
    PG_TIMEOUT,
    async () => {
      const url = await freshDatabase('cli_encrypt')
      const db = openDatabase(url)
      try {
        await db.store(randomUUID()).saveTokens('srv', { refresh_token: 'cli-secret' })
      } finally {
        await db.close()
      }
      const key = randomBytes(32).toString('base64url')
      const sealed = onPostgres(url, ['encrypt'], { HOOT_ENCRYPTION_KEY: key })
      assert.equal(sealed.code, 0, sealed.err)
      const [, first] = /^Encrypted: 1 value\(s\) sealed; the database records key\(s\) ([0-9a-f]{16})\.$/m.exec(
        sealed.out,
      )
      assert.match(sealed.out, /^Every server on this database needs the key from now on/m)
      assert.doesNotMatch(sealed.out, /backup from before encryption/, 'a SQLite note')
      const stored = async () => (await rows(url, 'SELECT tokens FROM oauth_tokens'))[0].tokens
      assert.match(await stored(), new RegExp(`^hoot-sealed:1:${first}:`))

      // doctor needs no key to report it.
      const on = onPostgres(url, ['doctor'])
      assert.equal(on.code, 0, on.out)
      assert.match(
        on.out,
        new RegExp(
          `^✓ encryption at rest: on, key\\(s\\) ${first}; 1 sealed with ${first}; 0 plaintext value\\(s\\) left$`,
          'm',
        ),
      )

      const withoutKey = onPostgres(url, ['decrypt'])
      assert.equal(withoutKey.code, 1)
      assert.match(withoutKey.err, /^hoot-core: .*\(ERR_HOOT_KEYS\)$/m)
      assert.doesNotMatch(withoutKey.err, /\n\s+at /)

      const newer = randomBytes(32).toString('base64url')
      const rotated = onPostgres(url, ['encrypt', '--rotate'], { HOOT_ENCRYPTION_KEY: `${newer},${key}` })
      assert.equal(rotated.code, 0, rotated.err)
      const [, second] = /^Rotated: \d+ value\(s\) sealed; the database records key\(s\) ([0-9a-f]{16})/m.exec(
        rotated.out,
      )
      assert.notEqual(second, first)
      assert.match(await stored(), new RegExp(`^hoot-sealed:1:${second}:`))

      const opened = onPostgres(url, ['decrypt'], { HOOT_ENCRYPTION_KEY: `${newer},${key}` })
      assert.equal(opened.code, 0, opened.err)
      assert.match(
        opened.out,
        /^Decrypted: \d+ value\(s\) are plaintext again; the database is no longer encrypted\.$/m,
      )
      assert.equal(JSON.parse(await stored()).refresh_token, 'cli-secret')
      assert.match(onPostgres(url, ['doctor']).out, /^✓ encryption at rest: off /m)
    },
  )
})

test('with HOOT_AUDIT_LOG, a run appends its security events to that file in Hoot audit format', () => {
  const home = tempDir('cli-audit-home')
  const db = join(tempDir('cli-audit'), 'hoot-mcp.db')
  const log = join(home, 'audit.log')
  const env = { HOME: home, HOOT_AUDIT_LOG: log, HOOT_ENCRYPTION_KEY: randomBytes(32).toString('base64url') }
  const sealed = hootCore(['encrypt', '--database', db], { env })
  assert.equal(sealed.code, 0, sealed.err)
  const entries = readFileSync(log, 'utf8')
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line))
  assert.deepEqual(
    entries.map((e) => [e.event, e.backend, e.source]),
    [
      ['database_migrated', 'sqlite', 'hoot-core-cli'],
      ['encryption_on', 'sqlite', 'hoot-core-cli'],
    ],
  )
  for (const entry of entries) assert.ok(!Number.isNaN(Date.parse(entry.timestamp)) && entry.type === undefined)
  assert.equal(statSync(log).mode & 0o777, 0o600)
  assert.equal(hootCore(['decrypt', '--database', db], { env }).code, 0)
  assert.equal(readFileSync(log, 'utf8').trimEnd().split('\n').length, 3, 'appended, one line per event')
})

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

import { makeLegacyDb, root, tempDir } from './helpers.mjs'

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
  assert.match(after.out, /✓ database: .*schema version 2/)
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
  assert.match(migrated.out, /^Migrated .*hoot-mcp\.db to schema version 2:$/m)
  assert.match(migrated.out, /^ {2}2 OAuth tokens, 2 client registrations, 2 verifiers$/m)
  assert.match(hootCore(['migrate', db], { env }).out, /up to date \(schema version 2\); nothing was migrated/)

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
  assert.match(doctor.out, /^✓ database: .*hoot-mcp\.db, schema version 2$/m)
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

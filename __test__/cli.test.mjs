import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

import { makeLegacyDb, root, tempDir } from './helpers.mjs'

const cli = join(root, 'bin', 'hoot-core.js')

/** Runs the CLI in `cwd` with a private HOME and database path. */
function hootCore(args, { cwd = tempDir('cli-cwd'), env = {} } = {}) {
  const result = spawnSync(process.execPath, [cli, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, HOME: tempDir('cli-home'), HOOT_DB_PATH: join(tempDir('cli-db'), 'hoot-mcp.db'), ...env },
  })
  return { code: result.status, out: result.stdout, err: result.stderr }
}

test('help and usage errors', () => {
  const top = hootCore(['--help'])
  assert.equal(top.code, 0)
  assert.match(top.out, /keygen \[dir\][\s\S]*migrate \[db\][\s\S]*doctor/)
  for (const command of ['keygen', 'migrate', 'doctor']) {
    const help = hootCore([command, '--help'])
    assert.equal(help.code, 0, command)
    assert.match(help.out, new RegExp(`^Usage: hoot-core ${command}`))
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

test('doctor with HOOT_DATABASE_URL says the state is on PostgreSQL, connects nowhere, and never prints the password', () => {
  const doctor = hootCore(['doctor'], { env: { HOOT_DATABASE_URL: 'postgres://hoot:hunter2@127.0.0.1:1/hoot' } })
  assert.equal(doctor.code, 0, doctor.out)
  assert.match(doctor.out, /on PostgreSQL \(127\.0\.0\.1:1\/hoot\); doctor checks only local files/)
  assert.doesNotMatch(doctor.out, /hunter2|kid undefined/)
})

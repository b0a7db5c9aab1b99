#!/usr/bin/env node
// npx hoot-core <command>: make keys, migrate a database, and check an installation.
// Every database command works on SQLite or PostgreSQL through openDatabase()'s one Database:
// --database <path|url>, else $HOOT_DATABASE_URL, else $HOOT_DB_PATH, else ~/.hoot/hoot-mcp.db.
// Exit codes: 0 done / healthy, 1 failed / problems found, 2 wrong usage.
// With $HOOT_AUDIT_LOG naming a file (Hoot's ~/.hoot/audit.log), the security events of the run
// (a migration, a purge, encryption, a key rotation) are appended to it in Hoot's audit format.
'use strict'

const { appendFileSync, existsSync, statSync } = require('fs')
const { dirname, resolve } = require('path')
const { parseArgs } = require('util')

const USAGE = `Usage: hoot-core <command> [options]

Commands:
  keygen [dir]   write Hoot's private-key.json and jwks.json into dir (default: the current directory);
                 --rotate --database <postgres://...>: a new signing key for every replica
  migrate        make or migrate a database's schema;
                 --from <sqlite file> --to <postgres://...>: copy every user's data into PostgreSQL
  purge          remove the data of users inactive for --inactive-days (see --dry-run)
  adopt-legacy   print a transfer code that hands a single-user install's data to a browser
  encrypt        seal every OAuth value at rest (AES-256-GCM); --rotate: under a new key
  decrypt        open every sealed value back into plaintext (for Hoot's own code)
  doctor         check the native build, the keys and the database, and say how to fix what is wrong

The database commands take --database <path|url>: a SQLite file or a postgres:// URL (default:
$HOOT_DATABASE_URL, else $HOOT_DB_PATH, else ~/.hoot/hoot-mcp.db). The older spellings, a path as
the argument (migrate [db], encrypt [db], decrypt [db]) and --db <path>, still work.

Run hoot-core <command> --help for a command's options.
Exit codes: 0 done or healthy, 1 failed or problems found, 2 wrong usage.
HOOT_AUDIT_LOG=<file> appends the run's security events to that file (Hoot's audit.log), a JSON line each.`

const COMMANDS = {
  keygen: {
    usage: `Usage: hoot-core keygen [dir] [--kid <kid>] [--bits 2048|3072|4096]
       hoot-core keygen --rotate --database <postgres://...> [--drop-previous]

Writes a new RS256 key pair as Hoot's private-key.json and jwks.json (files 0600, directory 0700).
Never overwrites an existing key. Point JWT_PRIVATE_KEY_PATH and JWT_JWKS_PATH at the files, or run
the server from dir.

With --rotate, makes a new signing key in the key set every replica shares in PostgreSQL
(--database, default $HOOT_DATABASE_URL). The previous signing key keeps verifying (its tokens stay
good until they expire) and older keys are removed; --drop-previous removes the previous one too
(a key thought compromised: its tokens stop verifying). Every running replica loads the new set
within its poll interval (1 s by default).`,
    options: {
      kid: { type: 'string' },
      bits: { type: 'string' },
      rotate: { type: 'boolean' },
      database: { type: 'string' },
      'drop-previous': { type: 'boolean' },
    },
    maxPositionals: 1,
    run: keygen,
  },
  migrate: {
    usage: `Usage: hoot-core migrate [--database <path|url>] [--json]
       hoot-core migrate --from <sqlite file> --to <postgres://...> [--force] [--json]

On a SQLite file, converts Hoot's old single-user tables (moving their rows to one legacy-user-<ms>
id) and creates missing tables, in one transaction, after a backup next to the file. On PostgreSQL,
makes or migrates the schema under an advisory lock. Either way it reports the schema version, and
is safe to run again.

With --from and --to, copies every user's data from a SQLite file (Hoot's legacy schema or
hoot-core's; the file is only read) into PostgreSQL, in one transaction: a run stopped midway
copies nothing. Rows PostgreSQL already has with the same values are left alone; rows with other
values take the file's. A revocation is never lowered, and a user PostgreSQL revoked after the file
was last written ("forget me") is skipped: none of their rows comes back. Each file copied is
recorded in PostgreSQL, and copying the same file again is refused (it would bring back what was
deleted since) unless --force, which copies it again under the same two rules.`,
    options: {
      database: { type: 'string' },
      json: { type: 'boolean' },
      from: { type: 'string' },
      to: { type: 'string' },
      force: { type: 'boolean' },
    },
    maxPositionals: 1,
    run: migrate,
  },
  purge: {
    usage: `Usage: hoot-core purge --inactive-days <days> [--dry-run] [--database <path|url>] [--json]

Removes, in one transaction, every row of each user whose last activity (store.touch()) is more
than <days> days old. Users with data but no recorded activity (from before touch() was called)
are recorded as active now and kept. --dry-run counts and changes nothing.`,
    options: {
      'inactive-days': { type: 'string' },
      'dry-run': { type: 'boolean' },
      database: { type: 'string' },
      db: { type: 'string' },
      json: { type: 'boolean' },
    },
    maxPositionals: 0,
    run: purge,
  },
  encrypt: {
    usage: `Usage: hoot-core encrypt [--database <path|url>] [--rotate]

Seals every plaintext OAuth value (tokens, client registrations, verifiers, discovery state, server
configs; on PostgreSQL the shared signing keys too) in one transaction, with the key from
HOOT_ENCRYPTION_KEY or ~/.hoot/keys/encryption-keys (made 0600 on first use). From then on every
process needs that key. Safe to run again. --rotate puts a new key first in the key file (with
HOOT_ENCRYPTION_KEY: put it first there) and seals every value again under it; older keys stay for
opening.`,
    options: { database: { type: 'string' }, rotate: { type: 'boolean' } },
    maxPositionals: 1,
    run: encrypt,
  },
  decrypt: {
    usage: `Usage: hoot-core decrypt [--database <path|url>]

Opens every sealed value back into plaintext in one transaction and marks the database plain, for
going back to Hoot's own code. Stop the servers that use the database first.`,
    options: { database: { type: 'string' } },
    maxPositionals: 1,
    run: decrypt,
  },
  'adopt-legacy': {
    usage: `Usage: hoot-core adopt-legacy [--database <path|url>] [--ttl-seconds <s>]

A migration (or a copy of a single-user file into PostgreSQL) gives a single-user install's OAuth
data to one legacy-user-<ms> id, which no browser token carries. This prints a one-time code (10
minutes by default); redeeming it from a browser (db.redeemTransferCode(code, { intoUserId })) moves
that data to the browser's user.`,
    options: { database: { type: 'string' }, db: { type: 'string' }, 'ttl-seconds': { type: 'string' } },
    maxPositionals: 0,
    run: adoptLegacy,
  },
  doctor: {
    usage: `Usage: hoot-core doctor [--database <path|url>]

Checks that the native addon loads, which keys the server will use (and that the private key is
private), and the database: its schema, users' activity and encryption at rest, and for a SQLite
file its path, owner and mode. Prints each finding with its fix; exits 1 if any needs fixing.
Changes nothing: on PostgreSQL it reads in one read-only transaction and makes no schema.`,
    options: { database: { type: 'string' }, db: { type: 'string' } },
    maxPositionals: 0,
    run: doctor,
  },
}

class UsageError extends Error {}

/** Which .node file is loaded: the prebuilt package (with its version) or a build from source. */
function loadedBinary() {
  const file = Object.keys(require.cache).find((f) => f.endsWith('.node'))
  if (!file) return 'unknown binary'
  const pkg = /[\\/]node_modules[\\/](hoot-core-[^\\/]+)[\\/]/.exec(file)
  if (pkg) return `prebuilt ${pkg[1]}@${require(`${pkg[1]}/package.json`).version} (${file})`
  return `built from source (${file})`
}

function loadNative() {
  return require('../lib/index.js')
}

/**
 * The database a command names: --database, else an older spelling (a path argument, --db), else
 * undefined, which openDatabase() reads as $HOOT_DATABASE_URL, else $HOOT_DB_PATH, else
 * ~/.hoot/hoot-mcp.db.
 */
function databaseArg(values, positionals = []) {
  const named = [values.database, values.db, positionals[0]].filter((v) => v !== undefined)
  if (named.length > 1) throw new UsageError('name the database once, with --database <path|url>')
  if (named[0] === '') throw new UsageError('--database needs a path or a postgres:// URL')
  return named[0]
}

/**
 * Runs `work(db)` on the database at `location` and closes it, so that a PostgreSQL pool lets
 * the process exit.
 */
async function withDatabase(location, work) {
  const db = loadNative().openDatabase(location)
  let result
  try {
    result = await work(db)
  } catch (e) {
    // The command's own error is the one to report, not a failure to close after it.
    await db.close().catch(() => {})
    throw e
  }
  await db.close()
  return result
}

/**
 * ` --database <...>` for a command a fix prints: a file by its path; a PostgreSQL URL never in
 * full (it may hold a password), and not at all when it came from $HOOT_DATABASE_URL, the default.
 */
function databaseFlag(db, path, location) {
  if (db.kind === 'sqlite') return ` --database ${path}`
  return location === undefined ? '' : ' --database <url>'
}

function postgresArg(value, name) {
  const url = value ?? process.env.HOOT_DATABASE_URL
  if (!url) throw new UsageError(`${name} <postgres://...> is required (or set HOOT_DATABASE_URL)`)
  if (!/^postgres(ql)?:\/\//i.test(url)) throw new UsageError(`${name} must be a postgres:// URL`)
  return loadNative().openDatabase(url)
}

async function rotateKeys(values, positionals) {
  if (positionals.length || values.kid || values.bits)
    throw new UsageError('--rotate takes only --database and --drop-previous')
  const db = postgresArg(values.database, '--database')
  try {
    const r = await db.rotateKeys({ dropPrevious: values['drop-previous'] === true })
    console.log(`New signing key ${r.kid} in ${(await db.ready()).database}.`)
    console.log(r.kept.length ? `  Still verifying: ${r.kept.join(', ')}` : '  No other key verifies.')
    if (r.removed.length) console.log(`  Removed (their tokens stop verifying): ${r.removed.join(', ')}`)
    console.log('Every replica loads the new key set within its poll interval (1 s by default).')
    return 0
  } finally {
    await db.close()
  }
}

function keygen(values, positionals) {
  if (values.rotate || values.database || values['drop-previous']) {
    if (!values.rotate) throw new UsageError('--database and --drop-previous go with --rotate')
    return rotateKeys(values, positionals)
  }
  const [dir = '.'] = positionals
  const bits = values.bits === undefined ? undefined : Number(values.bits)
  const made = loadNative().generateKeys(resolve(dir), { kid: values.kid, bits })
  console.log(`Wrote a new RS256 key pair (kid ${made.kid}):
  ${made.privateKeyPath}   (secret: never commit or share it)
  ${made.jwksPath}          (public: serve it, or paste it into Portkey)
Start the server from ${resolve(dir)}, or set
  JWT_PRIVATE_KEY_PATH=${made.privateKeyPath}
  JWT_JWKS_PATH=${made.jwksPath}`)
  return 0
}

function purge(values) {
  if (values['inactive-days'] === undefined) throw new UsageError('purge needs --inactive-days <days>')
  const inactiveDays = Number(values['inactive-days'])
  return withDatabase(databaseArg(values), async (db) => {
    const report = await db.purgeInactiveUsers({ inactiveDays, dryRun: values['dry-run'] === true })
    if (values.json) {
      console.log(JSON.stringify(report, null, 2))
      return 0
    }
    const verb = report.dryRun ? 'Would remove' : 'Removed'
    console.log(`${verb} ${report.rows} row(s) of ${report.users} user(s) inactive for more than ${inactiveDays} days.`)
    if (report.adopted) {
      console.log(
        `${report.adopted} user(s) with data but no recorded activity ${report.dryRun ? 'would be' : 'were'} recorded as active now; they go after ${inactiveDays} days without a touch().`,
      )
    }
    return 0
  })
}

/** Backups next to a SQLite file that a migration made before encryption: they hold plaintext. */
function plaintextBackups(path) {
  const { readdirSync } = require('fs')
  const { basename, join } = require('path')
  if (path === ':memory:') return []
  const name = basename(path)
  try {
    return readdirSync(dirname(path))
      .filter((f) => f.startsWith(`${name}.pre-migration-`) && f.endsWith('.bak'))
      .map((f) => join(dirname(path), f))
  } catch {
    return []
  }
}

function encrypt(values, positionals) {
  return withDatabase(databaseArg(values, positionals), async (db) => {
    const report = await db.encrypt({ rotate: values.rotate === true })
    console.log(
      `${values.rotate ? 'Rotated' : 'Encrypted'}: ${report.sealed} value(s) sealed; the database records key(s) ${report.keyIds.join(', ')}.`,
    )
    const status = await db.inspect()
    const kept = status.encryption?.keptAside ?? 0
    if (kept) {
      console.log(
        `Note: ${kept} row(s) a migration kept aside (table hoot_migration_conflicts) hold their values in plaintext: look at them, then delete them.`,
      )
    }
    if (db.kind === 'postgres') {
      console.log(
        'Every server on this database needs the key from now on: the same HOOT_ENCRYPTION_KEY, or a copy of ~/.hoot/keys/encryption-keys.',
      )
    }
    if (db.kind === 'sqlite') {
      for (const backup of plaintextBackups(status.path)) {
        console.log(
          `Note: ${backup} is a backup from before encryption and holds plaintext tokens: delete it or keep it as private.`,
        )
      }
    }
    return 0
  })
}

function decrypt(values, positionals) {
  return withDatabase(databaseArg(values, positionals), async (db) => {
    const report = await db.decrypt()
    console.log(`Decrypted: ${report.opened} value(s) are plaintext again; the database is no longer encrypted.`)
    return 0
  })
}

function adoptLegacy(values) {
  const opts = values['ttl-seconds'] === undefined ? undefined : { ttlSeconds: Number(values['ttl-seconds']) }
  return withDatabase(databaseArg(values), async (db) => {
    const made = await db.legacyTransferCode(opts)
    if (made === null) {
      console.log('No legacy data in this database: nothing to adopt.')
      return 0
    }
    const minutes = Math.round((made.expiresAt - Date.now() / 1000) / 60)
    console.log(`Transfer code for ${made.legacyUserId}: ${made.code}
Enter it in Hoot in the browser that should get this install's servers, within ${minutes} minute(s).`)
    return 0
  })
}

async function copyToPostgres(values, positionals) {
  if (positionals.length || values.database !== undefined)
    throw new UsageError('--from and --to take no other database argument')
  if (!values.from) throw new UsageError('--to needs --from <sqlite file>')
  const db = postgresArg(values.to, '--to')
  try {
    const report = await db.copyFromSqlite(values.from, { force: values.force === true })
    if (values.json) {
      console.log(JSON.stringify(report, null, 2))
      return 0
    }
    const changed = report.tables.reduce((n, t) => n + t.inserted + t.updated, 0)
    console.log(`Copied ${report.from} into ${report.to} in one transaction (${report.users} user(s)):`)
    if (report.legacy)
      console.log(`  The file had Hoot's single-user schema: its rows belong to ${report.legacyUserId}.`)
    for (const t of report.tables.filter((t) => t.rows)) {
      console.log(`  ${t.table}: ${t.rows} row(s), ${t.inserted} new, ${t.updated} updated`)
    }
    if (report.skippedUsers)
      console.log(`  ${report.skippedUsers} user(s) skipped: PostgreSQL revoked them after the file was last written.`)
    if (report.droppedLinks)
      console.log(
        `  ${report.droppedLinks} account link(s) left out: they do not verify under this process's store secret (run with the server's HOOT_STORE_SECRET or HOME to copy them).`,
      )
    if (!changed) console.log('  PostgreSQL already had every row: nothing changed.')
    return 0
  } finally {
    await db.close()
  }
}

function migrate(values, positionals) {
  if (values.from !== undefined || values.to !== undefined) return copyToPostgres(values, positionals)
  if (values.force) throw new UsageError('--force goes with --from and --to')
  const location = databaseArg(values, positionals)
  return withDatabase(location, (db) =>
    db.kind === 'sqlite' ? migrateSqlite(db, location, values) : migratePostgres(db, values),
  )
}

/** SQLite's migration, whose report (legacy rows moved, backup, rows kept aside) only a file has. */
async function migrateSqlite(db, location, values) {
  const report = loadNative().migrateDatabase(location)
  if (values.json) {
    console.log(JSON.stringify(report, null, 2))
    return 0
  }
  const where = (await db.inspect()).path
  if (!report.migrated && !report.userIdsLowered && !report.conflicts) {
    console.log(`${where} is up to date (schema version ${report.schemaVersion}); nothing was migrated.`)
    return 0
  }
  if (report.migrated) {
    console.log(`Migrated ${where} to schema version ${report.schemaVersion}:
  ${report.tokens} OAuth tokens, ${report.clientInfo} client registrations, ${report.verifiers} verifiers
  now belong to ${report.legacyUserId}.
  Backup of the old file: ${report.backupPath}`)
  } else {
    console.log(`Brought ${where} up to date (schema version ${report.schemaVersion}):`)
  }
  if (report.userIdsLowered) {
    console.log(`  ${report.userIdsLowered} row(s) had a user id in upper case; it is now lower case.`)
  }
  if (report.conflicts) {
    console.log(`  ${report.conflicts} row(s) shared a key with another (two NULL server ids, NULL and '', or a user id
  in two cases) and were kept aside, whole, in the table ${report.conflictsTable}: look there before
  deleting any backup.`)
  }
  return 0
}

/**
 * PostgreSQL's schema, made or migrated by ready() under an advisory lock; the version read before
 * says which. What ready() leaves (a table dropped by hand at this version, user ids in upper case
 * another program wrote) is reported, and fails the command.
 */
async function migratePostgres(db, values) {
  const before = (await db.inspect()).schemaVersion
  const status = await db.ready()
  const after = await db.inspect()
  if (values.json) {
    console.log(JSON.stringify({ ...status, previousSchemaVersion: before, upToDate: after.upToDate }, null, 2))
    return after.upToDate ? 0 : 1
  }
  const where = status.database
  if (before === 0) {
    console.log(`Made the schema of ${where} (schema version ${status.schemaVersion}).`)
  } else if (before !== status.schemaVersion) {
    console.log(`Migrated ${where} from schema version ${before} to ${status.schemaVersion}.`)
  } else if (after.upToDate) {
    console.log(`${where} is up to date (schema version ${status.schemaVersion}); nothing was migrated.`)
  } else {
    console.log(`${where} is at schema version ${status.schemaVersion}; nothing was migrated.`)
  }
  if (after.missingTables.length)
    console.log(
      `  It lacks ${after.missingTables.join(', ')}, which a migration at this version does not make again: restore them from a backup (pg_restore -t).`,
    )
  if (after.mixedCaseTables.length)
    console.log(
      `  ${after.mixedCaseTables.join(', ')} hold(s) user ids in upper case, which no store reads: npx hoot-core doctor says more.`,
    )
  return after.upToDate ? 0 : 1
}

function modeOf(path) {
  return statSync(path).mode & 0o777
}

/** `uid N` of a file not owned by this user (or root), else undefined. */
function foreignOwner(path) {
  if (typeof process.geteuid !== 'function') return undefined
  const { uid } = statSync(path)
  return uid === process.geteuid() || uid === 0 ? undefined : `uid ${uid}`
}

/** Where a postgres:// URL points, without its user or password. */
function hostAndDatabase(url) {
  try {
    const { host, pathname } = new URL(url)
    return `${host}${pathname}`
  } catch {
    return 'a URL that does not parse'
  }
}

async function doctor(values) {
  const location = databaseArg(values)
  const findings = []
  const ok = (text) => findings.push({ level: 'ok', text })
  const warn = (text, fix) => findings.push({ level: 'warn', text, fix })
  const problem = (text, fix) => findings.push({ level: 'problem', text, fix })

  let hoot
  try {
    hoot = loadNative()
    ok(`native addon loads: ${loadedBinary()}`)
  } catch (e) {
    // lib/native.js's errors for a missing or broken prebuilt binary name their own fix.
    const explained = e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_DLOPEN_FAILED'
    problem(
      `the native addon does not load: ${String(e.message).split('\n')[0]}`,
      explained
        ? 'run the command the line above names'
        : 'run `npm rebuild hoot-core` (it needs cargo from https://rustup.rs)',
    )
  }

  let db
  if (hoot) {
    try {
      db = hoot.openDatabase(location)
    } catch (e) {
      problem(`database: ${e.message}`)
    }
  }
  const isPostgres = (url) => /^postgres(ql)?:\/\//i.test(url ?? '')
  const serverUrl = process.env.HOOT_DATABASE_URL
  const onPostgres = db ? db.kind === 'postgres' : isPostgres(location ?? serverUrl)
  if (hoot && onPostgres) {
    // The key set lives in the database, where every replica loads it; reading it would be a
    // call that makes the schema first, and doctor changes nothing.
    ok(
      'keys: the key set every server on this PostgreSQL database shares, in the database (each loads it with `await db.loadKeys()`; `npx hoot-core keygen --rotate` makes a new signing key)',
    )
  } else if (hoot && isPostgres(serverUrl)) {
    warn(
      `HOOT_DATABASE_URL puts the store and the key set on PostgreSQL (${hostAndDatabase(serverUrl)}); the database checked below is the SQLite file named`,
      'run doctor without --database to check PostgreSQL; the SQLite checks below are for a file you may still copy from',
    )
  } else if (hoot) {
    try {
      const keys = hoot.loadKeys({ generateIfMissing: false })
      // loadKeys has refused a key file, or a directory above it, that another user owns or can write.
      const where =
        keys.privateKeyPath && process.platform !== 'win32'
          ? `, ${keys.privateKeyPath}: owner uid ${statSync(keys.privateKeyPath).uid}, mode ${modeOf(keys.privateKeyPath).toString(8)}, directory mode ${modeOf(dirname(keys.privateKeyPath)).toString(8)}`
          : keys.privateKeyPath
            ? `, ${keys.privateKeyPath}`
            : ''
      ok(`keys: kid ${keys.kid} (${keys.source}${where}), ${keys.publicKeys} public key(s)`)
      if (keys.privateKeyPath && process.platform !== 'win32' && modeOf(keys.privateKeyPath) & 0o077) {
        problem(
          `the private key ${keys.privateKeyPath} is readable by others (mode ${modeOf(keys.privateKeyPath).toString(8)})`,
          `chmod 600 ${keys.privateKeyPath}`,
        )
      }
    } catch (e) {
      if (e.code === 'ERR_HOOT_KEYS' && e.message.startsWith('No key set found')) {
        warn(
          'no keys yet: the server generates one in ~/.hoot/keys on first start',
          "nothing to do; or run `npx hoot-core keygen` to make Hoot's files yourself",
        )
      } else {
        problem(`keys: ${e.message}`)
      }
    }
  }
  if (db) {
    try {
      checkDatabase(await db.inspect(), db, location, { ok, warn, problem })
    } catch (e) {
      problem(`database: ${e.message}`)
    }
    await db.close().catch((e) => problem(`database: closing it: ${e.message}`))
  }

  const marks = { ok: '✓', warn: '!', problem: '✗' }
  for (const f of findings) {
    console.log(`${marks[f.level]} ${f.text}`)
    if (f.fix) console.log(`  fix: ${f.fix}`)
  }
  const problems = findings.filter((f) => f.level === 'problem').length
  console.log(problems ? `${problems} problem(s) to fix` : 'healthy')
  return problems ? 1 : 0
}

/** Doctor's findings on `status`, what `db.inspect()` read. */
function checkDatabase(status, db, location, { ok, warn, problem }) {
  const sqlite = db.kind === 'sqlite'
  const path = status.path
  const flag = databaseFlag(db, path, location)
  if (sqlite && !status.exists) {
    ok(`database: ${path} does not exist yet; it is created (0600) on first use`)
    return
  }
  if (!sqlite && status.schemaVersion === 0) {
    ok(`database: ${path} has no hoot-core schema yet; the first server makes it (or npx hoot-core migrate${flag})`)
    return
  }
  if (status.legacyTables.length) {
    problem(
      `database: ${path} still has Hoot's single-user tables (${status.legacyTables.join(', ')})`,
      `npx hoot-core migrate${flag}`,
    )
  } else if (status.mixedCaseTables.length) {
    problem(
      `database: ${path} holds user ids in upper case (${status.mixedCaseTables.join(', ')}): one browser in two spellings`,
      sqlite
        ? `npx hoot-core migrate${flag} (it lowers them; rows that would collide are kept aside)`
        : 'hoot-core writes ids in lower case, so another program wrote these, and no store reads them: look at them with psql, then lower or delete them',
    )
  } else if (!status.upToDate) {
    warn(
      `database: ${path} is at schema version ${status.schemaVersion}${status.missingTables.length ? `, without ${status.missingTables.join(', ')}` : ''}`,
      sqlite
        ? `npx hoot-core migrate${flag} (or let the first OAuthStore complete it)`
        : `npx hoot-core migrate${flag}`,
    )
  } else {
    ok(`database: ${path}, schema version ${status.schemaVersion}`)
  }
  if (status.encryption) {
    const e = status.encryption
    const perKey = Object.entries(e.sealed)
      .map(([id, n]) => `${n} sealed with ${id}`)
      .join(', ')
    if (e.encrypted) {
      ok(
        `encryption at rest: on, key(s) ${e.keyIds.join(', ')}${perKey ? `; ${perKey}` : ''}; ${e.plaintext} plaintext value(s) left`,
      )
      if (e.plaintext) warn(`encryption: ${e.plaintext} value(s) are still plaintext`, `npx hoot-core encrypt${flag}`)
    } else if (perKey) {
      problem(
        `encryption at rest: off, yet ${perKey} (its key record was deleted: the next process with the key records it again)`,
        `npx hoot-core decrypt${flag} (with the key), or encrypt it again`,
      )
    } else {
      ok(`encryption at rest: off (npx hoot-core encrypt${flag} seals the stored OAuth values)`)
    }
    if (e.keptAside)
      warn(
        `encryption: ${e.keptAside} row(s) kept aside by a migration are plaintext`,
        'look at hoot_migration_conflicts, then delete its rows',
      )
  }
  if (status.activity) {
    const a = status.activity
    const untracked = a.untracked ? `, ${a.untracked} with data from before activity was recorded` : ''
    ok(
      `users: ${a.users} known, active in the last day ${a.active1d}, 7 days ${a.active7d}, 30 days ${a.active30d}${untracked} (npx hoot-core purge --inactive-days 90 --dry-run${flag} shows what a purge would remove)`,
    )
  }
  if (sqlite && path !== ':memory:' && process.platform !== 'win32') {
    for (const file of [path, `${path}-wal`, `${path}-shm`].filter((f) => existsSync(f))) {
      const owner = foreignOwner(file)
      if (owner)
        problem(
          `database: ${file} is owned by another user (${owner}): they can read and replace every user's OAuth tokens`,
          `move it away, or chown it to this user`,
        )
    }
    if (modeOf(path) & 0o077)
      problem(`database: ${path} is readable by others (mode ${modeOf(path).toString(8)})`, `chmod 600 ${path}`)
    // A problem, not a warning: others can list it, and open any backup or journal a tool
    // makes there with the umask's mode. hoot-core tightens ~/.hoot itself when it opens the database.
    if (modeOf(dirname(path)) & 0o077)
      problem(
        `database: its directory ${dirname(path)} is open to others (mode ${modeOf(dirname(path)).toString(8)})`,
        `chmod 700 ${dirname(path)}`,
      )
  }
}

/**
 * With $HOOT_AUDIT_LOG set, appends every security event of this run to that file as Hoot's
 * AuditLogger writes its entries (`{ timestamp, event, ...details }`, a JSON line each), marked
 * `source: 'hoot-core-cli'`. Returns a function that writes the events still queued, for the end.
 */
function auditLog() {
  const path = process.env.HOOT_AUDIT_LOG
  if (!path) return () => {}
  const { onEvent, flushEvents } = require('../lib/events.js')
  onEvent(({ type, at, ...details }) => {
    const entry = { timestamp: new Date(at).toISOString(), event: type, ...details, source: 'hoot-core-cli' }
    appendFileSync(path, `${JSON.stringify(entry)}\n`, { mode: 0o600 })
  })
  return flushEvents
}

function main(argv) {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE)
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS[name]
  if (!command) throw new UsageError(`unknown command "${name}"`)
  let parsed
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
    })
  } catch (e) {
    throw new UsageError(e.message)
  }
  if (parsed.values.help) {
    console.log(command.usage)
    return 0
  }
  if (parsed.positionals.length > command.maxPositionals) throw new UsageError(`too many arguments for ${name}`)
  return command.run(parsed.values, parsed.positionals)
}

// Commands may be async (PostgreSQL's); a sync one's throw is caught the same way.
let flushAudit = () => {}
Promise.resolve()
  .then(() => {
    flushAudit = auditLog()
    return main(process.argv.slice(2))
  })
  .finally(() => flushAudit())
  .then(
    (code) => {
      process.exitCode = code
    },
    (e) => {
      if (e instanceof UsageError) {
        console.error(`hoot-core: ${e.message}\n\n${USAGE}`)
        process.exitCode = 2
      } else {
        console.error(`hoot-core: ${e.message}${e.code ? ` (${e.code})` : ''}`)
        process.exitCode = 1
      }
    },
  )

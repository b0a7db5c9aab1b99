// Encryption at rest: every stored OAuth value sealed (AES-256-GCM) and bound to its row, keys from
// HOOT_ENCRYPTION_KEY or the key file, and the transitions encrypt / decrypt / rotate. Each case
// runs in processes of its own: the keys are the process environment's.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { chmodSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import {
  delays,
  killDuring,
  makeLegacyDb,
  root,
  runIsolated,
  runIsolatedAsync,
  tempDir,
  withBetterSqlite,
} from './helpers.mjs'
import { openDatabase } from '../lib/index.js'
import { freshDatabase, postgresAvailable, rows } from './postgres.mjs'

const cli = join(root, 'bin', 'hoot-core.js')
const USER = '3b241101-e2bb-4255-8caf-4136c566a962'
const OTHER = '9c5b94b1-35ad-49bb-b118-8e8fc24abf80'
const newKey = () => randomBytes(32).toString('base64url')
const SECRET = 'refresh-secret-' + randomUUID()

/** Every byte of the database's files (main, WAL, backups) as one string. */
function bytesOf(dbPath) {
  return ['', '-wal', '-shm']
    .map((suffix) => dbPath + suffix)
    .filter((f) => existsSync(f))
    .map((f) => readFileSync(f).toString('latin1'))
    .join('')
}

function fill(dbPath, env) {
  return runIsolated(
    `const s = new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)}, encryption: 'on' })
     s.saveTokens('srv', { access_token: 'at', refresh_token: ${JSON.stringify(SECRET)} })
     s.saveClientInformation('srv', { client_id: 'cid', client_secret: ${JSON.stringify(SECRET)} })
     s.saveCodeVerifier('srv', ${JSON.stringify(SECRET)})
     s.saveServerConfig('srv', { url: 'https://mcp.example', auth: { headers: { authorization: ${JSON.stringify(SECRET)} } } })
     s.saveDiscoveryState('srv', { authorizationServerUrl: 'https://as.example/', resourceMetadataUrl: ${JSON.stringify(SECRET)} })
     sqlite.closeDatabase(${JSON.stringify(dbPath)})
     console.log('null')`,
    { env },
  )
}

function readAll(dbPath, env, user = USER) {
  return runIsolated(
    `const s = new hoot.OAuthStore(${JSON.stringify(user)}, { dbPath: ${JSON.stringify(dbPath)} })
     console.log(JSON.stringify({ tokens: s.tokens('srv'), client: s.clientInformation('srv'), verifier: s.codeVerifier('srv') ?? null,
       config: s.serverConfig('srv'), discovery: s.discoveryState('srv') }))`,
    { env },
  )
}

function tryRead(dbPath, env, body) {
  return runIsolated(
    `try { ${body}; console.log('null') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`,
    { env: { ...env, HOOT_DB_PATH: dbPath } },
  )
}

test('with encryption on, every value round-trips, and no byte of the files holds a secret', () => {
  const dbPath = join(tempDir('enc'), 'hoot-mcp.db')
  const env = { HOME: tempDir('enc-home'), HOOT_ENCRYPTION_KEY: newKey() }
  fill(dbPath, env)
  const read = readAll(dbPath, env)
  assert.equal(read.tokens.refresh_token, SECRET)
  assert.equal(read.client.client_secret, SECRET)
  assert.equal(read.verifier, SECRET)
  assert.equal(read.config.auth.headers.authorization, SECRET)
  assert.equal(read.discovery.resourceMetadataUrl, SECRET)
  assert.ok(!bytesOf(dbPath).includes(SECRET.slice(15)), 'a secret in the database files')
  // Hoot's own SQL still opens the file, and sees sealed text.
  const hoot = withBetterSqlite(
    `const db = new Database(input.dbPath, { readonly: true })
     console.log(JSON.stringify(db.prepare('SELECT tokens FROM oauth_tokens').get().tokens))`,
    { dbPath },
  )
  assert.match(hoot, /^hoot-sealed:1:[0-9a-f]{16}:/)
})

test('a sealed value moved to another user, server or table does not open', () => {
  const dbPath = join(tempDir('enc-moved'), 'hoot-mcp.db')
  const env = { HOME: tempDir('enc-moved-home'), HOOT_ENCRYPTION_KEY: newKey() }
  fill(dbPath, env)
  runIsolated(
    `new hoot.OAuthStore(${JSON.stringify(OTHER)}, { dbPath: ${JSON.stringify(dbPath)} }).saveTokens('srv', { mine: true }); console.log('null')`,
    { env },
  )
  withBetterSqlite(
    `const db = new Database(input.dbPath)
     const sealed = db.prepare("SELECT tokens FROM oauth_tokens WHERE user_id = ?").get(input.user).tokens
     db.prepare("UPDATE oauth_tokens SET tokens = ? WHERE user_id = ?").run(sealed, input.other)
     db.prepare("INSERT INTO oauth_tokens (user_id, server_id, tokens) VALUES (?, 'elsewhere', ?)").run(input.user, sealed)
     db.prepare("UPDATE server_configs SET config = ? WHERE user_id = ?").run(sealed, input.user)
     db.close(); console.log('null')`,
    { dbPath, user: USER, other: OTHER },
  )
  for (const [user, call] of [
    [OTHER, `s.tokens('srv')`],
    [USER, `s.tokens('elsewhere')`],
    [USER, `s.serverConfig('srv')`],
  ]) {
    const result = tryRead(dbPath, env, `const s = new hoot.OAuthStore(${JSON.stringify(user)}); ${call}`)
    assert.equal(result?.code, 'ERR_HOOT_DB', call)
    assert.match(result.message, /does not open for its row/)
    assert.ok(!result.message.includes(USER) && !result.message.includes(OTHER))
  }
})

test('without the key, or with another, opening fails with ERR_HOOT_KEYS and writes nothing', () => {
  const dbPath = join(tempDir('enc-nokey'), 'hoot-mcp.db')
  const env = { HOME: tempDir('enc-nokey-home'), HOOT_ENCRYPTION_KEY: newKey() }
  fill(dbPath, env)
  const before = readFileSync(dbPath)
  for (const other of [{ HOME: tempDir('enc-none') }, { HOME: tempDir('enc-wrong'), HOOT_ENCRYPTION_KEY: newKey() }]) {
    const result = tryRead(
      dbPath,
      other,
      `new hoot.OAuthStore(${JSON.stringify(USER)}).saveTokens('srv', { plain: true })`,
    )
    assert.equal(result?.code, 'ERR_HOOT_KEYS')
  }
  assert.deepEqual(readFileSync(dbPath), before)
  assert.equal(readAll(dbPath, env).tokens.refresh_token, SECRET, 'the right key still reads it')
})

test('encrypt, decrypt and rotate: idempotent, with a key file made 0600, and doctor reports the state', () => {
  const dbPath = join(tempDir('enc-cli'), 'hoot-mcp.db')
  const home = tempDir('enc-cli-home')
  makeLegacyDb(dbPath, 2) // Hoot's plaintext, and a migration backup next to it
  const env = { ...process.env, HOME: home }
  delete env.HOOT_ENCRYPTION_KEY
  const run = (...args) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env })
  assert.equal(run('migrate', dbPath).status, 0)
  const first = run('encrypt', dbPath)
  assert.equal(first.status, 0, first.stderr)
  assert.match(first.stdout, /Encrypted: 6 value\(s\) sealed/)
  assert.match(first.stdout, /pre-migration-\d+\.bak is a backup from before encryption and holds plaintext/)
  const keyFile = join(home, '.hoot', 'keys', 'encryption-keys')
  assert.equal((readFileSync(keyFile, 'utf8').match(/^[A-Za-z0-9_-]{43}$/gm) ?? []).length, 1)
  assert.match(run('encrypt', dbPath).stdout, /Encrypted: 0 value\(s\) sealed/, 'again: nothing to do')
  const doctor = run('doctor', '--db', dbPath)
  assert.match(
    doctor.stdout,
    /✓ encryption at rest: on, key\(s\) [0-9a-f]{16}; 6 sealed with [0-9a-f]{16}; 0 plaintext value\(s\) left/,
  )

  const rotated = run('encrypt', dbPath, '--rotate')
  assert.match(rotated.stdout, /Rotated: 6 value\(s\) sealed/)
  assert.equal(
    (readFileSync(keyFile, 'utf8').match(/^[A-Za-z0-9_-]{43}$/gm) ?? []).length,
    2,
    'the old key kept for opening',
  )
  assert.match(run('encrypt', dbPath, '--rotate').stdout, /Rotated: 6 value\(s\) sealed/, 'each rotation a new key')

  assert.match(run('decrypt', dbPath).stdout, /Decrypted: 6 value\(s\) are plaintext again/)
  assert.match(run('decrypt', dbPath).stdout, /Decrypted: 0 value\(s\)/)
  assert.match(run('doctor', '--db', dbPath).stdout, /✓ encryption at rest: off/)
  const plain = withBetterSqlite(
    `const db = new Database(input.dbPath, { readonly: true }); console.log(JSON.stringify(db.prepare('SELECT tokens FROM oauth_tokens LIMIT 1').get().tokens))`,
    { dbPath },
  )
  assert.match(plain, /^\{"access_token":"t\d"\}$/, "Hoot's own code reads it again")
})

test('SIGKILL during encrypt, rotate and decrypt at random moments: every value reads back afterwards', async () => {
  const [oldKey, newerKey] = [newKey(), newKey()]
  const cases = [
    ['encryptDatabase({ dbPath })', oldKey, false],
    ['encryptDatabase({ dbPath, rotate: true })', `${newerKey},${oldKey}`, true],
    ['decryptDatabase({ dbPath })', oldKey, true],
  ]
  for (const [i, [call, key, sealedFirst]] of cases.entries()) {
    for (const delay of delays(23 + i, 3, 60)) {
      const dbPath = join(tempDir('enc-kill'), 'hoot-mcp.db')
      const home = tempDir('enc-kill-home')
      runIsolated(
        `new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} }).touch(); console.log('null')`,
        {
          env: { HOME: home },
        },
      )
      withBetterSqlite(
        `const db = new Database(input.dbPath)
         db.transaction(() => { for (let i = 0; i < 3000; i++) db.prepare('INSERT INTO oauth_tokens (user_id, server_id, tokens) VALUES (?, ?, ?)').run(input.user, 's' + i, JSON.stringify({ i })) })()
         db.close(); console.log('null')`,
        { dbPath, user: USER },
      )
      if (sealedFirst)
        runIsolated(`sqlite.encryptDatabase({ dbPath: ${JSON.stringify(dbPath)} }); console.log('null')`, {
          env: { HOME: home, HOOT_ENCRYPTION_KEY: oldKey },
        })
      const saved = { HOME: process.env.HOME, HOOT_ENCRYPTION_KEY: process.env.HOOT_ENCRYPTION_KEY }
      Object.assign(process.env, { HOME: home, HOOT_ENCRYPTION_KEY: key })
      try {
        await killDuring(
          `const dbPath = ${JSON.stringify(dbPath)}; writeSync(1, 'go\\n'); hoot.${call}; writeSync(1, 'done\\n')`,
          delay,
        )
      } finally {
        for (const [name, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[name]
          else process.env[name] = value
        }
      }
      const values = runIsolated(
        `const s = new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} })
         let ok = 0; for (let i = 0; i < 3000; i++) if (s.tokens('s' + i).i === i) ok++
         console.log(ok)`,
        { env: { HOME: home, HOOT_ENCRYPTION_KEY: `${newerKey},${oldKey}` } },
      )
      assert.equal(values, 3000, `${call} killed after ${delay} ms`)
    }
  }
})

test("moving a user's sealed data seals it again for the new user, who reads it", () => {
  const dbPath = join(tempDir('enc-move'), 'hoot-mcp.db')
  const env = { HOME: tempDir('enc-move-home'), HOOT_ENCRYPTION_KEY: newKey() }
  fill(dbPath, env)
  runIsolated(
    `sqlite.moveUserData(${JSON.stringify(USER)}, ${JSON.stringify(OTHER)}, { dbPath: ${JSON.stringify(dbPath)} }); console.log('null')`,
    {
      env,
    },
  )
  const read = readAll(dbPath, env, OTHER)
  assert.equal(read.tokens.refresh_token, SECRET)
  assert.equal(read.verifier, SECRET)
  assert.equal(read.discovery.resourceMetadataUrl, SECRET)
  assert.equal(readAll(dbPath, env).tokens, undefined, 'the source is empty')
})

test('a server open before another process encrypts seals its next write, and one open before a decrypt stops sealing', async () => {
  const dbPath = join(tempDir('enc-live'), 'hoot-mcp.db')
  const env = { HOME: tempDir('enc-live-home'), HOOT_ENCRYPTION_KEY: newKey() }
  const server = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import * as hoot from ${JSON.stringify(new URL('../lib/index.js', import.meta.url).href)}
       import * as sqlite from ${JSON.stringify(new URL('../lib/sqlite.js', import.meta.url).href)}
       const s = new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} })
       s.saveTokens('before', { v: 1 })
       process.stdout.write('open\\n')
       let step = 0
       process.stdin.on('data', () => {
         step++
         s.saveTokens('step' + step, { v: step })
         process.stdout.write(JSON.stringify({ read: s.tokens('before') }) + '\\n')
       })`,
    ],
    { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] },
  )
  const lines = []
  const next = () =>
    new Promise((resolve) => {
      const take = () =>
        lines.length
          ? resolve(lines.shift())
          : server.stdout.once('data', (c) => (lines.push(...String(c).split('\n').filter(Boolean)), take()))
      take()
    })
  try {
    assert.equal(await next(), 'open')
    await runIsolatedAsync(`sqlite.encryptDatabase({ dbPath: ${JSON.stringify(dbPath)} }); console.log('null')`, env)
    server.stdin.write('1\n')
    assert.deepEqual(JSON.parse(await next()), { read: { v: 1 } }, 'it reads what the other process sealed')
    const stored = () =>
      withBetterSqlite(
        `const db = new Database(input.dbPath, { readonly: true }); console.log(JSON.stringify(Object.fromEntries(db.prepare('SELECT server_id, tokens FROM oauth_tokens').all().map((r) => [r.server_id, r.tokens.slice(0, 14)]))))`,
        { dbPath },
      )
    assert.equal(stored().step1, 'hoot-sealed:1:', 'its write after the encrypt is sealed')
    await runIsolatedAsync(`sqlite.decryptDatabase({ dbPath: ${JSON.stringify(dbPath)} }); console.log('null')`, env)
    server.stdin.write('2\n')
    await next()
    assert.equal(stored().step2, '{"v":2}', 'its write after the decrypt is plaintext')
  } finally {
    server.kill()
  }
})

test('processes starting at once with HOOT_ENCRYPT_AT_REST=1 agree on one key file, and rotations at once lose no key', async () => {
  const home = tempDir('enc-race-home')
  const env = { HOME: home, HOOT_ENCRYPT_AT_REST: '1', HOOT_ENCRYPTION_KEY: '' }
  const paths = Array.from({ length: 6 }, (_, i) => join(tempDir(`enc-race-${i}`), 'hoot-mcp.db'))
  await Promise.all(
    paths.map((dbPath) =>
      runIsolatedAsync(
        `new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} }).saveTokens('srv', { secret: ${JSON.stringify(SECRET)} }); console.log('null')`,
        env,
      ),
    ),
  )
  const keyFile = join(home, '.hoot', 'keys', 'encryption-keys')
  assert.equal((readFileSync(keyFile, 'utf8').match(/^[A-Za-z0-9_-]{43}$/gm) ?? []).length, 1, 'one key')
  await Promise.all(
    paths.map((dbPath) =>
      runIsolatedAsync(
        `sqlite.encryptDatabase({ dbPath: ${JSON.stringify(dbPath)}, rotate: true }); console.log('null')`,
        env,
      ),
    ),
  )
  assert.equal(
    (readFileSync(keyFile, 'utf8').match(/^[A-Za-z0-9_-]{43}$/gm) ?? []).length,
    7,
    'every rotation added its key',
  )
  for (const dbPath of paths)
    assert.equal(readAll(dbPath, { HOME: home, HOOT_ENCRYPTION_KEY: '' }).tokens.secret, SECRET)
})

test('after encrypt no plaintext is left in the file, and a key file others can read is refused', () => {
  const dbPath = join(tempDir('enc-free'), 'hoot-mcp.db')
  const home = tempDir('enc-free-home')
  runIsolated(
    `const s = new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} })
     for (let i = 0; i < 200; i++) s.saveTokens('s' + i, { refresh_token: ${JSON.stringify(SECRET)} + i })
     sqlite.encryptDatabase({ dbPath: ${JSON.stringify(dbPath)} }); sqlite.closeDatabase(${JSON.stringify(dbPath)}); console.log('null')`,
    { env: { HOME: home, HOOT_ENCRYPTION_KEY: '' } },
  )
  assert.ok(!bytesOf(dbPath).includes(SECRET.slice(15)), 'a plaintext token left in the file')
  chmodSync(join(home, '.hoot', 'keys', 'encryption-keys'), 0o644)
  const refused = tryRead(
    dbPath,
    { HOME: home, HOOT_ENCRYPTION_KEY: '' },
    `new hoot.OAuthStore(${JSON.stringify(USER)}).tokens('s1')`,
  )
  assert.equal(refused?.code, 'ERR_HOOT_KEYS')
  assert.match(refused.message, /others can read it \(mode 644\); chmod 600/)
})

/** Runs `sql` with Debian's sqlite3 in a process of its own (an operator's shell, or an attacker's). */
function sqlite(dbPath, sql) {
  const child = spawnSync('sqlite3', ['-json', dbPath, sql], { encoding: 'utf8', timeout: 10_000 })
  assert.equal(child.status, 0, child.stderr)
  return child.stdout.trim() ? JSON.parse(child.stdout) : []
}

/** What each row of oauth_tokens holds: its key id when sealed, else 'plain'. */
function storedKeys(dbPath) {
  return Object.fromEntries(
    sqlite(dbPath, 'SELECT server_id, tokens FROM oauth_tokens').map((r) => [
      r.server_id,
      r.tokens.startsWith('hoot-sealed:1:') ? r.tokens.slice(14, 30) : 'plain',
    ]),
  )
}

const recordedKeys = (dbPath) =>
  sqlite(dbPath, 'SELECT key_id FROM hoot_encryption ORDER BY key_id').map((r) => r.key_id)

/**
 * A server process with one store open on `dbPath` (`options`: the store's), taking commands on
 * stdin: `w <server>` saves tokens holding the secret, `r <server>` reads them back. Each answers one
 * JSON line: `{ ok, value }` or `{ code }`.
 */
function startServer(dbPath, env, options = {}) {
  const server = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import * as hoot from ${JSON.stringify(new URL('../lib/index.js', import.meta.url).href)}
       import * as sqlite from ${JSON.stringify(new URL('../lib/sqlite.js', import.meta.url).href)}
       const s = new hoot.OAuthStore(${JSON.stringify(USER)}, ${JSON.stringify({ dbPath, ...options })})
       s.saveTokens('first', { refresh_token: ${JSON.stringify(SECRET)} })
       process.stdout.write(JSON.stringify({ ok: true }) + '\\n')
       let buffered = ''
       process.stdin.on('data', (chunk) => {
         buffered += chunk
         let end
         while ((end = buffered.indexOf('\\n')) >= 0) {
           const [op, serverId] = buffered.slice(0, end).split(' ')
           buffered = buffered.slice(end + 1)
           let answer
           try {
             const other = () => new hoot.OAuthStore(${JSON.stringify(OTHER)}, ${JSON.stringify({ dbPath })})
             answer = op === 'w'
               ? (s.saveTokens(serverId, { refresh_token: ${JSON.stringify(SECRET)} }), { ok: true })
               : op === 'm'
                 ? (sqlite.moveUserData(${JSON.stringify(USER)}, ${JSON.stringify(OTHER)}, ${JSON.stringify({ dbPath, onConflict: 'keep-target' })}), { ok: true })
                 : op === 'o'
                   ? { ok: true, value: other().tokens(serverId) ?? null }
                   : { ok: true, value: s.tokens(serverId) ?? null }
           } catch (e) {
             answer = { code: e.code }
           }
           process.stdout.write(JSON.stringify(answer) + '\\n')
         }
       })`,
    ],
    { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] },
  )
  const lines = []
  const waiting = []
  let out = ''
  server.stdout.setEncoding('utf8')
  server.stdout.on('data', (chunk) => {
    out += chunk
    let end
    while ((end = out.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(out.slice(0, end)))
      out = out.slice(end + 1)
    }
    while (lines.length && waiting.length) waiting.shift()(lines.shift())
  })
  const next = () => new Promise((resolve) => (lines.length ? resolve(lines.shift()) : waiting.push(resolve)))
  return {
    ready: next(),
    /** Sends one command and resolves to its answer. */
    ask(command) {
      server.stdin.write(command + '\n')
      return next()
    },
    stop() {
      server.kill()
    },
  }
}

/** Runs the CLI with `env` (HOME and keys), asserting it succeeded. */
function runCli(env, ...args) {
  const run = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, HOOT_ENCRYPTION_KEY: '', HOOT_ENCRYPT_AT_REST: '', ...env },
    timeout: 30_000,
  })
  assert.equal(run.status, 0, run.stderr)
  return run.stdout
}

for (const [asked, options, extraEnv] of [
  ["encryption: 'on'", { encryption: 'on' }, {}],
  ['HOOT_ENCRYPT_AT_REST=1', {}, { HOOT_ENCRYPT_AT_REST: '1' }],
]) {
  test(
    `a server that asked for encryption (${asked}) never writes plaintext: a deleted or forged row does not turn it off, a real decrypt does`,
    { timeout: 60_000 },
    async () => {
      const dbPath = join(tempDir('enc-deleted'), 'hoot-mcp.db')
      const env = { HOME: tempDir('enc-deleted-home'), HOOT_ENCRYPTION_KEY: newKey() }
      // Encrypted and decrypted once before: the database holds a genuine, older decrypt record.
      fill(dbPath, env)
      runCli(env, 'decrypt', dbPath)
      const server = startServer(dbPath, { ...env, ...extraEnv }, options)
      try {
        assert.deepEqual(await server.ready, { ok: true })
        const [id] = recordedKeys(dbPath)
        assert.match(id, /^[0-9a-f]{16}$/)

        sqlite(dbPath, 'DELETE FROM hoot_encryption')
        assert.deepEqual(await server.ask('w deleted'), { ok: true })
        assert.equal(storedKeys(dbPath).deleted, id, 'sealed after the row was deleted')
        assert.deepEqual(recordedKeys(dbPath), [id], 'and the key id recorded again')

        // A decrypt record that no key proves, however new it claims to be, changes nothing.
        const future = Date.now() + 86_400_000
        sqlite(
          dbPath,
          `DELETE FROM hoot_encryption; UPDATE hoot_encryption_decrypted SET decrypted_at = ${future}, proof = '${future}'`,
        )
        assert.deepEqual(await server.ask('w forged'), { ok: true })
        assert.equal(storedKeys(dbPath).forged, id, 'sealed beside a forged decrypt record')

        // A real decrypt, made with the key, does turn sealing off.
        runCli(env, 'decrypt', dbPath)
        assert.deepEqual(await server.ask('w decrypted'), { ok: true })
        const after = storedKeys(dbPath)
        assert.equal(after.decrypted, 'plain', 'plaintext after a real decrypt')
        assert.equal(after.deleted, 'plain', 'the decrypt opened what it sealed')
        assert.deepEqual(await server.ask('r deleted'), { ok: true, value: { refresh_token: SECRET } })
      } finally {
        server.stop()
      }
    },
  )
}

test('a process that did not ask for encryption but has the key seals beside sealed rows whose key row was deleted', () => {
  const dbPath = join(tempDir('enc-orphan'), 'hoot-mcp.db')
  const env = { HOME: tempDir('enc-orphan-home'), HOOT_ENCRYPTION_KEY: newKey() }
  fill(dbPath, env)
  const [id] = recordedKeys(dbPath)
  sqlite(dbPath, 'DELETE FROM hoot_encryption')
  runIsolated(
    `const s = new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} })
     s.saveTokens('later', { refresh_token: ${JSON.stringify(SECRET)} }); sqlite.closeDatabase(${JSON.stringify(dbPath)}); console.log('null')`,
    { env },
  )
  assert.equal(storedKeys(dbPath).later, id, 'its write is sealed')
  assert.deepEqual(recordedKeys(dbPath), [id], 'and the database records the key again')
  assert.ok(!bytesOf(dbPath).includes(SECRET.slice(15)), 'no plaintext secret in the files')
})

test('sealed values behind more than 1,000 newer plaintext rows still keep a process that has the key sealing', () => {
  const dbPath = join(tempDir('enc-hidden'), 'hoot-mcp.db')
  const env = { HOME: tempDir('enc-hidden-home'), HOOT_ENCRYPTION_KEY: newKey() }
  fill(dbPath, env)
  const [id] = recordedKeys(dbPath)
  // A writer without the key: the key row gone, and 1,500 plaintext rows written after the sealed ones.
  sqlite(
    dbPath,
    'DELETE FROM hoot_encryption;' +
      [
        ['oauth_tokens', 'tokens'],
        ['oauth_client_info', 'client_info'],
        ['oauth_verifiers', 'verifier'],
        ['server_configs', 'config'],
        ['hoot_oauth_discovery', 'state'],
      ]
        .map(
          ([table, column]) =>
            `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
             INSERT INTO ${table} (user_id, server_id, ${column}) SELECT '${OTHER}', 'plain-' || i, '{}' FROM n;`,
        )
        .join('\n'),
  )
  runIsolated(
    `const s = new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} })
     s.saveTokens('later', { refresh_token: ${JSON.stringify(SECRET)} }); sqlite.closeDatabase(${JSON.stringify(dbPath)}); console.log('null')`,
    { env },
  )
  assert.equal(storedKeys(dbPath).later, id, 'its write is sealed')
})

test(
  'after encrypt --rotate, a running server seals with the new key from the key file and never records the old one again',
  { timeout: 60_000 },
  async () => {
    const dbPath = join(tempDir('enc-rotate-live'), 'hoot-mcp.db')
    const env = { HOME: tempDir('enc-rotate-live-home') } // keys from the key file
    const server = startServer(dbPath, env, { encryption: 'on' })
    try {
      assert.deepEqual(await server.ready, { ok: true })
      const [old] = recordedKeys(dbPath)
      runCli(env, 'encrypt', dbPath, '--rotate')
      const [current] = recordedKeys(dbPath)
      assert.notEqual(current, old)
      assert.deepEqual(await server.ask('w after'), { ok: true })
      assert.equal(storedKeys(dbPath).after, current, 'sealed with the new key')
      assert.deepEqual(recordedKeys(dbPath), [current], 'the old key id is not written back')
      assert.deepEqual(
        await server.ask('r first'),
        { ok: true, value: { refresh_token: SECRET } },
        'it reads what the rotation sealed again',
      )
    } finally {
      server.stop()
    }
  },
)

test(
  'after encrypt --rotate, a running server moving a user (its first call since) opens and seals with the new key',
  { timeout: 60_000 },
  async () => {
    const dbPath = join(tempDir('enc-rotate-move'), 'hoot-mcp.db')
    const env = { HOME: tempDir('enc-rotate-move-home') }
    const server = startServer(dbPath, env, { encryption: 'on' })
    try {
      assert.deepEqual(await server.ready, { ok: true })
      runCli(env, 'encrypt', dbPath, '--rotate')
      const [current] = recordedKeys(dbPath)
      assert.deepEqual(await server.ask('m all'), { ok: true })
      assert.deepEqual(await server.ask('o first'), { ok: true, value: { refresh_token: SECRET } })
      assert.equal(storedKeys(dbPath).first, current, 'moved values sealed with the new key')
      assert.deepEqual(recordedKeys(dbPath), [current], 'the old key id is not written back by the move')
    } finally {
      server.stop()
    }
  },
)

test(
  'after encrypt --rotate with a new HOOT_ENCRYPTION_KEY, a server still on the old key refuses to write (ERR_HOOT_KEYS)',
  { timeout: 60_000 },
  async () => {
    const dbPath = join(tempDir('enc-rotate-env'), 'hoot-mcp.db')
    const [oldKey, newerKey] = [newKey(), newKey()]
    const home = tempDir('enc-rotate-env-home')
    const server = startServer(dbPath, { HOME: home, HOOT_ENCRYPTION_KEY: oldKey }, { encryption: 'on' })
    try {
      assert.deepEqual(await server.ready, { ok: true })
      runCli({ HOME: home, HOOT_ENCRYPTION_KEY: `${newerKey},${oldKey}` }, 'encrypt', dbPath, '--rotate')
      const [current] = recordedKeys(dbPath)
      const before = storedKeys(dbPath)
      assert.deepEqual(await server.ask('w after'), { code: 'ERR_HOOT_KEYS' })
      assert.deepEqual(storedKeys(dbPath), before, 'nothing written')
      assert.deepEqual(recordedKeys(dbPath), [current], 'the old key id is not written back')
    } finally {
      server.stop()
    }
  },
)

describe('encryption at rest on PostgreSQL', () => {
  if (!postgresAvailable('encryption at rest on PostgreSQL')) return

  /** Runs `body` with `env` as the process's keys and home, restoring them after. */
  async function withEnv(env, body) {
    const saved = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]))
    Object.assign(process.env, env)
    try {
      return await body()
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
    }
  }

  const keyOf = async (url, serverId) => {
    const [{ tokens }] = await rows(url, 'SELECT tokens FROM oauth_tokens WHERE server_id = $1', [serverId])
    return tokens.startsWith('hoot-sealed:1:') ? tokens.slice(14, 30) : 'plain'
  }
  const recorded = async (url) => (await rows(url, 'SELECT key_id FROM hoot_encryption')).map((r) => r.key_id)

  test('a deleted key row turns sealing off for no process that has the key', { timeout: 60_000 }, async () => {
    const url = await freshDatabase('enc_deleted')
    const env = { HOME: tempDir('enc-pg-home'), HOOT_ENCRYPTION_KEY: newKey(), HOOT_ENCRYPT_AT_REST: '' }
    await withEnv(env, async () => {
      const asked = openDatabase(url, { encryption: 'on' })
      await asked.store(USER).saveTokens('first', { refresh_token: SECRET })
      const [id] = await recorded(url)
      assert.equal(await keyOf(url, 'first'), id)
      await rows(url, 'DELETE FROM hoot_encryption')
      await asked.store(USER).saveTokens('running', { refresh_token: SECRET })
      assert.equal(await keyOf(url, 'running'), id, 'a running store that asked keeps sealing')
      await asked.close()

      // A process that did not ask, with the key, beside the sealed rows: it seals, and records it.
      await rows(url, 'DELETE FROM hoot_encryption')
      const plain = openDatabase(url)
      await plain.store(USER).saveTokens('later', { refresh_token: SECRET })
      assert.equal(await keyOf(url, 'later'), id, 'sealed beside the sealed rows')
      assert.deepEqual(await recorded(url), [id])
      assert.deepEqual(await plain.store(USER).tokens('later'), { refresh_token: SECRET })
      await plain.close()
    })
  })

  test(
    'sealed values behind more than 1,000 older plaintext rows keep a process that has the key sealing',
    { timeout: 60_000 },
    async () => {
      const url = await freshDatabase('enc_behind_plain')
      const env = { HOME: tempDir('enc-pg-home'), HOOT_ENCRYPTION_KEY: newKey(), HOOT_ENCRYPT_AT_REST: '' }
      await withEnv(env, async () => {
        const first = openDatabase(url)
        await first.ready()
        await first.close()
        // Older plaintext rows first, in the table's physical order, then one sealed value.
        await rows(
          url,
          "INSERT INTO oauth_tokens (user_id, server_id, tokens) SELECT $1, 'plain-' || n, '{}' FROM generate_series(1, 1500) AS n",
          [USER],
        )
        const asked = openDatabase(url, { encryption: 'on' })
        await asked.store(USER).saveTokens('sealed', { refresh_token: SECRET })
        await asked.close()
        const [id] = await recorded(url)
        assert.equal(await keyOf(url, 'sealed'), id)

        await rows(url, 'DELETE FROM hoot_encryption')
        const plain = openDatabase(url)
        await plain.store(USER).saveTokens('later', { refresh_token: SECRET })
        assert.equal(await keyOf(url, 'later'), id, 'the sealed value is found past the plaintext rows')
        assert.deepEqual(await recorded(url), [id])
        await plain.close()
      })
    },
  )
})

// `npx hoot-core migrate --from <sqlite> --to postgres://...`: Hoot's legacy file and hoot-core's
// current one copied into PostgreSQL, read back through the PostgreSQL store; a second copy of a
// file is refused without --force and, forced, changes nothing that is the same, never lowers a
// revocation and never brings back a user forgotten on PostgreSQL since; the file is never
// changed; a copy killed with SIGKILL mid-transaction leaves nothing; a server that stops
// answering mid-copy fails it within the call timeout.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { copyFileSync } from 'node:fs'
import net from 'node:net'
import { describe, test } from 'node:test'
import { promisify } from 'node:util'

import { OAuthStore, openDatabase } from '../lib/index.js'
import { cacheFavicon, closeDatabase, userIdForAccount } from '../lib/sqlite.js'
import { makeLegacyDb, root, tempDir, withBetterSqlite } from './helpers.mjs'
import { admin, eventually, freshDatabase, postgresAvailable, rows } from './postgres.mjs'

// A home of its own for this process and the copies it runs: the store secret is made in ~/.hoot/keys.
process.env.HOME = tempDir('copy-home')

const CLI = join(root, 'bin', 'hoot-core.js')
const run = promisify(execFile)
const copy = async (from, to, ...more) => copyIn(process.env, from, to, ...more)
/** `copy` in a process with the environment `env`. */
const copyIn = async (env, from, to, ...more) =>
  JSON.parse(
    (
      await run(process.execPath, [CLI, 'migrate', '--from', from, '--to', to, '--json', ...more], {
        env,
        timeout: 60_000,
      })
    ).stdout,
  )
/** A copy that must fail: its exit code and stderr. */
const refused = (from, to, ...more) => refusedIn(process.env, from, to, ...more)
/** `refused` in a process with the environment `env`. */
const refusedIn = (env, from, to, ...more) =>
  run(process.execPath, [CLI, 'migrate', '--from', from, '--to', to, ...more], { env, timeout: 60_000 }).then(
    () => assert.fail('the copy ran'),
    (e) => ({ code: e.code, stderr: e.stderr }),
  )
const TIMEOUT = { timeout: 120_000 }
const digest = (path) => createHash('sha256').update(readFileSync(path)).digest('hex')
const table = (report, name) => report.tables.find((t) => t.table === name)

describe('SQLite → PostgreSQL copy', () => {
  if (!postgresAvailable('migrate --from --to')) return

  test("Hoot's legacy file: every row, under its legacy user, once", TIMEOUT, async () => {
    const file = join(tempDir('copy-legacy'), 'hoot-mcp.db')
    makeLegacyDb(file, 25)
    const before = digest(file)
    const url = await freshDatabase('copy_legacy')
    const report = await copy(file, url)
    assert.equal(report.legacy, true)
    assert.match(report.legacyUserId, /^legacy-user-\d+$/)
    assert.equal(report.users, 1)
    for (const name of ['oauth_tokens', 'oauth_client_info', 'oauth_verifiers']) {
      assert.deepEqual(table(report, name), { table: name, rows: 25, inserted: 25, updated: 0 })
    }
    assert.equal(digest(file), before, 'the file is only read')
    const db = openDatabase(url)
    const store = db.store(report.legacyUserId)
    assert.deepEqual(await store.tokens('s7'), { access_token: 't7' })
    assert.deepEqual(await store.clientInformation('s24'), { client_id: 'c24' })
    assert.equal((await store.servers()).length, 25)

    const second = await refused(file, url)
    assert.equal(second.code, 1)
    assert.match(second.stderr, /ERR_HOOT_DB|copied there before/)
    assert.match(second.stderr, /--force/)
    const again = await copy(file, url, '--force')
    assert.equal(again.legacyUserId, report.legacyUserId, 'the same legacy user')
    assert.ok(
      again.tables.every((t) => t.inserted === 0 && t.updated === 0),
      'a forced second run changes nothing that is the same',
    )
    await db.close()
  })

  test("hoot-core's current file: every table, users apart; a changed row is taken again", TIMEOUT, async () => {
    const file = join(tempDir('copy-current'), 'hoot-mcp.db')
    const [a, b] = [randomUUID(), randomUUID()]
    for (const [user, n] of [
      [a, 1],
      [b, 2],
    ]) {
      const store = new OAuthStore(user, { dbPath: file })
      store.saveTokens('srv', { access_token: `token-${n}` })
      store.saveClientInformation('srv', { client_id: `client-${n}` })
      store.saveCodeVerifier('srv', `verifier-${n}`)
      store.saveServerConfig('srv', { url: `https://mcp-${n}.example` })
      store.saveDiscoveryState('srv', { authorizationServerUrl: `https://auth-${n}.example` })
      store.touch()
    }
    cacheFavicon('https://mcp-1.example', 'https://mcp-1.example/favicon.ico', undefined, { dbPath: file })
    closeDatabase(file)
    const url = await freshDatabase('copy_current')
    const report = await copy(file, url)
    assert.equal(report.legacy, false)
    assert.equal(report.users, 2)
    for (const name of [
      'oauth_tokens',
      'oauth_client_info',
      'oauth_verifiers',
      'server_configs',
      'hoot_oauth_discovery',
      'hoot_users',
    ]) {
      assert.equal(table(report, name).inserted, 2, name)
    }
    assert.equal(table(report, 'favicon_cache').inserted, 1)
    const db = openDatabase(url)
    for (const [user, n] of [
      [a, 1],
      [b, 2],
    ]) {
      const store = db.store(user)
      assert.deepEqual(await store.tokens('srv'), { access_token: `token-${n}` })
      assert.equal(await store.codeVerifier('srv'), `verifier-${n}`)
      assert.deepEqual(await store.serverConfig('srv'), { url: `https://mcp-${n}.example` })
      assert.deepEqual(await store.discoveryState('srv'), { authorizationServerUrl: `https://auth-${n}.example` })
    }
    assert.equal(await db.cachedFavicon('https://mcp-1.example'), 'https://mcp-1.example/favicon.ico')

    new OAuthStore(a, { dbPath: file }).saveTokens('srv', { access_token: 'rotated' })
    closeDatabase(file)
    const again = await copy(file, url, '--force')
    assert.deepEqual(table(again, 'oauth_tokens'), { table: 'oauth_tokens', rows: 2, inserted: 0, updated: 1 })
    assert.deepEqual(await db.store(a).tokens('srv'), { access_token: 'rotated' })
    await db.close()
  })

  test('a copy killed with SIGKILL inside its transaction leaves PostgreSQL untouched', TIMEOUT, async () => {
    const file = join(tempDir('copy-kill'), 'hoot-mcp.db')
    const users = Array.from({ length: 200 }, () => randomUUID())
    new OAuthStore(users[0], { dbPath: file }).saveTokens('warm', {})
    closeDatabase(file)
    withBetterSqlite(
      `const db = new Database(input.path)
       const insert = db.prepare('INSERT INTO oauth_tokens (user_id, server_id, tokens) VALUES (?, ?, ?)')
       db.transaction(() => { for (const u of input.users) for (let i = 0; i < 300; i++) insert.run(u, 's' + i, JSON.stringify({ access_token: 'x'.repeat(200) + i })) })()
       db.close(); console.log('null')`,
      { path: file, users },
    )
    const url = await freshDatabase('copy_kill', { application_name: 'hoot-copy-kill' })
    const name = new URL(url).pathname.slice(1)
    const made = openDatabase(url) // the schema made first, so only the copy is in flight
    await made.ready()
    await made.close()
    const child = spawn(process.execPath, [CLI, 'migrate', '--from', file, '--to', url], { stdio: 'ignore' })
    const exited = new Promise((r) => child.once('exit', (code, signal) => r(signal ?? code)))
    // Killed once PostgreSQL shows it inside its transaction (rows sent, not committed).
    await eventually(
      async () => {
        const [{ n }] = (
          await admin(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'hoot-copy-kill' AND xact_start IS NOT NULL AND query ILIKE 'INSERT INTO oauth_tokens%'",
            [name],
          )
        ).rows
        return n > 0
      },
      60_000,
      'the copy inside its transaction',
    )
    child.kill('SIGKILL')
    assert.equal(await exited, 'SIGKILL')
    await eventually(
      async () => {
        const [{ n }] = (
          await admin(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'hoot-copy-kill'",
            [name],
          )
        ).rows
        return n === 0
      },
      10_000,
      'the killed connection gone',
    )
    assert.deepEqual(await rows(url, 'SELECT count(*)::int AS n FROM oauth_tokens'), [{ n: 0 }], 'nothing half copied')
    const report = await copy(file, url)
    assert.equal(table(report, 'oauth_tokens').inserted, 60_001)
    assert.deepEqual(await rows(url, 'SELECT count(*)::int AS n FROM oauth_tokens'), [{ n: 60_001 }])
  })

  test('a second copy never lowers a revocation nor brings back a user forgotten on PostgreSQL', TIMEOUT, async () => {
    const dir = tempDir('copy-forgotten')
    const file = join(dir, 'hoot-mcp.db')
    const [forgotten, revoked, kept] = [randomUUID(), randomUUID(), randomUUID()]
    for (const user of [forgotten, revoked, kept]) {
      const store = new OAuthStore(user, { dbPath: file })
      store.saveTokens('srv', { access_token: `token-${user}` })
      store.saveServerConfig('srv', { url: 'https://mcp.example' })
      store.touch()
    }
    closeDatabase(file)
    // A backup of the same file, taken with it (never copied yet).
    const backup = join(dir, 'backup.db')
    copyFileSync(file, backup)
    const url = await freshDatabase('copy_forgotten')
    assert.equal((await copy(file, url)).users, 3)

    // On PostgreSQL, after the file was taken: one user does "forget me", one is revoked.
    const db = openDatabase(url)
    await db.store(forgotten).deleteAll({ revokeTokens: true })
    await db.revokeUserTokens(revoked)
    const revocations = async () =>
      Object.fromEntries(
        (await rows(url, 'SELECT user_id, revoked_before FROM hoot_revocations')).map((r) => [
          r.user_id,
          Number(r.revoked_before),
        ]),
      )
    const before = await revocations()
    assert.ok(before[forgotten] > 0 && before[revoked] > 0)
    const userRows = async (user) =>
      (
        await rows(
          url,
          `SELECT (SELECT count(*) FROM oauth_tokens WHERE user_id = $1) + (SELECT count(*) FROM server_configs
           WHERE user_id = $1) + (SELECT count(*) FROM hoot_users WHERE user_id = $1) AS n`,
          [user],
        )
      )[0].n
    assert.equal(Number(await userRows(forgotten)), 0)

    // The same file again: refused, PostgreSQL untouched.
    const second = await refused(file, url)
    assert.equal(second.code, 1)
    assert.match(second.stderr, /copied there before/)
    // Forced, and the backup (a file never copied): the forgotten user stays gone, nothing lowered.
    for (const [from, more] of [
      [file, ['--force']],
      [backup, []],
    ]) {
      const report = await copy(from, url, ...more)
      assert.equal(report.skippedUsers, 2, `${from}: the forgotten and the revoked user are skipped`)
      assert.equal(report.users, 1, from)
      assert.equal(Number(await userRows(forgotten)), 0, `${from}: the forgotten user's rows stay gone`)
      assert.deepEqual(await revocations(), before, `${from}: no revocation lowered`)
      assert.deepEqual(await db.store(revoked).tokens('srv'), { access_token: `token-${revoked}` })
      assert.deepEqual(await db.store(kept).tokens('srv'), { access_token: `token-${kept}` })
    }
    await db.close()
  })

  test("a file's account links: never dropped unseen, and a copy never makes a store secret", TIMEOUT, async () => {
    const file = join(tempDir('copy-links'), 'hoot-mcp.db')
    const user = randomUUID()
    const store = new OAuthStore(user, { dbPath: file })
    store.saveTokens('srv', { access_token: 'x' })
    store.linkAccount('github|7')
    closeDatabase(file)
    assert.equal(userIdForAccount('github|7', { dbPath: file }), user)
    closeDatabase(file)
    const url = await freshDatabase('copy_links')
    const { HOOT_STORE_SECRET: _, ...env } = process.env

    // Another home and no HOOT_STORE_SECRET: no secret the links verify under, and none is made.
    const home = tempDir('copy-links-home')
    const bare = await refusedIn({ ...env, HOME: home }, file, url)
    assert.equal(bare.code, 1)
    assert.match(bare.stderr, /\(ERR_HOOT_KEYS\)/)
    assert.match(bare.stderr, /HOOT_STORE_SECRET/)
    assert.ok(!existsSync(join(home, '.hoot', 'keys', 'store-secret')), 'no store secret made')
    assert.deepEqual(
      await rows(
        url,
        "SELECT to_regclass('hoot_accounts') IS NULL OR NOT EXISTS (SELECT 1 FROM hoot_accounts) AS empty",
      ),
      [{ empty: true }],
    )

    // Another secret: refused, unless forced, which says it left the link out.
    const other = { ...env, HOME: home, HOOT_STORE_SECRET: randomBytes(32).toString('base64url') }
    const wrong = await refusedIn(other, file, url)
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /\(ERR_HOOT_KEYS\)/)
    assert.match(wrong.stderr, /--force/)
    const forced = await copyIn(other, file, url, '--force')
    assert.equal(forced.droppedLinks, 1)
    assert.equal(forced.users, 1)
    const db = openDatabase(url)
    assert.equal(await db.userIdForAccount('github|7'), undefined)
    assert.deepEqual(await db.store(user).tokens('srv'), { access_token: 'x' })

    // The server's own secret: the link is copied, MACed for PostgreSQL.
    const right = await copy(file, url, '--force')
    assert.equal(right.droppedLinks, 0)
    assert.equal(await db.userIdForAccount('github|7'), user)
    await db.close()
  })

  test('a server that stops answering mid-copy fails the copy within the call timeout', TIMEOUT, async () => {
    const file = join(tempDir('copy-silent'), 'hoot-mcp.db')
    new OAuthStore(randomUUID(), { dbPath: file }).saveTokens('srv', { access_token: 'x' })
    closeDatabase(file)
    const url = await freshDatabase('copy_silent')
    // A proxy whose connections go silent on demand (the kernel still acknowledges what is sent,
    // so neither TCP's user timeout nor keepalives end them): a server hung mid-answer.
    const { hostname, port } = new URL(url)
    const sockets = new Set()
    const server = net.createServer((client) => {
      const upstream = net.connect(Number(port || 5432), hostname)
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on('error', () => {})
      }
      client.pipe(upstream).pipe(client)
    })
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    try {
      const viaProxy = new URL(url)
      viaProxy.host = `127.0.0.1:${server.address().port}`
      const db = openDatabase(viaProxy.toString(), { connectTimeoutMs: 500, statementTimeoutMs: 500 })
      await db.ready() // a connection in the pool, then silence on it
      for (const s of sockets) {
        s.unpipe()
        s.pause()
      }
      const started = Date.now()
      await assert.rejects(db.copyFromSqlite(file), (e) => {
        assert.equal(e.code, 'ERR_HOOT_DB')
        assert.match(e.message, /no answer within 1000 ms/)
        return true
      })
      assert.ok(Date.now() - started < 10_000, `failed in ${Date.now() - started} ms`)
      await db.close()
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    }
  })
})

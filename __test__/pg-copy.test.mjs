// `npx hoot-core migrate --from <sqlite> --to postgres://...`: Hoot's legacy file and hoot-core's
// current one copied into PostgreSQL, read back through the PostgreSQL store; a second run changes
// nothing; the file is never changed; a copy killed with SIGKILL mid-transaction leaves nothing.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { promisify } from 'node:util'

import { OAuthStore, cacheFavicon, closeDatabase, openDatabase } from '../lib/index.js'
import { makeLegacyDb, root, tempDir, withBetterSqlite } from './helpers.mjs'
import { admin, eventually, freshDatabase, postgresAvailable, rows } from './postgres.mjs'

const CLI = join(root, 'bin', 'hoot-core.js')
const run = promisify(execFile)
const copy = async (from, to) =>
  JSON.parse((await run(process.execPath, [CLI, 'migrate', '--from', from, '--to', to, '--json'])).stdout)
const digest = (path) => createHash('sha256').update(readFileSync(path)).digest('hex')
const table = (report, name) => report.tables.find((t) => t.table === name)

describe('SQLite → PostgreSQL copy', () => {
  if (!postgresAvailable('migrate --from --to')) return

  test("Hoot's legacy file: every row, under its legacy user, once", async () => {
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

    const again = await copy(file, url)
    assert.ok(
      again.tables.every((t) => t.inserted === 0 && t.updated === 0),
      'a second run changes nothing',
    )
    await db.close()
  })

  test("hoot-core's current file: every table, users apart; a changed row is taken again", async () => {
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
    const again = await copy(file, url)
    assert.deepEqual(table(again, 'oauth_tokens'), { table: 'oauth_tokens', rows: 2, inserted: 0, updated: 1 })
    assert.deepEqual(await db.store(a).tokens('srv'), { access_token: 'rotated' })
    await db.close()
  })

  test('a copy killed with SIGKILL inside its transaction leaves PostgreSQL untouched', async () => {
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
})

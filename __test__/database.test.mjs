// openDatabase(location).store(userId): the async store, run against both backends with the same
// tests (SQLite in a temp file, PostgreSQL in a database of its own on HOOT_TEST_POSTGRES_URL),
// then what only PostgreSQL has: TLS, failure at start, encryption in its rows, the adapter and the
// provider over it.
import assert from 'node:assert/strict'
import { X509Certificate, createHash, randomUUID } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import { createDatabaseAdapter } from '../lib/hoot.js'
import { createOAuthProvider, openDatabase } from '../lib/index.js'
import { USER, tempDir } from './helpers.mjs'
import { PG_SUITE_TIMEOUT, freshDatabase, postgresAvailable, rows, withDatabase, SERVER_URL } from './postgres.mjs'

// The SQLite store secret (~/.hoot/keys/store-secret) in a home of the tests' own.
process.env.HOME = tempDir('database-home')
delete process.env.HOOT_STORE_SECRET

test('openDatabase refuses an encryption option other than on or off at once, on both backends', () => {
  for (const location of [join(tempDir('encryption-option'), 'hoot-mcp.db'), 'postgres://u@127.0.0.1:1/db']) {
    assert.throws(() => openDatabase(location, { encryption: 'maybe' }), { code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(() => openDatabase(location, { encryption: 1 }), { code: 'ERR_INVALID_ARG_TYPE' })
  }
})

const BACKENDS = {
  sqlite: async () => openDatabase(join(tempDir('database'), 'hoot-mcp.db')),
  postgres: async () => openDatabase(await freshDatabase('store')),
}

for (const [kind, open] of Object.entries(BACKENDS)) {
  describe(`openDatabase().store() on ${kind}`, kind === 'postgres' ? PG_SUITE_TIMEOUT : {}, () => {
    if (kind === 'postgres' && !postgresAvailable('openDatabase().store()')) return

    test('every method round-trips through promises; absent values are undefined', async () => {
      const db = await open()
      assert.equal(db.kind, kind)
      assert.equal((await db.ready()).kind, kind)
      const store = db.store(USER.toUpperCase())
      assert.equal(store.userId, USER, 'one spelling per user')
      for (const read of ['clientInformation', 'tokens', 'codeVerifier', 'serverConfig', 'discoveryState']) {
        assert.equal(await store[read]('srv'), undefined, read)
      }
      const info = { client_id: 'abc', redirect_uris: ['http://localhost:8009/oauth/callback'] }
      const tokens = { access_token: 'at', refresh_token: 'rt', expires_in: 3600, token_type: 'Bearer' }
      const config = { url: 'https://mcp.example/mcp', transport: 'http', name: 'Exämple ✓' }
      await store.saveClientInformation('srv', info)
      await store.saveTokens('srv', tokens)
      await store.saveCodeVerifier('srv', 'pkce-verifier')
      await store.saveDiscoveryState('srv', { authorizationServerUrl: 'https://auth.example' })
      await store.saveServerConfig('cfg', config)
      assert.deepEqual(await store.clientInformation('srv'), info)
      assert.deepEqual(await store.tokens('srv'), tokens)
      assert.equal(await store.codeVerifier('srv'), 'pkce-verifier')
      assert.deepEqual(await store.discoveryState('srv'), { authorizationServerUrl: 'https://auth.example' })
      assert.deepEqual(await store.serverConfig('cfg'), config)
      assert.deepEqual(await store.servers(), ['cfg', 'srv'])
      // As JSON.stringify stores them: Dates become strings, undefined members vanish.
      await store.saveTokens('srv', { at: new Date(0), gone: undefined })
      assert.deepEqual(await store.tokens('srv'), { at: '1970-01-01T00:00:00.000Z' })

      await store.saveAuthorizationState('srv', 'state-1')
      assert.equal(await store.consumeAuthorizationState('srv', 'wrong'), false, 'a wrong state fails...')
      await store.saveAuthorizationState('srv', 'state-1')
      assert.equal(await store.consumeAuthorizationState('srv', 'state-1'), true)
      assert.equal(await store.consumeAuthorizationState('srv', 'state-1'), false, '...and each is single use')

      await store.invalidateCredentials('srv', 'verifier')
      assert.equal(await store.codeVerifier('srv'), undefined)
      await store.invalidateCredentials('srv', 'all')
      assert.equal(await store.tokens('srv'), undefined)
      assert.equal(await store.clientInformation('srv'), undefined)
      assert.equal(await store.discoveryState('srv'), undefined)
      await store.deleteServerConfig('cfg')
      assert.equal(await store.serverConfig('cfg'), undefined)
      assert.equal(await store.touch(), true, 'the first touch writes')
      assert.equal(await store.touch(), false, 'then at most once an hour')
      await store.saveTokens('a', {})
      await store.saveTokens('b', {})
      assert.equal(await store.deleteAll(), 3, 'two rows and the activity row')
      assert.deepEqual(await store.servers(), [])

      assert.equal(await db.cachedFavicon('https://mcp.example'), undefined)
      await db.cacheFavicon('https://mcp.example', null)
      assert.equal(await db.cachedFavicon('https://mcp.example'), null, 'cached as "none found"')
      await db.cacheFavicon('https://mcp.example', 'https://mcp.example/favicon.ico', 'https://logo')
      assert.equal(await db.cachedFavicon('https://mcp.example', 'https://logo'), 'https://mcp.example/favicon.ico')
      assert.equal(await db.cachedFavicon('https://mcp.example', 'https://other'), undefined)
      assert.equal(await db.cleanupExpiredVerifiers(), 0)
      await db.close()
    })

    test('bad arguments throw or reject with the codes OAuthStore throws', async () => {
      const db = await open()
      assert.throws(() => db.store('not-a-uuid'), { code: 'ERR_INVALID_USER_ID' })
      const store = db.store(USER)
      await assert.rejects(store.tokens(42), { code: 'ERR_INVALID_ARG_TYPE' })
      await assert.rejects(store.saveTokens('s', 'text'), { code: 'ERR_INVALID_ARG_VALUE' })
      await assert.rejects(store.saveTokens('', {}), { code: 'ERR_INVALID_ARG_VALUE' })
      await assert.rejects(store.invalidateCredentials('s', 'everything'), { code: 'ERR_INVALID_ARG_VALUE' })
      await assert.rejects(store.saveCodeVerifier('s', 'hoot-sealed:1:x'), { code: 'ERR_INVALID_ARG_VALUE' })
      await assert.rejects(store.saveTokens('s', { big: 1n }), { code: 'ERR_INVALID_ARG_VALUE' })
      await db.close()
    })

    test('many users, random interleaving: no cross-user read, list or delete', async () => {
      const db = await open()
      const users = [...Array.from({ length: 10 }, () => randomUUID()), 'default-user', 'legacy-user-1']
      const servers = Array.from({ length: 6 }, (_, i) => `server-${i}`)
      const model = new Map(users.map((u) => [u, new Map()]))
      let seed = 11
      const random = (n) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
      // Batches of concurrent calls, each on a distinct (user, server), in a random order.
      for (let round = 0; round < 40; round++) {
        const batch = new Map()
        for (let i = 0; i < 12; i++)
          batch.set(`${users[random(users.length)]}|${servers[random(servers.length)]}`, random(10))
        await Promise.all(
          [...batch].map(async ([key, action]) => {
            const [user, server] = key.split('|')
            const store = db.store(user)
            if (action < 6) {
              const value = { owner: user, server, n: round }
              await store.saveTokens(server, value)
              model.get(user).set(server, value)
            } else if (action < 8) {
              await store.invalidateCredentials(server, 'tokens')
              model.get(user).delete(server)
            } else {
              assert.deepEqual(await store.tokens(server), model.get(user).get(server))
            }
          }),
        )
        if (round === 20) {
          const gone = users[random(users.length)]
          await db.store(gone).deleteAll()
          model.get(gone).clear()
        }
      }
      for (const user of users) {
        const store = db.store(user)
        assert.deepEqual(await store.servers(), [...model.get(user).keys()].sort(), `servers of ${user}`)
        for (const server of servers) {
          const value = await store.tokens(server)
          assert.deepEqual(value, model.get(user).get(server))
          if (value) assert.equal(value.owner, user)
        }
      }
      await db.close()
    })

    test('transfer codes and linked accounts', async () => {
      const db = await open()
      const user = randomUUID()
      const { code, expiresAt } = await db.store(user).createTransferCode({ ttlSeconds: 60 })
      assert.match(code, /^[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}$/)
      assert.ok(Math.abs(expiresAt - (Date.now() / 1000 + 60)) < 5)
      assert.equal((await db.redeemTransferCode(code.toLowerCase())).userId, user, 'case does not matter')
      await assert.rejects(db.redeemTransferCode(code), { code: 'ERR_HOOT_TRANSFER_CODE' }, 'single use')
      await assert.rejects(db.redeemTransferCode('nonsense'), { code: 'ERR_HOOT_TRANSFER_CODE' })
      await assert.rejects(db.store(user).createTransferCode({ ttlSeconds: 1 }), { code: 'ERR_INVALID_ARG_VALUE' })
      await db.store(user).linkAccount('github:1')
      assert.equal(await db.userIdForAccount('github:1'), user)
      await assert.rejects(db.store(randomUUID()).linkAccount('github:1'), { code: 'ERR_INVALID_ARG_VALUE' })
      assert.equal(await db.store(user).unlinkAccount('github:1'), true)
      assert.equal(await db.userIdForAccount('github:1'), undefined)
      await db.close()
    })

    test(
      "revocation ends pending transfer codes; one source cannot get another source's code refused",
      { timeout: 60_000 },
      async () => {
        const db = await open()
        const user = randomUUID()
        const stolenIat = Math.floor(Date.now() / 1000) - 30
        const { code } = await db.store(user).createTransferCode({ tokenIssuedAt: stolenIat })
        await db.revokeUserTokens(user)
        await assert.rejects(db.redeemTransferCode(code), { code: 'ERR_HOOT_TRANSFER_CODE' })
        // Made from the same token by a replica that has not yet learnt of the revocation.
        const late = await db.store(user).createTransferCode({ tokenIssuedAt: stolenIat })
        await assert.rejects(db.redeemTransferCode(late.code), { code: 'ERR_HOOT_TRANSFER_CODE' })
        const forgotten = randomUUID()
        const pending = await db.store(forgotten).createTransferCode()
        await db.store(forgotten).deleteAll({ revokeTokens: true })
        await assert.rejects(db.redeemTransferCode(pending.code), { code: 'ERR_HOOT_TRANSFER_CODE' })

        const carol = randomUUID()
        const valid = await db.store(carol).createTransferCode()
        const outcomes = {}
        for (let i = 0; i < 30; i++) {
          await db.redeemTransferCode('2222-2222-2222', { source: '203.0.113.9' }).catch((e) => {
            outcomes[e.code] = (outcomes[e.code] ?? 0) + 1
          })
        }
        assert.deepEqual(outcomes, { ERR_HOOT_TRANSFER_CODE: 10, ERR_HOOT_TRANSFER_THROTTLED: 20 })
        assert.equal((await db.redeemTransferCode(valid.code, { source: '198.51.100.7' })).userId, carol)
        await db.close()
      },
    )

    test('ready() and inspect(): where the database is, and its report, apart', async () => {
      const db = await open()
      const ready = await db.ready()
      assert.deepEqual(Object.keys(ready).sort(), ['database', 'encrypted', 'kind', 'schemaVersion'])
      assert.equal(ready.kind, kind)
      assert.equal(ready.encrypted, false)
      const report = await db.inspect()
      assert.equal(report.schemaVersion, ready.schemaVersion)
      assert.equal('kind' in report, false, "the inspection report is not ready()'s")
      if (kind === 'sqlite') assert.equal(report.path, ready.database)
      await db.close()
    })

    test('the session life: activity, purge, moving a user, legacy codes, revocation', async () => {
      const db = await open()
      const [alice, bob] = [randomUUID(), randomUUID()]
      await db.store(alice).saveTokens('srv', { owner: 'alice' })
      await db.store(alice).touch()
      await db.store(bob).touch()
      const activity = await db.activitySummary()
      assert.equal(activity.users, 2)
      assert.equal(activity.active1d, 2)
      assert.equal(activity.untracked, 0)
      assert.deepEqual(await db.purgeInactiveUsers({ inactiveDays: 1, dryRun: true }), {
        users: 0,
        rows: 0,
        adopted: 0,
        dryRun: true,
      })
      await assert.rejects(db.purgeInactiveUsers({ inactiveDays: 0 }), { code: 'ERR_INVALID_ARG_VALUE' })
      const moved = await db.moveUserData(alice, bob)
      assert.ok(moved.moved >= 1, JSON.stringify(moved))
      assert.deepEqual(await db.store(bob).tokens('srv'), { owner: 'alice' })
      assert.equal(await db.store(alice).tokens('srv'), undefined)
      await assert.rejects(db.moveUserData(alice, 'not-a-user'), { code: 'ERR_INVALID_USER_ID' })
      assert.equal(await db.legacyTransferCode(), null, 'no legacy data')
      assert.equal(await db.revokeUserTokens(bob), undefined)
      await db.close()
    })

    test('encrypt() and decrypt(): every value sealed, then opened back', async () => {
      const saved = process.env.HOOT_ENCRYPTION_KEY
      process.env.HOOT_ENCRYPTION_KEY = Buffer.alloc(32, 7).toString('base64url')
      try {
        const db = await open()
        await db.store(USER).saveTokens('srv', { access_token: 'sealed-soon' })
        const sealed = await db.encrypt()
        assert.ok(sealed.sealed >= 1, JSON.stringify(sealed))
        assert.equal(sealed.keyIds.length, 1)
        assert.equal((await db.ready()).encrypted, true)
        assert.deepEqual(await db.store(USER).tokens('srv'), { access_token: 'sealed-soon' })
        const opened = await db.decrypt()
        assert.ok(opened.opened >= 1, JSON.stringify(opened))
        assert.equal((await db.ready()).encrypted, false)
        assert.deepEqual(await db.store(USER).tokens('srv'), { access_token: 'sealed-soon' })
        await db.close()
      } finally {
        if (saved === undefined) delete process.env.HOOT_ENCRYPTION_KEY
        else process.env.HOOT_ENCRYPTION_KEY = saved
      }
    })

    test('every method returns a promise and rejects, never throws', async () => {
      const db = await open()
      for (const call of [
        () => db.revokeUserTokens(42),
        () => db.redeemTransferCode(42),
        () => db.legacyTransferCode('x'),
        () => db.userIdForAccount(42),
        () => db.moveUserData(42, USER),
        () => db.purgeInactiveUsers('x'),
        () => db.cleanupExpiredVerifiers('x'),
        () => db.cachedFavicon(42),
        () => db.cacheFavicon(42, null),
        () => db.encrypt('x'),
        () => db.loadKeys('x'),
        () => db.store(USER).tokens(42),
      ]) {
        let pending
        assert.doesNotThrow(() => (pending = call()), String(call))
        await assert.rejects(pending, { code: 'ERR_INVALID_ARG_TYPE' }, String(call))
      }
      await db.close()
    })

    test('the adapter and the OAuth provider run over it', async () => {
      const db = await open()
      const adapter = createDatabaseAdapter({ database: db })
      const user = randomUUID()
      await adapter.saveOAuthTokens(user, 'srv', { access_token: 'x' })
      assert.deepEqual(await adapter.getOAuthTokens(user, 'srv'), { access_token: 'x' })
      assert.equal(await adapter.getOAuthTokens(randomUUID(), 'srv'), null)
      await adapter.saveVerifier(user, 'srv', 'v')
      assert.equal(await adapter.getVerifier(user, 'srv'), 'v')
      await adapter.deleteVerifier(user, 'srv')
      assert.equal(await adapter.getVerifier(user, 'srv'), null)
      await adapter.saveFaviconCache('https://x.example', null)
      assert.equal(await adapter.getFaviconCache('https://x.example'), null)

      const provider = createOAuthProvider(db.store(user), 'srv', {
        redirectUrl: 'http://localhost:8009/oauth/callback',
        clientMetadata: { client_name: 'Hoot', redirect_uris: ['http://localhost:8009/oauth/callback'] },
      })
      await provider.saveTokens({ access_token: 'from-provider', token_type: 'Bearer' })
      assert.deepEqual(await db.store(user).tokens('srv'), { access_token: 'from-provider', token_type: 'Bearer' })
      const state = await provider.state()
      assert.equal(
        await db.store(user).consumeAuthorizationState('srv', state),
        true,
        'the state is kept for the callback',
      )
      await provider.saveDiscoveryState({ authorizationServerUrl: 'https://auth.example' })
      assert.deepEqual(await provider.discoveryState(), { authorizationServerUrl: 'https://auth.example' })
      const viaAdapter = createOAuthProvider({ adapter, userId: user }, 'srv', {
        redirectUrl: 'http://localhost:8009/oauth/callback',
        clientMetadata: { client_name: 'Hoot', redirect_uris: ['http://localhost:8009/oauth/callback'] },
      })
      assert.deepEqual(await viaAdapter.tokens(), { access_token: 'from-provider', token_type: 'Bearer' })
      await adapter.close()
    })
  })
}

describe('SQLite only', () => {
  test("rotateKeys and copyFromSqlite are PostgreSQL's: on SQLite they reject with ERR_INVALID_ARG_VALUE", async () => {
    const db = openDatabase(join(tempDir('sqlite-only'), 'hoot-mcp.db'))
    await assert.rejects(db.rotateKeys(), (e) => {
      assert.equal(e.code, 'ERR_INVALID_ARG_VALUE')
      assert.match(e.message, /on SQLite the keys are files: .*npx hoot-core keygen/)
      return true
    })
    await assert.rejects(db.copyFromSqlite('/tmp/other.db'), (e) => {
      assert.equal(e.code, 'ERR_INVALID_ARG_VALUE')
      assert.match(e.message, /this database is SQLite/)
      return true
    })
    await db.close()
  })

  test('a Database is bound to its file: an option naming another is not followed', async () => {
    const dir = tempDir('sqlite-bound')
    const [mine, other] = [join(dir, 'mine.db'), join(dir, 'other.db')]
    const db = openDatabase(mine)
    await db.store(USER).saveTokens('srv', { here: true })
    await db.store(USER).touch()
    assert.equal((await db.purgeInactiveUsers({ inactiveDays: 1, dryRun: true, dbPath: other })).dryRun, true)
    assert.equal((await db.activitySummary()).users, 1)
    assert.equal(existsSync(other), false, 'the other file was never opened')
    await db.close()
  })

  test('createDatabaseAdapter takes the Database itself', async () => {
    const db = openDatabase(join(tempDir('sqlite-adapter'), 'hoot-mcp.db'))
    const adapter = createDatabaseAdapter(db)
    await adapter.saveOAuthTokens(USER, 'srv', { access_token: 'x' })
    assert.deepEqual(await db.store(USER).tokens('srv'), { access_token: 'x' })
    assert.throws(() => createDatabaseAdapter(42), { code: 'ERR_INVALID_ARG_TYPE' })
    await adapter.close()
  })
})

describe('PostgreSQL only', PG_SUITE_TIMEOUT, () => {
  if (!postgresAvailable('PostgreSQL only')) return

  test('the URL selects the backend: the argument, else HOOT_DATABASE_URL; a path keeps SQLite', async () => {
    const url = await freshDatabase('select')
    assert.equal(openDatabase(url).kind, 'postgres')
    assert.equal(openDatabase(join(tempDir('select'), 'x.db')).kind, 'sqlite')
    const saved = process.env.HOOT_DATABASE_URL
    process.env.HOOT_DATABASE_URL = url
    try {
      assert.equal(openDatabase().kind, 'postgres')
      const adapter = createDatabaseAdapter()
      await adapter.saveServerConfig(USER, 'srv', { via: 'env' })
      assert.deepEqual(await rows(url, 'SELECT user_id, server_id, config FROM server_configs'), [
        { user_id: USER, server_id: 'srv', config: '{"via":"env"}' },
      ])
    } finally {
      if (saved === undefined) delete process.env.HOOT_DATABASE_URL
      else process.env.HOOT_DATABASE_URL = saved
    }
    assert.throws(() => openDatabase(url, { poolSize: 0 }), { code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(
      () => openDatabase('postgres://u:hunter2@h/d?sslmode=maybe'),
      (e) => {
        assert.equal(e.code, 'ERR_INVALID_ARG_VALUE')
        assert.ok(!e.message.includes('hunter2'), e.message)
        return true
      },
    )
  })

  test('handles of one URL share a pool: closing one (twice, even) leaves the others working', async () => {
    const url = await freshDatabase('handles')
    const [a, b] = [openDatabase(url), openDatabase(url)]
    await a.store(USER).saveTokens('s', { n: 1 })
    await a.close()
    await a.close()
    assert.deepEqual(await b.store(USER).tokens('s'), { n: 1 }, 'b still works')
    await b.close()
    await assert.rejects(b.store(USER).tokens('s'), { code: 'ERR_HOOT_DB' }, 'the last handle closed the pool')
    assert.deepEqual(await openDatabase(url).store(USER).tokens('s'), { n: 1 }, 'a new open makes a new pool')
  })

  test("Hoot's tables and columns, a schema version, and values as Hoot's SQL reads them", async () => {
    const url = await freshDatabase('schema')
    const db = openDatabase(url)
    assert.deepEqual(await db.ready(), {
      kind: 'postgres',
      database: db_described(url),
      schemaVersion: 3,
      encrypted: false,
    })
    const tables = await rows(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    const names = tables.map((t) => t.table_name).sort()
    for (const hoot of ['oauth_tokens', 'oauth_client_info', 'oauth_verifiers', 'server_configs', 'favicon_cache']) {
      assert.ok(names.includes(hoot), hoot)
    }
    assert.deepEqual(await rows(url, 'SELECT version FROM hoot_schema_version'), [{ version: 3 }])
    await db.store(USER).saveTokens('srv', { access_token: 'a' })
    assert.deepEqual(await rows(url, 'SELECT tokens FROM oauth_tokens WHERE user_id = $1', [USER]), [
      { tokens: '{"access_token":"a"}' },
    ])
    await db.close()
  })

  test(
    'a code or an account link planted by a database writer does not verify; sources are stored as MACs',
    { timeout: 60_000 },
    async () => {
      const url = await freshDatabase('planted')
      const db = openDatabase(url)
      const victim = randomUUID()
      await db.store(victim).linkAccount('github|1')
      const hash = createHash('sha256').update('23456789ABCD').digest('hex')
      const now = Math.floor(Date.now() / 1000)
      await rows(
        url,
        'INSERT INTO hoot_transfer_codes (code_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)',
        [hash, victim, now, now + 600],
      )
      await rows(url, "INSERT INTO hoot_accounts (account_id, user_id, linked_at) VALUES ('evil|1', $1, 0)", [victim])
      await assert.rejects(db.redeemTransferCode('2345-6789-ABCD'), { code: 'ERR_HOOT_TRANSFER_CODE' })
      assert.equal(await db.userIdForAccount('evil|1'), undefined)
      assert.equal(await db.userIdForAccount('github|1'), victim)
      await assert.rejects(db.redeemTransferCode('2222-2222-2222', { source: '203.0.113.9' }), {
        code: 'ERR_HOOT_TRANSFER_CODE',
      })
      assert.deepEqual(
        await rows(
          url,
          "SELECT count(*)::int AS n FROM hoot_transfer_source_failures WHERE source_mac LIKE '%203.0.113%'",
        ),
        [{ n: 0 }],
      )
      await db.close()
    },
  )

  test('an account link made under schema 1 survives migrations 2 and 3', { timeout: 60_000 }, async () => {
    const url = await freshDatabase('links_schema1')
    const user = randomUUID()
    const db = openDatabase(url)
    await db.store(user).linkAccount('github|7')
    await db.close()
    // Schema 1: no MAC on links or codes, no store secret, version 1.
    for (const sql of [
      'ALTER TABLE hoot_accounts DROP COLUMN mac',
      'ALTER TABLE hoot_transfer_codes DROP COLUMN mac, DROP COLUMN derived_from',
      'DROP TABLE hoot_store_secret',
      'UPDATE hoot_schema_version SET version = 1',
    ]) {
      await rows(url, sql)
    }
    const upgraded = openDatabase(url)
    assert.equal((await upgraded.ready()).schemaVersion, 3)
    assert.equal(await upgraded.userIdForAccount('github|7'), user)
    assert.deepEqual(await rows(url, 'SELECT count(*)::int AS n FROM hoot_accounts WHERE mac IS NULL'), [{ n: 0 }])
    await upgraded.close()
  })

  test('a server that cannot be reached fails fast with ERR_HOOT_DB naming it, never the password', async () => {
    const db = openDatabase('postgres://hoot:hunter2@127.0.0.1:1/nowhere?sslmode=disable', { connectTimeoutMs: 500 })
    const started = Date.now()
    await assert.rejects(db.store(USER).tokens('s'), (e) => {
      assert.equal(e.code, 'ERR_HOOT_DB')
      assert.match(e.message, /PostgreSQL at 127\.0\.0\.1:1\/nowhere/)
      assert.ok(!e.message.includes('hunter2') && !e.message.includes(USER), e.message)
      return true
    })
    assert.ok(Date.now() - started < 3000, `answered in ${Date.now() - started} ms`)
    await assert.rejects(db.ready(), { code: 'ERR_HOOT_DB' })
    await db.close()
  })

  test('TLS without OpenSSL: sslmode=require encrypts; verify-full refuses an untrusted certificate', async (t) => {
    const [{ ssl }] = await rows(SERVER_URL, 'SHOW ssl')
    if (ssl !== 'on') return t.skip('the test server has ssl = off')
    const url = await freshDatabase('tls')
    const db = openDatabase(
      withDatabase(url, new URL(url).pathname.slice(1), { sslmode: 'require', application_name: 'hoot-tls' }),
    )
    await db.store(USER).saveTokens('s', { tls: true })
    const [{ ssl: used }] = await rows(
      SERVER_URL,
      "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'hoot-tls'",
    )
    assert.equal(used, true, 'the connection is encrypted')
    await db.close()
    const strict = openDatabase(withDatabase(url, new URL(url).pathname.slice(1), { sslmode: 'verify-full' }), {
      connectTimeoutMs: 2000,
    })
    await assert.rejects(strict.ready(), (e) => {
      assert.equal(e.code, 'ERR_HOOT_DB')
      assert.match(e.message, /certificate|UnknownIssuer|invalid peer/i)
      return true
    })
    await strict.close()
  })

  test("TLS modes against the server's own certificate: verify-ca checks the chain, verify-full the name too", async (t) => {
    const [{ ssl, ssl_cert_file: cert }] = await rows(
      SERVER_URL,
      "SELECT current_setting('ssl') AS ssl, current_setting('ssl_cert_file') AS ssl_cert_file",
    )
    if (ssl !== 'on' || !cert.startsWith('/') || !existsSync(cert))
      return t.skip('the test server has no readable certificate file')
    const text = readFileSync(cert, 'utf8')
    const names = new X509Certificate(text).subjectAltName ?? ''
    if (!names.includes('DNS:localhost')) return t.skip(`the server's certificate is not for localhost (${names})`)
    const url = await freshDatabase('tls_modes')
    const name = new URL(url).pathname.slice(1)
    const at = (host, params) => {
      const u = new URL(withDatabase(url, name, params))
      u.hostname = host
      return u.toString()
    }
    const outcome = async (target) => {
      const db = openDatabase(target, { connectTimeoutMs: 3000 })
      try {
        await db.ready()
        return 'connected'
      } catch (e) {
        assert.equal(e.code, 'ERR_HOOT_DB', e.message)
        return /not valid for name/.test(e.message)
          ? 'wrong name'
          : /UnknownIssuer/.test(e.message)
            ? 'untrusted'
            : e.message
      } finally {
        await db.close()
      }
    }
    const rooted = { sslrootcert: cert }
    assert.equal(
      await outcome(at('127.0.0.1', { sslmode: 'verify-ca', ...rooted })),
      'connected',
      'the chain is trusted',
    )
    assert.equal(
      await outcome(at('127.0.0.1', { sslmode: 'verify-full', ...rooted })),
      'wrong name',
      'the name is checked',
    )
    assert.equal(await outcome(at('localhost', { sslmode: 'verify-full', ...rooted })), 'connected')
    assert.equal(await outcome(at('localhost', { sslmode: 'verify-full' })), 'untrusted', 'not in the built-in roots')
    assert.equal(await outcome(at('127.0.0.1', { sslmode: 'verify-ca' })), 'untrusted')
  })

  test('encryption at rest: rows hold sealed values bound to their row; no key, no access', async () => {
    const url = await freshDatabase('sealed')
    const key = Buffer.alloc(32, 7).toString('base64url')
    const env = process.env.HOOT_ENCRYPTION_KEY
    const home = process.env.HOME
    process.env.HOOT_ENCRYPTION_KEY = key
    try {
      const db = openDatabase(url, { encryption: 'on' })
      await db.store(USER).saveTokens('srv', { access_token: 'secret-token' })
      const [{ tokens }] = await rows(url, 'SELECT tokens FROM oauth_tokens')
      assert.match(tokens, /^hoot-sealed:1:/)
      assert.ok(!tokens.includes('secret-token'))
      assert.deepEqual(await db.store(USER).tokens('srv'), { access_token: 'secret-token' })
      // Copied to another user's row, it does not open.
      const other = randomUUID()
      await rows(
        url,
        'INSERT INTO oauth_tokens (user_id, server_id, tokens) SELECT $1, server_id, tokens FROM oauth_tokens',
        [other],
      )
      await assert.rejects(db.store(other).tokens('srv'), { code: 'ERR_HOOT_DB' })
      await db.close()
      delete process.env.HOOT_ENCRYPTION_KEY
      process.env.HOME = tempDir('sealed-home')
      const keyless = openDatabase(url)
      await assert.rejects(keyless.store(USER).tokens('srv'), { code: 'ERR_HOOT_KEYS' })
      await keyless.close()
    } finally {
      process.env.HOME = home
      if (env === undefined) delete process.env.HOOT_ENCRYPTION_KEY
      else process.env.HOOT_ENCRYPTION_KEY = env
    }
  })
})

function db_described(url) {
  const u = new URL(url)
  return `PostgreSQL at ${u.hostname}:${u.port || 5432}${u.pathname}`
}

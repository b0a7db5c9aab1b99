// Issue 24 at the store and the provider: versioned credentials, compare-and-delete, the refresh
// claim, the schema that keeps them (migrated from schema 2 with a backup), and the provider's
// options. The race itself, with processes and an authorization server, is refresh-race.test.mjs.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import { once } from 'node:events'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import { createDatabaseAdapter } from '../lib/hoot.js'
import { createOAuthProvider, migrateDatabase, openDatabase } from '../lib/index.js'
import { closeDatabase } from '../lib/sqlite.js'
import { USER, tempDir, withBetterSqlite } from './helpers.mjs'
import { PG_TIMEOUT, freshDatabase, postgresAvailable, rows } from './postgres.mjs'

const options = {
  redirectUrl: 'http://localhost:8009/oauth/callback',
  clientMetadata: { client_name: 'Hoot MCP Testing Tool', redirect_uris: ['http://localhost:8009/oauth/callback'] },
}

/**
 * Two holders of one credential, A and B (as two processes would be: a provider each), and what
 * each backend needs: `a` reads, `b` saves in between, then `a` invalidates what it read.
 */
async function invalidationKeepsNewerCredentials(db, makeProvider) {
  const [a, b] = [makeProvider(), makeProvider()]
  await b.saveTokens({ access_token: 't1', refresh_token: 'r1' })
  await b.saveClientInformation({ client_id: 'c1' })
  assert.equal((await a.tokens()).refresh_token, 'r1')
  await a.clientInformation()
  // B refreshes (and registers again) while A's refresh of r1 is refused.
  await b.saveTokens({ access_token: 't2', refresh_token: 'r2' })
  await b.saveClientInformation({ client_id: 'c2' })
  await a.invalidateCredentials('tokens')
  assert.deepEqual(await b.tokens(), { access_token: 't2', refresh_token: 'r2' }, "B's tokens survive A's invalidation")
  await a.invalidateCredentials('all')
  assert.deepEqual(await b.clientInformation(), { client_id: 'c2' }, "B's registration survives A's 'all'")
  assert.deepEqual(await b.tokens(), { access_token: 't2', refresh_token: 'r2' })
  // Read, then invalidated: gone.
  await a.tokens()
  await a.clientInformation()
  await a.invalidateCredentials('all')
  assert.equal(await b.tokens(), undefined)
  assert.equal(await b.clientInformation(), undefined)
  // A read nothing; B saved since: nothing of B's goes.
  assert.equal(await a.tokens(), undefined)
  await b.saveTokens({ access_token: 't3', refresh_token: 'r3' })
  await a.invalidateCredentials('tokens')
  assert.deepEqual(await b.tokens(), { access_token: 't3', refresh_token: 'r3' })
  // A provider that never read them (the SDK's code exchange reads none before an invalid_grant):
  // nothing of B's goes either.
  await makeProvider().invalidateCredentials('all')
  assert.deepEqual(await b.tokens(), { access_token: 't3', refresh_token: 'r3' })
  await db.store(USER).invalidateCredentials('srv', 'all')
}

/** The store's primitives on one backend. */
async function storePrimitives(db) {
  const store = db.store(USER)
  assert.equal(await store.tokensVersioned('srv'), undefined)
  await store.saveTokens('srv', { access_token: 'a' })
  const first = await store.tokensVersioned('srv')
  assert.deepEqual(first.value, { access_token: 'a' })
  assert.ok(Number.isSafeInteger(first.version) && first.version % 2 === 1, `odd, exact in JS: ${first.version}`)
  await store.saveTokens('srv', { access_token: 'a' })
  const second = await store.tokensVersioned('srv')
  assert.notEqual(second.version, first.version, 'every save is a new version, even of the same value')
  await store.invalidateCredentials('srv', 'tokens', { tokens: first.version })
  assert.deepEqual(await store.tokens('srv'), { access_token: 'a' })
  await store.invalidateCredentials('srv', 'tokens', { tokens: second.version })
  assert.equal(await store.tokens('srv'), undefined)
  await store.saveClientInformation('srv', { client_id: 'c' })
  assert.deepEqual((await store.clientInformationVersioned('srv')).value, { client_id: 'c' })

  assert.equal(await store.claimRefresh('srv', 'holder-1', { leaseMs: 60_000 }), true)
  assert.equal(await db.store(USER).claimRefresh('srv', 'holder-2', { leaseMs: 60_000 }), false)
  await store.releaseRefresh('srv', 'holder-1')
  assert.equal(await db.store(USER).claimRefresh('srv', 'holder-2', { leaseMs: 60_000 }), true)
  await store.releaseRefresh('srv', 'holder-2')

  await assert.rejects(store.claimRefresh('srv', 'h', { leaseMs: 600_001 }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /"opts\.leaseMs"/,
  })
  await assert.rejects(store.claimRefresh('srv', 'h'), { code: 'ERR_INVALID_ARG_TYPE', message: /"opts\.leaseMs"/ })
  await assert.rejects(store.claimRefresh('srv', 'h', { leaseMs: '5' }), { code: 'ERR_INVALID_ARG_TYPE' })
  await assert.rejects(store.invalidateCredentials('srv', 'tokens', { tokens: -1 }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /"expected\.tokens"/,
  })
  await assert.rejects(store.invalidateCredentials('srv', 'tokens', { clientInformation: 'v' }), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"expected\.clientInformation"/,
  })
  await assert.rejects(store.invalidateCredentials('srv', 'tokens', 7), { code: 'ERR_INVALID_ARG_TYPE' })
  await store.invalidateCredentials('srv', 'all')
}

describe('on SQLite', () => {
  test('the store versions tokens and registrations, deletes by version, and claims refreshes', async () => {
    const db = openDatabase(join(tempDir('versions'), 'hoot-mcp.db'))
    await storePrimitives(db)
    await db.close()
  })

  test("a provider's invalidateCredentials removes only what it read: another holder's newer credentials survive", async () => {
    const db = openDatabase(join(tempDir('compare-delete'), 'hoot-mcp.db'))
    await invalidationKeepsNewerCredentials(db, () => createOAuthProvider(db.store(USER), 'srv', options))
    await db.close()
  })

  test("over hoot-core's adapter, as Hoot's server uses it, the same", async () => {
    const adapter = createDatabaseAdapter({ dbPath: join(tempDir('compare-delete-adapter'), 'hoot-mcp.db') })
    const db = {
      store: () => ({ invalidateCredentials: (id, scope) => adapter.clearOAuthCredentials(USER, id, scope) }),
    }
    await invalidationKeepsNewerCredentials(db, () => createOAuthProvider({ adapter, userId: USER }, 'srv', options))
    await adapter.close()
  })

  test('a schema 2 file gains the versions and the claims table, after a backup, keeping every row', async () => {
    const dbPath = join(tempDir('schema2'), 'hoot-mcp.db')
    const db = openDatabase(dbPath)
    const store = db.store(USER)
    await store.saveTokens('srv', { access_token: 'kept' })
    await store.saveClientInformation('srv', { client_id: 'kept' })
    await db.close()
    // Schema 2 as an earlier hoot-core left it.
    withBetterSqlite(
      `const db = new Database(input.dbPath)
        db.exec('ALTER TABLE oauth_tokens DROP COLUMN version; ALTER TABLE oauth_client_info DROP COLUMN version; DROP TABLE hoot_refresh_claims')
        db.pragma('user_version = 2')
        db.close()
        console.log('null')`,
      { dbPath },
    )
    const report = migrateDatabase(dbPath)
    assert.equal(report.schemaVersion, 3)
    assert.equal(report.migrated, false, 'no legacy table was converted')
    assert.ok(report.backupPath && existsSync(report.backupPath), 'a backup was taken first')
    const again = openDatabase(dbPath)
    const upgraded = again.store(USER)
    const kept = await upgraded.tokensVersioned('srv')
    assert.deepEqual(kept, { value: { access_token: 'kept' }, version: 0 }, 'a row from before has version 0')
    assert.equal(await upgraded.claimRefresh('srv', 'h', { leaseMs: 1000 }), true)
    await upgraded.invalidateCredentials('srv', 'tokens', { tokens: 0 })
    assert.equal(await upgraded.tokens('srv'), undefined)
    assert.deepEqual(await upgraded.clientInformation('srv'), { client_id: 'kept' })
    await again.close()
    closeDatabase(dbPath)
  })

  test('provider options: the refresh lease, the wait and the fetch are checked', () => {
    const db = openDatabase(':memory:')
    const store = db.store(USER)
    for (const [name, value, code] of [
      ['refreshLeaseMs', 0, 'ERR_INVALID_ARG_VALUE'],
      ['refreshLeaseMs', 600_001, 'ERR_INVALID_ARG_VALUE'],
      ['refreshLeaseMs', 1.5, 'ERR_INVALID_ARG_VALUE'],
      ['refreshWaitMs', -1, 'ERR_INVALID_ARG_VALUE'],
      ['refreshWaitMs', '10', 'ERR_INVALID_ARG_TYPE'],
      ['fetch', 'fetch', 'ERR_INVALID_ARG_TYPE'],
    ]) {
      assert.throws(() => createOAuthProvider(store, 'srv', { ...options, [name]: value }), {
        code,
        message: new RegExp(`"options\\.${name}"`),
      })
    }
    const provider = createOAuthProvider(store, 'srv', { ...options, refreshLeaseMs: 1, refreshWaitMs: 0 })
    assert.equal(typeof provider.fetch, 'function')
  })
})

/**
 * A token endpoint that answers each refresh grant with new tokens, counting them, and a resource
 * at /mcp that accepts only the bearer `at-1` (401 otherwise), recording each bearer it was sent.
 */
async function tokenEndpoint() {
  const grants = []
  const bearers = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      if (req.url === '/mcp') {
        bearers.push(req.headers.authorization)
        res.statusCode = req.headers.authorization === 'Bearer at-1' ? 200 : 401
        return res.end(JSON.stringify({ body }))
      }
      const form = new URLSearchParams(body)
      grants.push(form.get('refresh_token'))
      res.end(
        JSON.stringify({
          access_token: `at-${grants.length}`,
          refresh_token: `rt-${grants.length}`,
          token_type: 'bearer',
        }),
      )
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const base = `http://127.0.0.1:${server.address().port}`
  return { url: `${base}/token`, mcp: `${base}/mcp`, grants, bearers, close: () => server.close() }
}

/** The refresh grant the SDK sends (a form body), through `provider.fetch`. */
const refreshGrant = (provider, url, refreshToken) =>
  provider.fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'c' }),
  })

test("provider.fetch: a live claim elsewhere is waited for (bounded), newer tokens are used, else one grant is sent and saved with the tokens' issuer", async () => {
  const endpoint = await tokenEndpoint()
  const db = openDatabase(join(tempDir('fetch-branches'), 'hoot-mcp.db'))
  const store = db.store(USER)
  try {
    await store.saveTokens('srv', { access_token: 'at-0', refresh_token: 'rt-0', issuer: 'https://as.example/' })
    const provider = createOAuthProvider(store, 'srv', { ...options, refreshWaitMs: 50 })
    // Another process holds the refresh: this holder waits, then fails the call, sending nothing.
    assert.equal(await db.store(USER).claimRefresh('srv', 'elsewhere', { leaseMs: 60_000 }), true)
    const waited = await refreshGrant(provider, endpoint.url, 'rt-0')
    assert.equal(waited.status, 503)
    assert.equal((await waited.json()).error, 'temporarily_unavailable')
    assert.deepEqual(endpoint.grants, [])
    await store.releaseRefresh('srv', 'elsewhere')
    // Free: one grant, saved (keeping the issuer) before the answer.
    const granted = await refreshGrant(provider, endpoint.url, 'rt-0')
    assert.equal(granted.status, 200)
    assert.equal((await granted.json()).access_token, 'at-1')
    assert.deepEqual(endpoint.grants, ['rt-0'])
    assert.deepEqual(await store.tokens('srv'), {
      refresh_token: 'rt-1',
      access_token: 'at-1',
      token_type: 'bearer',
      issuer: 'https://as.example/',
    })
    // A holder that still has rt-0 gets the stored tokens, and the server sees no second grant.
    const late = createOAuthProvider(db.store(USER), 'srv', options)
    const adopted = await refreshGrant(late, endpoint.url, 'rt-0')
    assert.deepEqual(await adopted.json(), { refresh_token: 'rt-1', access_token: 'at-1', token_type: 'bearer' })
    assert.deepEqual(endpoint.grants, ['rt-0'])
    // Its SDK then saves what it was answered: nothing new is written.
    const before = await store.tokensVersioned('srv')
    await late.saveTokens({
      refresh_token: 'rt-1',
      access_token: 'at-1',
      token_type: 'bearer',
      issuer: 'https://as.example/',
    })
    assert.equal((await store.tokensVersioned('srv')).version, before.version)
    // A call refused with a token another holder has since replaced is sent again with the stored one.
    const call = (bearer, body) =>
      provider.fetch(endpoint.mcp, {
        method: 'POST',
        headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
        body,
      })
    const resent = await call('at-0', '{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
    assert.equal(resent.status, 200)
    assert.deepEqual(endpoint.bearers, ['Bearer at-0', 'Bearer at-1'])
    // A JSON body is never read as a token request, whatever text it holds.
    const sneaky = await call('at-1', '{"x":"&grant_type=refresh_token&refresh_token=rt-1"}')
    assert.equal(sneaky.status, 200)
    assert.deepEqual(await sneaky.json(), { body: '{"x":"&grant_type=refresh_token&refresh_token=rt-1"}' })
    assert.deepEqual(endpoint.grants, ['rt-0'])
    // Removed meanwhile (the user disconnected): no grant brings them back.
    await store.invalidateCredentials('srv', 'tokens')
    const gone = await refreshGrant(provider, endpoint.url, 'rt-1')
    assert.equal((await gone.json()).error, 'invalid_grant')
    assert.deepEqual(endpoint.grants, ['rt-0'])
    assert.equal(await store.tokens('srv'), undefined)
  } finally {
    endpoint.close()
    await db.close()
  }
})

describe('on PostgreSQL', () => {
  if (!postgresAvailable('versioned credentials')) return

  test(
    'the store versions tokens and registrations, deletes by version, and claims refreshes',
    PG_TIMEOUT,
    async () => {
      const db = openDatabase(await freshDatabase('versions'))
      await storePrimitives(db)
      await db.close()
    },
  )

  test(
    "a provider's invalidateCredentials removes only what it read: another replica's newer credentials survive",
    PG_TIMEOUT,
    async () => {
      const url = await freshDatabase('compare_delete')
      // Two replicas: a Database (and a pool) each.
      const [one, two] = [openDatabase(url), openDatabase(url)]
      let turn = 0
      await invalidationKeepsNewerCredentials(one, () =>
        createOAuthProvider((turn++ % 2 ? two : one).store(USER), 'srv', options),
      )
      await Promise.all([one.close(), two.close()])
    },
  )

  test('a schema 2 database gains the versions and the claims table, keeping every row', PG_TIMEOUT, async () => {
    const url = await freshDatabase('schema2')
    const db = openDatabase(url)
    await db.store(USER).saveTokens('srv', { access_token: 'kept' })
    await db.close()
    for (const sql of [
      'ALTER TABLE oauth_tokens DROP COLUMN version',
      'ALTER TABLE oauth_client_info DROP COLUMN version',
      'DROP TABLE hoot_refresh_claims',
      'UPDATE hoot_schema_version SET version = 2',
    ]) {
      await rows(url, sql)
    }
    const upgraded = openDatabase(url)
    assert.equal((await upgraded.ready()).schemaVersion, 3)
    const store = upgraded.store(USER)
    assert.deepEqual(await store.tokensVersioned('srv'), { value: { access_token: 'kept' }, version: 0 })
    assert.equal(await store.claimRefresh('srv', 'h', { leaseMs: 1000 }), true)
    await upgraded.close()
  })
})

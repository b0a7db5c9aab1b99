// createDatabaseAdapter against Hoot's own SQLiteAdapter: the same methods, the same nulls, and a
// database each side reads from the other (Hoot's statements run through better-sqlite3 in a
// child process, as in its server/adapters/sqlite.js).
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'

import { createDatabaseAdapter } from '../lib/hoot.js'
import { USER, tempDir, withBetterSqlite } from './helpers.mjs'

const BOB = '9c5b94b1-35ad-49bb-b118-8e8fc24abf80'
/** Hoot's DatabaseAdapter (server/adapters/database.js), method by method. */
const HOOT_METHODS = [
  'saveOAuthTokens',
  'getOAuthTokens',
  'saveOAuthClientInfo',
  'getOAuthClientInfo',
  'saveVerifier',
  'getVerifier',
  'deleteVerifier',
  'cleanupOldVerifiers',
  'clearOAuthCredentials',
  'saveServerConfig',
  'getServerConfig',
  'deleteServerConfig',
  'saveFaviconCache',
  'getFaviconCache',
  'close',
]

/** Runs Hoot's SQLiteAdapter statements on `dbPath` in a child process; `body` returns a JSON value. */
function hootSql(dbPath, body, input = {}) {
  return withBetterSqlite(
    `const db = new Database(input.dbPath)
     const result = (() => { ${body} })()
     db.close()
     console.log(JSON.stringify(result ?? null))`,
    { dbPath, ...input },
  )
}

function fresh(label) {
  const dbPath = join(tempDir(label), 'hoot-mcp.db')
  return { dbPath, adapter: createDatabaseAdapter({ dbPath }) }
}

test("it has exactly Hoot's DatabaseAdapter methods, every one async", async () => {
  const { adapter } = fresh('adapter-shape')
  assert.deepEqual(Object.keys(adapter).sort(), [...HOOT_METHODS].sort())
  for (const name of HOOT_METHODS) assert.equal(adapter[name].constructor.name, 'AsyncFunction', name)
})

test("what it writes, Hoot's SQL reads, and what Hoot's SQL writes, it reads", async () => {
  const { dbPath, adapter } = fresh('adapter-both-ways')
  await adapter.saveOAuthTokens(USER, 'srv', { access_token: 'at', token_type: 'Bearer' })
  await adapter.saveOAuthClientInfo(USER, 'srv', { client_id: 'cid' })
  await adapter.saveVerifier(USER, 'srv', 'verifier-1')
  await adapter.saveServerConfig(USER, 'srv', { serverName: 'S', url: 'https://s.example/mcp', transport: 'http' })
  await adapter.saveFaviconCache('https://s.example', 'https://s.example/favicon.ico')
  const read = hootSql(
    dbPath,
    `const get = (sql) => db.prepare(sql).get(input.user, 'srv')
     return {
       tokens: JSON.parse(get('SELECT tokens FROM oauth_tokens WHERE user_id = ? AND server_id = ?').tokens),
       clientInfo: JSON.parse(get('SELECT client_info FROM oauth_client_info WHERE user_id = ? AND server_id = ?').client_info),
       verifier: get('SELECT verifier FROM oauth_verifiers WHERE user_id = ? AND server_id = ?').verifier,
       config: JSON.parse(get('SELECT config FROM server_configs WHERE user_id = ? AND server_id = ?').config),
       favicon: db.prepare('SELECT favicon_url FROM favicon_cache WHERE server_url = ? AND (oauth_logo_uri IS NULL OR oauth_logo_uri = ?) AND cached_at > ?')
         .get('https://s.example', null, Math.floor(Date.now() / 1000) - 86400).favicon_url,
     }`,
    { user: USER },
  )
  assert.deepEqual(read, {
    tokens: { access_token: 'at', token_type: 'Bearer' },
    clientInfo: { client_id: 'cid' },
    verifier: 'verifier-1',
    config: { serverName: 'S', url: 'https://s.example/mcp', transport: 'http' },
    favicon: 'https://s.example/favicon.ico',
  })

  await adapter.close()
  hootSql(
    dbPath,
    `const now = Math.floor(Date.now() / 1000)
     db.prepare('INSERT OR REPLACE INTO oauth_tokens (user_id, server_id, tokens) VALUES (?, ?, ?)').run(input.user, 'hoot', JSON.stringify({ access_token: 'from-hoot' }))
     db.prepare('INSERT OR REPLACE INTO oauth_client_info (user_id, server_id, client_info) VALUES (?, ?, ?)').run(input.user, 'hoot', JSON.stringify({ client_id: 'hoot-cid' }))
     db.prepare('INSERT OR REPLACE INTO oauth_verifiers (user_id, server_id, verifier, created_at) VALUES (?, ?, ?, ?)').run(input.user, 'hoot', 'hoot-verifier', now)
     db.prepare('INSERT OR REPLACE INTO server_configs (user_id, server_id, config, created_at) VALUES (?, ?, ?, ?)').run(input.user, 'hoot', JSON.stringify({ url: 'u' }), now)
     db.prepare('INSERT OR REPLACE INTO favicon_cache (server_url, favicon_url, oauth_logo_uri, cached_at) VALUES (?, ?, ?, ?)').run('https://h.example', 'https://h.example/f.png', 'https://h.example/logo', now)`,
    { user: USER },
  )
  assert.deepEqual(await adapter.getOAuthTokens(USER, 'hoot'), { access_token: 'from-hoot' })
  assert.deepEqual(await adapter.getOAuthClientInfo(USER, 'hoot'), { client_id: 'hoot-cid' })
  assert.equal(await adapter.getVerifier(USER, 'hoot'), 'hoot-verifier')
  assert.deepEqual(await adapter.getServerConfig(USER, 'hoot'), { url: 'u' })
  assert.equal(await adapter.getFaviconCache('https://h.example', 'https://h.example/logo'), 'https://h.example/f.png')
  assert.equal(await adapter.getFaviconCache('https://h.example', 'https://other/logo'), null, "Hoot's logo rule")
})

test("null wherever Hoot's adapter returns null, and no user reaches another's rows", async () => {
  const { adapter } = fresh('adapter-nulls')
  await adapter.saveOAuthTokens(USER, 'srv', { access_token: 'alice' })
  await adapter.saveOAuthClientInfo(USER, 'srv', { client_id: 'alice' })
  await adapter.saveVerifier(USER, 'srv', 'alice')
  await adapter.saveServerConfig(USER, 'srv', { url: 'alice' })
  for (const [user, server] of [
    [BOB, 'srv'],
    [USER, 'other'],
  ]) {
    assert.equal(await adapter.getOAuthTokens(user, server), null)
    assert.equal(await adapter.getOAuthClientInfo(user, server), null)
    assert.equal(await adapter.getVerifier(user, server), null)
    assert.equal(await adapter.getServerConfig(user, server), null)
  }
  await adapter.clearOAuthCredentials(BOB, 'srv')
  await adapter.deleteServerConfig(BOB, 'srv')
  await adapter.deleteVerifier(BOB, 'srv')
  assert.deepEqual(await adapter.getOAuthTokens(USER, 'srv'), { access_token: 'alice' }, "bob's clear left alice alone")
  assert.equal(await adapter.getVerifier(USER, 'srv'), 'alice')
  assert.equal(await adapter.getFaviconCache('https://never.example'), null)
  await adapter.saveFaviconCache('https://none.example', null)
  await adapter.saveFaviconCache('https://undefined.example', undefined)
  assert.equal(await adapter.getFaviconCache('https://undefined.example'), null)
  assert.equal(
    await adapter.getFaviconCache('https://none.example'),
    null,
    'a cached "not found" reads as null, as in Hoot',
  )
})

test("verifiers expire after Hoot's 10 minutes, on read and in cleanupOldVerifiers", async () => {
  const { dbPath, adapter } = fresh('adapter-expiry')
  hootSql(
    dbPath,
    `const now = Math.floor(Date.now() / 1000)
     const put = db.prepare('INSERT OR REPLACE INTO oauth_verifiers (user_id, server_id, verifier, created_at) VALUES (?, ?, ?, ?)')
     put.run(input.user, 'old', 'old-verifier', now - 601)
     put.run(input.user, 'new', 'new-verifier', now - 10)`,
    { user: USER },
  )
  assert.equal(await adapter.getVerifier(USER, 'old'), null, 'older than 10 minutes: not returned')
  assert.equal(await adapter.getVerifier(USER, 'new'), 'new-verifier')
  await adapter.cleanupOldVerifiers()
  const left = hootSql(
    dbPath,
    `return db.prepare('SELECT server_id FROM oauth_verifiers ORDER BY 1').all().map((r) => r.server_id)`,
  )
  assert.deepEqual(left, ['new'])
})

test("clearOAuthCredentials takes every scope the SDK sends, 'all' by default; another scope changes nothing", async () => {
  const { adapter } = fresh('adapter-scopes')
  const fill = async () => {
    await adapter.saveOAuthTokens(USER, 'srv', { access_token: 't' })
    await adapter.saveOAuthClientInfo(USER, 'srv', { client_id: 'c' })
    await adapter.saveVerifier(USER, 'srv', 'v')
  }
  const left = async () => ({
    tokens: (await adapter.getOAuthTokens(USER, 'srv')) !== null,
    client: (await adapter.getOAuthClientInfo(USER, 'srv')) !== null,
    verifier: (await adapter.getVerifier(USER, 'srv')) !== null,
  })
  for (const [scope, expected] of [
    ['tokens', { tokens: false, client: true, verifier: true }],
    ['client', { tokens: true, client: false, verifier: true }],
    ['verifier', { tokens: true, client: true, verifier: false }],
    ['discovery', { tokens: true, client: true, verifier: true }],
    [undefined, { tokens: false, client: false, verifier: false }],
  ]) {
    await fill()
    await adapter.clearOAuthCredentials(USER, 'srv', scope)
    assert.deepEqual(await left(), expected, String(scope))
  }
  await fill()
  await assert.rejects(adapter.clearOAuthCredentials(USER, 'srv', 'everything'), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.deepEqual(await left(), { tokens: true, client: true, verifier: true })
})

test('wrong types and bad values reject with their codes, and write nothing', async () => {
  const { dbPath, adapter } = fresh('adapter-bad')
  const bad = [
    [() => adapter.saveOAuthTokens('not-a-uuid', 'srv', { a: 1 }), 'ERR_INVALID_USER_ID'],
    [() => adapter.saveOAuthTokens(undefined, 'srv', { a: 1 }), 'ERR_INVALID_ARG_TYPE'],
    [() => adapter.saveOAuthTokens(USER, 42, { a: 1 }), 'ERR_INVALID_ARG_TYPE'],
    [() => adapter.saveOAuthTokens(USER, '', { a: 1 }), 'ERR_INVALID_ARG_VALUE'],
    [() => adapter.saveOAuthTokens(USER, 'srv', 'not an object'), 'ERR_INVALID_ARG_VALUE'],
    [() => adapter.saveOAuthClientInfo(USER, 'srv', [1]), 'ERR_INVALID_ARG_VALUE'],
    [() => adapter.saveVerifier(USER, 'srv', 7), 'ERR_INVALID_ARG_TYPE'],
    [() => adapter.saveServerConfig('legacy-user-x', 'srv', {}), 'ERR_INVALID_USER_ID'],
    [() => adapter.getOAuthTokens({}, 'srv'), 'ERR_INVALID_ARG_TYPE'],
    [() => adapter.saveFaviconCache(5, null), 'ERR_INVALID_ARG_TYPE'],
  ]
  for (const [call, code] of bad) {
    const pending = call()
    assert.ok(pending instanceof Promise, 'a bad argument rejects, it does not throw')
    await assert.rejects(pending, { code })
  }
  const rows = hootSql(
    dbPath,
    `return ['oauth_tokens', 'oauth_client_info', 'oauth_verifiers', 'server_configs', 'favicon_cache']
       .map((t) => db.prepare('SELECT count(*) AS n FROM ' + t).get().n)`,
  )
  assert.deepEqual(rows, [0, 0, 0, 0, 0])
  assert.throws(() => createDatabaseAdapter({ dbPath: 5 }), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => createDatabaseAdapter('path'), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => createDatabaseAdapter({ dbPath: '' }), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('after close() the next call opens the database again', async () => {
  const { adapter } = fresh('adapter-close')
  await adapter.saveOAuthTokens(USER, 'srv', { access_token: 't' })
  await adapter.close()
  assert.deepEqual(await adapter.getOAuthTokens(USER, 'srv'), { access_token: 't' })
})

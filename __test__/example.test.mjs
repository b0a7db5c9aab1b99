// The example server (examples/express) over real HTTP on 127.0.0.1: Hoot's endpoints and status
// codes, and two browsers that never see each other's data or connections. On SQLite here; on
// PostgreSQL when example-postgres.test.mjs imports this file with HOOT_EXAMPLE_POSTGRES set.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { SignJWT, importJWK } from 'jose'

import { UserConnections } from '../lib/hoot.js'
import { loadKeys, migrateDatabase, openDatabase } from '../lib/index.js'
import { legacyTransferCode } from '../lib/sqlite.js'
import { createApp, createMetricsServer, limiter } from '../examples/express/server.mjs'
import { hootKeyFiles, makeLegacyDb, tempDir } from './helpers.mjs'
import { callback, startOAuthMcpServer } from './mcp-fixture.mjs'

let base, http, app, fixture, keys
const ORIGIN = 'http://localhost:8009'

before(async () => {
  // A home of its own: transfer codes make the store secret in ~/.hoot/keys, never the developer's.
  process.env.HOME = tempDir('example-home')
  process.env.HOOT_DB_PATH = join(tempDir('example'), 'hoot-mcp.db')
  keys = await hootKeyFiles(tempDir('example-keys'))
  loadKeys({ privateKeyPath: keys.privateKeyPath, jwksPath: keys.jwksPath })
  fixture = await startOAuthMcpServer()
  app = createApp(process.env.HOOT_EXAMPLE_POSTGRES ? { db: openDatabase(process.env.HOOT_EXAMPLE_POSTGRES) } : {})
  http = app.listen(0, '127.0.0.1')
  await once(http, 'listening')
  base = `http://127.0.0.1:${http.address().port}`
})

after(async () => {
  await app.closeAll()
  await app.db.close()
  await new Promise((resolve) => http.close(resolve))
  await fixture.close()
  delete process.env.HOOT_DB_PATH
})

async function call(method, path, { token, body, origin } = {}) {
  const headers = { 'content-type': 'application/json' }
  if (token) headers['x-hoot-token'] = token
  if (origin) headers.origin = origin
  const response = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined })
  return { status: response.status, body: await response.json() }
}

async function browserToken(userId = randomUUID()) {
  const { status, body } = await call('POST', '/auth/token', { origin: ORIGIN, body: { userId } })
  assert.equal(status, 200)
  assert.equal(body.tokenType, 'jwt')
  return body.token
}

test('/auth/token checks the origin and the user id, as Hoot does', async () => {
  assert.deepEqual(
    await call('POST', '/auth/token', { origin: 'https://evil.example', body: { userId: randomUUID() } }),
    { status: 403, body: { success: false, error: 'Forbidden' } },
  )
  assert.deepEqual(await call('POST', '/auth/token', { origin: ORIGIN, body: { userId: 'not-a-uuid' } }), {
    status: 400,
    body: { success: false, error: 'Invalid user ID format. Must be a valid UUID v4.' },
  })
  const jwks = await call('GET', '/.well-known/jwks.json')
  assert.equal(jwks.body.keys[0].kid, keys.kid)
})

test("missing, tampered, expired and foreign tokens get Hoot's 401 bodies", async () => {
  const unauthorized = { success: false, error: 'Unauthorized', message: 'Invalid authentication token' }
  assert.deepEqual(await call('GET', '/mcp/tools/x'), {
    status: 401,
    body: { success: false, error: 'Unauthorized', message: 'Missing or invalid authentication token' },
  })
  const token = await browserToken()
  const [h, , s] = token.split('.')
  const forged = `${h}.${Buffer.from(JSON.stringify({ sub: randomUUID(), exp: 9999999999 })).toString('base64url')}.${s}`
  assert.deepEqual(await call('GET', '/mcp/tools/x', { token: forged }), { status: 401, body: unauthorized })
  const expired = await new SignJWT({ sub: randomUUID() })
    .setProtectedHeader({ alg: 'RS256', kid: keys.kid, typ: 'JWT' })
    .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
    .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
    .sign(await importJWK(keys.privateJwk, 'RS256'))
  assert.deepEqual(await call('GET', '/mcp/tools/x', { token: expired }), {
    status: 401,
    body: { success: false, error: 'TokenExpired', message: 'Token has expired', expired: true },
  })
  const other = await hootKeyFiles(tempDir('other-server'), keys.kid) // another server's key, same kid
  const foreign = await new SignJWT({ sub: randomUUID() })
    .setProtectedHeader({ alg: 'RS256', kid: keys.kid, typ: 'JWT' })
    .setExpirationTime('1h')
    .sign(await importJWK(other.privateJwk, 'RS256'))
  assert.deepEqual(await call('GET', '/mcp/tools/x', { token: foreign }), { status: 401, body: unauthorized })
})

test("two browsers: each authorizes for itself and cannot reach the other's connection", async () => {
  const alice = await browserToken()
  const bob = await browserToken()
  const connect = (token, { code, state } = {}) =>
    call('POST', '/mcp/connect', {
      token,
      body: { serverId: 'fixture', url: fixture.url.toString(), authorizationCode: code, state },
    })

  const first = await connect(alice)
  assert.equal(first.status, 401)
  assert.equal(first.body.needsAuth, true)
  const returned = await callback(first.body.authorizationUrl)
  // Bob cannot finish Alice's authorization with her callback: the state is hers.
  assert.equal((await connect(bob, returned)).status, 400)
  const connected = await connect(alice, returned)
  assert.deepEqual(connected, { status: 200, body: { success: true, serverId: 'fixture' } })
  const tools = await call('GET', '/mcp/tools/fixture', { token: alice })
  assert.deepEqual(
    tools.body.tools.map((t) => t.name),
    ['whoami'],
  )

  // Bob sees neither Alice's live connection nor her stored credentials.
  assert.deepEqual(await call('GET', '/mcp/tools/fixture', { token: bob }), {
    status: 404,
    body: { success: false, error: 'Server not connected' },
  })
  assert.equal((await call('POST', '/mcp/disconnect', { token: bob, body: { serverId: 'fixture' } })).status, 404)
  assert.equal(
    (await call('POST', '/mcp/clear-oauth-tokens', { token: bob, body: { serverId: 'fixture' } })).status,
    200,
  )
  assert.equal((await connect(bob)).body.needsAuth, true, 'Bob must authorize for himself')
  assert.equal((await call('GET', '/mcp/tools/fixture', { token: alice })).status, 200, 'Alice is still connected')

  // Alice reconnects with her stored tokens; clearing them forces a new authorization.
  assert.equal((await connect(alice)).status, 200)
  assert.equal(
    (await call('POST', '/mcp/clear-oauth-tokens', { token: alice, body: { serverId: 'fixture' } })).status,
    200,
  )
  assert.equal((await connect(alice)).body.needsAuth, true)
  assert.equal(
    (await call('POST', '/mcp/disconnect', { token: alice, body: { serverId: 'fixture' } })).status,
    404,
    'the failed reconnect dropped the old connection',
  )
})

test('a malformed body is a JSON 400, and nothing of it reaches a log', async () => {
  const secret = randomUUID()
  const logged = []
  const { error, warn, log } = console
  const write = process.stderr.write
  console.error = console.warn = console.log = (...args) => logged.push(args.join(' '))
  process.stderr.write = (chunk, ...rest) => (logged.push(String(chunk)), true)
  let response
  try {
    response = await fetch(base + '/auth/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: ORIGIN },
      body: `{"userId": "${secret}",`,
    })
  } finally {
    Object.assign(console, { error, warn, log })
    process.stderr.write = write
  }
  assert.equal(response.status, 400)
  assert.match(response.headers.get('content-type'), /application\/json/)
  assert.deepEqual(await response.json(), { success: false, error: 'Invalid JSON body' })
  assert.ok(!logged.some((line) => line.includes(secret.slice(0, 8))), logged.join('\n'))
})

test('a user who only gets 404s leaves nothing behind in the connection map', async () => {
  for (let i = 0; i < 5; i++) {
    const token = await browserToken()
    assert.equal((await call('GET', '/mcp/tools/none', { token })).status, 404)
    assert.equal((await call('POST', '/mcp/disconnect', { token, body: { serverId: 'none' } })).status, 404)
  }
  assert.equal(app.connections.users, 0)
})

test('UserConnections: bounded per user and in total, idle ones closed, empty users gone', async () => {
  const closed = []
  const client = (name) => ({ name, close: async () => void closed.push(name) })
  const pool = new UserConnections({ perUser: 2, total: 3, idleMs: 1000 })
  await pool.set('alice', 'a1', client('alice/a1'), 0)
  await pool.set('alice', 'a2', client('alice/a2'), 10)
  assert.equal(pool.get('alice', 'a1', 20).name, 'alice/a1') // a1 is now the more recently used
  await pool.set('alice', 'a3', client('alice/a3'), 30)
  assert.deepEqual(closed, ['alice/a2'], 'the per-user bound closes her least recently used')
  assert.equal(pool.get('bob', 'a1'), undefined, 'another user with the same server id sees nothing')
  assert.deepEqual(pool.servers('alice'), ['a1', 'a3'])
  assert.deepEqual(pool.servers('bob'), [])
  await pool.set('bob', 'b1', client('bob/b1'), 40)
  await pool.set('carol', 'c1', client('carol/c1'), 50)
  assert.deepEqual(closed, ['alice/a2', 'alice/a1'], 'the total bound closes the least recently used of all')
  await pool.evictIdle(1045)
  assert.deepEqual(closed, ['alice/a2', 'alice/a1', 'alice/a3', 'bob/b1'], 'idle for a second: closed')
  assert.equal(pool.users, 1)
  assert.equal(await pool.delete('carol', 'c1'), true)
  assert.equal(pool.users, 0, 'a user with no connection is not kept')
  assert.equal(await pool.delete('carol', 'c1'), false)
})

test('sessions in the example: transfer to a new device once, forget me on every device, origin checked', async () => {
  const origin = 'http://localhost:8009'
  const userId = randomUUID()
  const token = await browserToken(userId)
  assert.equal((await call('POST', '/auth/transfer', { token })).status, 403, 'no origin, no code')
  const { body } = await call('POST', '/auth/transfer', { token, origin })
  const redeemed = await call('POST', '/auth/redeem', { origin, body: { code: body.code } })
  assert.equal(redeemed.body.userId, userId)
  assert.equal((await call('POST', '/auth/redeem', { origin, body: { code: body.code } })).status, 400, 'once')
  assert.equal((await call('GET', '/mcp/tools/x', { token: redeemed.body.token })).status, 404, 'a valid session')
  assert.equal((await call('POST', '/auth/forget', { token, origin })).status, 200)
  assert.equal((await call('GET', '/mcp/tools/x', { token: redeemed.body.token })).status, 401, 'revoked everywhere')
})

test('forget me ends a pending transfer code; forget is limited per address; the limiter evicts the least recently seen', async () => {
  const origin = 'http://localhost:8009'
  const token = await browserToken()
  const { body } = await call('POST', '/auth/transfer', { token, origin })
  assert.equal((await call('POST', '/auth/forget', { token, origin })).status, 200)
  const refused = await call('POST', '/auth/redeem', { origin, body: { code: body.code } })
  assert.deepEqual([refused.status, refused.body.error], [400, 'ERR_HOOT_TRANSFER_CODE'])

  // The earlier test forgot once from this address too: five a minute in all.
  const statuses = []
  for (let i = 0; i < 5; i++)
    statuses.push((await call('POST', '/auth/forget', { token: await browserToken(), origin })).status)
  assert.equal(statuses.at(-1), 429)
  assert.ok(statuses.filter((s) => s === 200).length <= 4, 'at most five forgets a minute from one address')

  const allow = limiter({ max: 2, keys: 3 })
  assert.deepEqual([allow('a', 0), allow('a', 0), allow('a', 0)], [true, true, false])
  for (const key of ['b', 'c', 'd', 'e']) {
    allow(key, 1)
    assert.equal(allow('a', 1), false, 'new keys never reset a key still being hit')
  }
  assert.equal(allow('a', 60_000), true, 'its window ends')
})

test('/auth/redeem: only a legacy code without a session asks for one; another refused argument is a plain 400', async () => {
  // A code that is not well-formed text (a lone surrogate): the core refuses it as an argument.
  const bad = await call('POST', '/auth/redeem', { origin: ORIGIN, body: { code: 'ABCD-\ud800-JKMN' } })
  assert.deepEqual(bad, { status: 400, body: { success: false, error: 'InvalidRequest' } })
  if (process.env.HOOT_EXAMPLE_POSTGRES) return // legacy data exists only in a SQLite file

  // A legacy install's code, redeemed with no session, then with one.
  const dbPath = join(tempDir('example-legacy'), 'hoot-mcp.db')
  makeLegacyDb(dbPath, 1)
  migrateDatabase(dbPath)
  const { code } = legacyTransferCode({ dbPath })
  const db = openDatabase(dbPath)
  const legacy = createApp({ db, connections: new UserConnections() })
  const server = legacy.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const redeem = async (token) => {
    const headers = { 'content-type': 'application/json', origin: ORIGIN }
    if (token) headers['x-hoot-token'] = token
    const response = await fetch(`http://127.0.0.1:${server.address().port}/auth/redeem`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ code }),
    })
    return { status: response.status, body: await response.json() }
  }
  try {
    const anonymous = await redeem()
    assert.deepEqual([anonymous.status, anonymous.body.error], [400, 'SessionRequired'])
    const browser = randomUUID()
    const redeemed = await redeem(await browserToken(browser))
    assert.deepEqual([redeemed.status, redeemed.body.userId], [200, browser])
  } finally {
    await new Promise((resolve) => server.close(resolve))
    await db.close()
  }
})

test('UserConnections: two sets of one server at once keep one client and close the other', async () => {
  const closed = []
  const client = (name, fails = false) => ({
    name,
    close: async () => {
      closed.push(name)
      if (fails) throw new Error('close failed')
    },
  })
  const pool = new UserConnections({ perUser: 2, total: 2, idleMs: 1000 })
  await Promise.all([pool.set('alice', 's', client('first'), 0), pool.set('alice', 's', client('second'), 0)])
  assert.equal(pool.count, 1)
  assert.equal(pool.get('alice', 's', 1).name, 'second')
  assert.deepEqual(closed, ['first'], 'the replaced client is closed')
  await pool.set('bob', 'b', client('bob', true), 2)
  pool.get('alice', 's', 5)
  await pool.set('carol', 'c', client('carol'), 6) // evicts bob's, the least recently used, whose close throws
  assert.equal(pool.count, 2)
  assert.deepEqual(pool.servers('bob'), [])
  assert.throws(() => new UserConnections({ total: 0 }), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('/auth/redeem tells an anonymous caller nothing of a database outage', { timeout: 30_000 }, async () => {
  // A real PostgreSQL URL where nothing listens: the core's message names the host, port and database.
  const db = openDatabase('postgres://127.0.0.1:9/hoot_outage_db?sslmode=disable', { connectTimeoutMs: 2000 })
  const outage = createApp({ db, connections: new UserConnections() })
  const server = outage.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const response = await fetch(`http://127.0.0.1:${server.address().port}/auth/redeem`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: ORIGIN },
      body: JSON.stringify({ code: 'ABCD-EFGH-JKMN' }),
    })
    const text = await response.text()
    assert.equal(response.status, 500)
    assert.deepEqual(JSON.parse(text), { success: false, error: 'Internal error' })
    for (const secret of ['127.0.0.1', 'hoot_outage_db', ':9']) assert.ok(!text.includes(secret), text)
  } finally {
    await new Promise((resolve) => server.close(resolve))
    await db.close()
  }
})

test("the metrics server answers GET /metrics with the Prometheus text, counting this server's calls, and nothing else", async () => {
  const metrics = createMetricsServer().listen(0, '127.0.0.1')
  await once(metrics, 'listening')
  try {
    const at = `http://127.0.0.1:${metrics.address().port}`
    const count = async () => {
      const response = await fetch(`${at}/metrics`)
      assert.equal(response.status, 200)
      assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
      const line = (await response.text())
        .split('\n')
        .find((l) => l.startsWith('hoot_token_issues_total{outcome="ok"}'))
      return Number(line.split(' ')[1])
    }
    const before = await count()
    await browserToken()
    assert.equal(await count(), before + 1)
    assert.equal((await fetch(`${at}/`)).status, 404)
    assert.equal((await fetch(`${at}/metrics`, { method: 'POST' })).status, 404)
  } finally {
    await new Promise((resolve) => metrics.close(resolve))
  }
})

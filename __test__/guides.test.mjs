// Every code block of the two Hoot guides, run. Each block is marked `<!-- test: id -->` in the
// guide; this file splices it into a module in the shape of the Hoot file it replaces (Hoot's own
// code is not copied here: the surrounding lines are the minimum of that file's structure), then
// drives the result the way Hoot's frontend does, against a real MCP server behind OAuth.
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, describe, test } from 'node:test'

import { SignJWT, importJWK } from 'jose'

import { flushEvents } from '../lib/events.js'
import { activitySummary } from '../lib/sqlite.js'
import { guideSnippets, hootKeyFiles, root, tempDir } from './helpers.mjs'
import { callback, startOAuthMcpServer } from './mcp-fixture.mjs'

const GUIDES = ['docs/using-in-hoot-server.md', 'docs/using-in-hoot.md']
const used = new Set()

const all = new Map(GUIDES.flatMap((file) => [...guideSnippets(file)]))
/** A snippet by id, recorded as exercised. */
function snippet(id) {
  assert.ok(all.has(id), `no snippet ${id}`)
  used.add(id)
  return all.get(id)
}

/**
 * A token for `userId` that expired an hour ago, signed with the key hoot-core generated in
 * `home`/.hoot/keys (the key the backend under test verifies with).
 */
async function expiredToken(home, userId) {
  const keys = join(home, '.hoot', 'keys')
  const { kid } = JSON.parse(readFileSync(join(keys, 'jwks.json'), 'utf8')).keys[0]
  const key = await importJWK(JSON.parse(readFileSync(join(keys, 'private-key.json'), 'utf8')), 'RS256')
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ sub: userId })
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setIssuedAt(now - 7200)
    .setExpirationTime(now - 3600)
    .sign(key)
}

/**
 * The audit entries after every security event queued so far has reached the guide's listener
 * (flushEvents hands them over now, so no test waits for the event loop).
 */
function auditAfterEvents(entries) {
  flushEvents()
  return entries
}

/** Fails if any audit entry holds one of `secrets` (user ids, tokens, codes) anywhere in its text. */
function assertNoSecrets(entries, secrets) {
  for (const entry of entries) {
    const line = JSON.stringify(entry)
    for (const secret of secrets) assert.ok(!line.includes(secret), `an audit entry holds a secret: ${line}`)
  }
}

/** A forged and an expired token each left Hoot's `auth_failed` and hoot-core's `token_refused`. */
function assertRefusalsLogged(events) {
  assert.deepEqual(
    events('auth_failed').map((entry) => entry.reason),
    ['invalid_token', 'token_expired'],
  )
  assert.deepEqual(
    events('token_refused').map((entry) => entry.code),
    ['ERR_JWS_INVALID', 'ERR_JWT_EXPIRED'],
  )
}

/** Writes `files` (path -> text) into a project whose node_modules link hoot-core and its peers. */
function project(label, files) {
  const dir = tempDir(label)
  mkdirSync(join(dir, 'node_modules', '@modelcontextprotocol'), { recursive: true })
  symlinkSync(root, join(dir, 'node_modules', 'hoot-core'))
  symlinkSync(join(root, 'node_modules', 'express'), join(dir, 'node_modules', 'express'))
  symlinkSync(
    join(root, 'node_modules', '@modelcontextprotocol', 'sdk'),
    join(dir, 'node_modules', '@modelcontextprotocol', 'sdk'),
  )
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'hoot', private: true, type: 'module' }))
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
  return dir
}

/**
 * The browser's side of a Hoot backend at `server().url`: JSON posts and gets with the
 * x-hoot-token header, and /mcp/connect to `mcp()`'s OAuth server.
 */
function frontend(server, mcp) {
  const origin = 'http://localhost:8009'
  const token = (t) => (t ? { 'x-hoot-token': t } : {})
  const post = (path, body, t) =>
    fetch(server().url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin, ...token(t) },
      body: JSON.stringify(body),
    })
  const get = (path, t) => fetch(server().url + path, { headers: token(t) })
  const connect = (t, extra = {}) =>
    post(
      '/mcp/connect',
      {
        serverId: 'fixture',
        serverName: 'Fixture',
        url: mcp().url.href,
        transport: 'http',
        auth: { type: 'oauth' },
        ...extra,
      },
      t,
    )
  const tokenFor = async (userId) => (await (await post('/auth/token', { userId })).json()).token
  return { post, get, connect, tokenFor }
}

test('every code block in both guides is marked for a test', () => {
  for (const file of GUIDES) {
    const text = readFileSync(join(root, file), 'utf8')
    const blocks = text.match(/```(js|ts|tsx)\n/g) ?? []
    assert.equal(blocks.length, guideSnippets(file, 'all').size, `${file}: a code block without <!-- test: id -->`)
  }
})

// ----------------------------------------------------------------------------------------------
// Today's Hoot: server/server-node.js, server/lib/handlers.js, server/lib/jwt-node.js (new, Node only)
// and server/adapters/connection-pool-node.js.

function serverFiles() {
  return {
    'server/lib/jwt-node.js': snippet('jwt-manager'),
    'server/adapters/connection-pool-node.js': snippet('connection-pool'),
    'server/lib/handlers.js': `
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
export const warnings = []
const logger = { info() {}, success() {}, error() {}, warn: (message) => warnings.push(message) }
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
${snippet('handlers-provider')}
// autoDetectServer's test of an authenticated server, on the errors SDK 1.20 and 1.32 throw.
export function detects401(error) {
${snippet('handlers-detect-401')}
  return is401or403
}

export async function connectToServer(options) {
  const { serverId, serverName, url, transport, auth, authorizationCode, state, userId, db, frontendUrl, clientManager } = options
  const transportOptions = {}
${snippet('handlers-auth-branch')}
  let mcpTransport
  if (transport === 'sse') mcpTransport = new SSEClientTransport(new URL(url), transportOptions)
  else if (transport === 'http') mcpTransport = new StreamableHTTPClientTransport(new URL(url), transportOptions)
  else throw new Error('Unsupported transport: ' + transport)
${snippet('handlers-finish-auth')}
  if (clientManager.has(serverId)) await clientManager.disconnect(serverId)
  const client = new Client({ name: 'hoot-backend', version: '0.2.0' }, { capabilities: {} })
  await client.connect(mcpTransport)
  await clientManager.set(serverId, client, mcpTransport)
  return { success: true, serverId, message: 'Connected to ' + serverName }
}

export async function listTools({ serverId, connectionPool }) {
  const client = await connectionPool.getClient(serverId)
  const response = await client.listTools()
  return { success: true, tools: response.tools.map((t) => ({ name: t.name, description: t.description || '', inputSchema: t.inputSchema })) }
}
`,
    'server/server-node.js': `
import { once } from 'node:events'
import express from 'express'
${snippet('node-imports')}
import { NodeConnectionPool } from './adapters/connection-pool-node.js'
import { connectToServer, listTools, warnings } from './lib/handlers.js'

const logger = { success() {}, info() {}, warn() {}, error() {}, debug() {} }
// The shape of Hoot's RateLimiter (server/lib/utils.js): a fixed window per client id.
class RateLimiter {
  constructor({ window = 60000, maxRequests = 30 } = {}) { Object.assign(this, { window, maxRequests, clients: new Map() }) }
  check(id) {
    const now = Date.now()
    const entry = this.clients.get(id)
    if (!entry || now > entry.resetTime) { this.clients.set(id, { count: 1, resetTime: now + this.window }); return { allowed: true } }
    if (entry.count >= this.maxRequests) return { allowed: false, resetIn: Math.ceil((entry.resetTime - now) / 1000) }
    entry.count++
    return { allowed: true }
  }
}
const FRONTEND_URL = process.env.FRONTEND_URL || 'http://localhost:8009'
const allowedOrigins = ['http://localhost:3000', 'http://localhost:8009']

export async function start() {
  const app = express()
  const jwtManager = new JWTManager()
  const dbPath = process.env.HOOT_DB_PATH
  // As in Hoot: the listener above the database, the audit logger made after both.
${snippet('node-events')}
${snippet('node-db')}
  const auditLogger = { entries: [], async log(event, data) { this.entries.push({ event, ...data }) } }
  const connectionPool = new NodeConnectionPool()
${snippet('node-pool-cleanup')}
${snippet('node-keys')}
  app.use(express.json({ limit: '10mb' }))
${snippet('node-jwks')}
${snippet('sessions-routes')}
  async function authenticateRequest(req, res, next) {
    if (req.path === '/health' || req.path === '/auth/token') return next()
    const token = req.headers['x-hoot-token']
    if (!token) return res.status(401).json({ success: false, error: 'Unauthorized', message: 'Missing or invalid authentication token' })
    try {
${snippet('node-auth-middleware')}
      await auditLogger.log('auth_failed', { path: req.path, reason: 'invalid_token' })
      return res.status(401).json({ success: false, error: 'Unauthorized', message: 'Invalid authentication token' })
    } catch (error) {
      return res.status(401).json({ success: false, error: 'Unauthorized', message: 'Authentication failed' })
    }
  }
  app.use(authenticateRequest)
  app.post('/auth/token', async (req, res) => {
    const origin = req.headers.origin
    if (!origin || !allowedOrigins.includes(origin)) return res.status(403).json({ success: false, error: 'Forbidden' })
${snippet('node-auth-token')}
  })
  app.get('/health', (req, res) => res.json({ status: 'ok', activeConnections: connectionPool.size() }))
  app.post('/mcp/connect', async (req, res) => {
    try {
      const { serverId, serverName, url, transport, auth, authorizationCode, state } = req.body
      await auditLogger.log('mcp_connect_attempt', { serverId, serverName, url, transport, authType: auth?.type })
      const result = await connectToServer({ serverId, serverName, url, transport, auth, authorizationCode, state, userId: req.userId, db, frontendUrl: FRONTEND_URL, clientManager: connectionPool.forUser(req.userId) })
      if (result.success) await db.saveServerConfig(req.userId, serverId, { serverName, url, transport, auth })
      await auditLogger.log('mcp_connect_success', { serverId, serverName })
      res.json(result)
    } catch (error) {
${snippet('node-connect-refused')}
      logger.error('Connection error:', error)
      if (error.name === 'UnauthorizedError' || error.message?.includes('401')) {
        return res.status(401).json({ success: false, error: 'UnauthorizedError', message: 'OAuth authorization required', needsAuth: true, authorizationUrl: error.authorizationUrl || null })
      }
      res.status(500).json({ success: false, error: error.message || 'Connection failed', needsAuth: false })
    }
  })
  app.get('/mcp/connections', (req, res) => {
    const connections = connectionPool.forUser(req.userId).getConnections()
    res.json({ success: true, connections, count: connections.length })
  })
${snippet('sessions-authenticated')}
  app.get('/mcp/tools/:serverId', async (req, res) => {
    const pool = connectionPool.forUser(req.userId)
    if (!pool.has(req.params.serverId)) return res.status(404).json({ success: false, error: 'Server not connected' })
    res.json(await listTools({ serverId: req.params.serverId, connectionPool: pool }))
  })
  app.post('/mcp/disconnect', async (req, res) => {
    const { serverId } = req.body
    await connectionPool.forUser(req.userId).disconnect(serverId)
    await db.deleteServerConfig(req.userId, serverId)
    await db.deleteVerifier(req.userId, serverId)
    res.json({ success: true, serverId })
  })
  const http = app.listen(0, '127.0.0.1')
  await once(http, 'listening')
  return {
    url: 'http://127.0.0.1:' + http.address().port,
    auditLogger,
    warnings,
    close: async () => {
${snippet('node-shutdown')}
      await db.close()
      http.close()
    },
  }
}
`,
  }
}

describe("today's Hoot (server/) on hoot-core", () => {
  let mcp
  let hoot
  let dir
  let home

  before(async () => {
    mcp = await startOAuthMcpServer({ headerOnlyMetadata: true })
    dir = project('guide-server', serverFiles())
    home = tempDir('guide-server-home')
    process.env.HOOT_DB_PATH = join(home, 'hoot-mcp.db')
    process.env.HOME = home
    const { start } = await import(pathToFileURL(join(dir, 'server', 'server-node.js')).href)
    hoot = await start()
  })
  after(async () => {
    await hoot?.close()
    await mcp?.close()
    delete process.env.HOOT_DB_PATH
  })

  const { post, get, connect, tokenFor } = frontend(
    () => hoot,
    () => mcp,
  )

  test('Add Server tells an OAuth server by its 401 with SDK 1.32 (status in error.code) as with 1.20 (in the message)', async () => {
    const { detects401 } = await import(pathToFileURL(join(dir, 'server', 'lib', 'handlers.js')).href)
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js')
    // The real error SDK 1.32 throws for a 401 without an auth provider.
    const transport = new StreamableHTTPClientTransport(mcp.url)
    const error = await transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' }).then(
      () => null,
      (e) => e,
    )
    await transport.close()
    assert.equal(error?.code, 401)
    assert.equal(detects401(error), true)
    assert.equal(detects401(new Error('Error POSTing to endpoint (HTTP 401): Unauthorized')), true, 'SDK 1.20')
    assert.equal(detects401(Object.assign(new Error('Error POSTing to endpoint: {}'), { code: 500 })), false)
  })

  test('tokens: a JWT for a UUID, a 400 for anything else, the JWKS without a token', async () => {
    for (const userId of [42, { id: 1 }, 'not-a-uuid', null]) {
      const response = await post('/auth/token', { userId })
      assert.equal(response.status, 400, JSON.stringify(userId))
    }
    const userId = randomUUID()
    const issued = await (await post('/auth/token', { userId })).json()
    assert.equal(issued.tokenType, 'jwt')
    assert.equal((await get('/mcp/connections', issued.token)).status, 200)
    assert.equal((await get('/mcp/connections', issued.token + 'x')).status, 401)
    const expired = await expiredToken(home, userId)
    assert.equal((await (await get('/mcp/connections', expired)).json()).expired, true)
    const jwks = await (await get('/.well-known/jwks.json')).json()
    assert.equal(jwks.keys[0].alg, 'RS256')

    // Hoot's entries and hoot-core's events, in one log, without the user id or a token.
    const entries = auditAfterEvents(hoot.auditLogger.entries)
    const events = (type) => entries.filter((entry) => entry.event === type)
    assert.ok(events('keys_loaded').length >= 1, 'the keys, loaded after onEvent')
    assert.ok(events('database_migrated').length >= 1, 'the database, first opened after onEvent')
    assert.ok(events('jwt_token_issued').length >= 1)
    assert.ok(events('token_issued').some((entry) => /^[0-9a-f]{16}$/.test(entry.userHash) && !('at' in entry)))
    assertRefusalsLogged(events)
    assertNoSecrets(entries, [userId, issued.token, issued.token.split('.')[2], expired])
  })

  test('OAuth with metadata only in WWW-Authenticate: the state is checked, and connections stay per user', async () => {
    const alice = await tokenFor(randomUUID())
    const bob = await tokenFor(randomUUID())
    const started = await connect(alice)
    assert.equal(started.status, 401)
    const { needsAuth, authorizationUrl } = await started.json()
    assert.equal(needsAuth, true)
    const first = await callback(authorizationUrl)

    // A forged state is refused before the code is exchanged, and uses the authorization up.
    const refused = () => hoot.auditLogger.entries.filter((entry) => entry.event === 'oauth_callback_refused').length
    const refusedBefore = refused()
    const forged = await connect(alice, { authorizationCode: first.code, state: 'f'.repeat(64) })
    assert.equal(forged.status, 400)
    assert.match(hoot.warnings.pop(), /refused an OAuth callback for MCP server "fixture": its state is not the one/)
    assert.equal(refused(), refusedBefore + 1)
    const stateless = await connect(alice, { authorizationCode: first.code })
    assert.equal(stateless.status, 400, 'a callback without state (a frontend not updated yet)')
    assert.match(hoot.warnings.pop(), /it carries no state/)
    assert.equal((await connect(alice, { authorizationCode: first.code, state: first.state })).status, 400)

    const again = await callback((await (await connect(alice)).json()).authorizationUrl)
    const finished = await connect(alice, { authorizationCode: again.code, state: again.state })
    assert.equal(finished.status, 200, await finished.clone().text())
    const tools = await (await get('/mcp/tools/fixture', alice)).json()
    assert.deepEqual(
      tools.tools.map((t) => t.name),
      ['whoami'],
    )
    assert.deepEqual((await (await get('/mcp/connections', alice)).json()).connections, ['fixture'])
    assert.deepEqual((await (await get('/mcp/connections', bob)).json()).connections, [], "bob sees none of alice's")
    assert.equal((await get('/mcp/tools/fixture', bob)).status, 404)

    // Another browser redeems alice's code: it gets her token and her servers, for Hoot's list.
    const { code } = await (await post('/auth/transfer', {}, alice)).json()
    const moved = await (await post('/auth/redeem', { code })).json()
    assert.deepEqual(moved.servers, [
      { serverId: 'fixture', serverName: 'Fixture', url: mcp.url.href, transport: 'http', auth: { type: 'oauth' } },
    ])
    await post('/mcp/disconnect', { serverId: 'fixture' }, bob)
    assert.deepEqual((await (await get('/mcp/connections', alice)).json()).connections, ['fixture'], "bob's disconnect")

    // Replaying the callback is refused, and leaves alice's live connection alone (the disconnect of an
    // existing connection comes after the state check).
    const replayed = await connect(alice, { authorizationCode: again.code, state: again.state })
    assert.equal(replayed.status, 400, 'a replayed callback')
    assert.deepEqual((await (await get('/mcp/connections', alice)).json()).connections, ['fixture'])
  })

  test('sessions: a code moves a user to a new device once, forget-me revokes, touch counts the user', async () => {
    const aliceId = randomUUID()
    const alice = await tokenFor(aliceId)
    // Each step's audit entries: one line per thing, hoot-core's event, not a second from the route.
    const entries = hoot.auditLogger.entries
    let seen = auditAfterEvents(entries).length
    const step = () => {
      const added = auditAfterEvents(entries).slice(seen)
      seen = entries.length
      return added
    }
    // The tokens a step issues (the redeem's) or refuses are another test's matter.
    const tokenEvents = new Set(['token_issued', 'token_refused', 'auth_failed'])
    const only = (added, types) =>
      assert.deepEqual(
        added.map((entry) => entry.event).filter((event) => !tokenEvents.has(event)),
        types,
      )

    const transfer = await (await post('/auth/transfer', {}, alice)).json()
    assert.match(transfer.code, /^\w{4}-\w{4}-\w{4}$/)
    const created = step()
    only(created, ['transfer_code_created'])
    const redeemed = await (await post('/auth/redeem', { code: transfer.code })).json()
    assert.equal(redeemed.userId, aliceId)
    const moved = step()
    only(moved, ['transfer_code_redeemed'])
    assert.equal(moved.find((entry) => entry.event === 'transfer_code_redeemed').userHash, created[0].userHash)
    assert.equal((await get('/mcp/connections', redeemed.token)).status, 200, 'the new device is alice')
    assert.equal((await post('/auth/redeem', { code: transfer.code })).status, 400, 'once')
    only(step(), ['transfer_code_refused'])
    assert.ok(activitySummary().users >= 1)
    assert.equal((await post('/auth/forget', {}, alice)).status, 200)
    const forgotten = step()
    only(forgotten, ['tokens_revoked', 'user_deleted'])
    assert.equal(forgotten.find((entry) => entry.event === 'user_deleted').userHash, created[0].userHash)
    assert.equal((await get('/mcp/connections', alice)).status, 401, 'forget me revoked the token')
    assert.equal((await get('/mcp/connections', redeemed.token)).status, 401, 'on every device')
    assertNoSecrets(auditAfterEvents(entries), [aliceId, alice, redeemed.token, transfer.code])
  })

  test("JWTManager on hoot-core takes inline keys, as Hoot's jose JWTManager does", async () => {
    const dir = project('guide-jwt', { 'jwt-node.js': snippet('jwt-manager') })
    const keys = await hootKeyFiles(tempDir('guide-jwt-keys'))
    const body = `
      import { readFileSync } from 'node:fs'
      import { JWTManager } from './jwt-node.js'
      const manager = new JWTManager()
      const privateKeyJwk = readFileSync(${JSON.stringify(keys.privateKeyPath)}, 'utf8')
      const jwks = JSON.parse(readFileSync(${JSON.stringify(keys.jwksPath)}, 'utf8'))
      const init = await manager.initialize({ privateKeyJwk, jwks })
      const token = await manager.generateToken('3b241101-e2bb-4255-8caf-4136c566a962', { portkeyOrgId: 'org', expiresIn: 60 })
      const verified = await manager.verifyToken(token)
      const bad = await manager.verifyToken(token.slice(0, -2))
      console.log(JSON.stringify({ init, ready: manager.isInitialized(), sub: verified.payload.sub, org: verified.payload.portkey_oid, bad }))`
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', body], { cwd: dir, encoding: 'utf8' })
    assert.equal(child.status, 0, child.stderr)
    const out = JSON.parse(child.stdout.trim().split('\n').pop())
    assert.deepEqual(out.init, { success: true, kid: keys.kid })
    assert.equal(out.ready, true)
    assert.equal(out.sub, '3b241101-e2bb-4255-8caf-4136c566a962')
    assert.equal(out.org, 'org')
    assert.equal(out.bad.valid, false)
    assert.equal(out.bad.expired, false)
  })

  test('Workers: the provider from hoot-core/provider over a Durable Objects adapter, without the native addon', async () => {
    const fixture = await startOAuthMcpServer()
    try {
      const dir = project('guide-worker', {
        'provider.js': `
${snippet('worker-import')}
// The shape of Hoot's DurableObjectsAdapter: its methods over the user's Durable Object storage.
class DurableObjectsAdapter {
  constructor(env) { this.storage = env.storage }
  key(userId, kind, serverId) { return userId + ':' + kind + ':' + serverId }
  async getOAuthClientInfo(u, s) { return this.storage.get(this.key(u, 'client', s)) ?? null }
  async saveOAuthClientInfo(u, s, v) { this.storage.set(this.key(u, 'client', s), v) }
  async getOAuthTokens(u, s) { return this.storage.get(this.key(u, 'tokens', s)) ?? null }
  async saveOAuthTokens(u, s, v) { this.storage.set(this.key(u, 'tokens', s), v) }
  async getVerifier(u, s) { return this.storage.get(this.key(u, 'verifier', s)) ?? null }
  async saveVerifier(u, s, v) { this.storage.set(this.key(u, 'verifier', s), v) }
  async clearOAuthCredentials(u, s, scope = 'all') {
    for (const kind of scope === 'all' ? ['client', 'tokens', 'verifier'] : [scope]) this.storage.delete(this.key(u, kind, s))
  }
}
class MCPConnectionPoolDO {
  constructor(env) { this.env = env }
${snippet('worker-provider')}
  // createConnection's transport options, as the guide's line makes them.
  transportOptions(serverId, options) {
    const transportOptions = {}
${snippet('worker-fetch')}
    return transportOptions
  }
}
export const workerTransportOptions = (env, serverId, options) => new MCPConnectionPoolDO(env).transportOptions(serverId, options)`,
      })
      const body = `
        import { createRequire } from 'node:module'
        import { Client } from '@modelcontextprotocol/sdk/client/index.js'
        import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
        import { workerTransportOptions } from './provider.js'
        const env = { storage: new Map() }
        const options = { userId: '3b241101-e2bb-4255-8caf-4136c566a962', frontendUrl: 'http://localhost:8009' }
        const connect = async (code) => {
          const transport = new StreamableHTTPClientTransport(new URL(${JSON.stringify(fixture.url.href)}), workerTransportOptions(env, 'fixture', options))
          if (code) await transport.finishAuth(code)
          const client = new Client({ name: 'hoot-worker', version: '1' }, { capabilities: {} })
          await client.connect(transport)
          return client
        }
        let url
        try { await connect() } catch (e) { url = e.authorizationUrl; if (!url) throw e }
        const response = await fetch(url, { redirect: 'manual' })
        const code = new URL(response.headers.get('location')).searchParams.get('code')
        const client = await connect(code)
        const tools = (await client.listTools()).tools.map((t) => t.name)
        await client.close()
        const { authProvider: provider, fetch: given } = workerTransportOptions(env, 'fixture', options)
        if (given !== provider.fetch) throw new Error("the transport is not given the provider's fetch")
        const require = createRequire(import.meta.url)
        console.log(JSON.stringify({ tools, discovery: 'discoveryState' in provider, native: Object.keys(require.cache).filter((f) => f.endsWith('.node')) }))`
      // Not spawnSync: the MCP server the child talks to runs in this process.
      const stdout = await new Promise((resolve, reject) =>
        execFile(process.execPath, ['--input-type=module', '-e', body], { cwd: dir }, (error, out, err) =>
          error ? reject(new Error(err || error.message)) : resolve(out),
        ),
      )
      const out = JSON.parse(stdout.trim().split('\n').pop())
      assert.deepEqual(out, { tools: ['whoami'], discovery: false, native: [] })
    } finally {
      await fixture.close()
    }
  })
})

// The frontend's blocks (TypeScript), spliced into Hoot's three files as the guide places them and
// compiled with tsc --strict against hoot-core/client's types: a module for each, with React and
// Vite's `import.meta.env` declared as Hoot's project has them. (scripts/hoot-e2e.mjs builds and runs
// them in Hoot itself.)
test("the frontend's blocks compile against hoot-core/client under tsc --strict", () => {
  const ts = guideSnippets('docs/using-in-hoot-server.md', 'ts')
  const take = (id) => {
    used.add(id)
    assert.ok(ts.has(id), `no snippet ${id}`)
    return ts.get(id)
  }
  const dir = project('guide-frontend', {
    'src/lib/sessionManager.ts': take('frontend-session'),
    'src/lib/backendClient.ts': `import { hoot } from './sessionManager';
${take('frontend-token')}
${take('frontend-fetch')}
export async function connectToServer(config: { id: string; name: string }, authorizationCode?: string) {
  const response = await authenticatedFetch('/mcp/connect', {
    method: 'POST',
    body: JSON.stringify({
      serverId: config.id,
      serverName: config.name,
      authorizationCode,
      ${take('frontend-state')}
    }),
  });
  return response.json();
}
`,
    'src/components/SessionMenu.tsx': take('frontend-menu'),
    'src/env.d.ts': `interface ImportMeta { readonly env: Record<string, string | undefined> }
declare module 'react' { export function useState<T>(initial: T): [T, (value: T) => void] }
declare namespace JSX { interface IntrinsicElements { [name: string]: any } }
`,
    'tsconfig.json': JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'es2022',
        module: 'esnext',
        moduleResolution: 'bundler',
        lib: ['dom', 'es2022'],
        jsx: 'preserve',
        types: [],
        paths: { 'hoot-core/client': [join(root, 'lib', 'client.d.ts')] },
      },
      include: ['src'],
    }),
  })
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const result = spawnSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8' })
  assert.equal(result.status, 0, result.stdout + result.stderr)
})

// ----------------------------------------------------------------------------------------------
// Hoot's single-file backend, mcp-backend-server.js (Hoot at 25c0ecf).

function oldBackend() {
  const indent = (code) => code.replace(/^/gm, '    ')
  return `
import { once } from 'node:events'
import express from 'express'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
${snippet('old-imports')}
${snippet('old-events')}
const FRONTEND_URL = 'http://localhost:8009'
const allowedOriginsForToken = ['http://localhost:3000', 'http://localhost:8009']
const audit = []
function logAuditEvent(event, data) { audit.push({ event, ...data }) }
let fetches = 0

export async function start() {
${snippet('old-keys')}
${snippet('old-db')}
  const app = express()
  app.use(express.json())
${snippet('old-connections')}
${snippet('old-jwks')}
  function authenticateRequest(req, res, next) {
    if (req.path === '/health' || req.path === '/auth/token') return next()
    const token = req.headers['x-hoot-token']
    if (!token) return res.status(401).json({ success: false, error: 'Unauthorized', message: 'Missing or invalid authentication token' })
    try {
${indent(snippet('old-auth-middleware'))}
      logAuditEvent('auth_failed', { path: req.path, ip: req.ip, origin: req.headers.origin, reason: 'invalid_token' })
      return res.status(401).json({ success: false, error: 'Unauthorized', message: 'Invalid authentication token' })
    } catch (error) {
      return res.status(401).json({ success: false, error: 'Unauthorized', message: 'Authentication failed' })
    }
  }
  app.use(authenticateRequest)
  app.post('/auth/token', async (req, res) => {
    const origin = req.headers.origin
    if (!origin || !allowedOriginsForToken.includes(origin)) return res.status(403).json({ success: false, error: 'Forbidden' })
    const { userId } = req.body
    try {
${indent(snippet('old-auth-token'))}
    } catch (error) {
      logAuditEvent('token_generation_error', { error: error.message })
      return res.status(500).json({ success: false, error: 'Token generation failed' })
    }
  })
${snippet('old-disconnect')}
  app.post('/mcp/connect', async (req, res) => {
    try {
      const { serverId, serverName, url, transport, auth, authorizationCode } = req.body
      if (connections.get(req.userId, serverId) !== undefined) await disconnectServer(serverId, req.userId)
      const transportOptions = {}
      if (auth && auth.type === 'headers' && auth.headers) {
        transportOptions.requestInit = { headers: auth.headers }
      } else if (auth && auth.type === 'oauth') {
${indent(snippet('old-connect'))}
      }
      let mcpTransport
      if (transport === 'sse') mcpTransport = new SSEClientTransport(new URL(url), transportOptions)
      else mcpTransport = new StreamableHTTPClientTransport(new URL(url), transportOptions)
${indent(snippet('old-finish-auth'))}
      const client = new Client({ name: 'hoot-backend', version: '0.2.0' }, { capabilities: {} })
      await client.connect(mcpTransport)
${indent(snippet('old-store-connection'))}
      res.json({ success: true, serverId, message: 'Connected to ' + serverName })
    } catch (error) {
      if (error.name === 'UnauthorizedError' || error.message?.includes('401')) {
        return res.status(401).json({ success: false, error: 'UnauthorizedError', needsAuth: true, authorizationUrl: error.authorizationUrl || null })
      }
      res.status(500).json({ success: false, error: error.message, needsAuth: false })
    }
  })
  app.get('/mcp/tools/:serverId', async (req, res) => {
    const client = connections.get(req.userId, req.params.serverId)?.client
    if (!client) return res.status(404).json({ success: false, error: 'Server not connected' })
    res.json({ success: true, tools: (await client.listTools()).tools })
  })
  app.get('/mcp/connections', (req, res) => res.json({ success: true, connections: connections.servers(req.userId) }))
  app.post('/mcp/disconnect', async (req, res) => {
    await disconnectServer(req.body.serverId, req.userId)
    res.json({ success: true })
  })
  app.post('/mcp/clear-oauth-tokens', async (req, res) => {
    const { serverId } = req.body
    if (!serverId) return res.status(400).json({ success: false, error: 'serverId is required' })
${indent(snippet('old-clear'))}
    res.json({ success: true, serverId })
  })
  app.post('/mcp/favicon', async (req, res) => {
    // found: what Hoot's fetch of /favicon.ico and the page would find, given by the test.
    const { serverUrl, oauthLogoUri, found } = req.body
${indent(snippet('old-favicon'))}
    fetches++
    const foundFaviconUrl = found ?? null
${indent(snippet('old-favicon-save'))}
    res.json({ success: true, faviconUrl: foundFaviconUrl })
  })
  const http = app.listen(0, '127.0.0.1')
  await once(http, 'listening')
  return {
    url: 'http://127.0.0.1:' + http.address().port,
    audit,
    fetches: () => fetches,
    close: async () => {
      await disconnectAll()
${indent(snippet('old-shutdown'))}
      http.close()
    },
  }
}
`
}

describe("Hoot's mcp-backend-server.js on hoot-core", () => {
  let mcp
  let hoot

  before(async () => {
    mcp = await startOAuthMcpServer({ headerOnlyMetadata: true })
    // Events from the other describe's server, which has stopped, are not this one's.
    flushEvents()
    const dir = project('guide-old', { 'mcp-backend-server.js': oldBackend() })
    process.env.HOME = tempDir('guide-old-home')
    process.env.HOOT_DB_PATH = join(process.env.HOME, '.hoot', 'hoot-mcp.db')
    const { start } = await import(pathToFileURL(join(dir, 'mcp-backend-server.js')).href)
    hoot = await start()
  })
  after(async () => {
    await hoot?.close()
    await mcp?.close()
  })

  const { post, get, connect } = frontend(
    () => hoot,
    () => mcp,
  )

  test("a non-string userId is a 400; Hoot's audit entries and hoot-core's events, without a user id", async () => {
    for (const userId of [42, ['x'], { a: 1 }]) assert.equal((await post('/auth/token', { userId })).status, 400)
    const userId = randomUUID()
    const issued = await (await post('/auth/token', { userId })).json()
    assert.equal(issued.tokenType, 'jwt')
    assert.equal((await get('/mcp/connections', issued.token)).status, 200)
    assert.equal((await get('/mcp/connections', issued.token + 'x')).status, 401)
    const expired = await expiredToken(process.env.HOME, userId)
    assert.equal((await (await get('/mcp/connections', expired)).json()).expired, true)
    assert.equal((await fetch(hoot.url + '/.well-known/jwks.json')).status, 200)

    const entries = auditAfterEvents(hoot.audit)
    const events = (type) => entries.filter((entry) => entry.event === type)
    assert.equal(events('keys_loaded').length, 1, 'loadKeys, after onEvent')
    assert.equal(events('database_migrated').length, 1, 'migrateDatabase, after onEvent')
    assert.equal(events('invalid_user_id').length, 3)
    assert.equal(events('jwt_token_issued').length, 1)
    assert.equal(events('token_issued').length, 1)
    assertRefusalsLogged(events)
    assertNoSecrets(entries, [userId, issued.token, issued.token.split('.')[2], expired])
  })

  test('OAuth with its state checked, connections per user, a disconnect that keeps the tokens', async () => {
    const alice = (await (await post('/auth/token', { userId: randomUUID() })).json()).token
    const bob = (await (await post('/auth/token', { userId: randomUUID() })).json()).token
    const first = await callback((await (await connect(alice)).json()).authorizationUrl)
    assert.equal((await connect(alice, { authorizationCode: first.code, state: 'forged' })).status, 400)
    assert.deepEqual(
      hoot.audit.filter((entry) => entry.event === 'oauth_callback_refused'),
      [{ event: 'oauth_callback_refused', serverId: 'fixture' }],
    )
    const second = await callback((await (await connect(alice)).json()).authorizationUrl)
    const done = await connect(alice, { authorizationCode: second.code, state: second.state })
    assert.equal(done.status, 200, await done.clone().text())
    assert.deepEqual(
      (await (await get('/mcp/tools/fixture', alice)).json()).tools.map((t) => t.name),
      ['whoami'],
    )
    assert.deepEqual((await (await get('/mcp/connections', bob)).json()).connections, [])
    assert.equal((await get('/mcp/tools/fixture', bob)).status, 404)

    // Disconnect and reconnect: the stored tokens are used, no new authorization.
    const authorizations = mcp.stats.authorizations
    await post('/mcp/disconnect', { serverId: 'fixture' }, alice)
    assert.deepEqual((await (await get('/mcp/connections', alice)).json()).connections, [])
    assert.equal((await connect(alice)).status, 200)
    assert.equal(mcp.stats.authorizations, authorizations)

    // Clearing the OAuth tokens does force one.
    await post('/mcp/clear-oauth-tokens', { serverId: 'fixture' }, alice)
    assert.equal((await connect(alice)).status, 401)
  })

  test('a favicon cached as "none found" is answered from the cache', async () => {
    const token = (await (await post('/auth/token', { userId: randomUUID() })).json()).token
    const ask = async (body) => (await post('/mcp/favicon', body, token)).json()
    assert.equal((await ask({ serverUrl: 'https://none.example', found: null })).faviconUrl, null)
    const fetched = hoot.fetches()
    assert.equal((await ask({ serverUrl: 'https://none.example', found: 'https://wrong' })).faviconUrl, null)
    assert.equal(hoot.fetches(), fetched, 'not fetched again')
    await ask({ serverUrl: 'https://icon.example', found: 'https://icon.example/favicon.ico' })
    assert.equal((await ask({ serverUrl: 'https://icon.example' })).faviconUrl, 'https://icon.example/favicon.ico')
  })
})

after(() => {
  const missing = [...all.keys()].filter((id) => !used.has(id))
  assert.deepEqual(missing, [], 'snippets no test exercised')
})

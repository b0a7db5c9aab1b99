// The shape of Hoot's backend (mcp-backend-server.js) on hoot-core, in a page: tokens for
// anonymous browser sessions, the auth middleware, JWKS, and MCP connect / tools / disconnect with
// each user's OAuth state in their own store, and a page on `hoot-core/client` that shows the whole
// session (page.html). Run it with `npm run example` from the repo: it starts a demo MCP server
// behind OAuth beside it and prints one URL to open. On SQLite (~/.hoot/hoot-mcp.db, or
// $HOOT_DB_PATH) by default, or, with HOOT_DATABASE_URL=postgres://..., on PostgreSQL, where
// several of it can run side by side. With METRICS_PORT set, hoot-core's metrics are served at
// http://127.0.0.1:$METRICS_PORT/metrics, apart from the app: its port is for the browser, this one
// for Prometheus (docs/operations.md).
import { createServer } from 'node:http'
import { fileURLToPath, pathToFileURL } from 'node:url'

import express from 'express'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { createOAuthProvider, isValidUserId, issueTokenAsync, openDatabase, publicJwks, verifyToken } from 'hoot-core'
import { UserConnections } from 'hoot-core/hoot'
import { contentType, metricsText } from 'hoot-core/metrics'

import { startOAuthMcpServer } from './oauth-mcp-server.mjs'

const PAGE = fileURLToPath(new URL('page.html', import.meta.url))
const CLIENT = fileURLToPath(import.meta.resolve('hoot-core/client'))

/**
 * A fixed-window limit per key (an IP, a user), bounded: the shape of Hoot's RateLimiter. Past
 * `keys` keys the least recently seen goes (a Map keeps insertion order, and each hit moves its key
 * last), so filling the map with new keys never resets a key that is still being hit.
 */
export function limiter({ windowMs = 60_000, max = 10, keys = 10_000 } = {}) {
  const hits = new Map()
  return (key, now = Date.now()) => {
    let entry = hits.get(key)
    hits.delete(key)
    if (!entry || now >= entry.until) entry = { count: 0, until: now + windowMs }
    hits.set(key, entry)
    if (hits.size > keys) hits.delete(hits.keys().next().value)
    return ++entry.count <= max
  }
}

export function createApp({
  frontendUrl = process.env.FRONTEND_URL || 'http://localhost:8009',
  connections,
  db = openDatabase(), // $HOOT_DATABASE_URL, else SQLite
  demoMcpUrl, // the demo MCP server the page offers to connect
} = {}) {
  const app = express()
  const allowedOrigins = new Set(['http://localhost:3000', 'http://localhost:8009', frontendUrl])
  const callbackUrl = `${frontendUrl}/oauth/callback`
  const clients = connections ?? new UserConnections()
  app.use(express.json({ limit: '10mb' }))

  app.get('/health', (req, res) => res.json({ status: 'ok' }))
  // The page (and the OAuth callback, which is the same page) and the browser half it is built on.
  app.get(['/', '/oauth/callback'], (req, res) => res.sendFile(PAGE))
  app.get('/client.mjs', (req, res) => res.type('text/javascript').sendFile(CLIENT))
  app.get('/example.json', (req, res) => res.json({ demoMcpUrl: demoMcpUrl ?? null }))
  app.get('/.well-known/jwks.json', (req, res) => res.json(publicJwks()))

  // One limiter per endpoint, so keys of one never push out another's.
  const allowToken = limiter({ max: 30 })
  const allowRedeem = limiter()
  const allowTransfer = limiter()
  // Each forget writes a revocation row that stays: at most 5 a minute per address.
  const allowForget = limiter({ max: 5 })

  app.post('/auth/token', async (req, res) => {
    if (!allowedOrigins.has(req.headers.origin)) return res.status(403).json({ success: false, error: 'Forbidden' })
    if (!allowToken(req.ip)) return res.status(429).json({ success: false, error: 'TooManyRequests' })
    const { userId } = req.body ?? {}
    if (typeof userId !== 'string' || !isValidUserId(userId)) {
      return res.status(400).json({ success: false, error: 'Invalid user ID format. Must be a valid UUID v4.' })
    }
    res.json({ success: true, token: await issueTokenAsync(userId), tokenType: 'jwt' })
  })

  // Another device: a code from POST /auth/transfer makes this browser that user (a legacy code from
  // `npx hoot-core adopt-legacy` moves the legacy data into this browser's user instead).
  // The core counts failures per source too (10 per 10 minutes), so one address cannot use up the
  // global limit (100) and get everyone's codes refused.
  app.post('/auth/redeem', async (req, res) => {
    if (!allowedOrigins.has(req.headers.origin)) return res.status(403).json({ success: false, error: 'Forbidden' })
    if (!allowRedeem(req.ip)) return res.status(429).json({ success: false, error: 'TooManyRequests' })
    const current = req.headers['x-hoot-token'] ? verifyToken(String(req.headers['x-hoot-token'])) : null
    const into = current?.valid ? current.userId : undefined
    try {
      const { userId } = await db.redeemTransferCode(String(req.body?.code ?? ''), {
        intoUserId: into,
        source: req.ip,
      })
      // The user's servers, for the browser's own list (Hoot keeps it in localStorage).
      const servers = (await db.store(userId).serverConfigs()).map(({ serverId, config }) => ({ ...config, serverId }))
      const token = await issueTokenAsync(userId)
      res.json({ success: true, userId, token, tokenType: 'jwt', servers })
    } catch (error) {
      // Only the transfer codes' own answers reach this anonymous caller: any other message (a
      // database outage's names its host, port and database) stays in the server's log.
      const status = { ERR_HOOT_TRANSFER_CODE: 400, ERR_HOOT_TRANSFER_THROTTLED: 429 }[error.code]
      if (status) return res.status(status).json({ success: false, error: error.code, message: error.message })
      // A legacy code (`npx hoot-core adopt-legacy`) moves data into this browser's user, so it needs
      // a session; any other refused argument (a code that is not well-formed text, say) is a bad
      // request, answered without the core's words.
      if (error.code === 'ERR_INVALID_ARG_VALUE' && into === undefined && /"opts\.intoUserId"/.test(error.message)) {
        const message = 'This code moves data into a browser session: open Hoot in this browser, then redeem it'
        return res.status(400).json({ success: false, error: 'SessionRequired', message })
      }
      if (error.code === 'ERR_INVALID_ARG_VALUE')
        return res.status(400).json({ success: false, error: 'InvalidRequest' })
      console.error(`POST /auth/redeem failed: ${error.code ?? error.name}`)
      res.status(500).json({ success: false, error: 'Internal error' })
    }
  })

  app.use((req, res, next) => {
    const token = req.headers['x-hoot-token']
    if (!token)
      return res
        .status(401)
        .json({ success: false, error: 'Unauthorized', message: 'Missing or invalid authentication token' })
    const result = verifyToken(String(token))
    if (result.expired)
      return res
        .status(401)
        .json({ success: false, error: 'TokenExpired', message: 'Token has expired', expired: true })
    if (!result.valid)
      return res.status(401).json({ success: false, error: 'Unauthorized', message: 'Invalid authentication token' })
    req.userId = result.userId
    req.tokenIssuedAt = result.payload.iat
    req.portkeyContext = result.portkey
    // At most one write per user per hour; activity is best effort, so a failed write is not the request's.
    db.store(req.userId)
      .touch()
      .catch(() => {})
    next()
  })

  app.post('/auth/transfer', async (req, res) => {
    if (!allowedOrigins.has(req.headers.origin)) return res.status(403).json({ success: false, error: 'Forbidden' })
    if (!allowTransfer(req.userId)) return res.status(429).json({ success: false, error: 'TooManyRequests' })
    // Derived from this token: revoking the user's tokens (forget me) ends the code too.
    const { code, expiresAt } = await db.store(req.userId).createTransferCode({ tokenIssuedAt: req.tokenIssuedAt })
    res.json({ success: true, code, expiresAt })
  })

  // Forget me: every row of this user, their live connections, and their tokens on every device.
  app.post('/auth/forget', async (req, res) => {
    if (!allowedOrigins.has(req.headers.origin)) return res.status(403).json({ success: false, error: 'Forbidden' })
    if (!allowForget(req.ip)) return res.status(429).json({ success: false, error: 'TooManyRequests' })
    for (const serverId of clients.servers(req.userId)) await clients.delete(req.userId, serverId)
    const removed = await db.store(req.userId).deleteAll({ revokeTokens: true })
    res.json({ success: true, removed })
  })

  app.post('/mcp/connect', async (req, res) => {
    const { serverId, serverName, url, transport: transportType, auth, authorizationCode, state } = req.body ?? {}
    if (typeof serverId !== 'string' || !serverId || typeof url !== 'string') {
      return res.status(400).json({ success: false, error: 'serverId and url are required' })
    }
    const authProvider = createOAuthProvider(db.store(req.userId), serverId, {
      redirectUrl: callbackUrl,
      clientMetadata: {
        client_name: 'Hoot MCP Testing Tool',
        client_uri: frontendUrl,
        redirect_uris: [callbackUrl],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
      // HOOT_OAUTH_STATE_OPTIONAL_UNTIL=<ISO date, at most 30 days ahead>: callbacks without
      // `state` pass until then (each logged), for a backend deployed before its frontend.
      stateOptionalUntil: process.env.HOOT_OAUTH_STATE_OPTIONAL_UNTIL,
    })
    try {
      // The provider's fetch: one refresh grant per refresh token among every holder of these
      // tokens (concurrent calls, other processes), and no call failed by another's refresh.
      const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider, fetch: authProvider.fetch })
      if (authorizationCode) {
        // The callback must carry the state this user's authorization was started with (CSRF).
        if (!(await authProvider.consumeState(state))) {
          return res.status(400).json({ success: false, error: 'OAuth state mismatch: connect again', needsAuth: true })
        }
        await transport.finishAuth(authorizationCode)
      }
      // The user's connection to this server is replaced: dropped only now, so a refused callback leaves it.
      await clients.delete(req.userId, serverId)
      const client = new Client({ name: 'hoot-backend', version: '0.2.0' }, { capabilities: {} })
      await client.connect(transport)
      await clients.set(req.userId, serverId, client)
      // Kept for the user, as Hoot does, so the server moves with them to another browser.
      await db.store(req.userId).saveServerConfig(serverId, { serverName, url, transport: transportType, auth })
      res.json({ success: true, serverId })
    } catch (error) {
      if (error.name === 'UnauthorizedError') {
        return res.status(401).json({
          success: false,
          error: 'UnauthorizedError',
          message: 'OAuth authorization required',
          needsAuth: true,
          authorizationUrl: error.authorizationUrl ?? null,
        })
      }
      res.status(500).json({ success: false, error: error.message || 'Connection failed', needsAuth: false })
    }
  })

  app.get('/mcp/tools/:serverId', async (req, res) => {
    const client = clients.get(req.userId, req.params.serverId)
    if (!client) return res.status(404).json({ success: false, error: 'Server not connected' })
    const { tools } = await client.listTools()
    res.json({
      success: true,
      tools: tools.map(({ name, description = '', inputSchema }) => ({ name, description, inputSchema })),
    })
  })

  app.get('/mcp/connections', (req, res) => {
    const connections = clients.servers(req.userId)
    res.json({ success: true, connections, count: connections.length })
  })

  app.post('/mcp/execute', async (req, res) => {
    const { serverId, toolName, arguments: args = {} } = req.body ?? {}
    const client = clients.get(req.userId, serverId)
    if (!client) return res.status(404).json({ success: false, error: 'Server not connected' })
    const result = await client.callTool({ name: String(toolName), arguments: args })
    res.json({ success: true, result })
  })

  app.post('/mcp/disconnect', async (req, res) => {
    if (!(await clients.delete(req.userId, req.body?.serverId))) {
      return res.status(404).json({ success: false, error: 'Server not connected' })
    }
    res.json({ success: true })
  })

  app.post('/mcp/clear-oauth-tokens', async (req, res) => {
    const { serverId } = req.body ?? {}
    if (typeof serverId !== 'string' || !serverId)
      return res.status(400).json({ success: false, error: 'serverId is required' })
    await db.store(req.userId).invalidateCredentials(serverId, 'all')
    res.json({ success: true })
  })

  // Errors as JSON, and never the request body in a log: a malformed body is usually a token
  // request, and its user id is the browser's secret. (Express's default handler logs the error,
  // whose message quotes the body, and answers with an HTML stack trace.)
  app.use((error, req, res, next) => {
    if (res.headersSent) return next(error)
    if (error.type === 'entity.parse.failed') {
      return res.status(400).json({ success: false, error: 'Invalid JSON body' })
    }
    if (error.type === 'entity.too.large') return res.status(413).json({ success: false, error: 'Body too large' })
    console.error(`${req.method} ${req.path} failed: ${error.name}`)
    res.status(500).json({ success: false, error: 'Internal error' })
  })

  app.connections = clients
  app.db = db
  app.closeAll = () => clients.closeAll()
  return app
}

/**
 * A server of its own for `GET /metrics` (the Prometheus text format), kept off the app's port so
 * the browser-facing server never exposes it: bind it to an address only Prometheus reaches.
 */
export function createMetricsServer() {
  return createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n')
      return
    }
    res.writeHead(200, { 'content-type': contentType }).end(metricsText())
  })
}

// Started directly (npm run example), not imported by a test.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT || 8008)
  // The demo MCP server behind OAuth (MCP_PORT, 8010 by default) that the page connects to.
  const demo = await startOAuthMcpServer({ port: Number(process.env.MCP_PORT || 8010) })
  const frontendUrl = process.env.FRONTEND_URL || `http://127.0.0.1:${port}`
  const app = createApp({ frontendUrl, demoMcpUrl: demo.url.href })
  // Hoot's key files, or a key generated once into ~/.hoot/keys; with HOOT_DATABASE_URL, the key
  // set every replica shares in PostgreSQL (made by the first to start).
  const keys = await app.db.loadKeys()
  const server = app.listen(port, '127.0.0.1', () => {
    console.log(`hoot-core example on http://127.0.0.1:${port} (kid ${keys.kid}, keys from ${keys.source})`)
    console.log(`Open ${frontendUrl}/ : the session, an OAuth connect to ${demo.url.href}, another browser, forget`)
  })
  const metricsPort = process.env.METRICS_PORT
  const metrics = metricsPort ? createMetricsServer() : undefined
  metrics?.listen(Number(metricsPort), '127.0.0.1', () => {
    console.log(`Metrics (Prometheus text) on http://127.0.0.1:${metricsPort}/metrics`)
  })
  process.on('SIGINT', async () => {
    server.close()
    metrics?.close()
    await demo.close()
    await app.closeAll()
    await app.db.close()
    process.exit(0)
  })
}

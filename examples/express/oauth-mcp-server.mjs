// An MCP server on 127.0.0.1 protected by OAuth, built from the SDK's own server-side auth (its
// auth router and bearer middleware) with a small in-memory authorization server that approves
// every request at once (no login page: it sends the browser straight back with a code). The
// example (`npm run example`) connects to it from its page, and the end-to-end tests use it.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'

import express from 'express'
import { InvalidGrantError, InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js'
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js'
import { authorizationHandler } from '@modelcontextprotocol/sdk/server/auth/handlers/authorize.js'
import { clientRegistrationHandler } from '@modelcontextprotocol/sdk/server/auth/handlers/register.js'
import { tokenHandler } from '@modelcontextprotocol/sdk/server/auth/handlers/token.js'
import {
  createOAuthMetadata,
  getOAuthProtectedResourceMetadataUrl,
  mcpAuthRouter,
} from '@modelcontextprotocol/sdk/server/auth/router.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'

/**
 * `headerOnlyMetadata`: the server advertises its protected-resource metadata only in the 401's
 * `WWW-Authenticate` (at a path no client guesses), and its authorization server lives under
 * /as, so a client that rediscovers without that header finds neither. `stats.discovery` counts
 * the metadata requests.
 *
 * `refreshTokens`: each token response carries a refresh token, rotated on every refresh grant,
 * with reuse detection as the OAuth 2.0 Security BCP recommends: a refresh token presented again
 * after it was rotated revokes its whole family (every access and refresh token descended from
 * that authorization) and is answered invalid_grant. This is what makes concurrent refreshes of
 * one credential visible. `accessTokenTtlSeconds`: how long access tokens live.
 */
export async function startOAuthMcpServer({
  headerOnlyMetadata = false,
  port = 0,
  refreshTokens = false,
  accessTokenTtlSeconds = 3600,
} = {}) {
  const app = express()
  const http = app.listen(port, '127.0.0.1')
  await once(http, 'listening')
  const base = new URL(`http://127.0.0.1:${http.address().port}`)
  const url = new URL('/mcp', base)
  const clients = new Map()
  const codes = new Map()
  const tokens = new Map() // access token -> { clientId, expiresAt, family }
  const refreshes = new Map() // refresh token -> { clientId, family, used }
  const revoked = new Set() // families revoked by a reuse
  const stats = {
    registrations: 0,
    authorizations: 0,
    discovery: 0,
    tokenRequests: 0,
    refreshGrants: 0,
    reuseDetections: 0,
  }
  app.use((req, res, next) => {
    if (req.path.startsWith('/.well-known/') || req.path.startsWith('/meta/')) stats.discovery++
    if (req.path.endsWith('/token')) stats.tokenRequests++
    next()
  })

  /** A token response for `family`: a new access token, and a new refresh token when offered. */
  function issue(clientId, family) {
    const accessToken = randomUUID()
    tokens.set(accessToken, { clientId, family, expiresAt: Math.floor(Date.now() / 1000) + accessTokenTtlSeconds })
    const response = { access_token: accessToken, token_type: 'bearer', expires_in: accessTokenTtlSeconds }
    if (refreshTokens) {
      response.refresh_token = randomUUID()
      refreshes.set(response.refresh_token, { clientId, family, used: false })
    }
    return response
  }

  const provider = {
    clientsStore: {
      getClient: (id) => clients.get(id),
      registerClient(client) {
        stats.registrations++
        const full = { ...client, client_id: randomUUID(), client_id_issued_at: Math.floor(Date.now() / 1000) }
        clients.set(full.client_id, full)
        return full
      },
    },
    // Auto-approve: straight back to the client's redirect URI with a code.
    async authorize(client, params, res) {
      stats.authorizations++
      const code = randomUUID()
      codes.set(code, { clientId: client.client_id, challenge: params.codeChallenge })
      const target = new URL(params.redirectUri)
      target.searchParams.set('code', code)
      if (params.state) target.searchParams.set('state', params.state)
      res.redirect(target.toString())
    },
    async challengeForAuthorizationCode(client, code) {
      const entry = codes.get(code)
      if (!entry) throw new InvalidGrantError('unknown code')
      return entry.challenge
    },
    async exchangeAuthorizationCode(client, code) {
      const entry = codes.get(code)
      if (!entry || entry.clientId !== client.client_id) throw new InvalidGrantError('unknown code')
      codes.delete(code)
      return issue(client.client_id, randomUUID())
    },
    async exchangeRefreshToken(client, refreshToken) {
      if (!refreshTokens) throw new InvalidGrantError('refresh is not offered')
      const entry = refreshes.get(refreshToken)
      if (!entry || entry.clientId !== client.client_id) throw new InvalidGrantError('unknown refresh token')
      if (revoked.has(entry.family)) throw new InvalidGrantError('refresh token revoked')
      if (entry.used) {
        // Reuse of a rotated token: someone holds a copy it should not, so the family dies.
        stats.reuseDetections++
        revoked.add(entry.family)
        for (const [token, { family }] of tokens) if (family === entry.family) tokens.delete(token)
        throw new InvalidGrantError('refresh token reused: its family is revoked')
      }
      entry.used = true
      stats.refreshGrants++
      return issue(client.client_id, entry.family)
    },
    async verifyAccessToken(token) {
      const entry = tokens.get(token)
      if (!entry) throw new InvalidTokenError('unknown token')
      return { token, clientId: entry.clientId, scopes: [], expiresAt: entry.expiresAt }
    },
  }

  // Held refresh grants (holdRefreshes): each waits, before anything is rotated, until release().
  let hold = null
  const tokenPath = headerOnlyMetadata ? '/as/token' : '/token'
  app.post(tokenPath, express.urlencoded({ extended: false }), (req, res, next) => {
    if (!hold || req.body?.grant_type !== 'refresh_token') return next()
    const current = hold
    current.arrived(++current.count)
    // A client gone while held (its process killed) is never answered and its token never rotated.
    let held = true
    res.once('close', () => {
      if (held) current.dropped(current.count)
      held = false
    })
    current.waiting.push(() => {
      if (held) next()
      held = false
    })
  })

  let resourceMetadataUrl = getOAuthProtectedResourceMetadataUrl(url)
  if (headerOnlyMetadata) {
    const issuerUrl = new URL('/as', base)
    const at = (path) => new URL(`/as${path}`, base).href
    const metadata = {
      ...createOAuthMetadata({ provider, issuerUrl }),
      authorization_endpoint: at('/authorize'),
      token_endpoint: at('/token'),
      registration_endpoint: at('/register'),
    }
    resourceMetadataUrl = new URL('/meta/mcp-resource', base).href
    app.get('/meta/mcp-resource', (req, res) =>
      res.json({ resource: url.href, authorization_servers: [issuerUrl.href] }),
    )
    app.get('/.well-known/oauth-authorization-server/as', (req, res) => res.json(metadata))
    app.use('/as/authorize', authorizationHandler({ provider, rateLimit: false }))
    app.use('/as/token', tokenHandler({ provider, rateLimit: false }))
    app.use('/as/register', clientRegistrationHandler({ clientsStore: provider.clientsStore, rateLimit: false }))
  } else {
    // Refreshing tests send hundreds of token requests: more than the router's default rate limit.
    const tokenOptions = refreshTokens ? { rateLimit: false } : undefined
    app.use(mcpAuthRouter({ provider, issuerUrl: base, resourceServerUrl: url, tokenOptions }))
  }
  const bearer = requireBearerAuth({ verifier: provider, resourceMetadataUrl })
  app.post('/mcp', express.json(), bearer, async (req, res) => {
    const server = new McpServer({ name: 'oauth-fixture', version: '1.0.0' })
    server.registerTool('whoami', { description: 'Names the OAuth client calling it' }, async (extra) => ({
      content: [{ type: 'text', text: extra.authInfo?.clientId ?? 'unknown' }],
    }))
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
    res.on('close', () => {
      transport.close()
      server.close()
    })
    await server.connect(transport)
    await transport.handleRequest(req, res, req.body)
  })
  app.all('/mcp', (req, res) => res.status(405).end())

  return {
    url,
    stats,
    /** Makes every access token issued so far expired now: an expiry cycle without waiting for one. */
    expireAccessTokens() {
      const past = Math.floor(Date.now() / 1000) - 1
      for (const entry of tokens.values()) entry.expiresAt = past
    },
    /**
     * Holds refresh grant requests until `release()`. `arrived` resolves when the first one
     * arrives, `dropped` when a held one's client has gone; `count` is how many arrived.
     */
    holdRefreshes() {
      const current = { count: 0, waiting: [] }
      const arrived = new Promise((resolve) => (current.arrived = resolve))
      const dropped = new Promise((resolve) => (current.dropped = resolve))
      hold = current
      return {
        arrived,
        dropped,
        get count() {
          return current.count
        },
        release() {
          if (hold === current) hold = null
          for (const go of current.waiting.splice(0)) go()
        },
      }
    },
    close: () => new Promise((resolve) => http.close(resolve)),
  }
}

// An MCP server on 127.0.0.1 protected by OAuth, built from the SDK's own server-side auth (its
// auth router and bearer middleware) with a small in-memory authorization server that approves
// every request at once. For the end-to-end tests only.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'

import express from 'express'
import { InvalidGrantError, InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js'
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js'
import { getOAuthProtectedResourceMetadataUrl, mcpAuthRouter } from '@modelcontextprotocol/sdk/server/auth/router.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'

export async function startOAuthMcpServer() {
  const app = express()
  const http = app.listen(0, '127.0.0.1')
  await once(http, 'listening')
  const base = new URL(`http://127.0.0.1:${http.address().port}`)
  const url = new URL('/mcp', base)
  const clients = new Map()
  const codes = new Map()
  const tokens = new Map()
  const stats = { registrations: 0, authorizations: 0 }

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
      const accessToken = randomUUID()
      tokens.set(accessToken, { clientId: client.client_id, expiresAt: Math.floor(Date.now() / 1000) + 3600 })
      return { access_token: accessToken, token_type: 'bearer', expires_in: 3600 }
    },
    async exchangeRefreshToken() {
      throw new InvalidGrantError('refresh is not offered')
    },
    async verifyAccessToken(token) {
      const entry = tokens.get(token)
      if (!entry) throw new InvalidTokenError('unknown token')
      return { token, clientId: entry.clientId, scopes: [], expiresAt: entry.expiresAt }
    },
  }

  app.use(mcpAuthRouter({ provider, issuerUrl: base, resourceServerUrl: url }))
  const bearer = requireBearerAuth({
    verifier: provider,
    resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(url),
  })
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
    close: () => new Promise((resolve) => http.close(resolve)),
  }
}

/** Follows an authorization URL the way the browser would, returning the code it comes back with. */
export async function approve(authorizationUrl) {
  const response = await fetch(authorizationUrl, { redirect: 'manual' })
  const location = response.headers.get('location')
  if (response.status !== 302 || !location) throw new Error(`authorization did not redirect: ${response.status}`)
  return new URL(location).searchParams.get('code')
}

// The whole OAuth flow with the real MCP SDK: its client and transport, createOAuthProvider over an
// OAuthStore, and an MCP server protected by the SDK's own server-side auth.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'

import { OAuthStore, createOAuthProvider } from '../lib/index.js'
import { approve, startOAuthMcpServer } from './mcp-fixture.mjs'
import { tempDir } from './helpers.mjs'

const redirectUrl = 'http://localhost:8009/oauth/callback'
const clientMetadata = {
  client_name: 'Hoot MCP Testing Tool',
  redirect_uris: [redirectUrl],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
}
let fixture
let dbPath

before(async () => {
  fixture = await startOAuthMcpServer()
  dbPath = join(tempDir('e2e'), 'hoot-mcp.db')
})
after(() => fixture.close())

/** What Hoot's /mcp/connect does: a fresh transport and client, finishing auth first when given a code. */
async function connect(userId, authorizationCode) {
  const authProvider = createOAuthProvider(new OAuthStore(userId, { dbPath }), 'fixture', {
    redirectUrl,
    clientMetadata,
  })
  const transport = new StreamableHTTPClientTransport(fixture.url, { authProvider })
  if (authorizationCode) await transport.finishAuth(authorizationCode)
  const client = new Client({ name: 'hoot-backend', version: '0.2.0' }, { capabilities: {} })
  await client.connect(transport)
  return client
}

async function authorizationUrlFor(userId) {
  let thrown
  await assert.rejects(connect(userId), (e) => {
    thrown = e
    return e.name === 'UnauthorizedError' && typeof e.authorizationUrl === 'string'
  })
  return thrown.authorizationUrl
}

async function whoami(client) {
  const result = await client.callTool({ name: 'whoami', arguments: {} })
  return result.content[0].text
}

test('connect, register, authorize, finishAuth, then reconnect with stored tokens', async () => {
  const alice = randomUUID()
  const url = await authorizationUrlFor(alice)
  assert.equal(fixture.stats.registrations, 1, 'dynamic client registration happened')
  assert.equal(new URL(url).searchParams.get('redirect_uri'), redirectUrl)
  const store = new OAuthStore(alice, { dbPath })
  assert.ok(store.clientInformation('fixture').client_id, 'the registration is stored for this user')
  assert.equal(typeof store.codeVerifier('fixture'), 'string', 'the PKCE verifier is stored')

  const client = await connect(alice, await approve(url))
  const { tools } = await client.listTools()
  assert.deepEqual(
    tools.map((t) => t.name),
    ['whoami'],
  )
  const clientId = await whoami(client)
  assert.equal(clientId, store.clientInformation('fixture').client_id)
  assert.ok(store.tokens('fixture').access_token, 'tokens are stored')
  await client.close()

  const authorizations = fixture.stats.authorizations
  const again = await connect(alice)
  assert.equal(await whoami(again), clientId, 'reconnected with the stored tokens')
  assert.equal(fixture.stats.authorizations, authorizations, 'no new authorization')
  await again.close()
})

test('a second user has nothing stored and authorizes separately', async () => {
  const alice = randomUUID()
  const bob = randomUUID()
  const aliceClient = await connect(alice, await approve(await authorizationUrlFor(alice)))
  const bobUrl = await authorizationUrlFor(bob)
  assert.equal(new OAuthStore(bob, { dbPath }).tokens('fixture'), undefined)
  const bobClient = await connect(bob, await approve(bobUrl))
  assert.notEqual(await whoami(bobClient), await whoami(aliceClient), 'separate client registrations')
  await Promise.all([aliceClient.close(), bobClient.close()])
})

test("invalidateCredentials('all') forces a new authorization", async () => {
  const carol = randomUUID()
  await (await connect(carol, await approve(await authorizationUrlFor(carol)))).close()
  new OAuthStore(carol, { dbPath }).invalidateCredentials('fixture', 'all')
  const url = await authorizationUrlFor(carol)
  const client = await connect(carol, await approve(url))
  assert.deepEqual(
    (await client.listTools()).tools.map((t) => t.name),
    ['whoami'],
  )
  await client.close()
})

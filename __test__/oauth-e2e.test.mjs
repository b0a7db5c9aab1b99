// The whole OAuth flow with the real MCP SDK: its client and transport, createOAuthProvider over an
// OAuthStore, and an MCP server protected by the SDK's own server-side auth.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { Client as Client120 } from 'sdk120/client/index.js'
import { StreamableHTTPClientTransport as Transport120 } from 'sdk120/client/streamableHttp.js'

import { createDatabaseAdapter } from '../lib/hoot.js'
import { OAuthStore, createOAuthProvider } from '../lib/index.js'
import { approve, callback, clientMetadata, redirectUrl, startOAuthMcpServer } from './mcp-fixture.mjs'
import { tempDir } from './helpers.mjs'

let fixture
let headerOnly
let dbPath

before(async () => {
  fixture = await startOAuthMcpServer()
  headerOnly = await startOAuthMcpServer({ headerOnlyMetadata: true })
  dbPath = join(tempDir('e2e'), 'hoot-mcp.db')
})
after(() => Promise.all([fixture.close(), headerOnly.close()]))

/** A provider as Hoot builds one per request; `discovery: false` takes away its discovery state. */
function providerFor(userId, { discovery = true, source = new OAuthStore(userId, { dbPath }) } = {}) {
  const provider = createOAuthProvider(source, 'fixture', { redirectUrl, clientMetadata })
  if (!discovery) {
    delete provider.saveDiscoveryState
    delete provider.discoveryState
  }
  return provider
}

/** What Hoot's /mcp/connect does: a fresh transport and client, finishing auth first when given a code. */
async function connect(userId, authorizationCode, { server = fixture, ...options } = {}) {
  const authProvider = providerFor(userId, options)
  const transport = new StreamableHTTPClientTransport(server.url, { authProvider })
  if (authorizationCode) await transport.finishAuth(authorizationCode)
  const client = new Client({ name: 'hoot-backend', version: '0.2.0' }, { capabilities: {} })
  await client.connect(transport)
  return client
}

async function authorizationUrlFor(userId, options) {
  let thrown
  await assert.rejects(connect(userId, undefined, options), (e) => {
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

test('metadata only in WWW-Authenticate: the callback on a new transport and provider needs the saved discovery state', async () => {
  // Without discovery state the SDK rediscovers on the callback's leg without the 401's header,
  // falls back to the server's origin as the authorization server, and refuses the exchange.
  const dave = randomUUID()
  const without = { server: headerOnly, discovery: false }
  const code = await approve(await authorizationUrlFor(dave, without))
  await assert.rejects(connect(dave, code, without), /Existing OAuth client information is required/)

  // With it, the same flow finishes, lists tools, and the callback's leg discovers nothing again.
  const erin = randomUUID()
  const withState = { server: headerOnly }
  const url = await authorizationUrlFor(erin, withState)
  assert.equal(
    new OAuthStore(erin, { dbPath }).discoveryState('fixture').authorizationServerUrl,
    new URL('/as', headerOnly.url).href,
  )
  const discoveryBefore = headerOnly.stats.discovery
  const client = await connect(erin, await approve(url), withState)
  assert.equal(headerOnly.stats.discovery, discoveryBefore, 'no discovery request on the callback')
  assert.deepEqual(
    (await client.listTools()).tools.map((t) => t.name),
    ['whoami'],
  )
  await client.close()
})

test('the same flow through createDatabaseAdapter, as Hoot passes { adapter, userId }', async () => {
  const adapter = createDatabaseAdapter({ dbPath })
  const frank = randomUUID()
  const options = { server: headerOnly, source: { adapter, userId: frank } }
  const client = await connect(frank, await approve(await authorizationUrlFor(frank, options)), options)
  assert.equal(await whoami(client), (await adapter.getOAuthClientInfo(frank, 'fixture')).client_id)
  await client.close()
})

test("the callback's state is accepted once, for its own user: a forged or replayed one is refused", async () => {
  const grace = randomUUID()
  const { state } = await callback(await authorizationUrlFor(grace))
  assert.match(state, /^[0-9a-f]{64}$/)
  const other = randomUUID()
  await authorizationUrlFor(other)
  assert.equal(await providerFor(other).consumeState(state), false, "another user's callback")
  assert.equal(await providerFor(grace).consumeState('f'.repeat(64)), false, 'forged')
  assert.equal(await providerFor(grace).consumeState(state), false, 'a failed check used the state up')

  const second = await callback(await authorizationUrlFor(grace))
  assert.equal(await providerFor(grace).consumeState(second.state), true)
  assert.equal(await providerFor(grace).consumeState(second.state), false, 'replayed')
  const client = await connect(grace, second.code)
  assert.ok(await whoami(client))
  await client.close()
})

test('SDK 1.20, the version Hoot pins: the same provider through its transport, and no discovery state asked for', async () => {
  const henry = randomUUID()
  const connect120 = async (code) => {
    const authProvider = providerFor(henry)
    const transport = new Transport120(fixture.url, { authProvider })
    if (code) await transport.finishAuth(code)
    const client = new Client120({ name: 'hoot-backend', version: '0.2.0' }, { capabilities: {} })
    await client.connect(transport)
    return client
  }
  let url
  await assert.rejects(connect120(), (e) => Boolean((url = e.authorizationUrl)))
  const client = await connect120(await approve(url))
  assert.ok(await whoami(client))
  await client.close()
  assert.equal(new OAuthStore(henry, { dbPath }).discoveryState('fixture'), undefined, '1.20 has no discovery state')
})

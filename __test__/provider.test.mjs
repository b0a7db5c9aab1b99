import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { test } from 'node:test'

import { createDatabaseAdapter } from '../lib/hoot.js'
import { OAuthStore, createOAuthProvider } from '../lib/index.js'
import { USER, root, tempDir } from './helpers.mjs'

const options = {
  redirectUrl: 'http://localhost:8009/oauth/callback',
  clientMetadata: { client_name: 'Hoot MCP Testing Tool', redirect_uris: ['http://localhost:8009/oauth/callback'] },
}

test('every provider method reads and writes the store for its server', async () => {
  const dbPath = join(tempDir('provider'), 'hoot-mcp.db')
  const store = new OAuthStore(USER, { dbPath })
  const provider = createOAuthProvider(store, 'srv', options)
  assert.equal(provider.redirectUrl, options.redirectUrl)
  assert.deepEqual(provider.clientMetadata, options.clientMetadata)
  const [a, b] = [await provider.state(), await provider.state()]
  assert.match(a, /^[0-9a-f]{64}$/)
  assert.notEqual(a, b)

  assert.equal(await provider.clientInformation(), undefined)
  await provider.saveClientInformation({ client_id: 'cid' })
  assert.deepEqual(store.clientInformation('srv'), { client_id: 'cid' })
  await provider.saveTokens({ access_token: 'at', token_type: 'Bearer' })
  assert.deepEqual(await provider.tokens(), { access_token: 'at', token_type: 'Bearer' })
  await provider.saveCodeVerifier('verifier')
  assert.equal(await provider.codeVerifier(), 'verifier')
  assert.equal(store.tokens('other'), undefined, 'only its own server id')

  await provider.saveDiscoveryState({ authorizationServerUrl: 'https://as.example/' })
  assert.deepEqual(await provider.discoveryState(), { authorizationServerUrl: 'https://as.example/' })
  await provider.invalidateCredentials('discovery')
  assert.equal(await provider.discoveryState(), undefined)
  assert.deepEqual(
    await provider.tokens(),
    { access_token: 'at', token_type: 'Bearer' },
    "'discovery' leaves the tokens",
  )
  await provider.invalidateCredentials('all')
  assert.equal(await provider.tokens(), undefined)
  assert.equal(await provider.clientInformation(), undefined)
  await assert.rejects(provider.codeVerifier(), /No PKCE code verifier is stored for MCP server "srv"/)
})

test('redirectToAuthorization throws UnauthorizedError with the URL, or calls onRedirect', async () => {
  const store = new OAuthStore(USER, { dbPath: join(tempDir('redirect'), 'hoot-mcp.db') })
  const url = new URL('https://auth.example/authorize?client_id=x')
  await assert.rejects(createOAuthProvider(store, 'srv', options).redirectToAuthorization(url), (e) => {
    assert.equal(e.name, 'UnauthorizedError')
    assert.equal(e.authorizationUrl, url.toString())
    return true
  })
  const seen = []
  await createOAuthProvider(store, 'srv', {
    ...options,
    onRedirect: (u) => seen.push(u.toString()),
  }).redirectToAuthorization(url)
  assert.deepEqual(seen, [url.toString()])
})

test("two users' providers for one server never share credentials", async () => {
  const dbPath = join(tempDir('provider-users'), 'hoot-mcp.db')
  const alice = createOAuthProvider(new OAuthStore(randomUUID(), { dbPath }), 'srv', options)
  const bob = createOAuthProvider(new OAuthStore(randomUUID(), { dbPath }), 'srv', options)
  await alice.saveTokens({ access_token: 'alice' })
  assert.equal(await bob.tokens(), undefined)
  await bob.invalidateCredentials('all')
  assert.deepEqual(await alice.tokens(), { access_token: 'alice' })
})

test('wrong arguments throw TypeErrors naming them', () => {
  const store = new OAuthStore(USER, { dbPath: ':memory:' })
  assert.throws(() => createOAuthProvider({}, 'srv', options), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"store"/,
  })
  assert.throws(() => createOAuthProvider(store, 1, options), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"serverId"/,
  })
  assert.throws(() => createOAuthProvider(store, '', options), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => createOAuthProvider(store, 'srv'), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options"/,
  })
  assert.throws(() => createOAuthProvider(store, 'srv', { ...options, redirectUrl: 5 }), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.redirectUrl"/,
  })
  assert.throws(() => createOAuthProvider(store, 'srv', { ...options, clientMetadata: null }), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.clientMetadata"/,
  })
  assert.throws(() => createOAuthProvider(store, 'srv', { ...options, onRedirect: 'x' }), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"options.onRedirect"/,
  })
})

/** An adapter with Hoot's methods over a Map, as Hoot's Durable Objects one is: no discovery, no state. */
function plainAdapter() {
  const rows = new Map()
  const key = (...parts) => parts.join('|')
  return {
    rows,
    getOAuthClientInfo: async (u, s) => rows.get(key(u, 'client', s)) ?? null,
    saveOAuthClientInfo: async (u, s, v) => void rows.set(key(u, 'client', s), v),
    getOAuthTokens: async (u, s) => rows.get(key(u, 'tokens', s)) ?? null,
    saveOAuthTokens: async (u, s, v) => void rows.set(key(u, 'tokens', s), v),
    getVerifier: async (u, s) => rows.get(key(u, 'verifier', s)) ?? null,
    saveVerifier: async (u, s, v) => void rows.set(key(u, 'verifier', s), v),
    clearOAuthCredentials: async (u, s, scope) => void rows.set(key(u, 'cleared', s), scope),
  }
}

test('{ adapter, userId }: the user id goes with every call, and nulls read as undefined', async () => {
  const adapter = plainAdapter()
  const provider = createOAuthProvider({ adapter, userId: 'u1' }, 'srv', options)
  assert.equal(await provider.tokens(), undefined)
  assert.equal(await provider.clientInformation(), undefined)
  await provider.saveTokens({ access_token: 'at' })
  await provider.saveCodeVerifier('v')
  assert.deepEqual(adapter.rows.get('u1|tokens|srv'), { access_token: 'at' })
  assert.equal(await provider.codeVerifier(), 'v')
  await provider.invalidateCredentials('client')
  assert.equal(adapter.rows.get('u1|cleared|srv'), 'client')
  // Without somewhere to keep them, there is no discovery state to take and no state to check.
  assert.equal('saveDiscoveryState' in provider || 'discoveryState' in provider, false)
  assert.match(await provider.state(), /^[0-9a-f]{64}$/)
  assert.equal(provider.checksState, false)
  await assert.rejects(provider.consumeState('x'), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('an adapter that offers the four optional methods gets discovery state and the state check', async () => {
  const adapter = plainAdapter()
  const kept = new Map()
  Object.assign(adapter, {
    getDiscoveryState: async (u, s) => kept.get(`d|${u}|${s}`) ?? null,
    saveDiscoveryState: async (u, s, v) => void kept.set(`d|${u}|${s}`, v),
    saveAuthorizationState: async (u, s, v) => void kept.set(`s|${u}|${s}`, v),
    consumeAuthorizationState: async (u, s, v) => {
      const saved = kept.get(`s|${u}|${s}`)
      kept.delete(`s|${u}|${s}`)
      return saved === v
    },
  })
  const provider = createOAuthProvider({ adapter, userId: 'u1' }, 'srv', options)
  assert.equal(provider.checksState, true)
  assert.equal(await provider.discoveryState(), undefined)
  await provider.saveDiscoveryState({ authorizationServerUrl: 'https://as.example/' })
  assert.deepEqual(kept.get('d|u1|srv'), { authorizationServerUrl: 'https://as.example/' })
  const state = await provider.state()
  assert.equal(await provider.consumeState(state), true)
  assert.equal(await provider.consumeState(state), false)
})

test("hoot-core's adapter gives the provider its store: discovery and state across providers", async () => {
  const adapter = createDatabaseAdapter({ dbPath: join(tempDir('provider-adapter'), 'hoot-mcp.db') })
  const userId = randomUUID()
  const first = createOAuthProvider({ adapter, userId }, 'srv', options)
  await first.saveDiscoveryState({ authorizationServerUrl: 'https://as.example/' })
  const state = await first.state()
  const second = createOAuthProvider({ adapter, userId }, 'srv', options)
  assert.deepEqual(await second.discoveryState(), { authorizationServerUrl: 'https://as.example/' })
  const other = createOAuthProvider({ adapter, userId: randomUUID() }, 'srv', options)
  assert.equal(await other.discoveryState(), undefined, "another user's provider")
  assert.equal(await other.consumeState(state), false)
  assert.equal(await second.consumeState(state), true)
  for (const value of [undefined, 5, '']) assert.equal(await second.consumeState(value), false)
  await adapter.clearOAuthCredentials(userId, 'srv', 'all')
  assert.equal(await second.discoveryState(), undefined)
})

test('clientMetadataUrl and validateResourceURL are passed on only when given', async () => {
  const store = new OAuthStore(USER, { dbPath: ':memory:' })
  const bare = createOAuthProvider(store, 'srv', options)
  assert.equal('clientMetadataUrl' in bare || 'validateResourceURL' in bare, false)
  const seen = []
  const provider = createOAuthProvider(store, 'srv', {
    ...options,
    clientMetadataUrl: 'https://hoot.example/client.json',
    validateResourceURL: async (serverUrl, resource) => {
      seen.push([String(serverUrl), resource])
      return new URL('https://mcp.example/')
    },
  })
  assert.equal(provider.clientMetadataUrl, 'https://hoot.example/client.json')
  assert.equal(
    String(await provider.validateResourceURL('https://mcp.example/mcp', 'https://mcp.example/')),
    'https://mcp.example/',
  )
  assert.deepEqual(seen, [['https://mcp.example/mcp', 'https://mcp.example/']])
  for (const [key, value] of [
    ['clientMetadataUrl', 5],
    ['validateResourceURL', 'x'],
  ]) {
    assert.throws(() => createOAuthProvider(store, 'srv', { ...options, [key]: value }), {
      code: 'ERR_INVALID_ARG_TYPE',
    })
  }
  assert.throws(() => createOAuthProvider({ adapter: {}, userId: 'u' }, 'srv', options), {
    code: 'ERR_INVALID_ARG_TYPE',
  })
  assert.throws(() => createOAuthProvider({ adapter: plainAdapter(), userId: 5 }, 'srv', options), {
    code: 'ERR_INVALID_ARG_TYPE',
  })
  assert.throws(() => createOAuthProvider(null, 'srv', options), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('hoot-core/provider loads without the native addon', () => {
  const code = `const { createOAuthProvider } = require('hoot-core/provider')
    if (typeof createOAuthProvider !== 'function') throw new Error('no createOAuthProvider')
    console.log(JSON.stringify(Object.keys(require.cache).filter((f) => f.endsWith('.node'))))`
  const child = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8' })
  assert.equal(child.status, 0, child.stderr)
  assert.deepEqual(JSON.parse(child.stdout), [])
})

test('stateOptionalUntil: a callback without state passes only until then, each pass and refusal logged', async () => {
  const adapter = createDatabaseAdapter({ dbPath: join(tempDir('provider-transition'), 'hoot-mcp.db') })
  const userId = randomUUID()
  const logged = []
  const log = (message) => logged.push(message)
  const until = new Date(Date.now() + 7 * 86_400_000).toISOString()
  const during = createOAuthProvider({ adapter, userId }, 'srv', { ...options, stateOptionalUntil: until, log })
  const state = await during.state()
  assert.equal(await during.consumeState(undefined), true, 'no state, during the transition')
  assert.match(
    logged.pop(),
    new RegExp(`accepted an OAuth callback for MCP server "srv" without state.*until ${until}`),
  )
  assert.equal(await during.consumeState('f'.repeat(64)), false, 'a wrong state is refused, transition or not')
  assert.match(logged.pop(), /refused an OAuth callback for MCP server "srv": its state is not the one/)
  assert.equal(await during.consumeState(state), false, 'a refused callback ended the pending authorization')

  // Over (a date past), unset, or the environment variable empty: no state is refused.
  for (const stateOptionalUntil of [new Date(Date.now() - 1000), undefined, '']) {
    const after = createOAuthProvider({ adapter, userId }, 'srv', { ...options, stateOptionalUntil, log })
    assert.equal(await after.consumeState(''), false)
    assert.match(logged.pop(), /refused an OAuth callback for MCP server "srv": it carries no state/)
  }
  assert.ok(
    logged.every((message) => !message.includes(userId) && !message.includes(state)),
    'no user id, no state',
  )
  // A logger that throws changes nothing; a long server id is cut in the message.
  const throwing = () => {
    throw new Error('log full')
  }
  const long = createOAuthProvider({ adapter, userId }, 'x'.repeat(4000), { ...options, log: throwing })
  assert.equal(await long.consumeState('f'.repeat(64)), false)
  const cut = createOAuthProvider({ adapter, userId }, 'x'.repeat(4000), { ...options, log })
  await cut.consumeState('')
  assert.ok(logged.pop().length < 300)

  // Bounded: at most 30 days ahead; and a date, or nothing.
  const far = new Date(Date.now() + 31 * 86_400_000)
  assert.throws(() => createOAuthProvider({ adapter, userId }, 'srv', { ...options, stateOptionalUntil: far }), {
    name: 'RangeError',
    code: 'ERR_INVALID_ARG_VALUE',
  })
  for (const stateOptionalUntil of ['next week', {}, NaN]) {
    assert.throws(() => createOAuthProvider({ adapter, userId }, 'srv', { ...options, stateOptionalUntil }), {
      code: 'ERR_INVALID_ARG_TYPE',
    })
  }
  assert.throws(() => createOAuthProvider({ adapter, userId }, 'srv', { ...options, log: 'console' }), {
    code: 'ERR_INVALID_ARG_TYPE',
  })
  await adapter.close()
})

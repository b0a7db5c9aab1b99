import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { test } from 'node:test'

import { OAuthStore, createOAuthProvider } from '../lib/index.js'
import { USER, tempDir } from './helpers.mjs'

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

  await provider.invalidateCredentials('discovery') // nothing stored for discovery: a no-op
  assert.deepEqual(await provider.tokens(), { access_token: 'at', token_type: 'Bearer' })
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

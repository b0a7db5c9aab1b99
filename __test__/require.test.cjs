// The CommonJS entry: require('hoot-core') exposes every export (the other tests import it as ESM).
const assert = require('node:assert/strict')
const { test } = require('node:test')

test('require() exposes every export', () => {
  const hoot = require('..')
  for (const name of [
    'loadKeys',
    'generateKeys',
    'publicJwks',
    'issueToken',
    'issueTokenAsync',
    'verifyToken',
    'isValidUserId',
    'OAuthStore',
    'migrateDatabase',
    'cleanupExpiredVerifiers',
    'getCachedFavicon',
    'cacheFavicon',
    'closeDatabase',
    'createOAuthProvider',
  ]) {
    assert.equal(typeof hoot[name], 'function', name)
  }
  assert.equal(hoot.isValidUserId('3b241101-e2bb-4255-8caf-4136c566a962'), true)
})

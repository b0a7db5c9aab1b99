// The CommonJS entries: require('hoot-core') and its subpaths expose every export (the other tests
// import them as ESM), through the package's own `exports` map.
const assert = require('node:assert/strict')
const { createRequire } = require('node:module')
const { test } = require('node:test')

// Resolved from the package root, where `hoot-core` names the package itself (__test__/ has a
// package.json of its own).
const requireFromRoot = createRequire(require.resolve('../package.json'))

test('require() exposes every export of each entry', () => {
  const entries = {
    'hoot-core': [
      'loadKeys',
      'generateKeys',
      'publicJwks',
      'issueToken',
      'issueTokenAsync',
      'verifyToken',
      'isValidUserId',
      'openDatabase',
      'OAuthStore',
      'migrateDatabase',
      'createOAuthProvider',
      'onEvent',
    ],
    'hoot-core/sqlite': [
      'OAuthStore',
      'migrateDatabase',
      'closeDatabase',
      'inspectDatabase',
      'cleanupExpiredVerifiers',
      'getCachedFavicon',
      'cacheFavicon',
      'encryptDatabase',
      'decryptDatabase',
      'activitySummary',
      'purgeInactiveUsers',
      'redeemTransferCode',
      'legacyTransferCode',
      'moveUserData',
      'userIdForAccount',
      'revokeUserTokens',
    ],
    'hoot-core/hoot': ['createDatabaseAdapter', 'UserConnections'],
    'hoot-core/provider': ['createOAuthProvider'],
    'hoot-core/metrics': ['metricsText', 'registerMetrics', 'contentType'],
  }
  for (const [entry, names] of Object.entries(entries)) {
    const exported = requireFromRoot(entry)
    for (const name of names) {
      if (name !== 'contentType') assert.equal(typeof exported[name], 'function', `${entry}: ${name}`)
    }
    assert.deepEqual(Object.keys(exported).sort(), [...names].sort(), entry)
  }
  const hoot = requireFromRoot('hoot-core')
  assert.equal(hoot.isValidUserId('3b241101-e2bb-4255-8caf-4136c566a962'), true)
  assert.equal(requireFromRoot('hoot-core/sqlite').OAuthStore, hoot.OAuthStore, 'one OAuthStore class')
})

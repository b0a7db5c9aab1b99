#!/usr/bin/env node
// The smoke test of one binary on its own platform: load the package, make keys, issue and verify a
// token, and round-trip a store value. The release workflow runs it on each target; it runs here too:
//   node scripts/smoke.js            (the package in this folder)
//   node scripts/smoke.js hoot-core  (an installed package, from the current project)
'use strict'

const { mkdtempSync, rmSync } = require('fs')
const { tmpdir } = require('os')
const { createRequire } = require('module')
const { join, resolve } = require('path')

const spec = process.argv[2] || resolve(__dirname, '..')
const home = mkdtempSync(join(tmpdir(), 'hoot-core-smoke-'))
process.env.HOME = process.env.USERPROFILE = home
try {
  // From the current project, so a package name is not taken for this checkout's own (self-reference).
  const hoot = createRequire(join(process.cwd(), 'smoke.js'))(spec)
  const userId = '3b241101-e2bb-4255-8caf-4136c566a962'
  const claims = hoot.verifyToken(hoot.issueToken(userId))
  if (claims.userId !== userId) throw new Error(`verifyToken returned ${claims.userId}`)
  const store = new hoot.OAuthStore(userId, { dbPath: ':memory:' })
  store.saveTokens('smoke', { access_token: 'a', token_type: 'Bearer' })
  if (store.tokens('smoke').access_token !== 'a') throw new Error('the store lost a value')
  const binary = Object.keys(require.cache).find((f) => f.endsWith('.node'))
  console.log(`smoke: ok on ${process.platform}-${process.arch}, node ${process.version}, ${binary}`)
} finally {
  rmSync(home, { recursive: true, force: true })
}

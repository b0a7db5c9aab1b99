// The provider's types against the MCP SDK's own: `tsc --strict` (skipLibCheck off, so
// lib/index.d.ts and lib/provider.d.ts are checked too) on __test__/types/provider.ts, which
// assigns providers to the OAuthClientProvider of SDK 1.20, 1.32 and the v2 client; and on
// __test__/types/database.ts, which makes and redeems transfer codes as the example server does.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'

import { root } from './helpers.mjs'

function tsc(project) {
  const bin = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  return spawnSync(process.execPath, [bin, '-p', join(root, '__test__', 'types', project)], { encoding: 'utf8' })
}

test("createOAuthProvider's result is an OAuthClientProvider of SDK 1.20, 1.32 and v2 under tsc --strict", () => {
  const result = tsc('tsconfig.json')
  assert.equal(result.status, 0, result.stdout + result.stderr)
})

test("a Database's transfer codes take the example's options (tokenIssuedAt, source, intoUserId) under tsc --strict", () => {
  const result = tsc('tsconfig.database.json')
  assert.equal(result.status, 0, result.stdout + result.stderr)
})

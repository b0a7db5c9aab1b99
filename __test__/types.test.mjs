// The provider's types against the MCP SDK's own: `tsc --strict` (skipLibCheck off, so
// lib/index.d.ts and lib/provider.d.ts are checked too) on __test__/types/provider.ts, which
// assigns providers to the OAuthClientProvider of SDK 1.20, 1.32 and the v2 client.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'

import { root } from './helpers.mjs'

test("createOAuthProvider's result is an OAuthClientProvider of SDK 1.20, 1.32 and v2 under tsc --strict", () => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, '__test__', 'types', 'tsconfig.json')], {
    encoding: 'utf8',
  })
  assert.equal(result.status, 0, result.stdout + result.stderr)
})

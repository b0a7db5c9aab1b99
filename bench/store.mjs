// The store: hoot-core against better-sqlite3 on Hoot's code path and better-sqlite3 tuned, each
// contender in its own process on its own file, driven round by round.
import { fileURLToPath } from 'node:url'

import { QUICK, ROUNDS, interleave, tempDir, worker } from './lib.mjs'

const WORKER = fileURLToPath(new URL('./store-worker.mjs', import.meta.url))
const N = QUICK ? 300 : 2000
export const CONTENDERS = ['hoot-core', 'hoot-core-encrypted', 'hoot-path', 'tuned']
export const LABELS = {
  'hoot-core': 'hoot-core',
  'hoot-core-encrypted': 'hoot-core, encryption at rest on',
  'hoot-path': "better-sqlite3, Hoot's code path",
  tuned: 'better-sqlite3, tuned',
}

export async function run() {
  const dir = tempDir('store')
  const workers = Object.fromEntries(CONTENDERS.map((k) => [k, worker(WORKER, [k, dir])]))
  try {
    const synchronous = {}
    for (const k of CONTENDERS) synchronous[k] = (await workers[k].call({ op: 'info' })).synchronous
    const rows = {}
    for (const [label, op, n] of [
      ['saveTokens', 'saveTokens', N],
      ['tokens', 'tokens', N * 5],
      ['saveCodeVerifier + codeVerifier', 'verifier', N],
      ["invalidateCredentials('all')", 'invalidate', N],
    ]) {
      rows[label] = await interleave(
        ROUNDS,
        Object.fromEntries(CONTENDERS.map((k) => [LABELS[k], () => workers[k].call({ op, n })])),
      )
    }
    return { rows, synchronous }
  } finally {
    await Promise.all(Object.values(workers).map((w) => w.close()))
  }
}

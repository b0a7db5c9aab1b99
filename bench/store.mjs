// The store: hoot-core against better-sqlite3 on Hoot's code path and better-sqlite3 tuned, each
// contender in its own process on its own file, driven round by round.
import { fileURLToPath } from 'node:url'

import { QUICK, ROUNDS, interleave, tempDir, worker } from './lib.mjs'

const WORKER = fileURLToPath(new URL('./store-worker.mjs', import.meta.url))
const N = QUICK ? 300 : 2000
export const CONTENDERS = ['hoot-core', 'hoot-core-encrypted', 'hoot-path', 'tuned']
/** The async `Database` against tuned better-sqlite3 in a promise, reads awaited one by one. */
const AWAITED = { 'hoot-core-async': 'hoot-core', 'tuned-async': 'better-sqlite3, tuned, in a promise' }
export const AWAITED_ROW = 'tokens, async `Database` (each awaited)'
export const LABELS = {
  'hoot-core': 'hoot-core',
  'hoot-core-encrypted': 'hoot-core, encryption at rest on',
  'hoot-path': "better-sqlite3, Hoot's code path",
  tuned: 'better-sqlite3, tuned',
}

export async function run() {
  const dir = tempDir('store')
  const kinds = [...CONTENDERS, ...Object.keys(AWAITED)]
  const workers = Object.fromEntries(kinds.map((k) => [k, worker(WORKER, [k, dir])]))
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
    rows[AWAITED_ROW] = await interleave(
      ROUNDS,
      Object.fromEntries(
        Object.entries(AWAITED).map(([k, label]) => [label, () => workers[k].call({ op: 'tokensAwaited', n: N * 5 })]),
      ),
    )
    return { rows, synchronous }
  } finally {
    await Promise.all(Object.values(workers).map((w) => w.close()))
  }
}

// The store on PostgreSQL: hoot-core's async store against node-postgres running the same
// statements, each contender in its own process on its own fresh database, driven round by round,
// every operation one await at a time (latency) and CONCURRENCY in flight (throughput).
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

import { QUICK, ROUNDS, interleave, worker } from './lib.mjs'
import { dropDatabases, freshDatabase } from './postgres.mjs'

const require = createRequire(import.meta.url)
const WORKER = fileURLToPath(new URL('./pgstore-worker.mjs', import.meta.url))
const N = QUICK ? 80 : 400
export const CONCURRENCY = 32
export const POOL = 10
export const LABELS = { 'hoot-core': 'hoot-core', pg: 'node-postgres (pg)' }

export async function run() {
  const workers = {}
  try {
    for (const kind of Object.keys(LABELS)) {
      const url = await freshDatabase(kind.replace(/\W/g, '_'))
      if (kind === 'pg') {
        // node-postgres runs on the schema hoot-core makes, made here before it connects.
        const { openDatabase } = require('../lib/index.js')
        const db = openDatabase(url)
        await db.ready()
        await db.close()
      }
      workers[kind] = worker(WORKER, [kind, url])
    }
    // Connected, schema in place, statements prepared and read rows written, before any timing.
    await Promise.all(Object.values(workers).map((w) => w.call({ op: 'ready' })))
    const rows = {}
    for (const [label, op, n] of [
      ['saveTokens', 'saveTokens', N * 2],
      ['tokens', 'tokens', N * 5],
      ['saveCodeVerifier + codeVerifier', 'verifier', N],
      ["invalidateCredentials('all')", 'invalidate', N],
    ]) {
      for (const [mode, concurrency, count] of [
        ['one at a time', 1, n],
        [`${CONCURRENCY} in flight`, CONCURRENCY, n * 3],
      ]) {
        rows[`${label}, ${mode}`] = await interleave(
          ROUNDS,
          Object.fromEntries(
            Object.entries(LABELS).map(([kind, name]) => [
              name,
              () => workers[kind].call({ op, n: count, concurrency }),
            ]),
          ),
        )
      }
    }
    return { rows }
  } finally {
    await Promise.all(Object.values(workers).map((w) => w.close()))
    await dropDatabases()
  }
}

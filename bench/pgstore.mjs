// The store on PostgreSQL: hoot-core's async store against node-postgres and postgres.js running
// the same statements, each contender in its own process on its own fresh database, driven round
// by round, every operation one await at a time (latency) and CONCURRENCY in flight (throughput).
// The `tokens` reads also have pgbench's select-only run beside them: libpq's floor on this server.
import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { QUICK, ROUNDS, interleave, worker } from './lib.mjs'
import { dropDatabases, freshDatabase } from './postgres.mjs'

const require = createRequire(import.meta.url)
const exec = promisify(execFile)
const WORKER = fileURLToPath(new URL('./pgstore-worker.mjs', import.meta.url))
const N = QUICK ? 80 : 400
export const CONCURRENCY = 32
export const POOL = 10
// The rows the calls spread over: USERS × SERVERS (user, server) pairs, as the issue measured on.
export const USERS = 30
export const SERVERS = 50
export const LABELS = { 'hoot-core': 'hoot-core', pg: 'node-postgres (pg)', postgres: 'postgres.js' }
export const PGBENCH = 'pgbench -S -M prepared (libpq, floor)'
// A pgbench that hangs fails the run instead of stalling it.
const PGBENCH_TIMEOUT_MS = 120_000
// pgbench's threads for many clients: the cores of this machine kind.
export const PGBENCH_THREADS = 2

/** `pgbench 15.4` as `pgbench --version` says, or null when pgbench is not on PATH. */
async function pgbenchVersion() {
  try {
    const { stdout } = await exec('pgbench', ['--version'], { timeout: PGBENCH_TIMEOUT_MS })
    return `pgbench ${/\d+(\.\d+)*/.exec(stdout)?.[0] ?? stdout.trim()}`
  } catch (error) {
    if (error.code === 'ENOENT') return null
    throw error
  }
}

/** Selects per second of pgbench -S on `url`, `n` of them over `clients` connections at once. */
async function pgbench(url, n, clients) {
  const threads = clients > 1 ? ['-j', String(PGBENCH_THREADS)] : []
  const args = ['-S', '-M', 'prepared', '-n', '-c', String(clients), ...threads, '-t', String(Math.ceil(n / clients))]
  const { stdout } = await exec('pgbench', [...args, url], { timeout: PGBENCH_TIMEOUT_MS })
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)
  if (!tps) throw new Error(`pgbench ${args.join(' ')} printed no tps:\n${stdout}`)
  return Number(tps[1])
}

export async function run() {
  const workers = {}
  try {
    for (const kind of Object.keys(LABELS)) {
      const url = await freshDatabase(kind.replace(/\W/g, '_'))
      if (kind !== 'hoot-core') {
        // The JavaScript clients run on the schema hoot-core makes, made here before they connect.
        const { openDatabase } = require('../lib/index.js')
        const db = openDatabase(url)
        await db.ready()
        await db.close()
      }
      workers[kind] = worker(WORKER, [kind, url, String(USERS), String(SERVERS)])
    }
    // pgbench's own tables (scale 1: 100,000 accounts) on a database of its own, made untimed.
    const floor = await pgbenchVersion()
    const floorUrl = floor && (await freshDatabase('pgbench'))
    if (floorUrl) await exec('pgbench', ['-i', '-s', '1', '-q', floorUrl], { timeout: PGBENCH_TIMEOUT_MS })
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
        const contenders = Object.fromEntries(
          Object.entries(LABELS).map(([kind, name]) => [name, () => workers[kind].call({ op, n: count, concurrency })]),
        )
        if (op === 'tokens' && floorUrl) contenders[PGBENCH] = () => pgbench(floorUrl, count, concurrency)
        rows[`${label}, ${mode}`] = await interleave(ROUNDS, contenders)
      }
    }
    return { rows, pgbench: floor }
  } finally {
    await Promise.all(Object.values(workers).map((w) => w.close()))
    await dropDatabases()
  }
}

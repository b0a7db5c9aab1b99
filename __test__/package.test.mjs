// The package as a user gets it: `npm pack`, installed into an empty project, built from source
// by its install script, and imported from ESM and CommonJS.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { test } from 'node:test'

import { USER, root, tempDir } from './helpers.mjs'

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const require = createRequire(import.meta.url)

/** The package's API: every export of the main entry, nothing internal (the subpaths: require.test.cjs). */
const API = [
  'OAuthStore',
  'createOAuthProvider',
  'generateKeys',
  'isValidUserId',
  'issueToken',
  'issueTokenAsync',
  'loadKeys',
  'migrateDatabase',
  'onEvent',
  'openDatabase',
  'publicJwks',
  'verifyToken',
]

/** The entry points: `hoot-core` and every subpath in package.json's "exports" that is code, with its file. */
function entryPoints() {
  const { exports } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  return Object.entries(exports)
    .filter(([, target]) => typeof target === 'object')
    .map(([subpath, target]) => ({ name: `hoot-core${subpath.slice(1)}`, file: join(root, target.default) }))
}

const reference = () => readFileSync(join(root, 'docs', 'api.md'), 'utf8')

/** The `### name` headings of the API reference's section for one entry point (`## \`hoot-core/sqlite\``). */
function documentedExports(entry) {
  const api = reference()
  const start = api.indexOf(`\n## \`${entry}\`\n`)
  assert.ok(start >= 0, `docs/api.md has no section for ${entry}`)
  const end = api.indexOf('\n## ', start + 1)
  const section = api.slice(start, end < 0 ? undefined : end)
  return [...section.matchAll(/^### `?(\w+)`?$/gm)].map((m) => m[1]).sort()
}

test('the API reference documents every export of every entry point under a heading of its own, and nothing else', () => {
  const main = require(join(root, 'lib', 'index.js'))
  const sections = [...reference().matchAll(/^## `(hoot-core[^`]*)`$/gm)].map((m) => m[1])
  assert.deepEqual(
    sections.sort(),
    entryPoints()
      .map((e) => e.name)
      .sort(),
    'a section per entry point',
  )
  for (const { name, file } of entryPoints()) {
    const exported = require(file)
    // A subpath's re-export of a main-entry name is documented once, under the main entry.
    const own = Object.keys(exported).filter((n) => name === 'hoot-core' || exported[n] !== main[n])
    assert.deepEqual(documentedExports(name), own.sort(), name)
  }
})

function run(command, args, options) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options })
  assert.equal(result.status, 0, `${command} ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`)
  return result.stdout
}

test('the npm pack tarball installs into an empty project and works from ESM and CJS', () => {
  const packDir = tempDir('pack')
  const packed = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', packDir], { cwd: root }))
  const files = packed[0].files.map((f) => f.path)
  for (const needed of [
    'lib/index.js',
    'lib/sqlite.js',
    'lib/hoot.js',
    'lib/provider.js',
    'lib/errors.js',
    'lib/verify.js',
    'lib/store.js',
    'lib/binding.js',
    'lib/index.d.ts',
    'lib/header.d.ts',
    'Cargo.toml',
    'Cargo.lock',
    'build.rs',
    'src/lib.rs',
    'scripts/install.js',
    'LICENSE',
  ]) {
    assert.ok(files.includes(needed), `tarball lacks ${needed}`)
  }
  assert.ok(!files.some((f) => f.endsWith('.node') || f.startsWith('target/')), 'no build output in the tarball')

  const project = tempDir('consumer')
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  // Sharing the target dir reuses compiled dependencies; hoot-core itself is still built from the tarball's sources.
  run(npm, ['install', '--no-audit', '--no-fund', join(packDir, packed[0].filename)], {
    cwd: project,
    env: { ...process.env, CARGO_TARGET_DIR: join(root, 'target') },
  })

  const env = { ...process.env, HOME: tempDir('home') }
  const esm = run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
    import * as all from 'hoot-core'
    import { issueToken, verifyToken, createOAuthProvider } from 'hoot-core'
    if (typeof createOAuthProvider !== 'function') throw new Error('createOAuthProvider is not exported')
    console.log(JSON.stringify({ userId: verifyToken(issueToken('${USER}')).userId, names: Object.keys(all) }))`,
    ],
    { cwd: project, env },
  )
  const fromEsm = JSON.parse(esm.trim())
  assert.equal(fromEsm.userId, USER)
  const cjs = run(
    process.execPath,
    [
      '-e',
      `
    const hoot = require('hoot-core')
    const store = new hoot.OAuthStore('${USER}', { dbPath: ':memory:' })
    const visible = []
    for (let o = store; o !== null; o = Object.getPrototypeOf(o)) visible.push(...Object.getOwnPropertyNames(o))
    console.log(JSON.stringify({ userId: hoot.verifyToken(hoot.issueToken('${USER}')).userId, names: Object.keys(hoot), visible }))`,
    ],
    { cwd: project, env },
  )
  const fromCjs = JSON.parse(cjs.trim())
  assert.equal(fromCjs.userId, USER)

  // Exactly the API, from CommonJS and ESM alike.
  assert.deepEqual([...fromCjs.names].sort(), API)
  assert.deepEqual(fromEsm.names.filter((n) => n !== 'default').sort(), API)
  const internal = fromCjs.visible.filter((n) => /Text$|^__napi/.test(n))
  assert.deepEqual(internal, [], 'no internal native method is visible on a store')

  // The example server, run from the installed package: its token round trip over HTTP. Its other
  // dependencies are linked from this repository rather than downloaded.
  mkdirSync(join(project, 'node_modules', '@modelcontextprotocol'), { recursive: true })
  symlinkSync(join(root, 'node_modules', 'express'), join(project, 'node_modules', 'express'))
  symlinkSync(
    join(root, 'node_modules', '@modelcontextprotocol', 'sdk'),
    join(project, 'node_modules', '@modelcontextprotocol', 'sdk'),
  )
  // The example as a user copies it: its server, the demo MCP server it imports, and its page.
  cpSync(join(root, 'examples', 'express'), project, { recursive: true })
  const roundTrip = run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
    import { once } from 'node:events'
    import { createApp } from './server.mjs'
    const http = createApp().listen(0, '127.0.0.1')
    await once(http, 'listening')
    const base = 'http://127.0.0.1:' + http.address().port
    const issued = await (await fetch(base + '/auth/token', { method: 'POST', headers: { origin: 'http://localhost:8009', 'content-type': 'application/json' }, body: JSON.stringify({ userId: '${USER}' }) })).json()
    const tools = await fetch(base + '/mcp/tools/none', { headers: { 'x-hoot-token': issued.token } })
    const refused = await fetch(base + '/mcp/tools/none', { headers: { 'x-hoot-token': issued.token + 'x' } })
    console.log(JSON.stringify({ tokenType: issued.tokenType, authenticated: tools.status, refused: refused.status }))
    http.close()`,
    ],
    { cwd: project, env: { ...env, HOOT_DB_PATH: join(project, 'hoot.db') } },
  )
  assert.deepEqual(JSON.parse(roundTrip.trim().split('\n').pop()), {
    tokenType: 'jwt',
    authenticated: 404,
    refused: 401,
  })
})

test('in a development clone the install always builds from source, so without cargo it fails with one line', () => {
  // The clone's lib/ already holds a .node from npm install; outside a clone that would end the script.
  const bin = tempDir('nocargo')
  symlinkSync(process.execPath, join(bin, 'node'))
  const env = { ...process.env, PATH: bin }
  delete env.CARGO
  const result = spawnSync(process.execPath, [join(root, 'scripts', 'install.js')], { env, encoding: 'utf8' })
  assert.equal(result.status, 1)
  const lines = result.stderr.trim().split('\n')
  assert.equal(lines.length, 1, result.stderr)
  assert.match(lines[0], /^hoot-core: .*install .*rustup/)
})

// Faults: a process killed in the middle of saves or of a key generation, a full disk, a
// read-only file. Nothing acknowledged is lost, nothing half-written is left, and every failure
// is a clear ERR_HOOT_DB or ERR_HOOT_KEYS, never a crash. (Kills in the middle of a migration are
// in migrate.test.mjs.)
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

import { OAuthStore, loadKeys } from '../lib/index.js'
import { closeDatabase } from '../lib/sqlite.js'
import { USER, delays, entry, killDuring, root, tempDir, withBetterSqlite } from './helpers.mjs'

const linux = process.platform === 'linux'

function integrity(path) {
  return withBetterSqlite(
    `
    const db = new Database(input.path, { readonly: true })
    console.log(JSON.stringify(db.pragma('integrity_check', { simple: true })))`,
    { path },
  )
}

test('SIGKILL in the middle of saves, at 8 random moments: every acknowledged save is there, the file is intact', async () => {
  for (const delay of delays(7, 8, 120)) {
    const dbPath = join(tempDir('kill-saves'), 'hoot-mcp.db')
    // Each line is printed only after saveTokens has returned: that is the acknowledgement.
    const { lines, signal } = await killDuring(
      `
      const store = new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} })
      for (let i = 0; ; i++) {
        store.saveTokens('server-' + (i % 40), { i, access_token: 'a'.repeat(500 + (i % 7) * 300) })
        store.saveCodeVerifier('server-' + (i % 40), 'v' + i)
        writeSync(1, i + '\\n')
      }`,
      delay,
    )
    assert.equal(signal, 'SIGKILL')
    assert.ok(lines.length > 0)
    assert.equal(integrity(dbPath), 'ok', `after a kill at ${delay} ms`)
    const store = new OAuthStore(USER, { dbPath })
    const last = Number(lines.at(-1))
    // The newest acknowledged write of each server must be there (or a newer one the kill
    // interrupted after its commit but before its acknowledgement).
    for (let s = 0; s < 40 && s <= last; s++) {
      const acknowledged = last - ((last - s) % 40)
      const stored = store.tokens(`server-${s}`)
      assert.ok(
        stored && stored.i >= acknowledged,
        `server-${s}: ${stored?.i} < acknowledged ${acknowledged} (kill at ${delay} ms)`,
      )
      const verifier = Number(store.codeVerifier(`server-${s}`).slice(1))
      assert.ok(verifier >= acknowledged, `server-${s}: verifier of step ${verifier} < acknowledged ${acknowledged}`)
    }
    closeDatabase(dbPath)
  }
})

test('SIGKILL in the middle of key generation, at 8 random moments: key files are absent or complete', async () => {
  for (const delay of delays(11, 8, 400)) {
    const base = tempDir('kill-keys')
    const { lines } = await killDuring(
      `
      for (let i = 0; ; i++) {
        hoot.generateKeys(${JSON.stringify(base)} + '/k' + i)
        writeSync(1, i + '\\n')
      }`,
      delay,
    )
    for (const name of readdirSync(base)) {
      const dir = join(base, name)
      const privatePath = join(dir, 'private-key.json')
      const jwksPath = join(dir, 'jwks.json')
      const acknowledged = lines.includes(name.slice(1))
      if (acknowledged) assert.ok(existsSync(privatePath) && existsSync(jwksPath), `${name} was acknowledged`)
      if (existsSync(privatePath)) {
        const jwk = JSON.parse(readFileSync(privatePath, 'utf8')) // complete JSON, or this throws
        for (const member of ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi']) assert.ok(jwk[member], `${name}: ${member}`)
        // What is there loads: with its jwks.json, or alone (the key carries its kid).
        assert.equal(loadKeys({ keyDir: dir, generateIfMissing: false }).kid, jwk.kid)
      }
      if (existsSync(jwksPath)) {
        assert.ok(existsSync(privatePath), `${name}: jwks.json without its private key`)
        assert.equal(
          JSON.parse(readFileSync(jwksPath, 'utf8')).keys[0].n,
          JSON.parse(readFileSync(privatePath, 'utf8')).n,
        )
      }
    }
  }
})

test(
  'a full disk is a clear ERR_HOOT_DB, and what was saved before stays readable',
  { skip: !linux && 'needs ulimit -f' },
  () => {
    const dbPath = join(tempDir('full'), 'hoot-mcp.db')
    // A file size limit makes every write past it fail as a full disk would (EFBIG instead of
    // ENOSPC); SIGXFSZ is ignored so the write returns the error instead of killing the process.
    const child = spawnSync(
      'sh',
      [
        '-c',
        `ulimit -f 512; exec "${process.execPath}" --input-type=module -e "$0"`,
        `
    import * as hoot from ${JSON.stringify(entry)}
    process.on('SIGXFSZ', () => {})
    const store = new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} })
    store.saveTokens('before', { access_token: 'kept' })
    let error
    for (let i = 0; i < 10000 && !error; i++) {
      try { store.saveTokens('fill-' + i, { access_token: 'x'.repeat(8000) }) } catch (e) { error = e }
    }
    console.log(JSON.stringify({ name: error?.name, code: error?.code, message: error?.message, kept: store.tokens('before') }))`,
      ],
      { encoding: 'utf8' },
    )
    assert.equal(child.status, 0, child.stderr)
    const result = JSON.parse(child.stdout.trim().split('\n').pop())
    assert.equal(result.code, 'ERR_HOOT_DB', result.message)
    assert.match(result.message, /disk is full/)
    assert.ok(result.message.includes(dbPath), 'the message names the file')
    assert.deepEqual(result.kept, { access_token: 'kept' })
    assert.equal(integrity(dbPath), 'ok')
  },
)

test(
  'a read-only database file is a clear ERR_HOOT_DB, and nothing is written',
  { skip: !linux && 'uses a POSIX user' },
  () => {
    // root writes whatever the mode bits say, so as root the check runs as the user nobody, with a
    // copy of the package it can read.
    const dir = tempDir('read-only')
    chmodSync(dir, 0o755)
    const pkg = join(dir, 'pkg')
    mkdirSync(pkg)
    cpSync(join(root, 'lib'), join(pkg, 'lib'), { recursive: true })
    const dbPath = join(dir, 'hoot-mcp.db')
    const store = new OAuthStore(USER, { dbPath })
    store.saveTokens('kept', { access_token: 'kept' })
    closeDatabase(dbPath)
    for (const file of readdirSync(dir).filter((f) => f.startsWith('hoot-mcp.db'))) chmodSync(join(dir, file), 0o444)
    chmodSync(dir, 0o555) // no new -wal or -shm files either
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
    const child = spawnSync(
      process.execPath,
      [
        '-e',
        `
    const hoot = require(${JSON.stringify(join(pkg, 'lib', 'index.js'))})
    const outcome = {}
    try {
      const store = new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(dbPath)} })
      store.saveTokens('new', { access_token: 'x' })
      outcome.saved = true
    } catch (e) { outcome.name = e.name; outcome.code = e.code; outcome.message = e.message }
    console.log(JSON.stringify(outcome))`,
      ],
      { encoding: 'utf8', cwd: dir, env: { ...process.env, HOME: dir }, ...asNobody },
    )
    chmodSync(dir, 0o755)
    assert.equal(child.status, 0, child.stderr)
    const outcome = JSON.parse(child.stdout.trim().split('\n').pop())
    assert.equal(outcome.code, 'ERR_HOOT_DB', JSON.stringify(outcome))
    assert.ok(outcome.message.includes(dbPath), outcome.message)
    assert.match(outcome.message, /writable|read-only|readonly/i)
    for (const file of readdirSync(dir).filter((f) => f.startsWith('hoot-mcp.db'))) chmodSync(join(dir, file), 0o644)
    assert.equal(new OAuthStore(USER, { dbPath }).tokens('new'), undefined)
    assert.deepEqual(new OAuthStore(USER, { dbPath }).tokens('kept'), { access_token: 'kept' })
    closeDatabase(dbPath)
  },
)

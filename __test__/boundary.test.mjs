// The JavaScript boundary, table-driven: every export and every method, each argument given every
// wrong kind of value. A wrong type is a TypeError with ERR_INVALID_ARG_TYPE, a wrong value a coded
// error; a call that throws writes nothing; the process carries on. Sync and async agree, and a
// panic inside the core (forced by a test-only cargo feature) reaches JavaScript as an error.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { before, describe, test } from 'node:test'

import * as hoot from '../lib/index.js'
import * as sqlite from '../lib/sqlite.js'
import { createDatabaseAdapter } from '../lib/hoot.js'
import { USER, root, tempDir } from './helpers.mjs'

const dir = tempDir('boundary')
const realHome = process.env.HOME // cargo and rustup find their toolchain through it
process.env.HOME = dir // the zero-config key and default database live here, not in the real home
delete process.env.HOOT_DB_PATH
const dbPath = join(dir, 'hoot-mcp.db')
let store

const VALUES = {
  undefined,
  null: null,
  number: 42,
  boolean: true,
  array: ['a'],
  object: { a: 1 },
  symbol: Symbol('s'),
  bigint: 10n,
  'huge string': 'x'.repeat(10 * 1024 * 1024),
  'string with NUL': 'a\u0000b',
}
const CODED = new Set(['ERR_INVALID_ARG_VALUE', 'ERR_INVALID_USER_ID', 'ERR_HOOT_KEYS', 'ERR_HOOT_DB'])

// What each kind of parameter must do with each value: 'type' (TypeError, ERR_INVALID_ARG_TYPE),
// 'value' (ERR_INVALID_ARG_VALUE), 'ok' (accepted), or 'coded' (accepted, or refused with a code).
const NOT_A_STRING = {
  undefined: 'type',
  null: 'type',
  number: 'type',
  boolean: 'type',
  array: 'type',
  object: 'type',
  symbol: 'type',
  bigint: 'type',
}
const KINDS = {
  string: { ...NOT_A_STRING, 'huge string': 'coded', 'string with NUL': 'coded' },
  'string or null': { ...NOT_A_STRING, null: 'ok', 'huge string': 'coded', 'string with NUL': 'coded' },
  'optional string': {
    ...NOT_A_STRING,
    undefined: 'ok',
    null: 'ok',
    'huge string': 'coded',
    'string with NUL': 'coded',
  },
  options: {
    ...NOT_A_STRING,
    undefined: 'ok',
    null: 'ok',
    object: 'ok',
    'huge string': 'type',
    'string with NUL': 'type',
  },
  'JSON object': {
    undefined: 'type',
    symbol: 'type',
    bigint: 'type',
    null: 'value',
    number: 'value',
    boolean: 'value',
    array: 'value',
    object: 'ok',
    'huge string': 'value',
    'string with NUL': 'value',
  },
}

const key = () => join(dir, `keys-${Math.random().toString(36).slice(2)}`)
const CALLS = [
  ['loadKeys(opts)', 'options', (v) => hoot.loadKeys(v)],
  ['generateKeys(dir)', 'string', (v) => hoot.generateKeys(v)],
  ['generateKeys(dir, opts)', 'options', (v) => hoot.generateKeys(key(), v)],
  ['issueToken(userId)', 'string', (v) => hoot.issueToken(v)],
  ['issueToken(userId, opts)', 'options', (v) => hoot.issueToken(USER, v)],
  ['verifyToken(token)', 'string', (v) => hoot.verifyToken(v)],
  ['verifyToken(token, opts)', 'options', (v) => hoot.verifyToken('a.b.c', v)],
  ['new OAuthStore(userId)', 'string', (v) => new hoot.OAuthStore(v, { dbPath })],
  ['new OAuthStore(userId, opts)', 'options', (v) => new hoot.OAuthStore(USER, v ?? { dbPath })],
  ['store.clientInformation(serverId)', 'string', (v) => store.clientInformation(v)],
  ['store.saveClientInformation(serverId)', 'string', (v) => store.saveClientInformation(v, { client_id: 'c' })],
  ['store.saveClientInformation(_, info)', 'JSON object', (v) => store.saveClientInformation('probe', v)],
  ['store.tokens(serverId)', 'string', (v) => store.tokens(v)],
  ['store.saveTokens(serverId)', 'string', (v) => store.saveTokens(v, { access_token: 't' })],
  ['store.discoveryState(serverId)', 'string', (v) => store.discoveryState(v)],
  ['store.saveDiscoveryState(serverId)', 'string', (v) => store.saveDiscoveryState(v, {})],
  ['store.linkAccount(accountId)', 'string', (v) => store.linkAccount(v)],
  ['store.unlinkAccount(accountId)', 'string', (v) => store.unlinkAccount(v)],
  ['userIdForAccount(accountId)', 'string', (v) => sqlite.userIdForAccount(v, { dbPath })],
  ['store.createTransferCode(opts)', 'options', (v) => store.createTransferCode(v)],
  ['activitySummary(opts)', 'options', (v) => sqlite.activitySummary(v ?? { dbPath })],
  ['store.saveDiscoveryState(_, state)', 'JSON object', (v) => store.saveDiscoveryState('probe', v)],
  ['store.saveAuthorizationState(serverId)', 'string', (v) => store.saveAuthorizationState(v, 's')],
  ['store.saveAuthorizationState(_, state)', 'string', (v) => store.saveAuthorizationState('probe', v)],
  ['store.consumeAuthorizationState(serverId)', 'string', (v) => store.consumeAuthorizationState(v, 's')],
  ['store.consumeAuthorizationState(_, state)', 'string', (v) => store.consumeAuthorizationState('probe', v)],
  ['store.saveTokens(_, tokens)', 'JSON object', (v) => store.saveTokens('probe', v)],
  ['store.codeVerifier(serverId)', 'string', (v) => store.codeVerifier(v)],
  ['store.saveCodeVerifier(serverId)', 'string', (v) => store.saveCodeVerifier(v, 'verifier')],
  ['store.saveCodeVerifier(_, verifier)', 'string', (v) => store.saveCodeVerifier('probe', v)],
  ['store.invalidateCredentials(serverId)', 'string', (v) => store.invalidateCredentials(v, 'all')],
  ['store.serverConfig(serverId)', 'string', (v) => store.serverConfig(v)],
  ['store.saveServerConfig(serverId)', 'string', (v) => store.saveServerConfig(v, { url: 'u' })],
  ['store.saveServerConfig(_, config)', 'JSON object', (v) => store.saveServerConfig('probe', v)],
  ['store.deleteServerConfig(serverId)', 'string', (v) => store.deleteServerConfig(v)],
  ['migrateDatabase(dbPath)', 'optional string', (v) => hoot.migrateDatabase(v)],
  ['cleanupExpiredVerifiers(opts)', 'options', (v) => sqlite.cleanupExpiredVerifiers(v ?? { dbPath })],
  ['getCachedFavicon(serverUrl)', 'string', (v) => sqlite.getCachedFavicon(v, undefined, { dbPath })],
  [
    'getCachedFavicon(_, oauthLogoUri)',
    'optional string',
    (v) => sqlite.getCachedFavicon('https://a.example', v, { dbPath }),
  ],
  [
    'getCachedFavicon(_, _, opts)',
    'options',
    (v) => sqlite.getCachedFavicon('https://a.example', undefined, v ?? { dbPath }),
  ],
  ['cacheFavicon(serverUrl)', 'string', (v) => sqlite.cacheFavicon(v, null, undefined, { dbPath })],
  [
    'cacheFavicon(_, faviconUrl)',
    'string or null',
    (v) => sqlite.cacheFavicon('https://b.example', v, undefined, { dbPath }),
  ],
  ['closeDatabase(dbPath)', 'optional string', (v) => sqlite.closeDatabase(v)],
  ['inspectDatabase(dbPath)', 'optional string', (v) => sqlite.inspectDatabase(v)],
]
// Values only these reject: the scope is a choice of four words.
const SCOPE = [['store.invalidateCredentials(_, scope)', (v) => store.invalidateCredentials('probe', v)]]

/** Everything the probing user has stored, and the favicon rows the calls touch. */
function snapshot() {
  const servers = store.servers()
  return JSON.stringify({
    servers,
    rows: servers.map((s) => [
      store.clientInformation(s),
      store.tokens(s),
      store.codeVerifier(s),
      store.serverConfig(s),
    ]),
    favicons: ['https://a.example', 'https://b.example'].map(
      (u) => sqlite.getCachedFavicon(u, undefined, { dbPath }) ?? '-',
    ),
  })
}

/** Runs `call(value)`: what happened, and whether the database changed when it threw. */
function attempt(call, value) {
  const before = snapshot()
  try {
    call(value)
    return { outcome: 'ok' }
  } catch (error) {
    assert.equal(snapshot(), before, 'a call that threw changed the database')
    return { outcome: 'threw', error }
  }
}

function check(name, kind, value, { outcome, error }) {
  const label = `${name} with ${kind === 'options' && value === undefined ? 'no options' : typeof value === 'string' ? `a ${value.length > 99 ? 'huge string' : 'string with NUL'}` : String(value?.toString?.() ?? value)}`
  const expected = KINDS[kind][Object.keys(VALUES).find((k) => Object.is(VALUES[k], value))]
  if (expected === 'ok') return assert.equal(outcome, 'ok', `${label}: ${error?.message}`)
  if (expected === 'coded') {
    if (outcome === 'ok') return
    return assert.ok(CODED.has(error.code), `${label}: ${error.name} ${error.code} ${error.message}`)
  }
  assert.equal(outcome, 'threw', `${label}: accepted`)
  assert.ok(error instanceof Error, `${label}: threw a non-Error`)
  if (expected === 'type') {
    assert.equal(error.name, 'TypeError', `${label}: ${error.message}`)
    assert.equal(error.code, 'ERR_INVALID_ARG_TYPE', `${label}: ${error.message}`)
  } else {
    assert.equal(error.code, 'ERR_INVALID_ARG_VALUE', `${label}: ${error.message}`)
  }
}

before(() => {
  hoot.generateKeys(join(dir, '.hoot', 'keys'))
  store = new hoot.OAuthStore(USER, { dbPath })
  store.saveTokens('kept', { access_token: 'a', refresh_token: 'r' })
  store.saveClientInformation('kept', { client_id: 'c' })
  store.saveCodeVerifier('kept', 'v'.repeat(43))
  store.saveServerConfig('kept', { url: 'https://mcp.example' })
  sqlite.cacheFavicon('https://a.example', 'https://a.example/favicon.ico', undefined, { dbPath })
})

describe('every export and method, every wrong value', () => {
  for (const [name, kind, call] of CALLS) {
    test(name, () => {
      for (const value of Object.values(VALUES)) check(name, kind, value, attempt(call, value))
    })
  }
  test('store.invalidateCredentials(_, scope) takes only its four words', () => {
    for (const [name, call] of SCOPE) {
      for (const value of Object.values(VALUES)) {
        const { outcome, error } = attempt(call, value)
        assert.equal(outcome, 'threw', `${name} accepted ${String(value?.toString?.() ?? value).slice(0, 20)}`)
        assert.ok(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE'].includes(error.code), error.message)
      }
    }
  })
  test('what the probing stored is still there, and the process is alive to read it', () => {
    assert.deepEqual(store.tokens('kept'), { access_token: 'a', refresh_token: 'r' })
    assert.deepEqual(store.clientInformation('kept'), { client_id: 'c' })
    assert.equal(store.codeVerifier('kept'), 'v'.repeat(43))
    assert.equal(hoot.verifyToken(hoot.issueToken(USER)).valid, true)
  })
})

// Every options interface the types declare, and the calls that take it: a property the reader in
// src/binding/ forgot, or one it reads under another name, fails here, and so does an interface
// added without a call to try it on.
const OPTION_CALLS = {
  KeyOptions: [(opts) => hoot.loadKeys(opts)],
  GenerateKeyOptions: [(opts) => hoot.generateKeys(key(), opts)],
  IssueOptions: [(opts) => hoot.issueToken(USER, opts)],
  VerifyOptions: [(opts) => hoot.verifyToken('a.b.c', opts)],
  StoreOptions: [
    (opts) => new hoot.OAuthStore(USER, opts),
    (opts) => sqlite.cleanupExpiredVerifiers(opts),
    (opts) => sqlite.getCachedFavicon('https://a.example', undefined, opts),
    (opts) => sqlite.cacheFavicon('https://a.example', null, undefined, opts),
  ],
  // Read by the PostgreSQL open (no connection is made); SQLite ignores the pool options.
  DatabaseOptions: [(opts) => hoot.openDatabase('postgres://hoot@127.0.0.1:1/hoot', opts)],
  DatabaseAdapterOptions: [(opts) => createDatabaseAdapter(opts)],
}

/** `{ name: { prop: type } }` for every `export interface *Options` in the generated and the entries' types. */
function optionInterfaces() {
  const dts = ['binding.d.ts', 'index.d.ts', 'sqlite.d.ts', 'hoot.d.ts']
    .map((file) => readFileSync(join(root, 'lib', file), 'utf8'))
    .join('\n')
  const interfaces = {}
  for (const [, name, body] of dts.matchAll(/^export interface (\w+Options) \{\n([\s\S]*?)^\}/gm)) {
    interfaces[name] = Object.fromEntries(
      [...body.matchAll(/^ {2}(\w+)\?: (.+)$/gm)].map(([, prop, type]) => [prop, type]),
    )
  }
  return interfaces
}

test('every property of every options interface refuses a wrong type, naming opts.<property>', async () => {
  const interfaces = optionInterfaces()
  // OAuthProviderOptions is hand-written (lib/header.d.ts) and checked in provider.test.mjs.
  delete interfaces.OAuthProviderOptions
  assert.deepEqual(
    Object.keys(interfaces).sort(),
    Object.keys(OPTION_CALLS).sort(),
    'an options interface without calls here',
  )
  for (const [name, props] of Object.entries(interfaces)) {
    assert.ok(Object.keys(props).length > 0, `${name} declares no properties`)
    for (const [prop, type] of Object.entries(props)) {
      // A value of a type the declaration does not allow: a string where a number goes, else a number.
      const wrong = /number|\b\d+\b/.test(type) ? '42' : 42
      for (const call of OPTION_CALLS[name]) {
        for (const value of [wrong, Symbol('wrong')]) {
          const { outcome, error } = attempt(() => call({ [prop]: value }))
          assert.equal(outcome, 'threw', `${name}.${prop}: ${String(value)} accepted`)
          assert.equal(error.code, 'ERR_INVALID_ARG_TYPE', `${name}.${prop}: ${error.message}`)
          assert.match(error.message, new RegExp(`^The "opts\\.${prop}" property must be `), `${name}.${prop}`)
        }
      }
    }
  }
  await assert.rejects(hoot.issueTokenAsync(USER, { ttlSeconds: '42' }), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('issueTokenAsync rejects with exactly what issueToken throws, and never throws itself', async () => {
  for (const position of ['userId', 'opts']) {
    for (const value of Object.values(VALUES)) {
      const args = position === 'userId' ? [value] : [USER, value]
      let syncError
      try {
        hoot.issueToken(...args)
      } catch (e) {
        syncError = e
      }
      let pending
      assert.doesNotThrow(() => {
        pending = hoot.issueTokenAsync(...args)
      })
      if (syncError) {
        await assert.rejects(
          pending,
          (e) => e.name === syncError.name && e.code === syncError.code && e.message === syncError.message,
        )
      } else {
        assert.equal(hoot.verifyToken(await pending).valid, true)
      }
    }
  }
})

test('a panic inside the core becomes a JS error or a rejected promise, never an abort', () => {
  // A debug build with the test-only feature: the core panics on one reserved id.
  const cargo = process.env.CARGO || 'cargo'
  const build = spawnSync(cargo, ['build', '--features', 'test-panic', '--message-format=short'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, HOME: realHome },
  })
  assert.equal(build.status, 0, build.stderr)
  const library = { linux: 'libhoot_core.so', darwin: 'libhoot_core.dylib', win32: 'hoot_core.dll' }[process.platform]
  const addon = join(tempDir('panic'), 'hoot-core-test-panic.node')
  copyFileSync(join(root, 'target', 'debug', library), addon)
  const child = spawnSync(
    process.execPath,
    [
      '-e',
      `
    const native = require(${JSON.stringify(addon)})
    const DEAD = '00000000-0000-4000-8000-00000000dead'
    const seen = []
    const record = (where, e) => seen.push({ where, name: e.name, code: e.code, message: e.message })
    native.loadKeys({ keyDir: ${JSON.stringify(join(dir, 'panic-keys'))} })
    try { native.issueToken(DEAD); seen.push({ where: 'issueToken', returned: true }) } catch (e) { record('issueToken', e) }
    const store = new native.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(join(dir, 'panic.db'))} })
    try { native.storeTokensText(store, DEAD); seen.push({ where: 'storeTokensText', returned: true }) } catch (e) { record('storeTokensText', e) }
    native.issueTokenAsync(DEAD).then(
      () => seen.push({ where: 'issueTokenAsync', resolved: true }),
      (e) => record('issueTokenAsync', e),
    ).then(() => {
      // Still working after three panics.
      seen.push({ where: 'after', token: typeof native.issueToken(${JSON.stringify(USER)}) })
      console.log(JSON.stringify(seen))
    })`,
    ],
    { encoding: 'utf8' },
  )
  assert.equal(child.status, 0, `the process died (signal ${child.signal}):\n${child.stderr}`)
  const seen = JSON.parse(child.stdout.trim().split('\n').pop())
  for (const where of ['issueToken', 'storeTokensText', 'issueTokenAsync']) {
    const entry = seen.find((s) => s.where === where)
    assert.equal(entry.code, 'ERR_HOOT_INTERNAL', `${where}: ${JSON.stringify(entry)}`)
    assert.match(entry.message, /panic: forced by the test-panic feature/)
  }
  assert.deepEqual(seen.at(-1), { where: 'after', token: 'string' })
})

test('issueTokenAsync rejects with exactly the value an options getter throws, whatever it is', async () => {
  const errorWithThrowingCause = new Error('outer')
  Object.defineProperty(errorWithThrowingCause, 'cause', {
    get() {
      throw new Error('cause getter')
    },
  })
  const thrown = ['a string', 42, null, undefined, Symbol('thrown'), 10n, errorWithThrowingCause, { plain: 'object' }]
  for (const value of thrown) {
    const label = typeof value === 'symbol' ? 'a symbol' : String(value?.message ?? value)
    const getter = {
      get ttlSeconds() {
        throw value
      },
    }
    const trap = new Proxy(
      {},
      {
        get() {
          throw value
        },
      },
    )
    for (const opts of [getter, trap]) {
      assert.throws(
        () => hoot.issueToken(USER, opts),
        (e) => Object.is(e, value),
        `issueToken: ${label}`,
      )
      let pending
      assert.doesNotThrow(() => {
        pending = hoot.issueTokenAsync(USER, opts)
      }, `issueTokenAsync threw ${label} synchronously`)
      assert.ok(pending instanceof Promise)
      await pending.then(
        () => assert.fail(`resolved despite ${label}`),
        (e) => assert.ok(Object.is(e, value), `issueTokenAsync rejected with ${String(e)} instead of ${label}`),
      )
    }
  }
})

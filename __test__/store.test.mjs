import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { linkSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import { OAuthStore } from '../lib/index.js'
import {
  cacheFavicon,
  cleanupExpiredVerifiers,
  closeDatabase,
  getCachedFavicon,
  inspectDatabase,
} from '../lib/sqlite.js'
import { USER, entry, root, sqliteEntry, tempDir, withBetterSqlite } from './helpers.mjs'

const dbFile = (label) => join(tempDir(label), 'hoot-mcp.db')

describe('OAuthStore', () => {
  test('every method round-trips, and absent values are undefined', () => {
    const dbPath = dbFile('roundtrip')
    const store = new OAuthStore(USER, { dbPath })
    assert.equal(store.userId, USER)
    assert.throws(
      () => {
        store.userId = 'other'
      },
      TypeError,
      'userId is read-only',
    )
    for (const read of ['clientInformation', 'tokens', 'codeVerifier', 'serverConfig']) {
      assert.equal(store[read]('srv'), undefined, read)
    }
    const info = { client_id: 'abc', redirect_uris: ['http://localhost:8009/oauth/callback'] }
    const tokens = { access_token: 'at', refresh_token: 'rt', expires_in: 3600, token_type: 'Bearer' }
    const config = { url: 'https://mcp.example/sse', transport: 'sse', name: 'Example' }
    store.saveClientInformation('srv', info)
    store.saveTokens('srv', tokens)
    store.saveCodeVerifier('srv', 'pkce-verifier')
    store.saveServerConfig('cfg', config)
    assert.deepEqual(store.clientInformation('srv'), info)
    assert.deepEqual(store.tokens('srv'), tokens)
    assert.equal(store.codeVerifier('srv'), 'pkce-verifier')
    assert.deepEqual(store.serverConfig('cfg'), config)
    assert.deepEqual(store.servers(), ['cfg', 'srv'])

    // Stored as JSON.stringify would: Dates become strings, undefined members vanish.
    store.saveTokens('srv', { at: new Date(0), gone: undefined })
    assert.deepEqual(store.tokens('srv'), { at: '1970-01-01T00:00:00.000Z' })

    store.invalidateCredentials('srv', 'verifier')
    assert.equal(store.codeVerifier('srv'), undefined)
    store.saveServerConfig('srv', config)
    store.invalidateCredentials('srv', 'all')
    assert.equal(store.tokens('srv'), undefined)
    assert.equal(store.clientInformation('srv'), undefined)
    assert.deepEqual(store.serverConfig('srv'), config, 'a config is not a credential')
    store.deleteServerConfig('srv')
    assert.equal(store.serverConfig('srv'), undefined)
    store.saveTokens('a', {})
    assert.equal(store.deleteAll(), 2)
    assert.deepEqual(store.servers(), [])
  })

  test('the database file is private', () => {
    const dir = join(tempDir('private'), 'hoot')
    new OAuthStore(USER, { dbPath: join(dir, 'hoot-mcp.db') }).saveTokens('s', {})
    assert.equal(statSync(dir).mode & 0o777, 0o700)
    assert.equal(statSync(join(dir, 'hoot-mcp.db')).mode & 0o777, 0o600)
  })

  test("many users with interleaved writes never read, list or delete each other's rows", () => {
    const dbPath = dbFile('isolation')
    const users = [...Array.from({ length: 12 }, () => randomUUID()), 'default-user', 'legacy-user-1']
    const servers = Array.from({ length: 8 }, (_, i) => `server-${i}`)
    const model = new Map(users.map((u) => [u, new Map()]))
    let seed = 7
    const random = (n) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
    for (let step = 0; step < 3000; step++) {
      const user = users[random(users.length)]
      const server = servers[random(servers.length)]
      const store = new OAuthStore(user, { dbPath })
      const mine = model.get(user)
      if (random(10) < 7) {
        const value = { owner: user, step }
        store.saveTokens(server, value)
        mine.set(server, value)
      } else {
        store.invalidateCredentials(server, 'tokens')
        mine.delete(server)
      }
    }
    for (const user of users) {
      const store = new OAuthStore(user, { dbPath })
      const mine = model.get(user)
      assert.deepEqual(store.servers(), [...mine.keys()].sort(), user)
      for (const server of servers) assert.deepEqual(store.tokens(server), mine.get(server), `${user} ${server}`)
    }
    // Forgetting half the users leaves the others exactly as they were.
    for (const user of users.slice(0, 7))
      assert.equal(new OAuthStore(user, { dbPath }).deleteAll(), model.get(user).size)
    for (const user of users.slice(7)) {
      const store = new OAuthStore(user, { dbPath })
      for (const [server, value] of model.get(user)) assert.deepEqual(store.tokens(server), value)
    }
  })

  test('SQL-looking ids and values are stored literally', () => {
    const dbPath = dbFile('literal')
    const store = new OAuthStore(USER, { dbPath })
    const nasty = "x'); DELETE FROM oauth_tokens; --"
    store.saveTokens(nasty, { v: "'; DROP TABLE oauth_tokens; --" })
    store.saveTokens('other', { v: 1 })
    assert.deepEqual(store.servers(), ['other', nasty])
    assert.deepEqual(store.tokens(nasty), { v: "'; DROP TABLE oauth_tokens; --" })
  })

  test('bad input throws a coded error and writes nothing', () => {
    const dbPath = dbFile('bad')
    const store = new OAuthStore(USER, { dbPath })
    for (const id of ['bob', '', 'legacy-user-', 'legacy-user-1a', USER + ' ']) {
      assert.throws(() => new OAuthStore(id, { dbPath }), { name: 'Error', code: 'ERR_INVALID_USER_ID' })
    }
    assert.throws(() => new OAuthStore(42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"userId"/ })
    assert.throws(() => new OAuthStore(USER, { dbPath: 5 }), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
      message: /"opts.dbPath"/,
    })
    assert.throws(() => store.tokens(7), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"serverId"/ })
    assert.throws(() => store.saveTokens('', {}), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
      message: /"serverId"/,
    })
    for (const value of ['text', 42, null, [1, 2], true]) {
      assert.throws(
        () => store.saveTokens('s', value),
        { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' },
        String(value),
      )
    }
    assert.throws(() => store.saveTokens('s', undefined), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => store.saveTokens('s', { toJSON: () => 'not an object' }), { code: 'ERR_INVALID_ARG_VALUE' })
    const circular = {}
    circular.self = circular
    assert.throws(() => store.saveTokens('s', circular), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
      message: /circular/,
    })
    assert.throws(() => store.saveTokens('s', { blob: 'x'.repeat(1024 * 1024) }), {
      name: 'RangeError',
      code: 'ERR_INVALID_ARG_VALUE',
    })
    assert.throws(() => store.saveCodeVerifier('s', ''), { code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(() => store.saveCodeVerifier('s', {}), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => store.invalidateCredentials('s', 'everything'), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
    })
    assert.deepEqual(store.servers(), [], 'nothing was written')
  })

  test('a file that is not a SQLite database gives ERR_HOOT_DB', () => {
    const dbPath = dbFile('notadb')
    writeFileSync(dbPath, 'not a database\n'.repeat(200))
    assert.throws(
      () => new OAuthStore(USER, { dbPath }),
      (e) => {
        assert.equal(e.code, 'ERR_HOOT_DB')
        assert.ok(e.message.includes(dbPath) && e.message.includes('not a SQLite database'), e.message)
        return true
      },
    )
  })

  test('an in-memory database is shared within the process until closed', () => {
    const before = new OAuthStore(USER, { dbPath: ':memory:' })
    before.saveTokens('mem', { a: 1 })
    assert.deepEqual(new OAuthStore(USER, { dbPath: ':memory:' }).tokens('mem'), { a: 1 })
    closeDatabase(':memory:')
    assert.equal(new OAuthStore(USER, { dbPath: ':memory:' }).tokens('mem'), undefined)
    // A store made before the close does not keep using the closed database either.
    assert.equal(before.tokens('mem'), undefined)
  })

  test('closeDatabase: a store used afterwards opens the file again', () => {
    const dbPath = dbFile('close')
    const store = new OAuthStore(USER, { dbPath })
    store.saveTokens('s', { kept: true })
    closeDatabase(dbPath)
    assert.deepEqual(store.tokens('s'), { kept: true })
    closeDatabase()
    assert.deepEqual(store.tokens('s'), { kept: true })
  })
})

describe('shared tables', () => {
  test('favicon cache: a URL, null for "none found", undefined for nothing cached', () => {
    const opts = { dbPath: dbFile('favicon') }
    assert.equal(getCachedFavicon('https://a.example', undefined, opts), undefined)
    cacheFavicon('https://a.example', null, undefined, opts)
    assert.equal(getCachedFavicon('https://a.example', undefined, opts), null)
    cacheFavicon('https://b.example', 'https://b.example/favicon.ico', 'https://b.example/logo.png', opts)
    assert.equal(
      getCachedFavicon('https://b.example', 'https://b.example/logo.png', opts),
      'https://b.example/favicon.ico',
    )
    assert.equal(getCachedFavicon('https://b.example', 'https://other/logo.png', opts), undefined)
    assert.throws(() => cacheFavicon('https://c.example', 42, undefined, opts), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
    })
  })

  test('cleanupExpiredVerifiers removes only old verifiers', () => {
    const dbPath = dbFile('cleanup')
    new OAuthStore(USER, { dbPath }).saveCodeVerifier('fresh', 'v')
    withBetterSqlite(
      `
      const db = new Database(input.dbPath)
      db.prepare('INSERT INTO oauth_verifiers (user_id, server_id, verifier, created_at) VALUES (?, ?, ?, ?)')
        .run(input.user, 'old', 'v', Math.floor(Date.now() / 1000) - 601)
      db.close(); console.log('null')`,
      { dbPath, user: USER },
    )
    const store = new OAuthStore(USER, { dbPath })
    assert.equal(store.codeVerifier('old'), undefined, 'an old verifier is never returned')
    assert.equal(cleanupExpiredVerifiers({ dbPath }), 1)
    assert.deepEqual(store.servers(), ['fresh'])
  })
})

describe("compatibility with Hoot's own SQL (better-sqlite3, in a child process)", () => {
  test("rows written here are read by Hoot's queries", () => {
    const dbPath = dbFile('compat-out')
    const store = new OAuthStore(USER, { dbPath })
    store.saveTokens('srv', { access_token: 'x' })
    store.saveClientInformation('srv', { client_id: 'c' })
    store.saveCodeVerifier('srv', 'v')
    store.saveServerConfig('srv', { url: 'u' })
    closeDatabase(dbPath)
    const read = withBetterSqlite(
      `
      const db = new Database(input.dbPath)
      const get = (sql) => db.prepare(sql).get(input.user, 'srv')
      console.log(JSON.stringify({
        tokens: JSON.parse(get('SELECT tokens FROM oauth_tokens WHERE user_id = ? AND server_id = ?').tokens),
        info: JSON.parse(get('SELECT client_info FROM oauth_client_info WHERE user_id = ? AND server_id = ?').client_info),
        verifier: get('SELECT verifier FROM oauth_verifiers WHERE user_id = ? AND server_id = ?').verifier,
        config: JSON.parse(get('SELECT config FROM server_configs WHERE user_id = ? AND server_id = ?').config),
      }))`,
      { dbPath, user: USER },
    )
    assert.deepEqual(read, {
      tokens: { access_token: 'x' },
      info: { client_id: 'c' },
      verifier: 'v',
      config: { url: 'u' },
    })
  })

  test("rows written by Hoot's code are read here", () => {
    const dbPath = dbFile('compat-in')
    withBetterSqlite(
      `
      const db = new Database(input.dbPath)
      db.pragma('journal_mode = WAL')
      db.exec(\`CREATE TABLE IF NOT EXISTS oauth_tokens (user_id TEXT NOT NULL, server_id TEXT NOT NULL, tokens TEXT NOT NULL, PRIMARY KEY (user_id, server_id));
        CREATE TABLE IF NOT EXISTS oauth_client_info (user_id TEXT NOT NULL, server_id TEXT NOT NULL, client_info TEXT NOT NULL, PRIMARY KEY (user_id, server_id));
        CREATE TABLE IF NOT EXISTS oauth_verifiers (user_id TEXT NOT NULL, server_id TEXT NOT NULL, verifier TEXT NOT NULL, created_at INTEGER DEFAULT (strftime('%s', 'now')), PRIMARY KEY (user_id, server_id));
        CREATE TABLE IF NOT EXISTS favicon_cache (server_url TEXT PRIMARY KEY, favicon_url TEXT, oauth_logo_uri TEXT, cached_at INTEGER DEFAULT (strftime('%s', 'now')));\`)
      db.prepare('INSERT OR REPLACE INTO oauth_tokens (user_id, server_id, tokens) VALUES (?, ?, ?)').run(input.user, 'srv', JSON.stringify({ access_token: 'from-hoot' }))
      db.prepare('INSERT OR REPLACE INTO oauth_verifiers (user_id, server_id, verifier, created_at) VALUES (?, ?, ?, ?)').run(input.user, 'srv', 'hoot-v', Math.floor(Date.now() / 1000))
      db.prepare('INSERT OR REPLACE INTO favicon_cache (server_url, favicon_url, oauth_logo_uri, cached_at) VALUES (?, ?, ?, ?)').run('https://h', 'https://h/f.ico', null, Math.floor(Date.now() / 1000))
      db.pragma('wal_checkpoint(PASSIVE)')
      db.close(); console.log('null')`,
      { dbPath, user: USER },
    )
    const store = new OAuthStore(USER, { dbPath })
    assert.deepEqual(store.tokens('srv'), { access_token: 'from-hoot' })
    assert.equal(store.codeVerifier('srv'), 'hoot-v')
    assert.equal(getCachedFavicon('https://h', undefined, { dbPath }), 'https://h/f.ico')
    store.saveServerConfig('srv', { added: "server_configs, which Hoot's file lacked" })
    assert.deepEqual(store.servers(), ['srv'])
  })
})

test('four processes writing one file at once all succeed and every row is there', async () => {
  const dbPath = dbFile('concurrent')
  const rows = 150
  const writer = (user) => `
    import { OAuthStore } from ${JSON.stringify(entry)}
    const store = new OAuthStore(${JSON.stringify(user)}, { dbPath: ${JSON.stringify(dbPath)} })
    for (let i = 0; i < ${rows}; i++) {
      store.saveTokens('s' + i, { i })
      store.saveCodeVerifier('s' + i, 'v' + i)
      if (i % 10 === 0) store.servers()
    }`
  const users = Array.from({ length: 4 }, () => randomUUID())
  const results = await Promise.all(
    users.map(
      (user) =>
        new Promise((resolve) => {
          const child = spawn(process.execPath, ['--input-type=module', '-e', writer(user)], {
            stdio: ['ignore', 'ignore', 'pipe'],
          })
          let stderr = ''
          child.stderr.on('data', (d) => (stderr += d))
          child.on('close', (status) => resolve({ status, stderr }))
        }),
    ),
  )
  for (const result of results) assert.equal(result.status, 0, result.stderr)
  for (const user of users) {
    const store = new OAuthStore(user, { dbPath })
    assert.equal(store.servers().length, rows)
    assert.deepEqual(store.tokens(`s${rows - 1}`), { i: rows - 1 })
  }
})

describe('one key, one row: ids are compared as JavaScript holds them', () => {
  test('a server id, URL or logo URI with a lone surrogate is refused before anything is written', () => {
    const dbPath = dbFile('surrogates')
    const store = new OAuthStore(USER, { dbPath })
    // Both would become the same U+FFFD in UTF-8, and so one row.
    for (const serverId of ['server-\uD800', 'server-\uDBFF', '\uDC00', 'a\uD83D']) {
      for (const write of [
        () => store.saveTokens(serverId, { access_token: 'x' }),
        () => store.saveClientInformation(serverId, { client_id: 'c' }),
        () => store.saveCodeVerifier(serverId, 'v'.repeat(43)),
        () => store.saveServerConfig(serverId, { url: 'u' }),
        () => store.tokens(serverId),
        () => store.invalidateCredentials(serverId, 'all'),
      ]) {
        assert.throws(write, { code: 'ERR_INVALID_ARG_VALUE', message: /"serverId".*lone surrogate/ })
      }
      assert.throws(() => cacheFavicon(`https://${serverId}`, null, undefined, { dbPath }), {
        code: 'ERR_INVALID_ARG_VALUE',
      })
      assert.throws(() => getCachedFavicon('https://a.example', `https://${serverId}/logo`, { dbPath }), {
        code: 'ERR_INVALID_ARG_VALUE',
      })
    }
    assert.deepEqual(store.servers(), [])
    // A real U+FFFD and a surrogate pair are ordinary characters, each its own key.
    store.saveTokens('server-\uFFFD', { access_token: 'replacement' })
    store.saveTokens('server-\uD83D\uDE00', { access_token: 'pair' })
    assert.deepEqual(store.tokens('server-\uFFFD'), { access_token: 'replacement' })
    assert.deepEqual(store.tokens('server-\uD83D\uDE00'), { access_token: 'pair' })
  })

  test('a UUID in upper case is the same tenant as in lower case', () => {
    const dbPath = dbFile('case')
    const upper = new OAuthStore(USER.toUpperCase(), { dbPath })
    assert.equal(upper.userId, USER)
    upper.saveTokens('s', { access_token: 'one secret' })
    assert.deepEqual(new OAuthStore(USER, { dbPath }).tokens('s'), { access_token: 'one secret' })
    assert.equal(upper.deleteAll(), 1)
    assert.equal(new OAuthStore(USER, { dbPath }).tokens('s'), undefined, 'forgetting under one spelling forgets both')
  })
})

describe('one file, one name, the same file throughout', () => {
  test('a database with a second hard link is refused: the two names would get two WAL files', () => {
    const dbPath = dbFile('linked')
    new OAuthStore(USER, { dbPath }).saveTokens('s', { access_token: 'a' })
    closeDatabase(dbPath)
    const second = join(tempDir('linked-other'), 'hoot-mcp.db')
    linkSync(dbPath, second)
    for (const path of [dbPath, second]) {
      assert.throws(() => new OAuthStore(USER, { dbPath: path }), { code: 'ERR_HOOT_DB', message: /2 hard links/ })
    }
  })

  test('a database moved or replaced under a running store is never written through the old file', () => {
    const dbPath = dbFile('replaced')
    const store = new OAuthStore(USER, { dbPath })
    store.saveTokens('s', { access_token: 'before' })
    // Another database moved over it, as a restore from a backup would be.
    const other = join(join(dbPath, '..'), 'restored.db')
    const restored = new OAuthStore(USER, { dbPath: other })
    restored.saveTokens('s', { access_token: 'restored' })
    closeDatabase(other)
    renameSync(other, dbPath)
    assert.throws(() => store.saveTokens('s', { access_token: 'lost' }), {
      code: 'ERR_HOOT_DB',
      message: /moved, replaced or deleted/,
    })
    // The next call works on the file now at the path; the write refused above went nowhere, and
    // the old file's last commits (in the WAL at the path) were not applied to the new one.
    assert.deepEqual(store.tokens('s'), { access_token: 'restored' })
    store.saveTokens('s', { access_token: 'after' })
    closeDatabase(dbPath)
    assert.deepEqual(new OAuthStore(USER, { dbPath }).tokens('s'), { access_token: 'after' })
  })

  test('a database moved aside keeps its last commits, and the path opens clean', () => {
    const dbPath = dbFile('moved-aside')
    const aside = join(tempDir('aside'), 'hoot-mcp.db')
    const store = new OAuthStore(USER, { dbPath })
    store.saveTokens('s', { access_token: 'last commit' })
    renameSync(dbPath, aside) // its -wal stays behind at the old path
    assert.throws(() => store.saveTokens('s', { access_token: 'x' }), { code: 'ERR_HOOT_DB' })
    assert.equal(store.tokens('s'), undefined, 'a new, empty database at the path, not the old WAL')
    assert.deepEqual(
      withBetterSqlite(
        `const db = new Database(input.aside, { readonly: true }); console.log(db.prepare('SELECT tokens FROM oauth_tokens').get().tokens)`,
        { aside },
      ),
      { access_token: 'last commit' },
    )
  })

  test('a FIFO at the database path is refused at once by the store, inspectDatabase and doctor', () => {
    const fifo = dbFile('fifo')
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0)
    const child = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import * as hoot from ${JSON.stringify(entry)}
        import * as sqlite from ${JSON.stringify(sqliteEntry)}
        const codes = []
        for (const call of [() => new hoot.OAuthStore(${JSON.stringify(USER)}, { dbPath: ${JSON.stringify(fifo)} }), () => sqlite.inspectDatabase(${JSON.stringify(fifo)})]) {
          try { call(); codes.push('ok') } catch (e) { codes.push(e.code + ' ' + /not a regular file/.test(e.message)) }
        }
        console.log(JSON.stringify(codes))`,
      ],
      { encoding: 'utf8', timeout: 10_000 },
    )
    assert.equal(child.status, 0, `blocked or failed: ${child.signal} ${child.stderr}`)
    assert.deepEqual(JSON.parse(child.stdout.trim()), ['ERR_HOOT_DB true', 'ERR_HOOT_DB true'])
    const doctor = spawnSync(process.execPath, [join(root, 'bin', 'hoot-core.js'), 'doctor', '--db', fifo], {
      encoding: 'utf8',
      timeout: 10_000,
      env: { ...process.env, HOME: tempDir('fifo-home') },
    })
    assert.equal(doctor.status, 1, doctor.stdout)
    assert.match(doctor.stdout, /not a regular file/)
  })

  test('inspectDatabase creates nothing next to a WAL database', () => {
    const dbPath = dbFile('inspect-wal')
    new OAuthStore(USER, { dbPath }).saveTokens('s', { access_token: 'a' })
    closeDatabase(dbPath)
    const dir = join(dbPath, '..')
    const before = readdirSync(dir).sort()
    assert.deepEqual(before, ['hoot-mcp.db'], 'closing checkpointed and removed -wal and -shm')
    const status = inspectDatabase(dbPath)
    assert.equal(status.upToDate, true)
    assert.deepEqual(readdirSync(dir).sort(), before)
  })
})

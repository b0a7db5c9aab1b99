// openDatabase(location?, opts?): one way to reach the store on either backend. A `postgres://`
// URL (the argument, else $HOOT_DATABASE_URL) opens PostgreSQL, shared by several Hoot servers; a
// path, or nothing, keeps SQLite ($HOOT_DB_PATH, else ~/.hoot/hoot-mcp.db). Either way
// `db.store(userId)` is a user-bound store with OAuthStore's methods, each returning a promise,
// so code written against it runs on both unchanged.
//
// SQLite's calls are OAuthStore's synchronous ones (fast enough not to matter on the event loop);
// PostgreSQL's run on napi's tokio runtime (lib/../src/binding/pg.rs), never on the event loop.
// Both reject, never throw: a bad argument rejects with the same coded error OAuthStore throws.
'use strict'

const binding = require('./native.js')
const { OAuthStore, parseStored } = require('./store.js')
const { loadLocalKeys } = require('./verify.js')
const { typeError } = require('./errors.js')

const isPostgresUrl = (value) => typeof value === 'string' && /^postgres(ql)?:\/\//i.test(value)

/** Calls `f`, turning a synchronous throw into a rejection. */
function later(f) {
  try {
    return Promise.resolve(f())
  } catch (error) {
    return Promise.reject(error)
  }
}

const orUndefined = (value) => (value === null ? undefined : value)

// The native store behind each PostgresUserStore, for the methods defined outside its class.
const NATIVE = new WeakMap()

/** The store of one user on PostgreSQL: the native store's promises, with JSON parsed here. */
class PostgresUserStore {
  #native
  constructor(native) {
    this.#native = native
    NATIVE.set(this, native)
  }
  get userId() {
    return this.#native.userId
  }
  clientInformation(serverId) {
    return later(() => this.#native.clientInformationText(serverId)).then((text) =>
      parseStored(text, 'client information'),
    )
  }
  saveClientInformation(serverId, info) {
    return later(() => this.#native.saveClientInformation(serverId, info))
  }
  tokens(serverId) {
    return later(() => this.#native.tokensText(serverId)).then((text) => parseStored(text, 'tokens'))
  }
  saveTokens(serverId, tokens) {
    return later(() => this.#native.saveTokens(serverId, tokens))
  }
  codeVerifier(serverId) {
    return later(() => this.#native.codeVerifier(serverId)).then(orUndefined)
  }
  saveCodeVerifier(serverId, verifier) {
    return later(() => this.#native.saveCodeVerifier(serverId, verifier))
  }
  discoveryState(serverId) {
    return later(() => this.#native.discoveryStateText(serverId)).then((text) => parseStored(text, 'discovery state'))
  }
  saveDiscoveryState(serverId, state) {
    return later(() => this.#native.saveDiscoveryState(serverId, state))
  }
  saveAuthorizationState(serverId, state) {
    return later(() => this.#native.saveAuthorizationState(serverId, state))
  }
  consumeAuthorizationState(serverId, state) {
    return later(() => this.#native.consumeAuthorizationState(serverId, state))
  }
  invalidateCredentials(serverId, scope) {
    return later(() => this.#native.invalidateCredentials(serverId, scope))
  }
  serverConfig(serverId) {
    return later(() => this.#native.serverConfigText(serverId)).then((text) => parseStored(text, 'server config'))
  }
  saveServerConfig(serverId, config) {
    return later(() => this.#native.saveServerConfig(serverId, config))
  }
  deleteServerConfig(serverId) {
    return later(() => this.#native.deleteServerConfig(serverId))
  }
  servers() {
    return later(() => this.#native.servers())
  }
  touch() {
    return later(() => this.#native.touch())
  }
  deleteAll(opts) {
    return later(() => this.#native.deleteAll(opts))
  }
}
for (const name of ['createTransferCode', 'linkAccount', 'unlinkAccount']) {
  Object.defineProperty(PostgresUserStore.prototype, name, {
    value: {
      [name](...args) {
        return later(() => NATIVE.get(this)[name](...args))
      },
    }[name],
    writable: true,
    configurable: true,
  })
}

/** The same methods over a synchronous OAuthStore (kept in STORES, out of reach of callers). */
const STORES = new WeakMap()
class SqliteUserStore {
  constructor(store) {
    STORES.set(this, store)
  }
  get userId() {
    return STORES.get(this).userId
  }
}
for (const name of [
  'clientInformation',
  'saveClientInformation',
  'tokens',
  'saveTokens',
  'codeVerifier',
  'saveCodeVerifier',
  'discoveryState',
  'saveDiscoveryState',
  'saveAuthorizationState',
  'consumeAuthorizationState',
  'invalidateCredentials',
  'serverConfig',
  'saveServerConfig',
  'deleteServerConfig',
  'servers',
  'touch',
  'deleteAll',
  'createTransferCode',
  'linkAccount',
  'unlinkAccount',
]) {
  Object.defineProperty(SqliteUserStore.prototype, name, {
    value: {
      [name](...args) {
        return later(() => STORES.get(this)[name](...args))
      },
    }[name],
    writable: true,
    configurable: true,
  })
}

class SqliteDatabase {
  #dbPath
  #options
  constructor(dbPath, opts) {
    this.#dbPath = dbPath
    this.#options = dbPath === undefined ? {} : { dbPath }
    if (opts.encryption !== undefined) this.#options.encryption = opts.encryption
  }
  get kind() {
    return 'sqlite'
  }
  store(userId) {
    return new SqliteUserStore(new OAuthStore(userId, this.#options))
  }
  ready() {
    return later(() => {
      const report = binding.migrateDatabase(this.#dbPath)
      new OAuthStore('default-user', this.#options)
      return {
        kind: 'sqlite',
        database: binding.inspectDatabase(this.#dbPath).path,
        schemaVersion: report.schemaVersion,
      }
    })
  }
  /** Opens the file first, so its revocations are known before the first token is verified. */
  loadKeys(opts) {
    return later(() => {
      new OAuthStore('default-user', this.#options)
      return loadLocalKeys(opts)
    })
  }
  revokeUserTokens(userId) {
    return later(() => binding.revokeUserTokens(userId, this.#pathOnly()))
  }
  redeemTransferCode(code, opts) {
    return later(() => binding.redeemTransferCode(code, { ...opts, ...this.#pathOnly() }))
  }
  userIdForAccount(accountId) {
    return later(() => binding.userIdForAccount(accountId, this.#pathOnly()))
  }
  cleanupExpiredVerifiers(opts) {
    return later(() => binding.cleanupExpiredVerifiers({ ...opts, ...this.#pathOnly() }))
  }
  cachedFavicon(serverUrl, oauthLogoUri) {
    return later(() => binding.getCachedFavicon(serverUrl, oauthLogoUri, this.#pathOnly()))
  }
  cacheFavicon(serverUrl, faviconUrl, oauthLogoUri) {
    return later(() => binding.cacheFavicon(serverUrl, faviconUrl, oauthLogoUri, this.#pathOnly()))
  }
  close() {
    return later(() => binding.closeDatabase(this.#dbPath))
  }
  #pathOnly() {
    return this.#dbPath === undefined ? {} : { dbPath: this.#dbPath }
  }
}

class PostgresDatabase {
  #native
  constructor(url, opts) {
    this.#native = binding.postgresOpen(url, opts)
  }
  get kind() {
    return 'postgres'
  }
  store(userId) {
    return new PostgresUserStore(this.#native.store(userId))
  }
  ready() {
    return later(() => this.#native.ready()).then((status) => ({ kind: 'postgres', ...status }))
  }
  /** The key set every replica shares, made by the first to ask; kept current by polling. */
  loadKeys() {
    return later(() => this.#native.loadKeys())
  }
  rotateKeys(opts) {
    return later(() => this.#native.rotateKeys(opts))
  }
  copyFromSqlite(path, opts) {
    return later(() => this.#native.copyFromSqlite(path, opts))
  }
  revokeUserTokens(userId) {
    return later(() => this.#native.revokeUserTokens(userId))
  }
  /** `opts.intoUserId` is accepted and unused: legacy users' codes are SQLite's (adopt-legacy). */
  redeemTransferCode(code, opts) {
    return later(() => this.#native.redeemTransferCode(code, opts)).then(({ userId }) => ({ userId }))
  }
  userIdForAccount(accountId) {
    return later(() => this.#native.userIdForAccount(accountId)).then(orUndefined)
  }
  cleanupExpiredVerifiers(opts) {
    return later(() => this.#native.cleanupExpiredVerifiers(opts))
  }
  cachedFavicon(serverUrl, oauthLogoUri) {
    return later(() => this.#native.cachedFavicon(serverUrl, oauthLogoUri))
  }
  cacheFavicon(serverUrl, faviconUrl, oauthLogoUri) {
    return later(() => this.#native.cacheFavicon(serverUrl, faviconUrl ?? null, oauthLogoUri))
  }
  close() {
    return later(() => {
      this.#native.close()
    })
  }
}

/**
 * The database `location` names: a `postgres://` URL, a SQLite path, or (undefined)
 * `$HOOT_DATABASE_URL`, else SQLite's default. `opts`: `encryption: 'on' | 'off'` on both;
 * PostgreSQL's pool options `poolSize` (10), `connectTimeoutMs` (5000), `statementTimeoutMs`
 * (10000), `pollIntervalMs` (1000). Nothing connects until the first call (or `ready()`).
 */
function openDatabase(location, opts) {
  if (location !== undefined && location !== null && typeof location !== 'string') {
    throw typeError('location', 'of type string', location)
  }
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw typeError('opts', 'of type object', opts)
  const chosen = location ?? (process.env.HOOT_DATABASE_URL || undefined)
  if (isPostgresUrl(chosen)) return new PostgresDatabase(chosen, opts)
  return new SqliteDatabase(chosen, opts ?? {})
}

module.exports = { openDatabase, isPostgresUrl, PostgresDatabase, SqliteDatabase }

// openDatabase(location?, opts?): one `Database` class and one `UserStore` class for both backends.
// A `postgres://` URL (the argument, else $HOOT_DATABASE_URL) opens PostgreSQL, shared by several
// Hoot servers; a path, or nothing, keeps SQLite ($HOOT_DB_PATH, else ~/.hoot/hoot-mcp.db).
//
// Each Database holds a backend handle, and each UserStore a user handle, with the same method
// names on both backends: on PostgreSQL the native objects of src/binding/pg.rs (whose calls run
// on napi's tokio runtime, never on the event loop, and return promises); on SQLite the small
// classes below over the synchronous functions of the addon (fast enough not to matter on the
// event loop), which return values. The classes here turn either into a promise, and parse the
// stored JSON text with V8's JSON.parse. Every method rejects, never throws, with the coded error
// the synchronous API would throw; only `store(userId)`, which returns a store, throws.
'use strict'

const binding = require('./native.js')
const { OAuthStore, parseStored, parseVersioned } = require('./store.js')
const { loadLocalKeys } = require('./verify.js')
const { typeError, valueError, unusable } = require('./errors.js')
const { CREDENTIAL_KEY } = require('./store-of.js')

const isPostgresUrl = (value) => typeof value === 'string' && /^postgres(ql)?:\/\//i.test(value)

/** Calls `f`, turning a synchronous throw into a rejection. */
function later(f) {
  try {
    return Promise.resolve(f())
  } catch (error) {
    return Promise.reject(error)
  }
}

/**
 * `later(f)` of a reader, its text passed through `parse(text, what)`: on PostgreSQL once the
 * native promise settles, on SQLite at once (the read is synchronous there, so its promise need
 * not wait a second turn for a `.then`).
 */
function laterParsed(f, parse, what) {
  try {
    const text = f()
    if (text instanceof Promise) return text.then((t) => parse(t, what))
    return Promise.resolve(parse(text, what))
  } catch (error) {
    return Promise.reject(error)
  }
}

const orUndefined = (value) => (value === null ? undefined : value)
const nothing = () => undefined

/** One user's store on either backend: OAuthStore's methods, each returning a promise. */
class UserStore {
  #user
  #key
  constructor(user, databaseId) {
    this.#user = user
    this.#key = `${databaseId}\0${user.userId}`
  }
  get userId() {
    return this.#user.userId
  }
  /** This database's and user's: the stores of one user share their refresh in this process. */
  get [CREDENTIAL_KEY]() {
    return this.#key
  }
  clientInformation(serverId) {
    return laterParsed(() => this.#user.clientInformationText(serverId), parseStored, 'client information')
  }
  saveClientInformation(serverId, info) {
    return later(() => this.#user.saveClientInformation(serverId, info))
  }
  tokens(serverId) {
    return laterParsed(() => this.#user.tokensText(serverId), parseStored, 'tokens')
  }
  saveTokens(serverId, tokens) {
    return later(() => this.#user.saveTokens(serverId, tokens))
  }
  codeVerifier(serverId) {
    return later(() => this.#user.codeVerifier(serverId)).then(orUndefined)
  }
  saveCodeVerifier(serverId, verifier) {
    return later(() => this.#user.saveCodeVerifier(serverId, verifier))
  }
  discoveryState(serverId) {
    return laterParsed(() => this.#user.discoveryStateText(serverId), parseStored, 'discovery state')
  }
  saveDiscoveryState(serverId, state) {
    return later(() => this.#user.saveDiscoveryState(serverId, state))
  }
  saveAuthorizationState(serverId, state) {
    return later(() => this.#user.saveAuthorizationState(serverId, state))
  }
  consumeAuthorizationState(serverId, state) {
    return later(() => this.#user.consumeAuthorizationState(serverId, state))
  }
  /** `{ value, version }` of the stored tokens, or undefined: the version is what `invalidateCredentials` compares. */
  tokensVersioned(serverId) {
    return laterParsed(() => this.#user.tokensVersioned(serverId), parseVersioned, 'tokens')
  }
  /** `{ value, version }` of the stored client registration, or undefined. */
  clientInformationVersioned(serverId) {
    return laterParsed(() => this.#user.clientInformationVersioned(serverId), parseVersioned, 'client information')
  }
  /** With `expected` (`{ tokens?, clientInformation? }`, versions read before), those go only if unchanged. */
  invalidateCredentials(serverId, scope, expected) {
    return later(() => this.#user.invalidateCredentials(serverId, scope, expected))
  }
  /** Whether `holder` now has the refresh of this credential for `opts.leaseMs` (no other live claim). */
  claimRefresh(serverId, holder, opts) {
    return later(() => this.#user.claimRefresh(serverId, holder, opts))
  }
  releaseRefresh(serverId, holder) {
    return later(() => this.#user.releaseRefresh(serverId, holder))
  }
  serverConfig(serverId) {
    return laterParsed(() => this.#user.serverConfigText(serverId), parseStored, 'server config')
  }
  saveServerConfig(serverId, config) {
    return later(() => this.#user.saveServerConfig(serverId, config))
  }
  deleteServerConfig(serverId) {
    return later(() => this.#user.deleteServerConfig(serverId))
  }
  servers() {
    return later(() => this.#user.servers())
  }
  /**
   * Every server config this user has, `[{ serverId, config }]` sorted by id: what moves with
   * the user to another browser (Hoot's UI keeps its server list in the browser).
   */
  async serverConfigs() {
    const configs = []
    for (const serverId of await this.servers()) {
      const config = await this.serverConfig(serverId)
      if (config !== undefined) configs.push({ serverId, config })
    }
    return configs
  }
  touch() {
    return later(() => this.#user.touch())
  }
  deleteAll(opts) {
    return later(() => this.#user.deleteAll(opts))
  }
  createTransferCode(opts) {
    return later(() => this.#user.createTransferCode(opts))
  }
  linkAccount(accountId) {
    return later(() => this.#user.linkAccount(accountId))
  }
  unlinkAccount(accountId) {
    return later(() => this.#user.unlinkAccount(accountId))
  }
}

/** Each Database's backend, for the modules of this package that act on it synchronously. */
const BACKENDS = new WeakMap()

/** Numbers each Database of this process, for its stores' CREDENTIAL_KEY. */
let databases = 0

/** A database on either backend: the same methods, each returning a promise. */
class Database {
  #kind
  #backend
  #id = ++databases
  constructor(kind, backend) {
    this.#kind = kind
    this.#backend = backend
    BACKENDS.set(this, backend)
  }
  get kind() {
    return this.#kind
  }
  /** Throws ERR_INVALID_USER_ID for an id a store refuses. */
  store(userId) {
    return new UserStore(this.#backend.store(userId), this.#id)
  }
  ready() {
    return later(() => this.#backend.ready()).then(({ database, schemaVersion, encrypted }) => ({
      kind: this.#kind,
      database,
      schemaVersion,
      encrypted,
    }))
  }
  /**
   * SQLite: loadKeys(opts) after opening the file; PostgreSQL: the key set every replica shares,
   * which takes no options (a key given here would be this replica's alone).
   */
  loadKeys(opts) {
    return later(() => {
      if (this.#kind === 'postgres' && opts !== undefined) {
        if (opts === null || typeof opts !== 'object') throw typeError('opts', 'of type object', opts)
        if (Object.keys(opts).length > 0) {
          throw valueError(
            'opts',
            'is not taken on PostgreSQL: the key set is the one every replica shares in the database (rotateKeys() replaces it)',
          )
        }
      }
      return this.#backend.loadKeys(opts)
    })
  }
  rotateKeys(opts) {
    return later(() => this.#backend.rotateKeys(opts))
  }
  revokeUserTokens(userId) {
    return later(() => this.#backend.revokeUserTokens(userId)).then(nothing)
  }
  redeemTransferCode(code, opts) {
    return later(() => this.#backend.redeemTransferCode(code, opts)).then(({ userId, moved }) =>
      moved === undefined || moved === null ? { userId } : { userId, moved },
    )
  }
  /** null when the database holds no legacy data, as legacyTransferCode() of hoot-core/sqlite. */
  legacyTransferCode(opts) {
    return later(() => this.#backend.legacyTransferCode(opts)).then((made) => made ?? null)
  }
  userIdForAccount(accountId) {
    return later(() => this.#backend.userIdForAccount(accountId)).then(orUndefined)
  }
  moveUserData(fromUserId, toUserId, opts) {
    return later(() => this.#backend.moveUserData(fromUserId, toUserId, opts))
  }
  activitySummary() {
    return later(() => this.#backend.activitySummary())
  }
  purgeInactiveUsers(opts) {
    return later(() => this.#backend.purgeInactiveUsers(opts))
  }
  cleanupExpiredVerifiers(opts) {
    return later(() => this.#backend.cleanupExpiredVerifiers(opts))
  }
  cachedFavicon(serverUrl, oauthLogoUri) {
    return later(() => this.#backend.cachedFavicon(serverUrl, oauthLogoUri))
  }
  cacheFavicon(serverUrl, faviconUrl, oauthLogoUri) {
    return later(() => this.#backend.cacheFavicon(serverUrl, faviconUrl ?? null, oauthLogoUri))
  }
  inspect() {
    return later(() => this.#backend.inspect())
  }
  encrypt(opts) {
    return later(() => this.#backend.encrypt(opts))
  }
  decrypt() {
    return later(() => this.#backend.decrypt())
  }
  copyFromSqlite(path, opts) {
    return later(() => this.#backend.copyFromSqlite(path, opts))
  }
  close() {
    return later(() => this.#backend.close()).then(nothing)
  }
}

/** A user's SQLite store with the native PostgreSQL store's method names (JSON read as text). */
class SqliteUser {
  #store
  constructor(store) {
    this.#store = store
  }
  get userId() {
    return this.#store.userId
  }
  clientInformationText(serverId) {
    return binding.storeClientInformationText(this.#store, serverId)
  }
  saveClientInformation(serverId, info) {
    return this.#store.saveClientInformation(serverId, info)
  }
  tokensText(serverId) {
    return binding.storeTokensText(this.#store, serverId)
  }
  saveTokens(serverId, tokens) {
    return this.#store.saveTokens(serverId, tokens)
  }
  codeVerifier(serverId) {
    return this.#store.codeVerifier(serverId)
  }
  saveCodeVerifier(serverId, verifier) {
    return this.#store.saveCodeVerifier(serverId, verifier)
  }
  discoveryStateText(serverId) {
    return binding.storeDiscoveryStateText(this.#store, serverId)
  }
  saveDiscoveryState(serverId, state) {
    return this.#store.saveDiscoveryState(serverId, state)
  }
  saveAuthorizationState(serverId, state) {
    return this.#store.saveAuthorizationState(serverId, state)
  }
  consumeAuthorizationState(serverId, state) {
    return this.#store.consumeAuthorizationState(serverId, state)
  }
  tokensVersioned(serverId) {
    return binding.storeTokensVersioned(this.#store, serverId)
  }
  clientInformationVersioned(serverId) {
    return binding.storeClientInformationVersioned(this.#store, serverId)
  }
  invalidateCredentials(serverId, scope, expected) {
    return this.#store.invalidateCredentials(serverId, scope, expected)
  }
  claimRefresh(serverId, holder, opts) {
    return this.#store.claimRefresh(serverId, holder, opts)
  }
  releaseRefresh(serverId, holder) {
    return this.#store.releaseRefresh(serverId, holder)
  }
  serverConfigText(serverId) {
    return binding.storeServerConfigText(this.#store, serverId)
  }
  saveServerConfig(serverId, config) {
    return this.#store.saveServerConfig(serverId, config)
  }
  deleteServerConfig(serverId) {
    return this.#store.deleteServerConfig(serverId)
  }
  servers() {
    return this.#store.servers()
  }
  touch() {
    return this.#store.touch()
  }
  deleteAll(opts) {
    return this.#store.deleteAll(opts)
  }
  createTransferCode(opts) {
    return this.#store.createTransferCode(opts)
  }
  linkAccount(accountId) {
    return this.#store.linkAccount(accountId)
  }
  unlinkAccount(accountId) {
    return this.#store.unlinkAccount(accountId)
  }
}

/**
 * A SQLite database with the native PostgreSQL database's method names, over the synchronous
 * functions of the addon (hoot-core/sqlite's), each given this database's path.
 */
class SqliteBackend {
  #dbPath
  #storeOptions
  constructor(dbPath, encryption) {
    this.#dbPath = dbPath
    this.#storeOptions = { dbPath }
    if (encryption !== undefined) this.#storeOptions.encryption = encryption
  }
  /** `{ dbPath }` for the functions that take it in their options: this database's, whatever `opts` says. */
  #withPath(opts) {
    // Anything but an object goes on unchanged, for the native call to refuse by its own name.
    if (opts === undefined) return { dbPath: this.#dbPath }
    if (opts === null || typeof opts !== 'object') return opts
    return { ...opts, dbPath: this.#dbPath }
  }
  store(userId) {
    return new SqliteUser(new OAuthStore(userId, this.#storeOptions))
  }
  /**
   * Opens (and if need be migrates) the file now, as a store would, and removes old verifiers, as
   * `new SQLiteAdapter` does at start-up: its revocations are then known before the first token
   * is verified, and a bad path is reported at once (createDatabaseAdapter).
   */
  openNow() {
    binding.migrateDatabase(this.#dbPath)
    new OAuthStore('default-user', this.#storeOptions)
    binding.cleanupExpiredVerifiers({ dbPath: this.#dbPath })
  }
  ready() {
    const report = binding.migrateDatabase(this.#dbPath)
    // Opened as a store opens it, so `encryption: 'on'` takes effect now.
    new OAuthStore('default-user', this.#storeOptions)
    const status = binding.inspectDatabase(this.#dbPath)
    return {
      database: status.path,
      schemaVersion: report.schemaVersion,
      encrypted: status.encryption !== undefined && status.encryption.encrypted,
    }
  }
  /** Opens the file first, so its revocations are known before the first token is verified. */
  loadKeys(opts) {
    new OAuthStore('default-user', this.#storeOptions)
    return loadLocalKeys(opts)
  }
  rotateKeys() {
    throw unusable(
      'rotateKeys() rotates the key set several servers share in PostgreSQL; on SQLite the keys are files: make a new pair with `npx hoot-core keygen <dir>`, add its public key to the JWKS the servers read (the old one keeps verifying), point JWT_PRIVATE_KEY_PATH at the new private key, and call loadKeys()',
    )
  }
  revokeUserTokens(userId) {
    return binding.revokeUserTokens(userId, { dbPath: this.#dbPath })
  }
  redeemTransferCode(code, opts) {
    return binding.redeemTransferCode(code, this.#withPath(opts))
  }
  legacyTransferCode(opts) {
    return binding.legacyTransferCode(this.#withPath(opts))
  }
  userIdForAccount(accountId) {
    return binding.userIdForAccount(accountId, { dbPath: this.#dbPath })
  }
  moveUserData(fromUserId, toUserId, opts) {
    return binding.moveUserData(fromUserId, toUserId, this.#withPath(opts))
  }
  activitySummary() {
    return binding.activitySummary({ dbPath: this.#dbPath })
  }
  purgeInactiveUsers(opts) {
    return binding.purgeInactiveUsers(this.#withPath(opts))
  }
  cleanupExpiredVerifiers(opts) {
    return binding.cleanupExpiredVerifiers(this.#withPath(opts))
  }
  cachedFavicon(serverUrl, oauthLogoUri) {
    return binding.getCachedFavicon(serverUrl, oauthLogoUri, { dbPath: this.#dbPath })
  }
  cacheFavicon(serverUrl, faviconUrl, oauthLogoUri) {
    return binding.cacheFavicon(serverUrl, faviconUrl, oauthLogoUri, { dbPath: this.#dbPath })
  }
  inspect() {
    return binding.inspectDatabase(this.#dbPath)
  }
  encrypt(opts) {
    return binding.encryptDatabase(this.#withPath(opts))
  }
  decrypt() {
    return binding.decryptDatabase({ dbPath: this.#dbPath })
  }
  copyFromSqlite() {
    throw unusable(
      'copyFromSqlite() copies a SQLite file into PostgreSQL, and this database is SQLite: open the postgres:// URL to copy into',
    )
  }
  /** Closes this file only (closeDatabase() without a path would close every database of the process). */
  close() {
    return binding.closeDatabase(this.#dbPath ?? binding.inspectDatabase(undefined).path)
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
  // Checked here for both backends, so a bad value fails at once rather than at the first store().
  const encryption = opts === undefined ? undefined : opts.encryption
  if (encryption !== undefined && encryption !== 'on' && encryption !== 'off') {
    if (typeof encryption !== 'string') throw typeError('opts.encryption', 'of type string', encryption)
    throw valueError('opts.encryption', "must be 'on' or 'off'")
  }
  const chosen = location ?? (process.env.HOOT_DATABASE_URL || undefined)
  if (isPostgresUrl(chosen)) return new Database('postgres', binding.postgresOpen(chosen, opts))
  return new Database('sqlite', new SqliteBackend(chosen, opts === undefined ? undefined : opts.encryption))
}

/** Opens a SQLite Database's file now (see SqliteBackend.openNow); a PostgreSQL one connects on its first call. */
function openNow(db) {
  const backend = BACKENDS.get(db)
  if (backend instanceof SqliteBackend) backend.openNow()
}

module.exports = { Database, openDatabase, openNow, isPostgresUrl }

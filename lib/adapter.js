// createDatabaseAdapter: Hoot's DatabaseAdapter (server/adapters/database.js) on hoot-core's
// store (SQLite or PostgreSQL), a drop-in for its SQLiteAdapter. Every method is async and takes the user id per call,
// as Hoot's do; each call goes through a store bound to that user (so the id is checked, and no
// call can reach another user's rows), and returns null where Hoot's adapter returns null.
'use strict'

const binding = require('./native.js')
const { OAuthStore } = require('./store.js')
const { STORE_OF } = require('./store-of.js')
const { Database, openDatabase, openNow, isPostgresUrl } = require('./database.js')
const { typeError } = require('./errors.js')

const orNull = (value) => (value === undefined ? null : value)

/**
 * A Hoot DatabaseAdapter over `source`: a Database from openDatabase() (either backend), or options.
 * On SQLite: the database at `opts.dbPath` (default: `$HOOT_DB_PATH`, else `~/.hoot/hoot-mcp.db`),
 * which is opened, and migrated from Hoot's schema if need be, here. On PostgreSQL:
 * `opts.database` (a postgres:// URL or an openDatabase() result), or `$HOOT_DATABASE_URL` when it
 * is one and no `dbPath` is given; it connects on the first call.
 */
function createDatabaseAdapter(source) {
  if (source instanceof Database) {
    // On SQLite, opened now as the options form opens it: a bad path fails here, and the file's
    // revocations are known before the server verifies its first token.
    openNow(source)
    return adapterOver((userId) => source.store(userId), source)
  }
  const opts = source
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) {
    throw typeError('db', 'a database from openDatabase() or an object of options', opts)
  }
  const dbPath = opts === undefined ? undefined : opts.dbPath
  if (dbPath !== undefined && typeof dbPath !== 'string') throw typeError('opts.dbPath', 'of type string', dbPath)
  // encryption: 'on' turns encryption at rest on for the database, as a store can.
  const encryption = opts === undefined ? undefined : opts.encryption
  const database = opts === undefined ? undefined : opts.database
  if (database !== undefined || (dbPath === undefined && isPostgresUrl(process.env.HOOT_DATABASE_URL))) {
    if (database !== undefined && typeof database !== 'string' && !(database instanceof Database)) {
      throw typeError('opts.database', 'a postgres:// URL or a database from openDatabase()', database)
    }
    const db =
      database instanceof Database
        ? database
        : openDatabase(database ?? process.env.HOOT_DATABASE_URL, encryption === undefined ? undefined : { encryption })
    return adapterOver((userId) => db.store(userId), db)
  }
  const options = dbPath === undefined ? {} : { dbPath }
  if (encryption !== undefined) new OAuthStore('default-user', { ...options, encryption })
  // Opened (and migrated) now, so a bad path or an unusable file is reported at start-up, and old
  // verifiers removed, as `new SQLiteAdapter` does.
  binding.migrateDatabase(dbPath)
  binding.cleanupExpiredVerifiers(options)
  // The file this adapter uses, so close() closes it and no other database of the process.
  const path = binding.inspectDatabase(dbPath).path
  const shared = {
    cleanupExpiredVerifiers: () => binding.cleanupExpiredVerifiers(options),
    cacheFavicon: (url, found, logo) => binding.cacheFavicon(url, found, logo, options),
    cachedFavicon: (url, logo) => binding.getCachedFavicon(url, logo, options),
    close: () => binding.closeDatabase(path),
  }
  return adapterOver((userId) => new OAuthStore(userId, options), shared)
}

/**
 * The adapter's methods over `storeOf(userId)` (an OAuthStore, or a store of openDatabase(), whose
 * methods return promises: both are awaited) and `shared`, what is not per user.
 */
function adapterOver(storeOf, shared) {
  const adapter = {
    async saveOAuthTokens(userId, serverId, tokens) {
      await storeOf(userId).saveTokens(serverId, tokens)
    },
    async getOAuthTokens(userId, serverId) {
      return orNull(await storeOf(userId).tokens(serverId))
    },
    async saveOAuthClientInfo(userId, serverId, clientInfo) {
      await storeOf(userId).saveClientInformation(serverId, clientInfo)
    },
    async getOAuthClientInfo(userId, serverId) {
      return orNull(await storeOf(userId).clientInformation(serverId))
    },
    async saveVerifier(userId, serverId, verifier) {
      await storeOf(userId).saveCodeVerifier(serverId, verifier)
    },
    /** The verifier, or null when none is saved or it is older than 10 minutes (Hoot's expiry). */
    async getVerifier(userId, serverId) {
      return orNull(await storeOf(userId).codeVerifier(serverId))
    },
    async deleteVerifier(userId, serverId) {
      await storeOf(userId).invalidateCredentials(serverId, 'verifier')
    },
    /** Deletes every user's verifiers older than 10 minutes. */
    async cleanupOldVerifiers() {
      await shared.cleanupExpiredVerifiers()
    },
    /** `scope`: 'all' (the default), 'client', 'tokens', 'verifier' or 'discovery', as the SDK sends them. */
    async clearOAuthCredentials(userId, serverId, scope = 'all') {
      await storeOf(userId).invalidateCredentials(serverId, scope)
    },
    async saveServerConfig(userId, serverId, config) {
      await storeOf(userId).saveServerConfig(serverId, config)
    },
    async getServerConfig(userId, serverId) {
      return orNull(await storeOf(userId).serverConfig(serverId))
    },
    async deleteServerConfig(userId, serverId) {
      await storeOf(userId).deleteServerConfig(serverId)
    },
    /** `faviconUrl` null or undefined: none found (cached too, so it is not fetched again). */
    async saveFaviconCache(serverUrl, faviconUrl, oauthLogoUri = null) {
      const found = faviconUrl === undefined ? null : faviconUrl
      await shared.cacheFavicon(serverUrl, found, oauthLogoUri === null ? undefined : oauthLogoUri)
    },
    /** The cached favicon URL, or null (none cached, older than a day, or cached as not found), as Hoot's. */
    async getFaviconCache(serverUrl, oauthLogoUri = null) {
      return orNull(await shared.cachedFavicon(serverUrl, oauthLogoUri === null ? undefined : oauthLogoUri))
    },
    async close() {
      await shared.close()
    },
  }
  // Not one of Hoot's methods (not enumerable): how createOAuthProvider({ adapter, userId }) reaches
  // the user-bound store that also keeps discovery state and the OAuth state.
  Object.defineProperty(adapter, STORE_OF, { value: storeOf })
  return adapter
}

module.exports = { createDatabaseAdapter }

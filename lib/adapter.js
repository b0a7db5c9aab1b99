// createDatabaseAdapter: Hoot's DatabaseAdapter (server/adapters/database.js) on hoot-core's
// store, a drop-in for its SQLiteAdapter. Every method is async and takes the user id per call,
// as Hoot's do; each call goes through a store bound to that user (so the id is checked, and no
// call can reach another user's rows), and returns null where Hoot's adapter returns null.
'use strict'

const binding = require('./native.js')
const { OAuthStore } = require('./store.js')
const { STORE_OF } = require('./provider.js')

function typeError(name, expected, value) {
  const received = value === null ? 'null' : Array.isArray(value) ? 'an instance of Array' : `type ${typeof value}`
  const error = new TypeError(`The "${name}" argument must be ${expected}. Received ${received}`)
  error.code = 'ERR_INVALID_ARG_TYPE'
  return error
}

const orNull = (value) => (value === undefined ? null : value)

/**
 * A Hoot DatabaseAdapter on the database at `opts.dbPath` (default: `$HOOT_DB_PATH`, else
 * `~/.hoot/hoot-mcp.db`), which is opened, and migrated from Hoot's schema if need be, here.
 */
function createDatabaseAdapter(opts) {
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw typeError('opts', 'of type object', opts)
  const dbPath = opts === undefined ? undefined : opts.dbPath
  if (dbPath !== undefined && typeof dbPath !== 'string') throw typeError('opts.dbPath', 'of type string', dbPath)
  const options = dbPath === undefined ? {} : { dbPath }
  // encryption: 'on' turns encryption at rest on for the database, as a store can.
  const encryption = opts === undefined ? undefined : opts.encryption
  if (encryption !== undefined) new OAuthStore('default-user', { ...options, encryption })
  const storeOf = (userId) => new OAuthStore(userId, options)
  // Opened (and migrated) now, so a bad path or an unusable file is reported at start-up, and old
  // verifiers removed, as `new SQLiteAdapter` does.
  binding.migrateDatabase(dbPath)
  binding.cleanupExpiredVerifiers(options)
  // The file this adapter uses, so close() closes it and no other database of the process.
  const path = binding.inspectDatabase(dbPath).path

  const adapter = {
    async saveOAuthTokens(userId, serverId, tokens) {
      storeOf(userId).saveTokens(serverId, tokens)
    },
    async getOAuthTokens(userId, serverId) {
      return orNull(storeOf(userId).tokens(serverId))
    },
    async saveOAuthClientInfo(userId, serverId, clientInfo) {
      storeOf(userId).saveClientInformation(serverId, clientInfo)
    },
    async getOAuthClientInfo(userId, serverId) {
      return orNull(storeOf(userId).clientInformation(serverId))
    },
    async saveVerifier(userId, serverId, verifier) {
      storeOf(userId).saveCodeVerifier(serverId, verifier)
    },
    /** The verifier, or null when none is saved or it is older than 10 minutes (Hoot's expiry). */
    async getVerifier(userId, serverId) {
      return orNull(storeOf(userId).codeVerifier(serverId))
    },
    async deleteVerifier(userId, serverId) {
      storeOf(userId).invalidateCredentials(serverId, 'verifier')
    },
    /** Deletes every user's verifiers older than 10 minutes. */
    async cleanupOldVerifiers() {
      binding.cleanupExpiredVerifiers(options)
    },
    /** `scope`: 'all' (the default), 'client', 'tokens', 'verifier' or 'discovery', as the SDK sends them. */
    async clearOAuthCredentials(userId, serverId, scope = 'all') {
      storeOf(userId).invalidateCredentials(serverId, scope)
    },
    async saveServerConfig(userId, serverId, config) {
      storeOf(userId).saveServerConfig(serverId, config)
    },
    async getServerConfig(userId, serverId) {
      return orNull(storeOf(userId).serverConfig(serverId))
    },
    async deleteServerConfig(userId, serverId) {
      storeOf(userId).deleteServerConfig(serverId)
    },
    /** `faviconUrl` null or undefined: none found (cached too, so it is not fetched again). */
    async saveFaviconCache(serverUrl, faviconUrl, oauthLogoUri = null) {
      const found = faviconUrl === undefined ? null : faviconUrl
      binding.cacheFavicon(serverUrl, found, oauthLogoUri === null ? undefined : oauthLogoUri, options)
    },
    /** The cached favicon URL, or null (none cached, older than a day, or cached as not found), as Hoot's. */
    async getFaviconCache(serverUrl, oauthLogoUri = null) {
      return orNull(binding.getCachedFavicon(serverUrl, oauthLogoUri === null ? undefined : oauthLogoUri, options))
    },
    async close() {
      binding.closeDatabase(path)
    },
  }
  // Not one of Hoot's methods (not enumerable): how createOAuthProvider({ adapter, userId }) reaches
  // the user-bound store that also keeps discovery state and the OAuth state.
  Object.defineProperty(adapter, STORE_OF, { value: storeOf })
  return adapter
}

module.exports = { createDatabaseAdapter }

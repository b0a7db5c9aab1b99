// `hoot-core/sqlite`: SQLite's synchronous file tools, for Hoot's single-file backend and the
// CLI. Each takes the file in its options (`dbPath`, default `$HOOT_DB_PATH`, else
// ~/.hoot/hoot-mcp.db) and works on it on the calling thread. The same operations on either
// backend, as promises, are the methods of openDatabase()'s Database. Typed in sqlite.d.ts.
//
// `exports.name = ...` lines, one per export, for Node's CommonJS export detection.
'use strict'

const binding = require('./native.js')
const { OAuthStore } = require('./store.js')

// The store and its schema (also in the main entry)
exports.OAuthStore = OAuthStore
exports.migrateDatabase = binding.migrateDatabase

// The file
exports.closeDatabase = binding.closeDatabase
exports.inspectDatabase = binding.inspectDatabase
exports.cleanupExpiredVerifiers = binding.cleanupExpiredVerifiers
exports.getCachedFavicon = binding.getCachedFavicon
exports.cacheFavicon = binding.cacheFavicon
exports.encryptDatabase = binding.encryptDatabase
exports.decryptDatabase = binding.decryptDatabase

// The anonymous session's life
exports.activitySummary = binding.activitySummary
exports.purgeInactiveUsers = binding.purgeInactiveUsers
exports.redeemTransferCode = binding.redeemTransferCode
exports.legacyTransferCode = binding.legacyTransferCode
exports.moveUserData = binding.moveUserData
exports.userIdForAccount = binding.userIdForAccount
exports.revokeUserTokens = binding.revokeUserTokens

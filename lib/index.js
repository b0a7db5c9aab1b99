// The package entry. Every export is named here, once: the native functions from the
// napi-generated loader (binding.js, reached through native.js, which explains a missing binary),
// and the hand-written parts, each from the module that defines it: verifyToken and the loadKeys
// that clears its cache (verify.js), issueTokenAsync's promise (issue.js), OAuthStore with its
// JSON-returning methods (store.js), createOAuthProvider (provider.js), createDatabaseAdapter
// (adapter.js), UserConnections (connections.js). The loader's internal
// names (verifyTokenRaw, the store's text readers, napi's __napiBindingTarget) are not exported.
//
// `exports.name = ...` lines, one per export, are what Node's CommonJS export detection reads, so
// ESM importers get named exports too.
'use strict'

const binding = require('./native.js')
const { issueTokenAsync } = require('./issue.js')
const { loadKeys, verifyToken } = require('./verify.js')
const { OAuthStore } = require('./store.js')
const { createOAuthProvider } = require('./provider.js')
const { createDatabaseAdapter } = require('./adapter.js')
const { openDatabase } = require('./database.js')
const { UserConnections } = require('./connections.js')

// Keys
exports.loadKeys = loadKeys
exports.generateKeys = binding.generateKeys
exports.publicJwks = binding.publicJwks

// Tokens
exports.issueToken = binding.issueToken
exports.issueTokenAsync = issueTokenAsync
exports.verifyToken = verifyToken
exports.isValidUserId = binding.isValidUserId

// Store
exports.OAuthStore = OAuthStore
exports.migrateDatabase = binding.migrateDatabase
exports.cleanupExpiredVerifiers = binding.cleanupExpiredVerifiers
exports.getCachedFavicon = binding.getCachedFavicon
exports.cacheFavicon = binding.cacheFavicon
exports.closeDatabase = binding.closeDatabase
exports.inspectDatabase = binding.inspectDatabase
exports.createDatabaseAdapter = createDatabaseAdapter
exports.openDatabase = openDatabase
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

// The MCP SDK's OAuth provider, and the live connections it serves
exports.createOAuthProvider = createOAuthProvider
exports.UserConnections = UserConnections

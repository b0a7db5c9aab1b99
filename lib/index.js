// The package entry, `hoot-core`: keys, tokens, the store and the MCP provider, grouped by concept.
// SQLite's synchronous file tools are `hoot-core/sqlite` (lib/sqlite.js); the pieces shaped like
// Hoot's own server modules, `hoot-core/hoot` (lib/hoot.js); the addon-free provider alone,
// `hoot-core/provider` (lib/provider.js). Every export is named here, once, from the module that
// defines it: the native functions from the napi-generated loader (binding.js, reached through
// native.js, which explains a missing binary), verifyToken and the loadKeys that clears its cache
// (verify.js), issueTokenAsync's promise (issue.js), OAuthStore with its JSON-returning methods
// (store.js), openDatabase (database.js), createOAuthProvider (provider.js), onEvent (events.js). The loader's internal
// names (verifyTokenRaw, the store's text readers, napi's __napiBindingTarget) are not exported.
// Typed in index.d.ts.
//
// `exports.name = ...` lines, one per export, are what Node's CommonJS export detection reads, so
// ESM importers get named exports too.
'use strict'

const binding = require('./native.js')
const { issueTokenAsync } = require('./issue.js')
const { loadKeys, verifyToken } = require('./verify.js')
const { OAuthStore } = require('./store.js')
const { openDatabase } = require('./database.js')
const { createOAuthProvider } = require('./provider.js')
const { onEvent } = require('./events.js')

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
exports.openDatabase = openDatabase
exports.OAuthStore = OAuthStore
exports.migrateDatabase = binding.migrateDatabase

// MCP
exports.createOAuthProvider = createOAuthProvider

// Operations (the metrics are `hoot-core/metrics`)
exports.onEvent = onEvent

// `hoot-core/hoot`: pieces shaped like Hoot's own server modules, to drop into its backend: the
// DatabaseAdapter (server/adapters/database.js) on hoot-core's store, and the registry of live MCP
// connections per user that replaces its NodeConnectionPool. Typed in hoot.d.ts.
//
// `exports.name = ...` lines, one per export, for Node's CommonJS export detection.
'use strict'

const { createDatabaseAdapter } = require('./adapter.js')
const { UserConnections } = require('./connections.js')

exports.createDatabaseAdapter = createDatabaseAdapter
exports.UserConnections = UserConnections

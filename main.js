// The package entry: every native export from the napi-generated loader (index.js), plus the
// hand-written helpers. Written as one object literal so Node's CommonJS export detection still
// gives ESM importers named exports.
'use strict'

const provider = require('./provider.js')

module.exports = { ...require('./index.js'), createOAuthProvider: provider.createOAuthProvider }

// The package entry: every native export from the napi-generated loader (index.js), plus the
// hand-written parts: verifyToken's result building and cache (verify.js, which also wraps
// loadKeys to clear that cache), OAuthStore's JSON-returning methods (store.js, which the
// provider loads) and createOAuthProvider. Written as one object literal so Node's CommonJS
// export detection still gives ESM importers named exports.
'use strict'

const { createOAuthProvider } = require('./provider.js')
const { loadKeys, verifyToken } = require('./verify.js')

// Shorthand properties only: the export detection reads `name` and `...require()`, not `a: b.c`.
module.exports = { ...require('./index.js'), loadKeys, verifyToken, createOAuthProvider }
// verify.js's native half; verifyToken is the API.
delete module.exports.verifyTokenRaw

// OAuthStore's methods that return a stored JSON object (tokens, client information, discovery
// state, server config), attached here and only here (every module that hands out OAuthStore
// requires this one: the entries lib/index.js and lib/sqlite.js, the database and the adapter). The native readers return the JSON text exactly as
// stored; V8's JSON.parse, called from here, builds the object faster than native code can ask for
// it. The readers are functions of the loader, not methods, so no `*Text` method is visible on a
// store. Errors (a wrong argument type, ERR_HOOT_DB) come from the native call, unchanged.
'use strict'

const binding = require('./native.js')

const { OAuthStore } = binding
/**
 * A stored JSON value, parsed. One that is not JSON (written outside hoot-core, or damaged) throws
 * ERR_HOOT_DB, whose message quotes none of it: V8's SyntaxError would quote its start, a token.
 */
function parseStored(text, what) {
  if (text === undefined || text === null) return undefined
  try {
    return JSON.parse(text)
  } catch {
    const error = new Error(
      `The stored ${what} for this server is not JSON (it was written outside hoot-core, or damaged). ` +
        'Save it again, or remove it (invalidateCredentials, deleteServerConfig or deleteAll)',
    )
    error.code = 'ERR_HOOT_DB'
    throw error
  }
}

/**
 * A versioned stored value (`<version>:<JSON text>`, as the native readers return it) as
 * `{ value, version }`, or undefined: what a provider passes back to `invalidateCredentials`.
 */
function parseVersioned(text, what) {
  if (text === undefined || text === null) return undefined
  const colon = text.indexOf(':')
  return { value: parseStored(text.slice(colon + 1), what), version: Number(text.slice(0, colon)) }
}

Object.defineProperties(OAuthStore.prototype, {
  clientInformation: {
    value: function clientInformation(serverId) {
      return parseStored(binding.storeClientInformationText(this, serverId), 'client information')
    },
    writable: true,
    configurable: true,
  },
  tokens: {
    value: function tokens(serverId) {
      return parseStored(binding.storeTokensText(this, serverId), 'tokens')
    },
    writable: true,
    configurable: true,
  },
  tokensVersioned: {
    value: function tokensVersioned(serverId) {
      return parseVersioned(binding.storeTokensVersioned(this, serverId), 'tokens')
    },
    writable: true,
    configurable: true,
  },
  clientInformationVersioned: {
    value: function clientInformationVersioned(serverId) {
      return parseVersioned(binding.storeClientInformationVersioned(this, serverId), 'client information')
    },
    writable: true,
    configurable: true,
  },
  discoveryState: {
    value: function discoveryState(serverId) {
      return parseStored(binding.storeDiscoveryStateText(this, serverId), 'discovery state')
    },
    writable: true,
    configurable: true,
  },
  serverConfig: {
    value: function serverConfig(serverId) {
      return parseStored(binding.storeServerConfigText(this, serverId), 'server config')
    },
    writable: true,
    configurable: true,
  },
})

module.exports = { OAuthStore, parseStored, parseVersioned }

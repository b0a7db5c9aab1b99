// OAuthStore's methods that return a stored JSON object (tokens, client information, discovery
// state, server config), attached here and only here (the entry
// requires this module; so does the provider). The native readers return the JSON text exactly as
// stored; V8's JSON.parse, called from here, builds the object faster than native code can ask for
// it. The readers are functions of the loader, not methods, so no `*Text` method is visible on a
// store. Errors (a wrong argument type, ERR_HOOT_DB) come from the native call, unchanged.
'use strict'

const binding = require('./native.js')

const { OAuthStore } = binding
const parsed = (text) => (text === undefined ? undefined : JSON.parse(text))

Object.defineProperties(OAuthStore.prototype, {
  clientInformation: {
    value: function clientInformation(serverId) {
      return parsed(binding.storeClientInformationText(this, serverId))
    },
    writable: true,
    configurable: true,
  },
  tokens: {
    value: function tokens(serverId) {
      return parsed(binding.storeTokensText(this, serverId))
    },
    writable: true,
    configurable: true,
  },
  discoveryState: {
    value: function discoveryState(serverId) {
      return parsed(binding.storeDiscoveryStateText(this, serverId))
    },
    writable: true,
    configurable: true,
  },
  serverConfig: {
    value: function serverConfig(serverId) {
      return parsed(binding.storeServerConfigText(this, serverId))
    },
    writable: true,
    configurable: true,
  },
})

module.exports = { OAuthStore }

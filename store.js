// The OAuthStore methods that return a stored JSON object. The native class returns the JSON
// text exactly as stored (`tokensText` and so on); V8's JSON.parse, called from here, builds the
// object faster than native code can ask for it. Errors (a wrong argument type, ERR_HOOT_DB)
// come from the native call, unchanged.
'use strict'

const { OAuthStore } = require('./index.js')

const parsed = (text) => (text === undefined ? undefined : JSON.parse(text))

Object.defineProperties(OAuthStore.prototype, {
  clientInformation: {
    value: function clientInformation(serverId) {
      return parsed(this.clientInformationText(serverId))
    },
    writable: true,
    configurable: true,
  },
  tokens: {
    value: function tokens(serverId) {
      return parsed(this.tokensText(serverId))
    },
    writable: true,
    configurable: true,
  },
  serverConfig: {
    value: function serverConfig(serverId) {
      return parsed(this.serverConfigText(serverId))
    },
    writable: true,
    configurable: true,
  },
})

module.exports = { OAuthStore }

// createOAuthProvider: the MCP TypeScript SDK's OAuthClientProvider, backed by one user's
// OAuthStore. Hand-written JS (the SDK calls it from JS); typed in header.d.ts.
'use strict'

const { randomBytes } = require('crypto')
const { OAuthStore } = require('./store.js')

function typeError(name, expected, value) {
  const received = value === null ? 'null' : Array.isArray(value) ? 'an instance of Array' : `type ${typeof value}`
  const error = new TypeError(`The "${name}" argument must be ${expected}. Received ${received}`)
  error.code = 'ERR_INVALID_ARG_TYPE'
  return error
}

/**
 * Checks createOAuthProvider's arguments as Node checks its own (a coded TypeError naming each)
 * and returns the options, each read once.
 */
function readArguments(store, serverId, options) {
  if (!(store instanceof OAuthStore)) throw typeError('store', 'an instance of OAuthStore', store)
  if (typeof serverId !== 'string') throw typeError('serverId', 'of type string', serverId)
  if (serverId === '') {
    const error = new TypeError('The "serverId" argument must not be empty')
    error.code = 'ERR_INVALID_ARG_VALUE'
    throw error
  }
  if (options === null || typeof options !== 'object') throw typeError('options', 'of type object', options)
  const { redirectUrl, clientMetadata, onRedirect } = options
  if (typeof redirectUrl !== 'string' && !(redirectUrl instanceof URL)) {
    throw typeError('options.redirectUrl', 'of type string or an instance of URL', redirectUrl)
  }
  if (clientMetadata === null || typeof clientMetadata !== 'object') {
    throw typeError('options.clientMetadata', 'of type object', clientMetadata)
  }
  if (onRedirect !== undefined && typeof onRedirect !== 'function') {
    throw typeError('options.onRedirect', 'of type function', onRedirect)
  }
  return { redirectUrl, clientMetadata, onRedirect }
}

/**
 * An OAuthClientProvider for `serverId`, storing everything in `store` (so in that store's user's
 * rows). Without `onRedirect`, `redirectToAuthorization` throws an error named
 * `UnauthorizedError` carrying `authorizationUrl`, which Hoot's backend hands to the browser.
 */
function createOAuthProvider(store, serverId, options) {
  const { redirectUrl, clientMetadata, onRedirect } = readArguments(store, serverId, options)
  return {
    get redirectUrl() {
      return redirectUrl
    },
    get clientMetadata() {
      return clientMetadata
    },
    async state() {
      return randomBytes(32).toString('hex')
    },
    async clientInformation() {
      return store.clientInformation(serverId)
    },
    async saveClientInformation(info) {
      store.saveClientInformation(serverId, info)
    },
    async tokens() {
      return store.tokens(serverId)
    },
    async saveTokens(tokens) {
      store.saveTokens(serverId, tokens)
    },
    async redirectToAuthorization(authorizationUrl) {
      if (onRedirect) return onRedirect(authorizationUrl)
      const error = new Error('OAuth authorization required')
      error.name = 'UnauthorizedError'
      error.authorizationUrl = authorizationUrl.toString()
      throw error
    },
    async saveCodeVerifier(verifier) {
      store.saveCodeVerifier(serverId, verifier)
    },
    async codeVerifier() {
      const verifier = store.codeVerifier(serverId)
      if (verifier === undefined) {
        throw new Error(
          `No PKCE code verifier is stored for MCP server "${serverId}" (none was saved, or it is older than ` +
            '10 minutes): start the authorization again',
        )
      }
      return verifier
    },
    async invalidateCredentials(scope) {
      // 'discovery' state is not stored, so there is nothing to forget for it.
      if (scope !== 'discovery') store.invalidateCredentials(serverId, scope)
    },
  }
}

module.exports = { createOAuthProvider }

// createOAuthProvider: the MCP TypeScript SDK's OAuthClientProvider for one user and one server,
// kept in an OAuthStore (or anything with its methods) or in a Hoot DatabaseAdapter. Pure
// JavaScript that never loads the native addon, so it is also the package's `hoot-core/provider`
// subpath, which Hoot's Workers code can use with its own Durable Objects adapter.
// Typed in provider.d.ts.
'use strict'

const { typeError, valueError, rangeError } = require('./errors.js')
const { STORE_OF, CREDENTIAL_KEY } = require('./store-of.js')
const refresh = require('./refresh.js')

const STORE_METHODS = ['clientInformation', 'saveClientInformation', 'tokens', 'saveTokens']
const STORE_METHODS_MORE = ['codeVerifier', 'saveCodeVerifier', 'invalidateCredentials']
const ADAPTER_METHODS = [
  'getOAuthClientInfo',
  'saveOAuthClientInfo',
  'getOAuthTokens',
  'saveOAuthTokens',
  'getVerifier',
  'saveVerifier',
  'clearOAuthCredentials',
]
const VERSIONED_METHODS = ['tokensVersioned', 'clientInformationVersioned', 'claimRefresh', 'releaseRefresh']
const hasMethods = (object, names) => names.every((name) => typeof object[name] === 'function')

/** An identity for an object without a CREDENTIAL_KEY, so its credentials are its own. */
const identities = new WeakMap()
let objects = 0
function identityOf(object) {
  if (typeof object[CREDENTIAL_KEY] === 'string') return object[CREDENTIAL_KEY]
  let id = identities.get(object)
  if (id === undefined) identities.set(object, (id = `object ${++objects}`))
  return id
}

/**
 * Where the provider keeps things, as one set of async functions: an OAuthStore-like object
 * bound to its user, or a Hoot DatabaseAdapter with the user id passed on every call.
 * `discovery` and `states` are null when the backing cannot keep them.
 */
function backingOf(source, serverId) {
  if (hasMethods(source, [...STORE_METHODS, ...STORE_METHODS_MORE])) return storeBacking(source, serverId)
  const { adapter, userId } = source
  if (adapter === null || typeof adapter !== 'object' || !hasMethods(adapter, ADAPTER_METHODS)) {
    throw typeError(
      'store',
      "an OAuthStore (or an object with its methods) or { adapter, userId } with a Hoot DatabaseAdapter's methods",
      adapter === undefined ? source : adapter,
    )
  }
  if (typeof userId !== 'string') throw typeError('userId', 'of type string', userId)
  // hoot-core's own adapter hands over its user-bound store, which also keeps discovery state and
  // the authorization state; another adapter can offer the same through four optional methods.
  const store = typeof adapter[STORE_OF] === 'function' ? adapter[STORE_OF](userId) : null
  const extra = store ? storeBacking(store, serverId) : null
  // Over hoot-core's adapter the user's store versions the credentials and claims refreshes.
  if (extra && extra.coordinates) return extra
  const or = (value) => (value === null || value === undefined ? undefined : value)
  return {
    key: `${identityOf(adapter)}\0${userId}\0${serverId}`,
    coordinates: false,
    clientInformation: async () => or(await adapter.getOAuthClientInfo(userId, serverId)),
    saveClientInformation: (info) => adapter.saveOAuthClientInfo(userId, serverId, info),
    tokens: async () => or(await adapter.getOAuthTokens(userId, serverId)),
    saveTokens: (tokens) => adapter.saveOAuthTokens(userId, serverId, tokens),
    codeVerifier: async () => or(await adapter.getVerifier(userId, serverId)),
    saveCodeVerifier: (verifier) => adapter.saveVerifier(userId, serverId, verifier),
    invalidate: (scope) => adapter.clearOAuthCredentials(userId, serverId, scope),
    discovery: extra
      ? extra.discovery
      : hasMethods(adapter, ['getDiscoveryState', 'saveDiscoveryState'])
        ? {
            load: async () => or(await adapter.getDiscoveryState(userId, serverId)),
            save: (state) => adapter.saveDiscoveryState(userId, serverId, state),
          }
        : null,
    states: extra
      ? extra.states
      : hasMethods(adapter, ['saveAuthorizationState', 'consumeAuthorizationState'])
        ? {
            save: (state) => adapter.saveAuthorizationState(userId, serverId, state),
            consume: async (state) => (await adapter.consumeAuthorizationState(userId, serverId, state)) === true,
          }
        : null,
  }
}

function storeBacking(store, serverId) {
  const coordinates = hasMethods(store, VERSIONED_METHODS)
  return {
    key: `${identityOf(store)}\0${serverId}`,
    // Versioned reads, compare-and-delete and refresh claims (hoot-core's stores, both backends).
    coordinates,
    tokensVersioned: async () => store.tokensVersioned(serverId),
    clientInformationVersioned: async () => store.clientInformationVersioned(serverId),
    claim: async (holder, leaseMs) => (await store.claimRefresh(serverId, holder, { leaseMs })) === true,
    release: async (holder) => store.releaseRefresh(serverId, holder),
    clientInformation: async () => store.clientInformation(serverId),
    saveClientInformation: async (info) => store.saveClientInformation(serverId, info),
    tokens: async () => store.tokens(serverId),
    saveTokens: async (tokens) => store.saveTokens(serverId, tokens),
    codeVerifier: async () => store.codeVerifier(serverId),
    saveCodeVerifier: async (verifier) => store.saveCodeVerifier(serverId, verifier),
    invalidate: async (scope, expected) =>
      expected === undefined
        ? store.invalidateCredentials(serverId, scope)
        : store.invalidateCredentials(serverId, scope, expected),
    discovery: hasMethods(store, ['discoveryState', 'saveDiscoveryState'])
      ? {
          load: async () => store.discoveryState(serverId),
          save: async (state) => store.saveDiscoveryState(serverId, state),
        }
      : null,
    states: hasMethods(store, ['saveAuthorizationState', 'consumeAuthorizationState'])
      ? {
          save: async (state) => store.saveAuthorizationState(serverId, state),
          consume: async (state) => (await store.consumeAuthorizationState(serverId, state)) === true,
        }
      : null,
  }
}

/**
 * Whether `tokens` (what the SDK saves) are what a refresh through `fetch` already saved or
 * adopted: every member the same, so saving them would only write the same again (or, after a
 * later refresh, bring older tokens back). A member the SDK adds (a new `scope`) makes it a save.
 */
function alreadyStored(tokens, settled) {
  if (!settled || !tokens || typeof tokens !== 'object') return false
  return Object.keys(tokens).every((key) => {
    const [a, b] = [tokens[key], settled[key]]
    return a === b || (a !== null && typeof a === 'object' && JSON.stringify(a) === JSON.stringify(b))
  })
}

/** What a provider read when nothing was stored. */
const NONE = Symbol('none stored')

/**
 * The version a provider expects of a credential that is not the one it read: versions are odd
 * (written) or 0 (written without one), so no row has it, and the stored one survives.
 */
const NONE_STORED = 2

/** 32 random bytes as hex, from Web Crypto (Node 19+, Workers) or node:crypto (Node 18). */
function randomHex() {
  const bytes = new Uint8Array(32)
  const webcrypto = globalThis.crypto || require('crypto').webcrypto
  webcrypto.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

/**
 * Checks createOAuthProvider's arguments as Node checks its own (a coded TypeError naming each)
 * and returns the options, each read once.
 */
function readOptions(serverId, options) {
  if (typeof serverId !== 'string') throw typeError('serverId', 'of type string', serverId)
  if (serverId === '') throw valueError('serverId', 'must not be empty')
  if (options === null || typeof options !== 'object') throw typeError('options', 'of type object', options)
  const { redirectUrl, clientMetadata, onRedirect, clientMetadataUrl, validateResourceURL, log, fetch } = options
  if (typeof redirectUrl !== 'string' && !(redirectUrl instanceof URL)) {
    throw typeError('options.redirectUrl', 'of type string or an instance of URL', redirectUrl)
  }
  if (clientMetadata === null || typeof clientMetadata !== 'object') {
    throw typeError('options.clientMetadata', 'of type object', clientMetadata)
  }
  if (onRedirect !== undefined && typeof onRedirect !== 'function') {
    throw typeError('options.onRedirect', 'of type function', onRedirect)
  }
  if (clientMetadataUrl !== undefined && typeof clientMetadataUrl !== 'string') {
    throw typeError('options.clientMetadataUrl', 'of type string', clientMetadataUrl)
  }
  if (validateResourceURL !== undefined && typeof validateResourceURL !== 'function') {
    throw typeError('options.validateResourceURL', 'of type function', validateResourceURL)
  }
  if (log !== undefined && typeof log !== 'function') throw typeError('options.log', 'of type function', log)
  if (fetch !== undefined && typeof fetch !== 'function') throw typeError('options.fetch', 'of type function', fetch)
  return {
    fetch,
    refreshLeaseMs: milliseconds('options.refreshLeaseMs', options.refreshLeaseMs, refresh.DEFAULT_LEASE_MS, 1),
    refreshWaitMs: milliseconds('options.refreshWaitMs', options.refreshWaitMs, refresh.DEFAULT_WAIT_MS, 0),
    redirectUrl,
    clientMetadata,
    onRedirect,
    clientMetadataUrl,
    validateResourceURL,
    log: log ?? ((message) => console.warn(message)),
    stateOptionalUntil: transitionEnd(options.stateOptionalUntil),
  }
}

/** A whole number of ms from `min` to 10 minutes, or `fallback` when undefined. */
function milliseconds(name, value, fallback, min) {
  if (value === undefined) return fallback
  if (typeof value !== 'number') throw typeError(name, 'of type number', value)
  if (!Number.isInteger(value) || value < min || value > refresh.MAX_MS) {
    throw rangeError(name, `must be a whole number of ms from ${min} to ${refresh.MAX_MS}. Received ${value}`)
  }
  return value
}

/** The longest a transition may accept callbacks without `state`: long enough to ship a frontend. */
const MAX_TRANSITION_DAYS = 30

/**
 * `stateOptionalUntil` (a Date, an ISO date text such as an environment variable holds, or ms
 * since the epoch; undefined or '' for none) as ms, refused when it is not a date or lies more
 * than 30 days ahead, so a forgotten setting cannot leave callbacks unchecked for long.
 */
function transitionEnd(value) {
  if (value === undefined || value === null || value === '') return 0
  const end = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : value
  if (typeof end !== 'number' || !Number.isFinite(end)) {
    throw typeError('options.stateOptionalUntil', 'a Date, an ISO 8601 date text or ms since the epoch', value)
  }
  if (end > Date.now() + MAX_TRANSITION_DAYS * 86_400_000) {
    throw rangeError(
      'options.stateOptionalUntil',
      `must be at most ${MAX_TRANSITION_DAYS} days ahead (a transition while the frontend ships). Received ${new Date(end).toISOString()}`,
    )
  }
  return end
}

/**
 * An OAuthClientProvider for `serverId`. `source` is an OAuthStore (or any object with its
 * methods, sync or async) or `{ adapter, userId }`. Without `onRedirect`, `redirectToAuthorization`
 * throws an error named `UnauthorizedError` carrying `authorizationUrl`, which Hoot's backend
 * hands to the browser.
 */
function createOAuthProvider(source, serverId, options) {
  if (source === null || typeof source !== 'object') {
    throw typeError('store', 'an OAuthStore or { adapter, userId }', source)
  }
  const {
    redirectUrl,
    clientMetadata,
    onRedirect,
    clientMetadataUrl,
    validateResourceURL,
    log,
    stateOptionalUntil,
    fetch,
    refreshLeaseMs,
    refreshWaitMs,
  } = readOptions(serverId, options)
  const backing = backingOf(source, serverId)
  // What this process's holders of the credential share: its refresh, and who waits for it.
  const shared = refresh.credentialState(backing.key)
  // The tokens and client registration this provider last read (NONE when there were none;
  // undefined before any read): what its invalidateCredentials may remove.
  const read = { tokens: undefined, clientInformation: undefined }
  const rememberTokens = (tokens) => {
    read.tokens = tokens ?? NONE
    return tokens
  }
  const rememberClient = (info) => {
    read.clientInformation = info ?? NONE
    return info
  }
  const provider = {
    get redirectUrl() {
      return redirectUrl
    },
    get clientMetadata() {
      return clientMetadata
    },
    /**
     * Whether the callback's `state` can be checked: the store keeps the state `state()` hands out
     * (hoot-core's stores and adapter do; another adapter needs saveAuthorizationState and
     * consumeAuthorizationState). Code shared with such an adapter (Hoot's Workers) checks this first.
     */
    get checksState() {
      return backing.states !== null
    },
    /** A fresh random `state`, saved with the verifier so the callback can check it once. */
    async state() {
      const state = randomHex()
      if (backing.states) await backing.states.save(state)
      return state
    },
    /**
     * For the OAuth callback, before `finishAuth(code)`: true only for the `state` this provider's
     * user last got for this server, within 10 minutes, once. A callback without a state passes
     * only until `stateOptionalUntil`; every refusal, and every such pass, is logged with its reason.
     */
    async consumeState(state) {
      if (!backing.states) {
        throw valueError(
          'store',
          'cannot keep the OAuth state: give the adapter saveAuthorizationState and consumeAuthorizationState',
        )
      }
      const name = serverId.length > 100 ? `${serverId.slice(0, 100)}...` : serverId
      const where = `OAuth callback for MCP server ${JSON.stringify(name)}`
      // A logger that throws does not turn the callback's answer into an error.
      const say = (message) => {
        try {
          log(message)
        } catch {}
      }
      if (typeof state !== 'string' || state === '') {
        if (Date.now() < stateOptionalUntil) {
          say(
            `hoot-core: accepted an ${where} without state, as stateOptionalUntil allows until ` +
              `${new Date(stateOptionalUntil).toISOString()}: update the frontend to send it`,
          )
          return true
        }
        say(`hoot-core: refused an ${where}: it carries no state (a frontend that does not send it yet?)`)
        return false
      }
      if (await backing.states.consume(state)) return true
      say(
        `hoot-core: refused an ${where}: its state is not the one this user's last authorization of the ` +
          'server was given (forged, replayed, from another browser, or older than 10 minutes)',
      )
      return false
    },
    clientInformation() {
      return backing.clientInformation().then(rememberClient)
    },
    async saveClientInformation(info) {
      await backing.saveClientInformation(info)
      rememberClient(info)
    },
    tokens() {
      return backing.tokens().then(rememberTokens)
    },
    async saveTokens(tokens) {
      // The SDK saves what `fetch` answered its refresh with: the holder saved those already (and
      // they may since have been refreshed again, which saving them now would undo).
      const stored = alreadyStored(tokens, shared.settled)
      if (!stored) await backing.saveTokens(tokens)
      rememberTokens(tokens)
      if (!stored) refresh.changed(shared)
    },
    async redirectToAuthorization(authorizationUrl) {
      // The holders waiting for new tokens get none: let them answer their calls now.
      refresh.changed(shared)
      if (onRedirect) return onRedirect(authorizationUrl)
      const error = new Error('OAuth authorization required')
      error.name = 'UnauthorizedError'
      error.authorizationUrl = authorizationUrl.toString()
      throw error
    },
    async saveCodeVerifier(verifier) {
      await backing.saveCodeVerifier(verifier)
    },
    async codeVerifier() {
      const verifier = await backing.codeVerifier()
      if (verifier === undefined) {
        throw new Error(
          `No PKCE code verifier is stored for MCP server "${serverId}" (none was saved, or it is older than ` +
            '10 minutes): start the authorization again',
        )
      }
      return verifier
    },
    /**
     * Removes what the SDK found rejected. Over a store that versions them (hoot-core's), the tokens
     * and the client registration go only while they are still the ones this provider last read or
     * saved (for an invalid_grant of a refresh sent through `fetch`, the tokens holding that refresh
     * token): compared with what is stored now, and deleted by the version they have now, so another
     * holder's newer ones survive. A provider that read or saved none removes none.
     */
    async invalidateCredentials(scope) {
      if (!backing.coordinates) {
        await backing.invalidate(scope)
        refresh.changed(shared)
        return
      }
      const expected = {}
      if (scope === 'all' || scope === 'tokens') {
        const rejected = shared.rejected
        shared.rejected = null
        const mine = read.tokens
        const stored = await backing.tokensVersioned()
        const same =
          stored !== undefined &&
          (rejected !== null
            ? stored.value.refresh_token === rejected
            : mine !== undefined &&
              mine !== NONE &&
              stored.value.access_token === mine.access_token &&
              stored.value.refresh_token === mine.refresh_token)
        expected.tokens = same ? stored.version : NONE_STORED
      }
      if (scope === 'all' || scope === 'client') {
        const mine = read.clientInformation
        const stored = await backing.clientInformationVersioned()
        const same =
          stored !== undefined &&
          mine !== undefined &&
          mine !== NONE &&
          stored.value.client_id === mine.client_id &&
          stored.value.client_secret === mine.client_secret
        expected.clientInformation = same ? stored.version : NONE_STORED
      }
      await backing.invalidate(scope, expected)
      refresh.changed(shared)
    },
    /**
     * The fetch to give the SDK's transport (`{ authProvider, fetch: provider.fetch }`): one refresh
     * grant per refresh token across this credential's holders (processes and replicas too, over
     * hoot-core's stores), and a request refused with an outdated access token sent again with the
     * stored one. See lib/refresh.js.
     */
    fetch: refresh.coordinatedFetch({
      base: fetch ?? ((input, init) => globalThis.fetch(input, init)),
      backing,
      state: shared,
      leaseMs: refreshLeaseMs,
      waitMs: refreshWaitMs,
    }),
  }
  // Only a provider that can give discovery state back may take it: the SDK (v2) refuses a
  // provider that saves it but returns nothing on the callback's leg.
  if (backing.discovery) {
    provider.saveDiscoveryState = async (state) => {
      await backing.discovery.save(state)
    }
    provider.discoveryState = async () => backing.discovery.load()
  }
  if (clientMetadataUrl !== undefined) provider.clientMetadataUrl = clientMetadataUrl
  if (validateResourceURL !== undefined) {
    provider.validateResourceURL = (serverUrl, resource) => validateResourceURL(serverUrl, resource)
  }
  return provider
}

// The `hoot-core/provider` entry: its one export, named for Node's CommonJS export detection.
exports.createOAuthProvider = createOAuthProvider

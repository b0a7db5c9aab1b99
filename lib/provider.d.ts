// Types of `hoot-core/provider` (lib/provider.js), which the package entry re-exports. Structural,
// so they need neither the native addon nor the MCP SDK: a provider is assignable to the SDK's
// `OAuthClientProvider` (1.20, 1.32 and the v2 client) under `tsc --strict`.

/** Hoot's `DatabaseAdapter` (server/adapters/database.js): every method async, the user id per call. */
export interface DatabaseAdapter {
  /** Stores the OAuth tokens of `serverId` for `userId`, replacing any. */
  saveOAuthTokens(userId: string, serverId: string, tokens: object): Promise<void>
  /** The stored OAuth tokens, or null. */
  getOAuthTokens(userId: string, serverId: string): Promise<any>
  /** Stores the OAuth client registration, replacing any. */
  saveOAuthClientInfo(userId: string, serverId: string, clientInfo: object): Promise<void>
  /** The stored client registration, or null. */
  getOAuthClientInfo(userId: string, serverId: string): Promise<any>
  /** Stores the PKCE code verifier, replacing any. */
  saveVerifier(userId: string, serverId: string, verifier: string): Promise<void>
  /** The PKCE code verifier, or null (none saved, or older than 10 minutes). */
  getVerifier(userId: string, serverId: string): Promise<string | null>
  /** Removes the PKCE code verifier. */
  deleteVerifier(userId: string, serverId: string): Promise<void>
  /** Removes every user's verifiers older than 10 minutes. */
  cleanupOldVerifiers(): Promise<void>
  /** Removes credentials: `'all'` (the default), `'client'`, `'tokens'`, `'verifier'` or `'discovery'`. */
  clearOAuthCredentials(userId: string, serverId: string, scope?: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): Promise<void>
  /** Stores the server's config (for reconnecting), replacing any. */
  saveServerConfig(userId: string, serverId: string, config: object): Promise<void>
  /** The stored server config, or null. */
  getServerConfig(userId: string, serverId: string): Promise<any>
  /** Removes the server config. */
  deleteServerConfig(userId: string, serverId: string): Promise<void>
  /** Caches the favicon found for a server URL (null: none found), shared by every user. */
  saveFaviconCache(serverUrl: string, faviconUrl: string | null, oauthLogoUri?: string | null): Promise<void>
  /** The cached favicon URL younger than a day, or null. */
  getFaviconCache(serverUrl: string, oauthLogoUri?: string | null): Promise<string | null>
  /** Closes the database. */
  close(): Promise<void>
}

/** What the MCP SDK saves between `auth()` calls so it need not discover the servers again. */
export interface OAuthDiscoveryState {
  /** The authorization server the flow uses. */
  authorizationServerUrl: string
  /** Where the protected-resource metadata was found (the 401's `resource_metadata`). */
  resourceMetadataUrl?: string
  /** The protected-resource metadata (RFC 9728). */
  resourceMetadata?: any
  /** The authorization server's metadata (RFC 8414). */
  authorizationServerMetadata?: any
}

/**
 * What the provider needs of a store: `OAuthStore`'s methods, synchronous or returning promises.
 * The discovery-state and authorization-state methods are optional; without them the provider
 * offers neither.
 */
export interface ProviderStore {
  /** See `OAuthStore.clientInformation`. */
  clientInformation(serverId: string): any
  /** See `OAuthStore.saveClientInformation`. */
  saveClientInformation(serverId: string, info: object): unknown
  /** See `OAuthStore.tokens`. */
  tokens(serverId: string): any
  /** See `OAuthStore.saveTokens`. */
  saveTokens(serverId: string, tokens: object): unknown
  /** See `OAuthStore.codeVerifier`. */
  codeVerifier(serverId: string): string | undefined | Promise<string | undefined>
  /** See `OAuthStore.saveCodeVerifier`. */
  saveCodeVerifier(serverId: string, verifier: string): unknown
  /**
   * See `OAuthStore.invalidateCredentials`. A store with the versioned methods must honour `expected`
   * (delete a row only while it has that version), or the provider's compare-and-delete is lost.
   */
  invalidateCredentials(
    serverId: string,
    scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery',
    expected?: { tokens?: number; clientInformation?: number },
  ): unknown
  /**
   * See `UserStore.tokensVersioned`. With `clientInformationVersioned`, `claimRefresh` and
   * `releaseRefresh` (hoot-core's stores have all four), the provider compares versions before it
   * deletes and coordinates the refresh across processes.
   */
  tokensVersioned?(serverId: string): any
  /** See `UserStore.clientInformationVersioned`. */
  clientInformationVersioned?(serverId: string): any
  /** See `UserStore.claimRefresh`. */
  claimRefresh?(serverId: string, holder: string, opts: { leaseMs: number }): boolean | Promise<boolean>
  /** See `UserStore.releaseRefresh`. */
  releaseRefresh?(serverId: string, holder: string): unknown
  /** See `OAuthStore.discoveryState`. */
  discoveryState?(serverId: string): any
  /** See `OAuthStore.saveDiscoveryState`. */
  saveDiscoveryState?(serverId: string, state: object): unknown
  /** See `OAuthStore.saveAuthorizationState`. */
  saveAuthorizationState?(serverId: string, state: string): unknown
  /** See `OAuthStore.consumeAuthorizationState`. */
  consumeAuthorizationState?(serverId: string, state: string): boolean | Promise<boolean>
}

/**
 * A Hoot `DatabaseAdapter` and the user it acts for. hoot-core's adapter (`createDatabaseAdapter`)
 * also keeps discovery state and the authorization state; another adapter can, with
 * `getDiscoveryState`/`saveDiscoveryState` and `saveAuthorizationState`/`consumeAuthorizationState`
 * taking `(userId, serverId, ...)`.
 */
export interface AdapterSource {
  /** Any object with Hoot's `DatabaseAdapter` methods. */
  adapter: Pick<
    DatabaseAdapter,
    | 'getOAuthClientInfo'
    | 'saveOAuthClientInfo'
    | 'getOAuthTokens'
    | 'saveOAuthTokens'
    | 'getVerifier'
    | 'saveVerifier'
    | 'clearOAuthCredentials'
  >
  /** The verified token's user id. */
  userId: string
}

/** The client metadata sent at dynamic client registration (RFC 7591): `redirect_uris` and the rest. */
export interface OAuthClientMetadata {
  /** Where the authorization server may send the browser back. */
  redirect_uris: string[]
}

/** Options of `createOAuthProvider`. */
export interface OAuthProviderOptions<M extends OAuthClientMetadata = OAuthClientMetadata> {
  /** Where the authorization server sends the browser back (Hoot: `${FRONTEND_URL}/oauth/callback`). */
  redirectUrl: string | URL
  /** The client metadata sent at dynamic client registration (RFC 7591). */
  clientMetadata: M
  /** Called with the authorization URL; without it, `redirectToAuthorization` throws `UnauthorizedError`. */
  onRedirect?: (authorizationUrl: URL) => void | Promise<void>
  /** An https URL of a client ID metadata document, passed on to the SDK (1.32+). */
  clientMetadataUrl?: string
  /** Decides the `resource` sent to the authorization server, passed on to the SDK. */
  validateResourceURL?: (serverUrl: string | URL, resource?: string) => Promise<URL | undefined>
  /**
   * For a backend that ships before its frontend sends `state`: until then (a Date, an ISO 8601
   * text such as `process.env.HOOT_OAUTH_STATE_OPTIONAL_UNTIL`, or ms; at most 30 days ahead, else a
   * RangeError `ERR_INVALID_ARG_VALUE`), `consumeState` lets a callback without a state pass, and logs it. Off by default.
   */
  stateOptionalUntil?: Date | string | number
  /** Where `consumeState` logs a refusal (with its reason) or a pass without state: `console.warn` by default. */
  log?: (message: string) => void
  /** What the provider's `fetch` sends with: `globalThis.fetch` by default. */
  fetch?: (input: string | URL, init?: RequestInit) => Promise<Response>
  /**
   * How long a holder's claim on a refresh lasts, in ms (1 to 600000; 10000 by default): its token
   * request is cut off a fifth of it before the end, and then another holder may take over (a
   * SIGKILLed holder's claim ends so).
   */
  refreshLeaseMs?: number
  /**
   * How long the other holders of the credential wait for the holder's tokens, in ms (0 to 600000;
   * 15000 by default; keep it above the lease, so a dead holder's claim ends within it), before the
   * call fails with the SDK's `temporarily_unavailable` error.
   */
  refreshWaitMs?: number
}

/** What `redirectToAuthorization` throws without `onRedirect`, as Hoot's backend expects. */
export interface AuthorizationRequiredError extends Error {
  /** Always `'UnauthorizedError'`, the name Hoot's backend checks. */
  name: 'UnauthorizedError'
  /** Where to send the browser. */
  authorizationUrl: string
}

/** An `OAuthClientProvider` of `@modelcontextprotocol/sdk` for one user and one server. */
export interface StoreOAuthProvider<M extends OAuthClientMetadata = OAuthClientMetadata> {
  /** `options.redirectUrl`. */
  readonly redirectUrl: string | URL
  /** `options.clientMetadata`. */
  readonly clientMetadata: M
  /** `options.clientMetadataUrl`, when given. */
  clientMetadataUrl?: string
  /**
   * Whether `consumeState` can check the callback's `state`: true over hoot-core's stores and adapter, and
   * over an adapter with `saveAuthorizationState`/`consumeAuthorizationState`; false otherwise (there
   * `consumeState` throws `ERR_INVALID_ARG_VALUE`).
   */
  readonly checksState: boolean
  /** A fresh random OAuth `state` (64 hex characters), saved for `consumeState`. */
  state(): Promise<string>
  /**
   * For the OAuth callback, before `finishAuth(code)`: true only for the `state` this user last got
   * for this server, less than 10 minutes ago, and only once (a forged or replayed one is false);
   * a missing one only before `stateOptionalUntil`. Each refusal is logged with its reason.
   */
  consumeState(state: unknown): Promise<boolean>
  /** The client registration stored for this server, or `undefined`. */
  clientInformation(): Promise<any>
  /** Stores the client registration for this server. */
  saveClientInformation(info: object): Promise<void>
  /** The OAuth tokens stored for this server, or `undefined`. */
  tokens(): Promise<any>
  /** Stores the OAuth tokens for this server. */
  saveTokens(tokens: object): Promise<void>
  /** Calls `onRedirect`, or throws `AuthorizationRequiredError` without it. */
  redirectToAuthorization(authorizationUrl: URL): Promise<void>
  /** Stores the PKCE code verifier for this server. */
  saveCodeVerifier(verifier: string): Promise<void>
  /** Rejects when no verifier younger than 10 minutes is stored. */
  codeVerifier(): Promise<string>
  /**
   * Removes the stored credentials in `scope`; `'all'` includes the discovery state. Over
   * hoot-core's stores the tokens and client registration go only while they are the ones this
   * provider read: tokens another holder saved since survive.
   */
  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): Promise<void>
  /**
   * The fetch to give the SDK's transport, with the provider:
   * `new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: provider.fetch })`.
   * One refresh grant per refresh token among every holder of this credential (over hoot-core's
   * stores, across processes and replicas too), and a request refused with an access token another
   * holder has since replaced is sent again with the stored one.
   */
  fetch(input: string | URL, init?: RequestInit): Promise<Response>
  /** Keeps the SDK's discovery state for this user and server (present when the store can). */
  saveDiscoveryState?(state: OAuthDiscoveryState): Promise<void>
  /** The saved discovery state, or `undefined` (present when the store can keep it). */
  discoveryState?(): Promise<OAuthDiscoveryState | undefined>
  /** `options.validateResourceURL`, when given. */
  validateResourceURL?(serverUrl: string | URL, resource?: string): Promise<URL | undefined>
}

/**
 * The OAuth provider the MCP SDK needs for `serverId`, keeping client registration, tokens, the
 * PKCE verifier, the OAuth state and the discovery state for one user: in `source`, an `OAuthStore`
 * (or any object with its methods) or `{ adapter, userId }`.
 */
export declare function createOAuthProvider<M extends OAuthClientMetadata>(
  source: ProviderStore | AdapterSource,
  serverId: string,
  options: OAuthProviderOptions<M>,
): StoreOAuthProvider<M>

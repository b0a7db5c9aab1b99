// Types of the package entry `hoot-core` (lib/index.js), hand-written: its value exports are
// exactly lib/index.js's (__test__/types.test.mjs compares them). Types derived from the Rust
// code come from lib/binding.d.ts, which napi generates; the JavaScript-only parts (verifyToken,
// loadKeys's rule, openDatabase's Database) are declared here.

import type {
  ActivitySummary,
  CopyReport,
  DatabaseStatus,
  EncryptionReport,
  KeyOptions,
  KeyRotation,
  KeysInfo,
  LegacyTransferCode,
  MoveReport,
  PurgeReport,
  RedeemedTransfer,
  TransferCode,
  VerifyOptions,
  VerifyResult,
} from './binding'

export {
  generateKeys,
  isValidUserId,
  issueToken,
  issueTokenAsync,
  migrateDatabase,
  OAuthStore,
  publicJwks,
} from './binding'
export type {
  ActivitySummary,
  CopyReport,
  DatabaseStatus,
  EncryptionReport,
  EncryptionStatus,
  GenerateKeyOptions,
  GeneratedKeys,
  HootErrorCode,
  IssueOptions,
  KeyOptions,
  KeyRotation,
  KeysInfo,
  LegacyTransferCode,
  MigrationReport,
  MoveReport,
  PortkeyContext,
  PurgeReport,
  RedeemedTransfer,
  StoreOptions,
  TableCopy,
  TransferCode,
  VerifyFailure,
  VerifyFailureCode,
  VerifyOptions,
  VerifyResult,
  VerifySuccess,
} from './binding'
export { createOAuthProvider } from './provider'
export type {
  AdapterSource,
  AuthorizationRequiredError,
  DatabaseAdapter,
  OAuthClientMetadata,
  OAuthDiscoveryState,
  OAuthProviderOptions,
  ProviderStore,
  StoreOAuthProvider,
} from './provider'

/**
 * Loads the key set and makes it the process's, replacing the previous one at once and
 * clearing the verification cache; synchronous, always. Without options it reads Hoot's files
 * (`$JWT_PRIVATE_KEY_PATH` / `$JWT_JWKS_PATH`, else `private-key.json` / `jwks.json` in the
 * working directory) and, when there are none, uses the key kept in `~/.hoot/keys`, generating
 * it on first start. Throws `ERR_HOOT_KEYS`, naming the file and the fix, when keys cannot be
 * loaded, and also when `$HOOT_DATABASE_URL` is a `postgres://` URL and no option names a key
 * source: the servers on one PostgreSQL database share its key set, `await openDatabase().loadKeys()`.
 */
export declare function loadKeys(opts?: KeyOptions): KeysInfo

/**
 * Verifies a session token: RS256 only, a known `kid`, a good signature, `exp` in the future,
 * `nbf` (if any) in the past, and a UUID v4 `sub`. Returns `{ valid: true, userId, ... }` or
 * `{ valid: false, expired, code, error }` with jose's error code; it never throws for a bad
 * token, only for a wrong argument type or keys that cannot be loaded. Successful results are
 * cached per token until `exp` (calls without options), so verifying the same token again is cheap;
 * every call returns new objects.
 */
export declare function verifyToken(token: string, opts?: VerifyOptions): VerifyResult

/** `openDatabase`'s options. The pool options are PostgreSQL's (SQLite ignores them). */
export interface DatabaseOptions {
  /** `'on'` turns encryption at rest on for the database's writes (as `HOOT_ENCRYPT_AT_REST=1`). */
  encryption?: 'on' | 'off'
  /** Connections in the pool at most. Default 10. */
  poolSize?: number
  /** Opening a connection, or waiting for a free one, in ms. Default 5000. */
  connectTimeoutMs?: number
  /** One statement on the server, in ms (PostgreSQL's `statement_timeout`). Default 10000. */
  statementTimeoutMs?: number
  /** How often other replicas' key rotations and revocations are read, in ms. Default 1000. */
  pollIntervalMs?: number
}

/** A stored value and its version: a random number each save gives it (0 for a row saved without one). */
export interface Versioned {
  /** The stored JSON value. */
  value: any
  /** Its version, which `invalidateCredentials` can expect. */
  version: number
}

/** The versions `invalidateCredentials` expects the tokens and client registration to have. */
export interface ExpectedVersions {
  /** The tokens' version, as read. */
  tokens?: number
  /** The client registration's version, as read. */
  clientInformation?: number
}

/**
 * One user's store on either backend: `OAuthStore`'s methods, each returning a promise (rejected,
 * never thrown, with the code `OAuthStore` would throw). Every statement binds the user id.
 */
export interface UserStore {
  /** The user every call is scoped to (a UUID in lower case). */
  readonly userId: string
  /** The OAuth client registration saved for `serverId`. */
  clientInformation(serverId: string): Promise<object | undefined>
  /** Saves the OAuth client registration for `serverId`, replacing any. */
  saveClientInformation(serverId: string, info: object): Promise<void>
  /** The OAuth tokens saved for `serverId`. */
  tokens(serverId: string): Promise<object | undefined>
  /** Saves the OAuth tokens for `serverId`; durable when the promise resolves. */
  saveTokens(serverId: string, tokens: object): Promise<void>
  /** The PKCE verifier saved for `serverId`, unless older than 10 minutes. */
  codeVerifier(serverId: string): Promise<string | undefined>
  /** Saves the PKCE verifier for `serverId`. */
  saveCodeVerifier(serverId: string, verifier: string): Promise<void>
  /** The MCP SDK's OAuth discovery state saved for `serverId`. */
  discoveryState(serverId: string): Promise<object | undefined>
  /** Saves the discovery state for `serverId`. */
  saveDiscoveryState(serverId: string, state: object): Promise<void>
  /** Saves the OAuth `state` of the authorization starting now for `serverId`. */
  saveAuthorizationState(serverId: string, state: string): Promise<void>
  /** Whether `state` is the one saved (and fresh); removes it either way (single use). */
  consumeAuthorizationState(serverId: string, state: string): Promise<boolean>
  /**
   * Removes this user's credentials for `serverId` in `scope`, in one transaction. With `expected`
   * (versions from `tokensVersioned` / `clientInformationVersioned`), the tokens and the client
   * registration go only while they are still those versions: compare-and-delete.
   */
  invalidateCredentials(
    serverId: string,
    scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery',
    expected?: ExpectedVersions,
  ): Promise<void>
  /** The stored tokens and their version (a new one at each save), or `undefined`. */
  tokensVersioned(serverId: string): Promise<Versioned | undefined>
  /** The stored client registration and its version, or `undefined`. */
  clientInformationVersioned(serverId: string): Promise<Versioned | undefined>
  /**
   * Claims the OAuth refresh of this user's credential for `serverId` for `holder` (an id unique to
   * the attempt) for `opts.leaseMs` (1 to 600000), unless another holder's claim is still live, on
   * any process or replica of this database. Resolves to whether `holder` has it.
   */
  claimRefresh(serverId: string, holder: string, opts: { leaseMs: number }): Promise<boolean>
  /** Ends `holder`'s claim on the refresh for `serverId` (nothing when it has none). */
  releaseRefresh(serverId: string, holder: string): Promise<void>
  /** The server config saved for `serverId` (for reconnecting). */
  serverConfig(serverId: string): Promise<object | undefined>
  /** Saves the config of `serverId`, replacing any. */
  saveServerConfig(serverId: string, config: object): Promise<void>
  /** Removes the config of `serverId`. */
  deleteServerConfig(serverId: string): Promise<void>
  /** Server ids with any stored state for this user, sorted. */
  servers(): Promise<string[]>
  /**
   * Every server config this user has, sorted by server id: what a browser that becomes this user
   * (a redeemed transfer code) needs to show the same servers.
   */
  serverConfigs(): Promise<Array<{ serverId: string; config: any }>>
  /** Records this user's activity (at most one write an hour from this process); resolves to whether it wrote. */
  touch(): Promise<boolean>
  /** Forgets this user (with `revokeTokens`, revokes their tokens first); resolves to the rows removed. */
  deleteAll(opts?: { revokeTokens?: boolean }): Promise<number>
  /**
   * A one-time code that moves this user to another device. `opts.ttlSeconds`: how long it lives
   * (defaults to 600). `opts.tokenIssuedAt`: the `iat` of the token the request was authenticated
   * with, so that revoking that token ends the code too (defaults to now).
   */
  createTransferCode(opts?: { ttlSeconds?: number; tokenIssuedAt?: number }): Promise<TransferCode>
  /** Links an account id to this user; one linked to another user is refused. */
  linkAccount(accountId: string): Promise<void>
  /** Unlinks an account from this user; resolves to whether it was linked to them. */
  unlinkAccount(accountId: string): Promise<boolean>
}

/** What `ready()` resolves to: where the database is, on either backend. */
export interface DatabaseInfo {
  /** The backend. */
  kind: 'sqlite' | 'postgres'
  /** The SQLite file, or `PostgreSQL at host:port/db` (never a user name or password). */
  database: string
  /** The schema version hoot-core made or found. */
  schemaVersion: number
  /** Whether the database records an encryption key, so that values are written sealed. */
  encrypted: boolean
}

/**
 * A database from `openDatabase`: SQLite or PostgreSQL, the same methods on both. Every method
 * returns a promise, rejected (never thrown) with a coded error; only `store` throws.
 */
export interface Database {
  /** The backend. */
  readonly kind: 'sqlite' | 'postgres'
  /** The store of `userId` (throws `ERR_INVALID_USER_ID` for an id a store refuses). */
  store(userId: string): UserStore
  /** Connects, makes or migrates the schema, and says where the database is. */
  ready(): Promise<DatabaseInfo>
  /**
   * The key set, made the process's. PostgreSQL: the one every replica shares, made by the first
   * to ask and kept current by polling. SQLite: `loadKeys(opts)`, after opening the file so that its
   * revocations are known before the first token is verified.
   */
  loadKeys(opts?: KeyOptions): Promise<KeysInfo>
  /**
   * PostgreSQL: a new signing key for every replica; the previous one keeps verifying unless
   * `dropPrevious`. SQLite, whose keys are files (`npx hoot-core keygen`): rejects with
   * `ERR_INVALID_ARG_VALUE`.
   */
  rotateKeys(opts?: { dropPrevious?: boolean }): Promise<KeyRotation>
  /** Revokes every token of `userId` issued until now, on every process sharing the database. */
  revokeUserTokens(userId: string): Promise<void>
  /**
   * Redeems a transfer code made by any process on the database, once. `opts.source` names the
   * client (its address), whose failures are counted apart from everyone's; `opts.intoUserId`
   * is the redeeming browser's user, into which a legacy user's code moves the legacy data.
   */
  redeemTransferCode(code: string, opts?: { intoUserId?: string; source?: string }): Promise<RedeemedTransfer>
  /**
   * A transfer code for the legacy user a migration made (`legacy-user-<ms>`), to redeem with
   * `intoUserId`; `null` when the database holds no legacy data. `opts.ttlSeconds` defaults to 600.
   */
  legacyTransferCode(opts?: { ttlSeconds?: number }): Promise<LegacyTransferCode | null>
  /** The user an account is linked to. */
  userIdForAccount(accountId: string): Promise<string | undefined>
  /**
   * Moves every row of `fromUserId` to `toUserId` in one transaction and empties `fromUserId`.
   * `opts.onConflict` says what happens where both have state for a server: `'fail'` (the
   * default: nothing moves), `'keep-target'` or `'take-source'`.
   */
  moveUserData(
    fromUserId: string,
    toUserId: string,
    opts?: { onConflict?: 'fail' | 'keep-target' | 'take-source' },
  ): Promise<MoveReport>
  /** Counts of the users and of those active in the last 1, 7 and 30 days. Names no one. */
  activitySummary(): Promise<ActivitySummary>
  /** Removes, in one transaction, every row of each user inactive for more than `inactiveDays` days. */
  purgeInactiveUsers(opts: { inactiveDays: number; dryRun?: boolean }): Promise<PurgeReport>
  /** Deletes every user's verifiers older than `maxAgeSeconds` (default 600); resolves to how many. */
  cleanupExpiredVerifiers(opts?: { maxAgeSeconds?: number }): Promise<number>
  /** Hoot's favicon cache: a URL, `null` when "none found" is cached, `undefined` when nothing fresh is. */
  cachedFavicon(serverUrl: string, oauthLogoUri?: string): Promise<string | null | undefined>
  /** Caches a favicon lookup (`faviconUrl` null: none found). */
  cacheFavicon(serverUrl: string, faviconUrl: string | null, oauthLogoUri?: string): Promise<void>
  /** The database's schema, activity and encryption state, as `hoot-core doctor` reports it; changes nothing. */
  inspect(): Promise<DatabaseStatus>
  /**
   * Seals every plaintext value in one transaction (encryption at rest); with `rotate`, under a
   * new key, sealing every value again. From then on every process needs a key.
   */
  encrypt(opts?: { rotate?: boolean }): Promise<EncryptionReport>
  /** Opens every sealed value back into plaintext in one transaction and marks the database plain. */
  decrypt(): Promise<EncryptionReport>
  /**
   * PostgreSQL: every row of the SQLite file at `path`, in one transaction. A file copied before is
   * refused unless `force`; revocations are never lowered, and users PostgreSQL revoked after the
   * file was taken are skipped. SQLite: rejects with `ERR_INVALID_ARG_VALUE`.
   */
  copyFromSqlite(path: string, opts?: { force?: boolean }): Promise<CopyReport>
  /** Closes it in this process. */
  close(): Promise<void>
}

/**
 * The database `location` names: a `postgres://` URL (PostgreSQL, for several servers sharing one
 * state) or a SQLite path; when absent, `$HOOT_DATABASE_URL`, else SQLite's default
 * (`$HOOT_DB_PATH`, else `~/.hoot/hoot-mcp.db`). Nothing connects before the first call.
 */
export declare function openDatabase(location?: string, opts?: DatabaseOptions): Database

/**
 * A security event (docs/api.md, "Security events"): `type`, `at` (ms since the epoch) and the
 * type's fields. No field holds a user id, token, code, key or password: a user is `userHash`,
 * an account `accountHash` (16 hex digits of an HMAC under $HOOT_EVENT_KEY, else a per-process key).
 */
export interface HootEvent {
  /** What happened (docs/api.md's table). */
  type: HootEventType
  /** When, in milliseconds since the epoch. */
  at: number
  /** The user, as 16 hex digits of an HMAC of their id (never the id). */
  userHash?: string
  /** The backend the database is on, for store events. */
  backend?: 'sqlite' | 'postgres'
  /** The type's other fields (docs/api.md's table). */
  [field: string]: unknown
}
/** Every event type onEvent reports. */
export type HootEventType =
  | 'token_issued'
  | 'token_refused'
  | 'tokens_revoked'
  | 'transfer_code_created'
  | 'transfer_code_redeemed'
  | 'transfer_code_refused'
  | 'transfer_code_throttled'
  | 'account_linked'
  | 'account_unlinked'
  | 'user_deleted'
  | 'user_moved'
  | 'users_purged'
  | 'keys_loaded'
  | 'keys_rotated'
  | 'encryption_on'
  | 'encryption_rotated'
  | 'encryption_off'
  | 'database_migrated'
  | 'database_copied'
  | 'database_refused'
  | 'events_dropped'
/**
 * Calls `listener` with every security event of this process (any thread, either backend) from
 * now on, just after the call that caused it. Returns a function that stops it. A listener that
 * throws becomes a process warning; listening never keeps the process alive.
 */
export declare function onEvent(listener: (event: HootEvent) => void): () => void

// Types of `hoot-core/client` (lib/client.mjs): the browser half of a Hoot session. No Node types:
// it compiles with `lib: ["dom", "es2022"]`.

/** A server that moved with the user, as the backend's `POST /auth/redeem` answers it. */
export interface MovedServer {
  serverId: string
  serverName?: string
  url?: string
  transport?: string
  auth?: unknown
}

/**
 * An error from the backend or the network: `code` is the backend's (`ERR_HOOT_TRANSFER_CODE`, ...),
 * `ERR_HOOT_BACKEND` for a refusal without one, or `ERR_HOOT_NETWORK` when the backend could not be reached.
 */
export declare class HootClientError extends Error {
  constructor(message: string, code: string, status?: number)
  readonly name: 'HootClientError'
  readonly code: string
  /** The HTTP status, 0 when there was none. */
  readonly status: number
}

export interface HootClientOptions {
  /** The backend's origin, e.g. `import.meta.env.VITE_BACKEND_URL || 'http://localhost:8008'`; '' (the default) is the page's own. */
  backendUrl?: string
  /** Where the user id is kept: `localStorage` when undefined. Null, or a storage that throws, keeps it in memory for the tab. */
  storage?: Storage | null
  /** The key of the user id: Hoot's `'hoot_user_id'` by default. */
  storageKey?: string
  /** The key of Hoot's persisted app store, which `redeemTransferCode` and `forget` update: `'hoot-storage'`. */
  appStorageKey?: string
  /** Refresh the token this many seconds before it expires (at most half its life): 60 by default; else a TypeError `ERR_INVALID_ARG_TYPE`. */
  refreshSeconds?: number
  /** The fetch to send with: `globalThis.fetch` by default. */
  fetch?: typeof fetch
  /** Called with the servers a redeemed code brought: by default merged into Hoot's `localStorage['hoot-storage']` (writeHootServers), throwing when nothing could be written. */
  onServers?: (servers: MovedServer[]) => unknown
  /** Called after `forget()`: by default removes Hoot's `localStorage['hoot-storage']` (its server list and cached tools). */
  onForget?: () => unknown
}

export interface CallbackParams {
  code: string | null
  state: string | null
  error: string | null
  errorDescription: string | null
}

export interface HootClient {
  /** The anonymous user id: made once with `crypto.randomUUID()`, kept in storage, or in memory for the tab where it cannot be. */
  userId(): string
  /** The session token: one request in flight however many callers, refreshed before it expires. */
  token(): Promise<string>
  /**
   * fetch with `x-hoot-token` (a path is resolved against `backendUrl`; a string body is sent as
   * JSON). When the backend refuses the token (a 401 with `expired: true`, or Hoot's `error:
   * 'Unauthorized'`) it gets a new one and sends once more; a 401 with `forgotten: true` starts a new
   * user id first. Other 401s (Hoot's `needsAuth`) are answered as they are.
   */
  fetch(path: string, init?: RequestInit): Promise<Response>
  /** Whether the user id survives a reload (false where storage is missing or throws). */
  readonly persistent: boolean
  /** `code`, `state` and any `error` of an OAuth callback URL (the page's own by default). */
  callbackParams(url?: string | URL): CallbackParams
  /**
   * Sends the OAuth callback's `code` and `state` with `connect` (Hoot's `/mcp/connect` body:
   * serverId, serverName, url, transport, auth) to `path`, and answers the response. Throws
   * `ERR_HOOT_OAUTH_DENIED` when the callback carries an `error`, `ERR_HOOT_OAUTH_CALLBACK` when it has no code.
   */
  finishOAuth(
    connect: Record<string, unknown>,
    opts?: { url?: string | URL; path?: string },
  ): Promise<{ ok: boolean; status: number; body: any }>
  /** A one-time code that moves this user to another browser; `expiresAt` in seconds since the epoch (10 minutes on). */
  createTransferCode(): Promise<{ code: string; expiresAt: number }>
  /**
   * Redeems a code from another browser (or from `npx hoot-core adopt-legacy`): this browser
   * becomes that user, and the servers the backend keeps for them go to `onServers` (`serversSaved`
   * is false when it threw: the move has happened all the same). Reload the app afterwards so it reads them.
   */
  redeemTransferCode(code: string): Promise<{ userId: string; servers: MovedServer[]; serversSaved: boolean }>
  /** Deletes this user's data on the backend and revokes their tokens, then starts a new user id and calls `onForget`. */
  forget(): Promise<void>
}

/** A session with a Hoot backend. */
export declare function createHootClient(options?: HootClientOptions): HootClient

/** Merges moved servers into Hoot's persisted store (`localStorage['hoot-storage']`); answers how many were written. */
export declare function writeHootServers(servers: MovedServer[], storage?: Storage | null, key?: string): number

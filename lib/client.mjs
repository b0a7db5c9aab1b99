// `hoot-core/client`: the browser half of a Hoot session, for a frontend to import instead of
// writing its own sessionManager and backendClient. The anonymous user id (a UUID v4 kept under
// Hoot's `hoot_user_id` key, or in memory for the tab where storage is missing or throws), the
// session token (one request in flight, refreshed before it expires, fetched again once on a 401),
// a fetch that sends it, the OAuth callback's `code` and `state`, moving to another device and
// forgetting. An ES module with no imports and no Node: it runs as it is in a browser. Typed in
// client.d.ts; what it expects of the backend is in docs/api.md (`hoot-core/client`).

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i

/** A TypeError for a wrong argument, coded as Node codes its own. */
function argument(name, expected, value) {
  const error = new TypeError(
    `${name} must be ${expected}. Received ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`,
  )
  error.code = 'ERR_INVALID_ARG_TYPE'
  return error
}

/** An error from the backend or the network, with a stable `code` and the HTTP `status` (0 when none). */
export class HootClientError extends Error {
  constructor(message, code, status = 0) {
    super(message)
    this.name = 'HootClientError'
    this.code = code
    this.status = status
  }
}

/** `globalThis.localStorage`, or null where reading it throws (sandboxed frames, some private modes). */
function defaultStorage() {
  try {
    return globalThis.localStorage ?? null
  } catch {
    return null
  }
}

/** storage.getItem, or null where the storage is missing or throws. */
function readItem(storage, key) {
  try {
    return storage ? storage.getItem(key) : null
  } catch {
    return null
  }
}

/** storage.setItem (or removeItem for null); false where the storage is missing or throws (full, denied). */
function writeItem(storage, key, value) {
  try {
    if (!storage) return false
    if (value === null) storage.removeItem(key)
    else storage.setItem(key, value)
    return true
  } catch {
    return false
  }
}

/** A UUID v4 from `crypto.randomUUID`, or from `getRandomValues` where the page is not a secure context. */
function newUserId() {
  const webcrypto = globalThis.crypto
  if (typeof webcrypto?.randomUUID === 'function') return webcrypto.randomUUID()
  const bytes = webcrypto.getRandomValues(new Uint8Array(16))
  bytes[6] = (bytes[6] & 0x0f) | 0x40
  bytes[8] = (bytes[8] & 0x3f) | 0x80
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** A JWT's `iat` and `exp` (seconds), or undefined for each it does not carry or cannot be read. */
function tokenTimes(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
    const { iat, exp } = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)))
    return { iat: Number.isFinite(iat) ? iat : undefined, exp: Number.isFinite(exp) ? exp : undefined }
  } catch {
    return {}
  }
}

/** The JSON body of `response`, or {} when it has none. */
async function jsonOf(response) {
  try {
    const body = await response.clone().json()
    return body !== null && typeof body === 'object' ? body : {}
  } catch {
    return {}
  }
}

/** A HootClientError for a refused response: the backend's code (`error`) and message where it gave them. */
async function refusal(response, what) {
  const body = await jsonOf(response)
  const code = typeof body.error === 'string' && /^[A-Za-z_]+$/.test(body.error) ? body.error : 'ERR_HOOT_BACKEND'
  const detail = typeof body.message === 'string' ? body.message : typeof body.error === 'string' ? body.error : ''
  return new HootClientError(
    `${what} failed (HTTP ${response.status})${detail ? `: ${detail}` : ''}`,
    code,
    response.status,
  )
}

/**
 * Merges servers that moved with the user (`[{ serverId, serverName, url, transport, auth }]`, as
 * the backend's `/auth/redeem` answers) into Hoot's persisted store (`localStorage['hoot-storage']`,
 * zustand's `{ state: { servers }, version }`), replacing a server of the same id and keeping the
 * others, disconnected until Hoot connects them. Returns how many were written; 0 where storage is
 * missing or throws.
 */
export function writeHootServers(servers, storage = defaultStorage(), key = 'hoot-storage') {
  if (!Array.isArray(servers) || servers.length === 0) return 0
  let persisted
  try {
    persisted = JSON.parse(readItem(storage, key) ?? 'null')
  } catch {
    persisted = null
  }
  if (persisted === null || typeof persisted !== 'object') persisted = { state: {}, version: 1 }
  if (persisted.state === null || typeof persisted.state !== 'object') persisted.state = {}
  const kept = Array.isArray(persisted.state.servers) ? persisted.state.servers : []
  const byId = new Map(kept.filter((s) => s !== null && typeof s === 'object').map((s) => [s.id, s]))
  let written = 0
  for (const server of servers) {
    if (server === null || typeof server !== 'object' || typeof server.serverId !== 'string') continue
    const { serverId, serverName, url, transport, auth } = server
    byId.set(serverId, {
      ...byId.get(serverId),
      id: serverId,
      name: typeof serverName === 'string' && serverName ? serverName : serverId,
      transport: transport ?? 'http',
      ...(url === undefined ? {} : { url }),
      ...(auth === undefined ? {} : { auth }),
      connected: false,
    })
    written++
  }
  persisted.state.servers = [...byId.values()]
  return writeItem(storage, key, JSON.stringify(persisted)) ? written : 0
}

/**
 * A session with a Hoot backend at `backendUrl` ('' for the page's own origin). See client.d.ts
 * for each option and method.
 */
export function createHootClient(options = {}) {
  if (options === null || typeof options !== 'object') throw argument('options', 'an object', options)
  const backendUrl = String(options.backendUrl ?? '').replace(/\/+$/, '')
  // null: no storage (the id lives in memory); undefined: localStorage.
  const storage = options.storage === undefined ? defaultStorage() : options.storage
  const storageKey = options.storageKey ?? 'hoot_user_id'
  const refreshSeconds = options.refreshSeconds ?? 60
  if (typeof refreshSeconds !== 'number' || !(refreshSeconds >= 0)) {
    throw argument('options.refreshSeconds', 'a number of seconds, 0 or more', refreshSeconds)
  }
  const fetchWith = options.fetch ?? ((...args) => globalThis.fetch(...args))
  /** fetch, with a network failure (offline, refused, CORS) as a HootClientError. */
  async function send(url, init) {
    try {
      return await fetchWith(url, init)
    } catch (error) {
      throw new HootClientError(
        `The Hoot backend could not be reached (${error?.message ?? error})`,
        'ERR_HOOT_NETWORK',
      )
    }
  }
  // Hoot's app store is in localStorage whatever `storage` keeps the id in.
  const appStorageKey = options.appStorageKey ?? 'hoot-storage'
  const onServers =
    options.onServers ??
    ((servers) => {
      const written = writeHootServers(servers, defaultStorage(), appStorageKey)
      if (written === 0 && servers.length > 0) throw new Error(`${appStorageKey} could not be written`)
    })
  const onForget = options.onForget ?? (() => writeItem(defaultStorage(), appStorageKey, null))

  let memoryId = null // the id where storage cannot keep it (or before it could)
  let session = null // { id, token, refreshAt (ms) }: the current user id's token
  let pending = null // the token request in flight, shared by every caller
  let generation = 0 // bumped on every change of user id, so a late answer for an old id is dropped

  const urlOf = (path) => (/^[a-z][a-z0-9+.-]*:/i.test(path) ? path : `${backendUrl}${path}`)

  function userId() {
    const stored = readItem(storage, storageKey)
    if (stored && UUID_V4.test(stored)) {
      memoryId = stored
      return stored
    }
    if (memoryId === null) memoryId = newUserId()
    // Kept for the next visit where storage works; in memory for this tab where it does not.
    writeItem(storage, storageKey, memoryId)
    return memoryId
  }

  /** Becomes user `id`, dropping the token of the one before. */
  function adopt(id) {
    generation++
    session = null
    pending = null
    memoryId = id
    writeItem(storage, storageKey, id)
  }

  /** Keeps `token` of user `id`, to be refreshed `refreshSeconds` before its end (at most half its life). */
  function keep(id, token) {
    const { iat, exp } = tokenTimes(token)
    const now = Date.now()
    if (exp === undefined) return (session = { id, token, refreshAt: Infinity })
    // The token's own life, counted on this clock from now, so a browser clock that is off does not matter.
    const life = iat === undefined ? exp - now / 1000 : exp - iat
    const margin = Math.min(refreshSeconds, life / 2)
    session = { id, token, refreshAt: now + (life - margin) * 1000 }
  }

  async function requestToken(forgottenOnce = false) {
    const mine = generation
    const id = userId()
    const response = await send(urlOf('/auth/token'), {
      method: 'POST',
      credentials: 'include',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ userId: id }),
    })
    const body = await jsonOf(response)
    if (body.forgotten === true && !forgottenOnce && mine === generation) {
      // The backend no longer accepts this id: start as a new user (at once, so no other tab
      // writes the old id back).
      adopt(newUserId())
      // The retry is the request in flight now, so callers arriving meanwhile wait for it.
      const retry = requestToken(true)
      pending = retry
      retry.then(
        () => pending === retry && (pending = null),
        () => pending === retry && (pending = null),
      )
      return retry
    }
    if (!response.ok || typeof body.token !== 'string') throw await refusal(response, 'Getting a session token')
    if (mine === generation) keep(id, body.token)
    return body.token
  }

  function token() {
    // Another tab may have changed the stored id (a redeemed code, a forget): its token is not this one's.
    if (session && session.id !== userId()) adopt(userId())
    if (session && Date.now() < session.refreshAt) return Promise.resolve(session.token)
    if (!pending) {
      const request = requestToken().finally(() => {
        if (pending === request) pending = null
      })
      pending = request
    }
    return pending
  }

  async function authenticated(path, init = {}, retried = false) {
    const sentFor = userId()
    const sent = await token()
    const headers = new Headers(init.headers)
    headers.set('x-hoot-token', sent)
    if (typeof init.body === 'string' && !headers.has('content-type')) headers.set('content-type', 'application/json')
    const response = await send(urlOf(path), { ...init, headers })
    if (response.status !== 401 || retried) return response
    const body = await jsonOf(response)
    if (body.forgotten === true) {
      // Only the first caller refused for this id starts a new one; the others follow it.
      if (userId() === sentFor) adopt(newUserId())
    }
    // The session token was refused: expired (`expired: true`), or revoked or signed by a key the
    // backend no longer has (Hoot's `error: 'Unauthorized'`). Once more with a new token, one request
    // for every caller refused with the same token. Any other 401 (Hoot's `needsAuth` from an MCP
    // server that wants OAuth) is the caller's answer: sending it again would start a second authorization.
    else if (body.expired === true || (body.error === 'Unauthorized' && body.needsAuth !== true)) {
      if (session?.token === sent) session = null
    } else return response
    return authenticated(path, init, true)
  }

  function callbackParams(url = globalThis.location?.href) {
    const params = new URL(url).searchParams
    return {
      code: params.get('code'),
      state: params.get('state'),
      error: params.get('error'),
      errorDescription: params.get('error_description'),
    }
  }

  async function postJson(path, body, what, headers = {}) {
    const response = await authenticated(path, { method: 'POST', body: JSON.stringify(body ?? {}), headers })
    if (!response.ok) throw await refusal(response, what)
    return jsonOf(response)
  }

  return {
    userId,
    token,
    fetch: authenticated,

    /** Whether the user id survives a reload (false where storage is missing or throws). */
    get persistent() {
      const id = userId()
      return readItem(storage, storageKey) === id
    },

    callbackParams,

    async finishOAuth(connect, { url, path = '/mcp/connect' } = {}) {
      const { code, state, error, errorDescription } = callbackParams(url)
      if (error)
        throw new HootClientError(
          `The authorization server refused: ${errorDescription ?? error}`,
          'ERR_HOOT_OAUTH_DENIED',
        )
      if (!code) throw new HootClientError('The callback URL carries no authorization code', 'ERR_HOOT_OAUTH_CALLBACK')
      const response = await authenticated(path, {
        method: 'POST',
        body: JSON.stringify({ ...connect, authorizationCode: code, state }),
      })
      return { ok: response.ok, status: response.status, body: await jsonOf(response) }
    },

    async createTransferCode() {
      const { code, expiresAt } = await postJson('/auth/transfer', {}, 'Creating a transfer code')
      return { code, expiresAt }
    },

    async redeemTransferCode(code) {
      // With this browser's token, so a legacy code (npx hoot-core adopt-legacy) can move the old
      // data into it; without one where it cannot be had (an ordinary code needs none).
      const current = readItem(storage, storageKey) ?? memoryId
      const sent = current ? await token().catch(() => null) : null
      const headers = sent ? { 'x-hoot-token': sent } : {}
      const response = await send(urlOf('/auth/redeem'), {
        method: 'POST',
        credentials: 'include',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify({ code: String(code ?? '').trim() }),
      })
      const body = await jsonOf(response)
      if (!response.ok || !UUID_V4.test(body.userId ?? '')) throw await refusal(response, 'Redeeming the code')
      adopt(body.userId)
      if (typeof body.token === 'string') keep(body.userId, body.token)
      const servers = Array.isArray(body.servers) ? body.servers : []
      // The code is used and this browser is that user now, whatever happens to the list.
      try {
        await onServers(servers)
        return { userId: body.userId, servers, serversSaved: true }
      } catch {
        return { userId: body.userId, servers, serversSaved: false }
      }
    },

    async forget() {
      await postJson('/auth/forget', {}, 'Forgetting this user')
      // A new id at once: were the key only removed, another open tab would write the old id back.
      adopt(newUserId())
      await onForget()
    },
  }
}

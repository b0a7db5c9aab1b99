// verifyToken's JavaScript half. The native core (verifyTokenRaw) does all of the checking: size,
// shape, header, RS256 signature with a key parsed once, exp/nbf/sub. It hands back one string:
// the claims as JSON text, or the failure's code and message. This file turns that into the
// result, with V8's own JSON.parse for the claims, which is several times faster than building
// the objects one N-API call at a time.
//
// Successful results are cached here, keyed by the whole token, so a token checked again (every
// request of a session carries the same one) costs a Map lookup and a JSON.parse, with no trip
// into native code. The cache holds only what the core verified, is never served at or after
// `exp` or before `nbf`, is bounded (two generations of 4096 tokens: a token in use survives,
// memory stays flat), and is cleared by loadKeys, so a rotated-out key stops verifying at once.
// That holds across threads too: the cache is this isolate's, but the key set is the process's,
// so each verifyToken first compares the process-wide key generation (read from memory the native
// side shares with every isolate, with no native call) with the one this cache was filled under,
// and drops the cache when another thread has loaded keys since.
// A token enters it on its second verification: one seen once (most of them, under churn or an
// attack) costs no hashing of its 700 characters and no copy into the old generation of the heap.
// First sights of valid tokens are remembered by their last 12 characters (72 bits of the
// signature), which only decide admission: a lookup always compares the whole token. Calls with
// options (a leeway) always go to the core.
'use strict'

const native = require('./native.js')
const { valueError } = require('./errors.js')

const GENERATION = 4096
// The process's key generation: a Uint32Array over the native counter every loadKeys bumps.
const keyGeneration = new Uint32Array(native.keyGeneration())
let filledUnder = keyGeneration[0]
let current = new Map()
let previous = new Map()
let seen = new Set()
let seenBefore = new Set()
/** Verifications answered from the cache (lib/metrics.js; the core counts the others). */
let cacheHits = 0

function clearCache() {
  current = new Map()
  previous = new Map()
  seen = new Set()
  seenBefore = new Set()
}

/** Remembers the tail of a token that verified (two bounded generations). */
function see(tail) {
  if (seen.size >= GENERATION) {
    seenBefore = seen
    seen = new Set()
  }
  seen.add(tail)
}

function remember(token, entry) {
  if (current.size >= GENERATION) {
    previous = current
    current = new Map()
  }
  current.set(token, entry)
}

function cached(token) {
  let entry = current.get(token)
  if (entry === undefined) {
    entry = previous.get(token)
    if (entry === undefined) return undefined
    previous.delete(token)
    remember(token, entry)
  }
  const now = Math.floor(Date.now() / 1000)
  if (now < entry.exp && (entry.nbf === undefined || entry.nbf <= now)) return entry
  if (now >= entry.exp) current.delete(token)
  return undefined
}

const firstString = (a, b) => (typeof a === 'string' ? a : typeof b === 'string' ? b : undefined)

/** Hoot's `req.portkeyContext`: `portkey_oid` else `organisation_id`, and so on. */
function portkeyContext(payload) {
  const portkey = {}
  const orgId = firstString(payload.portkey_oid, payload.organisation_id)
  if (orgId !== undefined) portkey.orgId = orgId
  const workspace = firstString(payload.portkey_workspace, payload.workspace_slug)
  if (workspace !== undefined) portkey.workspace = workspace
  const scope = 'scope' in payload ? payload.scope : payload.scopes
  portkey.scope = Array.isArray(scope)
    ? scope.filter((s) => typeof s === 'string')
    : typeof scope === 'string'
      ? scope.split(/\s+/).filter(Boolean)
      : []
  return portkey
}

/**
 * The result for a verified claims set. The user id is `sub` in lower case, whatever case the
 * signer wrote it in (one browser secret, one tenant); a cache hit passes the one it computed.
 */
function success(claims, userId) {
  const payload = JSON.parse(claims)
  return {
    valid: true,
    userId: userId ?? payload.sub.toLowerCase(),
    payload,
    expiresAt: payload.exp,
    portkey: portkeyContext(payload),
  }
}

/** The core's `"<code> <message>"` as a failure result. */
function failure(outcome) {
  const space = outcome.indexOf(' ')
  const code = outcome.slice(0, space)
  return { valid: false, expired: code === 'ERR_JWT_EXPIRED', code, error: outcome.slice(space + 1) }
}

function verifyToken(token, opts) {
  // Read before verifying: a load racing this call bumps it after installing its keys, so an
  // entry made now is dropped by the next call at the latest.
  if (keyGeneration[0] !== filledUnder) {
    clearCache()
    filledUnder = keyGeneration[0]
  }
  const cacheable = opts === undefined && typeof token === 'string'
  // Twelve characters, so V8 copies them rather than keeping the whole token alive.
  const tail = cacheable ? token.slice(-12) : undefined
  const again = cacheable && (seen.has(tail) || seenBefore.has(tail))
  if (again) {
    const entry = cached(token)
    if (entry !== undefined) {
      cacheHits++
      return success(entry.claims, entry.userId)
    }
  }
  // The claims as JSON text, or "<code> <message>" when the token does not verify.
  const outcome = native.verifyTokenRaw(token, opts)
  if (outcome.charCodeAt(0) !== 123 /* { */) return failure(outcome)
  const result = success(outcome)
  // Only tokens that verified are remembered: forged ones cannot push real ones out.
  if (again) remember(token, { claims: outcome, exp: result.expiresAt, nbf: result.payload.nbf, userId: result.userId })
  else if (cacheable) see(tail)
  return result
}

const KEY_SOURCE_OPTIONS = ['privateKeyPath', 'jwksPath', 'privateKeyJwk', 'jwks', 'keyDir']

/**
 * The key set from files, inline JSON or ~/.hoot/keys, made the process's; synchronous, always.
 * Several servers on one PostgreSQL database share one key set, which lives in the database and
 * is `await db.loadKeys()`: so with $HOOT_DATABASE_URL set to a postgres:// URL and no option
 * naming a key source, a local key here would split the replicas, and this throws ERR_HOOT_KEYS.
 */
function loadKeys(opts) {
  const given = opts !== undefined && opts !== null
  // Options of the wrong type are refused by the native reader, which names them.
  if (given && typeof opts !== 'object') return loadLocalKeys(opts)
  if (given && opts.database !== undefined) {
    throw valueError(
      'opts.database',
      'is not a key option: the key set several servers share in PostgreSQL is `await openDatabase(url).loadKeys()`',
    )
  }
  const sourceGiven = given && KEY_SOURCE_OPTIONS.some((name) => opts[name] !== undefined)
  if (!sourceGiven && /^postgres(ql)?:\/\//i.test(process.env.HOOT_DATABASE_URL ?? '')) {
    const error = new Error(
      'HOOT_DATABASE_URL names a PostgreSQL database, whose servers share one key set: load it with ' +
        '`await openDatabase().loadKeys()` (a local key from loadKeys() would sign tokens the other servers refuse), ' +
        'or name key files (privateKeyPath, jwksPath) to use those',
    )
    error.code = 'ERR_HOOT_KEYS'
    throw error
  }
  return loadLocalKeys(opts)
}

/** loadKeys without the PostgreSQL check: for a Database on SQLite, which asked for these keys. */
function loadLocalKeys(opts) {
  try {
    return native.loadKeys(opts)
  } finally {
    clearCache()
  }
}

module.exports = { verifyToken, loadKeys, loadLocalKeys, verifyCacheHits: () => cacheHits }

// One OAuth refresh per credential, for createOAuthProvider (lib/provider.js): the `fetch` a
// provider gives the MCP SDK's transport. Pure JavaScript that never loads the addon, as the
// provider is.
//
// Why below the SDK: every holder of one credential (concurrent calls on one transport, several
// transports, processes, replicas) runs the SDK's refresh grant with the same refresh token when
// the access token expires. An authorization server that rotates refresh tokens answers all but
// the first with invalid_grant (with reuse detection it revokes the whole family), and the SDK
// then deletes the tokens the first just saved. The SDK's transport also fails a call whose 401
// arrives while another call's authorization has just completed ("Server returned 401 after
// successful authentication"). So this fetch
// - sends one refresh grant per refresh token: one per process (a shared promise), and, over a
//   store that can claim the refresh (hoot-core's, on SQLite or PostgreSQL), one across processes
//   and replicas; the others wait and answer the SDK with the tokens the holder saved;
// - retries a request the resource server refused with an access token that is no longer the
//   stored one, with the stored one, and lets one 401 per refused token reach the SDK (whose
//   authorization refreshes), holding the others until the tokens change.
'use strict'

const { count } = require('./counters.js')

/** How long a holder's claim on a refresh lasts: its token request is cut off then. */
const DEFAULT_LEASE_MS = 10_000
/** How long the other holders wait for the holder's tokens before failing the call. */
const DEFAULT_WAIT_MS = 15_000
/** The longest either may be (the store's own bound on a lease). */
const MAX_MS = 600_000
/** Between two looks at the store while another process holds the refresh. */
const POLL_MS = 25
const MAX_POLL_MS = 250

/** What one credential's holders in this process share, by credential. */
const credentials = new Map()
/** Past this many credentials, idle ones are forgotten (the oldest first). */
const MAX_CREDENTIALS = 10_000

/**
 * The shared state of a credential (a store's user and server): the refresh in flight per refresh
 * token, the refused access tokens already handed to the SDK, the tokens this process last saved
 * or adopted from a refresh, and who waits for the stored tokens to change.
 */
function credentialState(key) {
  let state = credentials.get(key)
  if (!state) {
    if (credentials.size >= MAX_CREDENTIALS) forgetIdle()
    state = {
      flights: new Map(),
      // The refused access tokens whose 401 went to the SDK, and when.
      passed: new Map(),
      waiters: new Set(),
      // The tokens this process last saved or adopted from a refresh: the SDK saves them again.
      settled: null,
      // The refresh token the authorization server last refused: which stored tokens an
      // invalid_grant is about.
      rejected: null,
      // The access tokens the resource server refused in this process (the last few).
      refused: new Set(),
    }
    credentials.set(key, state)
  }
  return state
}

function forgetIdle() {
  for (const [key, state] of credentials) {
    if (credentials.size < MAX_CREDENTIALS / 2) return
    if (state.flights.size === 0 && state.waiters.size === 0) credentials.delete(key)
  }
}

/** Remembers an access token the resource server refused (the last few per credential). */
function noteRefused(state, accessToken) {
  state.refused.add(accessToken)
  if (state.refused.size > 16) state.refused.delete(state.refused.values().next().value)
}

/**
 * Whether `tokens` are newer than what the SDK wants to refresh: their refresh token is another,
 * or their access token was never refused here while others were (the SDK read them after its
 * 401, once another holder had refreshed, and would otherwise refresh again at once). A process
 * whose resource requests do not go through this fetch sees no refusal, and refreshes as asked.
 */
function newerThanAsked(state, tokens, refreshToken) {
  if (tokens.refresh_token !== refreshToken) return true
  return state.refused.size > 0 && !state.refused.has(tokens.access_token)
}

/** Wakes whoever waits for this credential's tokens to change, and lets the next 401 through. */
function changed(state) {
  state.passed.clear()
  for (const wake of state.waiters) wake()
  state.waiters.clear()
}

/** Resolves at the next `changed(state)`, or after `ms`. */
function nextChange(state, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      state.waiters.delete(wake)
      resolve()
    }, ms)
    timer.unref?.()
    const wake = () => {
      clearTimeout(timer)
      resolve()
    }
    state.waiters.add(wake)
  })
}

/** `signal` (if any) that also aborts after `ms`. */
function withDeadline(signal, ms) {
  const deadline = AbortSignal.timeout(ms)
  if (!signal) return deadline
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([signal, deadline])
  // Node 18 has no AbortSignal.any.
  const both = new AbortController()
  for (const one of [signal, deadline]) {
    if (one.aborted) both.abort(one.reason)
    else one.addEventListener('abort', () => both.abort(one.reason), { once: true })
  }
  return both.signal
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** `promise`, or `fallback()` once `ms` have passed: no caller waits on a fetch that never ends. */
function within(promise, ms, fallback) {
  let timer
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(fallback()), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/**
 * The form fields of a token request (the SDK sends URLSearchParams; a string counts only when the
 * request says it is a form), or null: a JSON body is never read as one, whatever text it holds.
 */
function formOf(body, headers) {
  if (body instanceof URLSearchParams) return body
  const type = headers.get('content-type') || ''
  if (typeof body === 'string' && /^application\/x-www-form-urlencoded\b/i.test(type)) return new URLSearchParams(body)
  return null
}

/** The request's headers, whatever form `init.headers` takes. */
function headersOf(input, init) {
  const headers = new Headers(input instanceof Request ? input.headers : undefined)
  if (init && init.headers) for (const [name, value] of new Headers(init.headers)) headers.set(name, value)
  return headers
}

function bearerOf(headers) {
  const match = /^bearer\s+(\S+)\s*$/i.exec(headers.get('authorization') || '')
  return match ? match[1] : null
}

/** Headers that describe the body as it travelled, not the decoded text a capture keeps. */
const TRANSFER_HEADERS = new Set(['content-encoding', 'content-length', 'transfer-encoding'])

/** A response captured as data, so every waiter gets a Response of its own. */
async function capture(response) {
  return {
    body: await response.text(),
    status: response.status,
    statusText: response.statusText,
    headers: [...response.headers].filter(([name]) => !TRANSFER_HEADERS.has(name)),
  }
}

const json = (status, value) => ({
  body: JSON.stringify(value),
  status,
  statusText: '',
  headers: [['content-type', 'application/json']],
})

/**
 * The provider's `fetch`: `base` (the fetch to send with) with the refresh coordinated over
 * `backing` (lib/provider.js) for the credential `state`.
 */
function coordinatedFetch({ base, backing, state, leaseMs, waitMs }) {
  const unavailable = (why) => {
    count('refresh', 'unavailable')
    return json(503, { error: 'temporarily_unavailable', error_description: `hoot-core: ${why}` })
  }
  const removed = () => {
    count('refresh', 'removed')
    return json(400, { error: 'invalid_grant', error_description: 'the stored tokens were removed' })
  }

  /** The tokens another holder saved for `refreshToken` (as a token response), or why none. */
  async function refreshOnce(input, init, refreshToken) {
    const holder = randomId()
    const deadline = Date.now() + waitMs
    let pause = POLL_MS
    let claimedAt
    for (;;) {
      const stored = await backing.tokensVersioned()
      // Removed since the SDK read them (the user disconnected, or another holder's refresh was
      // refused): a grant now could only bring deleted tokens back.
      if (stored === undefined) return removed()
      if (newerThanAsked(state, stored.value, refreshToken)) return adopt(stored.value)
      claimedAt = Date.now()
      if (await backing.claim(holder, leaseMs)) break
      if (Date.now() >= deadline)
        return unavailable(`another holder has been refreshing these tokens for over ${waitMs} ms`)
      await delay(pause)
      pause = Math.min(pause * 2, MAX_POLL_MS)
    }
    try {
      // The last holder may have saved just before its claim ended.
      const stored = await backing.tokensVersioned()
      if (stored === undefined) return removed()
      if (newerThanAsked(state, stored.value, refreshToken)) return adopt(stored.value)
      // The grant must end, answer saved, while the claim lasts: a fifth of the lease is kept for
      // the save and for clocks that differ between replicas.
      const budget = claimedAt + leaseMs - Math.ceil(leaseMs / 5) - Date.now()
      if (budget <= 0) return unavailable('the refresh claim ended before the token request could be sent')
      return await grant(input, init, refreshToken, stored.value, budget)
    } finally {
      await backing.release(holder).catch(() => {})
    }
  }

  /**
   * Sends the refresh grant, cut off after `budget` ms (the lease, out of coordination). With
   * `stored` (the tokens it refreshes), the answer is saved before the claim ends, unless another
   * holder's tokens have replaced them since; those are answered instead.
   */
  async function grant(input, init, refreshToken, stored, budget = leaseMs) {
    // The caller's own signal is left out: the request is shared, and one caller giving up must
    // not fail the others.
    const { signal: _ignored, ...rest } = init || {}
    const outcome = await capture(await base(input, { ...rest, signal: AbortSignal.timeout(budget) }))
    let answer = null
    try {
      answer = JSON.parse(outcome.body)
    } catch {}
    const granted = outcome.status >= 200 && outcome.status < 300
    count('refresh', granted ? 'granted' : answer && answer.error === 'invalid_grant' ? 'refused' : 'failed')
    if (stored && granted && answer && typeof answer.access_token === 'string') {
      const now = await backing.tokensVersioned()
      if (now === undefined) return removed()
      if (now.value.refresh_token !== refreshToken) return adopt(now.value)
      // As the SDK saves them: the refresh token kept when the server sends none, stamped with
      // the authorization server the tokens came from.
      const tokens = { refresh_token: refreshToken, ...answer }
      if (stored.issuer !== undefined) tokens.issuer = stored.issuer
      await backing.saveTokens(tokens)
      settle(tokens)
    } else if (answer && answer.error === 'invalid_grant') {
      state.rejected = refreshToken
    }
    return outcome
  }

  /** Another holder's tokens, answered as the token endpoint would have (which names no issuer). */
  function adopt(tokens) {
    count('refresh', 'adopted')
    settle(tokens)
    const { issuer, ...answer } = tokens
    return json(200, answer)
  }

  function settle(tokens) {
    state.settled = tokens
    changed(state)
  }

  /**
   * The refresh of `refreshToken`, shared by every holder of the credential in this process, and
   * waited for at most as long as it may last (a `fetch` that ignores its signal cannot hang them).
   */
  function sharedRefresh(input, init, refreshToken) {
    let flight = state.flights.get(refreshToken)
    if (flight) count('refresh', 'joined')
    else {
      const run = backing.coordinates ? refreshOnce(input, init, refreshToken) : grant(input, init, refreshToken)
      flight = run.finally(() => state.flights.delete(refreshToken))
      state.flights.set(refreshToken, flight)
    }
    return within(flight, waitMs + leaseMs, () => unavailable(`the refresh took over ${waitMs + leaseMs} ms`))
  }

  /** The stored access token when it is not `refused`, else null. */
  async function newerThan(refused) {
    const tokens = await backing.tokens()
    const access = tokens && tokens.access_token
    return typeof access === 'string' && access !== refused ? access : null
  }

  function resend(input, init, access) {
    const headers = headersOf(input, init)
    headers.set('authorization', `Bearer ${access}`)
    return base(input, { ...init, headers })
  }

  return async function fetch(input, init) {
    const method = ((init && init.method) || (input instanceof Request ? input.method : 'GET')).toUpperCase()
    const form =
      method === 'POST' && !(input instanceof Request) && init ? formOf(init.body, headersOf(input, init)) : null
    const refreshToken = form && form.get('grant_type') === 'refresh_token' ? form.get('refresh_token') : null
    if (refreshToken) {
      const outcome = await sharedRefresh(input, init, refreshToken)
      return new Response(outcome.body, outcome)
    }
    const response = await base(input, init)
    // A request holding a body that cannot be sent twice is never resent.
    if (response.status !== 401 || input instanceof Request) return response
    const refused = bearerOf(headersOf(input, init))
    if (refused === null) return response
    noteRefused(state, refused)
    // Refused with a token that is no longer the stored one: another holder refreshed.
    let access = await newerThan(refused)
    if (access === null) {
      // The first 401 for this token goes to the SDK, whose authorization refreshes; the others
      // wait for the tokens to change instead of failing in the transport or refreshing again.
      const passedAt = state.passed.get(refused)
      if (passedAt === undefined || Date.now() - passedAt > waitMs) {
        if (state.passed.size >= 64) state.passed.clear()
        state.passed.set(refused, Date.now())
        return response
      }
      await nextChange(state, waitMs)
      access = await newerThan(refused)
      if (access === null) {
        // Nothing changed: the SDK's authorization failed without a word. The next 401 goes to it.
        state.passed.delete(refused)
        return response
      }
    }
    await response.body?.cancel()
    count('resent', 'newer_tokens')
    const again = await resend(input, init, access)
    if (again.status === 401) noteRefused(state, access)
    return again
  }
}

/** 16 random bytes as hex, from Web Crypto (Node 19+, Workers) or node:crypto (Node 18). */
function randomId() {
  const bytes = new Uint8Array(16)
  const webcrypto = globalThis.crypto || require('crypto').webcrypto
  webcrypto.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

module.exports = {
  DEFAULT_LEASE_MS,
  DEFAULT_WAIT_MS,
  MAX_MS,
  credentialState,
  changed,
  coordinatedFetch,
  randomId,
}

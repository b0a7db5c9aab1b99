// hoot-core/client in real Chromium (Debian's, /usr/bin/chromium, or $HOOT_CHROMIUM; .ci/run installs
// it) against the example server and its page, with two browser contexts as two browsers: an OAuth
// connect whose `state` is checked, a code from one redeemed in the other (which then shows and uses
// the first one's server), forget, storage that throws, token refresh, and one token request for
// many callers. Driven with playwright-core.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { chromium } from 'playwright-core'

import { SignJWT } from 'jose'

import { loadKeys, openDatabase, verifyToken } from '../lib/index.js'
import { createApp } from '../examples/express/server.mjs'
import { hootKeyFiles, tempDir } from './helpers.mjs'
import { startOAuthMcpServer } from './mcp-fixture.mjs'

const CHROMIUM = process.env.HOOT_CHROMIUM || '/usr/bin/chromium'
let browser, server, app, mcp, base, warnings, keys

before(async () => {
  process.env.HOME = tempDir('browser-home')
  keys = await hootKeyFiles(tempDir('browser-keys'))
  loadKeys({ privateKeyPath: keys.privateKeyPath, jwksPath: keys.jwksPath })
  mcp = await startOAuthMcpServer()
  server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  base = `http://127.0.0.1:${server.address().port}`
  app = createApp({
    frontendUrl: base,
    demoMcpUrl: mcp.url.href,
    db: openDatabase(join(tempDir('browser-db'), 'hoot-mcp.db')),
  })
  server.on('request', app)
  // The provider's refusals, logged with their reasons.
  warnings = []
  const warn = console.warn
  console.warn = (message, ...rest) =>
    String(message).startsWith('hoot-core:') ? warnings.push(message) : warn(message, ...rest)
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 60_000 })
})

after(async () => {
  await browser?.close()
  await app?.closeAll()
  await app?.db.close()
  if (server) await new Promise((resolve) => server.close(resolve))
  await mcp?.close()
})

/** A new browser (context) on the example's page, ready, with its requests counted by path. */
async function openPage({ init, clock = false } = {}) {
  const context = await browser.newContext()
  context.setDefaultTimeout(20_000)
  if (init) await context.addInitScript(init)
  // A clock the test can move (it runs on from now until moved).
  if (clock) await context.clock.install()
  const page = await context.newPage()
  page.requests = []
  page.responses = []
  page.on('request', (request) => page.requests.push(new URL(request.url()).pathname))
  page.on('response', (response) =>
    page.responses.push({ path: new URL(response.url()).pathname, status: response.status() }),
  )
  await page.goto(`${base}/`)
  await page.waitForSelector('body[data-ready="true"]')
  return page
}

const status = (page) => page.locator('#status').textContent()
const userIdOf = (page) => page.locator('#user-id').textContent()

test(
  'two browsers: an OAuth connect with state checked, a move to the other with its servers, forget',
  { timeout: 120_000 },
  async () => {
    const a = await openPage()
    const userA = await userIdOf(a)
    assert.match(userA, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    assert.equal(await a.evaluate(() => localStorage.getItem('hoot_user_id')), userA, "kept under Hoot's key")

    // Connect: the backend answers needsAuth, the page goes to the authorization server, which sends it
    // back to /oauth/callback with code and state; the client sends both.
    await a.click('#connect')
    await a.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Connected'))
    const callback = a.requests.find((path) => path === '/oauth/callback')
    assert.ok(callback, 'the authorization server sent the browser back to the callback page')
    assert.deepEqual(
      a.requests.filter((path) => path === '/mcp/connect' || path === '/authorize' || path === '/oauth/callback'),
      ['/mcp/connect', '/authorize', '/oauth/callback', '/mcp/connect'],
      'the 401 that asks for OAuth is not sent again (that would start a second authorization)',
    )
    assert.equal(await a.locator('#servers li').count(), 1)
    await a.click('#servers li .call')
    await a.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Called'))
    const clientId = await a.locator('#result').textContent()
    assert.ok(clientId.length > 0)

    // A forged callback (a state this user was never given) is refused before the code is used, and logged.
    await a.evaluate(() =>
      sessionStorage.setItem(
        'hoot-example-pending',
        JSON.stringify({ serverId: 'demo', serverName: 'Demo', url: 'http://127.0.0.1:9/mcp', transport: 'http' }),
      ),
    )
    const before = warnings.length
    await a.goto(`${base}/oauth/callback?code=stolen&state=${'ab'.repeat(32)}`)
    await a.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Not connected'))
    assert.match(
      warnings.slice(before).join('\n'),
      /refused an OAuth callback for MCP server "demo": its state is not the one/,
    )
    // A callback without state is refused too (no transition set).
    await a.evaluate(() =>
      sessionStorage.setItem(
        'hoot-example-pending',
        JSON.stringify({ serverId: 'demo', serverName: 'Demo', url: 'http://127.0.0.1:9/mcp', transport: 'http' }),
      ),
    )
    await a.goto(`${base}/oauth/callback?code=stolen`)
    await a.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Not connected'))
    assert.match(warnings.slice(before).join('\n'), /it carries no state/)
    assert.deepEqual(app.connections.servers(userA), ['demo'], "the refused callbacks left A's live connection")

    // Another browser redeems A's code: it becomes A, shows A's server, and calls its tool with A's
    // OAuth tokens (no new authorization).
    await a.click('#transfer')
    await a.waitForFunction(() => document.querySelector('#transfer-code').textContent.length > 0)
    const code = await a.locator('#transfer-code').textContent()
    const b = await openPage()
    assert.notEqual(await userIdOf(b), userA)
    await b.fill('#redeem-code', code)
    await b.click('#redeem')
    await b.waitForFunction(() => document.querySelector('#status').textContent.startsWith('This browser is that user'))
    assert.equal(await userIdOf(b), userA)
    assert.equal(await b.evaluate(() => localStorage.getItem('hoot_user_id')), userA)
    await b.reload()
    await b.waitForSelector('body[data-ready="true"]')
    assert.equal(await b.locator('#servers li').count(), 1, "A's server is in B's list after a reload (hoot-storage)")
    const stored = await b.evaluate(() => JSON.parse(localStorage.getItem('hoot-storage')).state.servers)
    assert.deepEqual(
      stored.map(({ id, name, url, transport, connected }) => ({ id, name, url, transport, connected })),
      [{ id: 'demo', name: 'Demo MCP server', url: mcp.url.href, transport: 'http', connected: false }],
    )
    const authorizationsBefore = mcp.stats.authorizations
    await b.click('#servers li .connect')
    await b.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Connected'))
    await b.click('#servers li .call')
    await b.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Called'))
    assert.equal(await b.locator('#result').textContent(), clientId, "B calls the tool as A's OAuth client")
    assert.equal(mcp.stats.authorizations, authorizationsBefore, 'no new authorization')

    // Forget on B: a new id, no servers; the old user's rows are gone on the backend.
    await b.click('#forget')
    await b.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Forgotten'))
    const fresh = await userIdOf(b)
    assert.notEqual(fresh, userA)
    assert.equal(await b.evaluate(() => localStorage.getItem('hoot_user_id')), fresh)
    assert.equal(await b.evaluate(() => localStorage.getItem('hoot-storage')), null)
    assert.equal(await b.locator('#servers li').count(), 0)
    assert.deepEqual(await app.db.store(userA).servers(), [])
    // A's page holds a token the forget revoked: its next call is refused once, gets a new token, and goes on.
    const from = a.responses.length
    assert.equal(await a.evaluate(async () => (await window.hoot.fetch('/mcp/connections')).status), 200)
    assert.deepEqual(
      a.responses.slice(from).map((r) => `${r.status} ${r.path}`),
      ['401 /mcp/connections', '200 /auth/token', '200 /mcp/connections'],
    )
    await a.context().close()
    await b.context().close()
  },
)

test('storage that throws: the id lives in memory for the tab, and everything works', { timeout: 60_000 }, async () => {
  const page = await openPage({
    init: () => {
      const denied = () => {
        throw new DOMException('The operation is insecure.', 'SecurityError')
      }
      Object.defineProperty(window, 'localStorage', { get: denied })
      Object.defineProperty(window, 'sessionStorage', { get: denied })
    },
  })
  assert.match(await userIdOf(page), /^[0-9a-f-]{36}$/)
  assert.equal(await page.locator('#persistent').textContent(), '(in memory for this tab)')
  assert.match(await page.locator('#token').textContent(), /^ey/)
  const result = await page.evaluate(async () => {
    const { createHootClient } = await import('/client.mjs')
    const hoot = createHootClient()
    const first = hoot.userId()
    const response = await hoot.fetch('/mcp/connections')
    const { code } = await hoot.createTransferCode()
    // A storage whose every method throws (full, or denied): the same.
    const fail = () => {
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError')
    }
    const full = createHootClient({ storage: { getItem: fail, setItem: fail, removeItem: fail } })
    const fullId = full.userId()
    const fullStatus = (await full.fetch('/mcp/connections')).status
    return {
      same: first === hoot.userId() && fullId === full.userId() && !full.persistent,
      status: response.status,
      fullStatus,
      code,
    }
  })
  assert.deepEqual(
    { ...result, code: typeof result.code },
    { same: true, status: 200, fullStatus: 200, code: 'string' },
  )
  await page.context().close()
})

test(
  'twenty calls at once make one token request; a token near its end is refreshed before the call',
  { timeout: 60_000 },
  async () => {
    const page = await openPage({ clock: true })
    const outcome = await page.evaluate(async () => {
      const { createHootClient } = await import('/client.mjs')
      localStorage.removeItem('hoot_user_id')
      window.fresh = createHootClient()
      const responses = await Promise.all(Array.from({ length: 20 }, () => window.fresh.fetch('/mcp/connections')))
      return { statuses: [...new Set(responses.map((r) => r.status))], token: await window.fresh.token() }
    })
    assert.deepEqual(outcome.statuses, [200])
    assert.equal(
      page.requests.filter((path) => path === '/auth/token').length,
      2,
      'one for the page, one for the twenty calls',
    )

    // 59 minutes 10 seconds on, in the page: the hour-long token is within its last minute, still valid
    // at the backend, and the client gets a new one before the call rather than after a refusal.
    await page.clock.fastForward('59:10')
    const from = page.responses.length
    assert.equal(await page.evaluate(async () => (await window.fresh.fetch('/mcp/connections')).status), 200)
    assert.deepEqual(
      page.responses.slice(from).map((r) => `${r.status} ${r.path}`),
      ['200 /auth/token', '200 /mcp/connections'],
    )
    await page.context().close()
  },
)

test(
  'a token the backend finds expired is fetched again once, and the call succeeds',
  { timeout: 60_000 },
  async () => {
    const context = await browser.newContext()
    context.setDefaultTimeout(20_000)
    // The backend's first answer to /auth/token is a token that expired an hour ago (signed with its key,
    // claiming a life of an hour): to the client a fresh token, to the backend an expired one.
    let served = false
    await context.route('**/auth/token', async (route) => {
      if (served) return route.continue()
      served = true
      const { userId } = route.request().postDataJSON()
      const now = Math.floor(Date.now() / 1000)
      const token = await new SignJWT({ portkey_oid: 'org', portkey_workspace: 'ws', scope: [] })
        .setProtectedHeader({ alg: 'RS256', kid: keys.kid, typ: 'JWT' })
        .setSubject(userId)
        .setIssuedAt(now - 7200)
        .setExpirationTime(now - 3600)
        .sign(keys.privateKey)
      await route.fulfill({ json: { success: true, token, tokenType: 'jwt' } })
    })
    const page = await context.newPage()
    const responses = []
    page.on('response', (response) => responses.push(`${response.status()} ${new URL(response.url()).pathname}`))
    await page.goto(`${base}/`)
    await page.waitForSelector('body[data-ready="true"]')
    const expired = await page.evaluate(() => window.hoot.token())
    assert.equal(verifyToken(expired).expired, true)
    const from = responses.length
    assert.equal(await page.evaluate(async () => (await window.hoot.fetch('/mcp/connections')).status), 200)
    assert.deepEqual(responses.slice(from), ['401 /mcp/connections', '200 /auth/token', '200 /mcp/connections'])
    await context.close()
  },
)

test(
  'two tabs of one browser: a forget in one is followed by the other, which never writes the old id back',
  { timeout: 60_000 },
  async () => {
    const first = await openPage()
    const second = await first.context().newPage()
    await second.goto(`${base}/`)
    await second.waitForSelector('body[data-ready="true"]')
    const old = await first.evaluate(() => window.hoot.userId())
    assert.equal(await second.evaluate(() => window.hoot.userId()), old)
    await first.evaluate(() => window.hoot.forget())
    // Chromium hands a tab's localStorage write to its other tabs a moment later (another renderer
    // process): the second tab acts once the forget has reached its storage, as a person's next click would.
    await second.waitForFunction((id) => localStorage.getItem('hoot_user_id') !== id, old, { timeout: 10_000 })
    // The second tab acts first: it follows the stored id (a token for the new user, asked for before
    // any call, so none is refused), and does not write the old one back.
    const responses = []
    second.on('response', (response) => responses.push(`${response.status()} ${new URL(response.url()).pathname}`))
    const token = await second.evaluate(async () => {
      await window.hoot.fetch('/mcp/connections')
      return window.hoot.token()
    })
    assert.deepEqual(responses, ['200 /auth/token', '200 /mcp/connections'])
    const fresh = await first.evaluate(() => window.hoot.userId())
    assert.notEqual(fresh, old)
    assert.equal(verifyToken(token).userId, fresh)
    assert.equal(await first.evaluate(() => localStorage.getItem('hoot_user_id')), fresh)
    await first.context().close()
  },
)

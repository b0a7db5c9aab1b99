// PostgreSQL failing under a running store: its connections terminated by the server
// (pg_terminate_backend, what a restart or a failover does to them), and the server unreachable at
// start, lost mid-run and back (through a TCP proxy this test opens and closes), and a server that
// accepts connections but never answers. Calls fail with ERR_HOOT_DB within the documented
// timeouts, the pool reconnects by itself, and every acknowledged write is there afterwards. Each
// test has a timeout and undoes what it started (proxies, loops of calls) even when it fails:
// under load a failed timing check once left a proxy listening, and the file's process (and
// `npm test`) waited on it for good.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import net from 'node:net'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import { openDatabase } from '../lib/index.js'
import { root, runIsolated } from './helpers.mjs'
import { PG_TIMEOUT, eventually, freshDatabase, postgresAvailable, rows, terminate, withDatabase } from './postgres.mjs'

/** A TCP proxy to the test server that can be closed (every connection cut) and opened again. */
function proxy(target) {
  const { hostname, port } = new URL(target)
  const sockets = new Set()
  let mode = 'forward'
  const server = net.createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => {})
    if (mode === 'blackhole') return // accepted, never answered
    const upstream = net.connect(Number(port || 5432), hostname)
    sockets.add(upstream)
    upstream.on('close', () => sockets.delete(upstream))
    upstream.on('error', () => client.destroy())
    client.on('error', () => upstream.destroy())
    client.pipe(upstream).pipe(client)
  })
  let listening = null
  return {
    /** Connections open now stop passing anything either way (a network gone silent); new ones work. */
    freeze() {
      for (const socket of sockets) {
        socket.unpipe()
        socket.pause()
      }
    },
    async open(how = 'forward', at = 0) {
      mode = how
      await new Promise((r) => server.listen(at, '127.0.0.1', r))
      listening = server.address().port
      return listening
    },
    /** Cuts every connection and stops listening (again: a no-op). */
    async close() {
      for (const s of sockets) s.destroy()
      if (server.listening) await new Promise((r) => server.close(r))
    },
    get port() {
      return listening
    },
  }
}

describe('PostgreSQL faults', () => {
  if (!postgresAvailable('faults')) return

  test(
    'connections terminated during a run of writes: clear errors, recovery, nothing acknowledged lost',
    PG_TIMEOUT,
    async (t) => {
      const url = await freshDatabase('terminate', { application_name: 'hoot-fault' })
      const db = openDatabase(url, { poolSize: 4, connectTimeoutMs: 2000 })
      const user = randomUUID()
      const store = db.store(user)
      const acknowledged = []
      const failures = []
      let stop = false
      // Stopped however the test ends: an endless loop of calls would keep this process alive.
      t.after(() => {
        stop = true
      })
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let n = 0; !stop; n++) {
          const server = `w${w}-${n}`
          try {
            await store.saveTokens(server, { w, n })
            acknowledged.push(server)
          } catch (error) {
            failures.push(error)
          }
        }
      })
      await eventually(() => acknowledged.length > 100, 10_000, 'writes before the fault')
      let terminated = 0
      for (let i = 0; i < 5; i++) {
        terminated += await terminate(url, 'hoot-fault')
        const before = acknowledged.length
        await eventually(() => acknowledged.length > before + 20, 10_000, `writes after termination ${i + 1}`)
      }
      stop = true
      await Promise.all(writers)
      assert.ok(terminated >= 5, `${terminated} connections terminated`)
      for (const error of failures) {
        assert.equal(error.code, 'ERR_HOOT_DB', error.message)
        assert.match(error.message, /PostgreSQL at /)
      }
      const stored = new Set(
        (await rows(url, 'SELECT server_id FROM oauth_tokens WHERE user_id = $1', [user])).map((r) => r.server_id),
      )
      const lost = acknowledged.filter((s) => !stored.has(s))
      assert.deepEqual(lost, [], 'every acknowledged write is stored')
      await db.close()
    },
  )

  test(
    'unreachable at start, back, lost mid-run, back again: ERR_HOOT_DB fast, then recovery by itself',
    PG_TIMEOUT,
    async (t) => {
      const url = await freshDatabase('outage')
      const name = new URL(url).pathname.slice(1)
      const gate = proxy(url)
      t.after(() => gate.close())
      const port = await gate.open()
      await gate.close() // nothing listens there now
      const viaProxy = withDatabase(`postgres://${new URL(url).username}@127.0.0.1:${port}/x`, name, {
        sslmode: 'disable',
      })
      const db = openDatabase(viaProxy, { connectTimeoutMs: 1000, statementTimeoutMs: 1000 })
      const store = db.store(randomUUID())

      let started = Date.now()
      await assert.rejects(store.saveTokens('s', { n: 0 }), { code: 'ERR_HOOT_DB' })
      assert.ok(Date.now() - started < 2500, `refused in ${Date.now() - started} ms`)

      await gate.open('forward', port)
      await store.saveTokens('s', { n: 1 })
      assert.deepEqual(await store.tokens('s'), { n: 1 })

      await gate.close()
      started = Date.now()
      await assert.rejects(store.saveTokens('s', { n: 2 }), { code: 'ERR_HOOT_DB' })
      await assert.rejects(store.tokens('s'), { code: 'ERR_HOOT_DB' })
      assert.ok(Date.now() - started < 5000, `failed in ${Date.now() - started} ms`)

      await gate.open('forward', port)
      await eventually(async () => (await store.tokens('s').catch(() => null))?.n === 1, 5000, 'the pool reconnects')
      await store.saveTokens('s', { n: 3 })
      assert.deepEqual(await store.tokens('s'), { n: 3 })
      await gate.close()
      await db.close()
    },
  )

  test(
    'a connection that goes silent mid-run: that call times out, and the next ones do not queue behind it',
    PG_TIMEOUT,
    async (t) => {
      const url = await freshDatabase('silent')
      const gate = proxy(url)
      t.after(() => gate.close())
      const port = await gate.open()
      const name = new URL(url).pathname.slice(1)
      const viaProxy = withDatabase(`postgres://${new URL(url).username}@127.0.0.1:${port}/x`, name, {
        sslmode: 'disable',
      })
      const db = openDatabase(viaProxy, { poolSize: 1, connectTimeoutMs: 500, statementTimeoutMs: 500 })
      const store = db.store(randomUUID())
      await store.saveTokens('s', { n: 1 })
      // Reads go on the shared connection, writes on the pool's: both are open when it goes silent.
      assert.deepEqual(await store.tokens('s'), { n: 1 })
      gate.freeze()
      const started = Date.now()
      await assert.rejects(store.tokens('s'), (e) => {
        assert.equal(e.code, 'ERR_HOOT_DB')
        assert.match(e.message, /no answer within 1000 ms/)
        return true
      })
      assert.ok(Date.now() - started < 2500, `failed in ${Date.now() - started} ms`)
      // The silent connections are let go: the next call gets a new one at once.
      assert.deepEqual(await store.tokens('s'), { n: 1 })
      await gate.close()
      await db.close()
    },
  )

  test('a server that accepts but never answers: the call fails within connectTimeoutMs', PG_TIMEOUT, async (t) => {
    const url = await freshDatabase('blackhole')
    const gate = proxy(url)
    t.after(() => gate.close())
    const port = await gate.open('blackhole')
    const db = openDatabase(`postgres://hoot@127.0.0.1:${port}/x?sslmode=disable`, { connectTimeoutMs: 700 })
    const started = Date.now()
    await assert.rejects(db.store(randomUUID()).tokens('s'), (e) => {
      assert.equal(e.code, 'ERR_HOOT_DB')
      assert.match(e.message, /700 ms|timed out|timeout/i)
      return true
    })
    assert.ok(Date.now() - started < 2500, `failed in ${Date.now() - started} ms`)
    await gate.close()
    await db.close()
  })

  test('a test file that fails and leaves a handle open ends by itself, failed, instead of hanging', PG_TIMEOUT, () => {
    const fixture = join(root, '__test__', 'fixtures', 'pg-linger.fixture.mjs')
    const started = Date.now()
    const child = spawnSync(process.execPath, ['--test', fixture], {
      encoding: 'utf8',
      // Without NODE_TEST_CONTEXT, which would make it report to this runner instead of exiting.
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, HOOT_TEST_LINGER_MS: '500' },
      timeout: 60_000,
    })
    assert.equal(child.signal, null, `killed after ${Date.now() - started} ms: the file hung`)
    assert.notEqual(child.status, 0, 'the failure is reported')
    assert.match(child.stdout + child.stderr, /still running .* held by: .*TCPServerWrap/)
  })

  test(
    'close() while a call waits on a silent connection: the call settles, the process exits by itself',
    PG_TIMEOUT,
    async () => {
      const url = await freshDatabase('close_silent')
      // In a child, so "exits by itself" is what is checked: anything left waiting (a call, a
      // connection) would hold it until spawnSync's timeout kills it.
      const outcome = runIsolated(
        `import net from 'node:net'
       const target = new URL(${JSON.stringify(url)})
       const sockets = new Set()
       let silent = false
       const server = net.createServer((client) => {
         client.on('error', () => {})
         sockets.add(client)
         // Once silent, a connection the pool opens meanwhile is half-open from the start too.
         if (silent) return client.pause()
         const upstream = net.connect(Number(target.port || 5432), target.hostname)
         upstream.on('error', () => {})
         sockets.add(upstream)
         client.pipe(upstream).pipe(client)
       })
       await new Promise((r) => server.listen(0, '127.0.0.1', r))
       const via = new URL(target)
       via.host = '127.0.0.1:' + server.address().port
       const db = hoot.openDatabase(via.toString(), { connectTimeoutMs: 500, statementTimeoutMs: 500 })
       const store = db.store('3b241101-e2bb-4255-8caf-4136c566a962')
       await store.saveTokens('s', { n: 1 })
       silent = true
       for (const s of sockets) { s.unpipe(); s.pause() } // half-open: nothing passes, nothing closes
       const started = Date.now()
       const call = store.tokens('s').then(() => 'answered', (e) => e.code)
       await db.close()
       const settled = await call
       const ms = Date.now() - started
       // The proxy's side ends too, as the server dropping it would; the process must then exit.
       for (const s of sockets) s.destroy()
       server.close()
       console.log(JSON.stringify({ settled, ms }))`,
        { timeout: 30_000 },
      )
      assert.equal(outcome.settled, 'ERR_HOOT_DB')
      assert.ok(outcome.ms < 10_000, `settled in ${outcome.ms} ms`)
    },
  )
})

// PostgreSQL's shared connections: single-statement calls in flight together share one or two
// connections (pipelined), a call is first polled on the JavaScript thread, and outcomes come back
// through one wake-up channel per thread. What a user relies on: every call gets its own answer,
// a lost shared connection fails only the calls on it, and a process or worker thread that is
// done exits by itself.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, test } from 'node:test'

import pg from 'pg'

import { openDatabase } from '../lib/index.js'
import { runIsolatedAsync } from './helpers.mjs'
import { PG_TIMEOUT, eventually, freshDatabase, postgresAvailable, rows, terminate } from './postgres.mjs'

describe('PostgreSQL shared connections', () => {
  if (!postgresAvailable('lanes')) return

  test('300 calls in flight, reads and writes mixed: each gets its own answer', PG_TIMEOUT, async () => {
    const url = await freshDatabase('lanes_answers')
    const db = openDatabase(url, { poolSize: 4 })
    const users = Array.from({ length: 10 }, () => randomUUID())
    const stores = users.map((u) => db.store(u))
    const value = (u, s) => ({ access_token: `${users[u]}:${s}`, n: s })
    await Promise.all(
      stores.flatMap((store, u) => Array.from({ length: 30 }, (_, s) => store.saveTokens(`s${s}`, value(u, s)))),
    )
    // Reads of every row, writes of new values to other servers and verifier round trips, all
    // outstanding at once over a pool of 4 (of which one or two connections are shared).
    const reads = stores.flatMap((store, u) =>
      Array.from({ length: 30 }, (_, s) => store.tokens(`s${s}`).then((got) => assert.deepEqual(got, value(u, s)))),
    )
    const writes = stores.map((store, u) => store.saveTokens('late', value(u, 99)))
    const verifiers = stores.map((store, u) =>
      store.saveCodeVerifier('v', `verifier-${u}`).then(() => store.codeVerifier('v')),
    )
    await Promise.all(reads)
    await Promise.all(writes)
    assert.deepEqual(
      await Promise.all(verifiers),
      users.map((_, u) => `verifier-${u}`),
    )
    assert.deepEqual(
      await Promise.all(stores.map((store) => store.tokens('late'))),
      users.map((_, u) => value(u, 99)),
    )
    // Each row belongs to its user: nothing was written under another's id.
    const [{ n }] = await rows(
      url,
      "SELECT count(*)::int AS n FROM oauth_tokens WHERE tokens LIKE '%' || user_id || '%'",
    )
    assert.equal(n, 10 * 31)
    await db.close()
  })

  test(
    'the server ends every connection with calls in flight: each settles, and the next calls work',
    PG_TIMEOUT,
    async () => {
      const url = await freshDatabase('lanes_lost')
      const db = openDatabase(url, { poolSize: 4, connectTimeoutMs: 2000 })
      const store = db.store(randomUUID())
      await store.saveTokens('s', { n: 1 })
      assert.deepEqual(await store.tokens('s'), { n: 1 })
      const inFlight = Array.from({ length: 50 }, () =>
        store.tokens('s').then(
          (got) => assert.deepEqual(got, { n: 1 }),
          (e) => assert.equal(e.code, 'ERR_HOOT_DB'),
        ),
      )
      assert.ok((await terminate(url, 'hoot-core')) >= 1)
      await Promise.all(inFlight)
      // A connection the server ended is dropped: the next call opens a new one.
      let answered
      for (let tries = 0; tries < 3 && answered === undefined; tries++) {
        answered = await store.tokens('s').catch((e) => assert.equal(e.code, 'ERR_HOOT_DB'))
      }
      assert.deepEqual(answered, { n: 1 })
      await db.close()
    },
  )

  test(
    'a worker thread and the main thread use one database at once; both finish and exit by themselves',
    PG_TIMEOUT,
    async () => {
      const url = await freshDatabase('lanes_worker')
      const outcome = await runIsolatedAsync(`
      import { Worker } from 'node:worker_threads'
      const url = ${JSON.stringify(url)}
      const user = crypto.randomUUID()
      const main = hoot.openDatabase(url)
      await main.store(user).saveTokens('s', { from: 'main' })
      const worker = new Worker(\`
        import { parentPort, workerData } from 'node:worker_threads'
        const { openDatabase } = await import(workerData.lib)
        const db = openDatabase(workerData.url)
        const store = db.store(workerData.user)
        Promise.all(Array.from({ length: 100 }, () => store.tokens('s')))
          .then((all) => parentPort.postMessage(all.every((t) => t.from === 'main')))
          .then(() => db.close())
      \`, { eval: true, workerData: { url, user, lib: ${JSON.stringify(new URL('../lib/index.js', import.meta.url).pathname)} } })
      const fromWorker = new Promise((resolve) => worker.once('message', resolve))
      const reads = await Promise.all(Array.from({ length: 100 }, () => main.store(user).tokens('s')))
      const exited = new Promise((resolve) => worker.once('exit', resolve))
      const result = { worker: await fromWorker, main: reads.every((t) => t.from === 'main'), exitCode: await exited }
      await main.close()
      console.log(JSON.stringify(result))
    `)
      // The child printed its result and then exited by itself (runIsolatedAsync kills a hung one).
      assert.deepEqual(outcome, { worker: true, main: true, exitCode: 0 })
    },
  )

  test('a write waiting on a lock holds up no read', PG_TIMEOUT, async () => {
    const url = await freshDatabase('lanes_locked_write')
    const db = openDatabase(url, { poolSize: 4, statementTimeoutMs: 20_000 })
    const store = db.store(randomUUID())
    await store.saveTokens('s', { n: 1 })
    assert.deepEqual(await store.tokens('s'), { n: 1 })
    // What encrypt and decrypt hold while they run: every sealed write waits for it.
    const holder = new pg.Client({ connectionString: url })
    await holder.connect()
    try {
      await holder.query('BEGIN')
      await holder.query('LOCK TABLE hoot_encryption IN ACCESS EXCLUSIVE MODE')
      const write = store.saveTokens('s', { n: 2 })
      await eventually(
        async () => (await rows(url, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).length > 0,
        10_000,
        'the write waits on the lock',
      )
      // Reads go on a connection the waiting write is not on, and answer now.
      for (let i = 0; i < 20; i++) assert.deepEqual(await store.tokens('s'), { n: 1 })
      await holder.query('COMMIT')
      await write
      assert.deepEqual(await store.tokens('s'), { n: 2 })
    } finally {
      await holder.end()
      await db.close()
    }
  })

  test('poolSize bounds the connections a process opens, shared ones included', PG_TIMEOUT, async () => {
    for (const poolSize of [1, 4]) {
      const url = await freshDatabase(`lanes_bound_${poolSize}`)
      const db = openDatabase(url, { poolSize })
      const stores = Array.from({ length: 8 }, () => db.store(randomUUID()))
      const name = new URL(url).pathname.slice(1)
      const open = async () =>
        (
          await rows(
            url,
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'hoot-core'",
            [name],
          )
        )[0].n
      let most = 0
      for (let round = 0; round < 5; round++) {
        const calls = stores.flatMap((store, u) => [
          store.saveTokens(`s${round}`, { u }),
          store.tokens(`s${round}`),
          store.invalidateCredentials(`gone${round}`, 'all'),
        ])
        most = Math.max(most, await open())
        await Promise.all(calls)
        most = Math.max(most, await open())
      }
      assert.ok(most >= 1 && most <= poolSize, `poolSize ${poolSize}: ${most} connections`)
      await db.close()
    }
  })

  test('a worker thread ended with calls in flight takes nothing down', PG_TIMEOUT, async () => {
    const url = await freshDatabase('lanes_terminate')
    const outcome = await runIsolatedAsync(`
      import { Worker } from 'node:worker_threads'
      const url = ${JSON.stringify(url)}
      const user = crypto.randomUUID()
      const main = hoot.openDatabase(url)
      await main.store(user).saveTokens('s', { from: 'main' })
      let ended = 0
      for (let i = 0; i < 5; i++) {
        const worker = new Worker(\`
          import { parentPort, workerData } from 'node:worker_threads'
          const { openDatabase } = await import(workerData.lib)
          const store = openDatabase(workerData.url).store(workerData.user)
          // Calls in flight, forever, when the thread is ended.
          const loop = () => Promise.all(Array.from({ length: 20 }, () => store.tokens('s'))).then(loop)
          loop()
          parentPort.postMessage('busy')
        \`, { eval: true, workerData: { url, user, lib: ${JSON.stringify(new URL('../lib/index.js', import.meta.url).pathname)} } })
        await new Promise((resolve) => worker.once('message', resolve))
        await new Promise((resolve) => setImmediate(resolve))
        await worker.terminate()
        ended++
      }
      const after = await main.store(user).tokens('s')
      await main.close()
      console.log(JSON.stringify({ ended, after }))
    `)
    assert.deepEqual(outcome, { ended: 5, after: { from: 'main' } })
  })
})

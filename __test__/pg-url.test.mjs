// What a postgres:// URL says, read as it says it: an `@` in the query never drops `sslmode` (a
// TLS-stripping proxy then gets no session), `sslrootcert` is read only from a regular file of
// bounded size and never while openDatabase() runs, and a refused role is not named in the error.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import net from 'node:net'
import { describe, test } from 'node:test'

import { openDatabase } from '../lib/index.js'
import { USER, runIsolated, tempDir } from './helpers.mjs'
import { freshDatabase, postgresAvailable, withDatabase } from './postgres.mjs'

const TIMEOUT = { timeout: 60_000 }

/**
 * A proxy that answers PostgreSQL's SSLRequest with "N" (no TLS here) and passes the rest in the
 * clear to the server: what an attacker on the path does to strip TLS.
 */
async function tlsStripper(target) {
  const { hostname, port } = new URL(target)
  const sockets = new Set()
  const server = net.createServer((client) => {
    sockets.add(client)
    client.on('error', () => {})
    client.once('data', (first) => {
      const upstream = net.connect(Number(port || 5432), hostname)
      sockets.add(upstream)
      upstream.on('error', () => client.destroy())
      client.on('close', () => upstream.destroy())
      let rest = first
      // SSLRequest: length 8, code 80877103.
      if (first.length >= 8 && first.readInt32BE(0) === 8 && first.readInt32BE(4) === 80877103) {
        client.write('N')
        rest = first.subarray(8)
      }
      if (rest.length) upstream.write(rest)
      client.pipe(upstream).pipe(client)
    })
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: server.address().port,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy()
        server.close(r)
      }),
  }
}

describe('PostgreSQL URLs', () => {
  if (!postgresAvailable('URLs')) return

  test('an @ in the query never drops sslmode=require: a TLS-stripping proxy gets no session', TIMEOUT, async () => {
    const url = await freshDatabase('strip')
    const name = new URL(url).pathname.slice(1)
    const proxy = await tlsStripper(url)
    try {
      const base = `postgres://${new URL(url).username}@127.0.0.1:${proxy.port}/${name}`
      const db = openDatabase(`${base}?sslmode=require&application_name=hoot@prod`, { connectTimeoutMs: 2000 })
      await assert.rejects(db.ready(), (e) => {
        assert.equal(e.code, 'ERR_HOOT_DB')
        assert.match(e.message, /TLS|tls|ssl/i)
        return true
      })
      await db.close()
      // The same proxy does pass a session that asked for none: the refusal above is sslmode's.
      const plain = openDatabase(`${base}?sslmode=disable&application_name=hoot@prod`, { connectTimeoutMs: 2000 })
      assert.equal((await plain.ready()).kind, 'postgres')
      await plain.close()
    } finally {
      await proxy.close()
    }
  })

  test(
    'sslrootcert that is a FIFO or /dev/zero: openDatabase() returns, the connection fails with ERR_HOOT_DB',
    TIMEOUT,
    async () => {
      const dir = tempDir('sslrootcert')
      const fifo = join(dir, 'ca.pem')
      execFileSync('mkfifo', [fifo])
      const url = await freshDatabase('rootcert')
      for (const cert of [fifo, '/dev/zero']) {
        const target = withDatabase(url, new URL(url).pathname.slice(1), { sslmode: 'verify-full', sslrootcert: cert })
        // In a child: before the fix the FIFO blocked openDatabase() on the JS thread (no timer of
        // this process could fire) and /dev/zero aborted the process.
        const outcome = runIsolated(
          `const db = hoot.openDatabase(${JSON.stringify(target)}, { connectTimeoutMs: 2000 })
         const opened = 'opened'
         const failed = await db.ready().then(() => null, (e) => ({ code: e.code, message: e.message }))
         await db.close()
         console.log(JSON.stringify({ opened, failed }))`,
          { timeout: 20_000 },
        )
        assert.equal(outcome.opened, 'opened', cert)
        assert.equal(outcome.failed?.code, 'ERR_HOOT_DB', cert)
        assert.match(outcome.failed.message, /sslrootcert .*not a regular file/, cert)
      }
    },
  )

  test('a role that does not exist: ERR_HOOT_DB that names neither the role nor the user', TIMEOUT, async () => {
    const url = await freshDatabase('role')
    const role = `hoot_nobody_${randomBytes(4).toString('hex')}`
    const target = new URL(url)
    target.username = role
    const db = openDatabase(target.toString(), { connectTimeoutMs: 2000 })
    for (const call of [() => db.ready(), () => db.store(USER).tokens('s')]) {
      await assert.rejects(call(), (e) => {
        assert.equal(e.code, 'ERR_HOOT_DB')
        assert.match(e.message, /SQLSTATE 28000/)
        assert.match(e.message, /PostgreSQL at 127\.0\.0\.1/)
        assert.ok(!e.message.includes(role) && !e.message.includes('hoot_nobody'), e.message)
        return true
      })
    }
    await db.close()
  })
})

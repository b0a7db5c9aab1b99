// Several Hoot servers on one PostgreSQL: three (and a fourth) real Node processes, each with its
// key set and store in the same database, as replicas behind a load balancer would be.
import assert from 'node:assert/strict'
import { execFile, fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { promisify } from 'node:util'

import { root, runIsolatedAsync, tempDir } from './helpers.mjs'
import { PG_TIMEOUT, eventually, freshDatabase, postgresAvailable, rows } from './postgres.mjs'

const REPLICA = join(root, '__test__', 'fixtures', 'replica.mjs')
const CLI = join(root, 'bin', 'hoot-core.js')
const run = promisify(execFile)

/** A replica process on `url`: resolves once its keys are loaded. */
function replica(url) {
  const child = fork(REPLICA, [], {
    env: { ...process.env, REPLICA_URL: url },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  let next = 0
  const waiting = new Map()
  const acks = []
  const ready = new Promise((resolve, reject) => {
    child.on('message', (m) => {
      if (m.ready) resolve(m)
      else if (m.ack !== undefined) acks.push(m.ack)
      else {
        const { resolve: ok, reject: fail } = waiting.get(m.id)
        waiting.delete(m.id)
        if (m.error) fail(Object.assign(new Error(m.error.message), { code: m.error.code }))
        else ok(m.result)
      }
    })
    child.once('exit', (code, signal) => reject(new Error(`replica exited (${code ?? signal})`)))
  })
  const call = (op, ...args) =>
    new Promise((resolve, reject) => {
      const id = next++
      waiting.set(id, { resolve, reject })
      child.send({ id, op, args })
    })
  // Asked to end, then killed if it has not within 10 s: a replica that hangs must not hold this file.
  const stop = () =>
    new Promise((r) => {
      if (child.exitCode !== null || child.signalCode) return r()
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000)
      child.once('exit', () => {
        clearTimeout(kill)
        r()
      })
      if (child.connected) child.disconnect()
    })
  return { child, ready, call, acks, stop }
}

const kidOf = (token) => JSON.parse(Buffer.from(token.split('.')[0], 'base64url')).kid

describe('replicas on one PostgreSQL', () => {
  if (!postgresAvailable('replicas')) return

  test(
    'three starting at once agree on one key; tokens, writes and rotations reach every replica',
    PG_TIMEOUT,
    async () => {
      const url = await freshDatabase('replicas')
      const replicas = [replica(url), replica(url), replica(url)]
      try {
        const ready = await Promise.all(replicas.map((r) => r.ready))
        assert.equal(new Set(ready.map((r) => r.ready)).size, 1, 'one key for all')
        assert.ok(ready.every((r) => r.source === 'database'))
        assert.equal((await rows(url, 'SELECT kid FROM hoot_signing_keys')).length, 1, 'generated exactly once')
        const first = ready[0].ready

        // A token issued by any verifies on all (twice: the second answer comes from the cache).
        const user = randomUUID()
        const tokens = await Promise.all(replicas.map((r) => r.call('issue', user)))
        for (const token of tokens) {
          for (const r of replicas) {
            for (let i = 0; i < 2; i++) assert.equal((await r.call('verify', token)).userId, user)
          }
        }
        const jwks = await Promise.all(replicas.map((r) => r.call('jwks')))
        assert.ok(
          jwks.every((j) => JSON.stringify(j) === JSON.stringify(jwks[0])),
          'the same JWKS everywhere',
        )

        // Writes through one are read through the others.
        await replicas[0].call('save', user, 'srv', { from: 0 })
        assert.deepEqual(await replicas[1].call('read', user, 'srv'), { from: 0 })
        await replicas[2].call('save', user, 'srv', { from: 2 })
        assert.deepEqual(await replicas[0].call('read', user, 'srv'), { from: 2 })

        // A rotation through the CLI reaches all three; the previous key keeps verifying.
        const { stdout } = await run(process.execPath, [CLI, 'keygen', '--rotate', '--database', url])
        const second = /New signing key (\S+)/.exec(stdout)[1]
        assert.notEqual(second, first)
        for (const r of replicas) {
          await eventually(async () => kidOf(await r.call('issue', user)) === second, 5000, 'the new key signs')
          assert.equal((await r.call('verify', tokens[0])).valid, true, 'the previous key still verifies')
        }
        const fresh = await replicas[1].call('issue', user)
        for (const r of replicas) assert.equal((await r.call('verify', fresh)).valid, true)

        // Dropping the old keys: every replica refuses the first key's tokens, cached or not.
        await run(process.execPath, [CLI, 'keygen', '--rotate', '--drop-previous', '--database', url])
        for (const r of replicas) {
          const result = await eventually(
            async () => {
              const v = await r.call('verify', tokens[0])
              return v.valid ? null : v
            },
            5000,
            'the removed key stops verifying',
          )
          assert.equal(result.code, 'ERR_JWKS_NO_MATCHING_KEY')
          assert.equal((await r.call('verify', fresh)).valid, false, 'the second key was dropped too')
        }
        assert.equal((await rows(url, 'SELECT kid FROM hoot_signing_keys')).length, 1)

        // A revocation made through one replica reaches the others within their poll interval.
        const revoked = randomUUID()
        const before = await replicas[2].call('issue', revoked)
        for (const r of replicas) for (let i = 0; i < 2; i++) assert.equal((await r.call('verify', before)).valid, true)
        await replicas[0].call('revoke', revoked)
        for (const r of replicas) {
          await eventually(async () => !(await r.call('verify', before)).valid, 5000, 'the revoked token refused')
        }
      } finally {
        await Promise.all(replicas.map((r) => r.stop()))
      }
    },
  )

  test(
    'with HOOT_DATABASE_URL, tokens wait for await openDatabase().loadKeys(): no key file is made here',
    PG_TIMEOUT,
    async () => {
      const url = await freshDatabase('keys_first')
      const home = tempDir('keys-first-home')
      const result = await runIsolatedAsync(
        `const user = '${randomUUID()}'
       const code = (f) => { try { f(); return 'ok' } catch (e) { return e.code } }
       const before = code(() => hoot.issueToken(user))
       const local = code(() => hoot.loadKeys())
       const keys = await hoot.openDatabase().loadKeys()
       const token = hoot.issueToken(user)
       console.log(JSON.stringify({ before, local, source: keys.source, valid: hoot.verifyToken(token).valid }))
       process.exit(0)`,
        { HOOT_DATABASE_URL: url, HOME: home },
      )
      assert.deepEqual(result, { before: 'ERR_HOOT_KEYS', local: 'ERR_HOOT_KEYS', source: 'database', valid: true })
      assert.equal(existsSync(join(home, '.hoot', 'keys')), false, 'no key directory was made')
    },
  )

  test('a replica killed with SIGKILL mid-write loses nothing it acknowledged', PG_TIMEOUT, async () => {
    const url = await freshDatabase('sigkill')
    const [writer, reader] = [replica(url), replica(url)]
    try {
      await Promise.all([writer.ready, reader.ready])
      const user = randomUUID()
      const finished = writer.call('writeLoop', user, 100_000).catch(() => 'killed')
      await eventually(() => writer.acks.length >= 200, 20_000, '200 acknowledged writes')
      writer.child.kill('SIGKILL')
      assert.equal(
        await Promise.race([finished, new Promise((r) => writer.child.once('exit', () => r('killed')))]),
        'killed',
      )
      const acknowledged = writer.acks.length
      assert.ok(acknowledged < 100_000, 'killed mid-run')
      for (const n of [0, Math.floor(acknowledged / 2), acknowledged - 1]) {
        assert.deepEqual(await reader.call('read', user, `server-${n}`), { n })
      }
      const [{ count }] = await rows(url, 'SELECT count(*)::int AS count FROM oauth_tokens WHERE user_id = $1', [user])
      assert.ok(count >= acknowledged && count <= acknowledged + 1, `${count} rows for ${acknowledged} acknowledged`)
    } finally {
      await Promise.all([writer.stop(), reader.stop()])
    }
  })
})

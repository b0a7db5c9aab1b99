// A running store keeps SQLite's lock on its database file whatever it does, so another reader
// beside it (an operator's `sqlite3`, a backup script, a DB browser) never takes the file for
// unused and deletes its live WAL: closing any descriptor of a file drops all of the process's
// POSIX locks on it ("How To Corrupt An SQLite Database File", §2.2), so hoot-core never opens the
// database, -wal or -shm outside SQLite while a connection holds it. Proved with the real sqlite3
// CLI (Debian's sqlite3 package, installed by .ci/run) and SIGKILL.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import { promisify } from 'node:util'

import { root, tempDir } from './helpers.mjs'

const run = promisify(execFile)
const fixture = join(root, '__test__', 'fixtures', 'locked-store.mjs')

/** The store in a child process, answering one JSON line per command. */
function storeProcess(dbPath) {
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, HOOT_DB_PATH: dbPath, HOME: tempDir('locks-home') },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)))
  return {
    child,
    exited,
    async send(command) {
      child.stdin.write(`${command}\n`)
      const { value, done } = await lines.next()
      assert.ok(!done, `the store process ended during "${command}"`)
      const answer = JSON.parse(value)
      assert.equal(answer.error, undefined, `"${command}" failed: ${answer.error}`)
      return answer
    },
  }
}

/** Whether process `pid` holds a POSIX lock on the file at `path` (/proc/locks names it by inode). */
function holdsLock(pid, path) {
  const inode = statSync(path).ino
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .some((line) => {
      const fields = line.trim().split(/\s+/)
      return fields[1] === 'POSIX' && fields[4] === String(pid) && fields[5]?.split(':')[2] === String(inode)
    })
}

async function count(dbPath) {
  const { stdout } = await run('sqlite3', [dbPath, 'select count(*) from oauth_tokens'], { timeout: 10_000 })
  return Number(stdout.trim())
}

test(
  'another process reading the database beside a running store, then a SIGKILL: every acknowledged write is there',
  { timeout: 60_000 },
  async () => {
    const dbPath = join(tempDir('locks'), 'hoot-mcp.db')
    const store = storeProcess(dbPath)
    const { pid } = await store.send('open')
    await store.send('write 1')
    assert.ok(holdsLock(pid, dbPath), 'the store holds its lock on the database file')
    assert.equal(await count(dbPath), 1, 'an operator reads the file with sqlite3 while the server runs')
    await store.send('write 2')
    store.child.kill('SIGKILL')
    assert.equal(await store.exited, 'SIGKILL')
    assert.equal(await count(dbPath), 2, 'both acknowledged writes survive the reader and the crash')
  },
)

test('no operation of a running process drops its lock on the database file', { timeout: 60_000 }, async () => {
  const ops = ['inspect', 'migrate', 'cleanup', 'activity', 'revoke', 'store', 'reopen', 'move', 'database', 'encrypt']
  const dbPath = join(tempDir('locks'), 'hoot-mcp.db')
  const store = storeProcess(dbPath)
  const { pid } = await store.send('open')
  await store.send('write 1')
  try {
    for (const op of ops) {
      await store.send(`op ${op}`)
      assert.ok(holdsLock(pid, dbPath), `the lock is still held after ${op}`)
    }
  } finally {
    store.child.kill('SIGKILL')
    await store.exited
  }
})

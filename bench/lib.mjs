// What every section shares: interleaved rounds, medians, paired ratios, child workers, tables.
import { fork } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const QUICK = process.env.BENCH_QUICK === '1'
export const ROUNDS = Number(process.env.BENCH_ROUNDS || (QUICK ? 3 : 7))
export const USER = '3b241101-e2bb-4255-8caf-4136c566a962'

export function tempDir(label) {
  return mkdtempSync(join(tmpdir(), `hoot-bench-${label}-`))
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Ops per second of `n` calls of `fn(i)` (awaited only when it returns a promise). */
export async function measure(n, fn) {
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) {
    const out = fn(i)
    if (out && typeof out.then === 'function') await out
  }
  return n / (Number(process.hrtime.bigint() - start) / 1e9)
}

/**
 * Runs every contender once per round, in an order that rotates each round so no contender is
 * always first or last, and returns each contender's per-round results.
 */
export async function interleave(rounds, contenders) {
  const names = Object.keys(contenders)
  const runs = Object.fromEntries(names.map((n) => [n, []]))
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(r + k) % names.length]
      // The garbage one contender leaves is collected before the next starts, not on its time.
      globalThis.gc?.()
      runs[name][r] = await contenders[name](r)
    }
  }
  return runs
}

/** The median of the per-round ratios `a[r] / b[r]`: both were measured in the same round. */
export function pairedRatio(a, b) {
  return median(a.map((x, r) => x / b[r]))
}

/**
 * A child process running `script` that answers `{ id, ...request }` messages with
 * `{ id, result }` or `{ id, error }`.
 */
export function worker(script, args = [], execArgv = []) {
  const child = fork(script, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let next = 0
  const waiting = new Map()
  child.on('message', ({ id, result, error }) => {
    const pending = waiting.get(id)
    waiting.delete(id)
    if (error) pending.reject(new Error(`${script} ${args.join(' ')}: ${error}`))
    else pending.resolve(result)
  })
  const died = new Promise((_, reject) =>
    child.on('exit', (code) => {
      if (waiting.size) reject(new Error(`${script} ${args.join(' ')} exited with code ${code}`))
    }),
  )
  died.catch(() => {})
  return {
    call(request) {
      const id = next++
      const reply = new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject })
        child.send({ id, ...request })
      })
      return Promise.race([reply, died])
    },
    close() {
      child.disconnect()
      return new Promise((resolve) => (child.exitCode === null ? child.on('exit', resolve) : resolve()))
    },
  }
}

/** The worker side of `worker()`: `handlers[request.op](request)` answers each message. */
export function serve(handlers) {
  process.on('message', async ({ id, op, ...request }) => {
    try {
      process.send({ id, result: await handlers[op](request) })
    } catch (e) {
      process.send({ id, error: e.stack || String(e) })
    }
  })
}

export const fmt = {
  rate: (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1)),
  us: (rate) => (1e6 / rate).toFixed(rate > 1e5 ? 2 : 1),
  ratio: (x) => `${x.toFixed(2)}×`,
  ms: (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1)),
  mb: (bytes) => (bytes / 1048576).toFixed(1),
}

/** A Markdown table from an array of rows (objects with the same keys). */
export function table(rows) {
  const keys = Object.keys(rows[0])
  const line = (cells) => `| ${cells.join(' | ')} |`
  return [
    line(keys),
    line(keys.map((_, i) => (i === 0 ? '---' : '---:'))),
    ...rows.map((r) => line(keys.map((k) => r[k]))),
  ].join('\n')
}

/** The OAuth tokens every store contender saves and reads (an access token of a real one's size). */
export const TOKENS = {
  access_token: 'eyJhbGciOiJSUzI1NiJ9.' + 'a'.repeat(600),
  refresh_token: 'r'.repeat(64),
  token_type: 'Bearer',
  expires_in: 3600,
  scope: 'read write',
}

/**
 * A server process running `script` with `args`, once it has said its port: `{ port, stop }`.
 * Rejects if it exits first (`what` names it in the error).
 */
export function startServer(script, args, what) {
  const child = fork(script, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('message', ({ port }) =>
      resolve({
        port,
        stop: () =>
          new Promise((r) => {
            if (child.exitCode !== null) return r()
            child.once('exit', r)
            child.disconnect()
          }),
      }),
    )
    child.once('exit', (code) => reject(new Error(`${what} exited with code ${code}`)))
  })
}

// The PostgreSQL suite's server: HOOT_TEST_POSTGRES_URL (CI sets it; .ci/run fails when the server
// is unreachable). Each test file makes databases of its own on it (dropped when the file ends), so
// files running in parallel never see each other's rows. Without the variable, `npmTest` marks the
// suite skipped and prints, loudly, how to run it.
import { randomBytes } from 'node:crypto'
import { after, test } from 'node:test'

import pg from 'pg'

export const SERVER_URL = process.env.HOOT_TEST_POSTGRES_URL || ''

/**
 * `{ timeout }` for a test (or suite) that talks to PostgreSQL or a child process: a hang fails
 * the test instead of stalling CI.
 */
export const PG_TIMEOUT = { timeout: 120_000 }

/** `{ timeout }` for a whole suite of such tests. */
export const PG_SUITE_TIMEOUT = { timeout: 600_000 }

/** How long this file's process may stay alive after its last test before it is ended, failed. */
const LINGER_MS = Number(process.env.HOOT_TEST_LINGER_MS) || 30_000

export const HOW_TO_RUN =
  'the PostgreSQL suite did NOT run: HOOT_TEST_POSTGRES_URL is not set. Run it with a server you may create ' +
  'databases on, e.g. HOOT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres npm test'

let warned = false
/**
 * `describe`-level guard: true when the suite can run. Otherwise registers one skipped test that
 * says why, and prints the same to stderr once per file.
 */
export function postgresAvailable(suite) {
  if (SERVER_URL) return true
  if (!warned) {
    warned = true
    process.stderr.write(`\n*** ${suite}: ${HOW_TO_RUN} ***\n\n`)
  }
  test(`${suite} (PostgreSQL)`, { skip: HOW_TO_RUN }, () => {})
  return false
}

/** The URL of `url` with its database replaced by `name` (and extra query parameters). */
export function withDatabase(url, name, params = {}) {
  const u = new URL(url)
  u.pathname = `/${name}`
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v)
  return u.toString()
}

/** Runs `sql` on the server's own database (or `url`'s), on a connection of its own, bounded. */
export async function admin(sql, params = [], url = SERVER_URL) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 60_000 })
  client.on('error', () => {}) // a connection the server ends is reported by the query that fails
  await client.connect()
  try {
    return await client.query(sql, params)
  } finally {
    await client.end()
  }
}

const made = []
after(
  async () => {
    for (const name of made) await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
    // A test that failed or timed out may have left something holding the event loop (a proxy
    // still listening, a loop of calls): the process, and `node --test` with it, would then wait
    // forever. This timer does not keep the process alive; if it fires, something else did.
    setTimeout(() => {
      const holding = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout')
      process.stderr.write(
        `\n*** still running ${LINGER_MS / 1000} s after the last test, held by: ${holding.join(', ') || 'unknown'}; ` +
          'ending the process as failed ***\n',
      )
      process.exit(1)
    }, LINGER_MS).unref()
  },
  { timeout: 120_000 },
)

/** A new, empty database for this file: its URL (params: e.g. sslmode, application_name). */
export async function freshDatabase(label, params = {}) {
  const name = `hoot_test_${label.replace(/\W/g, '_')}_${randomBytes(4).toString('hex')}`
  await admin(`CREATE DATABASE ${name}`)
  made.push(name)
  return withDatabase(SERVER_URL, name, { sslmode: 'disable', ...params })
}

/** Rows of `sql` on the database at `url`. */
export async function rows(url, sql, params = []) {
  return (await admin(sql, params, url)).rows
}

/** Ends every connection to `url`'s database whose application_name is `app`; returns how many. */
export async function terminate(url, app) {
  const name = new URL(url).pathname.slice(1)
  const result = await admin(
    'SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
    [name, app],
  )
  return Number(result.rows[0].n)
}

/** Waits until `check()` is truthy (polled every 20 ms), failing after `ms`. */
export async function eventually(check, ms, what) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

// The PostgreSQL server the pgstore and replicas sections run on: $HOOT_BENCH_POSTGRES_URL, else
// $HOOT_TEST_POSTGRES_URL, else a local server with trust auth. Each section makes databases of its
// own (hoot_bench_<random>), dropped with WITH (FORCE) when the run ends; an unreachable server
// skips both sections.
import { randomBytes } from 'node:crypto'

import pg from 'pg'

export const SERVER_URL =
  process.env.HOOT_BENCH_POSTGRES_URL ||
  process.env.HOOT_TEST_POSTGRES_URL ||
  'postgres://postgres@127.0.0.1:5432/postgres'

/** host:port/database of `url`, without its credentials (for the report and the log). */
export function describe(url = SERVER_URL) {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || 5432}${u.pathname}`
  } catch {
    return 'an unparsable URL'
  }
}

/**
 * `url` with its database replaced by `name`. Without an sslmode in the server URL, both
 * contenders connect in plain TCP (`sslmode=disable`): hoot-core's default `prefer` would use TLS
 * where the server offers it and node-postgres's default would not.
 */
export function withDatabase(url, name) {
  const u = new URL(url)
  u.pathname = `/${name}`
  if (!u.searchParams.has('sslmode')) u.searchParams.set('sslmode', 'disable')
  return u.toString()
}

/** The server's own database, as withDatabase connects. */
const serverDatabase = () => withDatabase(SERVER_URL, new URL(SERVER_URL).pathname.slice(1) || 'postgres')

/** Runs `sql` on the server's own database, on a connection of its own. */
async function admin(sql) {
  const client = new pg.Client({ connectionString: serverDatabase() })
  client.on('error', () => {})
  await client.connect()
  try {
    return await client.query(sql)
  } finally {
    await client.end()
  }
}

/** The server's version (`PostgreSQL 15.4`) and durability settings, or `error`: why it cannot be reached. */
export async function probe() {
  let client
  try {
    client = new pg.Client({ connectionString: serverDatabase(), connectionTimeoutMillis: 3000 })
    client.on('error', () => {})
    await client.connect()
    const { rows } = await client.query(
      "SELECT current_setting('server_version') AS v, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc",
    )
    const [{ v, fsync, sc }] = rows
    return { version: `PostgreSQL ${v.split(' ')[0]}`, settings: `fsync=${fsync}, synchronous_commit=${sc}` }
  } catch (error) {
    return { error: error.message || error.code || String(error) }
  } finally {
    await client?.end().catch(() => {})
  }
}

const made = []

/** A new, empty database on the server: its URL. */
export async function freshDatabase(label) {
  const name = `hoot_bench_${label}_${randomBytes(4).toString('hex')}`
  await admin(`CREATE DATABASE ${name}`)
  made.push(name)
  return withDatabase(SERVER_URL, name)
}

/** Drops every database freshDatabase made (connections still open to them are ended). */
export async function dropDatabases() {
  while (made.length) {
    const name = made.pop()
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((e) =>
      console.error(`could not drop ${name}: ${e.message}`),
    )
  }
}

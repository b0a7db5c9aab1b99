// One server of the e2estore section, answering `GET /e2e/tokens/:serverId` behind its auth
// middleware with the user's stored tokens for that server. `hoot-core`: the Express example
// (examples/express/server.mjs, as it is) with that route added, its store `openDatabase(location)`.
// `jose`: the same request written the usual way, Express 5 with jose's `jwtVerify` against a local
// JWKS, and better-sqlite3 (a file path) or postgres.js (a postgres:// URL) reading the row. Both
// verify with Hoot's key files. Reports its port, then serves until disconnected.
import { readFileSync } from 'node:fs'

import express from 'express'

const [kind, location, privateKeyPath, jwksPath] = process.argv.slice(2)
const onPostgres = /^postgres(ql)?:\/\//i.test(location)
// Hoot's check of the token's subject (its authenticateRequest), as in tokens.mjs.
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i
const found = (res, tokens) =>
  tokens === undefined ? res.status(404).json({ success: false, error: 'Not found' }) : res.json(tokens)

/** The example server with the route; `close` ends its database. */
async function hootCore() {
  const { createApp } = await import('../examples/express/server.mjs')
  const { loadKeys, openDatabase } = await import('../lib/index.js')
  const db = openDatabase(location)
  await db.ready()
  // Hoot's key files on both backends, so every server here verifies the same tokens: on SQLite
  // as the example loads them (the file opened first); on PostgreSQL named explicitly, since the
  // database's shared key set would be a key the peers do not have.
  if (onPostgres) loadKeys({ privateKeyPath, jwksPath })
  else await db.loadKeys({ privateKeyPath, jwksPath })
  const app = createApp({ db })
  app.get('/e2e/tokens/:serverId', async (req, res) =>
    found(res, await db.store(req.userId).tokens(req.params.serverId)),
  )
  return {
    app,
    close: async () => {
      await app.closeAll()
      await db.close()
    },
  }
}

/**
 * The peer's route: better-sqlite3 (synchronous, as it is used) or postgres.js, each with its
 * statement prepared once, the stored text parsed with JSON.parse.
 */
async function peerRoute() {
  if (onPostgres) {
    const { default: postgres } = await import('postgres')
    const sql = postgres(location, { max: 10, prepare: true, onnotice: () => {} })
    return {
      route: async (req, res) => {
        const rows =
          await sql`SELECT tokens FROM oauth_tokens WHERE user_id = ${req.userId} AND server_id = ${req.params.serverId}`
        found(res, rows.length ? JSON.parse(rows[0].tokens) : undefined)
      },
      close: () => sql.end(),
    }
  }
  const { default: Database } = await import('better-sqlite3')
  const db = new Database(location)
  db.pragma('journal_mode = WAL')
  // hoot-core's durability (a read does not depend on it; it is the setting a real server would run).
  db.pragma('synchronous = FULL')
  const read = db.prepare('SELECT tokens FROM oauth_tokens WHERE user_id = ? AND server_id = ?').pluck()
  return {
    route: (req, res) => {
      const text = read.get(req.userId, req.params.serverId)
      found(res, text === undefined ? undefined : JSON.parse(text))
    },
    close: async () => db.close(),
  }
}

/** Express 5 and jose, with the example's header, the UUID check and the 401 answers. */
async function jose() {
  const { createLocalJWKSet, jwtVerify } = await import('jose')
  const jwks = createLocalJWKSet(JSON.parse(readFileSync(jwksPath, 'utf8')))
  const { route, close } = await peerRoute()
  const app = express()
  app.use(express.json({ limit: '10mb' }))
  app.use(async (req, res, next) => {
    const token = req.headers['x-hoot-token']
    if (!token)
      return res
        .status(401)
        .json({ success: false, error: 'Unauthorized', message: 'Missing or invalid authentication token' })
    try {
      const { payload } = await jwtVerify(String(token), jwks, { algorithms: ['RS256'] })
      if (typeof payload.sub !== 'string' || !UUID_V4.test(payload.sub)) throw new Error('not a user id')
      req.userId = payload.sub
    } catch (error) {
      if (error.code === 'ERR_JWT_EXPIRED')
        return res
          .status(401)
          .json({ success: false, error: 'TokenExpired', message: 'Token has expired', expired: true })
      return res.status(401).json({ success: false, error: 'Unauthorized', message: 'Invalid authentication token' })
    }
    next()
  })
  app.get('/e2e/tokens/:serverId', route)
  return { app, close }
}

const { app, close } = kind === 'hoot-core' ? await hootCore() : await jose()
// Any error is a 500 with no details, and counted as a non-2xx by the load.
app.use((error, req, res, next) => {
  console.error(error)
  res.status(500).json({ success: false, error: 'Internal error' })
})
const server = app.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('disconnect', () =>
  server.close(async () => {
    await close()
    process.exit(0)
  }),
)

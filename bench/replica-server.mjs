// One replica of the example server (examples/express/server.mjs, as it is) on `location`: a
// postgres:// URL, its keys the shared key set in that database (made by the first replica to
// ask), or a SQLite file, its keys Hoot's key files. Reports its port, then serves until
// disconnected.
import { createApp } from '../examples/express/server.mjs'
import { openDatabase } from '../lib/index.js'

const [location, privateKeyPath, jwksPath] = process.argv.slice(2)
const db = openDatabase(location)
await db.ready()
await db.loadKeys(db.kind === 'postgres' ? undefined : { privateKeyPath, jwksPath })
const app = createApp({ db })
const server = app.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('disconnect', () =>
  server.close(async () => {
    await app.closeAll()
    await db.close()
    process.exit(0)
  }),
)

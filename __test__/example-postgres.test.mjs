// The example server's whole suite (example.test.mjs) again, with its store on PostgreSQL.
import { freshDatabase, postgresAvailable } from './postgres.mjs'

if (postgresAvailable('the example server')) {
  process.env.HOOT_EXAMPLE_POSTGRES = await freshDatabase('example')
  await import('./example.test.mjs')
}

// The example server's whole suite (example.test.mjs) again, with its store on PostgreSQL, under
// one timeout: a hang fails the suite instead of stalling CI.
import { describe } from 'node:test'

import { PG_SUITE_TIMEOUT, freshDatabase, postgresAvailable } from './postgres.mjs'

if (postgresAvailable('the example server')) {
  process.env.HOOT_EXAMPLE_POSTGRES = await freshDatabase('example')
  describe('the example server on PostgreSQL', PG_SUITE_TIMEOUT, async () => {
    await import('./example.test.mjs')
  })
}

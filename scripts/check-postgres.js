#!/usr/bin/env node
// CI's gate before the tests: the PostgreSQL server the suite runs against answers, and this user
// may create databases there (each test file makes its own). Exits 1, saying which, otherwise.
'use strict'

const pg = require('pg')

const url = process.argv[2] || process.env.HOOT_TEST_POSTGRES_URL
if (!url) {
  console.error('check-postgres: give the server URL (or set HOOT_TEST_POSTGRES_URL)')
  process.exit(1)
}

async function main() {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  await client.connect()
  try {
    const { rows } = await client.query(
      'SELECT version() AS v, rolcreatedb OR rolsuper AS may FROM pg_roles WHERE rolname = current_user',
    )
    if (!rows[0].may) throw new Error('this user may not create databases (CREATEDB), which the suite needs')
    console.log(`check-postgres: ${rows[0].v.split(' ').slice(0, 2).join(' ')} answers at ${new URL(url).host}`)
  } finally {
    await client.end()
  }
}

main().catch((e) => {
  console.error(`check-postgres: the PostgreSQL suite cannot run against ${new URL(url).host}: ${e.message}`)
  process.exit(1)
})

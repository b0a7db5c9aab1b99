// The soak: RSS before and after 1,000,000 verifies (a pool of 10,000 tokens, picked at random,
// so the cache both hits and churns) and 200,000 store operations across 1,000 users.
// Run with --expose-gc so each reading follows a full collection.
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const require = createRequire(import.meta.url)
const { OAuthStore, issueToken, loadKeys, verifyToken } = require('../lib/index.js')
const { closeDatabase } = require('../lib/sqlite.js')
const [privateKeyPath, jwksPath, dir, verifies, storeOps] = process.argv.slice(2)

function rss() {
  global.gc()
  global.gc()
  return process.memoryUsage().rss
}

loadKeys({ privateKeyPath, jwksPath })
const pool = Array.from({ length: 10000 }, () => issueToken(randomUUID()))
const users = Array.from({ length: 1000 }, () => randomUUID())
const dbPath = join(dir, 'soak.db')
const tokens = { access_token: 'a'.repeat(600), refresh_token: 'r'.repeat(64), token_type: 'Bearer', expires_in: 3600 }
let seed = 42
const random = (n) => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n
}
const stores = new Map()
const storeOf = (u) => stores.get(u) ?? stores.set(u, new OAuthStore(u, { dbPath })).get(u)
function storeOp(i) {
  const store = storeOf(users[random(users.length)])
  const server = `server-${random(20)}`
  switch (i % 10) {
    case 0:
    case 1:
      return store.saveTokens(server, tokens)
    case 7:
      return store.saveCodeVerifier(server, 'v'.repeat(43))
    case 8:
      return store.codeVerifier(server)
    case 9:
      return store.invalidateCredentials(server, 'verifier')
    default:
      return store.tokens(server)
  }
}
// Warm up every path first, so the readings compare steady states.
for (let i = 0; i < 20000; i++) verifyToken(pool[random(pool.length)])
for (let i = 0; i < 2000; i++) storeOp(i)
const before = rss()
let rejected = 0
for (let i = 0; i < Number(verifies); i++) if (!verifyToken(pool[random(pool.length)]).valid) rejected++
const afterVerifies = rss()
for (let i = 0; i < Number(storeOps); i++) storeOp(i)
const after = rss()
closeDatabase(dbPath)
if (rejected) throw new Error(`${rejected} valid tokens were rejected during the soak`)
process.stdout.write(JSON.stringify({ before, afterVerifies, after }))

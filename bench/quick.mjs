// A quick comparison of hoot-core with the libraries Hoot uses today (jose for signing,
// jsonwebtoken for verifying), measured in one run on one key. Prints medians of several rounds.
//   node bench/quick.mjs
import { createPrivateKey, createPublicKey, randomUUID } from 'node:crypto'
import { cpus } from 'node:os'

import { SignJWT, importJWK, jwtVerify } from 'jose'
import jsonwebtoken from 'jsonwebtoken'

import { issueToken, loadKeys, publicJwks, verifyToken } from '../index.js'
import { hootKeyFiles, tempDir } from '../__test__/helpers.mjs'

const ROUNDS = Number(process.env.ROUNDS || 7)
const files = await hootKeyFiles(tempDir('bench'))
loadKeys({ privateKeyPath: files.privateKeyPath, jwksPath: files.jwksPath })
const joseKey = await importJWK(files.privateJwk, 'RS256')
const publicKey = createPublicKey({ key: publicJwks().keys[0], format: 'jwk' })
const privateKey = createPrivateKey({ key: files.privateJwk, format: 'jwk' })
const claims = (sub) => ({ sub, portkey_oid: 'test-org-id', portkey_workspace: 'test-workspace', scope: ['completions.write', 'virtual_keys.list', 'logs.view'] })

async function opsPerSecond(n, fn) {
  const rates = []
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await fn(i)
    rates.push(n / (Number(process.hrtime.bigint() - start) / 1e9))
  }
  rates.sort((a, b) => a - b)
  return rates[Math.floor(rates.length / 2)]
}

const users = Array.from({ length: 20000 }, () => randomUUID())
const joseSign = (sub) => new SignJWT(claims(sub)).setProtectedHeader({ alg: 'RS256', kid: files.kid, typ: 'JWT' }).setIssuedAt().setExpirationTime('1h').sign(joseKey)
// Distinct tokens, so neither side can serve a repeat.
const tokens = users.map((u) => issueToken(u))
let cursor = 0
const fresh = () => tokens[cursor++ % tokens.length]
const one = issueToken(users[0])

const rows = []
async function row(name, n, ours, peers) {
  const o = await opsPerSecond(n, ours)
  const line = { operation: name, 'hoot-core ops/s': Math.round(o) }
  for (const [peer, fn] of Object.entries(peers)) {
    const p = await opsPerSecond(n, fn)
    line[`${peer} ops/s`] = Math.round(p)
    line[`vs ${peer}`] = `${(o / p).toFixed(2)}x`
  }
  rows.push(line)
}

await row('sign (issueToken)', 300, (i) => issueToken(users[i]), {
  jose: (i) => joseSign(users[i]),
  jsonwebtoken: (i) => jsonwebtoken.sign(claims(users[i]), privateKey, { algorithm: 'RS256', keyid: files.kid, expiresIn: 3600 }),
})
await row('verify, each token new', 2000, () => verifyToken(fresh()), {
  jose: () => jwtVerify(fresh(), publicKey, { algorithms: ['RS256'] }),
  jsonwebtoken: () => jsonwebtoken.verify(fresh(), publicKey, { algorithms: ['RS256'] }),
})
await row('verify, same token again', 20000, () => verifyToken(one), {
  jose: () => jwtVerify(one, publicKey, { algorithms: ['RS256'] }),
  jsonwebtoken: () => jsonwebtoken.verify(one, publicKey, { algorithms: ['RS256'] }),
})

console.log(`node ${process.version}, ${cpus()[0].model} x${cpus().length}, median of ${ROUNDS} rounds`)
console.table(rows)

// RS256 sign and verify: hoot-core against jose, Hoot's jsonwebtoken + jwk-to-pem path, fast-jwt
// with and without its cache, node:crypto on a fixed message (the floor in Node) and
// `openssl speed rsa2048` (the floor of the machine). All in this process, interleaved.
import { execFileSync } from 'node:child_process'
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, verify } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { createSigner, createVerifier } from 'fast-jwt'
import { SignJWT, createLocalJWKSet, importJWK, jwtVerify } from 'jose'
import jwt from 'jsonwebtoken'
import jwkToPem from 'jwk-to-pem'

import hoot from '../lib/index.js'
import { QUICK, ROUNDS, interleave, measure, tempDir } from './lib.mjs'

const SIGN_N = QUICK ? 30 : 150
const COLD_N = QUICK ? 200 : 1000
const REPEAT_N = QUICK ? 5000 : 40000
/**
 * Two fresh copies of lib/verify.js, loaded beside the real one: as it is, and without its one line
 * of counting (the cache-hit counter of hoot-core/metrics). Both start with empty caches, so the
 * A/B differs in that line alone. The copies live in lib/ for their relative requires only while
 * they load.
 */
function verifyCopies() {
  const source = readFileSync(new URL('../lib/verify.js', import.meta.url), 'utf8')
  const counting = '      cacheHits++\n'
  if (!source.includes(counting)) throw new Error('lib/verify.js no longer counts cache hits as this bench expects')
  const load = (name, text) => {
    const copy = new URL(`../lib/.verify-${name}.bench.js`, import.meta.url)
    writeFileSync(copy, text)
    try {
      return createRequire(import.meta.url)(fileURLToPath(copy)).verifyToken
    } finally {
      rmSync(copy)
    }
  }
  return { counted: load('counted', source), uncounted: load('uncounted', source.replace(counting, '')) }
}

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i

/** Hoot's key files: a private JWK and a one-key JWKS that names it. */
function hootKeys() {
  const dir = tempDir('keys')
  const kid = randomUUID()
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const privateJwk = privateKey.export({ format: 'jwk' })
  const publicJwk = { ...createPublicKey(privateKey).export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid }
  const privateKeyPath = join(dir, 'private-key.json')
  const jwksPath = join(dir, 'jwks.json')
  writeFileSync(privateKeyPath, JSON.stringify(privateJwk))
  writeFileSync(jwksPath, JSON.stringify({ keys: [publicJwk] }))
  return { kid, privateJwk, publicJwk, privateKeyPath, jwksPath }
}

/** `openssl speed rsa2048`: sign/s and verify/s of the machine's OpenSSL. */
export function opensslSpeed(seconds) {
  const out = execFileSync('openssl', ['speed', '-seconds', String(seconds), 'rsa2048'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  const row = out.split('\n').find((l) => /^rsa\s+2048 bits/.test(l))
  if (!row) throw new Error(`no rsa 2048 line in openssl speed output:\n${out}`)
  const numbers = row.trim().split(/\s+/).slice(-2).map(Number)
  return { sign: numbers[0], verify: numbers[1] }
}

/** The Rust core's own sign/s and verify/s (`cargo bench --bench core`): no Node, no N-API. */
export function coreSpeed() {
  const rustc = execFileSync('rustc', ['-vV'], { encoding: 'utf8' })
  const host = /^host: (\S+)$/m.exec(rustc)[1]
  // The same target directory and profile as `npm install`'s build, so nothing is compiled twice.
  const out = execFileSync('cargo', ['bench', '--quiet', '--target', host, '--bench', 'core'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    encoding: 'utf8',
    env: { ...process.env, CORE_BENCH_ROUNDS: '3' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const { verify_us, sign_us } = JSON.parse(out.trim().split('\n').pop())
  return { verify: 1e6 / verify_us, sign: 1e6 / sign_us }
}

export function opensslVersion() {
  try {
    return execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim()
  } catch {
    return 'openssl not found'
  }
}

/** Hoot's authenticateRequest, minus the HTTP: decode, look the kid up, verify with a PEM. */
export function hootJsVerifier(jwks) {
  const pems = new Map(jwks.keys.map((k) => [k.kid, jwkToPem(k)]))
  return (token) => {
    const decoded = jwt.decode(token, { complete: true })
    const pem = decoded && decoded.header.kid && pems.get(decoded.header.kid)
    if (!pem) throw new Error('no key')
    const payload = jwt.verify(token, pem, { algorithms: ['RS256'] })
    if (!payload.sub || !UUID_V4.test(payload.sub)) throw new Error('Invalid or missing user ID in token')
    return {
      userId: payload.sub,
      portkey: {
        orgId: payload.portkey_oid || payload.organisation_id,
        workspace: payload.portkey_workspace || payload.workspace_slug,
        scope: payload.scope || payload.scopes || [],
      },
    }
  }
}

function check(condition, what) {
  if (!condition) throw new Error(`benchmark sanity check failed: ${what}`)
}

export async function run() {
  const keys = hootKeys()
  hoot.loadKeys({ privateKeyPath: keys.privateKeyPath, jwksPath: keys.jwksPath })
  const jwks = { keys: [keys.publicJwk] }
  const privateKey = createPrivateKey({ key: keys.privateJwk, format: 'jwk' })
  const publicKey = createPublicKey({ key: keys.publicJwk, format: 'jwk' })
  const privatePem = jwkToPem(keys.privateJwk, { private: true })
  const publicPem = jwkToPem(keys.publicJwk)
  const joseKey = await importJWK(keys.privateJwk, 'RS256')
  const joseJwks = createLocalJWKSet(jwks)
  const hootJs = hootJsVerifier(jwks)
  const claims = {
    portkey_oid: 'test-org-id',
    portkey_workspace: 'test-workspace',
    scope: ['completions.write', 'virtual_keys.list', 'logs.view'],
  }
  const fastSign = createSigner({ key: privatePem, algorithm: 'RS256', kid: keys.kid, expiresIn: 3600 * 1000 })
  const fastVerify = createVerifier({ key: publicPem, algorithms: ['RS256'] })
  const fastVerifyCached = createVerifier({ key: publicPem, algorithms: ['RS256'], cache: true })
  const message = Buffer.from('a'.repeat(600))
  const signature = sign('sha256', message, privateKey)

  const users = Array.from({ length: SIGN_N }, () => randomUUID())
  const one = hoot.issueToken(users[0])
  // Every contender checks a real token, and rejects a forged one, before it is timed.
  check(hoot.verifyToken(one).valid && !hoot.verifyToken(one.slice(0, -4) + 'AAAA').valid, 'hoot-core')
  check((await jwtVerify(one, joseJwks, { algorithms: ['RS256'] })).payload.sub === users[0], 'jose')
  check(hootJs(one).userId === users[0], "Hoot's jsonwebtoken path")
  check(fastVerify(one).sub === users[0] && fastVerifyCached(one).sub === users[0], 'fast-jwt')
  check(fastVerify(fastSign({ sub: users[0] })).sub === users[0], 'fast-jwt signer')

  // Cold: a token no contender has seen, every call. hoot-core caches, so each token is used once.
  const cold = Array.from({ length: ROUNDS * COLD_N }, (_, i) =>
    hoot.issueToken(randomUUID(), { claims: { jti: String(i) } }),
  )
  const coldOf = (round) => (i) => cold[round * COLD_N + i]

  coreSpeed() // compiled before anything is timed
  const openssl = []
  const core = []
  const sign_ = await interleave(ROUNDS, {
    'hoot-core': () => measure(SIGN_N, (i) => hoot.issueToken(users[i])),
    jose: () =>
      measure(SIGN_N, (i) =>
        new SignJWT({ sub: users[i], ...claims })
          .setProtectedHeader({ alg: 'RS256', kid: keys.kid, typ: 'JWT' })
          .setIssuedAt()
          .setExpirationTime('1h')
          .sign(joseKey),
      ),
    'jsonwebtoken + jwk-to-pem': () =>
      measure(SIGN_N, (i) =>
        jwt.sign({ sub: users[i], ...claims }, privatePem, { algorithm: 'RS256', keyid: keys.kid, expiresIn: 3600 }),
      ),
    'fast-jwt': () => measure(SIGN_N, (i) => fastSign({ sub: users[i], ...claims })),
    'node:crypto (floor)': () => measure(SIGN_N, () => sign('sha256', message, privateKey)),
    'openssl speed (floor)': async () => {
      const speed = opensslSpeed(QUICK ? 1 : 2)
      openssl.push(speed)
      return speed.sign
    },
    'hoot-core, Rust core alone': () => {
      const speed = coreSpeed()
      core.push(speed)
      return speed.sign
    },
  })
  const verifyCold = await interleave(ROUNDS, {
    'hoot-core': (r) => measure(COLD_N, (i) => hoot.verifyToken(coldOf(r)(i))),
    jose: (r) => measure(COLD_N, (i) => jwtVerify(coldOf(r)(i), joseJwks, { algorithms: ['RS256'] })),
    'jsonwebtoken + jwk-to-pem': (r) => measure(COLD_N, (i) => hootJs(coldOf(r)(i))),
    'fast-jwt, no cache': (r) => measure(COLD_N, (i) => fastVerify(coldOf(r)(i))),
    'fast-jwt, cache': (r) => measure(COLD_N, (i) => fastVerifyCached(coldOf(r)(i))),
    'node:crypto (floor)': () => measure(COLD_N, () => verify('sha256', message, publicKey, signature)),
  })
  verifyCold['openssl speed (floor)'] = openssl.map((s) => s.verify)
  verifyCold['hoot-core, Rust core alone'] = core.map((s) => s.verify)
  const verifyRepeated = await interleave(ROUNDS, {
    'hoot-core': () => measure(REPEAT_N, () => hoot.verifyToken(one)),
    jose: () => measure(REPEAT_N / 20, () => jwtVerify(one, joseJwks, { algorithms: ['RS256'] })),
    'jsonwebtoken + jwk-to-pem': () => measure(REPEAT_N / 20, () => hootJs(one)),
    'fast-jwt, no cache': () => measure(REPEAT_N / 10, () => fastVerify(one)),
    'fast-jwt, cache': () => measure(REPEAT_N, () => fastVerifyCached(one)),
  })
  // What counting a cache hit costs: the same code with and without its counter, in longer and
  // more rounds than the rest, since the difference sought is a few nanoseconds a call.
  const copies = verifyCopies()
  const counting = await interleave(QUICK ? 5 : 21, {
    'hoot-core': () => measure(REPEAT_N * 5, () => copies.counted(one)),
    'hoot-core without counting': () => measure(REPEAT_N * 5, () => copies.uncounted(one)),
  })
  // Rejecting a forged token (a valid one with its signature changed) is the cost of an attack.
  const forged = cold.slice(0, COLD_N).map((t) => t.slice(0, -6) + (t.endsWith('AAAAAA') ? 'BBBBBB' : 'AAAAAA'))
  const verifyForged = await interleave(ROUNDS, {
    'hoot-core': () => measure(COLD_N, (i) => hoot.verifyToken(forged[i])),
    jose: () => measure(COLD_N, (i) => jwtVerify(forged[i], joseJwks, { algorithms: ['RS256'] }).catch(() => {})),
    'jsonwebtoken + jwk-to-pem': () =>
      measure(COLD_N, (i) => {
        try {
          hootJs(forged[i])
        } catch {}
      }),
    'fast-jwt, no cache': () =>
      measure(COLD_N, (i) => {
        try {
          fastVerify(forged[i])
        } catch {}
      }),
  })
  // The attacks refused before any RSA work: alg none, HS256 keyed with the public key, an
  // unknown kid, non-canonical base64url, and a bracket bomb in the header.
  const [h, p, s] = one.split('.')
  const seg = (x) => Buffer.from(JSON.stringify(x)).toString('base64url')
  const attacks = [
    `${seg({ alg: 'none', kid: keys.kid })}.${p}.`,
    `${seg({ alg: 'HS256', kid: keys.kid })}.${p}.${s.slice(0, 43)}`,
    `${seg({ alg: 'RS256', kid: 'unknown' })}.${p}.${s}`,
    `${h}=.${p}.${s}`,
    `${Buffer.from(`{"alg":"RS256","x":${'['.repeat(1000)}${']'.repeat(1000)}}`).toString('base64url')}.${p}.${s}`,
  ]
  const verifyAttacks = await interleave(ROUNDS, {
    'hoot-core': () => measure(COLD_N, (i) => hoot.verifyToken(attacks[i % attacks.length])),
    jose: () =>
      measure(COLD_N, (i) =>
        jwtVerify(attacks[i % attacks.length], joseJwks, { algorithms: ['RS256'] }).catch(() => {}),
      ),
    'jsonwebtoken + jwk-to-pem': () =>
      measure(COLD_N, (i) => {
        try {
          hootJs(attacks[i % attacks.length])
        } catch {}
      }),
    'fast-jwt, no cache': () =>
      measure(COLD_N, (i) => {
        try {
          fastVerify(attacks[i % attacks.length])
        } catch {}
      }),
  })
  check(
    attacks.every((a) => !hoot.verifyToken(a).valid),
    'every attack token is refused',
  )
  return {
    rows: {
      sign: sign_,
      'verify, cold': verifyCold,
      'verify, repeated token': verifyRepeated,
      'verify, repeated token: counting the cache hit': counting,
      'verify, forged signature': verifyForged,
      'verify, attack tokens refused before RSA': verifyAttacks,
    },
    openssl: opensslVersion(),
  }
}

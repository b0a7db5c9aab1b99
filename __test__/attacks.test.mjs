// Every known way of getting a JWT past a verifier, each with the code verifyToken must answer.
// None may pass, throw or take the process down. (How fast they are refused is the benchmark's
// business: `npm run bench` reports the cost of a forged token.)
import assert from 'node:assert/strict'
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  constants,
} from 'node:crypto'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'

import { OAuthStore, issueToken, issueTokenAsync, loadKeys, verifyToken } from '../lib/index.js'
import { USER, b64url, hootKeyFiles, tempDir } from './helpers.mjs'

const now = () => Math.floor(Date.now() / 1000)
const CODES = new Set([
  'ERR_JWT_EXPIRED',
  'ERR_JWS_INVALID',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JWKS_NO_MATCHING_KEY',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JWT_INVALID',
])

let hoot // Hoot's key files
let ourKey // the private key that really signs
const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ed = generateKeyPairSync('ed25519')

// A server standing in for every URL a header can point at: nothing may ever ask it for anything.
const fetched = []
const trap = createServer((req, res) => {
  fetched.push(req.url)
  res.end('{"keys":[]}')
})

before(async () => {
  hoot = await hootKeyFiles(tempDir('attacks'))
  ourKey = createPrivateKey({ key: hoot.privateJwk, format: 'jwk' })
  loadKeys({ privateKeyPath: hoot.privateKeyPath, jwksPath: hoot.jwksPath })
  await new Promise((resolve) => trap.listen(0, '127.0.0.1', resolve))
})
after(() => trap.close())

const claims = (extra = {}) => ({ sub: USER, iat: now(), exp: now() + 600, ...extra })
const header = (extra = {}) => ({ alg: 'RS256', kid: hoot.kid, typ: 'JWT', ...extra })

/** The signature of `input` by `alg` with `key`, base64url. */
function signature(alg, input, key) {
  const data = Buffer.from(input)
  const digest = { 256: 'sha256', 384: 'sha384', 512: 'sha512' }[alg.slice(2)]
  switch (alg.slice(0, 2)) {
    case 'HS':
      return createHmac(digest, key).update(data).digest('base64url')
    case 'RS':
      return cryptoSign(digest, data, key).toString('base64url')
    case 'PS':
      return cryptoSign(digest, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }).toString(
        'base64url',
      )
    case 'ES':
      return cryptoSign(digest, data, { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')
    default: // EdDSA
      return cryptoSign(null, data, key).toString('base64url')
  }
}

/** A token from a header and payload (objects, or raw text), signed by `alg` with `key`. */
function token(h, p, { alg = 'RS256', key = ourKey } = {}) {
  const input = `${b64url(h)}.${b64url(p)}`
  return `${input}.${signature(alg, input, key)}`
}

function rejects(t, code, why) {
  let result
  assert.doesNotThrow(() => {
    result = verifyToken(t)
  }, why)
  assert.equal(result.valid, false, `${why}: accepted`)
  assert.equal(result.code, code, `${why}: ${result.error}`)
  assert.equal(result.expired, code === 'ERR_JWT_EXPIRED', why)
  assert.ok(!result.error.includes(t.split('.')[2] || '\u0000'), `${why}: the error repeats the token`)
}

test('the genuine article verifies, so every rejection below is about the attack', () => {
  assert.equal(verifyToken(token(header(), claims())).valid, true)
  assert.equal(verifyToken(issueToken(USER)).valid, true)
})

describe('algorithm attacks', () => {
  test('"alg": "none" in any casing, with or without a signature', () => {
    const good = token(header(), claims()).split('.')[2]
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const unsigned = `${b64url(header({ alg }))}.${b64url(claims())}`
      rejects(`${unsigned}.`, 'ERR_JOSE_ALG_NOT_ALLOWED', `alg ${alg}, empty signature`)
      rejects(`${unsigned}.${good}`, 'ERR_JOSE_ALG_NOT_ALLOWED', `alg ${alg}, a real signature pasted on`)
    }
    rejects(`${b64url({ alg: 'none' })}.${b64url(claims())}.`, 'ERR_JOSE_ALG_NOT_ALLOWED', 'alg none without kid')
  })

  test('HMAC keyed with the public key, in every form an attacker can download', () => {
    const publicKey = createPublicKey({ key: hoot.publicJwk, format: 'jwk' })
    const secrets = {
      'SPKI PEM': publicKey.export({ type: 'spki', format: 'pem' }),
      'PKCS#1 PEM': publicKey.export({ type: 'pkcs1', format: 'pem' }),
      'public JWK': JSON.stringify(hoot.publicJwk),
      'JWKS text': JSON.stringify({ keys: [hoot.publicJwk] }),
      'modulus n': hoot.publicJwk.n,
    }
    for (const [form, secret] of Object.entries(secrets)) {
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        rejects(
          token(header({ alg }), claims(), { alg, key: secret }),
          'ERR_JOSE_ALG_NOT_ALLOWED',
          `${alg} with the ${form}`,
        )
      }
      // The same HMAC under a header that claims RS256.
      rejects(
        token(header(), claims(), { alg: 'HS256', key: secret }),
        'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
        `RS256 header, HS256 signature with the ${form}`,
      )
    }
  })

  test('every other algorithm is refused, even with our own RSA key', () => {
    const cases = [
      ['RS384', ourKey],
      ['RS512', ourKey],
      ['PS256', ourKey],
      ['PS384', ourKey],
      ['ES256', ec.privateKey],
      ['EdDSA', ed.privateKey],
    ]
    for (const [alg, key] of cases) {
      rejects(token(header({ alg }), claims(), { alg, key }), 'ERR_JOSE_ALG_NOT_ALLOWED', alg)
    }
    // RS256 in the header over a PSS signature by our own key.
    rejects(
      token(header(), claims(), { alg: 'PS256', key: ourKey }),
      'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
      'RS256 header, PS256 signature',
    )
    for (const alg of [null, 7, ['RS256'], { RS256: true }, '', 'rs256', 'RS256 ']) {
      const code = typeof alg === 'string' ? 'ERR_JOSE_ALG_NOT_ALLOWED' : 'ERR_JWS_INVALID'
      rejects(token(header({ alg }), claims()), code, `alg ${JSON.stringify(alg)}`)
    }
    rejects(token({ kid: hoot.kid }, claims()), 'ERR_JWS_INVALID', 'no alg at all')
  })
})

describe('key attacks', () => {
  test('a token signed by another key under our kid', () => {
    rejects(
      token(header(), claims(), { key: attacker.privateKey }),
      'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
      'same kid, other key',
    )
  })

  test('jku, x5u, x5c and jwk headers are never fetched or trusted', () => {
    const base = `http://127.0.0.1:${trap.address().port}`
    const attackerJwk = { ...attacker.publicKey.export({ format: 'jwk' }), kid: hoot.kid, alg: 'RS256', use: 'sig' }
    const injected = { jku: `${base}/jwks.json`, x5u: `${base}/cert.pem`, jwk: attackerJwk, x5c: ['MIIB'] }
    for (const [name, value] of Object.entries(injected)) {
      rejects(
        token(header({ [name]: value }), claims(), { key: attacker.privateKey }),
        'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
        `${name} with our kid`,
      )
      rejects(
        token({ alg: 'RS256', [name]: value }, claims(), { key: attacker.privateKey }),
        'ERR_JWKS_NO_MATCHING_KEY',
        `${name} without a kid`,
      )
    }
    // Signed by us, the extra headers change nothing: the token is good and nothing is fetched.
    assert.equal(verifyToken(token(header(injected), claims())).valid, true)
    assert.deepEqual(fetched, [])
  })

  test('kid values that try to reach a file, a query or the limits', () => {
    const kids = [
      '../../../../etc/passwd',
      '/dev/null',
      "' OR '1'='1' --",
      '"; DROP TABLE keys; --',
      '\u0000',
      `${hoot.kid}\u0000`,
      hoot.kid.toUpperCase(),
      ` ${hoot.kid}`,
      'k'.repeat(5000),
    ]
    for (const kid of kids) {
      rejects(token(header({ kid }), claims()), 'ERR_JWKS_NO_MATCHING_KEY', `kid ${JSON.stringify(kid.slice(0, 40))}`)
    }
    for (const kid of [7, null, [hoot.kid], { kid: hoot.kid }]) {
      rejects(token(header({ kid }), claims()), 'ERR_JWKS_NO_MATCHING_KEY', `kid ${JSON.stringify(kid)}`)
    }
    rejects(
      token(header({ kid: 'k'.repeat(10 * 1024) }), claims()),
      'ERR_JWS_INVALID',
      '10 KB kid: over the size limit',
    )
  })

  test('crit headers are refused even on a good signature', () => {
    for (const crit of [['exp'], ['b64'], [], null, 'exp']) {
      rejects(token(header({ crit, b64: false }), claims()), 'ERR_JWS_INVALID', `crit ${JSON.stringify(crit)}`)
    }
  })
})

describe('encoding attacks', () => {
  const good = () => token(header(), claims())

  test('a member named twice: parsers disagree on which one wins, so neither does', () => {
    const h = `{"alg":"none","alg":"RS256","kid":"${hoot.kid}"}`
    rejects(token(h, claims()), 'ERR_JWS_INVALID', 'alg twice')
    const kids = `{"alg":"RS256","kid":"other","kid":"${hoot.kid}"}`
    rejects(token(kids, claims()), 'ERR_JWS_INVALID', 'kid twice')
    const exp = `{"sub":"${USER}","exp":${now() - 10},"exp":${now() + 600}}`
    rejects(token(header(), exp), 'ERR_JWT_INVALID', 'exp twice')
    const sub = `{"sub":"11111111-1111-4111-8111-111111111111","sub":"${USER}","exp":${now() + 600}}`
    rejects(token(header(), sub), 'ERR_JWT_INVALID', 'sub twice')
    // Claims hoot-core does not read may repeat, as JSON.parse allows; the last one wins, as in jose.
    const role = `{"sub":"${USER}","exp":${now() + 600},"role":"user","role":"admin"}`
    assert.equal(verifyToken(token(header(), role)).payload.role, 'admin')
  })

  test('the signature stripped, truncated, padded or extended', () => {
    const [h, p, s] = good().split('.')
    rejects(`${h}.${p}.`, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', 'empty signature')
    rejects(`${h}.${p}`, 'ERR_JWS_INVALID', 'two segments')
    rejects(`${h}.${p}.${s}.${s}`, 'ERR_JWS_INVALID', 'four segments')
    rejects(`${h}.${p}.${s.slice(0, -2)}`, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', 'two characters short')
    rejects(`${h}.${p}.${s.slice(0, -1)}`, 'ERR_JWS_INVALID', 'one character short: not base64url')
    rejects(`${h}.${p}.${s}AAAA`, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', 'three bytes longer')
    rejects(`${h}.${p}.${s}==`, 'ERR_JWS_INVALID', 'padded')
    rejects(`${h}.${p}.${'A'.repeat(s.length)}`, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', 'all zero')
  })

  test('non-canonical base64url that lax decoders read as the same bytes', () => {
    const t = good()
    const [h, p, s] = t.split('.')
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    // 256 signature bytes are 342 characters: the last one carries 4 unused bits, which must be 0.
    assert.equal(s.length % 4, 2)
    const last = alphabet.indexOf(s.at(-1))
    const nonCanonical = `${s.slice(0, -1)}${alphabet[last + 1]}`
    assert.deepEqual(
      Buffer.from(nonCanonical, 'base64url'),
      Buffer.from(s, 'base64url'),
      'Node itself reads both as one signature',
    )
    rejects(`${h}.${p}.${nonCanonical}`, 'ERR_JWS_INVALID', 'stray bits in the signature')
    const standard = (x) => x.replaceAll('-', '+').replaceAll('_', '/')
    const withStandard = [h, p, s].findIndex((x) => x !== standard(x))
    if (withStandard >= 0) {
      const parts = [h, p, s]
      parts[withStandard] = standard(parts[withStandard])
      rejects(parts.join('.'), 'ERR_JWS_INVALID', 'standard base64 alphabet')
    }
    rejects(`${h}=.${p}.${s}`, 'ERR_JWS_INVALID', 'padding in the header')
    rejects(`${h}.${p.slice(0, 10)} ${p.slice(10)}.${s}`, 'ERR_JWS_INVALID', 'a space inside')
    rejects(`${h}.${p}\n.${s}`, 'ERR_JWS_INVALID', 'a newline')
    rejects(` ${t}`, 'ERR_JWS_INVALID', 'leading space')
    rejects(`${t}\n`, 'ERR_JWS_INVALID', 'trailing newline')
  })

  test('unicode in the segments, and unicode claims done right', () => {
    const [h, p, s] = good().split('.')
    rejects(`${h}é.${p}.${s}`, 'ERR_JWS_INVALID', 'é in the header segment')
    rejects(`${h}.${p}🦉.${s}`, 'ERR_JWS_INVALID', 'an emoji in the payload segment')
    rejects(`${h}.${p}.${s.slice(0, -1)}\u0130`, 'ERR_JWS_INVALID', 'a dotted capital I')
    rejects(`${h}.${p}.${s.slice(0, -1)}\ud800`, 'ERR_JWS_INVALID', 'a lone surrogate')
    rejects(`${h}\u2024${p}\u2024${s}`, 'ERR_JWS_INVALID', 'one-dot leaders instead of dots')
    const result = verifyToken(token(header(), claims({ name: 'Zoë 🦉 \u202e' })))
    assert.equal(result.payload.name, 'Zoë 🦉 \u202e', 'properly encoded unicode claims survive intact')
  })

  test('header and claims that are not JSON objects, or nest without end', () => {
    for (const [h, why] of [
      ['[]', 'array'],
      ['"RS256"', 'string'],
      ['null', 'null'],
      ['{', 'cut short'],
      ['{"alg":"RS256"} x', 'trailing text'],
      ['\ufeff{}', 'byte order mark'],
    ]) {
      rejects(token(h, claims()), 'ERR_JWS_INVALID', `header ${why}`)
    }
    for (const [p, why] of [
      ['[]', 'array'],
      ['"x"', 'string'],
      ['1', 'number'],
      ['{', 'cut short'],
      [`["${USER}",${now() + 60}]`, 'array in claim order'],
    ]) {
      rejects(token(header(), p), 'ERR_JWT_INVALID', `claims ${why}`)
    }
    // Nesting past 32 levels is refused before any parser sees it.
    const deep = (n) => '['.repeat(n) + ']'.repeat(n)
    rejects(token(`{"alg":"RS256","kid":"${hoot.kid}","x":${deep(2000)}}`, claims()), 'ERR_JWS_INVALID', 'deep header')
    rejects(
      token(header(), `{"sub":"${USER}","exp":${now() + 60},"x":${deep(2000)}}`),
      'ERR_JWT_INVALID',
      'deep claims',
    )
    const objects = (n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)
    rejects(
      token(header(), `{"sub":"${USER}","exp":${now() + 60},"x":${objects(300)}}`),
      'ERR_JWT_INVALID',
      'deep objects',
    )
    rejects(`${b64url(deep(100000))}.${b64url(claims())}.AAAA`, 'ERR_JWS_INVALID', 'a 200 KB bracket bomb')
  })

  test('claims with the wrong types or the wrong user', () => {
    const cases = [
      [claims({ exp: String(now() + 600) }), 'ERR_JWT_CLAIM_VALIDATION_FAILED', 'exp as a string'],
      [claims({ exp: null }), 'ERR_JWT_CLAIM_VALIDATION_FAILED', 'exp null'],
      [{ sub: USER }, 'ERR_JWT_CLAIM_VALIDATION_FAILED', 'no exp'],
      [claims({ nbf: now() + 600 }), 'ERR_JWT_CLAIM_VALIDATION_FAILED', 'nbf in the future'],
      [claims({ sub: 'default-user' }), 'ERR_JWT_CLAIM_VALIDATION_FAILED', 'sub not a UUID v4'],
      [claims({ sub: [USER] }), 'ERR_JWT_CLAIM_VALIDATION_FAILED', 'sub as an array'],
      [claims({ sub: `${USER}\u0000` }), 'ERR_JWT_CLAIM_VALIDATION_FAILED', 'sub with a NUL'],
      [claims({ exp: now() - 1 }), 'ERR_JWT_EXPIRED', 'expired'],
      [claims({ exp: Infinity }), 'ERR_JWT_CLAIM_VALIDATION_FAILED', 'exp Infinity (JSON null)'],
      [
        `{"sub":"${USER}","exp":1e400}`,
        'ERR_JWT_INVALID',
        'exp beyond any double (JSON.parse would read Infinity: valid forever)',
      ],
    ]
    for (const [p, code, why] of cases) rejects(token(header(), p), code, why)
    // Forged and expired: the signature is what is reported, never "expired".
    rejects(
      token(header(), claims({ exp: now() - 1 }), { key: attacker.privateKey }),
      'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
      'forged and expired',
    )
  })
})

test('10,000 random strings from a fixed seed: all refused with a known code, none throws', () => {
  let state = 0x9e3779b9
  const random = (n) => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) % n
  }
  const base64url = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const [h, p, s] = token(header(), claims()).split('.')
  const makers = [
    // random base64url in three segments
    () => [0, 1, 2].map(() => Array.from({ length: random(400) }, () => base64url[random(64)]).join('')).join('.'),
    // random UTF-16 code units, dots sprinkled in
    () => Array.from({ length: random(300) }, () => (random(10) ? String.fromCharCode(random(0x10000)) : '.')).join(''),
    // a real token with one character changed
    () => {
      const t = `${h}.${p}.${s}`.split('')
      t[random(t.length)] = base64url[random(64)]
      return t.join('')
    },
    // a real header with random claims bytes
    () => `${h}.${Buffer.from(Array.from({ length: random(200) }, () => random(256))).toString('base64url')}.${s}`,
    // random bytes read as Latin-1
    () => Buffer.from(Array.from({ length: random(500) }, () => random(256))).toString('latin1'),
  ]
  let refused = 0
  for (let i = 0; i < 10000; i++) {
    const t = makers[i % makers.length]()
    if (t === `${h}.${p}.${s}`) continue // a mutation that changed nothing
    const result = verifyToken(t)
    assert.equal(result.valid, false, `accepted: ${JSON.stringify(t)}`)
    assert.ok(CODES.has(result.code), `unknown code ${result.code} for ${JSON.stringify(t)}`)
    refused++
  }
  assert.ok(refused > 9900)
})

test('a refused user id is described, never repeated: it is the bearer secret SECURITY.md keeps out of logs', async () => {
  const dbPath = join(tempDir('refused-ids'), 'hoot-mcp.db')
  // A real browser id with a stray space or newline, or mistyped, is still the secret.
  for (const id of [
    `${USER} `,
    `\n${USER}`,
    `${USER}\r\n`,
    USER.replace('-4', '-1'),
    `${USER}0`,
    `${USER.slice(0, 30)}é`,
  ]) {
    const attempts = [() => issueToken(id), () => new OAuthStore(id, { dbPath }), () => issueTokenAsync(id)]
    for (const attempt of attempts) {
      let error
      try {
        await attempt()
      } catch (e) {
        error = e
      }
      assert.equal(error?.code, 'ERR_INVALID_USER_ID', `${JSON.stringify(id)} was accepted`)
      assert.match(error.message, /^Invalid user id: it (is|has) /)
      for (const part of USER.split('-')) {
        assert.ok(!error.message.includes(part), `the message repeats part of the id: ${error.message}`)
      }
      assert.ok(!error.stack.includes(USER.slice(0, 8)), 'nor does the stack')
    }
  }
})

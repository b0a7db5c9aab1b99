import assert from 'node:assert/strict'
import { createPrivateKey, createPublicKey, createSign, randomUUID } from 'node:crypto'
import { before, describe, test } from 'node:test'

import { SignJWT, createLocalJWKSet, importJWK, jwtVerify, decodeProtectedHeader } from 'jose'
import jsonwebtoken from 'jsonwebtoken'

import { isValidUserId, issueToken, issueTokenAsync, loadKeys, publicJwks, verifyToken } from '../lib/index.js'
import { USER, b64url, hootKeyFiles, tempDir } from './helpers.mjs'

let hoot // Hoot's key files, made by Hoot's own recipe with jose
const now = () => Math.floor(Date.now() / 1000)

/** Signs the way Hoot's mcp-backend-server.js does (jose SignJWT with the private JWK). */
async function hootSign(claims = {}, { kid = hoot.kid, iat = now(), exp = iat + 3600 } = {}) {
  const key = await importJWK(hoot.privateJwk, 'RS256')
  return new SignJWT({
    sub: USER,
    portkey_oid: 'test-org-id',
    portkey_workspace: 'test-workspace',
    scope: ['completions.write', 'virtual_keys.list', 'logs.view'],
    ...claims,
  })
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(key)
}

/** Signs arbitrary header/payload JSON (or raw text) with Hoot's private key. */
function rawSign(header, payload) {
  const input = `${b64url(header)}.${b64url(payload)}`
  const signature = createSign('RSA-SHA256')
    .update(input)
    .sign(createPrivateKey({ key: hoot.privateJwk, format: 'jwk' }))
  return `${input}.${signature.toString('base64url')}`
}

function assertFailure(result, code, expired = false) {
  assert.deepEqual(Object.keys(result).sort(), ['code', 'error', 'expired', 'valid'])
  assert.equal(result.valid, false)
  assert.equal(result.code, code, result.error)
  assert.equal(result.expired, expired)
  assert.equal(typeof result.error, 'string')
}

before(async () => {
  const dir = tempDir('token')
  hoot = await hootKeyFiles(dir)
  const info = loadKeys({ privateKeyPath: hoot.privateKeyPath, jwksPath: hoot.jwksPath })
  assert.equal(info.kid, hoot.kid)
})

describe('issueToken', () => {
  test("produces exactly Hoot's header and claims", () => {
    const before = now()
    const token = issueToken(USER)
    const [header, payload] = token
      .split('.')
      .slice(0, 2)
      .map((p) => JSON.parse(Buffer.from(p, 'base64url')))
    assert.deepEqual(header, { alg: 'RS256', kid: hoot.kid, typ: 'JWT' })
    assert.deepEqual(Object.keys(payload), ['sub', 'portkey_oid', 'portkey_workspace', 'scope', 'iat', 'exp'])
    assert.equal(payload.sub, USER)
    assert.deepEqual(payload.scope, ['completions.write', 'virtual_keys.list', 'logs.view'])
    assert.ok(payload.iat >= before && payload.iat <= now())
    assert.equal(payload.exp, payload.iat + 3600)
  })

  test('reads PORTKEY_* at each call and honours options', () => {
    process.env.PORTKEY_ORG_ID = 'org-a'
    process.env.PORTKEY_WORKSPACE_SLUG = 'ws-a'
    try {
      let payload = verifyToken(issueToken(USER)).payload
      assert.equal(payload.portkey_oid, 'org-a')
      assert.equal(payload.portkey_workspace, 'ws-a')
      process.env.PORTKEY_ORG_ID = 'org-b'
      payload = verifyToken(issueToken(USER)).payload
      assert.equal(payload.portkey_oid, 'org-b', 'not cached at load')
    } finally {
      delete process.env.PORTKEY_ORG_ID
      delete process.env.PORTKEY_WORKSPACE_SLUG
    }
    const token = issueToken(USER, {
      ttlSeconds: 60,
      portkeyOrgId: 'o',
      portkeyWorkspace: 'w',
      scope: ['x'],
      claims: { role: 'admin' },
    })
    const result = verifyToken(token)
    assert.equal(result.valid, true)
    assert.equal(result.payload.role, 'admin')
    assert.equal(result.expiresAt, result.payload.iat + 60)
    assert.deepEqual(result.portkey, { orgId: 'o', workspace: 'w', scope: ['x'] })
  })

  test('rejects ids that are not UUID v4 and claims that would override sub/iat/exp', () => {
    for (const id of ['default-user', 'legacy-user-1', '', USER.replace('-4', '-1')]) {
      assert.throws(() => issueToken(id), { name: 'Error', code: 'ERR_INVALID_USER_ID' })
    }
    for (const claim of ['sub', 'iat', 'exp']) {
      assert.throws(() => issueToken(USER, { claims: { [claim]: 1 } }), {
        name: 'TypeError',
        code: 'ERR_INVALID_ARG_VALUE',
      })
    }
    assert.throws(() => issueToken(USER, { ttlSeconds: 0 }), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(() => issueToken(USER, { claims: { blob: 'x'.repeat(9000) } }), {
      name: 'RangeError',
      code: 'ERR_INVALID_ARG_VALUE',
    })
  })

  test('claims verifyToken would refuse are refused at issue, so every issued token verifies', () => {
    for (const nbf of ['1800000000', null, true, [1], {}]) {
      assert.throws(() => issueToken(USER, { claims: { nbf } }), { code: 'ERR_INVALID_ARG_VALUE' }, JSON.stringify(nbf))
    }
    const nested = (levels) => Array.from({ length: levels }).reduce((inner) => [inner], 1)
    assert.throws(() => issueToken(USER, { claims: { deep: nested(32) } }), { code: 'ERR_INVALID_ARG_VALUE' })
    const deepest = issueToken(USER, { claims: { deep: nested(31) } })
    assert.equal(verifyToken(deepest).valid, true)
    const later = Math.floor(Date.now() / 1000) - 5
    assert.equal(verifyToken(issueToken(USER, { claims: { nbf: later } })).payload.nbf, later)
  })

  test('issueTokenAsync signs off the event loop and reports every error as a rejection', async () => {
    const tokens = await Promise.all(Array.from({ length: 8 }, () => issueTokenAsync(USER)))
    for (const token of tokens) assert.equal(verifyToken(token).userId, USER)
    const pending = issueTokenAsync(42) // must not throw synchronously
    await assert.rejects(pending, { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    await assert.rejects(issueTokenAsync('nope'), { code: 'ERR_INVALID_USER_ID' })
    await assert.rejects(issueTokenAsync(USER, { ttlSeconds: -1 }), {
      name: 'RangeError',
      code: 'ERR_INVALID_ARG_VALUE',
    })
  })
})

describe('interop', () => {
  test("tokens signed by Hoot's jose code verify here", async () => {
    const token = await hootSign()
    const result = verifyToken(token)
    assert.equal(result.valid, true, result.error)
    assert.equal(result.userId, USER)
    assert.deepEqual(result.portkey, {
      orgId: 'test-org-id',
      workspace: 'test-workspace',
      scope: ['completions.write', 'virtual_keys.list', 'logs.view'],
    })
  })

  test('tokens issued here verify under jose and jsonwebtoken', async () => {
    const token = issueToken(USER)
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(publicJwks()), {
      algorithms: ['RS256'],
    })
    assert.equal(payload.sub, USER)
    assert.equal(protectedHeader.kid, hoot.kid)
    // Hoot's middleware: jsonwebtoken.verify with the JWKS key as PEM.
    const pem = createPublicKey({ key: hoot.publicJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' })
    const decoded = jsonwebtoken.verify(token, pem, { algorithms: ['RS256'] })
    assert.equal(decoded.sub, USER)
  })

  test('failure codes are the ones jose reports for the same token', async () => {
    const jwks = createLocalJWKSet(publicJwks())
    const joseCode = async (token) => {
      try {
        await jwtVerify(token, jwks, { algorithms: ['RS256'] })
        return 'valid'
      } catch (e) {
        return e.code
      }
    }
    // Not compared: bad base64url in a segment. jose checks the signature over the raw text first
    // and reports a signature failure; the contract checks shape first (ERR_JWS_INVALID).
    const good = await hootSign()
    const [h, p, s] = good.split('.')
    const cases = {
      expired: await hootSign({}, { iat: now() - 7200, exp: now() - 3600 }),
      atExp: await hootSign({}, { iat: now() - 60, exp: now() }),
      tampered: `${h}.${b64url({ sub: randomUUID(), exp: now() + 60 })}.${s}`,
      unknownKid: await hootSign({}, { kid: 'not-in-jwks' }),
      twoSegments: `${h}.${p}`,
      futureNbf: rawSign({ alg: 'RS256', kid: hoot.kid }, { sub: USER, exp: now() + 600, nbf: now() + 300 }),
      arrayPayload: rawSign({ alg: 'RS256', kid: hoot.kid }, [1, 2]),
      hs256: `${b64url({ alg: 'HS256', kid: hoot.kid })}.${p}.${s}`,
    }
    for (const [name, token] of Object.entries(cases)) {
      const ours = verifyToken(token)
      assert.equal(ours.valid, false, name)
      assert.equal(ours.code, await joseCode(token), name)
    }
  })
})

describe('verifyToken', () => {
  test("every failure has the contract's code, and only expiry says expired", async () => {
    const good = await hootSign()
    const [h, p, s] = good.split('.')
    const hdr = { alg: 'RS256', kid: hoot.kid, typ: 'JWT' }
    assertFailure(verifyToken(await hootSign({}, { iat: now() - 100, exp: now() - 1 })), 'ERR_JWT_EXPIRED', true)
    assertFailure(verifyToken(`${b64url({ alg: 'none' })}.${p}.`), 'ERR_JOSE_ALG_NOT_ALLOWED')
    assertFailure(verifyToken(`${b64url({ ...hdr, alg: 'HS256' })}.${p}.${s}`), 'ERR_JOSE_ALG_NOT_ALLOWED')
    assertFailure(
      verifyToken(rawSign({ ...hdr, alg: 'RS384' }, { sub: USER, exp: now() + 60 })),
      'ERR_JOSE_ALG_NOT_ALLOWED',
    )
    assertFailure(verifyToken(rawSign({ alg: 'RS256' }, { sub: USER, exp: now() + 60 })), 'ERR_JWKS_NO_MATCHING_KEY')
    assertFailure(verifyToken(await hootSign({}, { kid: 'unknown' })), 'ERR_JWKS_NO_MATCHING_KEY')
    assertFailure(
      verifyToken(`${h}.${b64url({ sub: USER, exp: now() + 99999 })}.${s}`),
      'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
    )
    assertFailure(verifyToken(`${h}.${b64url({ sub: USER, exp: 1 })}.${s}`), 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED')
    assertFailure(verifyToken(`${h}.${p}.`), 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED')
    for (const malformed of [
      '',
      'abc',
      `${h}.${p}`,
      `${h}.${p}.${s}.x`,
      `${h}=.${p}.${s}`,
      `${h}.${p}.${s.replace(/-|_/, '+')}`,
      ` ${good}`,
      `${h}.${p}.${s}\n`,
    ]) {
      assertFailure(verifyToken(malformed), 'ERR_JWS_INVALID')
    }
    assertFailure(verifyToken(rawSign({ ...hdr, crit: ['exp'] }, { sub: USER, exp: now() + 60 })), 'ERR_JWS_INVALID')
    assertFailure(verifyToken('a'.repeat(8193)), 'ERR_JWS_INVALID')
    assertFailure(verifyToken(`${good}${'A'.repeat(8192)}`), 'ERR_JWS_INVALID')
    assertFailure(verifyToken(rawSign(hdr, 'not json')), 'ERR_JWT_INVALID')
    assertFailure(verifyToken(rawSign(hdr, '"a string"')), 'ERR_JWT_INVALID')
    assertFailure(verifyToken(rawSign(hdr, { sub: USER })), 'ERR_JWT_CLAIM_VALIDATION_FAILED')
    assertFailure(
      verifyToken(rawSign(hdr, { sub: 'default-user', exp: now() + 60 })),
      'ERR_JWT_CLAIM_VALIDATION_FAILED',
    )
    assertFailure(
      verifyToken(rawSign(hdr, { sub: USER, exp: now() + 600, nbf: now() + 120 })),
      'ERR_JWT_CLAIM_VALIDATION_FAILED',
    )
    assert.equal(
      verifyToken(rawSign(hdr, { sub: USER, exp: now() + 600, nbf: now() + 120 }), { leewaySeconds: 180 }).valid,
      true,
    )
  })

  test('leeway extends exp the way jose does', async () => {
    const token = await hootSign({}, { iat: now() - 100, exp: now() - 10 })
    assertFailure(verifyToken(token), 'ERR_JWT_EXPIRED', true)
    assert.equal(verifyToken(token, { leewaySeconds: 30 }).valid, true)
    assertFailure(verifyToken(token, { leewaySeconds: 10 }), 'ERR_JWT_EXPIRED', true)
  })

  test("a success carries the payload and Hoot's Portkey context", async () => {
    const token = await hootSign({ portkey_oid: undefined, organisation_id: 'org-x', scope: undefined, scopes: ['s'] })
    const result = verifyToken(token)
    assert.equal(result.valid, true)
    assert.deepEqual(result.portkey, { orgId: 'org-x', workspace: 'test-workspace', scope: ['s'] })
    assert.equal(result.expiresAt, result.payload.exp)
    const bare = verifyToken(rawSign({ alg: 'RS256', kid: hoot.kid }, { sub: USER, exp: now() + 60 }))
    assert.equal(bare.portkey.orgId, undefined)
    assert.deepEqual(bare.portkey.scope, [])
  })

  test('verifying a token again gives the caller fresh objects it may change', () => {
    const token = issueToken(USER)
    // A token is cached on its second verification and served from the cache after that.
    for (let i = 0; i < 4; i++) {
      const result = verifyToken(token)
      assert.equal(result.payload.sub, USER, `call ${i}`)
      assert.deepEqual(result.portkey.scope, ['completions.write', 'virtual_keys.list', 'logs.view'], `call ${i}`)
      result.payload.sub = 'mutated'
      result.portkey.scope.push('mutated')
    }
  })

  test('loadKeys clears the cache: a token from the old key set stops verifying', async () => {
    const token = issueToken(USER)
    for (let i = 0; i < 3; i++) assert.equal(verifyToken(token).valid, true) // now cached
    const other = await hootKeyFiles(tempDir('other'))
    loadKeys({ privateKeyPath: other.privateKeyPath, jwksPath: other.jwksPath })
    try {
      assertFailure(verifyToken(token), 'ERR_JWKS_NO_MATCHING_KEY')
    } finally {
      loadKeys({ privateKeyPath: hoot.privateKeyPath, jwksPath: hoot.jwksPath })
    }
    assert.equal(verifyToken(token).valid, true)
  })
})

describe('argument types', () => {
  const wrong = [undefined, null, 42, true, {}, [], () => {}, Symbol('s'), 10n]
  test('every export throws a TypeError naming the argument, and the process carries on', () => {
    for (const value of wrong) {
      assert.throws(() => issueToken(value), {
        name: 'TypeError',
        code: 'ERR_INVALID_ARG_TYPE',
        message: /"userId" argument must be of type string/,
      })
      assert.throws(() => verifyToken(value), {
        name: 'TypeError',
        code: 'ERR_INVALID_ARG_TYPE',
        message: /"token" argument/,
      })
      // A predicate: whatever the client sent, the answer is false, so Hoot's 400 stays a 400.
      assert.equal(isValidUserId(value), false)
    }
    assert.equal(isValidUserId('\ud800' + USER.slice(1)), false)
    assert.throws(() => verifyToken('x', 5), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
      message: /"opts" argument/,
    })
    assert.throws(() => verifyToken('x', { leewaySeconds: '5' }), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
      message: /"opts.leewaySeconds" property/,
    })
    assert.throws(() => verifyToken('x', { leewaySeconds: -1 }), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(() => issueToken(USER, { scope: 'a b' }), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
      message: /"opts.scope"/,
    })
    assert.throws(() => issueToken(USER, { scope: ['a', 1] }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => issueToken(USER, { claims: [] }), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
      message: /"opts.claims"/,
    })
    assert.throws(() => issueToken(USER, { claims: { f: () => {} } }), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
    })
    assert.throws(() => issueToken(USER, { ttlSeconds: '60' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => loadKeys('files'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => loadKeys({ generateIfMissing: 'yes' }), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
      message: /"opts.generateIfMissing"/,
    })
    // Still alive and still working.
    assert.equal(verifyToken(issueToken(USER)).valid, true)
  })

  test('a throwing getter in options surfaces its own error', () => {
    const opts = {
      get ttlSeconds() {
        throw new Error('boom')
      },
    }
    assert.throws(() => issueToken(USER, opts), /boom/)
    assert.equal(verifyToken(issueToken(USER)).valid, true)
  })

  test("isValidUserId matches Hoot's regex", () => {
    assert.equal(isValidUserId(USER), true)
    assert.equal(isValidUserId(USER.toUpperCase()), true)
    assert.equal(isValidUserId(randomUUID()), true)
    assert.equal(isValidUserId('default-user'), false)
    assert.equal(isValidUserId(USER.slice(0, 14) + '1' + USER.slice(15)), false)
  })

  test('the header of an issued token names the loaded kid', () => {
    assert.equal(decodeProtectedHeader(issueToken(USER)).kid, hoot.kid)
  })
})

test("issueTokenAsync rejects with a throwing getter's own error instead of throwing", async () => {
  const opts = {
    get scope() {
      throw new Error('getter boom')
    },
  }
  const pending = issueTokenAsync(USER, opts)
  await assert.rejects(pending, /getter boom/)
})

describe('one browser secret, one tenant', () => {
  test('a UUID in upper case is issued, and read back, in lower case', async () => {
    const token = issueToken(USER.toUpperCase())
    const result = verifyToken(token)
    assert.equal(result.payload.sub, USER, 'the signed sub')
    assert.equal(result.userId, USER)
    // A token signed elsewhere (Hoot's own jose code) with an upper-case sub: the id is canonical.
    const signed = await new SignJWT({ sub: USER.toUpperCase() })
      .setProtectedHeader({ alg: 'RS256', kid: hoot.kid })
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(await importJWK(hoot.privateJwk, 'RS256'))
    for (let i = 0; i < 3; i++) assert.equal(verifyToken(signed).userId, USER, 'cached or not')
  })

  test('a claim key, a claim value or a scope with a lone surrogate is refused, not signed as U+FFFD', async () => {
    for (const opts of [
      { claims: { ['role\uD800']: 'x' } },
      { claims: { role: 'admin\uDFFF' } },
      { claims: { nested: [{ deep: '\uD83D' }] } },
      { scope: ['read\uD800'] },
      { portkeyOrgId: 'org\uDC00' },
      { portkeyWorkspace: '\uD800' },
    ]) {
      assert.throws(() => issueToken(USER, opts), { code: 'ERR_INVALID_ARG_VALUE', message: /lone surrogate/ })
      await assert.rejects(issueTokenAsync(USER, opts), { code: 'ERR_INVALID_ARG_VALUE' })
    }
    const kept = verifyToken(issueToken(USER, { claims: { 'r\uFFFD': 'pair \uD83D\uDE00' } })).payload
    assert.equal(kept['r\uFFFD'], 'pair \uD83D\uDE00', 'a real U+FFFD and a surrogate pair are signed as they are')
  })
})

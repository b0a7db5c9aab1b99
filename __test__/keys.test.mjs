import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import { describe, test } from 'node:test'
import { Worker } from 'node:worker_threads'

import { SignJWT, importJWK } from 'jose'

import { generateKeys, issueToken, loadKeys, publicJwks, verifyToken } from '../lib/index.js'
import { USER, entry, hootKeyFiles, runIsolated, tempDir } from './helpers.mjs'

const mode = (path) => statSync(path).mode & 0o777
const PUBLIC_MEMBERS = ['alg', 'e', 'kid', 'kty', 'n', 'use']

test('zero-config: the first start generates a private key once, later starts reuse it', () => {
  const home = tempDir('home')
  const first = runIsolated(
    `const info = hoot.loadKeys(); console.log(JSON.stringify({ info, token: hoot.issueToken(${JSON.stringify(USER)}) }))`,
    { cwd: tempDir('cwd'), env: { HOME: home } },
  )
  const keyDir = join(home, '.hoot', 'keys')
  assert.deepEqual(first.info, {
    kid: first.info.kid,
    alg: 'RS256',
    publicKeys: 1,
    source: 'generated',
    privateKeyPath: join(keyDir, 'private-key.json'),
    jwksPath: join(keyDir, 'jwks.json'),
  })
  assert.equal(mode(keyDir), 0o700)
  assert.equal(mode(first.info.privateKeyPath), 0o600)
  assert.equal(mode(first.info.jwksPath), 0o600)

  // No loadKeys call at all: the first token call loads the same key lazily.
  const second = runIsolated(
    `console.log(JSON.stringify({ result: hoot.verifyToken(process.env.TOKEN), kid: hoot.publicJwks().keys[0].kid }))`,
    { cwd: tempDir('cwd'), env: { HOME: home, TOKEN: first.token } },
  )
  assert.equal(second.kid, first.info.kid)
  assert.equal(second.result.valid, true, 'a token from the previous start still verifies')
})

test('processes starting together on a fresh home agree on one key', async () => {
  const home = tempDir('race')
  const code = `import * as hoot from ${JSON.stringify(entry)}\nconsole.log(hoot.loadKeys().kid)`
  const runs = Array.from(
    { length: 4 },
    () =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
          env: { ...process.env, HOME: home },
          cwd: home,
        })
        let out = ''
        child.stdout.on('data', (d) => (out += d))
        child.on('error', reject)
        child.on('close', (status) => (status === 0 ? resolve(out.trim()) : reject(new Error(`exit ${status}`))))
      }),
  )
  const kids = await Promise.all(runs)
  assert.equal(new Set(kids).size, 1, `kids: ${kids}`)
  const onDisk = JSON.parse(readFileSync(join(home, '.hoot', 'keys', 'jwks.json'), 'utf8'))
  assert.equal(onDisk.keys[0].kid, kids[0])
})

test("Hoot's private-key.json and jwks.json in the working directory are used as they are", async () => {
  const dir = tempDir('cwdfiles')
  const files = await hootKeyFiles(dir)
  const out = runIsolated(`console.log(JSON.stringify(hoot.loadKeys()))`, { cwd: dir, env: { HOME: tempDir('home') } })
  assert.equal(out.source, 'files')
  assert.equal(out.kid, files.kid, "the kid comes from jwks.json; Hoot's private key has none")
  assert.equal(out.privateKeyPath, files.privateKeyPath)
  assert.equal(out.jwksPath, files.jwksPath)
})

test('JWT_PRIVATE_KEY_PATH and JWT_JWKS_PATH point at the files', async () => {
  const files = await hootKeyFiles(tempDir('envfiles'))
  const out = runIsolated(`console.log(JSON.stringify(hoot.loadKeys()))`, {
    cwd: tempDir('cwd'),
    env: { HOME: tempDir('home'), JWT_PRIVATE_KEY_PATH: files.privateKeyPath, JWT_JWKS_PATH: files.jwksPath },
  })
  assert.equal(out.kid, files.kid)
  assert.equal(out.privateKeyPath, files.privateKeyPath)
})

test('loadKeys() never returns a promise: with HOOT_DATABASE_URL on PostgreSQL and no key source it throws ERR_HOOT_KEYS', async () => {
  const files = await hootKeyFiles(tempDir('pg-env-files'))
  const home = tempDir('pg-env-home')
  // A child of its own: its environment names PostgreSQL (a port nothing listens on: nothing connects).
  const out = runIsolated(
    `const outcome = (f) => {
       try {
         const value = f()
         return typeof value?.then === 'function' ? 'a promise' : value.kid
       } catch (e) {
         return { name: e.name, code: e.code, message: e.message }
       }
     }
     console.log(JSON.stringify({
       none: outcome(() => hoot.loadKeys()),
       noSource: outcome(() => hoot.loadKeys({ generateIfMissing: false })),
       database: outcome(() => hoot.loadKeys({ database: process.env.HOOT_DATABASE_URL })),
       files: outcome(() => hoot.loadKeys(${JSON.stringify({ privateKeyPath: files.privateKeyPath, jwksPath: files.jwksPath })})),
       sqlite: await hoot.openDatabase(${JSON.stringify(join(home, 'hoot.db'))}).loadKeys({ keyDir: ${JSON.stringify(join(home, 'keys'))} }).then((k) => k.source),
     }))`,
    { env: { HOME: home, HOOT_DATABASE_URL: 'postgres://hoot:hunter2@127.0.0.1:1/hoot' } },
  )
  for (const name of ['none', 'noSource']) {
    assert.equal(out[name].code, 'ERR_HOOT_KEYS', name)
    assert.match(out[name].message, /`await openDatabase\(\)\.loadKeys\(\)`/, name)
    assert.doesNotMatch(out[name].message, /hunter2/, name)
  }
  assert.equal(out.database.code, 'ERR_INVALID_ARG_VALUE')
  assert.match(out.database.message, /^The "opts\.database" property is not a key option/)
  assert.equal(out.files, files.kid, 'key files named outright load, synchronously')
  assert.equal(
    out.sqlite,
    'generated',
    'a Database on SQLite loads the keys it is asked for, whatever HOOT_DATABASE_URL says',
  )
  assert.equal(existsSync(join(home, '.hoot', 'keys')), false, 'no key was made in ~/.hoot/keys')
})

test('keys that cannot be loaded throw ERR_HOOT_KEYS naming the file and the fix', () => {
  const missing = join(tempDir('missing'), 'private-key.json')
  assert.throws(
    () => loadKeys({ privateKeyPath: missing }),
    (e) => {
      assert.equal(e.code, 'ERR_HOOT_KEYS')
      assert.ok(e.message.includes(missing), e.message)
      assert.ok(e.message.includes('JWT_PRIVATE_KEY_PATH'), e.message)
      return true
    },
  )
  const dir = tempDir('broken')
  writeFileSync(join(dir, 'private-key.json'), '{ "kty": "RSA", ')
  assert.throws(() => loadKeys({ privateKeyPath: join(dir, 'private-key.json') }), {
    code: 'ERR_HOOT_KEYS',
    message: /not valid JSON/,
  })
  assert.throws(() => loadKeys({ keyDir: tempDir('empty'), generateIfMissing: false }), {
    code: 'ERR_HOOT_KEYS',
    message: /generateKeys/,
  })

  // Lazily loaded defaults fail the same way, from the token calls themselves.
  const out = runIsolated(
    `try { hoot.verifyToken('a.b.c') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`,
    { cwd: tempDir('cwd'), env: { HOME: tempDir('home'), JWT_PRIVATE_KEY_PATH: missing } },
  )
  assert.equal(out.code, 'ERR_HOOT_KEYS')
})

test('inline keys, as objects or JSON text', async () => {
  const files = await hootKeyFiles(tempDir('inline'))
  const info = loadKeys({ privateKeyJwk: files.privateJwk, jwks: readFileSync(files.jwksPath, 'utf8') })
  assert.deepEqual(info, { kid: files.kid, alg: 'RS256', publicKeys: 1, source: 'inline' })
  assert.equal(verifyToken(issueToken(USER)).valid, true)
})

test('rotation: sign with the new key, keep verifying tokens from the old one', async () => {
  const old = await hootKeyFiles(tempDir('old'), 'old-kid')
  const next = await hootKeyFiles(tempDir('new'), 'new-kid')
  const oldToken = await new SignJWT({ sub: USER })
    .setProtectedHeader({ alg: 'RS256', kid: 'old-kid', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(await importJWK(old.privateJwk, 'RS256'))
  const info = loadKeys({ privateKeyJwk: next.privateJwk, jwks: { keys: [old.publicJwk, next.publicJwk] } })
  assert.equal(info.kid, 'new-kid')
  assert.equal(info.publicKeys, 2)
  assert.equal(verifyToken(oldToken).valid, true)
  assert.equal(JSON.parse(Buffer.from(issueToken(USER).split('.')[0], 'base64url')).kid, 'new-kid')
  assert.deepEqual(
    publicJwks().keys.map((k) => k.kid),
    ['old-kid', 'new-kid'],
  )
})

test('published keys never carry private members, even from a JWKS that holds them', async () => {
  const files = await hootKeyFiles(tempDir('leak'))
  const leaky = { keys: [{ ...files.privateJwk, kid: files.kid }] }
  const info = loadKeys({ privateKeyJwk: files.privateJwk, jwks: leaky })
  assert.equal(JSON.stringify(info).includes(files.privateJwk.d), false)
  const jwks = publicJwks()
  assert.deepEqual(Object.keys(jwks), ['keys'])
  for (const key of jwks.keys) assert.deepEqual(Object.keys(key).sort(), PUBLIC_MEMBERS)
  assert.equal(JSON.stringify(jwks).includes(files.privateJwk.d), false)
})

test("generateKeys writes Hoot's files (0600 in a 0700 directory) and never overwrites", async () => {
  const dir = join(tempDir('gen'), 'keys')
  const made = generateKeys(dir, { kid: 'my-kid', bits: 3072 })
  assert.deepEqual(made, {
    kid: 'my-kid',
    privateKeyPath: join(dir, 'private-key.json'),
    jwksPath: join(dir, 'jwks.json'),
  })
  assert.equal(mode(dir), 0o700)
  assert.equal(mode(made.privateKeyPath), 0o600)
  assert.equal(mode(made.jwksPath), 0o600)
  // Hoot's own jose code can sign with the generated private key.
  const privateJwk = JSON.parse(readFileSync(made.privateKeyPath, 'utf8'))
  const token = await new SignJWT({ sub: USER })
    .setProtectedHeader({ alg: 'RS256', kid: 'my-kid' })
    .setExpirationTime('1h')
    .sign(await importJWK(privateJwk, 'RS256'))
  assert.equal(loadKeys({ keyDir: dir }).kid, 'my-kid')
  assert.equal(verifyToken(token).valid, true)

  assert.throws(() => generateKeys(dir), { code: 'ERR_HOOT_KEYS', message: /never overwrites/ })
  assert.throws(() => generateKeys(tempDir('bits'), { bits: 1024 }), {
    name: 'RangeError',
    code: 'ERR_INVALID_ARG_VALUE',
  })
  assert.throws(() => generateKeys(42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"dir" argument/ })
  assert.throws(() => generateKeys(tempDir('kid'), { kid: 7 }), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"opts.kid"/,
  })
  const fresh = generateKeys(tempDir('default'))
  assert.match(fresh.kid, /^[0-9a-f-]{36}$/)
})

/** A worker thread running `body` (an ES module with `hoot` and `port` in scope); resolves with its first message. */
function inWorker(body, workerData) {
  const code = `import * as hoot from ${JSON.stringify(entry)}\nimport { parentPort as port, workerData } from 'node:worker_threads'\n${body}`
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), { workerData })
  const next = () =>
    new Promise((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
  return { worker, next }
}

test('a key removed by loadKeys in any thread stops verifying in every thread, cached or not', async () => {
  const a = await hootKeyFiles(tempDir('threads-a'))
  const b = await hootKeyFiles(tempDir('threads-b'))
  const onlyA = { privateKeyPath: a.privateKeyPath, jwksPath: a.jwksPath }
  const onlyB = { privateKeyPath: b.privateKeyPath, jwksPath: b.jwksPath }

  // Rotation in a worker, rejection here: this thread's cache held the token.
  loadKeys(onlyA)
  const token = issueToken(USER)
  for (let i = 0; i < 3; i++) assert.equal(verifyToken(token).valid, true)
  const rotator = inWorker(`hoot.loadKeys(workerData); port.postMessage('rotated')`, onlyB)
  assert.equal(await rotator.next(), 'rotated')
  await rotator.worker.terminate()
  assert.equal(verifyToken(token).code, 'ERR_JWKS_NO_MATCHING_KEY')

  // The other way round: the worker's cache held the token, the rotation is here.
  loadKeys(onlyA)
  const verifier = inWorker(
    `const token = hoot.issueToken(workerData)
    for (let i = 0; i < 3; i++) if (!hoot.verifyToken(token).valid) throw new Error('did not verify')
    port.postMessage('cached')
    port.once('message', () => port.postMessage(hoot.verifyToken(token).code ?? 'valid'))`,
    USER,
  )
  assert.equal(await verifier.next(), 'cached')
  loadKeys(onlyB)
  verifier.worker.postMessage('verify again')
  assert.equal(await verifier.next(), 'ERR_JWKS_NO_MATCHING_KEY')
  await verifier.worker.terminate()
})

describe('key files are trusted only when they are ours (StrictModes)', () => {
  const asRoot = process.getuid?.() === 0
  const OTHER = 65534 // nobody

  test('a key file or directory others can write is refused, with what to fix', async () => {
    const files = await hootKeyFiles(tempDir('writable'))
    const paths = { privateKeyPath: files.privateKeyPath, jwksPath: files.jwksPath }
    assert.equal(loadKeys(paths).kid, files.kid)
    for (const [target, mode] of [
      [files.privateKeyPath, 0o620],
      [files.jwksPath, 0o602],
      [dirname(files.privateKeyPath), 0o777],
    ]) {
      const before = statSync(target).mode & 0o7777
      chmodSync(target, mode)
      assert.throws(
        () => loadKeys(paths),
        (e) => e.code === 'ERR_HOOT_KEYS' && /writable by others/.test(e.message) && /chmod/.test(e.message),
        target,
      )
      chmodSync(target, before)
    }
    assert.equal(loadKeys(paths).kid, files.kid, 'the previous key set is untouched by the refusals')
  })

  test(
    'a key file another user owns is refused, from options, the working directory or ~/.hoot/keys',
    { skip: !asRoot && 'chown needs root' },
    async () => {
      const cwd = tempDir('planted-cwd')
      const files = await hootKeyFiles(cwd)
      for (const file of [files.privateKeyPath, files.jwksPath]) {
        chownSync(file, OTHER, OTHER)
        assert.throws(() => loadKeys({ privateKeyPath: files.privateKeyPath, jwksPath: files.jwksPath }), {
          code: 'ERR_HOOT_KEYS',
          message: /owned by another user/,
        })
        // Picked up from the working directory, as Hoot's own files are.
        const out = runIsolated(
          `try { hoot.loadKeys(); console.log('null') } catch (e) { console.log(JSON.stringify(e.code)) }`,
          {
            cwd,
            env: { HOME: tempDir('planted-home') },
          },
        )
        assert.equal(out, 'ERR_HOOT_KEYS')
        chownSync(file, 0, 0)
      }
      // A key planted where the zero-config key lives is never reported as one this package made.
      const home = tempDir('planted-keydir')
      const keyDir = join(home, '.hoot', 'keys')
      mkdirSync(keyDir, { recursive: true, mode: 0o700 })
      const planted = await hootKeyFiles(keyDir)
      chownSync(planted.privateKeyPath, OTHER, OTHER)
      assert.throws(() => loadKeys({ keyDir }), { code: 'ERR_HOOT_KEYS', message: /owned by another user/ })
      chownSync(planted.privateKeyPath, 0, 0)
      chownSync(keyDir, OTHER, OTHER)
      assert.throws(() => loadKeys({ keyDir }), {
        code: 'ERR_HOOT_KEYS',
        message: /directory .* owned by another user/,
      })
    },
  )

  test('a FIFO where a key file should be is refused at once instead of blocking the process', () => {
    const dir = tempDir('fifo-keys')
    const fifo = join(dir, 'private-key.json')
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0)
    const started = Date.now()
    const out = runIsolated(
      `try { hoot.loadKeys({ privateKeyPath: ${JSON.stringify(fifo)} }); console.log('null') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`,
      { env: { HOME: tempDir('fifo-home') }, timeout: 10_000 },
    )
    assert.equal(out.code, 'ERR_HOOT_KEYS')
    assert.match(out.message, /not a regular file/)
    assert.ok(Date.now() - started < 10_000)
  })

  test('generateKeys never writes through a planted link, dangling or not, nor into a directory others can write', () => {
    const dir = tempDir('planted-link')
    const target = join(tempDir('link-target'), 'where-the-planter-reads')
    symlinkSync(target, join(dir, 'jwks.json'))
    assert.throws(() => generateKeys(dir), { code: 'ERR_HOOT_KEYS', message: /jwks\.json already exists/ })
    assert.ok(!existsSync(target), 'nothing was written through the link')
    assert.ok(!existsSync(join(dir, 'private-key.json')))
    assert.equal(lstatSync(join(dir, 'jwks.json')).isSymbolicLink(), true, 'the link is left for its owner to see')

    const open = tempDir('open-dir')
    chmodSync(open, 0o777)
    assert.throws(() => generateKeys(open), { code: 'ERR_HOOT_KEYS', message: /writable by others/ })
    assert.deepEqual(readdirSync(open), [])
  })
})

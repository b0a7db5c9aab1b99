// The install most users get: the main package and its prebuilt platform package, on a machine
// without Rust. The linux-x64-gnu binary is built here the way the release builds it
// (scripts/build-platform.js: cargo-zigbuild against glibc 2.17); cargo reuses the build of the
// same sources, and builds it when absent.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { delimiter, join } from 'node:path'
import { before, describe, test } from 'node:test'

import { USER, root, tempDir } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { PREBUILT, bindingPackage, hostPlatform, missingBindingError, platformOfTriple } = require('../lib/platform.js')
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const platform = 'linux-x64-gnu'
const pkg = bindingPackage(platform)

function run(command, args, options) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options })
  assert.equal(result.status, 0, `${command} ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`)
  return result.stdout
}

/** The environment of a machine without Rust: no directory on PATH holds cargo or rustc. */
function withoutRust() {
  const PATH = process.env.PATH.split(delimiter)
    .filter((dir) => !['cargo', 'rustc'].some((tool) => existsSync(join(dir, tool))))
    .join(delimiter)
  const env = { ...process.env, PATH, HOME: tempDir('home') }
  for (const name of [
    'CARGO',
    'RUSTC',
    'CARGO_TARGET_DIR',
    'HOOT_CORE_BUILD_FROM_SOURCE',
    'npm_config_build_from_source',
  ]) {
    delete env[name]
  }
  assert.equal(spawnSync('cargo', ['--version'], { env }).error?.code, 'ENOENT', 'cargo is still on PATH')
  return env
}

function emptyProject(label) {
  const project = tempDir(label)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  return project
}

/** `npm install` of tarballs, offline (the other platforms' optional packages are skipped, as npm skips any). */
function install(project, tarballs, extra = []) {
  return spawnSync(npm, ['install', '--no-audit', '--no-fund', '--offline', ...extra, ...tarballs], {
    cwd: project,
    env: withoutRust(),
    encoding: 'utf8',
  })
}

/** Loads hoot-core in `project` from ESM or CJS, and reports what a user relies on. */
function useFrom(project, kind) {
  const body = `
    const store = new hoot.OAuthStore('${USER}', { dbPath: ':memory:' })
    store.saveTokens('srv', { access_token: 'a', token_type: 'Bearer' })
    const binary = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
    console.log(JSON.stringify({ userId: hoot.verifyToken(hoot.issueToken('${USER}')).userId, tokens: store.tokens('srv'), binary }))`
  const code =
    kind === 'esm'
      ? `import * as hoot from 'hoot-core'\nimport { createRequire } from 'node:module'\nconst require = createRequire(import.meta.url)\n${body}`
      : `const hoot = require('hoot-core')\n${body}`
  const args = kind === 'esm' ? ['--input-type=module', '-e', code] : ['-e', code]
  return JSON.parse(run(process.execPath, args, { cwd: project, env: withoutRust() }).trim().split('\n').pop())
}

/** What `require('hoot-core')` throws in `project`: its code and message. */
function loadError(project) {
  const code = `try { require('hoot-core'); console.log('null') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`
  return JSON.parse(run(process.execPath, ['-e', code], { cwd: project, env: withoutRust() }).trim())
}

describe('prebuilt platform packages', () => {
  const packs = tempDir('prebuilt-pack')
  let main
  let prebuilt
  let binary

  before(() => {
    run(process.execPath, [join(root, 'scripts', 'build-platform.js'), '--target', 'x86_64-unknown-linux-gnu'], {
      cwd: root,
    })
    binary = join(root, 'npm', platform, `hoot-core.${platform}.node`)
    const pack = (cwd) => JSON.parse(run(npm, ['pack', '--json', '--pack-destination', packs], { cwd }))[0]
    main = pack(root)
    prebuilt = pack(join(root, 'npm', platform))
  })

  test('the linux-x64-gnu binary needs no glibc newer than 2.17 and is stripped', () => {
    const symbols = run('objdump', ['-T', binary])
    const versions = [...new Set(symbols.match(/GLIBC_[0-9.]+/g))].map((v) =>
      v.slice('GLIBC_'.length).split('.').map(Number),
    )
    assert.ok(versions.length > 0, 'no GLIBC symbol versions: not a glibc binary?')
    const highest = versions.sort((a, b) => a[0] - b[0] || a[1] - b[1]).pop()
    assert.ok(highest[0] === 2 && highest[1] <= 17, `needs GLIBC_${highest.join('.')}`)
    assert.doesNotMatch(run('objdump', ['-h', binary]), /\.symtab|\.debug_/)
  })

  test('the platform tarball holds the binary and its manifest only; the main tarball holds no binary', () => {
    assert.deepEqual(
      prebuilt.files.map((f) => f.path).sort(),
      [`hoot-core.${platform}.node`, 'README.md', 'package.json'].sort(),
    )
    assert.ok(!main.files.some((f) => f.path.endsWith('.node')))
  })

  test('with --ignore-scripts and no Rust: import and require work, with nothing compiled', () => {
    const project = emptyProject('prebuilt-ignore-scripts')
    const result = install(project, [join(packs, main.filename), join(packs, prebuilt.filename)], ['--ignore-scripts'])
    assert.equal(result.status, 0, result.stderr)
    const loaded = join(project, 'node_modules', pkg, `hoot-core.${platform}.node`)
    for (const kind of ['esm', 'cjs']) {
      const used = useFrom(project, kind)
      assert.equal(used.userId, USER)
      assert.deepEqual(used.tokens, { access_token: 'a', token_type: 'Bearer' })
      assert.deepEqual(used.binary, [loaded], `${kind} loaded the prebuilt binary`)
    }
    const installed = join(project, 'node_modules', 'hoot-core')
    assert.deepEqual(
      readdirSync(join(installed, 'lib')).filter((f) => f.endsWith('.node')),
      [],
    )
    assert.ok(!existsSync(join(installed, 'target')), 'nothing was compiled')

    const doctor = spawnSync(process.execPath, [join(installed, 'bin', 'hoot-core.js'), 'doctor'], {
      cwd: project,
      env: withoutRust(),
      encoding: 'utf8',
    })
    assert.match(doctor.stdout, new RegExp(`^✓ native addon loads: prebuilt ${pkg}@${manifest.version} \\(`, 'm'))
  })

  test('with install scripts on and no Rust, the install script sees the platform package and builds nothing', () => {
    const project = emptyProject('prebuilt-scripts')
    const result = install(project, [join(packs, main.filename), join(packs, prebuilt.filename)])
    assert.equal(result.status, 0, result.stderr)
    assert.doesNotMatch(result.stdout + result.stderr, /hoot-core: /)
    assert.equal(useFrom(project, 'cjs').userId, USER)
  })

  test('the main tarball alone, without Rust, fails with one line naming the platform package and both fixes', () => {
    const project = emptyProject('prebuilt-alone')
    const result = install(project, [join(packs, main.filename)])
    assert.notEqual(result.status, 0)
    const lines = result.stderr.split('\n').filter((line) => line.includes('hoot-core: '))
    assert.equal(lines.length, 1, result.stderr)
    assert.match(
      lines[0],
      new RegExp(`no prebuilt binary for ${platform} .*\`npm install ${pkg}@${manifest.version}\``),
    )
    assert.match(lines[0], /install Rust from https:\/\/rustup\.rs/)
  })

  test('a build from source, when asked for, is attempted even with the platform package installed', () => {
    const project = emptyProject('prebuilt-forced')
    assert.equal(install(project, [join(packs, main.filename), join(packs, prebuilt.filename)]).status, 0)
    const script = join(project, 'node_modules', 'hoot-core', 'scripts', 'install.js')
    for (const ask of [{ HOOT_CORE_BUILD_FROM_SOURCE: '1' }, { npm_config_build_from_source: 'true' }]) {
      const result = spawnSync(process.execPath, [script], { env: { ...withoutRust(), ...ask }, encoding: 'utf8' })
      assert.equal(result.status, 1, JSON.stringify(ask))
      assert.match(result.stderr.trim(), /^hoot-core: a build from source was requested, and it needs Rust: .*rustup/)
    }
  })

  test('a missing or broken binary says which package and the command that fixes it', () => {
    const project = emptyProject('prebuilt-missing')
    assert.equal(
      install(project, [join(packs, main.filename), join(packs, prebuilt.filename)], ['--ignore-scripts']).status,
      0,
    )
    const installedBinary = join(project, 'node_modules', pkg, `hoot-core.${platform}.node`)
    writeFileSync(installedBinary, 'not an ELF file')
    const broken = loadError(project)
    assert.equal(broken.code, 'ERR_DLOPEN_FAILED')
    assert.match(
      broken.message,
      new RegExp(`${pkg} is installed but did not load \\(.*\\); reinstall it with \`npm install ${pkg}@`),
    )

    rmSync(join(project, 'node_modules', pkg), { recursive: true })
    const doctor = spawnSync(
      process.execPath,
      [join(project, 'node_modules', 'hoot-core', 'bin', 'hoot-core.js'), 'doctor'],
      {
        cwd: project,
        env: withoutRust(),
        encoding: 'utf8',
      },
    )
    assert.equal(doctor.status, 1)
    assert.match(doctor.stdout, new RegExp(`the native addon does not load: .*npm install ${pkg}@`))
    const missing = loadError(project)
    assert.equal(missing.code, 'MODULE_NOT_FOUND')
    assert.equal(
      missing.message,
      `hoot-core's prebuilt binary for ${platform} is the optional dependency ${pkg}, which is not installed (an old lockfile, --omit=optional or --no-optional skip it); fix: \`npm install ${pkg}@${manifest.version}\`, or with Rust installed: \`npm rebuild hoot-core --build-from-source\``,
    )
  })
})

test('a platform with no prebuilt binary is told to build from source', () => {
  const error = missingBindingError(new Error('Cannot find native binding'), 'freebsd-x64')
  assert.equal(error.code, 'MODULE_NOT_FOUND')
  assert.match(
    error.message,
    /no prebuilt binary for freebsd-x64; build it from source: install Rust .*npm rebuild hoot-core --build-from-source/,
  )
})

test('napi.targets, the npm/ folders and optionalDependencies name the same platforms at the same version', () => {
  assert.deepEqual(readdirSync(join(root, 'npm')).sort(), [...PREBUILT].sort())
  assert.deepEqual(
    manifest.optionalDependencies,
    Object.fromEntries(PREBUILT.map((p) => [bindingPackage(p), manifest.version])),
  )
  const libc = { gnu: 'glibc', musl: 'musl' }
  for (const triple of manifest.napi.targets) {
    const name = platformOfTriple(triple)
    const sub = JSON.parse(readFileSync(join(root, 'npm', name, 'package.json'), 'utf8'))
    const [os, cpu, abi] = name.split('-')
    assert.equal(sub.name, bindingPackage(name))
    assert.equal(sub.version, manifest.version)
    assert.equal(sub.main, `hoot-core.${name}.node`)
    assert.deepEqual(sub.os, [os])
    assert.deepEqual(sub.cpu, [cpu])
    assert.deepEqual(sub.libc, libc[abi] ? [libc[abi]] : undefined, name)
  }
  assert.ok(PREBUILT.includes(hostPlatform()), 'this machine is one of the prebuilt platforms')
})

test('the release workflow builds, smoke-tests and publishes every target with the commands a checkout has', () => {
  const workflow = readFileSync(join(root, '.github', 'workflows', 'release.yml'), 'utf8')
  const build = workflow.slice(workflow.indexOf('\n  build:'), workflow.indexOf('\n  smoke-native:'))
  const built = [...build.matchAll(/^ {12}target: (\S+)/gm)].map((m) => m[1])
  assert.deepEqual(built.sort(), [...manifest.napi.targets].sort())
  const smoked = [
    ...workflow.slice(workflow.indexOf('\n  smoke-native:')).matchAll(/^ +(?:target: |- )(\w+-\w+-[\w-]+)$/gm),
  ]
  assert.deepEqual([...new Set(smoked.map((m) => m[1]))].sort(), [...manifest.napi.targets].sort())
  for (const command of [
    'node scripts/build-platform.js --target ${{ matrix.settings.target }}',
    'node scripts/smoke.js',
    'npx napi artifacts --output-dir artifacts --npm-dir npm',
    'npx napi pre-publish -t npm --no-gh-release',
    'npm publish --access public --provenance',
  ]) {
    assert.ok(workflow.includes(command), `release.yml lacks ${command}`)
  }
  for (const script of ['build-platform.js', 'smoke.js']) assert.ok(existsSync(join(root, 'scripts', script)))
})

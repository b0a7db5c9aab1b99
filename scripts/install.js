#!/usr/bin/env node
// The install step, a fallback: most installs get the prebuilt binary as the optional dependency
// hoot-core-<platform>, and this script then exits at once, building nothing. It builds the addon
// from source with cargo, and puts it where the napi-generated loader (lib/binding.js) looks first
// (lib/hoot-core.<platform>.node), only when
//   - no prebuilt binary is installed (an unsupported platform, optional dependencies skipped), or
//   - the user asks for it: `npm install --build-from-source` (npm_config_build_from_source) or
//     HOOT_CORE_BUILD_FROM_SOURCE=1, or
//   - this is a development clone (a .git next to package.json), where the sources are the point.
'use strict'

const { spawnSync } = require('child_process')
const { copyFileSync, existsSync, writeFileSync } = require('fs')
const { join, resolve } = require('path')

const { PREBUILT, bindingPackage, hostPlatform } = require('../lib/platform.js')
const { name, version } = require('../package.json')

const root = resolve(__dirname, '..')
const cargo = process.env.CARGO || 'cargo'
const platform = hostPlatform()
const pkg = bindingPackage(platform)
const local = join(root, 'lib', `hoot-core.${platform}.node`)

function fail(message) {
  console.error(`hoot-core: ${message}`)
  process.exit(1)
}

function resolves(id) {
  try {
    require.resolve(id)
    return true
  } catch {
    return false
  }
}

/** `--build-from-source` (npm passes "true"; node-pre-gyp's `=<package name>` form also counts) or HOOT_CORE_BUILD_FROM_SOURCE=1. */
function sourceBuildRequested() {
  const npmFlag = process.env.npm_config_build_from_source
  return npmFlag === 'true' || npmFlag === '1' || npmFlag === name || process.env.HOOT_CORE_BUILD_FROM_SOURCE === '1'
}

const requested = sourceBuildRequested()
if (!requested && !existsSync(join(root, '.git'))) {
  if (resolves(`${pkg}/package.json`) || existsSync(local)) process.exit(0)
}

function libraryName() {
  if (process.platform === 'win32') return 'hoot_core.dll'
  if (process.platform === 'darwin') return 'libhoot_core.dylib'
  return 'libhoot_core.so'
}

const probe = spawnSync(cargo, ['--version'], { encoding: 'utf8' })
if (probe.error || probe.status !== 0) {
  const rust = 'install Rust from https://rustup.rs (cargo on PATH)'
  if (requested) {
    fail(`a build from source was requested, and it needs Rust: ${rust}, then run \`npm rebuild ${name}\` again`)
  }
  if (PREBUILT.includes(platform)) {
    fail(
      `no prebuilt binary for ${platform} (the optional dependency ${pkg} is not installed) and no Rust to build one: run \`npm install ${pkg}@${version}\`, or ${rust} and run \`npm rebuild ${name}\``,
    )
  }
  fail(
    `there is no prebuilt binary for ${platform}, and building one needs Rust: ${rust}, then run \`npm rebuild ${name}\``,
  )
}

// npm hides a dependency's install output unless --foreground-scripts, so the notice also goes
// straight to the terminal when there is one.
function notice(message) {
  console.log(message)
  if (!process.stdout.isTTY && process.platform !== 'win32') {
    try {
      writeFileSync('/dev/tty', `${message}\n`)
    } catch {
      // no controlling terminal (CI): the log line above is all there is
    }
  }
}

// Building for the explicit host triple, as `napi build` does, lets the two share compiled
// dependencies in target/<triple>.
const rustc = spawnSync(process.env.RUSTC || 'rustc', ['-vV'], { encoding: 'utf8' })
const host = !rustc.error && /^host: (\S+)$/m.exec(rustc.stdout || '')
const targetArgs = host ? ['--target', host[1]] : []

notice(
  `hoot-core: building the native addon from source with ${probe.stdout.trim()} (a few minutes the first time: SQLite and aws-lc compile from C)...`,
)
const build = spawnSync(cargo, ['build', '--release', '--locked', '--lib', ...targetArgs], {
  cwd: root,
  stdio: 'inherit',
})
if (build.error || build.status !== 0) {
  fail(`cargo build failed (exit ${build.status}); the output above says why`)
}

const targetDir = resolve(root, process.env.CARGO_TARGET_DIR || 'target')
const built = join(targetDir, ...(host ? [host[1]] : []), 'release', libraryName())
if (!existsSync(built)) fail(`cargo finished but ${built} is missing`)
copyFileSync(built, local)
console.log(`hoot-core: built ${local}`)

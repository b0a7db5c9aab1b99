#!/usr/bin/env node
// Builds the native addon from source at `npm install` time (there is no prebuilt binary) and
// puts it where the napi-generated loader (lib/binding.js) looks for it: lib/hoot-core.<platform>.node.
'use strict'

const { spawnSync } = require('child_process')
const { copyFileSync, existsSync, writeFileSync } = require('fs')
const { join, resolve } = require('path')

const root = resolve(__dirname, '..')
const cargo = process.env.CARGO || 'cargo'

function fail(message) {
  console.error(`hoot-core: ${message}`)
  process.exit(1)
}

// The suffixes napi-rs's loader (lib/binding.js) tries for a local .node file.
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const glibc = process.report && process.report.getReport().header.glibcVersionRuntime
    if (arch === 'arm') return glibc ? 'linux-arm-gnueabihf' : 'linux-arm-musleabihf'
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform === 'darwin' || platform === 'freebsd') return `${platform}-${arch}`
  fail(`no build recipe for ${platform}-${arch}; hoot-core supports Linux, macOS, Windows and FreeBSD`)
}

function libraryName() {
  if (process.platform === 'win32') return 'hoot_core.dll'
  if (process.platform === 'darwin') return 'libhoot_core.dylib'
  return 'libhoot_core.so'
}

const probe = spawnSync(cargo, ['--version'], { encoding: 'utf8' })
if (probe.error || probe.status !== 0) {
  fail(
    'building the native addon needs Rust: install it from https://rustup.rs (cargo on PATH), then run npm install again',
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
const dest = join(root, 'lib', `hoot-core.${platformSuffix()}.node`)
copyFileSync(built, dest)
console.log(`hoot-core: built ${dest}`)

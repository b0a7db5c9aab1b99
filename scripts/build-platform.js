#!/usr/bin/env node
// Builds the release binary of one napi target and puts it in its platform package folder,
// npm/<platform>/hoot-core.<platform>.node, ready for `npm pack` or `napi artifacts`.
//
//   node scripts/build-platform.js [--target <rust triple>]     (default: this machine's)
//
// Linux targets build with cargo-zigbuild, which links with zig against an old glibc (2.17: Amazon
// Linux 2, Debian 10, Lambda, Vercel) or against musl with a dynamic C runtime, the only kind Node can
// load an addon into. When zig or cargo-zigbuild is not on PATH the script installs pinned versions
// under target/tools (ziglang from PyPI, cargo-zigbuild from crates.io). macOS and Windows targets
// build with plain cargo on their own runners. The release workflow runs this same command.
'use strict'

const { spawnSync } = require('child_process')
const { copyFileSync, existsSync, mkdirSync, statSync } = require('fs')
const { delimiter, join, resolve } = require('path')

const { PREBUILT, platformOfTriple } = require('../lib/platform.js')
const { napi } = require('../package.json')

const root = resolve(__dirname, '..')
const GLIBC_FLOOR = '2.17'
const ZIGLANG = '0.17.1'
const CARGO_ZIGBUILD = '0.22.0'
const tools = join(root, 'target', 'tools')
// Its own target dir: zig's linker and C compiler would otherwise invalidate, and be invalidated by,
// the from-source build that `npm install` keeps in target/<host triple>.
const targetDir = resolve(root, process.env.CARGO_TARGET_DIR || join('target', 'platform'))

function fail(message) {
  console.error(`build-platform: ${message}`)
  process.exit(1)
}

function run(command, args, options = {}) {
  console.error(`$ ${command} ${args.join(' ')}`)
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options })
  if (result.error || result.status !== 0) {
    fail(`${command} ${args[0]} failed (${result.error ? result.error.message : `exit ${result.status}`})`)
  }
}

function works(command, args, env) {
  const result = spawnSync(command, args, { encoding: 'utf8', env })
  return !result.error && result.status === 0
}

function hostTriple() {
  const rustc = spawnSync(process.env.RUSTC || 'rustc', ['-vV'], { encoding: 'utf8' })
  const host = !rustc.error && /^host: (\S+)$/m.exec(rustc.stdout || '')
  if (!host) fail('cannot ask rustc for the host target: is Rust installed (https://rustup.rs)?')
  return host[1]
}

function targetArg() {
  const i = process.argv.indexOf('--target')
  if (i === -1) return hostTriple()
  const target = process.argv[i + 1]
  if (!target) fail('--target needs a Rust target triple')
  return target
}

/** An environment in which `cargo zigbuild` works, installing zig and cargo-zigbuild when missing. */
function zigEnvironment() {
  const env = { ...process.env, PATH: [join(tools, 'bin'), process.env.PATH].join(delimiter) }
  const zigFromPyPI = join(tools, 'ziglang', 'ziglang', 'zig')
  if (existsSync(zigFromPyPI)) env.CARGO_ZIGBUILD_ZIG_PATH = zigFromPyPI
  if (!works('zig', ['version'], env) && !env.CARGO_ZIGBUILD_ZIG_PATH) {
    const python = process.env.PYTHON || 'python3'
    run(python, ['-m', 'pip', 'install', '--quiet', '--target', join(tools, 'ziglang'), `ziglang==${ZIGLANG}`])
    env.CARGO_ZIGBUILD_ZIG_PATH = zigFromPyPI
  }
  if (!works('cargo-zigbuild', ['--version'], env)) {
    run('cargo', ['install', '--quiet', '--locked', '--root', tools, 'cargo-zigbuild', '--version', CARGO_ZIGBUILD])
  }
  return env
}

/** `env` with `flags` added to the target's own RUSTFLAGS (which leave build scripts and proc macros alone). */
function withRustflags(env, target, flags) {
  const key = `CARGO_TARGET_${target.toUpperCase().replace(/-/g, '_')}_RUSTFLAGS`
  return { ...env, [key]: [env[key], flags].filter(Boolean).join(' ') }
}

const target = targetArg()
if (!napi.targets.includes(target)) {
  fail(`${target} is not one of package.json's napi.targets (${napi.targets.join(', ')})`)
}
const platform = platformOfTriple(target)
if (!PREBUILT.includes(platform)) fail(`internal: ${target} maps to ${platform}, which is not prebuilt`)

const linux = target.includes('-linux-')
const cargoArgs = ['build', '--release', '--locked', '--lib']
let env = process.env
let cargoTarget = target
if (linux) {
  env = zigEnvironment()
  cargoArgs[0] = 'zigbuild'
  if (target.endsWith('-gnu')) cargoTarget = `${target}.${GLIBC_FLOOR}`
  if (target.endsWith('-musl')) {
    // A cdylib for Node must link the C runtime dynamically; Rust's musl targets default to static.
    env = withRustflags(env, target, '-C target-feature=-crt-static')
  }
}
if (target.endsWith('-windows-msvc')) {
  // The C runtime linked in, as napi-rs's template does, so the addon needs no Visual C++ redistributable.
  env = withRustflags(env, target, '-C target-feature=+crt-static')
}
run('cargo', [...cargoArgs, '--target', cargoTarget], { env: { ...env, CARGO_TARGET_DIR: targetDir } })

const library = target.includes('windows')
  ? 'hoot_core.dll'
  : target.includes('apple')
    ? 'libhoot_core.dylib'
    : 'libhoot_core.so'
const built = join(targetDir, target, 'release', library)
if (!existsSync(built)) fail(`cargo finished but ${built} is missing`)
const dir = join(root, 'npm', platform)
mkdirSync(dir, { recursive: true })
const dest = join(dir, `hoot-core.${platform}.node`)
copyFileSync(built, dest)
// Cargo's release profile already strips symbols (strip = "symbols"); the host's strip, which knows
// only the host's own format, also removes what the linker left for a native build.
if (linux && target === hostTriple() && works('strip', ['--version'])) run('strip', ['--strip-unneeded', dest])
console.log(`${dest} (${statSync(dest).size} bytes)`)

// Which prebuilt binary this process needs, and why none loaded. The platform names are napi-rs's
// (linux-x64-gnu, darwin-arm64, win32-x64-msvc, ...), found the way the generated loader
// (lib/binding.js) finds them, so the package named here is the one the loader tried to require.
// Used by the entry when the loader fails, and by scripts/install.js to decide whether to build.
'use strict'

const { readFileSync } = require('fs')
const { name, version, napi } = require('../package.json')

const ARCH = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' }
const OS = { linux: 'linux', apple: 'darwin', darwin: 'darwin', windows: 'win32', freebsd: 'freebsd' }

/** The napi platform name of a Rust target triple: `aarch64-unknown-linux-musl` → `linux-arm64-musl`. */
function platformOfTriple(triple) {
  const parts = triple.split('-')
  const arch = ARCH[parts[0]] || parts[0]
  const os = parts.map((p) => OS[p]).find(Boolean)
  if (!os) throw new Error(`no napi platform for the target ${triple}`)
  const abi = os === 'darwin' || os === 'freebsd' ? null : parts[parts.length - 1]
  return [os, arch, abi].filter(Boolean).join('-')
}

function isMusl() {
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    const report = process.report && process.report.getReport()
    return !(report && report.header && report.header.glibcVersionRuntime)
  }
}

/** This process's napi platform name, as the loader computes it for the platforms hoot-core ships. */
function hostPlatform() {
  const { platform, arch } = process
  if (platform === 'linux') {
    if (arch === 'arm') return isMusl() ? 'linux-arm-musleabihf' : 'linux-arm-gnueabihf'
    return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  }
  if (platform === 'win32') {
    const vars = (process.config && process.config.variables) || {}
    const gnu = vars.shlib_suffix === 'dll.a' || vars.node_target_type === 'shared_library'
    return `win32-${arch}-${gnu ? 'gnu' : 'msvc'}`
  }
  return `${platform}-${arch}`
}

/** The platforms a prebuilt binary is published for (package.json's napi.targets). */
const PREBUILT = napi.targets.map(platformOfTriple)

/** The npm package that carries a platform's prebuilt binary. */
function bindingPackage(platform) {
  return `${name}-${platform}`
}

/**
 * The error for a loader that found no binding: what was looked for, and the command that fixes it.
 * `cause` is the loader's own error, kept for its details. The code is Node's own for the case
 * (MODULE_NOT_FOUND when nothing was there, ERR_DLOPEN_FAILED when a binary was there but did not
 * load), so code that already handles a missing optional module handles this one too.
 */
function missingBindingError(cause, platform = hostPlatform(), resolve = require.resolve) {
  const pkg = bindingPackage(platform)
  let error
  if (!PREBUILT.includes(platform)) {
    error = new Error(
      `hoot-core has no prebuilt binary for ${platform}; build it from source: install Rust (https://rustup.rs), then run \`npm rebuild ${name} --build-from-source\``,
    )
    error.code = 'MODULE_NOT_FOUND'
  } else if (installed(pkg, resolve)) {
    error = new Error(
      `hoot-core's prebuilt binary ${pkg} is installed but did not load (${loadFailure(pkg)}); reinstall it with \`npm install ${pkg}@${version}\`, or build from source with Rust: \`npm rebuild ${name} --build-from-source\``,
    )
    error.code = 'ERR_DLOPEN_FAILED'
  } else {
    error = new Error(
      `hoot-core's prebuilt binary for ${platform} is the optional dependency ${pkg}, which is not installed (an old lockfile, --omit=optional or --no-optional skip it); fix: \`npm install ${pkg}@${version}\`, or with Rust installed: \`npm rebuild ${name} --build-from-source\``,
    )
    error.code = 'MODULE_NOT_FOUND'
  }
  error.cause = cause
  return error
}

function installed(pkg, resolve) {
  try {
    resolve(`${pkg}/package.json`)
    return true
  } catch {
    return false
  }
}

/** Why an installed binding package does not load, in one line (the loader's error chains every attempt). */
function loadFailure(pkg) {
  try {
    require(pkg)
    return 'it loads now: a retry may succeed'
  } catch (e) {
    return String((e && e.message) || e).split('\n')[0]
  }
}

module.exports = { PREBUILT, bindingPackage, hostPlatform, missingBindingError, platformOfTriple }

// `npm run bench:install`: how long `npm install` takes into an empty project, round by round:
//   - hoot-core from its two tarballs (the main package and the linux-x64-gnu platform package),
//     on a PATH without Rust;
//   - better-sqlite3 from its prebuilt binary (prebuild-install), served from 127.0.0.1 because
//     this machine cannot reach GitHub, its download host; the .node served is the one npm built
//     for the root's devDependency;
//   - hoot-core from source: the main tarball alone, with cargo and an empty target dir (a user's
//     first install), in the first INSTALL_SOURCE_ROUNDS rounds (default 1: each is minutes).
// Every install reads packages from npm's local cache (offline), so no contender pays the network.
// Writes bench/INSTALL.md. INSTALL_ROUNDS (default 5) sets the rounds.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { fmt, median, table, tempDir } from './lib.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const rounds = Number(process.env.INSTALL_ROUNDS || 5)
const sourceRounds = Number(process.env.INSTALL_SOURCE_ROUNDS || 1)
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const platform = 'linux-x64-gnu'
const bsqVersion = JSON.parse(readFileSync(join(root, 'node_modules', 'better-sqlite3', 'package.json'))).version

function must(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', cwd: root, ...options })
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`)
  return result.stdout
}

/** Runs a command without blocking this process (the prebuilt server answers meanwhile); resolves to seconds. */
function timed(command, args, options) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...options })
    let stderr = ''
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('exit', (status) => {
      if (status !== 0) reject(new Error(`${command} ${args.join(' ')} exited ${status}:\n${stderr}`))
      else resolve(Number(process.hrtime.bigint() - started) / 1e9)
    })
  })
}

function emptyProject(label) {
  const dir = tempDir(`install-${label}`)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  return dir
}

const withoutRust = {
  ...process.env,
  PATH: process.env.PATH.split(delimiter)
    .filter((dir) => !existsSync(join(dir, 'cargo')))
    .join(delimiter),
}
delete withoutRust.CARGO_TARGET_DIR

// The tarballs under test, built and packed once (not timed).
must(process.execPath, [join(root, 'scripts', 'build-platform.js'), '--target', 'x86_64-unknown-linux-gnu'], {
  stdio: 'inherit',
})
const packs = tempDir('install-packs')
const pack = (cwd) =>
  join(packs, JSON.parse(must(npm, ['pack', '--json', '--pack-destination', packs], { cwd }))[0].filename)
const mainTarball = pack(root)
const platformTarball = pack(join(root, 'npm', platform))
const binarySize = readFileSync(join(root, 'npm', platform, `hoot-core.${platform}.node`)).length

// better-sqlite3's prebuilt tarball, in prebuild-install's layout, served locally.
const bsqName = `better-sqlite3-v${bsqVersion}-node-v${process.versions.modules}-linux-x64.tar.gz`
const bsqTarball = join(packs, bsqName)
must('tar', [
  'czf',
  bsqTarball,
  '-C',
  join(root, 'node_modules', 'better-sqlite3'),
  'build/Release/better_sqlite3.node',
])
let served = 0
const server = createServer((req, res) => {
  if (req.url !== `/v${bsqVersion}/${bsqName}`) return res.writeHead(404).end()
  served++
  res.writeHead(200, { 'content-type': 'application/gzip' }).end(readFileSync(bsqTarball))
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const bsqEnv = {
  ...process.env,
  npm_config_better_sqlite3_binary_host: `http://127.0.0.1:${server.address().port}`,
}
// Warm npm's cache with better-sqlite3's dependencies once, so its rounds are offline like the others.
must(npm, ['install', '--no-audit', '--no-fund', `better-sqlite3@${bsqVersion}`], {
  cwd: emptyProject('warm'),
  env: bsqEnv,
})
const prebuildCache = join(process.env.npm_config_cache || join(homedir(), '.npm'), '_prebuilds')
const dropCachedPrebuild = () => {
  for (const f of existsSync(prebuildCache) ? readdirSync(prebuildCache) : []) {
    if (f.endsWith(bsqName)) rmSync(join(prebuildCache, f))
  }
}

const contenders = {
  'hoot-core, prebuilt (2 tarballs, no Rust)': (dir) =>
    timed(npm, ['install', '--no-audit', '--no-fund', '--offline', mainTarball, platformTarball], {
      cwd: dir,
      env: withoutRust,
    }),
  'better-sqlite3, prebuilt (prebuild-install)': (dir) => {
    dropCachedPrebuild()
    return timed(npm, ['install', '--no-audit', '--no-fund', '--offline', `better-sqlite3@${bsqVersion}`], {
      cwd: dir,
      env: bsqEnv,
    })
  },
  'hoot-core, from source (cargo, empty target dir)': (dir, round) =>
    round < sourceRounds
      ? timed(npm, ['install', '--no-audit', '--no-fund', '--offline', mainTarball], {
          cwd: dir,
          env: { ...process.env, CARGO_TARGET_DIR: tempDir('install-target') },
        })
      : null,
}

const seconds = Object.fromEntries(Object.keys(contenders).map((name) => [name, []]))
for (let round = 0; round < rounds; round++) {
  const names = Object.keys(contenders)
  const order = names.slice(round % names.length).concat(names.slice(0, round % names.length))
  for (const name of order) {
    const took = await contenders[name](emptyProject('round'), round)
    if (took !== null) seconds[name].push(took)
    if (took !== null) console.error(`round ${round + 1}: ${name}: ${took.toFixed(1)} s`)
  }
}
server.close()
const bsqRuns = seconds['better-sqlite3, prebuilt (prebuild-install)'].length
// One download per round after the warm-up: otherwise prebuild-install fell back to compiling.
if (served !== bsqRuns + 1) throw new Error(`the prebuilt server answered ${served} times for ${bsqRuns} rounds`)

const glibc = must('objdump', ['-T', join(root, 'npm', platform, `hoot-core.${platform}.node`)])
  .match(/GLIBC_[0-9.]+/g)
  .map((v) => v.slice(6))
  .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
  .pop()
const rows = Object.entries(seconds)
  .filter(([, list]) => list.length > 0)
  .map(([name, list]) => ({
    install: name,
    runs: String(list.length),
    'median s': median(list).toFixed(median(list) < 10 ? 2 : 1),
    'each run, s': list.map((s) => s.toFixed(s < 10 ? 2 : 1)).join(', '),
  }))
const report = `# Install times

Written by \`npm run bench:install\` (bench/install.mjs) on ${new Date().toISOString().slice(0, 10)}: \`npm install\`
into an empty project, every package from npm's local cache, contenders interleaved round by round.
better-sqlite3's prebuilt binary is served from 127.0.0.1 (GitHub, its host, is not reachable from
this machine), so neither prebuilt figure includes a download over the internet.

${table(rows)}

The linux-x64-gnu binary: ${fmt.mb(binarySize)} MiB (${binarySize} bytes), highest glibc symbol version GLIBC_${glibc}.
`
writeFileSync(join(root, 'bench', 'INSTALL.md'), report)
console.log(report)

// What the package claims against what CI and the release do: engines.node names the Node lines
// that run the tests (scripts/node-versions.mjs reads its lines from there) and that the release
// smoke-tests, every test file is placed on every Node or on the machine's alone, and the release
// workflow publishes with npm's trusted publishing and provenance, with no npm token anywhere.
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

import { EVERY_NODE, MACHINE_NODE_ONLY, enginesRange, supportedLines } from '../scripts/node-versions.mjs'
import { root } from './helpers.mjs'

const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const workflow = readFileSync(join(root, '.github', 'workflows', 'release.yml'), 'utf8')

/** The text of one job of the release workflow, from its key to the next job's. */
function job(name) {
  const start = workflow.indexOf(`\n  ${name}:\n`)
  assert.ok(start >= 0, `release.yml has no job ${name}`)
  const next = workflow.slice(start + 1).search(/\n {2}[\w-]+:\n/)
  return next < 0 ? workflow.slice(start) : workflow.slice(start, start + 1 + next)
}

test('engines.node names Node 20, 22, 24 and 26, by their floors, and the Node running the suite is one of them', () => {
  assert.equal(enginesRange(), manifest.engines.node)
  const lines = supportedLines(manifest.engines.node)
  assert.deepEqual(
    lines.map((l) => l.major),
    [20, 22, 24, 26],
  )
  const [major, minor, patch] = process.versions.node.split('.').map(Number)
  const line = lines.find((l) => l.major === major)
  assert.ok(line, `Node ${process.version} runs npm test but engines.node (${manifest.engines.node}) leaves it out`)
  const [, fMinor, fPatch] = line.floor.split('.').map(Number)
  assert.ok(minor > fMinor || (minor === fMinor && patch >= fPatch), `${process.version} is below ${line.floor}`)
  assert.throws(() => supportedLines('>= 20'), /not a caret range/)
})

test('each platform package declares the main package engines (napi create-npm-dirs copies them)', () => {
  for (const platform of readdirSync(join(root, 'npm'))) {
    const sub = JSON.parse(readFileSync(join(root, 'npm', platform, 'package.json'), 'utf8'))
    assert.deepEqual(sub.engines, manifest.engines, platform)
  }
})

test("every test file runs on every supported Node or says why it runs on the machine's alone", () => {
  const files = readdirSync(join(root, '__test__')).filter((f) => /\.test\.[cm]?js$/.test(f))
  const placed = [...EVERY_NODE, ...Object.keys(MACHINE_NODE_ONLY)]
  assert.equal(new Set(placed).size, placed.length, 'a file in both lists, or twice in one')
  assert.deepEqual([...placed].sort(), [...files].sort())
  for (const [file, reason] of Object.entries(MACHINE_NODE_ONLY)) assert.ok(reason.length > 10, file)
})

test('the release smoke-tests every binary on each Node major that engines.node names', () => {
  const majors = supportedLines(manifest.engines.node).map((l) => String(l.major))
  for (const name of ['smoke-native', 'smoke-musl']) {
    const lists = [...job(name).matchAll(/^ {8}node: \[(.*)\]$/gm)].map((m) => m[1])
    assert.equal(lists.length, 1, name)
    assert.deepEqual(
      lists[0].split(',').map((v) => v.trim().replace(/'/g, '')),
      majors,
      name,
    )
  }
})

test('the release publishes through trusted publishing (OIDC) with provenance, and names no npm token', () => {
  // Not in a comment either: the only route to the registry is the workflow's OIDC identity.
  for (const token of ['NPM_TOKEN', 'NODE_AUTH_TOKEN', '_authToken', 'secrets.']) {
    assert.ok(!workflow.includes(token), `release.yml names ${token}`)
  }
  assert.match(workflow, /^permissions:\n {2}contents: read\n\n/m, 'the default token reads, and nothing more')
  const publish = job('publish')
  assert.match(publish, /^ {6}id-token: write\b/m)
  assert.match(publish, /^ {4}environment: npm$/m)
  assert.match(publish, /^ {4}if: \$\{\{ startsWith\(github\.ref, 'refs\/tags\/v'\) \}\}$/m)
  // setup-node's registry-url writes an _authToken line; trusted publishing needs npm >= 11.5.1.
  assert.doesNotMatch(publish, /^ +registry-url:/m)
  assert.match(publish, /npm install -g npm@\^11\.5\.1\n/)
  // napi pre-publish only sets versions; each package is published by a line that asks for provenance.
  assert.match(publish, /npx napi pre-publish -t npm --no-gh-release --skip-optional-publish\n/)
  const publishes = publish.split('\n').filter((l) => /\bnpm publish\b/.test(l) && !l.trim().startsWith('#'))
  assert.equal(publishes.length, 2, 'the platform packages, then hoot-core')
  for (const line of publishes) assert.match(line, /npm publish --access public --provenance --tag "\$tag"/)
  // A re-run after a partial publish skips what is already on the registry.
  assert.equal(publish.match(/npm view "\$name@\$version" version/g)?.length, 1)
  assert.equal(publish.match(/npm view "hoot-core@\$version" version/g)?.length, 1)
  assert.ok(publish.indexOf('for dir in npm/*/') < publish.indexOf('- name: Publish hoot-core'))
})

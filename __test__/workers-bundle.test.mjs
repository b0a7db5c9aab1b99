// Hoot's Cloudflare Workers build after docs/using-in-hoot-server.md. wrangler bundles everything
// server/server-worker.js reaches with esbuild, so a shared module that imports `hoot-core` pulls the
// native addon into the Workers bundle. The fixture (fixtures/hoot-workers/) has the file names and
// import edges of Hoot's server/ with the guide's code blocks spliced in; this file bundles it with
// wrangler's esbuild settings, and bundles the same tree with the guide's earlier layout (the
// hoot-core JWTManager in the shared lib/jwt.js) to show the check sees the break.
import assert from 'node:assert/strict'
import { cpSync, mkdirSync, readFileSync, readdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { describe, test } from 'node:test'

import * as esbuild from 'esbuild'

import { bundleWorker } from '../scripts/bundle-worker.mjs'
import { guideSnippets, root, tempDir } from './helpers.mjs'

const GUIDE = 'docs/using-in-hoot-server.md'
const FIXTURE = join(root, '__test__', 'fixtures', 'hoot-workers')
const MARKER = /^[ \t]*\/\/ guide: ([\w-]+)\n/gm
// What npm installs beside hoot-core on linux-x64: the platform package whose main is the addon.
// esbuild follows every platform branch of the napi loader, and an unresolvable one inside its
// try/catch is skipped silently, so without a .node file to find, a Workers bundle of `hoot-core`
// "builds" and fails only when workerd loads it. The metafile checks below catch that case too.
const PLATFORM_PACKAGE = 'linux-x64-gnu'

/** Each fixture file, relative to the fixture, with every `// guide: ID` line replaced by that code block. */
function splicedFixture() {
  const blocks = guideSnippets(GUIDE)
  const files = {}
  for (const entry of readdirSync(join(FIXTURE, 'server'), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const path = relative(FIXTURE, join(entry.parentPath, entry.name))
    files[path] = readFileSync(join(FIXTURE, path), 'utf8').replace(MARKER, (_, id) => {
      assert.ok(blocks.has(id), `${path}: the guide has no block ${id}`)
      return blocks.get(id)
    })
  }
  return files
}

/**
 * The fixture as a Hoot checkout with hoot-core installed: `hoot-core` links to this repository
 * (resolved through its package.json `exports`), the platform package holds an addon file, and the
 * MCP SDK and jose link to this repository's copies. `override` replaces files.
 */
function hootTree(label, override = {}) {
  const dir = tempDir(label)
  const modules = join(dir, 'node_modules')
  mkdirSync(join(modules, '@modelcontextprotocol'), { recursive: true })
  symlinkSync(root, join(modules, 'hoot-core'))
  symlinkSync(join(root, 'node_modules', 'jose'), join(modules, 'jose'))
  symlinkSync(join(root, 'node_modules', '@modelcontextprotocol', 'sdk'), join(modules, '@modelcontextprotocol', 'sdk'))
  const platform = join(modules, `hoot-core-${PLATFORM_PACKAGE}`)
  mkdirSync(platform)
  cpSync(join(root, 'npm', PLATFORM_PACKAGE, 'package.json'), join(platform, 'package.json'))
  const { main } = JSON.parse(readFileSync(join(platform, 'package.json'), 'utf8'))
  // esbuild stops at the file's extension; its bytes are never read.
  writeFileSync(join(platform, main), '')
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'hoot', private: true, type: 'module' }))
  for (const [path, text] of Object.entries({ ...splicedFixture(), ...override })) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
  return dir
}

/** The files a bundle took in, as real paths. */
function inputsOf(result, dir) {
  return Object.keys(result.metafile.inputs).map((path) => realpathSync(resolve(dir, path)))
}

const repoFile = (path) => realpathSync(join(root, path))

describe("Hoot's Workers build after the guide", () => {
  test(
    'server-worker.js bundles: handlers.js and the Durable Object take hoot-core/provider, never the addon',
    { timeout: 60_000 },
    async () => {
      const dir = hootTree('workers-guide')
      const result = await bundleWorker(dir)
      assert.deepEqual(result.errors, [])
      const inputs = inputsOf(result, dir)
      assert.ok(inputs.includes(repoFile('lib/provider.js')), 'the guide’s provider is in the Worker')
      for (const path of ['lib/index.js', 'lib/native.js', 'lib/binding.js', 'lib/hoot.js']) {
        assert.ok(!inputs.includes(repoFile(path)), `${path} is not in the Worker`)
      }
      const server = (path) => realpathSync(join(dir, 'server', path))
      assert.ok(inputs.includes(server('lib/jwt.js')), 'the Worker keeps the jose JWTManager')
      assert.ok(!inputs.includes(server('lib/jwt-node.js')), 'jwt-node.js stays out of the Worker')
      assert.ok(!inputs.includes(server('adapters/connection-pool-node.js')))
      assert.ok(!inputs.some((path) => path.endsWith('.node')))
    },
  )

  test(
    "control: the guide's earlier layout, hoot-core's JWTManager in the shared lib/jwt.js, fails as wrangler did",
    { timeout: 60_000 },
    async () => {
      const blocks = guideSnippets(GUIDE)
      const dir = hootTree('workers-control', { 'server/lib/jwt.js': blocks.get('jwt-manager') })
      // esbuild's failure carries no code; its messages are what wrangler prints.
      await assert.rejects(bundleWorker(dir), (error) => {
        const texts = error.errors.map((e) => e.text)
        assert.ok(
          texts.some((text) =>
            /^No loader is configured for "\.node" files: .*hoot-core\.linux-x64-gnu\.node$/.test(text),
          ),
          texts.join('\n'),
        )
        return true
      })
    },
  )

  test('server-node.js bundles for Node with jwt-node.js, hoot-core and its addon', { timeout: 60_000 }, async () => {
    const dir = hootTree('workers-node')
    const result = await esbuild.build({
      entryPoints: [join(dir, 'server', 'server-node.js')],
      absWorkingDir: dir,
      bundle: true,
      write: false,
      outdir: join(dir, 'dist'),
      platform: 'node',
      format: 'esm',
      target: 'node18',
      metafile: true,
      logLevel: 'silent',
      nodePaths: [join(dir, 'node_modules')],
      // The addon is copied beside the bundle and still required at run time.
      loader: { '.node': 'copy' },
      // Hoot's own dependencies, which this repository does not install.
      external: ['express', 'cors'],
    })
    assert.deepEqual(result.errors, [])
    const inputs = inputsOf(result, dir)
    assert.ok(inputs.includes(realpathSync(join(dir, 'server', 'lib', 'jwt-node.js'))))
    assert.ok(inputs.includes(repoFile('lib/binding.js')), 'the Node build loads the addon')
  })
})

// Hoot's Workers entry (server/server-worker.js under `dir`) bundled as wrangler bundles a Worker
// (workers-sdk's deployment-bundle/bundle.ts): esbuild's default platform (browser), ESM, es2022, the
// conditions workerd, worker and browser, the jsx loader for .js/.mjs/.cjs, errors returned rather
// than logged. wrangler's hybrid nodejs_compat plugin (Hoot's wrangler.jsonc sets nodejs_compat)
// resolves Node's built-in modules to workerd's own or to unenv's polyfills, and `cloudflare:` modules
// are workerd's: none of them is bundled. `nodePaths` lets a linked hoot-core find its platform
// package as it would when installed. Used by __test__/workers-bundle.test.mjs and scripts/hoot-e2e.mjs.
import { builtinModules } from 'node:module'
import { join } from 'node:path'

const NODE_BUILTIN = new RegExp(`^(node:)?(${builtinModules.join('|')})$`)

export async function bundleWorker(dir) {
  const esbuild = await import('esbuild')
  return esbuild.build({
    entryPoints: [join(dir, 'server', 'server-worker.js')],
    absWorkingDir: dir,
    bundle: true,
    write: false,
    outdir: join(dir, 'dist-worker'),
    format: 'esm',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    loader: { '.js': 'jsx', '.mjs': 'jsx', '.cjs': 'jsx' },
    metafile: true,
    logLevel: 'silent',
    nodePaths: [join(dir, 'node_modules')],
    plugins: [
      {
        name: 'workerd-builtins-external',
        setup(build) {
          build.onResolve({ filter: NODE_BUILTIN }, (args) => ({ path: args.path, external: true }))
          build.onResolve({ filter: /^cloudflare:/ }, (args) => ({ path: args.path, external: true }))
        },
      },
    ],
  })
}

// The types against the runtime and against the MCP SDK's own. For each entry of the package's
// `exports` map, the value exports its d.ts declares (read with the TypeScript compiler API) are
// exactly what the entry exports at run time, from require() and from import. Then `tsc --strict`
// (skipLibCheck off, so every lib/*.d.ts is checked too) on __test__/types/provider.ts, which
// assigns providers to the OAuthClientProvider of SDK 1.20, 1.32 and the v2 client; and on
// __test__/types/database.ts, which uses a Database as the example server does.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { test } from 'node:test'
import { pathToFileURL } from 'node:url'

import ts from 'typescript'

import { root } from './helpers.mjs'

const ENTRIES = ['.', './sqlite', './hoot', './metrics', './provider']
// The browser half: an ES module (import only) whose d.ts compiles with the DOM's types, not Node's.
const BROWSER_ENTRIES = ['./client']
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
// `hoot-core` names the package itself only from the package root (__test__/ has its own package.json).
const requireFromRoot = createRequire(join(root, 'package.json'))

/** The names an entry's declaration file exports as values (functions, classes, constants), sorted. */
function declaredValues(checker, file) {
  const names = []
  for (const symbol of checker.getExportsOfModule(checker.getSymbolAtLocation(file))) {
    // `export type { X }` re-exports X's type only, whatever X is where it is declared.
    const typeOnly = (symbol.declarations ?? []).some(
      (d) => ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly),
    )
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
    if (!typeOnly && target.flags & ts.SymbolFlags.Value) names.push(symbol.name)
  }
  return names.sort()
}

/** What the two lists disagree on, in words, or '' when they agree. */
function difference(entry, declared, exported) {
  const missing = declared.filter((n) => !exported.includes(n))
  const undeclared = exported.filter((n) => !declared.includes(n))
  return [
    missing.length ? `${entry}: declared in its d.ts but not exported at run time: ${missing.join(', ')}` : '',
    undeclared.length ? `${entry}: exported at run time but not declared in its d.ts: ${undeclared.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('; ')
}

test("each entry's d.ts declares exactly the values it exports at run time, from require() and import", async () => {
  const files = Object.fromEntries(ENTRIES.map((entry) => [entry, join(root, pkg.exports[entry].types)]))
  const program = ts.createProgram(Object.values(files), {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: ['node'],
    typeRoots: [join(root, 'node_modules', '@types')],
  })
  const diagnostics = ts.getPreEmitDiagnostics(program)
  assert.deepEqual(
    diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    [],
    'the declaration files compile',
  )
  const checker = program.getTypeChecker()
  const problems = []
  for (const entry of ENTRIES) {
    const specifier = entry === '.' ? 'hoot-core' : `hoot-core/${entry.slice(2)}`
    const declared = declaredValues(checker, program.getSourceFile(files[entry]))
    const required = Object.keys(requireFromRoot(specifier)).sort()
    const imported = Object.keys(await import(pathToFileURL(requireFromRoot.resolve(specifier)).href))
      .filter((n) => n !== 'default')
      .sort()
    problems.push(difference(`${specifier} (require)`, declared, required))
    problems.push(difference(`${specifier} (import)`, declared, imported))
  }
  assert.deepEqual(problems.filter(Boolean), [])
})

test("hoot-core/client's d.ts declares exactly what it exports, and compiles with the DOM's types alone", async () => {
  for (const entry of BROWSER_ENTRIES) {
    const file = join(root, pkg.exports[entry].types)
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      module: ts.ModuleKind.ES2022,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.dom.d.ts', 'lib.es2022.d.ts'],
      types: [],
    })
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
    assert.deepEqual(diagnostics, [], `${entry}: the declaration file compiles`)
    const declared = declaredValues(program.getTypeChecker(), program.getSourceFile(file))
    const specifier = `hoot-core/${entry.slice(2)}`
    const imported = Object.keys(await import(pathToFileURL(join(root, pkg.exports[entry].default)).href)).sort()
    assert.equal(difference(`${specifier} (import)`, declared, imported), '')
  }
})

test('the comparison names what differs, both ways', () => {
  assert.equal(
    difference('hoot-core', ['a', 'b'], ['b', 'c']),
    'hoot-core: declared in its d.ts but not exported at run time: a; ' +
      'hoot-core: exported at run time but not declared in its d.ts: c',
  )
  assert.equal(difference('hoot-core', ['a'], ['a']), '')
})

function tsc(project) {
  const bin = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  return spawnSync(process.execPath, [bin, '-p', join(root, '__test__', 'types', project)], { encoding: 'utf8' })
}

test("createOAuthProvider's result is an OAuthClientProvider of SDK 1.20, 1.32 and v2 under tsc --strict", () => {
  const result = tsc('tsconfig.json')
  assert.equal(result.status, 0, result.stdout + result.stderr)
})

test("a Database's methods take the example's arguments, and ready() has no inspection fields, under tsc --strict", () => {
  const result = tsc('tsconfig.database.json')
  assert.equal(result.status, 0, result.stdout + result.stderr)
})

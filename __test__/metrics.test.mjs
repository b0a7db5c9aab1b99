// hoot-core/metrics: the Prometheus text parses (a strict reader of the 0.0.4 format below) and
// counts exactly what the calls did; a real prom-client registry and a real OpenTelemetry meter
// report the same values; the PostgreSQL pools appear while their database is open.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { Registry } from 'prom-client'

import { issueToken, loadKeys, openDatabase, verifyToken } from '../lib/index.js'
import { contentType, metricsText, registerMetrics } from '../lib/metrics.js'
import { PG_SUITE_TIMEOUT, freshDatabase, postgresAvailable } from './postgres.mjs'

const dir = mkdtempSync(join(tmpdir(), 'hoot-metrics-'))
loadKeys({ keyDir: join(dir, 'keys') })

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/**
 * The Prometheus text format (0.0.4), read strictly: `# HELP` and `# TYPE` before a family's
 * samples, each sample `name{label="value",...} number`, with `\\`, `\"` and `\n` the only escapes.
 * Returns `Map(family -> { type, help, samples: [{ name, labels, value }] })`.
 */
function parsePrometheus(text) {
  assert.ok(text.endsWith('\n'), 'ends with a newline')
  const families = new Map()
  let current = null
  for (const line of text.slice(0, -1).split('\n')) {
    let m
    if (line === '') continue // the format ignores empty lines (prom-client writes one between families)
    if ((m = /^# HELP (\S+) (.*)$/.exec(line))) {
      assert.match(m[1], NAME)
      assert.ok(!families.has(m[1]), `${m[1]} is declared once`)
      current = { name: m[1], help: m[2], type: undefined, samples: [] }
      families.set(m[1], current)
    } else if ((m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      assert.equal(m[1], current?.name, 'TYPE follows its HELP')
      current.type = m[2]
    } else {
      assert.ok(!line.startsWith('#'), `an unknown comment: ${line}`)
      m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
      assert.ok(m, `a sample line: ${line}`)
      const [, name, labelText = '', valueText] = m
      const labels = {}
      const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y
      while (pair.lastIndex < labelText.length) {
        const p = pair.exec(labelText)
        assert.ok(p, `labels: ${labelText}`)
        assert.match(p[1], LABEL)
        labels[p[1]] = p[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c))
      }
      const value = valueText === '+Inf' ? Infinity : Number(valueText)
      assert.ok(!Number.isNaN(value), `a number: ${valueText}`)
      const base = current.type === 'histogram' ? name.replace(/_(bucket|sum|count)$/, '') : name
      assert.equal(base, current.name, `${name} belongs to the family declared before it`)
      current.samples.push({ name, labels, value })
    }
  }
  for (const family of families.values()) {
    assert.ok(family.type, `${family.name} has a TYPE`)
    if (family.type === 'counter') assert.ok(family.samples.every((s) => s.value >= 0))
    if (family.type === 'histogram') checkHistogram(family)
  }
  return families
}

/** Buckets cumulative, ending in +Inf, whose count is the series' `_count`. */
function checkHistogram(family) {
  const series = new Map()
  for (const s of family.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(rest)
    if (!series.has(key)) series.set(key, { buckets: [], count: undefined, sum: undefined })
    const entry = series.get(key)
    if (s.name.endsWith('_bucket')) entry.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value])
    else if (s.name.endsWith('_count')) entry.count = s.value
    else entry.sum = s.value
  }
  for (const [key, { buckets, count, sum }] of series) {
    assert.ok(buckets.length > 1 && buckets.at(-1)[0] === Infinity, `${family.name}${key} ends in +Inf`)
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(buckets[i][0] > buckets[i - 1][0] && buckets[i][1] >= buckets[i - 1][1], 'cumulative')
    }
    assert.equal(buckets.at(-1)[1], count, `${family.name}${key}: +Inf equals _count`)
    assert.ok(sum >= 0)
  }
}

function value(families, family, name, labels) {
  const found = families
    .get(family)
    .samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return found?.value ?? 0
}

test('the text parses, and counts exactly what the calls did', async () => {
  assert.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8')
  const before = parsePrometheus(metricsText())
  const token = issueToken(randomUUID())
  for (let i = 0; i < 5; i++) verifyToken(token)
  verifyToken('x')
  const db = openDatabase(join(dir, 'counted.db'))
  const store = db.store(randomUUID())
  await store.saveTokens('s', { access_token: 'a' })
  const after = parsePrometheus(metricsText())
  const delta = (family, name, labels) => value(after, family, name, labels) - value(before, family, name, labels)
  // The first verification of a token goes to the core, the second too (it enters the cache), the rest hit.
  const verifications = 'hoot_token_verifications_total'
  assert.equal(delta(verifications, verifications, { cache: 'miss', outcome: 'valid' }), 2)
  assert.equal(delta(verifications, verifications, { cache: 'hit', outcome: 'valid' }), 3)
  assert.equal(delta(verifications, verifications, { cache: 'miss', outcome: 'ERR_JWS_INVALID' }), 1)
  assert.equal(delta('hoot_token_verify_seconds', 'hoot_token_verify_seconds_count', {}), 3)
  assert.equal(delta('hoot_token_issues_total', 'hoot_token_issues_total', { outcome: 'ok' }), 1)
  assert.equal(delta('hoot_token_issue_seconds', 'hoot_token_issue_seconds_count', {}), 1)
  const saves = { backend: 'sqlite', op: 'saveTokens' }
  assert.equal(delta('hoot_store_calls_total', 'hoot_store_calls_total', { ...saves, outcome: 'ok' }), 1)
  assert.equal(delta('hoot_store_call_seconds', 'hoot_store_call_seconds_count', saves), 1)
  await assert.rejects(store.saveTokens('', {}), { code: 'ERR_INVALID_ARG_VALUE' })
  const failed = parsePrometheus(metricsText())
  assert.equal(value(failed, 'hoot_store_calls_total', 'hoot_store_calls_total', { ...saves, outcome: 'error' }), 1)
})

test('a prom-client registry reports the same families and values, until they are removed', async () => {
  const registry = new Registry()
  const remove = registerMetrics(registry)
  verifyToken('x')
  const fromRegistry = parsePrometheus(await registry.metrics())
  const direct = parsePrometheus(metricsText())
  assert.deepEqual([...fromRegistry.keys()].sort(), [...direct.keys()].sort())
  const refused = { cache: 'miss', outcome: 'ERR_JWS_INVALID' }
  const name = 'hoot_token_verifications_total'
  assert.equal(value(fromRegistry, name, name, refused), value(direct, name, name, refused))
  assert.doesNotThrow(() => registry.resetMetrics())
  remove()
  assert.equal(await registry.metrics(), '\n')
})

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

test('an OpenTelemetry meter observes the same values at each collection', async () => {
  const reader = new TestReader()
  const provider = new MeterProvider({ readers: [reader] })
  const remove = registerMetrics(provider.getMeter('hoot-core-test'))
  verifyToken('x')
  const { resourceMetrics, errors } = await reader.collect()
  assert.deepEqual(errors, [])
  const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)
  const observed = metrics.find((m) => m.descriptor.name === 'hoot_token_verifications_total')
  const point = observed.dataPoints.find((p) => p.attributes.outcome === 'ERR_JWS_INVALID')
  const direct = parsePrometheus(metricsText())
  const name = 'hoot_token_verifications_total'
  assert.equal(point.value, value(direct, name, name, { cache: 'miss', outcome: 'ERR_JWS_INVALID' }))
  const bucket = metrics.find((m) => m.descriptor.name === 'hoot_token_verify_seconds_bucket')
  assert.ok(bucket.dataPoints.some((p) => p.attributes.le === '+Inf' && p.value > 0))
  remove()
  await provider.shutdown()
})

test('registerMetrics refuses anything but a registry or a meter', () => {
  for (const target of [undefined, null, {}, 'registry']) {
    assert.throws(() => registerMetrics(target), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' })
  }
})

describe('on PostgreSQL', PG_SUITE_TIMEOUT, () => {
  if (!postgresAvailable('metrics')) return
  test('store calls are counted by backend and operation, and the pool appears while open', async () => {
    const url = await freshDatabase('metrics')
    const db = openDatabase(url, { poolSize: 4 })
    const store = db.store(randomUUID())
    await store.saveTokens('s', { access_token: 'a' })
    const before = parsePrometheus(metricsText())
    await store.tokens('s')
    await store.tokens('s')
    const after = parsePrometheus(metricsText())
    const reads = { backend: 'postgres', op: 'tokens', outcome: 'ok' }
    const name = 'hoot_store_calls_total'
    assert.equal(value(after, name, name, reads) - value(before, name, name, reads), 2)
    const database = new URL(url).pathname.slice(1)
    const pool = after.get('hoot_pool_connections').samples.filter((s) => s.labels.database.endsWith(`/${database}`))
    assert.deepEqual(
      pool.map((s) => s.labels.state),
      ['open', 'idle', 'max'],
    )
    // poolSize 4: two lanes, and the pool the rest.
    assert.equal(pool.find((s) => s.labels.state === 'max').value, 2)
    assert.ok(!JSON.stringify([...after.values()]).includes('postgres@'), 'no user name in a label')
    await db.close()
    const closed = parsePrometheus(metricsText())
    assert.ok(!closed.get('hoot_pool_connections').samples.some((s) => s.labels.database.endsWith(`/${database}`)))
  })
})

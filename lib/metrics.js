// `hoot-core/metrics`: the process's counters, latency histograms and pool gauges, as the
// Prometheus text format (metricsText) or fed to a prom-client registry or an OpenTelemetry meter
// the caller already has (registerMetrics): neither package is a dependency of hoot-core.
//
// The core counts and times what runs in native code (src/metrics.rs: verifications that reach
// it, issuing, every store call by backend and operation, refresh claims) with relaxed atomics,
// read here as one JSON snapshot per collection. This side adds what never reaches native code:
// verifications the cache answered (lib/verify.js), the refresh coordination of lib/refresh.js
// (lib/counters.js) and, read at collection time, the PostgreSQL pools. Every label value is a
// constant of the code (an operation, a backend, an error code, a database's host:port/name),
// never a user id, a server id or a token. Typed in metrics.d.ts.
//
// `exports.name = ...` lines, one per export, for Node's CommonJS export detection.
'use strict'

const native = require('./native.js')
const { counts } = require('./counters.js')
const { verifyCacheHits } = require('./verify.js')
const { typeError } = require('./errors.js')

/** The Prometheus text format's content type, for a `/metrics` response. */
const contentType = 'text/plain; version=0.0.4; charset=utf-8'

/** The core's histograms: their names and what they time. */
const TIMINGS = {
  token_verify: ['hoot_token_verify_seconds', 'Time to verify a token in native code (cache hits are not timed)'],
  token_issue: ['hoot_token_issue_seconds', 'Time to sign a session token'],
  store_call: ['hoot_store_call_seconds', 'Time of a store call, by backend and operation (JSON parsing excluded)'],
}

/** Every family this package reports, in the order they are written. */
const FAMILIES = [
  [
    'hoot_token_verifications_total',
    'counter',
    'Token verifications, by outcome (valid, or the refusal code) and whether the cache answered',
  ],
  ['hoot_token_verify_seconds', 'histogram', TIMINGS.token_verify[1]],
  ['hoot_token_issues_total', 'counter', 'Session tokens signed (outcome ok) or refused (outcome error)'],
  ['hoot_token_issue_seconds', 'histogram', TIMINGS.token_issue[1]],
  [
    'hoot_store_calls_total',
    'counter',
    'Store calls, by backend, operation and outcome (ok, or error when the call threw)',
  ],
  ['hoot_store_call_seconds', 'histogram', TIMINGS.store_call[1]],
  [
    'hoot_refresh_claims_total',
    'counter',
    'Claims on an OAuth refresh: claimed, or held elsewhere (another holder refreshes)',
  ],
  ['hoot_refresh_total', 'counter', "Refresh-grant requests of createOAuthProvider's fetch, by outcome"],
  [
    'hoot_requests_resent_total',
    'counter',
    'Requests refused (401) with an access token no longer stored, resent with the stored one',
  ],
  ['hoot_pool_connections', 'gauge', 'PostgreSQL pool connections, by state (open, idle, max)'],
  ['hoot_pool_waiting', 'gauge', 'Calls waiting for a PostgreSQL pool connection'],
  ['hoot_pool_lanes_open', 'gauge', 'Shared pipelined PostgreSQL connections (lanes) open'],
  ['hoot_pool_lane_calls', 'gauge', 'Calls the PostgreSQL lanes carry now'],
]

/**
 * The process's open PostgreSQL pools (whichever thread opened them), summed per database: two URLs
 * naming one database (another user, another application_name) are two pools to it.
 */
function poolsByDatabase() {
  const pools = new Map()
  for (const status of native.postgresPoolStatuses()) {
    const { database, ...counts } = status
    const sum = pools.get(database)
    if (sum === undefined) pools.set(database, counts)
    else for (const key of Object.keys(counts)) sum[key] += counts[key]
  }
  return pools
}

/**
 * Every family with its samples now: `{ name, type, help, samples: [{ name, labels, value }] }`,
 * a histogram's samples being its `_bucket`, `_sum` and `_count` series.
 */
function collect() {
  const snapshot = JSON.parse(native.metricsSnapshot())
  const samples = new Map(FAMILIES.map(([name]) => [name, []]))
  const add = (family, labels, value, name = family) => samples.get(family).push({ name, labels, value })

  add('hoot_token_verifications_total', { cache: 'hit', outcome: 'valid' }, verifyCacheHits())
  for (const counter of snapshot.counters) {
    if (counter.metric === 'token_verification') add('hoot_token_verifications_total', counter.labels, counter.value)
    else if (counter.metric === 'refresh_claim') add('hoot_refresh_claims_total', counter.labels, counter.value)
  }
  for (const timing of snapshot.timings) {
    const known = TIMINGS[timing.metric]
    if (known === undefined) continue
    const [name] = known
    let cumulative = 0
    timing.buckets.forEach((n, i) => {
      cumulative += n
      const le = i < snapshot.buckets.length ? String(snapshot.buckets[i]) : '+Inf'
      add(name, { ...timing.labels, le }, cumulative, `${name}_bucket`)
    })
    add(name, timing.labels, timing.sumSeconds, `${name}_sum`)
    add(name, timing.labels, cumulative, `${name}_count`)
    if (timing.metric === 'token_issue') {
      add('hoot_token_issues_total', { outcome: 'ok' }, timing.ok)
      add('hoot_token_issues_total', { outcome: 'error' }, timing.errors)
    } else if (timing.metric === 'store_call') {
      add('hoot_store_calls_total', { ...timing.labels, outcome: 'ok' }, timing.ok)
      add('hoot_store_calls_total', { ...timing.labels, outcome: 'error' }, timing.errors)
    }
  }
  for (const [outcome, n] of counts('refresh')) add('hoot_refresh_total', { outcome }, n)
  for (const [reason, n] of counts('resent')) add('hoot_requests_resent_total', { reason }, n)
  for (const [database, pool] of poolsByDatabase()) {
    add('hoot_pool_connections', { database, state: 'open' }, pool.size)
    add('hoot_pool_connections', { database, state: 'idle' }, pool.available)
    add('hoot_pool_connections', { database, state: 'max' }, pool.maxSize)
    add('hoot_pool_waiting', { database }, pool.waiting)
    add('hoot_pool_lanes_open', { database }, pool.lanesOpen)
    add('hoot_pool_lane_calls', { database }, pool.laneCalls)
  }
  return FAMILIES.map(([name, type, help]) => ({ name, type, help, samples: samples.get(name) }))
}

const escapeLabel = (value) => String(value).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')

function sampleLine({ name, labels, value }) {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`)
  const shown = Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN'
  return pairs.length > 0 ? `${name}{${pairs.join(',')}} ${shown}` : `${name} ${shown}`
}

/** Every metric of this process in the Prometheus text format (version 0.0.4), for `GET /metrics`. */
function metricsText() {
  const lines = []
  for (const family of collect()) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`)
    for (const sample of family.samples) lines.push(sampleLine(sample))
  }
  return `${lines.join('\n')}\n`
}

/** One collection per prom-client scrape: the registry asks each family in the same turn. */
let scraped
function collectOnce() {
  if (scraped === undefined) {
    scraped = collect()
    setImmediate(() => {
      scraped = undefined
    })
  }
  return scraped
}

/** prom-client's shape of a metric whose values are read at collection time. */
function promClientMetric(family) {
  const read = () => {
    const now = collectOnce().find((f) => f.name === family.name)
    return {
      name: family.name,
      help: family.help,
      type: family.type,
      aggregator: 'sum',
      values: now.samples.map(({ name, labels, value }) => ({ metricName: name, labels, value })),
    }
  }
  return {
    name: family.name,
    help: family.help,
    type: family.type,
    aggregator: 'sum',
    get: async () => read(),
    // registry.resetMetrics() resets every metric; these are the process's, read, never reset.
    reset() {},
  }
}

/**
 * Reports this process's metrics through `target`: a prom-client `Registry` (its `metrics()` then
 * includes them) or an OpenTelemetry `Meter` (observable instruments, read at each collection; a
 * histogram is reported as the counters `<name>_bucket` with an `le` attribute, `_sum` and
 * `_count`, since OpenTelemetry has no observable histogram). Returns a function that removes them.
 */
function registerMetrics(target) {
  if (target !== null && typeof target === 'object') {
    if (typeof target.registerMetric === 'function' && typeof target.removeSingleMetric === 'function') {
      const families = collect()
      for (const family of families) target.registerMetric(promClientMetric(family))
      return () => families.forEach((family) => target.removeSingleMetric(family.name))
    }
    if (
      typeof target.createObservableCounter === 'function' &&
      typeof target.addBatchObservableCallback === 'function'
    ) {
      return observeWith(target)
    }
  }
  throw typeError('target', 'a prom-client Registry or an OpenTelemetry Meter', target)
}

function observeWith(meter) {
  const instruments = new Map()
  for (const [name, type, help] of FAMILIES) {
    if (type === 'gauge') instruments.set(name, meter.createObservableGauge(name, { description: help }))
    else if (type === 'counter') instruments.set(name, meter.createObservableCounter(name, { description: help }))
    else {
      for (const suffix of ['_bucket', '_sum', '_count']) {
        const unit = suffix === '_sum' ? 's' : undefined
        instruments.set(name + suffix, meter.createObservableCounter(name + suffix, { description: help, unit }))
      }
    }
  }
  const callback = (result) => {
    for (const family of collect()) {
      for (const { name, labels, value } of family.samples) result.observe(instruments.get(name), value, labels)
    }
  }
  const all = [...instruments.values()]
  meter.addBatchObservableCallback(callback, all)
  return () => meter.removeBatchObservableCallback(callback, all)
}

exports.metricsText = metricsText
exports.registerMetrics = registerMetrics
exports.contentType = contentType

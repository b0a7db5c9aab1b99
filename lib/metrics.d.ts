// Types of `hoot-core/metrics` (lib/metrics.js), hand-written: its value exports are exactly
// lib/metrics.js's (__test__/types.test.mjs compares them).

/** The Prometheus text format's content type, for a `/metrics` response. */
export declare const contentType: string
/** Every metric of this process in the Prometheus text format (version 0.0.4), for `GET /metrics`. */
export declare function metricsText(): string
/**
 * Reports this process's metrics through a prom-client `Registry` or an OpenTelemetry `Meter`
 * (neither is a dependency of hoot-core). Returns a function that removes them.
 */
export declare function registerMetrics(target: object): () => void

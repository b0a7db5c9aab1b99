//! The core's counters and latency histograms: token verification by outcome, issuing, store
//! calls by backend and operation, refresh claims. Each series is a static made at its call site
//! (the `timed!` and `counter!` macros), registered on first use: counting is a few relaxed atomic
//! adds, with no lock and no lookup. `snapshot()` reads them all as JSON for `lib/metrics.js`, which
//! adds the JavaScript side's own (verification-cache hits, the refresh coordination, the pools)
//! and renders the Prometheus text format or feeds a prom-client registry or OpenTelemetry meter.
//!
//! Labels are static strings from the code (an operation's name, a backend, an error code), never
//! a value from a caller: no user id, server id or token can reach a label.

#![warn(missing_docs)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::HootError;

/// Upper bounds of the histogram buckets, in seconds (`+Inf` is implied): 50 µs to 10 s, for a
/// cached read on SQLite up to a PostgreSQL call that waits for its statement timeout.
pub const BUCKETS: [f64; 14] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0];

/// A latency histogram with its outcome counts.
pub struct Timing {
    metric: &'static str,
    labels: [(&'static str, &'static str); 2],
    ok: AtomicU64,
    errors: AtomicU64,
    /// Per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Timing {
    /// Records one call of `elapsed` that succeeded or not.
    pub fn observe(&self, elapsed: Duration, ok: bool) {
        let seconds = elapsed.as_secs_f64();
        let at = BUCKETS.iter().position(|&bound| seconds <= bound).unwrap_or(BUCKETS.len());
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if ok { &self.ok } else { &self.errors }.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Value {
        json!({
            "metric": self.metric,
            "labels": labels_json(&self.labels),
            "ok": self.ok.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "buckets": self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect::<Vec<_>>(),
            "sumSeconds": self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        })
    }
}

/// A counter.
pub struct Counter {
    metric: &'static str,
    labels: [(&'static str, &'static str); 2],
    value: AtomicU64,
}

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Value {
        json!({ "metric": self.metric, "labels": labels_json(&self.labels), "value": self.value.load(Ordering::Relaxed) })
    }
}

/// The labels with a name, as a JSON object (an unnamed one stands for "no label").
fn labels_json(labels: &[(&'static str, &'static str); 2]) -> Value {
    Value::Object(
        labels.iter().filter(|(name, _)| !name.is_empty()).map(|(n, v)| ((*n).to_string(), Value::from(*v))).collect(),
    )
}

/// A registered series.
pub enum Series {
    /// A latency histogram.
    Timing(&'static Timing),
    /// A counter.
    Counter(&'static Counter),
}

static REGISTRY: Mutex<Vec<Series>> = Mutex::new(Vec::new());

fn register(series: Series) {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner()).push(series);
}

/// The backends a store call can run on, as labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

impl BackendKind {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

/// What a call site makes for each value of its varying label: a `Timing` or a `Counter`.
pub trait Measure: Sized + Send + Sync + 'static {
    /// A new one of `metric` with `labels`, at zero.
    fn made(metric: &'static str, labels: [(&'static str, &'static str); 2]) -> Self;
    /// This one, as the registry keeps it.
    fn series(&'static self) -> Series;
}

impl Measure for Timing {
    fn made(metric: &'static str, labels: [(&'static str, &'static str); 2]) -> Self {
        Timing {
            metric,
            labels,
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            sum_ns: AtomicU64::new(0),
        }
    }

    fn series(&'static self) -> Series {
        Series::Timing(self)
    }
}

impl Measure for Counter {
    fn made(metric: &'static str, labels: [(&'static str, &'static str); 2]) -> Self {
        Counter { metric, labels, value: AtomicU64::new(0) }
    }

    fn series(&'static self) -> Series {
        Series::Counter(self)
    }
}

/// A call site's timings or counters, one per value of its varying label (a backend, say), each
/// registered when first used.
pub struct Site<T: 'static, const N: usize> {
    metric: &'static str,
    fixed: (&'static str, &'static str),
    varying: &'static str,
    cells: [OnceLock<&'static T>; N],
}

/// A call site's latency histograms.
pub type TimingSite<const N: usize> = Site<Timing, N>;
/// A call site's counters.
pub type CounterSite<const N: usize> = Site<Counter, N>;

impl<T: Measure, const N: usize> Site<T, N> {
    /// The series of `metric` with `fixed` as one label and `varying` as the other.
    pub const fn new(metric: &'static str, fixed: (&'static str, &'static str), varying: &'static str) -> Self {
        Site { metric, fixed, varying, cells: [const { OnceLock::new() }; N] }
    }

    /// The series for the varying label's value number `at` (`value` is its text).
    pub fn get(&'static self, at: usize, value: &'static str) -> &'static T {
        self.cells[at.min(N - 1)].get_or_init(|| {
            let made: &'static T = Box::leak(Box::new(T::made(self.metric, [self.fixed, (self.varying, value)])));
            register(made.series());
            made
        })
    }
}

/// A store call's histogram for `op` on `backend` (`hoot_store_call_seconds{op, backend}`).
#[macro_export]
macro_rules! store_timing {
    ($op:literal, $backend:expr) => {{
        static SITE: $crate::metrics::TimingSite<2> =
            $crate::metrics::TimingSite::new("store_call", ("op", $op), "backend");
        let backend: $crate::metrics::BackendKind = $backend;
        SITE.get(backend as usize, backend.label())
    }};
}

/// Runs `call`, recording its time and outcome in `timing`.
pub async fn timed<T>(
    timing: &'static Timing,
    call: impl Future<Output = Result<T, HootError>>,
) -> Result<T, HootError> {
    let start = Instant::now();
    let result = call.await;
    timing.observe(start.elapsed(), result.is_ok());
    result
}

/// Every series registered so far, as JSON: `{ timings: [...], counters: [...], buckets: [...] }`.
pub fn snapshot() -> String {
    let registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let mut timings = Vec::new();
    let mut counters = Vec::new();
    for series in registry.iter() {
        match series {
            Series::Timing(t) => timings.push(t.snapshot()),
            Series::Counter(c) => counters.push(c.snapshot()),
        }
    }
    json!({ "buckets": BUCKETS, "timings": timings, "counters": counters }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timing_counts_each_call_once_in_its_bucket() {
        static SITE: TimingSite<2> = TimingSite::new("test_timing", ("op", "x"), "backend");
        let timing = SITE.get(1, "postgres");
        timing.observe(Duration::from_micros(30), true);
        timing.observe(Duration::from_millis(3), false);
        timing.observe(Duration::from_secs(20), true);
        let snapshot: Value = serde_json::from_str(&snapshot()).unwrap_or_default();
        let mine = snapshot["timings"]
            .as_array()
            .and_then(|all| all.iter().find(|t| t["metric"] == "test_timing").cloned())
            .unwrap_or_default();
        assert_eq!(mine["labels"], json!({ "op": "x", "backend": "postgres" }));
        assert_eq!((mine["ok"].as_u64(), mine["errors"].as_u64()), (Some(2), Some(1)));
        let buckets: Vec<u64> = serde_json::from_value(mine["buckets"].clone()).unwrap_or_default();
        assert_eq!(buckets.iter().sum::<u64>(), 3);
        assert_eq!((buckets[0], buckets[6], buckets[BUCKETS.len()]), (1, 1, 1), "50 µs, 5 ms, +Inf");
    }
}

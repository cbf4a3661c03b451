//! `/metrics`: the process-wide Prometheus recorder, every metric's name,
//! type and help text (one table: `DESCRIBED`, which README documents and
//! the metrics test stage checks), the request and upstream duration
//! histograms, and the gauges read from the gateway's state at each scrape.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::model::SourceName;
use crate::server::response_cache::ResponseCache;
use crate::sources::Registry;
use crate::upstream::Resource;

/// Histogram buckets, seconds: from a warm cache answer to a request deadline.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Every metric the gateway exports: name, kind and help text.
pub const DESCRIBED: &[(&str, Kind, &str)] = &[
    ("graphql_requests_in_flight", Kind::Gauge, "GraphQL requests being handled"),
    (
        "graphql_request_duration_seconds",
        Kind::Histogram,
        "GraphQL requests from arrival to response, by operation and outcome",
    ),
    (
        "upstream_request_duration_seconds",
        Kind::Histogram,
        "Upstream attempts from sending to the end of the body, by source, route and status",
    ),
    ("upstream_requests_total", Kind::Counter, "Upstream attempts answered, by source, route and status"),
    ("upstream_retries_total", Kind::Counter, "Upstream attempts retried, by source and route"),
    ("upstream_refused_total", Kind::Counter, "Upstream calls refused before sending, by source and reason"),
    ("upstream_circuit_opened_total", Kind::Counter, "Circuits opened, by source"),
    (
        "upstream_circuit_state",
        Kind::Gauge,
        "The configured credentials' circuit per source: 0 closed, 1 half-open, 2 open",
    ),
    ("upstream_open_circuits", Kind::Gauge, "Credentials whose circuit is open or half-open, per source"),
    ("cache_hits_total", Kind::Counter, "Answers served from the cache, by source and resource"),
    ("cache_misses_total", Kind::Counter, "Cache lookups that called the upstream, by source and resource"),
    ("cache_coalesced_total", Kind::Counter, "Cache misses that waited on another lookup's call"),
    ("cache_stale_served_total", Kind::Counter, "Expired answers served for a failing source"),
    ("cache_entries", Kind::Gauge, "Entries in the cache, by source and resource"),
    ("cache_bytes", Kind::Gauge, "Weight of the cache's entries in bytes, by source and resource"),
    ("http_connections_dropped_total", Kind::Counter, "Connections the server gave up on, by reason"),
    ("response_cache_hits_total", Kind::Counter, "Queries answered with a kept response"),
    ("response_cache_misses_total", Kind::Counter, "Queries the response cache had no answer for, so executed"),
    ("response_cache_stores_total", Kind::Counter, "Responses kept by the response cache"),
    ("response_cache_evictions_total", Kind::Counter, "Kept responses evicted to stay within the byte bound"),
    ("response_cache_entries", Kind::Gauge, "Responses kept by the response cache"),
    ("response_cache_bytes", Kind::Gauge, "Weight of the kept responses in bytes"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The process-wide recorder: metrics are global, so every app in the
/// process (tests start many) shares one. `None` when another recorder
/// was installed first.
fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().set_buckets(&BUCKETS).ok()?.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    for (name, kind, help) in DESCRIBED {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => metrics::describe_histogram!(*name, metrics::Unit::Seconds, *help),
        }
    }
}

pub fn init() {
    let _ = prometheus();
}

/// The exposition text, with the gauges read from `registry` first;
/// `None` without a recorder.
pub fn render(registry: &Registry, responses: Option<&ResponseCache>) -> Option<String> {
    let handle = prometheus()?;
    record_state(registry);
    let (entries, bytes) = responses.map_or((0, 0), ResponseCache::usage);
    metrics::gauge!("response_cache_entries").set(entries as f64);
    metrics::gauge!("response_cache_bytes").set(bytes as f64);
    Some(handle.render())
}

/// Sets the gauges that mirror state the gateway holds: per source, the
/// configured credentials' circuit and how many circuits are not closed;
/// per source and resource, the cache's entries and bytes (all callers').
fn record_state(registry: &Registry) {
    let service = registry.service_caller();
    for source in registry.sources() {
        let name = source.name().to_string();
        let client = source.client();
        metrics::gauge!("upstream_open_circuits", "source" => name.clone()).set(client.circuits_not_closed() as f64);
        if let Ok(credentials) = service.credentials(source.name()) {
            let circuit = client.state(credentials.fingerprint()).circuit;
            metrics::gauge!("upstream_circuit_state", "source" => name.clone()).set(circuit.gauge());
        }
        // Zero, rather than absent, for what the cache holds nothing of.
        for resource in Resource::ALL {
            cache_gauges(source.name(), resource, Default::default());
        }
    }
    for ((source, resource), usage) in registry.cache().usage(|_, _| true) {
        cache_gauges(&source, resource, usage);
    }
}

fn cache_gauges(source: &SourceName, resource: Resource, usage: crate::upstream::Usage) {
    let labels = [("source", source.to_string()), ("resource", resource.label().to_owned())];
    metrics::gauge!("cache_entries", &labels).set(usage.entries as f64);
    metrics::gauge!("cache_bytes", &labels).set(usage.bytes as f64);
}

/// One upstream attempt: `status` is the HTTP status, or `timeout` /
/// `network` when no answer came.
pub fn upstream_call(source: &SourceName, route: &'static str, status: &str, elapsed: Duration) {
    let labels = [("source", source.to_string()), ("route", route.to_owned()), ("status", status.to_owned())];
    metrics::histogram!("upstream_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// One GraphQL request.
pub fn graphql_request(operation: &str, outcome: &'static str, elapsed: Duration) {
    let labels = [("operation", operation.to_owned()), ("outcome", outcome.to_owned())];
    metrics::histogram!("graphql_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// Counts a GraphQL request in flight while it lives.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn start() -> Self {
        metrics::gauge!("graphql_requests_in_flight").increment(1.0);
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("graphql_requests_in_flight").decrement(1.0);
    }
}

/// The `operation` label of the request duration, bounded: the first
/// `max` distinct operation names keep their own label, later ones share
/// [`OTHER`]. Labels a GraphQL name cannot spell mark the rest.
#[derive(Debug)]
pub struct OperationLabels {
    max: usize,
    // A plain mutex: held for a set lookup, never across an await.
    seen: Mutex<HashSet<String>>,
}

/// An operation without a name.
pub const ANONYMOUS: &str = "(anonymous)";
/// No operation ran: the request was refused, did not parse or validate,
/// or named no operation of its document.
pub const UNKNOWN: &str = "(unknown)";
/// A name seen after the bound was reached.
pub const OTHER: &str = "(other)";
/// A batch of several operations.
pub const BATCH: &str = "(batch)";

impl OperationLabels {
    pub fn new(max: usize) -> Self {
        Self { max, seen: Mutex::default() }
    }

    /// The label of an executed operation named `name` (`None`: anonymous).
    pub fn label(&self, name: Option<&str>) -> String {
        let Some(name) = name else { return ANONYMOUS.to_owned() };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(name) {
            return name.to_owned();
        }
        if seen.len() < self.max {
            seen.insert(name.to_owned());
            return name.to_owned();
        }
        OTHER.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded_first_come() {
        let labels = OperationLabels::new(2);
        assert_eq!(labels.label(Some("A")), "A");
        assert_eq!(labels.label(Some("B")), "B");
        assert_eq!(labels.label(Some("C")), OTHER, "past the bound");
        assert_eq!(labels.label(Some("A")), "A", "a name seen before keeps its label");
        assert_eq!(labels.label(None), ANONYMOUS);
    }

    #[test]
    fn every_metric_is_described_once() {
        let names: HashSet<&str> = DESCRIBED.iter().map(|(name, ..)| *name).collect();
        assert_eq!(names.len(), DESCRIBED.len());
    }
}

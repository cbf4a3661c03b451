//! Configuration: a TOML file layered under `LEDGER_GATEWAY__SECTION__KEY`
//! environment variables. Every field but the sources has a default,
//! unknown keys are errors, every number has a range, and `validate` names
//! the key that is wrong.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::clock::Clock;
use crate::model::SourceKind;
use crate::upstream::{Backoff, BreakerPolicy, HttpPolicy, RateLimit};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not load configuration: {0}")]
    Load(String),
    #[error("sources.{source_name}: {message}")]
    Source { source_name: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(
        "no sources configured: add at least one [sources.<name>] table (or LEDGER_GATEWAY__SOURCES__<NAME>__* \
         variables); to serve the mock upstreams instead, run with --demo"
    )]
    NoSources,
    #[error(
        "--demo serves the mock upstreams, but the configuration also has [sources] ({names}): \
         drop --demo to serve them, or remove them to try a setting on the demo"
    )]
    DemoWithSources { names: String },
}

/// The prefix of every environment variable that overlays the file.
pub const ENV_PREFIX: &str = "LEDGER_GATEWAY__";

/// Longest request deadline, timeout or wait, milliseconds (ten minutes).
const MAX_WAIT_MS: u64 = 600_000;
/// Longest circuit cool-down and rate-limit window, milliseconds (a day).
const MAX_PERIOD_MS: u64 = 86_400_000;
/// Longest cache time-to-live, seconds (a year; moka refuses centuries).
const MAX_TTL_SECS: u64 = 365 * 86_400;
/// Widest first date window, seconds (a century).
const MAX_WINDOW_SECS: u64 = 100 * 365 * 86_400;
/// Largest upstream body, bytes (1 GiB: it is read into one buffer).
const MAX_UPSTREAM_BODY_BYTES: u64 = 1 << 30;
/// Largest persisted query store, bytes (1 GiB; moka weighs entries in `u32`).
const MAX_PERSISTED_BYTES: u64 = 1 << 30;

/// A numeric setting and the inclusive range it must lie in.
#[derive(Debug)]
struct Bound {
    key: &'static str,
    value: u64,
    range: RangeInclusive<u64>,
    /// The setting an end of the range comes from, if any.
    because: Option<&'static str>,
}

impl Bound {
    fn new(key: &'static str, value: u64, range: RangeInclusive<u64>) -> Self {
        Self { key, value, range, because: None }
    }

    fn because(self, reason: &'static str) -> Self {
        Self { because: Some(reason), ..self }
    }

    /// The key and what is wrong, when the value lies outside the range.
    fn violation(&self) -> Option<(&'static str, String)> {
        if self.range.contains(&self.value) {
            return None;
        }
        let (low, high) = (self.range.start(), self.range.end());
        let range = if *high == u64::MAX {
            format!("must be at least {low}")
        } else {
            format!("must be between {low} and {high}")
        };
        let message = match self.because {
            Some(reason) => format!("{range} ({reason})"),
            None => range,
        };
        Some((self.key, message))
    }
}

fn first_violation(bounds: impl IntoIterator<Item = Bound>) -> Option<(&'static str, String)> {
    bounds.into_iter().find_map(|bound| bound.violation())
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Query limits.
    pub limits: LimitsConfig,
    /// Upstream sources by name; the name prefixes every id they own.
    pub sources: BTreeMap<String, SourceConfig>,
    /// The shared upstream cache: size bound and time-to-live per resource.
    pub cache: CacheConfig,
    /// Where "now" comes from. Not a setting: the system clock, except in
    /// tests, which fix it.
    #[serde(skip)]
    pub clock: Clock,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Serve GraphiQL to browsers on `/` and `/graphql`.
    pub graphiql: bool,
    /// Answer introspection queries (`__schema`, `__type`). Off also turns
    /// off "did you mean" suggestions, which would leak field names.
    pub introspection: bool,
    /// Answer the federation `_service { sdl }` query even when
    /// `introspection` is off (a federation router fetches the schema this
    /// way). With introspection on it is always answered.
    pub federation_sdl: bool,
    /// Deadline of one GraphQL request (a batch counts as one), milliseconds.
    /// Upstream attempts, backoff and rate-limit waits all fit inside it; a
    /// source still waiting when it passes fails with `UPSTREAM_TIMEOUT`.
    pub request_timeout_ms: u64,
    /// Connections served at once; one more is closed as soon as it is
    /// accepted, so the bound holds whatever its clients send (or don't).
    pub max_connections: usize,
    /// From the moment the server waits for a request (a new connection, or
    /// the end of the previous response) until its headers are complete,
    /// milliseconds; past it the connection is closed.
    pub header_read_timeout_ms: u64,
    /// From the end of a response until the next request on a kept-alive
    /// connection starts, milliseconds; past it the connection is closed.
    pub keep_alive_timeout_ms: u64,
    /// Deadline of the whole request body once the headers are in,
    /// milliseconds: a body trickling or stalling past it is a 408.
    pub body_read_timeout_ms: u64,
    /// Longest request target (path and query string), bytes: a 414.
    pub max_uri_bytes: usize,
    /// Largest request headers (names, values and separators), bytes: a 431.
    pub max_header_bytes: usize,
    /// Most request headers: a 431.
    pub max_headers: usize,
    /// Automatic persisted queries and the optional safelist.
    pub persisted_queries: PersistedQueriesConfig,
}

/// Automatic persisted queries (Apollo's protocol): the store every caller
/// shares, and the safelist that, when set, replaces it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersistedQueriesConfig {
    /// Most documents the store holds; the least recently used go first.
    pub max_entries: u64,
    /// Most bytes of documents (query text and hash) the store holds.
    pub max_bytes: u64,
    /// An Apollo persisted query manifest (JSON). When set, only its
    /// operations run, by id or by exact body, and nothing is registered.
    pub safelist: Option<PathBuf>,
}

impl Default for PersistedQueriesConfig {
    fn default() -> Self {
        Self { max_entries: 10_000, max_bytes: 16 * 1024 * 1024, safelist: None }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            graphiql: true,
            introspection: true,
            federation_sdl: false,
            request_timeout_ms: 15_000,
            max_connections: 1024,
            header_read_timeout_ms: 10_000,
            keep_alive_timeout_ms: 5_000,
            body_read_timeout_ms: 15_000,
            max_uri_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            persisted_queries: PersistedQueriesConfig::default(),
        }
    }
}

/// hyper refuses request targets longer than this itself, with an empty
/// 414, before any handler could answer in JSON.
pub const HYPER_MAX_URI_BYTES: usize = u16::MAX as usize - 1;

impl ServerConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn keep_alive_timeout(&self) -> Duration {
        Duration::from_millis(self.keep_alive_timeout_ms)
    }

    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// Each server setting with the range it must lie in.
    fn bounds(&self) -> [Bound; 10] {
        const HOUR_MS: u64 = 3_600_000;
        let persisted = &self.persisted_queries;
        [
            Bound::new("server.request_timeout_ms", self.request_timeout_ms, 100..=MAX_WAIT_MS),
            Bound::new("server.max_connections", self.max_connections as u64, 1..=1_000_000),
            Bound::new("server.header_read_timeout_ms", self.header_read_timeout_ms, 1..=HOUR_MS),
            Bound::new("server.keep_alive_timeout_ms", self.keep_alive_timeout_ms, 1..=self.header_read_timeout_ms)
                .because("at most server.header_read_timeout_ms"),
            Bound::new("server.body_read_timeout_ms", self.body_read_timeout_ms, 1..=HOUR_MS),
            Bound::new("server.max_uri_bytes", self.max_uri_bytes as u64, 256..=HYPER_MAX_URI_BYTES as u64),
            Bound::new("server.max_header_bytes", self.max_header_bytes as u64, 1024..=1024 * 1024),
            Bound::new("server.max_headers", self.max_headers as u64, 8..=10_000),
            Bound::new("server.persisted_queries.max_entries", persisted.max_entries, 1..=10_000_000),
            Bound::new("server.persisted_queries.max_bytes", persisted.max_bytes, 1024..=MAX_PERSISTED_BYTES),
        ]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match first_violation(self.bounds()) {
            Some((key, message)) => Err(ConfigError::Invalid { key, message }),
            None => Ok(()),
        }
    }
}

/// What one request may ask for. Everything here is checked before any
/// upstream call; see `schema::limits` and the README's "Hostile input".
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Page size when `first` is not given.
    pub default_page_size: usize,
    /// Largest `first` accepted.
    pub max_page_size: usize,
    /// Deepest field nesting of an operation, fragments expanded.
    pub max_depth: usize,
    /// Highest complexity of a document: every field costs 1 plus its
    /// children; a paged field multiplies its children by `first`.
    pub max_complexity: usize,
    /// Most aliased fields in one operation, fragments expanded.
    pub max_aliases: usize,
    /// Most root fields in one operation, fragments expanded.
    pub max_root_fields: usize,
    /// Most directives in one operation, fragments expanded.
    pub max_directives: usize,
    /// Most lexical tokens in a query document, counted before parsing.
    pub max_tokens: usize,
    /// Deepest nesting of list and object values (and list types) in
    /// arguments, variable definitions and variables, checked before parsing.
    pub max_input_depth: usize,
    /// Largest request body, bytes, enforced while it streams in.
    pub max_body_bytes: usize,
    /// Most operations in one batched POST.
    pub max_batch: usize,
    /// Most `_entities` representations in one operation.
    pub max_representations: usize,
    /// Most ids the `nodes` fields of one operation look up, summed over aliases.
    pub max_node_ids: usize,
    /// Most fields an operation runs, fragments expanded, after identical
    /// selections are merged; the operations of a batch share one allowance.
    pub max_fields: usize,
    /// Most upstream calls one operation may make (each operation of a batch
    /// has its own), counting every attempt sent: retries and ledger walk
    /// steps included, cached and shared answers free. An operation whose
    /// estimate exceeds it is refused before any call; one that runs out
    /// while running gets `UPSTREAM_BUDGET_EXCEEDED` on the fields that
    /// needed more.
    pub max_upstream_calls: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            default_page_size: 20,
            max_page_size: 500,
            max_depth: 20,
            max_complexity: 20_000,
            max_aliases: 30,
            max_root_fields: 10,
            max_directives: 50,
            max_tokens: 10_000,
            max_input_depth: 16,
            max_body_bytes: 1024 * 1024,
            max_batch: 10,
            max_representations: 100,
            max_node_ids: 100,
            max_fields: 1000,
            max_upstream_calls: 200,
        }
    }
}

impl LimitsConfig {
    /// Each limit with the range it must lie in.
    fn ranges(&self) -> [(&'static str, usize, usize, usize); 15] {
        use crate::schema::limits::{budget, MAX_NESTING, MAX_VALUE_NESTING};
        [
            // Pages are collected in memory: a bound keeps `first` sane.
            ("limits.max_page_size", self.max_page_size, 1, MAX_PAGE_SIZE),
            ("limits.default_page_size", self.default_page_size, 1, self.max_page_size),
            ("limits.max_depth", self.max_depth, 1, MAX_NESTING),
            ("limits.max_complexity", self.max_complexity, 1, usize::MAX),
            ("limits.max_aliases", self.max_aliases, 0, usize::MAX),
            ("limits.max_root_fields", self.max_root_fields, 1, usize::MAX),
            ("limits.max_directives", self.max_directives, 0, usize::MAX),
            ("limits.max_tokens", self.max_tokens, 1, usize::MAX),
            ("limits.max_input_depth", self.max_input_depth, 1, MAX_VALUE_NESTING),
            ("limits.max_body_bytes", self.max_body_bytes, 1024, MAX_REQUEST_BODY_BYTES),
            ("limits.max_batch", self.max_batch, 1, usize::MAX),
            ("limits.max_representations", self.max_representations, 0, usize::MAX),
            ("limits.max_node_ids", self.max_node_ids, 0, usize::MAX),
            ("limits.max_fields", self.max_fields, 1, usize::MAX),
            ("limits.max_upstream_calls", self.max_upstream_calls, 1, budget::MAX_UPSTREAM_CALLS),
        ]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let widen = |n: usize| if n == usize::MAX { u64::MAX } else { n as u64 };
        let bounds =
            self.ranges().map(|(key, value, low, high)| Bound::new(key, widen(value), widen(low)..=widen(high)));
        match first_violation(bounds) {
            Some((key, message)) => Err(ConfigError::Invalid { key, message }),
            None => Ok(()),
        }
    }
}

/// Largest `limits.max_page_size`.
const MAX_PAGE_SIZE: usize = 10_000;
/// Largest `limits.max_body_bytes` (64 MiB).
const MAX_REQUEST_BODY_BYTES: usize = 64 << 20;

/// The shared cache of upstream answers. Every entry is keyed by the
/// caller's credential fingerprint, so callers never share data; errors are
/// never cached. A time-to-live of 0 disables caching that resource.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Upper bound of the whole cache, in bytes (approximate: entries are
    /// weighed by their serialized size).
    pub max_bytes: u64,
    /// Seconds an upstream ledger response is reused for the same caller
    /// and URL: short, it only saves repeated pages and retried queries.
    pub ledger_ttl_secs: u64,
    /// Seconds an item (or its absence) is reused.
    pub item_ttl_secs: u64,
    /// Seconds a location (or its absence) and a location's stock are reused.
    pub location_ttl_secs: u64,
    /// Seconds past its time-to-live an item, location or stock answer may
    /// still stand in for a source that is failing (timeouts, 5xx, 429, an
    /// open circuit, a malformed answer; never an auth failure), flagged in
    /// the response's `extensions.staleSources`. 0 (the default) turns it off.
    /// Ledger pages are never served stale.
    pub stale_if_error_secs: u64,
    /// Overrides per source name, e.g. `[cache.sources.trackstar]`.
    pub sources: BTreeMap<String, CacheTtlOverride>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            ledger_ttl_secs: 5,
            item_ttl_secs: 300,
            location_ttl_secs: 900,
            stale_if_error_secs: 0,
            sources: BTreeMap::new(),
        }
    }
}

/// One source's time-to-live overrides; unset fields keep the global value.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheTtlOverride {
    /// Replaces `cache.ledger_ttl_secs` for this source.
    pub ledger_ttl_secs: Option<u64>,
    /// Replaces `cache.item_ttl_secs` for this source.
    pub item_ttl_secs: Option<u64>,
    /// Replaces `cache.location_ttl_secs` for this source.
    pub location_ttl_secs: Option<u64>,
    /// Replaces `cache.stale_if_error_secs` for this source.
    pub stale_if_error_secs: Option<u64>,
}

/// One upstream.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Which API this source speaks.
    pub kind: SourceKind,
    /// API root, e.g. `https://production.trackstarhq.com`.
    pub base_url: Url,
    /// Service-account credential fields (`api_key`, `access_token`, `token`...).
    #[serde(default, serialize_with = "redacted")]
    pub credentials: BTreeMap<String, SecretString>,
    /// Credential field -> request header that carries the caller's own
    /// value; a present header wins over the configured value.
    #[serde(default)]
    pub forward: BTreeMap<String, String>,
    /// Timeouts and retries.
    #[serde(default)]
    pub http: HttpConfig,
    /// Upstream page size (defaults to the API's maximum; Pennylane: 25).
    #[serde(default)]
    pub page_size: Option<usize>,
    /// First date window, in seconds, for sources walked by date (Trackstar,
    /// BigLedger).
    #[serde(default)]
    pub initial_window_secs: Option<u64>,
}

fn redacted<S: serde::Serializer>(fields: &BTreeMap<String, SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(fields.keys().map(|k| (k, "[redacted]")))
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// TCP connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Whole-request timeout per attempt, milliseconds; must be shorter than
    /// `server.request_timeout_ms`, which also cuts it when less is left.
    pub request_timeout_ms: u64,
    /// Extra attempts for transient failures (timeouts, 5xx, 429) of
    /// idempotent calls.
    pub max_retries: u32,
    /// Upper bound of the first retry's random wait (full jitter),
    /// milliseconds; it doubles with every further retry.
    pub backoff_base_ms: u64,
    /// Largest backoff bound, milliseconds.
    pub backoff_max_ms: u64,
    /// Longest wait for a rate limit (the upstream's `Retry-After` or the
    /// gateway's own quota) worth it inside one request, milliseconds; a
    /// longer one fails at once with `UPSTREAM_RATE_LIMITED`.
    pub max_retry_wait_ms: u64,
    /// Retries may add at most this percentage to the source's calls.
    pub retry_budget_percent: u32,
    /// Retries allowed on top of the percentage (for rarely called sources).
    pub retry_budget_reserve: u32,
    /// The circuit breaker, per credential.
    pub breaker: BreakerConfig,
    /// Outgoing rate limit per credential; unset: the connector's documented
    /// quota (Trackstar: 10 requests a second).
    pub rate_limit: Option<RateLimitConfig>,
    /// Largest upstream response body accepted, bytes.
    pub max_body_bytes: usize,
}

/// When a source's circuit opens and closes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failed attempts (timeouts, 5xx, unreadable answers; not
    /// 401/404/422) that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit fails fast before one trial call, milliseconds.
    pub cool_down_ms: u64,
}

/// An outgoing request quota.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per `per_ms`.
    pub requests: u32,
    /// The sliding window, milliseconds.
    pub per_ms: u64,
    /// Requests allowed in flight at once; unset: no cap.
    #[serde(default)]
    pub concurrency: Option<u32>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let policy = HttpPolicy::default();
        let millis = |d: Duration| d.as_millis() as u64;
        Self {
            connect_timeout_ms: millis(policy.connect_timeout),
            request_timeout_ms: millis(policy.request_timeout),
            max_retries: policy.max_retries,
            backoff_base_ms: millis(policy.backoff.base),
            backoff_max_ms: millis(policy.backoff.max),
            max_retry_wait_ms: millis(policy.max_retry_wait),
            retry_budget_percent: policy.retry_budget_percent,
            retry_budget_reserve: policy.retry_budget_reserve,
            breaker: BreakerConfig::default(),
            rate_limit: None,
            max_body_bytes: policy.max_body_bytes,
        }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        let breaker = HttpPolicy::default().breaker;
        Self { failure_threshold: breaker.failure_threshold, cool_down_ms: breaker.cool_down.as_millis() as u64 }
    }
}

impl HttpConfig {
    pub fn policy(&self) -> HttpPolicy {
        HttpPolicy {
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_retries: self.max_retries,
            backoff: Backoff {
                base: Duration::from_millis(self.backoff_base_ms),
                max: Duration::from_millis(self.backoff_max_ms),
            },
            max_retry_wait: Duration::from_millis(self.max_retry_wait_ms),
            retry_budget_percent: self.retry_budget_percent,
            retry_budget_reserve: self.retry_budget_reserve,
            breaker: BreakerPolicy {
                failure_threshold: self.breaker.failure_threshold,
                cool_down: Duration::from_millis(self.breaker.cool_down_ms),
            },
            rate_limit: self.rate_limit.as_ref().map(|limit| RateLimit {
                requests: limit.requests,
                per: Duration::from_millis(limit.per_ms),
                concurrency: limit.concurrency,
            }),
            max_body_bytes: self.max_body_bytes,
        }
    }

    /// Every numeric setting, keyed relative to the source, with its range.
    fn bounds(&self, deadline_ms: u64) -> Vec<Bound> {
        let mut bounds = vec![
            Bound::new("http.connect_timeout_ms", self.connect_timeout_ms, 1..=MAX_WAIT_MS),
            Bound::new("http.request_timeout_ms", self.request_timeout_ms, 1..=deadline_ms.saturating_sub(1))
                .because("shorter than server.request_timeout_ms"),
            Bound::new("http.max_retries", self.max_retries.into(), 0..=10),
            Bound::new("http.backoff_base_ms", self.backoff_base_ms, 0..=MAX_WAIT_MS),
            Bound::new("http.backoff_max_ms", self.backoff_max_ms, self.backoff_base_ms..=MAX_WAIT_MS)
                .because("at least http.backoff_base_ms"),
            Bound::new("http.max_retry_wait_ms", self.max_retry_wait_ms, 0..=MAX_WAIT_MS),
            Bound::new("http.retry_budget_percent", self.retry_budget_percent.into(), 0..=100),
            Bound::new("http.retry_budget_reserve", self.retry_budget_reserve.into(), 0..=10_000),
            Bound::new("http.breaker.failure_threshold", self.breaker.failure_threshold.into(), 1..=10_000),
            Bound::new("http.breaker.cool_down_ms", self.breaker.cool_down_ms, 1..=MAX_PERIOD_MS),
            Bound::new("http.max_body_bytes", self.max_body_bytes as u64, 1..=MAX_UPSTREAM_BODY_BYTES),
        ];
        if let Some(limit) = &self.rate_limit {
            bounds.push(Bound::new("http.rate_limit.requests", limit.requests.into(), 1..=100_000));
            bounds.push(Bound::new("http.rate_limit.per_ms", limit.per_ms, 1..=MAX_PERIOD_MS));
            if let Some(concurrency) = limit.concurrency {
                bounds.push(Bound::new("http.rate_limit.concurrency", concurrency.into(), 1..=10_000));
            }
        }
        bounds
    }
}

impl SourceConfig {
    /// The first date window as configured; `validate` keeps it representable.
    pub fn initial_window(&self) -> Option<chrono::Duration> {
        self.initial_window_secs.and_then(|secs| chrono::Duration::try_seconds(i64::try_from(secs).ok()?))
    }

    /// What is wrong with this source, if anything; `deadline_ms` is the
    /// server's request deadline, which every attempt must fit in.
    fn invalid(&self, deadline_ms: u64) -> Option<String> {
        let rules = crate::sources::registry::rules(self.kind);
        if !matches!(self.base_url.scheme(), "http" | "https") {
            return Some("base_url must be http or https".into());
        }
        if !self.base_url.username().is_empty() || self.base_url.password().is_some() {
            return Some("base_url must not carry credentials: put them in credentials".into());
        }
        let known = |field: &String| rules.credential_fields.contains(&field.as_str());
        let keys =
            self.credentials.keys().map(|k| ("credentials", k)).chain(self.forward.keys().map(|k| ("forward", k)));
        for (table, field) in keys {
            if !known(field) {
                let valid = rules.credential_fields.join(", ");
                return Some(format!("{table}.{field} is not a credential of this kind of source (valid: {valid})"));
            }
        }
        for field in rules.credential_fields {
            if !self.credentials.contains_key(*field) && !self.forward.contains_key(*field) {
                return Some(format!("credentials.{field} or forward.{field} is required"));
            }
        }
        for (field, header) in &self.forward {
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Some(format!("forward.{field}: {header:?} is not a header name"));
            }
        }
        if self.initial_window_secs.is_some() && !rules.date_windows {
            return Some(
                "initial_window_secs only applies to sources read in date windows (trackstar, bigledger)".into(),
            );
        }
        let mut bounds = self.http.bounds(deadline_ms);
        if let Some(size) = self.page_size {
            bounds.push(Bound::new("page_size", size as u64, 1..=rules.max_page_size as u64));
        }
        if let Some(secs) = self.initial_window_secs {
            bounds.push(Bound::new("initial_window_secs", secs, 1..=MAX_WINDOW_SECS));
        }
        first_violation(bounds).map(|(key, message)| format!("{key} {message}"))
    }
}

impl Config {
    /// Defaults, then `file` (if any), then the environment, validated.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let config = Self::layered(file)?;
        config.validate()?;
        Ok(config)
    }

    /// The demo's configuration: every setting from `file` and the
    /// environment, the sources from the mock upstreams. Sources configured
    /// there too are an error: which ones to serve would be a guess.
    pub fn load_demo(file: Option<&Path>, mock_sources: BTreeMap<String, SourceConfig>) -> Result<Self, ConfigError> {
        Self::layered(file)?.with_demo_sources(mock_sources)
    }

    fn with_demo_sources(mut self, mock_sources: BTreeMap<String, SourceConfig>) -> Result<Self, ConfigError> {
        if !self.sources.is_empty() {
            let names = self.sources.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(ConfigError::DemoWithSources { names });
        }
        self.sources = mock_sources;
        self.validate()?;
        Ok(self)
    }

    /// Whether any `LEDGER_GATEWAY__…` variable is set: configuration, even
    /// without a file.
    pub fn in_environment() -> bool {
        std::env::vars_os().any(|(name, _)| name.to_str().is_some_and(|name| name.starts_with(ENV_PREFIX)))
    }

    fn layered(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Load(format!("{} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment.merge(Env::prefixed(ENV_PREFIX).split("__")).extract().map_err(|e| ConfigError::Load(e.to_string()))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate()?;
        self.server.validate()?;
        if self.sources.is_empty() {
            return Err(ConfigError::NoSources);
        }
        for (name, source) in &self.sources {
            let fail = |message: String| ConfigError::Source { source_name: name.clone(), message };
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
                return Err(fail("name must be non-empty with no ':' or whitespace".into()));
            }
            if let Some(message) = source.invalid(self.server.request_timeout_ms) {
                return Err(fail(message));
            }
        }
        self.validate_cache()
    }

    fn validate_cache(&self) -> Result<(), ConfigError> {
        let cache = &self.cache;
        let ttl = |key, secs| Bound::new(key, secs, 0..=MAX_TTL_SECS);
        let bounds = [
            Bound::new("cache.max_bytes", cache.max_bytes, 1..=u64::MAX),
            ttl("cache.ledger_ttl_secs", cache.ledger_ttl_secs),
            ttl("cache.item_ttl_secs", cache.item_ttl_secs),
            ttl("cache.location_ttl_secs", cache.location_ttl_secs),
            ttl("cache.stale_if_error_secs", cache.stale_if_error_secs),
        ];
        if let Some((key, message)) = first_violation(bounds) {
            return Err(ConfigError::Invalid { key, message });
        }
        for (name, o) in &cache.sources {
            let invalid = |message| Err(ConfigError::Invalid { key: "cache.sources", message });
            if !self.sources.contains_key(name) {
                return invalid(format!("{name:?} is not a configured source"));
            }
            let overrides = [
                ("ledger_ttl_secs", o.ledger_ttl_secs),
                ("item_ttl_secs", o.item_ttl_secs),
                ("location_ttl_secs", o.location_ttl_secs),
                ("stale_if_error_secs", o.stale_if_error_secs),
            ];
            let bounds = overrides.into_iter().filter_map(|(key, secs)| Some(ttl(key, secs?)));
            if let Some((key, message)) = first_violation(bounds) {
                return invalid(format!("{name}.{key} {message}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid source, for tests about other sections.
    const WMS: &str = r#"
[sources.wms]
kind = "trackstar"
base_url = "https://x.example"
credentials = { api_key = "k", access_token = "t" }"#;

    fn layered(toml: &str) -> Result<Config, ConfigError> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))
    }

    fn parse(toml: &str) -> Result<Config, ConfigError> {
        let config = layered(toml)?;
        config.validate()?;
        Ok(config)
    }

    /// `toml` (sections other than sources) with the source `WMS` added.
    fn parse_with_source(toml: &str) -> Result<Config, ConfigError> {
        parse(&format!("{toml}\n{WMS}"))
    }

    fn error(toml: &str) -> String {
        parse(toml).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_trackstar_source_loads() {
        let config = parse(
            r#"[sources.wms]
kind = "trackstar"
base_url = "https://production.trackstarhq.com"
credentials = { api_key = "k", access_token = "t" }"#,
        )
        .unwrap();
        assert_eq!(config.sources["wms"].kind, SourceKind::Trackstar);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = parse_with_source("[server]\nlisten = \"127.0.0.1:1\"\ncolour = true").unwrap_err();
        assert!(error.to_string().contains("colour"), "{error}");
    }

    #[test]
    fn a_missing_credential_names_the_key() {
        let error = parse(
            r#"[sources.wms]
kind = "trackstar"
base_url = "https://x.example"
credentials = { api_key = "k" }"#,
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "sources.wms: credentials.access_token or forward.access_token is required");
    }

    #[test]
    fn cache_ttls_default_and_override_per_source() {
        let config = parse(
            r#"[cache]
item_ttl_secs = 60
[cache.sources.wms]
ledger_ttl_secs = 0
[sources.wms]
kind = "trackstar"
base_url = "https://x.example"
credentials = { api_key = "k", access_token = "t" }"#,
        )
        .unwrap();
        assert_eq!(config.cache.item_ttl_secs, 60);
        assert_eq!(config.cache.location_ttl_secs, CacheConfig::default().location_ttl_secs);
        assert_eq!(config.cache.sources["wms"].ledger_ttl_secs, Some(0));
    }

    #[test]
    fn cache_overrides_for_unknown_sources_name_the_key() {
        let error = parse_with_source("[cache.sources.nope]\nitem_ttl_secs = 1").unwrap_err();
        assert_eq!(error.to_string(), "cache.sources: \"nope\" is not a configured source");
    }

    #[test]
    fn resilience_settings_load_into_the_policy() {
        let config = parse(
            r#"[server]
request_timeout_ms = 5000
[sources.wms]
kind = "trackstar"
base_url = "https://x.example"
credentials = { api_key = "k", access_token = "t" }
[sources.wms.http]
request_timeout_ms = 4000
max_retries = 1
retry_budget_percent = 5
breaker = { failure_threshold = 2 }
rate_limit = { requests = 6000, per_ms = 300000, concurrency = 5 }"#,
        )
        .unwrap();
        let policy = config.sources["wms"].http.policy();
        assert_eq!(config.server.request_timeout(), Duration::from_secs(5));
        assert_eq!(policy.request_timeout, Duration::from_secs(4));
        assert_eq!((policy.max_retries, policy.retry_budget_percent), (1, 5));
        assert_eq!(policy.breaker.failure_threshold, 2);
        assert_eq!(policy.breaker.cool_down, Duration::from_secs(30), "unset keys keep their defaults");
        let limit = RateLimit { requests: 6000, per: Duration::from_secs(300), concurrency: Some(5) };
        assert_eq!(policy.rate_limit, Some(limit));
        // A configured limit wins over the connector's declared one.
        assert_eq!(policy.with_default_rate_limit(RateLimit::new(1, Duration::from_secs(1))).rate_limit, Some(limit));
    }

    #[test]
    fn invalid_resilience_settings_name_their_key() {
        let source = |http: &str| {
            format!(
                "[sources.wms]\nkind = \"trackstar\"\nbase_url = \"https://x.example\"\n\
                 credentials = {{ api_key = \"k\", access_token = \"t\" }}\nhttp = {{ {http} }}"
            )
        };
        let cases = [
            (
                "request_timeout_ms = 20000",
                "http.request_timeout_ms must be between 1 and 14999 (shorter than server.request_timeout_ms)",
            ),
            ("connect_timeout_ms = 0", "http.connect_timeout_ms must be between 1 and 600000"),
            ("max_retries = 1000", "http.max_retries must be between 0 and 10"),
            ("breaker = { failure_threshold = 0 }", "http.breaker.failure_threshold must be between 1 and 10000"),
            ("breaker = { cool_down_ms = 0 }", "http.breaker.cool_down_ms must be between 1 and 86400000"),
            // Past `Instant`'s range: opening the circuit would panic.
            (
                "breaker = { cool_down_ms = 9223372036854775807 }",
                "http.breaker.cool_down_ms must be between 1 and 86400000",
            ),
            ("rate_limit = { requests = 0, per_ms = 1000 }", "http.rate_limit.requests must be between 1 and 100000"),
            ("rate_limit = { requests = 5, per_ms = 0 }", "http.rate_limit.per_ms must be between 1 and 86400000"),
            (
                "rate_limit = { requests = 5, per_ms = 1000, concurrency = 0 }",
                "http.rate_limit.concurrency must be between 1 and 10000",
            ),
            (
                "backoff_base_ms = 500, backoff_max_ms = 100",
                "http.backoff_max_ms must be between 500 and 600000 (at least http.backoff_base_ms)",
            ),
            ("max_retry_wait_ms = 86400000", "http.max_retry_wait_ms must be between 0 and 600000"),
            ("retry_budget_percent = 101", "http.retry_budget_percent must be between 0 and 100"),
            ("retry_budget_reserve = 4000000000", "http.retry_budget_reserve must be between 0 and 10000"),
            ("max_body_bytes = 0", "http.max_body_bytes must be between 1 and 1073741824"),
        ];
        for (http, expected) in cases {
            assert_eq!(error(&source(http)), format!("sources.wms: {expected}"), "{http}");
        }
        for timeout in [0, 99, 600_001] {
            let toml = format!("[server]\nrequest_timeout_ms = {timeout}");
            assert_eq!(error(&toml), "server.request_timeout_ms: must be between 100 and 600000", "{timeout}");
        }
    }

    #[test]
    fn connection_settings_load_and_are_range_checked() {
        let config = parse_with_source(
            "[server]\nmax_connections = 10\nheader_read_timeout_ms = 2000\nkeep_alive_timeout_ms = 2000",
        )
        .unwrap();
        assert_eq!((config.server.max_connections, config.server.keep_alive_timeout()), (10, Duration::from_secs(2)));
        let cases = [
            ("max_connections = 0", "server.max_connections: must be between 1 and 1000000"),
            ("header_read_timeout_ms = 0", "server.header_read_timeout_ms: must be between 1 and 3600000"),
            (
                "keep_alive_timeout_ms = 20000",
                "server.keep_alive_timeout_ms: must be between 1 and 10000 (at most server.header_read_timeout_ms)",
            ),
            ("body_read_timeout_ms = 0", "server.body_read_timeout_ms: must be between 1 and 3600000"),
            ("max_uri_bytes = 70000", "server.max_uri_bytes: must be between 256 and 65534"),
            ("max_header_bytes = 10", "server.max_header_bytes: must be between 1024 and 1048576"),
            ("max_headers = 0", "server.max_headers: must be between 8 and 10000"),
        ];
        for (setting, expected) in cases {
            assert_eq!(parse(&format!("[server]\n{setting}")).unwrap_err().to_string(), expected, "{setting}");
        }
    }

    #[test]
    fn persisted_query_settings_load_and_are_range_checked() {
        let config = parse_with_source(
            "[server.persisted_queries]\nmax_entries = 5\nmax_bytes = 2048\nsafelist = \"manifest.json\"",
        )
        .unwrap();
        let persisted = &config.server.persisted_queries;
        assert_eq!((persisted.max_entries, persisted.max_bytes), (5, 2048));
        assert_eq!(persisted.safelist.as_deref(), Some(Path::new("manifest.json")));
        assert_eq!(parse_with_source("").unwrap().server.persisted_queries.safelist, None, "off by default");
        let cases = [
            ("max_entries = 0", "server.persisted_queries.max_entries: must be between 1 and 10000000"),
            ("max_bytes = 1023", "server.persisted_queries.max_bytes: must be between 1024 and 1073741824"),
            ("max_bytes = 1073741825", "server.persisted_queries.max_bytes: must be between 1024 and 1073741824"),
        ];
        for (setting, expected) in cases {
            let toml = format!("[server.persisted_queries]\n{setting}");
            assert_eq!(parse_with_source(&toml).unwrap_err().to_string(), expected, "{setting}");
        }
    }

    #[test]
    fn secrets_never_serialize() {
        let config = parse(
            r#"[sources.wms]
kind = "trackstar"
base_url = "https://x.example"
credentials = { api_key = "hunter2", access_token = "t" }"#,
        )
        .unwrap();
        let shown = format!("{config:?} {}", serde_json::to_string(&config).unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn limits_outside_their_range_name_the_key() {
        let cases = [
            ("max_depth = 0", "limits.max_depth: must be between 1 and 32"),
            ("max_input_depth = 200", "limits.max_input_depth: must be between 1 and 64"),
            ("max_body_bytes = 10", "limits.max_body_bytes: must be between 1024 and 67108864"),
            ("max_body_bytes = 9223372036854775807", "limits.max_body_bytes: must be between 1024 and 67108864"),
            ("max_batch = 0", "limits.max_batch: must be at least 1"),
            ("max_page_size = 0", "limits.max_page_size: must be between 1 and 10000"),
            ("max_page_size = 1000000", "limits.max_page_size: must be between 1 and 10000"),
            ("default_page_size = 0", "limits.default_page_size: must be between 1 and 500"),
            ("default_page_size = 501", "limits.default_page_size: must be between 1 and 500"),
            ("max_fields = 0", "limits.max_fields: must be at least 1"),
            ("max_upstream_calls = 0", "limits.max_upstream_calls: must be between 1 and 100000"),
            ("max_upstream_calls = 100001", "limits.max_upstream_calls: must be between 1 and 100000"),
        ];
        for (limit, expected) in cases {
            assert_eq!(parse_with_source(&format!("[limits]\n{limit}")).unwrap_err().to_string(), expected);
        }
        let config =
            parse_with_source("[limits]\nmax_tokens = 500\nmax_aliases = 0\n[server]\nfederation_sdl = true").unwrap();
        assert_eq!((config.limits.max_tokens, config.limits.max_aliases), (500, 0));
        assert!(config.server.federation_sdl);
    }

    #[test]
    fn a_configuration_without_sources_names_the_missing_section() {
        let error = error("[server]\nlisten = \"127.0.0.1:1\"");
        assert!(error.starts_with("no sources configured: add at least one [sources.<name>] table"), "{error}");
        assert!(error.contains("--demo"), "{error}");
    }

    #[test]
    fn the_demo_takes_every_setting_but_the_sources() {
        let mock = parse(WMS).unwrap().sources;
        let config =
            layered("[server]\ngraphiql = false\n[limits]\nmax_batch = 3\n[cache.sources.wms]\nitem_ttl_secs = 1")
                .unwrap()
                .with_demo_sources(mock.clone())
                .unwrap();
        assert!(!config.server.graphiql);
        assert_eq!(config.limits.max_batch, 3);
        assert_eq!(config.cache.sources["wms"].item_ttl_secs, Some(1), "overrides may name the mock's sources");
        assert_eq!(config.sources.keys().collect::<Vec<_>>(), ["wms"]);
        let error = layered(WMS).unwrap().with_demo_sources(mock.clone()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--demo serves the mock upstreams, but the configuration also has [sources] (wms)"),
            "{error}"
        );
        let error = layered("[limits]\nmax_batch = 0").unwrap().with_demo_sources(mock).unwrap_err();
        assert_eq!(error.to_string(), "limits.max_batch: must be at least 1", "the demo validates its settings");
    }

    #[test]
    fn unknown_credential_and_forward_keys_list_the_valid_ones() {
        let source = |extra: &str| {
            format!(
                "[sources.wms]\nkind = \"trackstar\"\nbase_url = \"https://x.example\"\n\
                 credentials = {{ api_key = \"k\", access_token = \"t\"{extra} }}"
            )
        };
        assert_eq!(
            error(&source(", client_secret = \"s\"")),
            "sources.wms: credentials.client_secret is not a credential of this kind of source (valid: api_key, access_token)"
        );
        assert_eq!(
            error(&format!("{WMS}\nforward = {{ tokn = \"x-token\" }}")),
            "sources.wms: forward.tokn is not a credential of this kind of source (valid: api_key, access_token)"
        );
        let books = "[sources.books]\nkind = \"pennylane\"\nbase_url = \"https://x.example\"\ncredentials = { token = \"t\", api_key = \"k\" }";
        assert_eq!(
            error(books),
            "sources.books: credentials.api_key is not a credential of this kind of source (valid: token)"
        );
    }

    #[test]
    fn connector_settings_outside_their_range_name_the_key() {
        let source = |kind: &str, extra: &str| {
            let credentials = match kind {
                "trackstar" => "api_key = \"k\", access_token = \"t\"",
                "bigledger" => "api_key = \"k\", company_id = \"c\"",
                _ => "token = \"t\"",
            };
            format!("[sources.s]\nkind = \"{kind}\"\nbase_url = \"https://x.example\"\ncredentials = {{ {credentials} }}\n{extra}")
        };
        let cases = [
            ("trackstar", "page_size = 0", "page_size must be between 1 and 1000"),
            ("trackstar", "page_size = 1001", "page_size must be between 1 and 1000"),
            ("bigledger", "page_size = 201", "page_size must be between 1 and 200"),
            ("pennylane", "page_size = 101", "page_size must be between 1 and 100"),
            ("business-central", "page_size = 20001", "page_size must be between 1 and 20000"),
            ("trackstar", "initial_window_secs = 0", "initial_window_secs must be between 1 and 3153600000"),
            // Beyond chrono's range: the unchecked conversion used to panic.
            (
                "trackstar",
                "initial_window_secs = 9223372036854775807",
                "initial_window_secs must be between 1 and 3153600000",
            ),
            ("bigledger", "initial_window_secs = 3153600001", "initial_window_secs must be between 1 and 3153600000"),
            (
                "pennylane",
                "initial_window_secs = 60",
                "initial_window_secs only applies to sources read in date windows (trackstar, bigledger)",
            ),
        ];
        for (kind, extra, expected) in cases {
            assert_eq!(error(&source(kind, extra)), format!("sources.s: {expected}"), "{kind} {extra}");
        }
        let config = parse(&source("trackstar", "page_size = 1000\ninitial_window_secs = 3153600000")).unwrap();
        assert_eq!(config.sources["s"].initial_window(), Some(chrono::Duration::days(36_500)));
    }

    #[test]
    fn negative_numbers_are_refused_naming_the_key() {
        let server = parse_with_source("[server]\nrequest_timeout_ms = -1").unwrap_err().to_string();
        assert!(server.contains("request_timeout_ms"), "{server}");
        let http = error(&format!("{WMS}\nhttp = {{ max_retries = -2 }}"));
        assert!(http.contains("max_retries"), "{http}");
    }

    #[test]
    fn cache_settings_outside_their_range_name_the_key() {
        let cases = [
            ("[cache]\nmax_bytes = 0", "cache.max_bytes: must be at least 1"),
            // moka refuses a time-to-live of centuries with a panic.
            ("[cache]\nitem_ttl_secs = 9223372036854775807", "cache.item_ttl_secs: must be between 0 and 31536000"),
            ("[cache]\nstale_if_error_secs = 31536001", "cache.stale_if_error_secs: must be between 0 and 31536000"),
            (
                "[cache.sources.wms]\nlocation_ttl_secs = 31536001",
                "cache.sources: wms.location_ttl_secs must be between 0 and 31536000",
            ),
        ];
        for (cache, expected) in cases {
            assert_eq!(parse_with_source(cache).unwrap_err().to_string(), expected, "{cache}");
        }
        let config = parse_with_source("[cache]\nitem_ttl_secs = 31536000\nledger_ttl_secs = 0").unwrap();
        assert_eq!(config.cache.item_ttl_secs, 31_536_000);
    }

    #[test]
    fn a_base_url_carrying_credentials_is_refused() {
        let toml = WMS.replace("https://x.example", "https://user:hunter2@x.example");
        assert_eq!(error(&toml), "sources.wms: base_url must not carry credentials: put them in credentials");
    }
}

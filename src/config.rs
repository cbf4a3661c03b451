//! Configuration: a TOML file layered under `LEDGER_GATEWAY__SECTION__KEY`
//! environment variables. Every field has a default, unknown keys are
//! errors, and `validate` names the key that is wrong.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

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

    /// Each connection setting with the range it must lie in.
    fn ranges(&self) -> [(&'static str, u64, u64, u64); 8] {
        const HOUR_MS: u64 = 3_600_000;
        [
            ("server.request_timeout_ms", self.request_timeout_ms, 1, u64::MAX),
            ("server.max_connections", self.max_connections as u64, 1, 1_000_000),
            ("server.header_read_timeout_ms", self.header_read_timeout_ms, 1, HOUR_MS),
            ("server.keep_alive_timeout_ms", self.keep_alive_timeout_ms, 1, self.header_read_timeout_ms),
            ("server.body_read_timeout_ms", self.body_read_timeout_ms, 1, HOUR_MS),
            ("server.max_uri_bytes", self.max_uri_bytes as u64, 256, HYPER_MAX_URI_BYTES as u64),
            ("server.max_header_bytes", self.max_header_bytes as u64, 1024, 1024 * 1024),
            ("server.max_headers", self.max_headers as u64, 8, 10_000),
        ]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value, low, high) in self.ranges() {
            if value < low || value > high {
                let message = match (key, high) {
                    ("server.keep_alive_timeout_ms", _) => {
                        format!("must be between {low} and server.header_read_timeout_ms ({high})")
                    }
                    (_, u64::MAX) => "must be positive".to_owned(),
                    _ => format!("must be between {low} and {high}"),
                };
                return Err(ConfigError::Invalid { key, message });
            }
        }
        Ok(())
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
        }
    }
}

impl LimitsConfig {
    /// Each limit with the range it must lie in.
    fn ranges(&self) -> [(&'static str, usize, usize, usize); 10] {
        use crate::schema::limits::{MAX_NESTING, MAX_VALUE_NESTING};
        [
            ("limits.max_depth", self.max_depth, 1, MAX_NESTING),
            ("limits.max_complexity", self.max_complexity, 1, usize::MAX),
            ("limits.max_aliases", self.max_aliases, 0, usize::MAX),
            ("limits.max_root_fields", self.max_root_fields, 1, usize::MAX),
            ("limits.max_directives", self.max_directives, 0, usize::MAX),
            ("limits.max_tokens", self.max_tokens, 1, usize::MAX),
            ("limits.max_input_depth", self.max_input_depth, 1, MAX_VALUE_NESTING),
            ("limits.max_body_bytes", self.max_body_bytes, 1024, usize::MAX),
            ("limits.max_batch", self.max_batch, 1, usize::MAX),
            ("limits.max_representations", self.max_representations, 0, usize::MAX),
        ]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_page_size == 0 || self.default_page_size == 0 || self.default_page_size > self.max_page_size {
            return Err(ConfigError::Invalid {
                key: "limits.default_page_size",
                message: "must be between 1 and limits.max_page_size".into(),
            });
        }
        for (key, value, low, high) in self.ranges() {
            if value < low || value > high {
                let message = if high == usize::MAX {
                    format!("must be at least {low}")
                } else {
                    format!("must be between {low} and {high}")
                };
                return Err(ConfigError::Invalid { key, message });
            }
        }
        Ok(())
    }
}

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

    /// The first invalid key (relative to the source), and why.
    fn invalid(&self, deadline_ms: u64) -> Option<(&'static str, String)> {
        let positive = |value: u64, key| (value == 0).then(|| (key, "must be positive".to_owned()));
        positive(self.connect_timeout_ms, "http.connect_timeout_ms")
            .or_else(|| positive(self.request_timeout_ms, "http.request_timeout_ms"))
            .or_else(|| {
                (self.request_timeout_ms >= deadline_ms).then(|| {
                    (
                        "http.request_timeout_ms",
                        format!("must be shorter than server.request_timeout_ms ({deadline_ms})"),
                    )
                })
            })
            .or_else(|| {
                (self.backoff_max_ms < self.backoff_base_ms)
                    .then(|| ("http.backoff_max_ms", "must be at least backoff_base_ms".to_owned()))
            })
            .or_else(|| positive(self.max_body_bytes as u64, "http.max_body_bytes"))
            .or_else(|| {
                (self.breaker.failure_threshold == 0)
                    .then(|| ("http.breaker.failure_threshold", "must be at least 1".to_owned()))
            })
            .or_else(|| positive(self.breaker.cool_down_ms, "http.breaker.cool_down_ms"))
            .or_else(|| {
                let limit = self.rate_limit.as_ref()?;
                if limit.requests == 0 || limit.per_ms == 0 {
                    Some(("http.rate_limit", "requests and per_ms must be positive".to_owned()))
                } else {
                    (limit.concurrency == Some(0))
                        .then(|| ("http.rate_limit.concurrency", "must be at least 1".to_owned()))
                }
            })
    }
}

impl Config {
    /// Defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Load(format!("{} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        let config: Config = figment
            .merge(Env::prefixed("LEDGER_GATEWAY__").split("__"))
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate()?;
        self.server.validate()?;
        for (name, source) in &self.sources {
            let fail = |message: String| ConfigError::Source { source_name: name.clone(), message };
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
                return Err(fail("name must be non-empty with no ':' or whitespace".into()));
            }
            if !matches!(source.base_url.scheme(), "http" | "https") {
                return Err(fail("base_url must be http or https".into()));
            }
            for field in crate::sources::registry::credential_fields(source.kind) {
                if !source.credentials.contains_key(*field) && !source.forward.contains_key(*field) {
                    return Err(fail(format!("credentials.{field} or forward.{field} is required")));
                }
            }
            for (field, header) in &source.forward {
                if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return Err(fail(format!("forward.{field}: {header:?} is not a header name")));
                }
            }
            if let Some((key, message)) = source.http.invalid(self.server.request_timeout_ms) {
                return Err(fail(format!("{key} {message}")));
            }
        }
        self.validate_cache()
    }

    fn validate_cache(&self) -> Result<(), ConfigError> {
        if self.cache.max_bytes == 0 {
            return Err(ConfigError::Invalid { key: "cache.max_bytes", message: "must be positive".into() });
        }
        if let Some(unknown) = self.cache.sources.keys().find(|name| !self.sources.contains_key(*name)) {
            return Err(ConfigError::Invalid {
                key: "cache.sources",
                message: format!("{unknown:?} is not a configured source"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        config.validate()?;
        Ok(config)
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
        let error = parse("[server]\nlisten = \"127.0.0.1:1\"\ncolour = true").unwrap_err();
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
        let error = parse("[cache.sources.nope]\nitem_ttl_secs = 1").unwrap_err();
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
                "sources.wms: http.request_timeout_ms must be shorter than server.request_timeout_ms (15000)",
            ),
            ("breaker = { failure_threshold = 0 }", "sources.wms: http.breaker.failure_threshold must be at least 1"),
            ("breaker = { cool_down_ms = 0 }", "sources.wms: http.breaker.cool_down_ms must be positive"),
            (
                "rate_limit = { requests = 0, per_ms = 1000 }",
                "sources.wms: http.rate_limit requests and per_ms must be positive",
            ),
            (
                "rate_limit = { requests = 5, per_ms = 1000, concurrency = 0 }",
                "sources.wms: http.rate_limit.concurrency must be at least 1",
            ),
            (
                "backoff_base_ms = 500, backoff_max_ms = 100",
                "sources.wms: http.backoff_max_ms must be at least backoff_base_ms",
            ),
            ("max_body_bytes = 0", "sources.wms: http.max_body_bytes must be positive"),
        ];
        for (http, expected) in cases {
            assert_eq!(parse(&source(http)).unwrap_err().to_string(), expected, "{http}");
        }
        let error = parse("[server]\nrequest_timeout_ms = 0").unwrap_err();
        assert_eq!(error.to_string(), "server.request_timeout_ms: must be positive");
    }

    #[test]
    fn connection_settings_load_and_are_range_checked() {
        let config =
            parse("[server]\nmax_connections = 10\nheader_read_timeout_ms = 2000\nkeep_alive_timeout_ms = 2000")
                .unwrap();
        assert_eq!((config.server.max_connections, config.server.keep_alive_timeout()), (10, Duration::from_secs(2)));
        let cases = [
            ("max_connections = 0", "server.max_connections: must be between 1 and 1000000"),
            ("header_read_timeout_ms = 0", "server.header_read_timeout_ms: must be between 1 and 3600000"),
            (
                "keep_alive_timeout_ms = 20000",
                "server.keep_alive_timeout_ms: must be between 1 and server.header_read_timeout_ms (10000)",
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
        let error = parse("[limits]\nmax_depth = 0").unwrap_err();
        assert_eq!(error.to_string(), "limits.max_depth: must be between 1 and 32");
        let error = parse("[limits]\nmax_input_depth = 200").unwrap_err();
        assert_eq!(error.to_string(), "limits.max_input_depth: must be between 1 and 64");
        let error = parse("[limits]\nmax_body_bytes = 10").unwrap_err();
        assert_eq!(error.to_string(), "limits.max_body_bytes: must be at least 1024");
        let error = parse("[limits]\nmax_batch = 0").unwrap_err();
        assert_eq!(error.to_string(), "limits.max_batch: must be at least 1");
        let config = parse("[limits]\nmax_tokens = 500\nmax_aliases = 0\n[server]\nfederation_sdl = true").unwrap();
        assert_eq!((config.limits.max_tokens, config.limits.max_aliases), (500, 0));
        assert!(config.server.federation_sdl);
    }
}

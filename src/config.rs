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
use secrecy::{ExposeSecret, SecretString};
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
    /// Logs, metrics and traces (OpenTelemetry, off unless `[telemetry.otlp]` is configured).
    pub telemetry: TelemetryConfig,
    /// Where "now" comes from. Not a setting: the system clock, except in
    /// tests, which fix it.
    #[serde(skip)]
    pub clock: Clock,
}

/// Largest `telemetry.max_operation_names`.
const MAX_OPERATION_NAMES: u64 = 10_000;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// How log lines are written to stderr: `text` or `json` (one object a line).
    pub log_format: LogFormat,
    /// Distinct operation names that get their own `operation` label on
    /// `graphql_request_duration_seconds`, first come; later names share
    /// `(other)`, so callers cannot grow the metrics without bound.
    pub max_operation_names: usize,
    /// Export spans over OTLP; unset: no exporter, no trace propagation.
    pub otlp: Option<OtlpConfig>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { log_format: LogFormat::Text, max_operation_names: 100, otlp: None }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
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
    /// Cross-origin calls from browsers; off (no CORS headers, `OPTIONS`
    /// refused) unless configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
    /// On SIGTERM or Ctrl-C, how long requests in flight may still run,
    /// milliseconds; connections still open then are closed.
    pub shutdown_grace_ms: u64,
    /// Bearer token that `POST /admin/reload` requires; unset: the route
    /// does not exist (404). At least 16 characters.
    #[serde(serialize_with = "redacted_secret")]
    pub admin_token: Option<SecretString>,
    /// A file holding `admin_token` instead; read into it at load, so a
    /// loaded configuration never has it (nor shows it).
    #[serde(skip_serializing)]
    pub admin_token_file: Option<PathBuf>,
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

/// Which browser origins may call the gateway, and what they may send and
/// read. Every response header comes from tower-http's CORS layer.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins exactly as browsers send them (`https://app.example.com`,
    /// `http://localhost:3000`). `["*"]` allows any origin, only while no
    /// source forwards a caller credential and without `allow_credentials`.
    pub allow_origins: Vec<String>,
    /// Request headers a page may send besides `content-type`, `accept` and
    /// every source's `forward` headers, which are always allowed.
    pub allow_headers: Vec<String>,
    /// Response headers a page may read beyond the CORS-safelisted ones.
    pub expose_headers: Vec<String>,
    /// How long a browser may reuse a preflight answer, seconds.
    pub max_age_secs: u64,
    /// Let pages send cookies and HTTP authentication
    /// (`Access-Control-Allow-Credentials`); never with `*`.
    pub allow_credentials: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allow_origins: Vec::new(),
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age_secs: 600,
            allow_credentials: false,
        }
    }
}

/// Longest `server.cors.max_age_secs` (a day, Firefox's own cap).
const MAX_CORS_AGE_SECS: u64 = 86_400;

impl CorsConfig {
    /// What is wrong, naming the key; `forwarding` names the sources that
    /// forward caller credentials.
    fn validate(&self, forwarding: &[&str]) -> Result<(), ConfigError> {
        let invalid = |key, message| Err(ConfigError::Invalid { key, message });
        let key = "server.cors.allow_origins";
        if self.allow_origins.is_empty() {
            return invalid(key, "list at least one origin, or remove [server.cors] to turn CORS off".into());
        }
        if self.allow_origins.iter().any(|origin| origin == "*") {
            if self.allow_origins.len() > 1 {
                return invalid(key, "\"*\" allows every origin: it must be the only entry".into());
            }
            if self.allow_credentials {
                return invalid(key, "\"*\" cannot be combined with server.cors.allow_credentials".into());
            }
            if !forwarding.is_empty() {
                let names = forwarding.join(", ");
                return invalid(
                    key,
                    format!(
                        "\"*\" is not allowed while sources forward caller credentials ({names}): list the origins"
                    ),
                );
            }
        } else if let Some(message) = self.allow_origins.iter().find_map(|origin| origin_error(origin)) {
            return invalid(key, message);
        }
        let names =
            [("server.cors.allow_headers", &self.allow_headers), ("server.cors.expose_headers", &self.expose_headers)];
        for (key, names) in names {
            if let Some(name) = names.iter().find(|name| axum::http::HeaderName::from_bytes(name.as_bytes()).is_err()) {
                return invalid(key, format!("{name:?} is not a header name"));
            }
        }
        match Bound::new("server.cors.max_age_secs", self.max_age_secs, 0..=MAX_CORS_AGE_SECS).violation() {
            Some((key, message)) => invalid(key, message),
            None => Ok(()),
        }
    }
}

/// Why `origin` is not one a browser sends in `Origin`, if it is not.
fn origin_error(origin: &str) -> Option<String> {
    let url = Url::parse(origin).ok().filter(|url| {
        matches!(url.scheme(), "http" | "https") && url.username().is_empty() && url.password().is_none()
    });
    match url.map(|url| url.origin().ascii_serialization()) {
        Some(canonical) if canonical == origin => None,
        Some(canonical) => Some(format!("{origin:?} is not an origin as browsers send it: write {canonical:?}")),
        None => Some(format!("{origin:?} is not an origin: write scheme://host[:port], http or https")),
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
            cors: None,
            shutdown_grace_ms: 10_000,
            admin_token: None,
            admin_token_file: None,
        }
    }
}

/// Shortest `server.admin_token`: guessing it must be hopeless.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

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

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// Each server setting with the range it must lie in.
    fn bounds(&self) -> [Bound; 11] {
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
            Bound::new("server.shutdown_grace_ms", self.shutdown_grace_ms, 0..=MAX_WAIT_MS),
        ]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some((key, message)) = first_violation(self.bounds()) {
            return Err(ConfigError::Invalid { key, message });
        }
        let token = self.admin_token.as_ref().map(|token| token.expose_secret());
        if token.is_some_and(|token| token.len() < MIN_ADMIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            let message = format!("must be at least {MIN_ADMIN_TOKEN_LEN} visible ASCII characters, without spaces");
            return Err(ConfigError::Invalid { key: "server.admin_token", message });
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
    /// Upper bound, in bytes, of the whole-response cache: identical
    /// queries (same document, operation, variables and caller credentials)
    /// answered with the stored response, for no longer than the shortest
    /// time-to-live of what it was built from. 0 turns it off; otherwise at
    /// least 4096.
    pub response_max_bytes: u64,
    /// Overrides per source name, e.g. `[cache.sources.trackstar]`.
    pub sources: BTreeMap<String, CacheTtlOverride>,
}

/// Smallest `cache.response_max_bytes` other than 0: a smaller cache would
/// hold hardly any response.
pub const MIN_RESPONSE_CACHE_BYTES: u64 = 4096;

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            ledger_ttl_secs: 5,
            item_ttl_secs: 300,
            location_ttl_secs: 900,
            stale_if_error_secs: 0,
            response_max_bytes: 16 * 1024 * 1024,
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
    /// Seconds after which a ledger date window counts as settled history:
    /// a window ending at least this long before now is kept for
    /// `settled_ttl_secs`, checked by a change probe every
    /// `change_probe_secs`. Set all three or none; only for sources the
    /// gateway has a change probe for (Trackstar).
    pub settled_after_secs: Option<u64>,
    /// Seconds a settled ledger window is kept (unless a probe drops it).
    pub settled_ttl_secs: Option<u64>,
    /// Seconds between change probes, per caller: how stale a settled
    /// window may be at most.
    pub change_probe_secs: Option<u64>,
}

impl CacheTtlOverride {
    /// The settled-history settings, when they are set (validation makes
    /// them all or none).
    pub fn settled(&self) -> Option<SettledConfig> {
        Some(SettledConfig {
            after_secs: self.settled_after_secs?,
            ttl_secs: self.settled_ttl_secs?,
            probe_secs: self.change_probe_secs?,
        })
    }
}

/// One source's settled-history caching, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettledConfig {
    pub after_secs: u64,
    pub ttl_secs: u64,
    pub probe_secs: u64,
}

/// Where and how spans are exported.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP base URL (`http://otel-collector:4318`);
    /// spans are POSTed to `{endpoint}/v1/traces`.
    pub endpoint: Url,
    /// The OTLP transport.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Share of new traces recorded, 0.0 to 1.0; a caller's `traceparent`
    /// decides for the traces it continues.
    #[serde(default = "OtlpConfig::default_sampling_ratio")]
    pub sampling_ratio: f64,
    /// `service.name` of every span.
    #[serde(default = "OtlpConfig::default_service_name")]
    pub service_name: String,
    /// Deadline of one export request, milliseconds.
    #[serde(default = "OtlpConfig::default_timeout_ms")]
    pub timeout_ms: u64,
}

/// OTLP transports. gRPC is not offered: it needs tonic's HTTP/2 stack and
/// an exporter on the async runtime, for what OTLP/HTTP already carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpConfig {
    fn default_sampling_ratio() -> f64 {
        1.0
    }

    fn default_service_name() -> String {
        "ledger-gateway".to_owned()
    }

    fn default_timeout_ms() -> u64 {
        10_000
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Where spans are sent.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.endpoint.as_str().trim_end_matches('/'))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| Err(ConfigError::Invalid { key, message: message.to_owned() });
        if !matches!(self.endpoint.scheme(), "http" | "https") {
            return invalid("telemetry.otlp.endpoint", "must be http or https");
        }
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return invalid("telemetry.otlp.sampling_ratio", "must be between 0.0 and 1.0");
        }
        if self.service_name.trim().is_empty() {
            return invalid("telemetry.otlp.service_name", "must not be empty");
        }
        match first_violation([Bound::new("telemetry.otlp.timeout_ms", self.timeout_ms, 1..=MAX_WAIT_MS)]) {
            Some((key, message)) => Err(ConfigError::Invalid { key, message }),
            None => Ok(()),
        }
    }
}

/// One upstream.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Which API this source speaks.
    pub kind: SourceKind,
    /// API root, e.g. `https://production.trackstarhq.com`.
    pub base_url: Url,
    /// Service-account credential fields (`api_key`, `access_token`, `token`...;
    /// Business Central: `tenant_id`, `client_id`, `client_secret` to sign in).
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
    /// Where client credentials sign in (Business Central: the Entra ID
    /// authority, default `https://login.microsoftonline.com`).
    #[serde(default)]
    pub authority: Option<Url>,
    /// The scope client credentials ask a token for (Business Central:
    /// `https://api.businesscentral.dynamics.com/.default`).
    #[serde(default)]
    pub scope: Option<String>,
}

/// The suffix of a key whose value is the path of a file holding the secret
/// the key without it names (`client_secret_file` for `client_secret`).
const FILE_SUFFIX: &str = "_file";

/// The secret in the file at `path`, as container secrets are mounted: its
/// contents less one trailing newline. The error names the path, never what
/// the file holds.
fn read_secret_file(path: &Path) -> Result<SecretString, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut text = String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8"))?;
    let len = text.strip_suffix("\r\n").or_else(|| text.strip_suffix('\n')).unwrap_or(&text).len();
    // In place: no copy of the secret is left behind unzeroized.
    text.truncate(len);
    if text.trim().is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(SecretString::from(text))
}

/// Puts the secret the file at `path` (if any) holds into `secret`, the
/// setting `key` (whose `_file` key the error is about), which must be unset.
fn resolve_secret_file(key: &str, secret: &mut Option<SecretString>, path: Option<&Path>) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    if secret.is_some() {
        return Err(format!("cannot be combined with {key}: configure one of them"));
    }
    *secret = Some(read_secret_file(path)?);
    Ok(())
}

fn redacted_secret<S: serde::Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some("[redacted]"),
        None => serializer.serialize_none(),
    }
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

    /// Reads every `credentials.X_file` of a credential field `X` into
    /// `credentials.X`. Other `_file` keys stay, for `invalid_credentials`
    /// to name.
    fn resolve_secret_files(&mut self) -> Result<(), String> {
        let rules = crate::sources::registry::rules(self.kind);
        let fields = rules.credential_fields.iter().chain(rules.sign_in_fields);
        for field in fields {
            let Some(path) = self.credentials.remove(&format!("{field}{FILE_SUFFIX}")) else { continue };
            let mut secret = self.credentials.remove(*field);
            let path = Path::new(path.expose_secret());
            resolve_secret_file(&format!("credentials.{field}"), &mut secret, Some(path))
                .map_err(|e| format!("credentials.{field}{FILE_SUFFIX}: {e}"))?;
            self.credentials.extend(secret.map(|secret| (field.to_string(), secret)));
        }
        Ok(())
    }

    /// What is wrong with the credential tables, if anything. A call's own
    /// fields may be forwarded or configured; a kind that signs in may
    /// configure its sign-in fields instead, all of them, and then none of
    /// the call's own.
    fn invalid_credentials(&self, rules: &crate::sources::registry::KindRules) -> Option<String> {
        let own = |field: &String| rules.credential_fields.contains(&field.as_str());
        let sign_in = |field: &String| rules.sign_in_fields.contains(&field.as_str());
        if let Some(field) = self.credentials.keys().find(|f| !own(f) && !sign_in(f)) {
            let valid = rules.credential_fields.iter().chain(rules.sign_in_fields).copied().collect::<Vec<_>>();
            let valid = valid.join(", ");
            return Some(format!("credentials.{field} is not a credential of this kind of source (valid: {valid})"));
        }
        // A caller forwards a token, never an app's secret.
        if let Some(field) = self.forward.keys().find(|f| !own(f)) {
            let valid = rules.credential_fields.join(", ");
            return Some(format!("forward.{field} is not a credential of this kind of source (valid: {valid})"));
        }
        let signs_in = self.credentials.keys().any(sign_in);
        if signs_in {
            if let Some(field) = rules.credential_fields.iter().find(|f| self.credentials.contains_key(**f)) {
                let fields = rules.sign_in_fields.join(", ");
                return Some(format!(
                    "credentials.{field} and client credentials ({fields}) exclude each other: configure one of them"
                ));
            }
            for field in rules.sign_in_fields {
                match self.credentials.get(*field) {
                    None => return Some(format!("credentials.{field} is required to sign in with client credentials")),
                    Some(value) if value.expose_secret().trim().is_empty() => {
                        return Some(format!("credentials.{field} must not be blank"))
                    }
                    Some(_) => {}
                }
            }
            return self.invalid_sign_in_target();
        }
        if self.authority.is_some() || self.scope.is_some() {
            return Some("authority and scope only apply to sources signing in with client credentials".into());
        }
        for field in rules.credential_fields {
            if !self.credentials.contains_key(*field) && !self.forward.contains_key(*field) {
                let alternative = match rules.sign_in_fields {
                    [] => String::new(),
                    fields => format!(" (or client credentials: {})", fields.join(", ")),
                };
                return Some(format!("credentials.{field} or forward.{field} is required{alternative}"));
            }
        }
        None
    }

    /// What is wrong with `authority` and `scope`, if anything.
    fn invalid_sign_in_target(&self) -> Option<String> {
        if let Some(authority) = &self.authority {
            if !matches!(authority.scheme(), "http" | "https") {
                return Some("authority must be http or https".into());
            }
            if !authority.username().is_empty() || authority.password().is_some() {
                return Some("authority must not carry credentials".into());
            }
            if authority.query().is_some() || authority.fragment().is_some() {
                return Some("authority must have no query or fragment: the token path is appended to it".into());
            }
        }
        if self.scope.as_deref().is_some_and(|scope| scope.trim().is_empty()) {
            return Some("scope must not be blank".into());
        }
        None
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
        if let Some(message) = self.invalid_credentials(&rules) {
            return Some(message);
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
        let mut config: Self = figment
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        config.resolve_secret_files()?;
        Ok(config)
    }

    /// Reads every secret configured as a file (`…_file` keys) once, so a
    /// reload, which loads anew, reads them again.
    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        let server = &mut self.server;
        resolve_secret_file("server.admin_token", &mut server.admin_token, server.admin_token_file.take().as_deref())
            .map_err(|message| ConfigError::Invalid { key: "server.admin_token_file", message })?;
        for (name, source) in &mut self.sources {
            source
                .resolve_secret_files()
                .map_err(|message| ConfigError::Source { source_name: name.clone(), message })?;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate()?;
        self.server.validate()?;
        let names = self.telemetry.max_operation_names as u64;
        if let Some((key, message)) =
            first_violation([Bound::new("telemetry.max_operation_names", names, 0..=MAX_OPERATION_NAMES)])
        {
            return Err(ConfigError::Invalid { key, message });
        }
        if let Some(otlp) = &self.telemetry.otlp {
            otlp.validate()?;
        }
        if self.sources.is_empty() {
            return Err(ConfigError::NoSources);
        }
        if let Some(cors) = &self.server.cors {
            let forwarding: Vec<&str> =
                self.sources.iter().filter(|(_, s)| !s.forward.is_empty()).map(|(name, _)| name.as_str()).collect();
            cors.validate(&forwarding)?;
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

    /// The settings that differ in `next` but only take effect at start-up:
    /// the listening socket, the accept loop's connection settings, the
    /// shutdown grace and the trace exporter.
    pub fn restart_only_changes(&self, next: &Config) -> Vec<&'static str> {
        let (now, then) = (&self.server, &next.server);
        [
            ("server.listen", now.listen != then.listen),
            ("server.max_connections", now.max_connections != then.max_connections),
            ("server.header_read_timeout_ms", now.header_read_timeout_ms != then.header_read_timeout_ms),
            ("server.keep_alive_timeout_ms", now.keep_alive_timeout_ms != then.keep_alive_timeout_ms),
            ("server.max_uri_bytes", now.max_uri_bytes != then.max_uri_bytes),
            ("server.max_header_bytes", now.max_header_bytes != then.max_header_bytes),
            ("server.max_headers", now.max_headers != then.max_headers),
            ("server.shutdown_grace_ms", now.shutdown_grace_ms != then.shutdown_grace_ms),
            ("telemetry", self.telemetry != next.telemetry),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
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
        if (1..MIN_RESPONSE_CACHE_BYTES).contains(&cache.response_max_bytes) {
            return Err(ConfigError::Invalid {
                key: "cache.response_max_bytes",
                message: format!("must be 0 (off) or at least {MIN_RESPONSE_CACHE_BYTES}"),
            });
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
            self.validate_settled(name, o).or_else(invalid)?;
        }
        Ok(())
    }

    /// Settled-history caching needs all three keys, in range, and a source
    /// whose API can say what changed since a time.
    fn validate_settled(&self, name: &str, o: &CacheTtlOverride) -> Result<(), String> {
        let keys = [
            ("settled_after_secs", o.settled_after_secs),
            ("settled_ttl_secs", o.settled_ttl_secs),
            ("change_probe_secs", o.change_probe_secs),
        ];
        if keys.iter().all(|(_, secs)| secs.is_none()) {
            return Ok(());
        }
        if let Some((key, _)) = keys.iter().find(|(_, secs)| secs.is_none()) {
            return Err(format!("{name}.{key} must be set with the other settled-history keys"));
        }
        let bounds = keys.into_iter().filter_map(|(key, secs)| Some(Bound::new(key, secs?, 1..=MAX_TTL_SECS)));
        if let Some((key, message)) = first_violation(bounds) {
            return Err(format!("{name}.{key} {message}"));
        }
        let kind = self.sources.get(name).map(|s| s.kind);
        if !kind.is_some_and(crate::sources::probes_changes) {
            return Err(format!(
                "{name}.settled_after_secs is not supported for a {} source: the gateway has no change probe for it",
                kind.map_or_else(|| "unknown".to_owned(), |k| format!("{k:?}"))
            ));
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
        let mut config = layered(toml)?;
        config.resolve_secret_files()?;
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
    fn telemetry_settings_are_checked() {
        let config = parse_with_source("[telemetry]\nlog_format = \"json\"\nmax_operation_names = 0").unwrap();
        assert_eq!((config.telemetry.log_format, config.telemetry.max_operation_names), (LogFormat::Json, 0));
        assert_eq!(parse_with_source("").unwrap().telemetry.log_format, LogFormat::Text);
        assert!(parse_with_source("[telemetry]\nlog_format = \"xml\"").unwrap_err().to_string().contains("xml"));
        assert_eq!(
            parse_with_source("[telemetry]\nmax_operation_names = 10001").unwrap_err().to_string(),
            "telemetry.max_operation_names: must be between 0 and 10000"
        );
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
            ("[cache]\nresponse_max_bytes = 4095", "cache.response_max_bytes: must be 0 (off) or at least 4096"),
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

    const SETTLED: &str = "settled_after_secs = 604800\nsettled_ttl_secs = 86400\nchange_probe_secs = 60";

    #[test]
    fn settled_history_settings_load_for_trackstar() {
        let config = parse_with_source(&format!("[cache.sources.wms]\n{SETTLED}")).unwrap();
        let settled = config.cache.sources["wms"].settled();
        assert_eq!(settled, Some(SettledConfig { after_secs: 604_800, ttl_secs: 86_400, probe_secs: 60 }));
    }

    #[test]
    fn bad_settled_history_settings_name_the_key() {
        let cases = [
            (
                "settled_after_secs = 604800\nsettled_ttl_secs = 86400",
                "cache.sources: wms.change_probe_secs must be set with the other settled-history keys",
            ),
            (
                "change_probe_secs = 60",
                "cache.sources: wms.settled_after_secs must be set with the other settled-history keys",
            ),
            (
                "settled_after_secs = 0\nsettled_ttl_secs = 86400\nchange_probe_secs = 60",
                "cache.sources: wms.settled_after_secs must be between 1 and 31536000",
            ),
            (
                "settled_after_secs = 604800\nsettled_ttl_secs = 31536001\nchange_probe_secs = 60",
                "cache.sources: wms.settled_ttl_secs must be between 1 and 31536000",
            ),
            (
                "settled_after_secs = 604800\nsettled_ttl_secs = 86400\nchange_probe_secs = 0",
                "cache.sources: wms.change_probe_secs must be between 1 and 31536000",
            ),
        ];
        for (keys, expected) in cases {
            let toml = format!("[cache.sources.wms]\n{keys}");
            assert_eq!(parse_with_source(&toml).unwrap_err().to_string(), expected, "{keys}");
        }
    }

    #[test]
    fn settled_history_is_refused_for_sources_that_cannot_list_changes() {
        let bc = business_central(CLIENT_CREDENTIALS, &format!("[cache.sources.bc]\n{SETTLED}"));
        assert_eq!(
            error(&bc),
            "cache.sources: bc.settled_after_secs is not supported for a BusinessCentral source: the gateway has no change probe for it"
        );
        let others = [
            ("bigledger", "Bigledger", "api_key = \"k\", company_id = \"c\""),
            ("pennylane", "Pennylane", "token = \"t\""),
        ];
        for (kind, shown, credentials) in others {
            let toml = format!(
                "[sources.s]\nkind = \"{kind}\"\nbase_url = \"https://x.example\"\ncredentials = {{ {credentials} }}\n[cache.sources.s]\n{SETTLED}"
            );
            let message = error(&toml);
            assert!(
                message.contains(&format!("s.settled_after_secs is not supported for a {shown} source")),
                "{message}"
            );
        }
    }

    /// A Business Central source with `credentials` and `extra` lines.
    fn business_central(credentials: &str, extra: &str) -> String {
        format!(
            "[sources.bc]\nkind = \"business-central\"\nbase_url = \"https://api.businesscentral.dynamics.com/v2.0/t/production/api/v2.0/companies(1)/\"\ncredentials = {{ {credentials} }}\n{extra}"
        )
    }

    const CLIENT_CREDENTIALS: &str =
        r#"tenant_id = "contoso.onmicrosoft.com", client_id = "app", client_secret = "hunter2""#;

    #[test]
    fn business_central_signs_in_with_client_credentials() {
        let config = parse(&business_central(CLIENT_CREDENTIALS, "forward = { token = \"authorization\" }")).unwrap();
        let source = &config.sources["bc"];
        assert_eq!((source.authority.as_ref(), source.scope.as_deref()), (None, None), "defaults in the connector");
        let shown = format!("{config:?} {}", toml::to_string(&config).unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        let extra = "authority = \"https://login.microsoftonline.us\"\nscope = \"https://api.businesscentral.dynamics.com/.default\"";
        let config = parse(&business_central(CLIENT_CREDENTIALS, extra)).unwrap();
        assert_eq!(config.sources["bc"].authority.as_ref().map(Url::as_str), Some("https://login.microsoftonline.us/"));
        // A static token still works (for short tests: it expires).
        parse(&business_central("token = \"eyJ0\"", "")).unwrap();
    }

    /// A file under the temp dir holding `contents`, named for the test.
    fn secret_file(name: &str, contents: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("ledger-gateway-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_credential_is_read_from_its_file_less_one_trailing_newline() {
        for (name, contents, expected) in [
            ("lf", &b"hunter2\n"[..], "hunter2"),
            ("crlf", b"hunter2\r\n", "hunter2"),
            ("bare", b"hunter2", "hunter2"),
            ("two-lf", b"hunter2\n\n", "hunter2\n"),
        ] {
            let path = secret_file(&format!("secret-{name}"), contents);
            let credentials = format!(r#"tenant_id = "t", client_id = "app", client_secret_file = {path:?}"#);
            let config = parse(&business_central(&credentials, "")).unwrap();
            let credentials = &config.sources["bc"].credentials;
            assert_eq!(credentials.keys().collect::<Vec<_>>(), ["client_id", "client_secret", "tenant_id"], "{name}");
            assert_eq!(credentials["client_secret"].expose_secret(), expected, "{name}");
            let shown = format!("{config:?} {}", toml::to_string(&config).unwrap());
            assert!(!shown.contains("hunter2") && shown.contains("client_secret = \"[redacted]\""), "{shown}");
        }
    }

    #[test]
    fn unusable_credential_files_name_the_key_and_path_but_not_the_contents() {
        let key = "sources.bc: credentials.client_secret_file";
        let bc = |path: &Path, also: &str| {
            error(&business_central(
                &format!(r#"tenant_id = "t", client_id = "app", client_secret_file = {path:?}{also}"#),
                "",
            ))
        };
        let missing = std::env::temp_dir().join(format!("ledger-gateway-{}-absent", std::process::id()));
        let refused = bc(&missing, "");
        assert!(refused.starts_with(&format!("{key}: cannot read {}: ", missing.display())), "{refused}");
        let empty = secret_file("secret-empty", b"\r\n");
        assert_eq!(bc(&empty, ""), format!("{key}: {} is empty", empty.display()));
        let blank = secret_file("secret-blank", b" \t\n");
        assert_eq!(bc(&blank, ""), format!("{key}: {} is empty", blank.display()));
        let latin1 = secret_file("secret-latin1", b"hunter\xe92\n");
        assert_eq!(bc(&latin1, ""), format!("{key}: {} is not UTF-8", latin1.display()));
        let good = secret_file("secret-good", b"hunter2\n");
        assert_eq!(
            bc(&good, r#", client_secret = "s""#),
            format!("{key}: cannot be combined with credentials.client_secret: configure one of them")
        );
        let credentials =
            format!(r#"tenant_id_file = "/nonexistent/tenant", client_id = "app", client_secret_file = {good:?}"#);
        let refused = error(&business_central(&credentials, ""));
        assert!(
            refused.starts_with("sources.bc: credentials.tenant_id_file: cannot read /nonexistent/tenant: "),
            "{refused}"
        );
        // A `_file` key of no credential field is an unknown key, not a path.
        let refused = error_of_wms(&format!(r#", api_kee_file = {good:?}"#));
        assert!(refused.starts_with("sources.wms: credentials.api_kee_file is not a credential"), "{refused}");
    }

    fn error_of_wms(extra: &str) -> String {
        error(&format!(
            "[sources.wms]\nkind = \"trackstar\"\nbase_url = \"https://x.example\"\ncredentials = {{ api_key = \"k\", access_token = \"t\"{extra} }}"
        ))
    }

    #[test]
    fn the_admin_token_is_read_from_its_file() {
        let path = secret_file("admin-token", b"an-admin-token-of-some-length\r\n");
        let config = parse_with_source(&format!("[server]\nadmin_token_file = {path:?}")).unwrap();
        let token = config.server.admin_token.as_ref().map(|t| t.expose_secret().to_owned());
        assert_eq!(token.as_deref(), Some("an-admin-token-of-some-length"));
        assert_eq!(config.server.admin_token_file, None, "read once, at load");
        let shown = toml::to_string(&config).unwrap();
        assert!(shown.contains("admin_token = \"[redacted]\"") && !shown.contains("admin_token_file"), "{shown}");
        assert!(!format!("{config:?}").contains("an-admin-token"));

        let error = |server: &str| parse_with_source(&format!("[server]\n{server}")).unwrap_err().to_string();
        assert_eq!(
            error(&format!("admin_token = \"another-token-of-some-length\"\nadmin_token_file = {path:?}")),
            "server.admin_token_file: cannot be combined with server.admin_token: configure one of them"
        );
        let empty = secret_file("admin-token-empty", b"\n");
        assert_eq!(
            error(&format!("admin_token_file = {empty:?}")),
            format!("server.admin_token_file: {} is empty", empty.display())
        );
        // What the file holds is checked like the setting itself.
        let short = secret_file("admin-token-short", b"short\n");
        assert!(error(&format!("admin_token_file = {short:?}")).starts_with("server.admin_token: must be at least 16"));
    }

    #[test]
    fn business_central_sign_in_mistakes_name_the_key() {
        let all = CLIENT_CREDENTIALS;
        let without_tenant = r#"client_id = "app", client_secret = "hunter2""#;
        let cases = [
            (without_tenant.to_owned(), "", "credentials.tenant_id is required to sign in with client credentials"),
            (
                format!("{all}, token = \"t\""),
                "",
                "credentials.token and client credentials (tenant_id, client_id, client_secret) exclude each other: configure one of them",
            ),
            (
                String::new(),
                "",
                "credentials.token or forward.token is required (or client credentials: tenant_id, client_id, client_secret)",
            ),
            (all.replace("hunter2", " "), "", "credentials.client_secret must not be blank"),
            (all.to_owned(), "authority = \"ftp://login.example\"", "authority must be http or https"),
            (all.to_owned(), "authority = \"https://u:p@login.example\"", "authority must not carry credentials"),
            (
                all.to_owned(),
                "authority = \"https://login.example/?x=1\"",
                "authority must have no query or fragment: the token path is appended to it",
            ),
            (all.to_owned(), "scope = \" \"", "scope must not be blank"),
            (
                "token = \"t\"".to_owned(),
                "authority = \"https://login.example\"",
                "authority and scope only apply to sources signing in with client credentials",
            ),
            (
                all.to_owned(),
                "forward = { client_secret = \"x-secret\" }",
                "forward.client_secret is not a credential of this kind of source (valid: token)",
            ),
        ];
        for (credentials, extra, expected) in cases {
            assert_eq!(
                error(&business_central(&credentials, extra)),
                format!("sources.bc: {expected}"),
                "{credentials} {extra}"
            );
        }
        let not_a_url = error(&business_central(all, "authority = \"login\""));
        assert!(not_a_url.contains("authority"), "{not_a_url}");
        let elsewhere = format!("{WMS}\nauthority = \"https://login.example\"");
        assert_eq!(
            error(&elsewhere),
            "sources.wms: authority and scope only apply to sources signing in with client credentials"
        );
        let trackstar = WMS.replace("access_token = \"t\"", "access_token = \"t\", client_secret = \"s\"");
        assert!(error(&trackstar).contains("(valid: api_key, access_token)"), "no sign-in elsewhere");
    }

    #[test]
    fn cors_settings_load_with_their_defaults() {
        let config = parse_with_source(
            "[server.cors]\nallow_origins = [\"https://app.example.com\", \"http://localhost:3000\"]",
        )
        .unwrap();
        let cors = config.server.cors.unwrap();
        assert_eq!(cors.allow_origins, ["https://app.example.com", "http://localhost:3000"]);
        assert_eq!((cors.max_age_secs, cors.allow_credentials), (600, false));
        assert!(parse_with_source("").unwrap().server.cors.is_none(), "off unless configured");
        let any = parse_with_source("[server.cors]\nallow_origins = [\"*\"]").unwrap();
        assert_eq!(any.server.cors.unwrap().allow_origins, ["*"]);
    }

    #[test]
    fn invalid_cors_settings_name_their_key() {
        let key = "server.cors.allow_origins";
        let cases = [
            ("allow_origins = []", format!("{key}: list at least one origin, or remove [server.cors] to turn CORS off")),
            (
                "allow_origins = [\"https://app.example.com/\"]",
                format!("{key}: \"https://app.example.com/\" is not an origin as browsers send it: write \"https://app.example.com\""),
            ),
            (
                "allow_origins = [\"https://App.example.com:443\"]",
                format!("{key}: \"https://App.example.com:443\" is not an origin as browsers send it: write \"https://app.example.com\""),
            ),
            (
                "allow_origins = [\"app.example.com\"]",
                format!("{key}: \"app.example.com\" is not an origin: write scheme://host[:port], http or https"),
            ),
            (
                "allow_origins = [\"ftp://app.example.com\"]",
                format!("{key}: \"ftp://app.example.com\" is not an origin: write scheme://host[:port], http or https"),
            ),
            ("allow_origins = [\"null\"]", format!("{key}: \"null\" is not an origin: write scheme://host[:port], http or https")),
            (
                "allow_origins = [\"*\", \"https://a.example\"]",
                format!("{key}: \"*\" allows every origin: it must be the only entry"),
            ),
            (
                "allow_origins = [\"*\"]\nallow_credentials = true",
                format!("{key}: \"*\" cannot be combined with server.cors.allow_credentials"),
            ),
            (
                "allow_origins = [\"https://a.example\"]\nallow_headers = [\"x bad\"]",
                "server.cors.allow_headers: \"x bad\" is not a header name".into(),
            ),
            (
                "allow_origins = [\"https://a.example\"]\nexpose_headers = [\"\"]",
                "server.cors.expose_headers: \"\" is not a header name".into(),
            ),
            (
                "allow_origins = [\"https://a.example\"]\nmax_age_secs = 86401",
                "server.cors.max_age_secs: must be between 0 and 86400".into(),
            ),
        ];
        for (cors, expected) in cases {
            assert_eq!(error(&format!("[server.cors]\n{cors}\n{WMS}")), expected, "{cors}");
        }
        let forwarding =
            format!("[server.cors]\nallow_origins = [\"*\"]\n{WMS}\nforward = {{ access_token = \"x-token\" }}");
        assert_eq!(
            error(&forwarding),
            format!("{key}: \"*\" is not allowed while sources forward caller credentials (wms): list the origins")
        );
        let unknown =
            error(&format!("[server.cors]\nallow_origins = [\"https://a.example\"]\nallow_methods = []\n{WMS}"));
        assert!(unknown.contains("allow_methods"), "{unknown}");
    }

    #[test]
    fn a_base_url_carrying_credentials_is_refused() {
        let toml = WMS.replace("https://x.example", "https://user:hunter2@x.example");
        assert_eq!(error(&toml), "sources.wms: base_url must not carry credentials: put them in credentials");
    }

    #[test]
    fn lifecycle_and_trace_settings_are_checked_naming_the_key() {
        let cases = [
            ("[server]\nshutdown_grace_ms = 600001", "server.shutdown_grace_ms: must be between 0 and 600000"),
            (
                "[server]\nadmin_token = \"short\"",
                "server.admin_token: must be at least 16 visible ASCII characters, without spaces",
            ),
            (
                "[server]\nadmin_token = \"long enough but spaced\"",
                "server.admin_token: must be at least 16 visible ASCII characters, without spaces",
            ),
            ("[telemetry.otlp]\nendpoint = \"ftp://c.example\"", "telemetry.otlp.endpoint: must be http or https"),
            (
                "[telemetry.otlp]\nendpoint = \"http://c.example\"\nsampling_ratio = 1.5",
                "telemetry.otlp.sampling_ratio: must be between 0.0 and 1.0",
            ),
            (
                "[telemetry.otlp]\nendpoint = \"http://c.example\"\nservice_name = \" \"",
                "telemetry.otlp.service_name: must not be empty",
            ),
            (
                "[telemetry.otlp]\nendpoint = \"http://c.example\"\ntimeout_ms = 0",
                "telemetry.otlp.timeout_ms: must be between 1 and 600000",
            ),
        ];
        for (toml, expected) in cases {
            assert_eq!(parse_with_source(toml).unwrap_err().to_string(), expected, "{toml}");
        }
        let grpc = parse_with_source("[telemetry.otlp]\nendpoint = \"http://c.example\"\nprotocol = \"grpc\"");
        let grpc = grpc.unwrap_err().to_string();
        assert!(grpc.contains("unknown variant") && grpc.contains("http/protobuf"), "{grpc}");
        let config = parse_with_source("[telemetry.otlp]\nendpoint = \"http://c.example:4318/\"").unwrap();
        assert_eq!(config.telemetry.otlp.unwrap().traces_url(), "http://c.example:4318/v1/traces");
    }

    #[test]
    fn a_reload_names_every_setting_only_a_restart_applies() {
        let running = parse_with_source("").unwrap();
        let changed = parse_with_source(
            "[server]\nlisten = \"127.0.0.1:1\"\nshutdown_grace_ms = 1\nrequest_timeout_ms = 20000\n\
             [telemetry.otlp]\nendpoint = \"http://c.example\"",
        )
        .unwrap();
        assert_eq!(running.restart_only_changes(&changed), ["server.listen", "server.shutdown_grace_ms", "telemetry"]);
        let reloadable = parse_with_source("[limits]\nmax_batch = 2\n[server]\nadmin_token = \"0123456789abcdef\"");
        assert!(running.restart_only_changes(&reloadable.unwrap()).is_empty());
    }
}

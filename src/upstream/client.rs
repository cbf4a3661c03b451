//! The one place that talks HTTP to upstreams. Every call, whatever the
//! connector, goes through the same guards in the same order:
//!
//! 1. the request deadline (`deadline`): nothing starts after it;
//! 2. the circuit breaker of the source and credential (`breaker`);
//! 3. the outgoing rate limit of the source and credential (`limiter`), of
//!    which one request holds at most a fair share, and the request's
//!    budget of upstream calls, charged per attempt sent (`budget`);
//! 4. the attempt: a timeout that fits the deadline, no redirects (custom
//!    auth headers would follow them to another host), a capped body read,
//!    status classification shared by every connector plus the connector's
//!    own `ErrorDialect`, then decoding;
//! 5. a retry, only for idempotent calls that failed transiently, with
//!    jittered backoff or the upstream's `Retry-After`, within the retry
//!    budget and the deadline (`retry`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{debug, warn, Instrument, Span};
use url::Url;

use super::auth::Fingerprint;
use super::breaker::{BreakerPolicy, Circuit, CircuitBreakers, Outcome};
use super::error::{UpstreamError, UpstreamFailure};
use super::health::{Health, Observed, Verdict};
use super::limiter::{RateLimit, RateLimiter, Remaining};
use super::retry::{self, Backoff, RetryBudget};
use super::settled::Covers;
use super::{budget, deadline};
use crate::clock::Clock;
use crate::model::SourceName;
use crate::telemetry;
use crate::telemetry::{metrics as telemetry_metrics, request as request_context};

/// What a GET's JSON body decodes into: owned, and cloneable so that a
/// ledger answer can be kept decoded and handed to every reuse.
pub trait JsonAnswer: DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> JsonAnswer for T {}

/// How a source's HTTP calls behave. Set per source in config.
#[derive(Clone, Debug)]
pub struct HttpPolicy {
    pub connect_timeout: Duration,
    /// Per attempt; the request deadline may cut it shorter.
    pub request_timeout: Duration,
    /// Extra attempts after the first, for transient failures only.
    pub max_retries: u32,
    pub backoff: Backoff,
    /// Longest rate-limit wait (`Retry-After` or our own quota) worth it
    /// inside one request.
    pub max_retry_wait: Duration,
    /// Retries may add at most this percentage to the source's calls...
    pub retry_budget_percent: u32,
    /// ...plus this many, for rarely called sources.
    pub retry_budget_reserve: u32,
    pub breaker: BreakerPolicy,
    /// Outgoing quota per credential; `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    pub max_body_bytes: usize,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            max_retries: 2,
            backoff: Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) },
            max_retry_wait: Duration::from_secs(2),
            retry_budget_percent: 20,
            retry_budget_reserve: 10,
            breaker: BreakerPolicy { failure_threshold: 5, cool_down: Duration::from_secs(30) },
            rate_limit: None,
            max_body_bytes: 32 * 1024 * 1024,
        }
    }
}

impl HttpPolicy {
    /// The connector's documented quota, unless config set one.
    pub fn with_default_rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit.get_or_insert(limit);
        self
    }
}

/// Idle connections kept per upstream host, and for how long.
const IDLE_CONNECTIONS_PER_HOST: usize = 8;
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A connector's reading of its own error bodies, for the cases a status code
/// alone gets wrong (an expired page token sent back as a 422, say).
pub type ErrorDialect = fn(StatusCode, &[u8]) -> Option<UpstreamFailure>;

/// One upstream call. Build it with [`Call::get`]; the method is private so
/// that only idempotent calls can be retried: a future non-idempotent call
/// gets its own constructor and is never repeated by accident.
pub struct Call {
    /// A fixed label for logs and metrics.
    pub route: &'static str,
    pub url: Url,
    pub headers: HeaderMap,
    /// Whose credentials the call carries: the breaker and the rate limit
    /// are kept per fingerprint.
    pub fingerprint: Fingerprint,
    /// The entry dates a ledger response can hold, when the connector knows
    /// them: what lets it be kept as settled history (`upstream::settled`).
    pub covers: Option<Covers>,
    method: Method,
    /// A form body; it may hold a secret, so it never prints.
    form: Option<String>,
}

impl Call {
    /// A GET. Every header value is marked sensitive: credentials travel in
    /// headers, and a header that is not secret loses nothing by not printing.
    pub fn get(route: &'static str, url: Url, mut headers: HeaderMap, fingerprint: &Fingerprint) -> Self {
        headers.values_mut().for_each(|value: &mut HeaderValue| value.set_sensitive(true));
        Self { route, url, headers, fingerprint: fingerprint.clone(), covers: None, method: Method::GET, form: None }
    }

    /// A POST of `form` (`application/x-www-form-urlencoded`), such as an
    /// OAuth token request. Not idempotent, so never retried.
    pub fn post_form(route: &'static str, url: Url, form: &[(&str, &str)], fingerprint: &Fingerprint) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        Self { method: Method::POST, form: Some(body), ..Self::get(route, url, headers, fingerprint) }
    }

    /// Repeating the call has the same effect as making it once.
    pub fn is_idempotent(&self) -> bool {
        self.method.is_idempotent()
    }
}

impl std::fmt::Debug for Call {
    // No query string (it may carry ids or, for some APIs, credentials) and
    // no header values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("route", &self.route)
            .field("host", &self.url.host_str())
            .field("path", &self.url.path())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// State shared by every clone of one source's client.
#[derive(Debug)]
struct Guards {
    breakers: CircuitBreakers,
    limiter: RateLimiter,
    budget: RetryBudget,
    health: Health,
}

/// What the client holds about one credential's calls, read without calling.
#[derive(Clone, Debug)]
pub struct CallState {
    pub circuit: Circuit,
    /// `None` when the source has no outgoing limit.
    pub remaining: Option<Remaining>,
    pub observed: Observed,
}

/// HTTP client bound to one source.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    http: reqwest::Client,
    source: SourceName,
    policy: HttpPolicy,
    dialect: ErrorDialect,
    guards: Arc<Guards>,
    /// Measures `Retry-After` dates and rate-limit reset times.
    clock: Clock,
}

impl UpstreamClient {
    pub fn new(source: SourceName, policy: HttpPolicy, dialect: ErrorDialect, clock: Clock) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Each idle connection keeps its read buffer (as large as the
            // largest body it read): bursts of slow upstream answers would
            // otherwise leave a growing pool behind them.
            .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST)
            .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
            .user_agent(concat!("ledger-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("static reqwest configuration is valid");
        let guards = Arc::new(Guards {
            breakers: CircuitBreakers::new(
                source.clone(),
                policy.breaker,
                policy.max_retry_wait + policy.request_timeout,
            ),
            limiter: RateLimiter::new(policy.rate_limit),
            budget: RetryBudget::new(policy.retry_budget_percent, policy.retry_budget_reserve),
            health: Health::default(),
        });
        Self { http, source, policy, dialect, guards, clock }
    }

    pub fn source(&self) -> &SourceName {
        &self.source
    }

    /// The circuit, quota left and latest outcomes of `fingerprint`'s calls.
    pub fn state(&self, fingerprint: &Fingerprint) -> CallState {
        CallState {
            circuit: self.guards.breakers.circuit(fingerprint),
            remaining: self.guards.limiter.remaining(fingerprint),
            observed: self.guards.health.observed(fingerprint),
        }
    }

    /// How many credentials' circuits are open or half-open.
    pub fn circuits_not_closed(&self) -> usize {
        self.guards.breakers.not_closed()
    }

    /// The clock this source reads "now" from.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Makes `call` and decodes the JSON body, retrying transient failures.
    /// A body that does not decode is `BadResponse`, never a serde message.
    pub async fn get_json<T: JsonAnswer>(&self, call: &Call) -> Result<T, UpstreamError> {
        let decode = |body: &[u8]| self.decode::<T>(call, body);
        let span = telemetry::upstream_call(&self.source, call.route);
        // Whether this call sent anything: the cache, or another request's
        // identical fetch, may answer it instead.
        let sent = AtomicBool::new(false);
        // Within a ledger read, the same caller's identical GET is answered
        // from the shared cache for a few seconds (see `cache::reuse_json`),
        // which keeps the decoded answer; decoded once per attempt here so a
        // malformed body counts against the source like any failure.
        let fetch = async {
            sent.store(true, Ordering::Relaxed);
            self.execute(call, |body: Vec<u8>| Ok((decode(&body)?, body))).await
        };
        let result =
            super::cache::reuse_json(&self.source, (&call.url, call.covers), fetch).instrument(span.clone()).await;
        let hit = !sent.load(Ordering::Relaxed);
        span.record("cache_hit", hit);
        if hit {
            span.record("attempt", 0_i64);
        }
        if let Err(error) = &result {
            telemetry::record_error(&span, crate::error::upstream_code(&error.failure));
        }
        result
    }

    /// Makes `call` and decodes the JSON body, never from or into the
    /// cache: for calls whose answer is not data (a token request).
    pub async fn send_json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, UpstreamError> {
        self.execute(call, |body: Vec<u8>| self.decode::<T>(call, &body)).await
    }

    fn decode<T: DeserializeOwned>(&self, call: &Call, body: &[u8]) -> Result<T, UpstreamFailure> {
        serde_json::from_slice(body).map_err(|error| {
            warn!(source = %self.source, route = call.route, %error, "upstream body did not decode");
            UpstreamFailure::BadResponse
        })
    }

    async fn execute<T>(
        &self,
        call: &Call,
        decode: impl Fn(Vec<u8>) -> Result<T, UpstreamFailure>,
    ) -> Result<T, UpstreamError> {
        let deadline = deadline::current();
        self.guards.budget.deposit();
        let mut attempt = 0;
        let mut last_failure = None;
        loop {
            let failure = match self.guarded_attempt(call, deadline, attempt, &decode).await {
                Ok(value) => return Ok(value),
                // When our own failures opened the circuit, report them.
                Err(open @ UpstreamFailure::CircuitOpen { .. }) => return Err(self.error(last_failure.unwrap_or(open))),
                Err(failure) => failure,
            };
            let wait = self.retry_wait(call, &failure, attempt, deadline).map_err(|f| self.error(f))?;
            debug!(source = %self.source, route = call.route, attempt, ?failure, wait_ms = wait.as_millis() as u64, "retrying upstream call");
            metrics::counter!("upstream_retries_total", "source" => self.source.to_string(), "route" => call.route)
                .increment(1);
            tokio::time::sleep(wait).await;
            last_failure = Some(failure);
            attempt += 1;
        }
    }

    /// The wait before the next attempt, or the failure to report when there
    /// is none: not idempotent, not transient, out of attempts, a wait
    /// longer than worth it or than the deadline allows, or no budget left.
    fn retry_wait(
        &self,
        call: &Call,
        failure: &UpstreamFailure,
        attempt: u32,
        deadline: Option<Instant>,
    ) -> Result<Duration, UpstreamFailure> {
        if !call.is_idempotent() || !failure.is_transient() || attempt >= self.policy.max_retries {
            return Err(failure.clone());
        }
        let wait = match failure {
            UpstreamFailure::RateLimited { retry_after: Some(wait) } if *wait > self.policy.max_retry_wait => {
                return Err(failure.clone())
            }
            UpstreamFailure::RateLimited { retry_after: Some(wait) } => *wait,
            _ => self.policy.backoff.random_wait(attempt),
        };
        if deadline.is_some_and(|deadline| Instant::now() + wait >= deadline) {
            return Err(failure.clone());
        }
        if !self.guards.budget.try_withdraw() {
            debug!(source = %self.source, route = call.route, "retry budget spent");
            return Err(failure.clone());
        }
        Ok(wait)
    }

    /// One attempt behind the breaker and the rate limiter.
    async fn guarded_attempt<T>(
        &self,
        call: &Call,
        deadline: Option<Instant>,
        attempt: u32,
        decode: &impl Fn(Vec<u8>) -> Result<T, UpstreamFailure>,
    ) -> Result<T, UpstreamFailure> {
        if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            return Err(UpstreamFailure::Timeout);
        }
        // Spent: fail before waiting on anything.
        budget::check().inspect_err(|failure| self.fast_failure(call, failure))?;
        let permit = self
            .guards
            .breakers
            .admit(&call.fingerprint, deadline)
            .await
            .inspect_err(|failure| self.fast_failure(call, failure))?;
        // A quota wait is bounded like a `Retry-After`: never longer than
        // `max_retry_wait`, never past the deadline (calls without one, such
        // as readiness probes, included).
        let longest_wait = Instant::now() + self.policy.max_retry_wait;
        let wait_until = deadline.map_or(longest_wait, |deadline| deadline.min(longest_wait));
        let _share = match self.guards.limiter.fair_share() {
            Some(permits) => budget::share(&self.source, &call.fingerprint, permits, wait_until).await,
            None => Ok(None),
        }
        .inspect_err(|failure| self.fast_failure(call, failure))?;
        let _slot = self
            .guards
            .limiter
            .acquire(&call.fingerprint, Some(wait_until))
            .await
            .inspect_err(|failure| self.fast_failure(call, failure))?;
        // Charged only now, for an attempt about to be sent: a refusal above
        // costs the request nothing.
        budget::charge().inspect_err(|failure| self.fast_failure(call, failure))?;
        let remaining = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        let timeout = remaining.map_or(self.policy.request_timeout, |left| left.min(self.policy.request_timeout));
        if timeout.is_zero() {
            return Err(UpstreamFailure::Timeout);
        }
        Span::current().record("attempt", i64::from(attempt) + 1);
        let result = self.attempt(call, timeout).await.and_then(decode);
        // Cut short by our own deadline: says nothing about the upstream.
        let cut_short = matches!(result, Err(UpstreamFailure::Timeout)) && timeout < self.policy.request_timeout;
        let outcome = match &result {
            _ if cut_short => Outcome::Inconclusive,
            Err(failure) => Outcome::of(&Err(failure.clone())),
            Ok(_) => Outcome::Healthy,
        };
        permit.settle(outcome);
        if let Some(verdict) = Verdict::of(result.as_ref().map(|_| ())).filter(|_| !cut_short) {
            self.guards.health.record(&call.fingerprint, verdict, self.clock.now());
        }
        result
    }

    fn fast_failure(&self, call: &Call, failure: &UpstreamFailure) {
        let reason = match failure {
            UpstreamFailure::CircuitOpen { .. } => "circuit_open",
            UpstreamFailure::BudgetExhausted { .. } => "budget_exhausted",
            _ => "rate_limited",
        };
        debug!(source = %self.source, route = call.route, reason, "upstream call refused before sending");
        // Our own limiter and the request's budget say nothing of the
        // source; an open circuit is what callers of it now get.
        if let (UpstreamFailure::CircuitOpen { .. }, Some(verdict)) = (failure, Verdict::of(Err(failure))) {
            self.guards.health.record(&call.fingerprint, verdict, self.clock.now());
        }
        metrics::counter!("upstream_refused_total", "source" => self.source.to_string(), "reason" => reason)
            .increment(1);
    }

    async fn attempt(&self, call: &Call, timeout: Duration) -> Result<Vec<u8>, UpstreamFailure> {
        let mut headers = call.headers.clone();
        telemetry::inject_trace_context(&mut headers);
        request_context::tag_upstream_call(&mut headers);
        let mut request = self.http.request(call.method.clone(), call.url.clone()).headers(headers).timeout(timeout);
        if let Some(form) = &call.form {
            request = request.body(form.clone());
        }
        let started = std::time::Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let failure = self.transport_failure(call, &error);
                let label = if failure == UpstreamFailure::Timeout { "timeout" } else { "network" };
                telemetry_metrics::upstream_call(&self.source, call.route, label, started.elapsed());
                return Err(failure);
            }
        };
        let status = response.status();
        Span::current().record("http.response.status_code", i64::from(status.as_u16()));
        metrics::counter!("upstream_requests_total", "source" => self.source.to_string(), "route" => call.route, "status" => status.as_u16().to_string()).increment(1);
        let headers = response.headers().clone();
        let now = self.clock.now();
        if let Some(reset) = retry::quota_reset(&headers, now) {
            self.guards.limiter.pause_until(&call.fingerprint, Instant::now() + reset);
        }
        let body = self.read_capped(call, response).await;
        telemetry_metrics::upstream_call(&self.source, call.route, status.as_str(), started.elapsed());
        let body = body?;
        if status.is_success() {
            return Ok(body);
        }
        debug!(source = %self.source, route = call.route, status = status.as_u16(), "upstream call failed");
        let failure = (self.dialect)(status, &body).unwrap_or_else(|| classify_status(status, None));
        Err(match failure {
            // However the dialect recognised it, the wait comes from the
            // headers (or a plain-text body), and every caller honours it.
            UpstreamFailure::RateLimited { retry_after } => {
                let retry_after = retry_after.or_else(|| retry::retry_after(&headers, &body, now));
                if let Some(wait) = retry_after {
                    self.guards.limiter.pause_until(&call.fingerprint, Instant::now() + wait);
                }
                UpstreamFailure::RateLimited { retry_after }
            }
            failure => failure,
        })
    }

    async fn read_capped(&self, call: &Call, mut response: reqwest::Response) -> Result<Vec<u8>, UpstreamFailure> {
        let cap = self.policy.max_body_bytes;
        let over_cap = || {
            warn!(source = %self.source, route = call.route, limit = cap, "upstream body over size cap");
            UpstreamFailure::BadResponse
        };
        let announced = response.content_length().unwrap_or(0);
        if announced > cap as u64 {
            return Err(over_cap());
        }
        // Sized up front: grown chunk by chunk it could hold up to twice the
        // body, and the ledger cache keeps the buffer as it is.
        let mut body = Vec::with_capacity(announced as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_failure(call, &e))? {
            if body.len() + chunk.len() > cap {
                return Err(over_cap());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_failure(&self, call: &Call, error: &reqwest::Error) -> UpstreamFailure {
        let shown = format!("{}", UrlFree(error));
        debug!(source = %self.source, route = call.route, error = %shown, "upstream transport error");
        // Connection refused or reset, before or during the body. reqwest
        // calls a body cut off mid-transfer a decode error (it decodes
        // nothing here: no compression, and JSON is decoded after the read),
        // but it is a network fault, retried like one.
        if error.is_timeout() {
            UpstreamFailure::Timeout
        } else {
            UpstreamFailure::Unavailable
        }
    }

    fn error(&self, failure: UpstreamFailure) -> UpstreamError {
        UpstreamError::new(&self.source, failure)
    }
}

/// A reqwest error without its URL (query strings can carry ids and, for
/// some APIs, credentials): only the chain of underlying causes.
struct UrlFree<'a>(&'a reqwest::Error);

impl std::fmt::Display for UrlFree<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_timeout() { "timeout" } else { "request failed" })?;
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(self.0);
        while let Some(inner) = source {
            write!(f, ": {inner}")?;
            source = inner.source();
        }
        Ok(())
    }
}

/// The status codes every upstream shares; dialects refine the rest. The
/// client fills a 429's missing wait from its headers and body.
pub fn classify_status(status: StatusCode, retry_after: Option<Duration>) -> UpstreamFailure {
    match status.as_u16() {
        401 => UpstreamFailure::Unauthorized,
        403 => UpstreamFailure::Forbidden,
        404 => UpstreamFailure::NotFound,
        408 | 504 => UpstreamFailure::Timeout,
        429 => UpstreamFailure::RateLimited { retry_after },
        501 => UpstreamFailure::NotSupported,
        300..=399 => UpstreamFailure::BadResponse,
        400..=499 => UpstreamFailure::Rejected,
        _ => UpstreamFailure::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::upstream::auth::{Credentials, FingerprintKey};

    fn fingerprint() -> Fingerprint {
        let fields = [("token".to_owned(), secrecy::SecretString::from("t0ps3cret"))].into();
        Credentials::new(&FingerprintKey::random(), fields).fingerprint().clone()
    }

    /// A loopback server that answers every request with 503, and its count.
    async fn failing_upstream() -> (Url, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { StatusCode::SERVICE_UNAVAILABLE }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/x?token=t0ps3cret", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, hits)
    }

    fn client() -> UpstreamClient {
        let policy = HttpPolicy {
            max_retries: 3,
            backoff: Backoff { base: Duration::from_millis(1), max: Duration::from_millis(1) },
            ..HttpPolicy::default()
        };
        UpstreamClient::new(SourceName::new("s"), policy, |_, _| None, Clock::System)
    }

    #[tokio::test]
    async fn idempotent_calls_retry_transient_failures_up_to_the_limit() {
        let (url, hits) = failing_upstream().await;
        let call = Call::get("x", url, HeaderMap::new(), &fingerprint());
        let error = client().get_json::<serde_json::Value>(&call).await.unwrap_err();
        assert_eq!(error.failure, UpstreamFailure::Unavailable);
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_call_that_is_not_idempotent_is_never_retried() {
        let (url, hits) = failing_upstream().await;
        let call = Call { method: Method::POST, ..Call::get("x", url, HeaderMap::new(), &fingerprint()) };
        assert!(!call.is_idempotent());
        let error = client().get_json::<serde_json::Value>(&call).await.unwrap_err();
        assert_eq!(error.failure, UpstreamFailure::Unavailable);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_call_prints_neither_header_values_nor_the_query() {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("t0ps3cret"));
        let url = Url::parse("https://api.example/v1/items?token=t0ps3cret").unwrap();
        let call = Call::get("items", url, headers, &fingerprint());
        let shown = format!("{call:?} {:?}", call.headers);
        assert!(!shown.contains("t0ps3cret"), "{shown}");
        assert!(shown.contains("x-api-key") && shown.contains("/v1/items"), "{shown}");
        let url = Url::parse("https://login.example/tenant/oauth2/v2.0/token").unwrap();
        let token_request = Call::post_form("token", url, &[("client_secret", "t0ps3cret")], &fingerprint());
        assert!(!format!("{token_request:?}").contains("t0ps3cret"));
        assert!(!token_request.is_idempotent());
    }

    #[test]
    fn statuses_map_to_failures() {
        assert_eq!(classify_status(StatusCode::UNAUTHORIZED, None), UpstreamFailure::Unauthorized);
        assert_eq!(classify_status(StatusCode::UNPROCESSABLE_ENTITY, None), UpstreamFailure::Rejected);
        assert_eq!(classify_status(StatusCode::BAD_GATEWAY, None), UpstreamFailure::Unavailable);
        assert_eq!(classify_status(StatusCode::FOUND, None), UpstreamFailure::BadResponse);
        assert_eq!(classify_status(StatusCode::NOT_IMPLEMENTED, None), UpstreamFailure::NotSupported);
        assert_eq!(classify_status(StatusCode::GATEWAY_TIMEOUT, None), UpstreamFailure::Timeout);
    }
}

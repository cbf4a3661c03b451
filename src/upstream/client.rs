//! The one place that talks HTTP to upstreams: timeouts, a capped body read,
//! bounded retries with jittered backoff for idempotent GETs, no redirects
//! (custom auth headers would follow them to another host), and status
//! classification shared by every connector.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use url::Url;

use super::error::{UpstreamError, UpstreamFailure};
use crate::model::SourceName;

/// How a source's HTTP calls behave. Set per source in config.
#[derive(Clone, Debug)]
pub struct HttpPolicy {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Extra attempts after the first, for transient failures only.
    pub max_retries: u32,
    pub backoff_base: Duration,
    /// Longest `Retry-After` worth waiting for inside one request.
    pub max_retry_wait: Duration,
    pub max_body_bytes: usize,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            max_retries: 2,
            backoff_base: Duration::from_millis(100),
            max_retry_wait: Duration::from_secs(2),
            max_body_bytes: 32 * 1024 * 1024,
        }
    }
}

/// A connector's reading of its own error bodies, for the cases a status code
/// alone gets wrong (an expired page token sent back as a 422, say).
pub type ErrorDialect = fn(StatusCode, &[u8]) -> Option<UpstreamFailure>;

/// One GET to make: `route` is a fixed label for logs and metrics.
#[derive(Debug)]
pub struct Call {
    pub route: &'static str,
    pub url: Url,
    pub headers: HeaderMap,
}

/// HTTP client bound to one source.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    http: reqwest::Client,
    source: SourceName,
    policy: HttpPolicy,
    dialect: ErrorDialect,
}

impl UpstreamClient {
    pub fn new(source: SourceName, policy: HttpPolicy, dialect: ErrorDialect) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ledger-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("static reqwest configuration is valid");
        Self { http, source, policy, dialect }
    }

    pub fn source(&self) -> &SourceName {
        &self.source
    }

    /// GETs `call` and decodes the JSON body, retrying transient failures.
    pub async fn get_json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, UpstreamError> {
        // Within a ledger read, the same caller's identical GET is answered
        // from the shared cache for a few seconds (see `cache::reuse_json`).
        super::cache::reuse_json(&self.source, &call.url, self.get_bytes(call), |body| self.decode(call, body)).await
    }

    fn decode<T: DeserializeOwned>(&self, call: &Call, body: &[u8]) -> Result<T, UpstreamError> {
        serde_json::from_slice(body).map_err(|error| {
            warn!(source = %self.source, route = call.route, %error, "upstream body did not decode");
            self.error(UpstreamFailure::BadResponse)
        })
    }

    async fn get_bytes(&self, call: &Call) -> Result<Vec<u8>, UpstreamError> {
        let mut attempt = 0;
        loop {
            match self.attempt(call).await {
                Ok(body) => return Ok(body),
                Err(failure) => {
                    let Some(wait) = self.retry_wait(&failure, attempt) else {
                        return Err(self.error(failure));
                    };
                    debug!(source = %self.source, route = call.route, attempt, ?failure, "retrying upstream call");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    fn retry_wait(&self, failure: &UpstreamFailure, attempt: u32) -> Option<Duration> {
        if attempt >= self.policy.max_retries || !failure.is_transient() {
            return None;
        }
        if let UpstreamFailure::RateLimited { retry_after: Some(wait) } = failure {
            return (*wait <= self.policy.max_retry_wait).then_some(*wait);
        }
        // Full jitter: a random wait up to the exponential bound, so clients
        // that failed together do not retry together.
        let bound = self.policy.backoff_base.saturating_mul(2u32.saturating_pow(attempt));
        Some(bound.mul_f64(rand::random::<f64>()))
    }

    async fn attempt(&self, call: &Call) -> Result<Vec<u8>, UpstreamFailure> {
        let request =
            self.http.get(call.url.clone()).headers(call.headers.clone()).timeout(self.policy.request_timeout);
        let response = request.send().await.map_err(|e| self.transport_failure(call, &e))?;
        let status = response.status();
        metrics::counter!("upstream_requests_total", "source" => self.source.to_string(), "route" => call.route, "status" => status.as_u16().to_string()).increment(1);
        let retry_after = retry_after(response.headers());
        let body = self.read_capped(call, response).await?;
        if status.is_success() {
            return Ok(body);
        }
        debug!(source = %self.source, route = call.route, status = status.as_u16(), "upstream call failed");
        Err((self.dialect)(status, &body).unwrap_or_else(|| classify_status(status, retry_after)))
    }

    async fn read_capped(&self, call: &Call, mut response: reqwest::Response) -> Result<Vec<u8>, UpstreamFailure> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_failure(call, &e))? {
            if body.len() + chunk.len() > self.policy.max_body_bytes {
                warn!(source = %self.source, route = call.route, limit = self.policy.max_body_bytes, "upstream body over size cap");
                return Err(UpstreamFailure::BadResponse);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_failure(&self, call: &Call, error: &reqwest::Error) -> UpstreamFailure {
        // `without_url` keeps credentials in query strings out of logs.
        let shown = format!("{}", UrlFree(error));
        debug!(source = %self.source, route = call.route, error = %shown, "upstream transport error");
        if error.is_timeout() {
            UpstreamFailure::Timeout
        } else if error.is_decode() || error.is_body() {
            UpstreamFailure::BadResponse
        } else {
            UpstreamFailure::Unavailable
        }
    }

    fn error(&self, failure: UpstreamFailure) -> UpstreamError {
        UpstreamError::new(&self.source, failure)
    }
}

struct UrlFree<'a>(&'a reqwest::Error);

impl std::fmt::Display for UrlFree<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = String::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(self.0);
        shown.push_str(if self.0.is_timeout() { "timeout" } else { "request failed" });
        while let Some(inner) = source {
            shown.push_str(": ");
            shown.push_str(&inner.to_string());
            source = inner.source();
        }
        f.write_str(&shown)
    }
}

/// The status codes every upstream shares; dialects refine the rest.
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

/// How long an upstream asks us to wait, read from every header variant the
/// upstreams use: `Retry-After` (seconds), Trackstar's
/// `x-rate-limit-retry-after`, and reset epochs (`x-rate-limit-reset`,
/// `x-ratelimit-reset`, `ratelimit-reset`).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    for name in ["retry-after", "x-rate-limit-retry-after", "x-ratelimit-retry-after"] {
        if let Some(secs) = number(name).filter(|s| s.is_finite() && *s >= 0.0) {
            return Some(Duration::from_secs_f64(secs.min(3600.0)));
        }
    }
    let now = chrono::Utc::now().timestamp() as f64;
    ["x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset"].iter().find_map(|name| {
        let value = number(name)?;
        // Some send an epoch, some a delta in seconds.
        let secs = if value > 1_000_000_000.0 { value - now } else { value };
        (secs.is_finite()).then(|| Duration::from_secs_f64(secs.clamp(0.0, 3600.0)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_every_header_variant() {
        for name in ["retry-after", "x-rate-limit-retry-after", "x-ratelimit-retry-after"] {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static("3"));
            assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)), "{name}");
        }
        let mut headers = HeaderMap::new();
        let reset = chrono::Utc::now().timestamp() + 5;
        headers.insert("ratelimit-reset", HeaderValue::from_str(&reset.to_string()).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait <= Duration::from_secs(5) && wait >= Duration::from_secs(3), "{wait:?}");
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn garbage_retry_after_is_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn statuses_map_to_failures() {
        assert_eq!(classify_status(StatusCode::UNAUTHORIZED, None), UpstreamFailure::Unauthorized);
        assert_eq!(classify_status(StatusCode::UNPROCESSABLE_ENTITY, None), UpstreamFailure::Rejected);
        assert_eq!(classify_status(StatusCode::BAD_GATEWAY, None), UpstreamFailure::Unavailable);
        assert_eq!(classify_status(StatusCode::FOUND, None), UpstreamFailure::BadResponse);
        assert_eq!(classify_status(StatusCode::NOT_IMPLEMENTED, None), UpstreamFailure::NotSupported);
    }
}

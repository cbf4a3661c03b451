//! When to try an upstream call again, and how long to wait first.
//!
//! Retries are for idempotent calls that failed transiently, bounded three
//! ways: a count per call (`HttpPolicy::max_retries`), the request's deadline
//! (the client never starts a wait that outlasts it), and a [`RetryBudget`]
//! per source, so an upstream that is down for everyone receives a bounded
//! extra fraction of calls instead of every caller multiplying its load.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

/// Exponential backoff with full jitter: the wait before retry `n` (0-based)
/// is uniform in `[0, min(max, base * 2^n))`, so callers that failed together
/// do not come back together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The upper bound of the wait before retry `attempt`.
    pub fn bound(&self, attempt: u32) -> Duration {
        let factor = 2u32.checked_pow(attempt).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait for a uniform draw `unit` in `[0, 1)`: pure, so it is testable.
    pub fn wait(&self, attempt: u32, unit: f64) -> Duration {
        self.bound(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }

    pub fn random_wait(&self, attempt: u32) -> Duration {
        self.wait(attempt, rand::random::<f64>())
    }
}

/// A token bucket that lets retries add at most `percent`% to a source's
/// call volume, plus a `reserve` for sources that are called rarely. Every
/// first attempt deposits `percent / 100` of a token (up to the reserve);
/// every retry withdraws a whole one. Counted in hundredths, so it is exact.
#[derive(Debug)]
pub struct RetryBudget {
    per_call: u64,
    cap: u64,
    tokens: Mutex<u64>,
}

const TOKEN: u64 = 100;

impl RetryBudget {
    pub fn new(percent: u32, reserve: u32) -> Self {
        let cap = u64::from(reserve.max(1)) * TOKEN;
        Self { per_call: u64::from(percent), cap, tokens: Mutex::new(u64::from(reserve) * TOKEN) }
    }

    /// Records a first attempt.
    pub fn deposit(&self) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        *tokens = (*tokens + self.per_call).min(self.cap);
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn try_withdraw(&self) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let allowed = *tokens >= TOKEN;
        if allowed {
            *tokens -= TOKEN;
        }
        allowed
    }
}

/// The longest wait an upstream's headers are believed for.
const MAX_ADVERTISED_WAIT: Duration = Duration::from_secs(3600);
/// Headers that give a wait in seconds (`Retry-After` may be a date too).
const WAIT_HEADERS: [&str; 3] = ["retry-after", "x-rate-limit-retry-after", "x-ratelimit-retry-after"];
/// Headers that give the end of the quota window: an epoch or a delta.
const RESET_HEADERS: [&str; 3] = ["x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset"];
const REMAINING_HEADERS: [&str; 3] = ["x-rate-limit-remaining", "x-ratelimit-remaining", "ratelimit-remaining"];

/// How long an upstream asks us to wait, from any variant the upstreams
/// use: `Retry-After` in seconds or as an HTTP date, Trackstar's
/// `x-rate-limit-retry-after`, the reset headers (`x-rate-limit-reset`,
/// `x-ratelimit-reset`, `ratelimit-reset`; an epoch or a delta), and
/// finally a plain-text body such as Pennylane's "Please retry in 3 seconds."
pub fn retry_after(headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Option<Duration> {
    let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    WAIT_HEADERS
        .iter()
        .find_map(|name| {
            let value = text(name)?;
            seconds(value).or_else(|| {
                let at = DateTime::parse_from_rfc2822(value).ok()?;
                Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
            })
        })
        .or_else(|| reset_wait(headers, now))
        .or_else(|| body_wait(body))
        .map(|wait| wait.min(MAX_ADVERTISED_WAIT))
}

/// How long until the quota resets, when a response (even a successful
/// one) says none is left: the gateway waits instead of earning a 429.
pub fn quota_reset(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let exhausted = REMAINING_HEADERS
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok()?.trim().parse::<f64>().ok())
        .any(|remaining| remaining <= 0.0);
    exhausted.then(|| reset_wait(headers, now)).flatten().map(|wait| wait.min(MAX_ADVERTISED_WAIT))
}

fn seconds(value: &str) -> Option<Duration> {
    value.parse::<f64>().ok().and_then(from_secs)
}

fn from_secs(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(MAX_ADVERTISED_WAIT.as_secs_f64())))
}

fn reset_wait(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    RESET_HEADERS.iter().find_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| v.is_finite())?;
        // Epochs are large; a delta is a handful of seconds.
        let secs = if value > 1_000_000_000.0 { value - now.timestamp() as f64 } else { value };
        Some(Duration::from_secs_f64(secs.clamp(0.0, MAX_ADVERTISED_WAIT.as_secs_f64())))
    })
}

/// "... retry in 3 seconds", "retry after 2.5 s": the number after "retry
/// in" or "retry after" in a short plain-text body.
fn body_wait(body: &[u8]) -> Option<Duration> {
    if body.len() > 1024 {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?.to_ascii_lowercase();
    ["retry in ", "retry after "].iter().find_map(|marker| {
        let rest = &text[text.find(marker)? + marker.len()..];
        let number: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let unit = rest[number.len()..].trim_start();
        let secs = number.parse::<f64>().ok()?;
        from_secs(if unit.starts_with("ms") || unit.starts_with("milli") { secs / 1000.0 } else { secs })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const BACKOFF: Backoff = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) };

    #[test]
    fn the_bound_doubles_per_attempt_up_to_the_cap() {
        let bounds: Vec<u128> = (0..6).map(|n| BACKOFF.bound(n).as_millis()).collect();
        assert_eq!(bounds, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(BACKOFF.bound(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_bound() {
        assert_eq!(BACKOFF.wait(2, 0.0), Duration::ZERO);
        assert_eq!(BACKOFF.wait(2, 0.5), Duration::from_millis(200));
        assert!(BACKOFF.wait(2, 0.999_999) < Duration::from_millis(400));
        // Random draws stay in range and are not all equal.
        let waits: Vec<Duration> = (0..200).map(|_| BACKOFF.random_wait(3)).collect();
        assert!(waits.iter().all(|w| *w < Duration::from_millis(800)));
        assert!(waits.iter().any(|w| *w < Duration::from_millis(400)));
        assert!(waits.iter().any(|w| *w >= Duration::from_millis(400)));
    }

    #[test]
    fn the_budget_allows_the_reserve_then_percent_of_calls() {
        let budget = RetryBudget::new(20, 2);
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw(), "reserve spent");
        for _ in 0..4 {
            budget.deposit();
            assert!(!budget.try_withdraw(), "0.2 tokens per call: not yet");
        }
        budget.deposit();
        assert!(budget.try_withdraw(), "five calls earn one retry");
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn a_calm_period_refills_no_further_than_the_reserve() {
        let budget = RetryBudget::new(50, 3);
        for _ in 0..1000 {
            budget.deposit();
        }
        let retries = std::iter::from_fn(|| budget.try_withdraw().then_some(())).count();
        assert_eq!(retries, 3);
        let none = RetryBudget::new(0, 0);
        none.deposit();
        assert!(!none.try_withdraw());
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (reqwest::header::HeaderName::from_static(k), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    fn now() -> DateTime<Utc> {
        "2026-06-30T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn retry_after_reads_every_header_variant() {
        let epoch = (now().timestamp() + 7).to_string();
        let cases = [
            ("retry-after", "7".to_owned()),
            ("retry-after", "Tue, 30 Jun 2026 12:00:07 GMT".to_owned()),
            ("x-rate-limit-retry-after", "7".to_owned()),
            ("x-ratelimit-retry-after", "7.0".to_owned()),
            ("x-rate-limit-reset", epoch.clone()),
            ("x-ratelimit-reset", epoch.clone()),
            ("ratelimit-reset", epoch),
            ("ratelimit-reset", "7".to_owned()),
        ];
        for (name, value) in cases {
            assert_eq!(
                retry_after(&headers(&[(name, value.clone())]), b"", now()),
                Some(Duration::from_secs(7)),
                "{name}: {value}"
            );
        }
        assert_eq!(retry_after(&HeaderMap::new(), b"{}", now()), None);
    }

    #[test]
    fn plain_text_bodies_give_the_wait_when_headers_do_not() {
        let body = b"Rate limit exceeded. Please retry in 3 seconds.";
        assert_eq!(retry_after(&HeaderMap::new(), body, now()), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&HeaderMap::new(), b"Retry after 250 ms", now()), Some(Duration::from_millis(250)));
        // A header wins over the body.
        assert_eq!(retry_after(&headers(&[("retry-after", "1".into())]), body, now()), Some(Duration::from_secs(1)));
    }

    #[test]
    fn garbage_and_past_values_never_mean_a_long_wait() {
        for value in ["soon", "-5", "NaN", "inf"] {
            assert_eq!(retry_after(&headers(&[("retry-after", value.into())]), b"", now()), None, "{value}");
        }
        let past = retry_after(&headers(&[("retry-after", "Tue, 30 Jun 2026 11:00:00 GMT".into())]), b"", now());
        assert_eq!(past, Some(Duration::ZERO));
        let far = retry_after(&headers(&[("retry-after", "999999".into())]), b"", now());
        assert_eq!(far, Some(MAX_ADVERTISED_WAIT));
    }

    #[test]
    fn an_exhausted_quota_is_read_from_any_remaining_header() {
        for name in REMAINING_HEADERS {
            let exhausted = headers(&[(name, "0".into()), ("ratelimit-reset", "4".into())]);
            assert_eq!(quota_reset(&exhausted, now()), Some(Duration::from_secs(4)), "{name}");
        }
        let left = headers(&[("x-ratelimit-remaining", "3".into()), ("x-ratelimit-reset", "4".into())]);
        assert_eq!(quota_reset(&left, now()), None);
    }
}

//! What the gateway has seen of one source, per credential fingerprint: when
//! an attempt last succeeded, when one last failed and with which code. The
//! client records every attempt it sends; the `sources` root field and the
//! metrics read it back without calling anything. Keyed like the breaker, so
//! a caller only ever sees what its own credentials met.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::auth::Fingerprint;
use super::error::UpstreamFailure;

/// Past this many tracked fingerprints, one is forgotten for each new one.
const MAX_TRACKED: usize = 4096;

/// The latest outcomes seen with one credential.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// The `extensions.code` of the latest failure.
    pub last_error_code: Option<&'static str>,
    /// Whether the latest recorded attempt failed (times can tie under a
    /// fixed clock, so the order is kept here, not derived from them).
    pub failing: bool,
}

/// What one sent attempt says about the source's health, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It answered as designed; a 404 or 400 is the request's fault, not the source's.
    Answered,
    Failed(&'static str),
}

impl Verdict {
    /// `None` for what says nothing about the source: a call refused for
    /// the request's own reasons (its budget, no credentials). An open
    /// circuit is a failure: the caller's call failed with `CIRCUIT_OPEN`.
    pub fn of(result: Result<(), &UpstreamFailure>) -> Option<Self> {
        let failure = match result {
            Ok(()) => return Some(Verdict::Answered),
            Err(failure) => failure,
        };
        match failure {
            UpstreamFailure::NotFound
            | UpstreamFailure::Rejected
            | UpstreamFailure::NotSupported
            | UpstreamFailure::PageTokenInvalid => Some(Verdict::Answered),
            UpstreamFailure::Unauthorized
            | UpstreamFailure::Forbidden
            | UpstreamFailure::RateLimited { .. }
            | UpstreamFailure::Timeout
            | UpstreamFailure::Unavailable
            | UpstreamFailure::BadResponse
            | UpstreamFailure::CircuitOpen { .. } => Some(Verdict::Failed(crate::error::upstream_code(failure))),
            UpstreamFailure::MissingCredentials
            | UpstreamFailure::UnusableCredentials
            | UpstreamFailure::BudgetExhausted { .. } => None,
        }
    }
}

/// The outcomes of one source's attempts, per fingerprint.
#[derive(Debug, Default)]
pub struct Health {
    // A plain mutex: held for a map update, never across an await.
    seen: Mutex<HashMap<Fingerprint, Observed>>,
}

impl Health {
    pub fn record(&self, fingerprint: &Fingerprint, verdict: Verdict, now: DateTime<Utc>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_TRACKED && !seen.contains_key(fingerprint) {
            if let Some(evicted) = seen.keys().next().cloned() {
                seen.remove(&evicted);
            }
        }
        let observed = seen.entry(fingerprint.clone()).or_default();
        match verdict {
            Verdict::Answered => {
                observed.last_success_at = Some(now);
                observed.failing = false;
            }
            Verdict::Failed(code) => {
                observed.last_failure_at = Some(now);
                observed.last_error_code = Some(code);
                observed.failing = true;
            }
        }
    }

    pub fn observed(&self, fingerprint: &Fingerprint) -> Observed {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(fingerprint).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::upstream::auth::{Credentials, FingerprintKey};

    fn key(name: &str) -> Fingerprint {
        let fields = [("token".to_owned(), secrecy::SecretString::from(name))].into();
        Credentials::new(&FingerprintKey::random(), fields).fingerprint().clone()
    }

    #[test]
    fn the_latest_outcome_decides_and_the_last_error_stays_known() {
        let health = Health::default();
        let (a, b) = (key("a"), key("b"));
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        health.record(&a, Verdict::Failed("UPSTREAM_TIMEOUT"), t(10));
        assert!(health.observed(&a).failing);
        health.record(&a, Verdict::Answered, t(10));
        let seen = health.observed(&a);
        assert_eq!(
            seen,
            Observed {
                last_success_at: Some(t(10)),
                last_failure_at: Some(t(10)),
                last_error_code: Some("UPSTREAM_TIMEOUT"),
                failing: false
            }
        );
        assert_eq!(health.observed(&b), Observed::default(), "another credential saw nothing");
    }

    #[test]
    fn answers_the_request_caused_are_not_failures_and_refusals_say_nothing() {
        assert_eq!(Verdict::of(Err(&UpstreamFailure::NotFound)), Some(Verdict::Answered));
        assert_eq!(Verdict::of(Err(&UpstreamFailure::Unauthorized)), Some(Verdict::Failed("UPSTREAM_UNAUTHORIZED")));
        assert_eq!(Verdict::of(Err(&UpstreamFailure::BudgetExhausted { limit: 1 })), None);
    }
}

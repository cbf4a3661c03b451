//! A circuit breaker per source and credential fingerprint. After
//! `failure_threshold` consecutive attempts that show the upstream broken
//! (timeouts, 5xx, unreadable answers) it opens: calls fail at once with
//! `CIRCUIT_OPEN` instead of piling onto an upstream that cannot answer.
//! After `cool_down` one trial call goes through (half-open); its outcome
//! closes the circuit or opens it for another cool-down. Keyed by fingerprint
//! because a revoked token or a tenant-specific outage must not cut off
//! other callers of the same source.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::auth::Fingerprint;
use super::error::UpstreamFailure;
use crate::model::SourceName;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive broken attempts that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit fails fast before a trial call.
    pub cool_down: Duration,
}

/// What one attempt says about the upstream's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It answered as designed, even if the answer was a 401, 404 or 422.
    Healthy,
    /// It timed out, failed or sent something unreadable.
    Broken,
    /// Nothing learned: rate limited, or our own deadline cut the attempt.
    Inconclusive,
}

impl Outcome {
    pub fn of(result: &Result<(), UpstreamFailure>) -> Self {
        match result {
            Ok(()) => Outcome::Healthy,
            Err(UpstreamFailure::Timeout | UpstreamFailure::Unavailable | UpstreamFailure::BadResponse) => {
                Outcome::Broken
            }
            Err(UpstreamFailure::RateLimited { .. } | UpstreamFailure::CircuitOpen { .. }) => Outcome::Inconclusive,
            Err(_) => Outcome::Healthy,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// Past this many tracked fingerprints, settled entries are dropped.
const MAX_TRACKED: usize = 4096;
/// What a caller is told to wait while another caller's trial call runs.
const TRIAL_WAIT: Duration = Duration::from_secs(1);

/// The breakers of one source, one per credential fingerprint. Only keys
/// with recent failures are stored; a missing key is a closed circuit.
#[derive(Debug)]
pub struct CircuitBreakers {
    source: SourceName,
    policy: BreakerPolicy,
    // A plain mutex: held for a map lookup, never across an await.
    states: Mutex<HashMap<Fingerprint, State>>,
}

impl CircuitBreakers {
    pub fn new(source: SourceName, policy: BreakerPolicy) -> Self {
        Self { source, policy, states: Mutex::default() }
    }

    /// Lets a call through, or says how long the circuit stays open.
    pub fn admit(&self, key: &Fingerprint) -> Result<Permit<'_>, UpstreamFailure> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let state = states.get(key).copied().unwrap_or(State::Closed { failures: 0 });
        let trial = match state {
            State::Closed { .. } => false,
            State::Open { until } if now < until => {
                return Err(UpstreamFailure::CircuitOpen { retry_after: until - now });
            }
            State::HalfOpen { trial_in_flight: true } => {
                return Err(UpstreamFailure::CircuitOpen { retry_after: TRIAL_WAIT });
            }
            State::Open { .. } | State::HalfOpen { trial_in_flight: false } => {
                states.insert(key.clone(), State::HalfOpen { trial_in_flight: true });
                true
            }
        };
        Ok(Permit { breakers: self, key: key.clone(), trial, settled: false })
    }

    fn settle(&self, key: &Fingerprint, trial: bool, outcome: Outcome) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let state = states.get(key).copied().unwrap_or(State::Closed { failures: 0 });
        let open = || {
            warn!(source = %self.source, fingerprint = %key, cool_down_ms = self.policy.cool_down.as_millis() as u64, "circuit opened");
            metrics::counter!("upstream_circuit_opened_total", "source" => self.source.to_string()).increment(1);
            State::Open { until: now + self.policy.cool_down }
        };
        let next = match (state, outcome) {
            (State::HalfOpen { .. }, Outcome::Healthy) => {
                info!(source = %self.source, fingerprint = %key, "circuit closed");
                State::Closed { failures: 0 }
            }
            // An answer from a call admitted before the circuit opened also
            // shows the upstream is back.
            (_, Outcome::Healthy) => State::Closed { failures: 0 },
            (State::Closed { failures }, Outcome::Broken) if failures + 1 >= self.policy.failure_threshold => open(),
            (State::Closed { failures }, Outcome::Broken) => State::Closed { failures: failures + 1 },
            (State::HalfOpen { .. }, Outcome::Broken) if trial => open(),
            (State::HalfOpen { .. }, Outcome::Inconclusive) if trial => State::HalfOpen { trial_in_flight: false },
            (state, _) => state,
        };
        match next {
            State::Closed { failures: 0 } => {
                states.remove(key);
            }
            next => {
                if states.len() >= MAX_TRACKED && !states.contains_key(key) {
                    states.retain(|_, s| matches!(s, State::Open { until } if *until > now));
                }
                states.insert(key.clone(), next);
            }
        }
    }
}

/// Admission for one attempt. Report how it went with [`Permit::settle`];
/// a permit dropped unsettled (a cancelled call) counts as inconclusive.
#[derive(Debug)]
pub struct Permit<'a> {
    breakers: &'a CircuitBreakers,
    key: Fingerprint,
    trial: bool,
    settled: bool,
}

impl Permit<'_> {
    pub fn settle(mut self, outcome: Outcome) {
        self.settled = true;
        self.breakers.settle(&self.key, self.trial, outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breakers.settle(&self.key, self.trial, Outcome::Inconclusive);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::auth::{Credentials, FingerprintKey};

    const POLICY: BreakerPolicy = BreakerPolicy { failure_threshold: 3, cool_down: Duration::from_secs(10) };

    fn key(name: &str) -> Fingerprint {
        let fields = [("token".to_owned(), secrecy::SecretString::from(name))].into();
        Credentials::new(&FingerprintKey::random(), fields).fingerprint().clone()
    }

    fn fail(breakers: &CircuitBreakers, key: &Fingerprint, outcome: Outcome) {
        breakers.admit(key).expect("admitted").settle(outcome);
    }

    fn open_for(breakers: &CircuitBreakers, key: &Fingerprint) -> Option<Duration> {
        match breakers.admit(key) {
            Err(UpstreamFailure::CircuitOpen { retry_after }) => Some(retry_after),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_broken_attempts_only() {
        let breakers = CircuitBreakers::new(SourceName::new("s"), POLICY);
        let a = key("a");
        fail(&breakers, &a, Outcome::Broken);
        fail(&breakers, &a, Outcome::Broken);
        // An answer in between (a 404, say) resets the count.
        fail(&breakers, &a, Outcome::Healthy);
        fail(&breakers, &a, Outcome::Broken);
        fail(&breakers, &a, Outcome::Broken);
        fail(&breakers, &a, Outcome::Inconclusive);
        assert_eq!(open_for(&breakers, &a), None);
        fail(&breakers, &a, Outcome::Broken);
        assert_eq!(open_for(&breakers, &a), Some(Duration::from_secs(10)));
        // Another credential's circuit is its own.
        assert_eq!(open_for(&breakers, &key("b")), None);
    }

    #[tokio::test(start_paused = true)]
    async fn half_opens_after_the_cool_down_for_exactly_one_trial() {
        let breakers = CircuitBreakers::new(SourceName::new("s"), POLICY);
        let a = key("a");
        for _ in 0..3 {
            fail(&breakers, &a, Outcome::Broken);
        }
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(open_for(&breakers, &a), Some(Duration::from_secs(6)));
        tokio::time::advance(Duration::from_secs(6)).await;
        let trial = breakers.admit(&a).expect("trial admitted");
        assert_eq!(open_for(&breakers, &a), Some(TRIAL_WAIT), "one trial at a time");
        trial.settle(Outcome::Broken);
        assert_eq!(open_for(&breakers, &a), Some(Duration::from_secs(10)), "a failed trial reopens");
        tokio::time::advance(Duration::from_secs(10)).await;
        breakers.admit(&a).expect("second trial").settle(Outcome::Healthy);
        assert!(breakers.admit(&a).is_ok() && breakers.admit(&a).is_ok(), "closed again");
        assert!(breakers.states.lock().unwrap().is_empty(), "a closed circuit is not stored");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_trial_lets_the_next_caller_try() {
        let breakers = CircuitBreakers::new(SourceName::new("s"), POLICY);
        let a = key("a");
        for _ in 0..3 {
            fail(&breakers, &a, Outcome::Broken);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(breakers.admit(&a).expect("trial"));
        let trial = breakers.admit(&a).expect("the next caller gets the trial");
        trial.settle(Outcome::Healthy);
        assert_eq!(open_for(&breakers, &a), None);
    }

    #[test]
    fn outcomes_follow_the_failure_kind() {
        assert_eq!(Outcome::of(&Ok(())), Outcome::Healthy);
        for broken in [UpstreamFailure::Timeout, UpstreamFailure::Unavailable, UpstreamFailure::BadResponse] {
            assert_eq!(Outcome::of(&Err(broken)), Outcome::Broken);
        }
        for answered in [UpstreamFailure::Unauthorized, UpstreamFailure::NotFound, UpstreamFailure::Rejected] {
            assert_eq!(Outcome::of(&Err(answered)), Outcome::Healthy);
        }
        assert_eq!(Outcome::of(&Err(UpstreamFailure::RateLimited { retry_after: None })), Outcome::Inconclusive);
    }
}

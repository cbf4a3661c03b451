//! A circuit breaker per source and credential fingerprint. After
//! `failure_threshold` consecutive attempts that show the upstream broken
//! (timeouts, 5xx, unreadable answers) it opens: calls fail at once with
//! `CIRCUIT_OPEN` instead of piling onto an upstream that cannot answer.
//! After `cool_down` one trial call goes through (half-open); its outcome
//! closes the circuit or opens it for another cool-down, and calls arriving
//! meanwhile wait for that outcome (within their deadline) instead of failing.
//! A trial is given back however its call ends: settled, dropped (cancelled),
//! cut by a deadline (inconclusive), or, held by a future nobody polls,
//! expired after the longest a call can take. Keyed by fingerprint
//! because a revoked token or a tenant-specific outage must not cut off
//! other callers of the same source.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
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
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// Cooled down; `trial` is the call sent to find out, while it runs.
    HalfOpen {
        trial: Option<Trial>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Trial {
    /// Tells this trial's permit from an expired one's.
    id: u64,
    /// Past this, the trial is taken as lost and another may start.
    expires: Instant,
}

/// A circuit as reported (the `sources` field, metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    /// Calls fail fast without being sent.
    Open,
    /// Cooled down: the next call, or the one in flight, is the trial.
    HalfOpen,
}

impl Circuit {
    /// The value of the `upstream_circuit_state` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            Circuit::Closed => 0.0,
            Circuit::HalfOpen => 1.0,
            Circuit::Open => 2.0,
        }
    }
}

/// What [`CircuitBreakers::try_admit`] decided.
enum Admission<'a> {
    Go(Permit<'a>),
    /// Another call's trial is in flight until at most `expires`.
    AwaitTrial {
        expires: Instant,
    },
}

/// Past this many tracked fingerprints, settled entries are dropped.
const MAX_TRACKED: usize = 4096;
/// What a caller is told to wait when its deadline passes during another
/// call's trial.
const TRIAL_WAIT: Duration = Duration::from_secs(1);

/// The breakers of one source, one per credential fingerprint. Only keys
/// with recent failures are stored; a missing key is a closed circuit.
#[derive(Debug)]
pub struct CircuitBreakers {
    source: SourceName,
    policy: BreakerPolicy,
    /// The longest a trial call can take (quota wait plus attempt); a trial
    /// held longer (by a future nobody polls) no longer blocks the circuit.
    trial_timeout: Duration,
    // A plain mutex: held for a map lookup, never across an await.
    states: Mutex<HashMap<Fingerprint, State>>,
    /// Woken whenever a half-open circuit settles, for calls waiting on its trial.
    trial_settled: Notify,
    next_trial: AtomicU64,
}

impl CircuitBreakers {
    pub fn new(source: SourceName, policy: BreakerPolicy, trial_timeout: Duration) -> Self {
        Self {
            source,
            policy,
            trial_timeout,
            states: Mutex::default(),
            trial_settled: Notify::new(),
            next_trial: AtomicU64::new(0),
        }
    }

    /// Lets a call through, or says how long the circuit stays open. While
    /// another call's trial is in flight this waits for its outcome, until
    /// `deadline` at most: a request that fans out (two lists, lookups per
    /// key) would otherwise fail its own siblings fast and drop its trial
    /// with them, every time.
    pub async fn admit(&self, key: &Fingerprint, deadline: Option<Instant>) -> Result<Permit<'_>, UpstreamFailure> {
        loop {
            // Registered before the state is read, so no settle in between is missed.
            let settled = self.trial_settled.notified();
            let expires = match self.try_admit(key)? {
                Admission::Go(permit) => return Ok(permit),
                Admission::AwaitTrial { expires } => expires,
            };
            let until = deadline.map_or(expires, |deadline| deadline.min(expires));
            if tokio::time::timeout_at(until, settled).await.is_err() && until < expires {
                return Err(UpstreamFailure::CircuitOpen { retry_after: TRIAL_WAIT });
            }
        }
    }

    /// The circuit of `key` now, without admitting anything.
    pub fn circuit(&self, key: &Fingerprint) -> Circuit {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.get(key).map_or(Circuit::Closed, |state| Self::report(*state, Instant::now()))
    }

    /// How many credentials' circuits are not closed.
    pub fn not_closed(&self) -> usize {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        states.values().filter(|state| Self::report(**state, now) != Circuit::Closed).count()
    }

    fn report(state: State, now: Instant) -> Circuit {
        match state {
            State::Closed { .. } => Circuit::Closed,
            State::Open { until } if now < until => Circuit::Open,
            State::Open { .. } | State::HalfOpen { .. } => Circuit::HalfOpen,
        }
    }

    fn try_admit(&self, key: &Fingerprint) -> Result<Admission<'_>, UpstreamFailure> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let state = states.get(key).copied().unwrap_or(State::Closed { failures: 0 });
        let trial = match state {
            State::Closed { .. } => None,
            State::Open { until } if now < until => {
                return Err(UpstreamFailure::CircuitOpen { retry_after: until - now });
            }
            State::HalfOpen { trial: Some(trial) } if now < trial.expires => {
                return Ok(Admission::AwaitTrial { expires: trial.expires });
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                if let State::HalfOpen { trial: Some(lost) } = state {
                    warn!(source = %self.source, fingerprint = %key, trial = lost.id, "circuit trial expired unsettled");
                }
                let trial =
                    Trial { id: self.next_trial.fetch_add(1, Ordering::Relaxed), expires: now + self.trial_timeout };
                states.insert(key.clone(), State::HalfOpen { trial: Some(trial) });
                Some(trial.id)
            }
        };
        Ok(Admission::Go(Permit { breakers: self, key: key.clone(), trial, settled: false }))
    }

    fn settle(&self, key: &Fingerprint, trial: Option<u64>, outcome: Outcome) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let state = states.get(key).copied().unwrap_or(State::Closed { failures: 0 });
        // Only the current trial speaks for a half-open circuit; an expired
        // one's late failure is one more stale answer.
        let current_trial = matches!(state, State::HalfOpen { trial: Some(t) } if Some(t.id) == trial);
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
            (State::HalfOpen { .. }, Outcome::Broken) if current_trial => open(),
            // Nothing learned (cancelled, cut by a deadline, rate limited):
            // the next call is the trial.
            (State::HalfOpen { .. }, Outcome::Inconclusive) if current_trial => State::HalfOpen { trial: None },
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
        drop(states);
        if matches!(state, State::HalfOpen { .. }) && next != state {
            self.trial_settled.notify_waiters();
        }
    }
}

/// Admission for one attempt. Report how it went with [`Permit::settle`];
/// a permit dropped unsettled (a cancelled call) counts as inconclusive, so
/// a trial is given back on every path.
#[derive(Debug)]
pub struct Permit<'a> {
    breakers: &'a CircuitBreakers,
    key: Fingerprint,
    /// The trial's id when this call is the half-open circuit's trial.
    trial: Option<u64>,
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
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;

    use super::*;
    use crate::upstream::auth::{Credentials, FingerprintKey};

    const POLICY: BreakerPolicy = BreakerPolicy { failure_threshold: 3, cool_down: Duration::from_secs(10) };
    const TRIAL_TIMEOUT: Duration = Duration::from_secs(5);

    fn breakers() -> CircuitBreakers {
        CircuitBreakers::new(SourceName::new("s"), POLICY, TRIAL_TIMEOUT)
    }

    fn key(name: &str) -> Fingerprint {
        let fields = [("token".to_owned(), secrecy::SecretString::from(name))].into();
        Credentials::new(&FingerprintKey::random(), fields).fingerprint().clone()
    }

    /// Admission without waiting: `None` while another call's trial runs.
    fn admit_now<'a>(breakers: &'a CircuitBreakers, key: &Fingerprint) -> Option<Result<Permit<'a>, UpstreamFailure>> {
        match breakers.try_admit(key) {
            Ok(Admission::Go(permit)) => Some(Ok(permit)),
            Ok(Admission::AwaitTrial { .. }) => None,
            Err(failure) => Some(Err(failure)),
        }
    }

    fn fail(breakers: &CircuitBreakers, key: &Fingerprint, outcome: Outcome) {
        admit_now(breakers, key).expect("not waiting").expect("admitted").settle(outcome);
    }

    fn open_for(breakers: &CircuitBreakers, key: &Fingerprint) -> Option<Duration> {
        match admit_now(breakers, key) {
            Some(Err(UpstreamFailure::CircuitOpen { retry_after })) => Some(retry_after),
            _ => None,
        }
    }

    fn is_closed(breakers: &CircuitBreakers, key: &Fingerprint) -> bool {
        matches!(admit_now(breakers, key), Some(Ok(Permit { trial: None, .. })))
    }

    /// Opens `key`'s circuit and waits out the cool-down: the next call is a trial.
    async fn half_open(breakers: &CircuitBreakers, key: &Fingerprint) {
        for _ in 0..POLICY.failure_threshold {
            fail(breakers, key, Outcome::Broken);
        }
        tokio::time::advance(POLICY.cool_down).await;
    }

    fn trial<'a>(breakers: &'a CircuitBreakers, key: &Fingerprint) -> Permit<'a> {
        let permit = admit_now(breakers, key).expect("not waiting").expect("trial admitted");
        assert!(permit.trial.is_some(), "{permit:?}");
        assert!(admit_now(breakers, key).is_none(), "one trial at a time");
        permit
    }

    /// Polls `future` once: `None` while it is pending.
    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let waker = futures::task::noop_waker();
        match future.poll(&mut std::task::Context::from_waker(&waker)) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_broken_attempts_only() {
        let breakers = breakers();
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
    async fn a_successful_trial_closes_the_circuit() {
        let breakers = breakers();
        let a = key("a");
        for _ in 0..3 {
            fail(&breakers, &a, Outcome::Broken);
        }
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(open_for(&breakers, &a), Some(Duration::from_secs(6)));
        tokio::time::advance(Duration::from_secs(6)).await;
        trial(&breakers, &a).settle(Outcome::Healthy);
        assert!(is_closed(&breakers, &a) && is_closed(&breakers, &a), "closed again");
        assert!(breakers.states.lock().unwrap().is_empty(), "a closed circuit is not stored");
    }

    #[tokio::test(start_paused = true)]
    async fn the_reported_circuit_follows_the_state_without_admitting_a_call() {
        let breakers = breakers();
        let (a, b) = (key("a"), key("b"));
        for _ in 0..3 {
            fail(&breakers, &a, Outcome::Broken);
        }
        assert_eq!((breakers.circuit(&a), breakers.circuit(&b)), (Circuit::Open, Circuit::Closed));
        assert_eq!(breakers.not_closed(), 1);
        tokio::time::advance(POLICY.cool_down).await;
        assert_eq!(breakers.circuit(&a), Circuit::HalfOpen, "cooled down: the next call is the trial");
        trial(&breakers, &a).settle(Outcome::Healthy);
        assert_eq!((breakers.circuit(&a), breakers.not_closed()), (Circuit::Closed, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_the_circuit_for_another_cool_down() {
        let breakers = breakers();
        let a = key("a");
        half_open(&breakers, &a).await;
        trial(&breakers, &a).settle(Outcome::Broken);
        assert_eq!(open_for(&breakers, &a), Some(POLICY.cool_down));
        tokio::time::advance(POLICY.cool_down).await;
        trial(&breakers, &a).settle(Outcome::Healthy);
        assert!(is_closed(&breakers, &a));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_trial_lets_the_next_caller_try() {
        let breakers = breakers();
        let a = key("a");
        half_open(&breakers, &a).await;
        drop(trial(&breakers, &a));
        trial(&breakers, &a).settle(Outcome::Healthy);
        assert!(is_closed(&breakers, &a));
    }

    #[tokio::test(start_paused = true)]
    async fn an_inconclusive_trial_lets_the_next_caller_try() {
        // A trial cut short by its request's deadline, or rate limited.
        let breakers = breakers();
        let a = key("a");
        half_open(&breakers, &a).await;
        trial(&breakers, &a).settle(Outcome::Inconclusive);
        trial(&breakers, &a).settle(Outcome::Broken);
        assert_eq!(open_for(&breakers, &a), Some(POLICY.cool_down));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_trial_call_gives_its_trial_back() {
        let breakers = breakers();
        let a = key("a");
        half_open(&breakers, &a).await;
        let call = async {
            let permit = breakers.admit(&a, None).await?;
            std::future::pending::<()>().await;
            permit.settle(Outcome::Healthy);
            Ok::<_, UpstreamFailure>(())
        };
        let mut call = Box::pin(call);
        assert!(poll_once(call.as_mut()).is_none(), "the trial call is in flight");
        assert!(admit_now(&breakers, &a).is_none(), "its trial is taken");
        drop(call);
        trial(&breakers, &a).settle(Outcome::Healthy);
        assert!(is_closed(&breakers, &a));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_during_a_trial_wait_for_it_and_go_when_it_closes_the_circuit() {
        let breakers = breakers();
        let a = key("a");
        half_open(&breakers, &a).await;
        let trial = trial(&breakers, &a);
        let mut sibling = pin!(breakers.admit(&a, Some(Instant::now() + Duration::from_secs(3))));
        assert!(poll_once(sibling.as_mut()).is_none(), "waits for the trial");
        trial.settle(Outcome::Healthy);
        let permit = sibling.await.expect("admitted once the trial closed the circuit");
        assert_eq!(permit.trial, None);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_during_a_trial_fail_when_it_reopens_the_circuit() {
        let breakers = breakers();
        let a = key("a");
        half_open(&breakers, &a).await;
        let trial = trial(&breakers, &a);
        let mut sibling = pin!(breakers.admit(&a, None));
        assert!(poll_once(sibling.as_mut()).is_none());
        trial.settle(Outcome::Broken);
        assert_eq!(sibling.await.unwrap_err(), UpstreamFailure::CircuitOpen { retry_after: POLICY.cool_down });
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_call_takes_over_a_trial_that_was_dropped() {
        let breakers = breakers();
        let a = key("a");
        half_open(&breakers, &a).await;
        let trial = trial(&breakers, &a);
        let mut sibling = pin!(breakers.admit(&a, None));
        assert!(poll_once(sibling.as_mut()).is_none());
        drop(trial);
        let permit = sibling.await.expect("admitted");
        assert!(permit.trial.is_some(), "the waiting call is the new trial");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waits_for_a_trial_no_longer_than_its_deadline() {
        let breakers = breakers();
        let a = key("a");
        half_open(&breakers, &a).await;
        let _trial = trial(&breakers, &a);
        let deadline = Instant::now() + Duration::from_secs(2);
        let refused = breakers.admit(&a, Some(deadline)).await.unwrap_err();
        assert_eq!(refused, UpstreamFailure::CircuitOpen { retry_after: TRIAL_WAIT });
        assert_eq!(Instant::now(), deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trial_nobody_settles_expires_and_its_late_outcome_is_ignored() {
        let breakers = breakers();
        let a = key("a");
        half_open(&breakers, &a).await;
        // Held by a future that is neither polled nor dropped.
        let stuck = trial(&breakers, &a);
        let started = Instant::now();
        let next = breakers.admit(&a, None).await.expect("a new trial once the old one expired");
        assert_eq!(Instant::now() - started, TRIAL_TIMEOUT);
        assert!(next.trial.is_some() && next.trial != stuck.trial, "{next:?} {stuck:?}");
        stuck.settle(Outcome::Broken);
        assert!(admit_now(&breakers, &a).is_none(), "the lost trial's failure does not reopen the circuit");
        next.settle(Outcome::Healthy);
        assert!(is_closed(&breakers, &a));
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

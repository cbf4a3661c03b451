//! Outgoing rate limiting per source and credential fingerprint, so the
//! gateway itself stays under each upstream's documented limit instead of
//! learning it from 429s. The limit is a number the connector declares (its
//! API's documented quota) and config can override; the mechanics are here,
//! once.
//!
//! The rate is a sliding window: a call may start when fewer than `requests`
//! calls started in the `per` before it. Calls reserve their start time in
//! arrival order, so waiters queue fairly. A call whose start would fall
//! after its request's deadline does not wait at all: it fails at once with
//! `UPSTREAM_RATE_LIMITED` and the wait it would have needed. An upstream's
//! own `Retry-After` pauses the same key, so concurrent callers stop too.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::auth::Fingerprint;
use super::error::UpstreamFailure;

/// An upstream's request quota for one credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls allowed per `per`.
    pub requests: u32,
    pub per: Duration,
    /// Calls allowed in flight at once, when the upstream limits that too.
    pub concurrency: Option<u32>,
}

impl RateLimit {
    pub const fn new(requests: u32, per: Duration) -> Self {
        Self { requests, per, concurrency: None }
    }

    pub const fn with_concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = Some(concurrency);
        self
    }
}

/// Sliding-window state of one key.
#[derive(Debug, Default)]
struct Window {
    /// Start times of the latest calls (reserved, possibly in the future),
    /// ascending; never more than `requests` of them.
    starts: VecDeque<Instant>,
    /// No call before this (an upstream asked us to wait).
    paused_until: Option<Instant>,
}

#[derive(Debug)]
struct Key {
    // A plain mutex: held to compute a reservation, never across an await.
    window: Mutex<Window>,
    in_flight: Option<Arc<Semaphore>>,
}

/// Past this many tracked keys, idle ones are forgotten.
const MAX_KEYS: usize = 4096;

/// The limiter of one source.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Option<RateLimit>,
    keys: Mutex<HashMap<Fingerprint, Arc<Key>>>,
}

/// Held for the duration of one call (it carries the concurrency permit).
#[derive(Debug)]
pub struct Slot {
    _in_flight: Option<OwnedSemaphorePermit>,
}

impl RateLimiter {
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self { limit, keys: Mutex::default() }
    }

    fn key(&self, fingerprint: &Fingerprint) -> Arc<Key> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_KEYS && !keys.contains_key(fingerprint) {
            let now = Instant::now();
            let per = self.limit.map_or(Duration::ZERO, |l| l.per);
            keys.retain(|_, key| !key.is_idle(now, per));
        }
        keys.entry(fingerprint.clone())
            .or_insert_with(|| {
                let in_flight = self.limit.and_then(|l| l.concurrency).map(|n| Arc::new(Semaphore::new(n as usize)));
                Arc::new(Key { window: Mutex::default(), in_flight })
            })
            .clone()
    }

    /// Waits for this key's next free slot, or fails at once with
    /// `RateLimited` when that slot (or a free concurrency permit) would
    /// come after `deadline`.
    pub async fn acquire(&self, fingerprint: &Fingerprint, deadline: Option<Instant>) -> Result<Slot, UpstreamFailure> {
        let key = self.key(fingerprint);
        let start = key.reserve(self.limit, Instant::now(), deadline)?;
        tokio::time::sleep_until(start).await;
        let Some(semaphore) = key.in_flight.clone() else { return Ok(Slot { _in_flight: None }) };
        let permit = match deadline {
            None => semaphore.acquire_owned().await,
            Some(deadline) => tokio::time::timeout_at(deadline, semaphore.acquire_owned())
                .await
                .map_err(|_| UpstreamFailure::RateLimited { retry_after: None })?,
        };
        // The semaphore is never closed, so acquiring cannot fail.
        Ok(Slot { _in_flight: permit.ok() })
    }

    /// How much of one key a single request may hold at once (see
    /// `budget::share`): half its quota and half its concurrency, at least
    /// one; `None` when nothing is limited, so nothing is contended.
    pub fn fair_share(&self) -> Option<usize> {
        let limit = self.limit?;
        let half = |n: u32| (n as usize / 2).max(1);
        Some(limit.concurrency.map_or(half(limit.requests), |c| half(c).min(half(limit.requests))))
    }

    /// This key's quota left now; `None` when the source is not limited.
    /// Reads without registering the key.
    pub fn remaining(&self, fingerprint: &Fingerprint) -> Option<Remaining> {
        let limit = self.limit?;
        let key = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get(fingerprint).cloned();
        let requests = key.map_or(limit.requests, |key| key.remaining(limit, Instant::now()));
        Some(Remaining { limit, requests })
    }

    /// Holds every call of this key until `until`, as the upstream asked.
    pub fn pause_until(&self, fingerprint: &Fingerprint, until: Instant) {
        let key = self.key(fingerprint);
        let mut window = key.window.lock().unwrap_or_else(|p| p.into_inner());
        window.paused_until = Some(window.paused_until.map_or(until, |current| current.max(until)));
    }
}

/// What is left of one key's quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remaining {
    pub limit: RateLimit,
    /// Calls that may start now without waiting: zero while an upstream's
    /// `Retry-After` or reset pauses the key.
    pub requests: u32,
}

impl Key {
    /// Reserves the earliest start allowed at `now` and returns it.
    fn reserve(
        &self,
        limit: Option<RateLimit>,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Result<Instant, UpstreamFailure> {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let mut start = window.paused_until.map_or(now, |until| until.max(now));
        if let Some(limit) = limit {
            let requests = limit.requests.max(1) as usize;
            while window.starts.front().is_some_and(|t| *t + limit.per <= now) {
                window.starts.pop_front();
            }
            // First come, first served: never before an earlier reservation.
            start = start.max(window.starts.back().copied().unwrap_or(now));
            if window.starts.len() >= requests {
                start = start.max(window.starts[window.starts.len() - requests] + limit.per);
            }
        }
        if deadline.is_some_and(|deadline| start >= deadline && start > now) {
            return Err(UpstreamFailure::RateLimited { retry_after: Some(start - now) });
        }
        if let Some(limit) = limit {
            window.starts.push_back(start);
            while window.starts.len() > limit.requests.max(1) as usize {
                window.starts.pop_front();
            }
        }
        Ok(start)
    }

    fn remaining(&self, limit: RateLimit, now: Instant) -> u32 {
        let window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if window.paused_until.is_some_and(|until| until > now) {
            return 0;
        }
        let used = window.starts.iter().filter(|start| **start + limit.per > now).count();
        limit.requests.saturating_sub(u32::try_from(used).unwrap_or(u32::MAX))
    }

    fn is_idle(&self, now: Instant, per: Duration) -> bool {
        let window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let recent = window.starts.back().is_some_and(|t| *t + per > now);
        let paused = window.paused_until.is_some_and(|until| until > now);
        let busy = self.in_flight.as_ref().is_some_and(|s| s.available_permits() == 0);
        !recent && !paused && !busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::auth::{Credentials, FingerprintKey};

    fn key(name: &str) -> Fingerprint {
        let fields = [("token".to_owned(), secrecy::SecretString::from(name))].into();
        Credentials::new(&FingerprintKey::random(), fields).fingerprint().clone()
    }

    fn elapsed_since(start: Instant) -> Duration {
        Instant::now() - start
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_quota_wait_for_the_window_to_slide() {
        let limiter = RateLimiter::new(Some(RateLimit::new(3, Duration::from_secs(1))));
        let a = key("a");
        let begin = Instant::now();
        for _ in 0..3 {
            limiter.acquire(&a, None).await.unwrap();
        }
        assert_eq!(elapsed_since(begin), Duration::ZERO, "the quota is available at once");
        limiter.acquire(&a, None).await.unwrap();
        assert_eq!(elapsed_since(begin), Duration::from_secs(1), "the fourth waits for the first to age out");
        // Another credential has its own quota.
        let before = Instant::now();
        limiter.acquire(&key("b"), None).await.unwrap();
        assert_eq!(elapsed_since(before), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_of_the_period_ever_holds_more_than_the_quota() {
        let limiter = Arc::new(RateLimiter::new(Some(RateLimit::new(5, Duration::from_millis(500)))));
        let a = key("a");
        let starts = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..23)
            .map(|_| {
                let (limiter, a, starts) = (limiter.clone(), a.clone(), starts.clone());
                tokio::spawn(async move {
                    limiter.acquire(&a, None).await.unwrap();
                    starts.lock().unwrap().push(Instant::now());
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let mut starts = starts.lock().unwrap().clone();
        starts.sort();
        for (i, start) in starts.iter().enumerate() {
            let in_window = starts[i..].iter().take_while(|t| **t < *start + Duration::from_millis(500)).count();
            assert!(in_window <= 5, "{in_window} calls within one period");
        }
        assert_eq!(*starts.last().unwrap() - starts[0], Duration::from_millis(2000), "23 calls need 4 slides");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_fails_at_once_without_using_a_slot() {
        let limiter = RateLimiter::new(Some(RateLimit::new(1, Duration::from_secs(10))));
        let a = key("a");
        limiter.acquire(&a, None).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let begin = Instant::now();
        let failure = limiter.acquire(&a, Some(deadline)).await.unwrap_err();
        assert_eq!(failure, UpstreamFailure::RateLimited { retry_after: Some(Duration::from_secs(10)) });
        assert_eq!(elapsed_since(begin), Duration::ZERO, "failed fast");
        // The refused call reserved nothing: the next slot is still at 10 s.
        tokio::time::advance(Duration::from_secs(10)).await;
        limiter.acquire(&a, Some(Instant::now() + Duration::from_millis(1))).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_upstream_pause_holds_every_call_of_that_key() {
        let limiter = RateLimiter::new(None);
        let (a, b) = (key("a"), key("b"));
        limiter.pause_until(&a, Instant::now() + Duration::from_secs(30));
        let soon = Some(Instant::now() + Duration::from_secs(5));
        assert_eq!(
            limiter.acquire(&a, soon).await.unwrap_err(),
            UpstreamFailure::RateLimited { retry_after: Some(Duration::from_secs(30)) }
        );
        limiter.acquire(&b, soon).await.unwrap();
        let begin = Instant::now();
        limiter.acquire(&a, None).await.unwrap();
        assert_eq!(elapsed_since(begin), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn the_remaining_quota_counts_the_window_and_pauses_per_key() {
        let limit = RateLimit::new(3, Duration::from_secs(10));
        let limiter = RateLimiter::new(Some(limit));
        let (a, b) = (key("a"), key("b"));
        limiter.acquire(&a, None).await.unwrap();
        limiter.acquire(&a, None).await.unwrap();
        assert_eq!(limiter.remaining(&a), Some(Remaining { limit, requests: 1 }));
        assert_eq!(limiter.remaining(&b), Some(Remaining { limit, requests: 3 }), "another key is untouched");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(limiter.remaining(&a).unwrap().requests, 3, "the window slid past both calls");
        limiter.pause_until(&b, Instant::now() + Duration::from_secs(5));
        assert_eq!(limiter.remaining(&b).unwrap().requests, 0, "paused by the upstream");
        assert_eq!(RateLimiter::new(None).remaining(&a), None);
    }

    #[test]
    fn one_operation_may_hold_half_of_a_quota_and_of_its_concurrency() {
        let share = |limit: Option<RateLimit>| RateLimiter::new(limit).fair_share();
        let per_second = |n| RateLimit::new(n, Duration::from_secs(1));
        assert_eq!(share(None), None);
        assert_eq!(share(Some(per_second(10))), Some(5));
        assert_eq!(share(Some(per_second(1))), Some(1));
        assert_eq!(share(Some(per_second(100).with_concurrency(5))), Some(2));
        assert_eq!(share(Some(per_second(4).with_concurrency(50))), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_capped_per_key() {
        let limit = RateLimit::new(100, Duration::from_secs(1)).with_concurrency(2);
        let limiter = RateLimiter::new(Some(limit));
        let a = key("a");
        let first = limiter.acquire(&a, None).await.unwrap();
        let _second = limiter.acquire(&a, None).await.unwrap();
        let deadline = Some(Instant::now() + Duration::from_secs(1));
        assert_eq!(
            limiter.acquire(&a, deadline).await.unwrap_err(),
            UpstreamFailure::RateLimited { retry_after: None }
        );
        drop(first);
        limiter.acquire(&a, deadline).await.unwrap();
    }
}

//! Whole responses of identical queries, kept as the bytes that were sent:
//! a repeat is answered without executing or serializing anything.
//!
//! The key is a SHA-256 of what decides the answer: the document (after
//! persisted-query resolution), the operation name, the variables, the
//! request's extensions, and every source's credential fingerprint of the
//! caller, so two callers never share an answer. Everything else that
//! decides it (the schema, the limits, the sources, the cache's TTLs) is
//! the app's configuration, and each app (so each reload) has its own
//! response cache. Every limit is a function of the key and that
//! configuration, and only answers that executed without any error are
//! kept, so a request a limit would refuse never finds a kept answer.
//!
//! An answer is kept for as long as the shortest freshness left of the
//! upstream answers it was built from (`upstream::freshness`), never when
//! it used something uncached, stale or live, had errors or extensions
//! (`staleSources`), or is not a query. Concurrent identical misses run
//! once: moka's entry API makes the others wait for that answer.
//!
//! [`ResponseStore`] is the whole interface of a store of answers (bytes in,
//! bytes out, with a time-to-live, by key): a shared second level goes
//! behind it.

use std::future::Future;
use std::time::{Duration, Instant};

use async_graphql::Request;
use axum::body::Bytes;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::Expiry;
use sha2::{Digest, Sha256};

use crate::sources::Caller;

/// What identifies an answer: a digest, so keys are small and hold no
/// document, variable or fingerprint in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponseKey([u8; 32]);

impl ResponseKey {
    /// The key of `request` (already resolved) as `caller` asks it.
    pub fn new(request: &Request, caller: &Caller) -> Self {
        let mut digest = Sha256::new();
        let mut field = |bytes: &[u8]| {
            // Length-prefixed, so no two different requests write the same bytes.
            digest.update((bytes.len() as u64).to_le_bytes());
            digest.update(bytes);
        };
        field(request.query.as_bytes());
        field(request.operation_name.as_deref().unwrap_or_default().as_bytes());
        // GraphQL values have string keys only: serializing them cannot fail.
        field(&serde_json::to_vec(&request.variables).unwrap_or_default());
        field(&serde_json::to_vec(&request.extensions).unwrap_or_default());
        for (source, identity) in caller.identity() {
            field(source.as_str().as_bytes());
            match identity {
                Ok(fingerprint) => field(fingerprint.as_bytes()),
                Err(code) => field(format!("!{code}").as_bytes()),
            }
        }
        Self(digest.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A store of answers by key. Implementations decide what they keep and
/// for how long within `ttl`; `get` never returns an answer past its `ttl`.
#[async_trait::async_trait]
pub trait ResponseStore: Send + Sync {
    async fn get(&self, key: &ResponseKey) -> Option<Bytes>;
    async fn put(&self, key: ResponseKey, body: Bytes, ttl: Duration);
}

/// One kept answer.
#[derive(Clone)]
struct Kept {
    body: Bytes,
    ttl: Duration,
    kept_at: Instant,
}

/// Bookkeeping per entry, beside the body.
const ENTRY_OVERHEAD: usize = 96;

struct KeptFor;

impl Expiry<ResponseKey, Kept> for KeptFor {
    fn expire_after_create(&self, _: &ResponseKey, kept: &Kept, _: Instant) -> Option<Duration> {
        Some(kept.ttl)
    }

    fn expire_after_update(&self, _: &ResponseKey, kept: &Kept, _: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(kept.ttl)
    }
}

/// The process-local store, bounded in bytes, least recently used first out.
pub struct ResponseCache {
    store: moka::future::Cache<ResponseKey, Kept>,
    max_bytes: u64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache").field("entries", &self.store.entry_count()).finish()
    }
}

/// What answering a request through the cache gave.
#[derive(Debug)]
pub enum Answer<T> {
    /// A kept answer: the bytes to send.
    Kept(Bytes),
    /// It ran for this request: its outcome.
    Ran(T),
}

/// What running a request gave: its outcome, and its body with how long it
/// may be kept, when it may be.
#[derive(Debug)]
pub struct Ran<T> {
    pub outcome: T,
    pub keep: Option<(Bytes, Duration)>,
}

impl ResponseCache {
    /// The cache `cache.response_max_bytes` asks for; `None` when 0 (off).
    pub fn new(max_bytes: u64) -> Option<Self> {
        if max_bytes == 0 {
            return None;
        }
        // Exported from the start, at zero, rather than from their first count.
        for name in [HITS, MISSES, STORES, EVICTIONS] {
            metrics::counter!(name).increment(0);
        }
        let store = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &ResponseKey, kept: &Kept| weight(&kept.body).try_into().unwrap_or(u32::MAX))
            .expire_after(KeptFor)
            // Admit every answer: TinyLFU, moka's default, may turn a new one
            // away, and the repeat that follows would miss.
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(|_, _, cause| {
                if cause == RemovalCause::Size {
                    count(EVICTIONS);
                }
            })
            .build();
        Some(Self { store, max_bytes })
    }

    /// The kept answer for `key`, or what `run` gives, kept when it says so.
    /// While one request runs, identical ones wait for its answer (no
    /// longer than its own deadline, as long as theirs); when it may not be
    /// kept they run themselves (the upstream cache still shares their calls).
    pub async fn answer<T, F>(&self, key: ResponseKey, run: impl FnOnce() -> F) -> Answer<T>
    where
        F: Future<Output = Ran<T>>,
    {
        let mut pending = Some(run);
        let mut outcome = None;
        let init = async {
            let ran = pending.take()?().await;
            outcome = Some(ran.outcome);
            let (body, ttl) = ran.keep.filter(|(body, _)| weight(body) <= self.max_bytes)?;
            count(STORES);
            Some(Kept { body, ttl, kept_at: Instant::now() })
        };
        let entry = self.store.entry(key).or_optionally_insert_with(init).await;
        if let Some(outcome) = outcome {
            count(MISSES);
            return Answer::Ran(outcome);
        }
        match (entry, pending) {
            (Some(entry), _) if entry.value().kept_at.elapsed() < entry.value().ttl => {
                count(HITS);
                Answer::Kept(entry.into_value().body)
            }
            // The answer it waited for may not be kept: run it here.
            (_, Some(run)) => {
                count(MISSES);
                Answer::Ran(run().await.outcome)
            }
            // `run` was taken only by `init`, which then set `outcome`.
            (_, None) => unreachable!("init ran without an outcome"),
        }
    }

    /// Entries and their weight in bytes, for `/metrics`.
    pub fn usage(&self) -> (u64, u64) {
        (self.store.entry_count(), self.store.weighted_size())
    }
}

#[async_trait::async_trait]
impl ResponseStore for ResponseCache {
    async fn get(&self, key: &ResponseKey) -> Option<Bytes> {
        self.store.get(key).await.filter(|kept| kept.kept_at.elapsed() < kept.ttl).map(|kept| kept.body)
    }

    async fn put(&self, key: ResponseKey, body: Bytes, ttl: Duration) {
        if weight(&body) <= self.max_bytes && !ttl.is_zero() {
            self.store.insert(key, Kept { body, ttl, kept_at: Instant::now() }).await;
        }
    }
}

fn weight(body: &Bytes) -> u64 {
    (body.len() + ENTRY_OVERHEAD) as u64
}

const HITS: &str = "response_cache_hits_total";
const MISSES: &str = "response_cache_misses_total";
const STORES: &str = "response_cache_stores_total";
const EVICTIONS: &str = "response_cache_evictions_total";

fn count(name: &'static str) {
    metrics::counter!(name).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(body: &'static str, ttl: Option<u64>) -> Ran<&'static str> {
        Ran { outcome: body, keep: ttl.map(|secs| (Bytes::from_static(body.as_bytes()), Duration::from_secs(secs))) }
    }

    #[tokio::test]
    async fn kept_answers_are_served_and_unkeepable_ones_run_every_time() {
        let cache = ResponseCache::new(1 << 20).unwrap();
        let key = |n: u8| ResponseKey([n; 32]);
        assert!(matches!(cache.answer(key(1), || async { ran("a", Some(60)) }).await, Answer::Ran("a")));
        match cache.answer(key(1), || async { ran("b", Some(60)) }).await {
            Answer::Kept(body) => assert_eq!(body, "a"),
            Answer::Ran(other) => panic!("ran again: {other}"),
        }
        assert!(matches!(cache.answer(key(2), || async { ran("c", None) }).await, Answer::Ran("c")));
        assert!(matches!(cache.answer(key(2), || async { ran("d", None) }).await, Answer::Ran("d")));
        assert_eq!(cache.get(&key(2)).await, None);
    }

    #[tokio::test]
    async fn concurrent_identical_misses_run_once() {
        let cache = ResponseCache::new(1 << 20).unwrap();
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let run = || async {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::task::yield_now().await;
            ran("a", Some(60))
        };
        let (first, second) =
            tokio::join!(cache.answer(ResponseKey([1; 32]), run), cache.answer(ResponseKey([1; 32]), run));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        let kept = [first, second].into_iter().filter(|a| matches!(a, Answer::Kept(_))).count();
        assert_eq!(kept, 1, "one ran, the other got its bytes");
    }

    #[tokio::test]
    async fn the_byte_bound_evicts() {
        let cache = ResponseCache::new(4096).unwrap();
        let body = Bytes::from(vec![b'x'; 1000]);
        for n in 0..20 {
            cache.put(ResponseKey([n; 32]), body.clone(), Duration::from_secs(60)).await;
        }
        cache.store.run_pending_tasks().await;
        let (entries, bytes) = cache.usage();
        assert!(bytes <= 4096 && entries <= 4, "{entries} entries, {bytes} bytes");
    }

    #[tokio::test]
    async fn answers_larger_than_the_cache_are_not_kept() {
        let cache = ResponseCache::new(4096).unwrap();
        let big: &'static str = Box::leak("x".repeat(5000).into_boxed_str());
        cache.answer(ResponseKey([1; 32]), || async { ran(big, Some(60)) }).await;
        assert_eq!(cache.get(&ResponseKey([1; 32])).await, None);
    }
}

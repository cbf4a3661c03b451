//! The one cache of upstream answers, shared by every request: ledger
//! responses for a few seconds, items and locations for minutes (moka, with a
//! time-to-live per source and resource and a size bound in bytes).
//!
//! Every key starts with the caller's credential fingerprint, so one caller's
//! answers never serve another. Errors are never stored. Optionally an
//! expired item, location or stock answer stands in for a failing source
//! (`stale_if_error`), reported to the caller; never after an auth failure. Concurrent misses
//! for the same key cost one upstream call: ledger responses coalesce through
//! moka's `or_try_insert_with`; entity lookups, which must stay batched,
//! through a table of in-flight batches (`flights`) that later lookups join.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use moka::Expiry;
use serde::Serialize;
use url::Url;

use super::auth::{Credentials, Fingerprint};
use super::deadline;
use super::error::{UpstreamError, UpstreamFailure};
use super::freshness;
use super::settled::{Changes, Covers, Settled};
use crate::clock::Clock;
use crate::config::CacheConfig;
use crate::model::SourceName;

/// What kind of answer an entry holds; each has its own time-to-live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A raw upstream ledger response, keyed by its full URL.
    Ledger,
    /// An item by native key.
    Item,
    /// A location by native key.
    Location,
    /// The stock levels at a location.
    Stock,
}

impl Resource {
    pub const ALL: [Resource; 4] = [Resource::Ledger, Resource::Item, Resource::Location, Resource::Stock];

    /// The `resource` label of the cache metrics.
    pub fn label(self) -> &'static str {
        match self {
            Resource::Ledger => "ledger",
            Resource::Item => "item",
            Resource::Location => "location",
            Resource::Stock => "stock",
        }
    }
}

/// One source's times-to-live; zero disables caching that resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttls {
    pub ledger: Duration,
    pub item: Duration,
    pub location: Duration,
    /// How long past its time-to-live an entity answer may stand in for a
    /// failing source. Ledger pages never do: a stale page would hide the
    /// entries written since, and the cursor would then move past them.
    pub stale_if_error: Duration,
}

impl Ttls {
    fn of(&self, resource: Resource) -> Duration {
        match resource {
            Resource::Ledger => self.ledger,
            Resource::Item => self.item,
            Resource::Location | Resource::Stock => self.location,
        }
    }
}

/// Whose answers, from which source, of which kind: the part of a key that
/// keeps callers, sources and resources apart.
#[derive(Clone, Debug)]
pub struct Scope {
    pub fingerprint: Fingerprint,
    pub source: SourceName,
    pub resource: Resource,
}

impl Scope {
    pub fn new(credentials: &Credentials, source: &SourceName, resource: Resource) -> Self {
        Self { fingerprint: credentials.fingerprint().clone(), source: source.clone(), resource }
    }

    fn key(&self, key: &str) -> CacheKey {
        CacheKey {
            fingerprint: self.fingerprint.clone(),
            source: self.source.clone(),
            resource: self.resource,
            key: Arc::from(key),
        }
    }

    /// The request's deadline passed while it waited on a shared fetch.
    fn timeout(&self) -> UpstreamError {
        UpstreamError::new(&self.source, UpstreamFailure::Timeout)
    }

    fn count(&self, name: &'static str, n: usize) {
        if name == HITS {
            crate::telemetry::request::count_cache_hits(n);
        }
        if n > 0 {
            metrics::counter!(name, "source" => self.source.to_string(), "resource" => self.resource.label())
                .increment(n as u64);
        }
    }
}

/// The counter of answers served from the cache; each request's log line counts them too.
const HITS: &str = "cache_hits_total";

/// What the cache holds of some keys: entries (kept past their
/// time-to-live for stale-if-error included) and their weight in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    fingerprint: Fingerprint,
    source: SourceName,
    resource: Resource,
    key: Arc<str>,
}

/// A cached answer of any type, `None` when the upstream had no such thing.
#[derive(Clone)]
struct Stored {
    value: Option<Arc<dyn Any + Send + Sync>>,
    weight: u32,
    ttl: Duration,
    /// Kept this long past `ttl`, only to stand in for a failing source.
    stale_for: Duration,
    stored_at: Instant,
}

/// Bookkeeping per entry, beside the value's own size.
const ENTRY_OVERHEAD: usize = 128;

impl Stored {
    fn new<V: Serialize + Send + Sync + 'static>(key: &str, value: Option<V>, ttls: (Duration, Duration)) -> Self {
        let size = value.as_ref().map_or(0, approx_size);
        Self::sized(key, value, size, ttls)
    }

    /// `ttls`: how long the answer is fresh, then how long it may stand in
    /// for a failing source.
    fn sized<V: Send + Sync + 'static>(key: &str, value: Option<V>, size: usize, ttls: (Duration, Duration)) -> Self {
        let weight = u32::try_from(key.len() + size + ENTRY_OVERHEAD).unwrap_or(u32::MAX);
        let (ttl, stale_for) = ttls;
        let value = value.map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>);
        Self { value, weight, ttl, stale_for, stored_at: Instant::now() }
    }

    fn is_fresh(&self) -> bool {
        self.stored_at.elapsed() < self.ttl
    }

    /// How much longer the answer is fresh: what an answer built from it may
    /// be kept for at most.
    fn fresh_for(&self) -> Duration {
        self.ttl.saturating_sub(self.stored_at.elapsed())
    }

    fn lifetime(&self) -> Duration {
        self.ttl.saturating_add(self.stale_for)
    }

    /// The value as `V`; `None` for a cached absence (or, impossibly, another type).
    fn get<V: Clone + 'static>(&self) -> Option<V> {
        self.get_ref::<V>().cloned()
    }

    fn get_ref<V: 'static>(&self) -> Option<&V> {
        self.value.as_ref().and_then(|v| v.downcast_ref::<V>())
    }
}

/// Each entry lives for the time-to-live of its resource and source, plus
/// its stale-if-error window.
struct PerEntryTtl;

impl Expiry<CacheKey, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &CacheKey, value: &Stored, _: Instant) -> Option<Duration> {
        Some(value.lifetime())
    }

    fn expire_after_update(&self, _: &CacheKey, value: &Stored, _: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(value.lifetime())
    }
}

/// What a lookup found, and whether an expired answer stood in for a
/// failing source.
#[derive(Debug)]
pub struct Fetched<V> {
    pub values: HashMap<String, V>,
    /// Age of the oldest expired answer among `values`; `None`: all fresh.
    pub stale_age: Option<Duration>,
}

/// What a batch fetch in flight will answer: every key it was started for
/// (absent ones as `None`) plus whatever else the upstream returned.
struct Answers {
    stored: HashMap<String, Stored>,
    stale_age: Option<Duration>,
}

type FlightResult = Result<Arc<Answers>, UpstreamError>;
type Flight = Shared<BoxFuture<'static, FlightResult>>;
/// The keys a lookup fetches itself (with its new batch), and the keys it
/// waits for in other lookups' batches.
type Claim = (Option<(Vec<String>, Flight)>, Vec<(String, Flight)>);

/// The shared cache. Cheap to share: hold it in an `Arc`.
pub struct UpstreamCache {
    store: moka::future::Cache<CacheKey, Stored>,
    /// Keys being fetched right now, with the id of their batch: a lookup
    /// that misses joins the batch instead of calling the upstream again.
    /// A plain mutex: it is never held across an await.
    flights: Mutex<HashMap<CacheKey, (u64, Flight)>>,
    next_flight: AtomicU64,
    defaults: Ttls,
    per_source: HashMap<String, Ttls>,
    /// Which ledger responses are settled history, kept long (see `settled`).
    settled: Settled,
}

impl fmt::Debug for UpstreamCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamCache")
            .field("entries", &self.store.entry_count())
            .field("weighted_bytes", &self.store.weighted_size())
            .field("defaults", &self.defaults)
            .finish()
    }
}

impl UpstreamCache {
    pub fn new(config: &CacheConfig, clock: Clock) -> Self {
        let secs = Duration::from_secs;
        let defaults = Ttls {
            ledger: secs(config.ledger_ttl_secs),
            item: secs(config.item_ttl_secs),
            location: secs(config.location_ttl_secs),
            stale_if_error: secs(config.stale_if_error_secs),
        };
        let per_source = config
            .sources
            .iter()
            .map(|(name, o)| {
                let ttls = Ttls {
                    ledger: o.ledger_ttl_secs.map_or(defaults.ledger, secs),
                    item: o.item_ttl_secs.map_or(defaults.item, secs),
                    location: o.location_ttl_secs.map_or(defaults.location, secs),
                    stale_if_error: o.stale_if_error_secs.map_or(defaults.stale_if_error, secs),
                };
                (name.clone(), ttls)
            })
            .collect();
        Self::with_ttls(config.max_bytes, defaults, per_source, Settled::new(config, clock))
    }

    fn with_ttls(max_bytes: u64, defaults: Ttls, per_source: HashMap<String, Ttls>, settled: Settled) -> Self {
        let store = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &CacheKey, stored: &Stored| stored.weight)
            .expire_after(PerEntryTtl)
            .build();
        Self { store, flights: Mutex::default(), next_flight: AtomicU64::new(0), defaults, per_source, settled }
    }

    /// What the cache holds per source and resource, of the keys whose
    /// source and fingerprint `select` picks. One pass over the entries:
    /// read when metrics are scraped or the `sources` field is asked for.
    pub fn usage(&self, select: impl Fn(&SourceName, &Fingerprint) -> bool) -> HashMap<(SourceName, Resource), Usage> {
        let mut usage: HashMap<(SourceName, Resource), Usage> = HashMap::new();
        for (key, stored) in self.store.iter() {
            if select(&key.source, &key.fingerprint) {
                let held = usage.entry((key.source.clone(), key.resource)).or_default();
                held.entries += 1;
                held.bytes += u64::from(stored.weight);
            }
        }
        usage
    }

    /// How long `source` keeps answers of `resource`.
    pub fn ttl(&self, source: &SourceName, resource: Resource) -> Duration {
        self.ttls(source, resource).0
    }

    /// How long answers of `resource` from `source` are fresh, and how long
    /// after that they may stand in for a failing source.
    fn ttls(&self, source: &SourceName, resource: Resource) -> (Duration, Duration) {
        let ttls = self.per_source.get(source.as_str()).unwrap_or(&self.defaults);
        let stale = if resource == Resource::Ledger { Duration::ZERO } else { ttls.stale_if_error };
        (ttls.of(resource), stale)
    }

    /// The values of `keys` in `scope` (keys the upstream does not know are
    /// left out). Misses are fetched by one call of `fetch`, unless another
    /// lookup is already fetching them: then this one waits for that answer.
    /// `fetch` may return more than it was asked; the extras are cached too.
    /// When `fetch` fails in a way that allows it, expired answers of this
    /// same scope (so this same caller) stand in, reported in `stale_age`.
    pub async fn get_or_fetch<V, F>(
        self: &Arc<Self>,
        scope: &Scope,
        keys: &[String],
        fetch: F,
    ) -> Result<Fetched<V>, UpstreamError>
    where
        V: Clone + Serialize + Send + Sync + 'static,
        F: FnOnce(Vec<String>) -> BoxFuture<'static, Result<HashMap<String, V>, UpstreamError>> + Send + 'static,
    {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        let mut seen = HashSet::new();
        for key in keys.iter().filter(|k| seen.insert(k.as_str())) {
            match self.store.get(&scope.key(key)).await {
                Some(stored) if stored.is_fresh() => {
                    freshness::used(stored.fresh_for());
                    found.extend(stored.get::<V>().map(|v| (key.clone(), v)));
                }
                _ => missing.push(key.clone()),
            }
        }
        scope.count(HITS, seen.len() - missing.len());
        let mut stale_age = None;
        if missing.is_empty() {
            return Ok(Fetched { values: found, stale_age });
        }
        let (owned, joined) = self.claim(scope, missing, fetch);
        scope.count("cache_misses_total", owned.as_ref().map_or(0, |(keys, _)| keys.len()));
        scope.count("cache_coalesced_total", joined.len());
        let waits = owned.into_iter().chain(joined.into_iter().map(|(key, flight)| (vec![key], flight)));
        for (keys, flight) in waits {
            let answers = deadline::bounded(flight)
                .await
                .unwrap_or_else(|| Err(scope.timeout()))
                .inspect_err(|_| freshness::unkeepable())?;
            if answers.stale_age.is_some() {
                freshness::unkeepable();
            }
            stale_age = stale_age.max(answers.stale_age);
            for key in keys {
                let stored = answers.stored.get(&key);
                if let Some(stored) = stored {
                    freshness::used(stored.fresh_for());
                }
                found.extend(stored.and_then(Stored::get::<V>).map(|v| (key, v)));
            }
        }
        Ok(Fetched { values: found, stale_age })
    }

    /// Splits `missing` into keys another lookup is already fetching (joined)
    /// and the rest, for which one new batch is registered (owned).
    fn claim<V, F>(self: &Arc<Self>, scope: &Scope, missing: Vec<String>, fetch: F) -> Claim
    where
        V: Clone + Serialize + Send + Sync + 'static,
        F: FnOnce(Vec<String>) -> BoxFuture<'static, Result<HashMap<String, V>, UpstreamError>> + Send + 'static,
    {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        let mut owned = Vec::new();
        let mut joined = Vec::new();
        for key in missing {
            match flights.get(&scope.key(&key)) {
                Some((_, flight)) => joined.push((key, flight.clone())),
                None => owned.push(key),
            }
        }
        if owned.is_empty() {
            return (None, joined);
        }
        let id = self.next_flight.fetch_add(1, Ordering::Relaxed);
        let flight = self.flight(scope.clone(), owned.clone(), fetch, id);
        for key in &owned {
            flights.insert(scope.key(key), (id, flight.clone()));
        }
        (Some((owned, flight)), joined)
    }

    /// One batch fetch, started by whoever awaits it first. It stores what it
    /// got before it leaves the flight table, so a lookup that finds no
    /// flight finds the answer in the store.
    fn flight<V, F>(self: &Arc<Self>, scope: Scope, keys: Vec<String>, fetch: F, id: u64) -> Flight
    where
        V: Clone + Serialize + Send + Sync + 'static,
        F: FnOnce(Vec<String>) -> BoxFuture<'static, Result<HashMap<String, V>, UpstreamError>> + Send + 'static,
    {
        let cache = self.clone();
        async move {
            // A batch that landed between our lookup and our claim already
            // answered some keys.
            let mut answers = HashMap::new();
            let mut expired = HashMap::new();
            let mut missing = Vec::new();
            for key in &keys {
                match cache.store.get(&scope.key(key)).await {
                    Some(stored) if stored.is_fresh() => {
                        answers.insert(key.clone(), stored);
                    }
                    Some(stored) => {
                        expired.insert(key.clone(), stored);
                        missing.push(key.clone());
                    }
                    None => missing.push(key.clone()),
                }
            }
            let fetched = if missing.is_empty() { Ok(HashMap::new()) } else { fetch(missing.clone()).await };
            let result = match fetched {
                Ok(mut values) => {
                    let ttls = cache.ttls(&scope.source, scope.resource);
                    let mut new = HashMap::new();
                    for key in missing {
                        let value = values.remove(&key);
                        new.insert(key.clone(), Stored::new(&key, value, ttls));
                    }
                    for (key, value) in values {
                        new.insert(key.clone(), Stored::new(&key, Some(value), ttls));
                    }
                    cache.store_all(&scope, &new, ttls.0).await;
                    answers.extend(new);
                    Ok(Arc::new(Answers { stored: answers, stale_age: None }))
                }
                Err(error) => stand_in(&scope, &error, &missing, expired)
                    .map(|stale| {
                        answers.extend(stale.stored);
                        Arc::new(Answers { stored: answers, stale_age: stale.stale_age })
                    })
                    .ok_or(error),
            };
            cache.land(&scope, &keys, id);
            result
        }
        .boxed()
        .shared()
    }

    async fn store_all(&self, scope: &Scope, answers: &HashMap<String, Stored>, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        for (key, stored) in answers {
            self.store.insert(scope.key(key), stored.clone()).await;
        }
    }

    /// Removes a finished batch's keys from the flight table.
    fn land(&self, scope: &Scope, keys: &[String], id: u64) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            let key = scope.key(key);
            if flights.get(&key).is_some_and(|(flight, _)| *flight == id) {
                flights.remove(&key);
            }
        }
    }

    /// Runs `work`, one source's ledger read for one caller, so that the
    /// upstream GETs it makes are reused by identical GETs of the same caller
    /// (see [`reuse_json`]) for the source's ledger time-to-live.
    pub async fn reusing_ledger<F: Future>(self: &Arc<Self>, credentials: &Credentials, work: F) -> F::Output {
        let reads = LedgerReads { cache: self.clone(), fingerprint: credentials.fingerprint().clone() };
        LEDGER_READS.scope(reads, work).await
    }

    /// Runs `source`'s change probe for this caller when one is due, and
    /// drops the settled ledger responses it reports changed (see `settled`).
    pub async fn probe_settled<P, F>(&self, credentials: &Credentials, source: &SourceName, probe: P)
    where
        P: FnOnce(chrono::DateTime<chrono::Utc>) -> F,
        F: Future<Output = Result<Option<Changes>, UpstreamError>>,
    {
        let fingerprint = credentials.fingerprint();
        for url in self.settled.probe(fingerprint, source, probe).await {
            self.forget_ledger(fingerprint, source, &url).await;
        }
    }

    async fn forget_ledger(&self, fingerprint: &Fingerprint, source: &SourceName, url: &str) {
        let scope = Scope { fingerprint: fingerprint.clone(), source: source.clone(), resource: Resource::Ledger };
        self.store.invalidate(&scope.key(url)).await;
    }

    /// The decoded answer is kept, not the body: a page reused within the
    /// TTL is cloned, never parsed again (its dates and decimals included).
    async fn ledger_json<T, Fetch>(
        &self,
        scope: &Scope,
        call: (&Url, Option<Covers>),
        fetch: Fetch,
    ) -> Result<T, UpstreamError>
    where
        T: Clone + Send + Sync + 'static,
        Fetch: Future<Output = Result<(T, Vec<u8>), UpstreamError>>,
    {
        let (url, covers) = call;
        let settled = self.settled.keep_for(&scope.fingerprint, &scope.source, covers);
        let ttl = settled.unwrap_or_else(|| self.ttl(&scope.source, scope.resource));
        if ttl.is_zero() {
            // An uncached ledger read: nothing bounds how long its answer holds.
            freshness::used(Duration::ZERO);
            return fetch.await.map(|(value, _)| value);
        }
        let started = self.settled.now();
        let mut fetch = Some(fetch);
        let mut fetched = false;
        let init = async {
            fetched = true;
            // A body that does not decode is an error, and errors are not kept.
            let unfetchable = || UpstreamError::new(&scope.source, UpstreamFailure::BadResponse);
            let (value, body) = fetch.take().ok_or_else(unfetchable)?.await?;
            // Weighed by the body it came from: about what it holds in memory.
            let size = body.capacity();
            Ok::<_, UpstreamError>(Stored::sized(url.as_str(), Some(value), size, (ttl, Duration::ZERO)))
        };
        let entry = deadline::bounded(self.store.entry(scope.key(url.as_str())).or_try_insert_with(init))
            .await
            .ok_or_else(|| scope.timeout())?
            .map_err(|e| (*e).clone())?;
        scope.count(if fetched { "cache_misses_total" } else { HITS }, 1);
        // A kept response must not outlive the next change probe either, or
        // it would hide what that probe finds.
        let until_probe = self.settled.until_probe(&scope.fingerprint, &scope.source);
        freshness::used(until_probe.map_or(entry.value().fresh_for(), |d| d.min(entry.value().fresh_for())));
        if let (Some(covers), Some(_), true) = (covers, settled, fetched) {
            let key: Arc<str> = Arc::from(url.as_str());
            if !self.settled.kept(&scope.fingerprint, &scope.source, covers, key, started) {
                self.forget_ledger(&scope.fingerprint, &scope.source, url.as_str()).await;
            }
        }
        match (entry.value().get::<T>(), fetch) {
            (Some(value), _) => Ok(value),
            // The same URL read as another type: not shared, fetched.
            (None, Some(fetch)) => fetch.await.map(|(value, _)| value),
            (None, None) => Err(UpstreamError::new(&scope.source, UpstreamFailure::BadResponse)),
        }
    }
}

/// Expired answers for every key of a failed fetch, when the failure allows
/// them (never an auth failure: a revoked caller must not keep reading) and
/// there is one for each key; a partial answer would pass for a whole one.
fn stand_in(
    scope: &Scope,
    error: &UpstreamError,
    missing: &[String],
    mut expired: HashMap<String, Stored>,
) -> Option<Answers> {
    if !error.failure.allows_stale_answers() || !missing.iter().all(|key| expired.contains_key(key)) {
        return None;
    }
    let stored: HashMap<String, Stored> = missing.iter().filter_map(|key| expired.remove_entry(key)).collect();
    let stale_age = stored.values().map(|s| s.stored_at.elapsed()).max();
    scope.count("cache_stale_served_total", stored.len());
    tracing::warn!(source = %scope.source, resource = scope.resource.label(), failure = ?error.failure, "serving expired answers for a failing source");
    Some(Answers { stored, stale_age })
}

/// A caller's ledger read from one source, set around it by the registry.
#[derive(Clone)]
struct LedgerReads {
    cache: Arc<UpstreamCache>,
    fingerprint: Fingerprint,
}

tokio::task_local! {
    static LEDGER_READS: LedgerReads;
}

/// Decodes the JSON body `fetch` gets from `url`. Inside a ledger read
/// ([`UpstreamCache::reusing_ledger`]) the same caller's identical GET within
/// the source's ledger time-to-live is answered from the cache, and
/// concurrent identical GETs share one upstream call; anywhere else (item
/// lookups, readiness probes) it always fetches.
pub async fn reuse_json<T, Fetch>(
    source: &SourceName,
    call: (&Url, Option<Covers>),
    fetch: Fetch,
) -> Result<T, UpstreamError>
where
    T: Clone + Send + Sync + 'static,
    Fetch: Future<Output = Result<(T, Vec<u8>), UpstreamError>>,
{
    let reads = LEDGER_READS.try_with(LedgerReads::clone).ok();
    let result = match reads {
        Some(reads) => {
            let scope = Scope { fingerprint: reads.fingerprint, source: source.clone(), resource: Resource::Ledger };
            reads.cache.ledger_json(&scope, call, fetch).await
        }
        // Entity lookups, whose cache reports their freshness, and probes.
        None => fetch.await.map(|(value, _)| value),
    };
    result.inspect_err(|_| freshness::unkeepable())
}

/// The size of `value` serialized as JSON: a fair estimate of its memory.
fn approx_size<T: Serialize>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicUsize;

    use secrecy::SecretString;

    use super::*;
    use crate::upstream::FingerprintKey;

    fn no_settled() -> Settled {
        Settled::new(&CacheConfig::default(), Clock::System)
    }

    fn cache(ttl: Duration) -> Arc<UpstreamCache> {
        let ttls = Ttls { ledger: ttl, item: ttl, location: ttl, stale_if_error: Duration::ZERO };
        Arc::new(UpstreamCache::with_ttls(1 << 20, ttls, HashMap::new(), no_settled()))
    }

    fn scope(key: &FingerprintKey, token: &str) -> Scope {
        let fields = BTreeMap::from([("token".to_owned(), SecretString::from(token))]);
        Scope::new(&Credentials::new(key, fields), &SourceName::new("src"), Resource::Item)
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|k| (*k).to_owned()).collect()
    }

    /// A fetch that counts its calls and answers `<key>@<tag>` for keys
    /// starting with `k`, after yielding so that concurrent lookups overlap.
    fn fetcher(
        calls: &Arc<AtomicUsize>,
        tag: &'static str,
    ) -> impl FnOnce(Vec<String>) -> BoxFuture<'static, Result<HashMap<String, String>, UpstreamError>> + Send + 'static
    {
        let calls = calls.clone();
        move |keys: Vec<String>| {
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok(keys.into_iter().filter(|k| k.starts_with('k')).map(|k| (k.clone(), format!("{k}@{tag}"))).collect())
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn concurrent_identical_misses_share_one_fetch() {
        let cache = cache(Duration::from_secs(60));
        let scope = scope(&FingerprintKey::random(), "alice");
        let calls = Arc::new(AtomicUsize::new(0));
        let wanted = keys(&["k1", "k2"]);
        let (a, b) = tokio::join!(
            cache.get_or_fetch(&scope, &wanted, fetcher(&calls, "a")),
            cache.get_or_fetch(&scope, &wanted, fetcher(&calls, "b")),
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(a.unwrap().values, b.unwrap().values);
    }

    #[tokio::test]
    async fn a_lookup_overlapping_a_flight_fetches_only_what_is_left() {
        let cache = cache(Duration::from_secs(60));
        let scope = scope(&FingerprintKey::random(), "alice");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = |asked: &Arc<Mutex<Vec<Vec<String>>>>| {
            let asked = asked.clone();
            move |keys: Vec<String>| {
                asked.lock().unwrap().push(keys.clone());
                async move {
                    tokio::task::yield_now().await;
                    Ok(keys.into_iter().map(|k| (k.clone(), k)).collect::<HashMap<_, _>>())
                }
                .boxed()
            }
        };
        let (first, second) = (keys(&["k1", "k2"]), keys(&["k2", "k3"]));
        let (a, b) = tokio::join!(
            cache.get_or_fetch(&scope, &first, record(&asked)),
            cache.get_or_fetch(&scope, &second, record(&asked)),
        );
        assert_eq!(a.unwrap().values.len(), 2);
        assert_eq!(b.unwrap().values.len(), 2);
        assert_eq!(*asked.lock().unwrap(), vec![keys(&["k1", "k2"]), keys(&["k3"])]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_joining_a_slower_fetch_gives_up_at_its_own_deadline() {
        let cache = cache(Duration::from_secs(60));
        let scope = scope(&FingerprintKey::random(), "alice");
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = |calls: &Arc<AtomicUsize>| {
            let calls = calls.clone();
            move |keys: Vec<String>| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(Duration::from_secs(8)).await;
                    Ok(keys.into_iter().map(|k| (k.clone(), k)).collect::<HashMap<_, _>>())
                }
                .boxed()
            }
        };
        let wanted = keys(&["k1"]);
        let start = tokio::time::Instant::now();
        let owner =
            deadline::within(start + Duration::from_secs(10), cache.get_or_fetch(&scope, &wanted, slow(&calls)));
        let joiner = async {
            tokio::task::yield_now().await;
            let within_two_seconds = start + Duration::from_secs(2);
            let joined = deadline::within(within_two_seconds, cache.get_or_fetch(&scope, &wanted, slow(&calls))).await;
            (joined, start.elapsed())
        };
        let (owned, (joined, waited)) = tokio::join!(owner, joiner);
        assert_eq!(owned.unwrap().values.len(), 1);
        assert_eq!(joined.unwrap_err().failure, UpstreamFailure::Timeout);
        assert_eq!(waited, Duration::from_secs(2), "not the 8 s the shared fetch took");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the second lookup joined the first one's fetch");
    }

    #[tokio::test]
    async fn answers_and_absences_are_reused_until_they_expire() {
        let cache = cache(Duration::from_millis(300));
        let scope = scope(&FingerprintKey::random(), "alice");
        let calls = Arc::new(AtomicUsize::new(0));
        let wanted = keys(&["k1", "unknown"]);
        let first = cache.get_or_fetch(&scope, &wanted, fetcher(&calls, "a")).await.unwrap().values;
        let again = cache.get_or_fetch(&scope, &wanted, fetcher(&calls, "b")).await.unwrap().values;
        assert_eq!(first, HashMap::from([("k1".to_owned(), "k1@a".to_owned())]));
        assert_eq!(again, first);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the known absence of `unknown` is cached too");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let later = cache.get_or_fetch(&scope, &wanted, fetcher(&calls, "c")).await.unwrap().values;
        assert_eq!(later["k1"], "k1@c");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn callers_with_different_credentials_never_share_answers() {
        let cache = cache(Duration::from_secs(60));
        let key = FingerprintKey::random();
        let calls = Arc::new(AtomicUsize::new(0));
        let wanted = keys(&["k1"]);
        let alice = cache.get_or_fetch(&scope(&key, "alice"), &wanted, fetcher(&calls, "alice")).await.unwrap().values;
        let bob = cache.get_or_fetch(&scope(&key, "bob"), &wanted, fetcher(&calls, "bob")).await.unwrap().values;
        assert_eq!(alice["k1"], "k1@alice");
        assert_eq!(bob["k1"], "k1@bob");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_are_never_cached() {
        let cache = cache(Duration::from_secs(60));
        let scope = scope(&FingerprintKey::random(), "alice");
        let failing = |_: Vec<String>| {
            async {
                Err::<HashMap<String, String>, _>(UpstreamError::new(
                    &SourceName::new("src"),
                    UpstreamFailure::Unauthorized,
                ))
            }
            .boxed()
        };
        let error = cache.get_or_fetch(&scope, &keys(&["k1"]), failing).await.unwrap_err();
        assert_eq!(error.failure, UpstreamFailure::Unauthorized);
        let calls = Arc::new(AtomicUsize::new(0));
        let found = cache.get_or_fetch(&scope, &keys(&["k1"]), fetcher(&calls, "a")).await.unwrap().values;
        assert_eq!(found["k1"], "k1@a");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    fn failing(
        failure: UpstreamFailure,
    ) -> impl FnOnce(Vec<String>) -> BoxFuture<'static, Result<HashMap<String, String>, UpstreamError>> {
        move |_| async move { Err(UpstreamError::new(&SourceName::new("src"), failure)) }.boxed()
    }

    /// Items fresh for 30 ms, then standing in for a failing source for a minute.
    fn stale_if_error_cache() -> Arc<UpstreamCache> {
        let (ttl, zero) = (Duration::from_millis(30), Duration::ZERO);
        let ttls = Ttls { ledger: zero, item: ttl, location: ttl, stale_if_error: Duration::from_secs(60) };
        Arc::new(UpstreamCache::with_ttls(1 << 20, ttls, HashMap::new(), no_settled()))
    }

    #[tokio::test]
    async fn expired_answers_stand_in_only_for_every_key_and_only_for_outages() {
        let cache = stale_if_error_cache();
        let key = FingerprintKey::random();
        let (alice, bob) = (scope(&key, "alice"), scope(&key, "bob"));
        let (k1, both) = (keys(&["k1"]), keys(&["k1", "k2"]));
        let calls = Arc::new(AtomicUsize::new(0));
        cache.get_or_fetch(&alice, &k1, fetcher(&calls, "a")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;

        let stale = cache.get_or_fetch(&alice, &k1, failing(UpstreamFailure::Timeout)).await.unwrap();
        assert_eq!(stale.values["k1"], "k1@a");
        assert!(stale.stale_age.is_some_and(|age| age >= Duration::from_millis(30)));
        for failure in [UpstreamFailure::Unauthorized, UpstreamFailure::Forbidden, UpstreamFailure::NotFound] {
            let error = cache.get_or_fetch(&alice, &k1, failing(failure.clone())).await.unwrap_err();
            assert_eq!(error.failure, failure);
        }
        // A key without an answer of its own fails the whole lookup.
        let partial = cache.get_or_fetch(&alice, &both, failing(UpstreamFailure::Timeout)).await.unwrap_err();
        assert_eq!(partial.failure, UpstreamFailure::Timeout);
        // Another caller's answers never stand in.
        let other = cache.get_or_fetch(&bob, &k1, failing(UpstreamFailure::Unavailable)).await.unwrap_err();
        assert_eq!(other.failure, UpstreamFailure::Unavailable);
        // An expired answer is refetched when the source answers.
        let fresh = cache.get_or_fetch(&alice, &k1, fetcher(&calls, "b")).await.unwrap();
        assert_eq!((fresh.values["k1"].as_str(), fresh.stale_age), ("k1@b", None));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn extras_an_upstream_returns_answer_later_lookups() {
        let cache = cache(Duration::from_secs(60));
        let scope = scope(&FingerprintKey::random(), "alice");
        let with_neighbour = |keys: Vec<String>| {
            async move {
                let mut found: HashMap<String, String> = keys.into_iter().map(|k| (k.clone(), k)).collect();
                found.insert("neighbour".into(), "next door".into());
                Ok(found)
            }
            .boxed()
        };
        cache.get_or_fetch(&scope, &keys(&["k1"]), with_neighbour).await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let found = cache.get_or_fetch(&scope, &keys(&["neighbour"]), fetcher(&calls, "a")).await.unwrap().values;
        assert_eq!(found["neighbour"], "next door");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_zero_ttl_still_coalesces_but_keeps_nothing() {
        let cache = cache(Duration::ZERO);
        let scope = scope(&FingerprintKey::random(), "alice");
        let calls = Arc::new(AtomicUsize::new(0));
        cache.get_or_fetch(&scope, &keys(&["k1"]), fetcher(&calls, "a")).await.unwrap();
        cache.get_or_fetch(&scope, &keys(&["k1"]), fetcher(&calls, "b")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    fn credentials(key: &FingerprintKey, token: &str) -> Credentials {
        Credentials::new(key, BTreeMap::from([("token".to_owned(), SecretString::from(token))]))
    }

    fn decode(bytes: &[u8]) -> Result<serde_json::Value, UpstreamError> {
        serde_json::from_slice(bytes)
            .map_err(|_| UpstreamError::new(&SourceName::new("src"), UpstreamFailure::BadResponse))
    }

    async fn read(url: &Url, calls: &AtomicUsize, body: &'static str) -> Result<serde_json::Value, UpstreamError> {
        let fetch = async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok((decode(body.as_bytes())?, body.as_bytes().to_vec()))
        };
        reuse_json(&SourceName::new("src"), (url, None), fetch).await
    }

    #[tokio::test]
    async fn ledger_responses_are_reused_only_inside_a_ledger_read() {
        let cache = cache(Duration::from_secs(60));
        let url = Url::parse("http://127.0.0.1:1/ledger?page=1").unwrap();
        let calls = AtomicUsize::new(0);
        read(&url, &calls, "[1]").await.unwrap();
        read(&url, &calls, "[1]").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "outside a ledger read nothing is cached");

        let key = FingerprintKey::random();
        let alice = credentials(&key, "alice");
        let first = cache.reusing_ledger(&alice, read(&url, &calls, "[2]")).await.unwrap();
        let again = cache.reusing_ledger(&alice, read(&url, &calls, "[3]")).await.unwrap();
        assert_eq!((first, again), (serde_json::json!([2]), serde_json::json!([2])));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let bob = cache.reusing_ledger(&credentials(&key, "bob"), read(&url, &calls, "[4]")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(bob, serde_json::json!([4]));
    }

    #[tokio::test]
    async fn ledger_bodies_that_do_not_decode_are_not_kept() {
        let cache = cache(Duration::from_secs(60));
        let url = Url::parse("http://127.0.0.1:1/ledger").unwrap();
        let calls = AtomicUsize::new(0);
        let alice = credentials(&FingerprintKey::random(), "alice");
        let error = cache.reusing_ledger(&alice, read(&url, &calls, "not json")).await.unwrap_err();
        assert_eq!(error.failure, UpstreamFailure::BadResponse);
        let body = cache.reusing_ledger(&alice, read(&url, &calls, "[1]")).await.unwrap();
        assert_eq!(body, serde_json::json!([1]));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_kept_ledger_answer_weighs_the_memory_of_its_body() {
        let cache = cache(Duration::from_secs(60));
        let url = Url::parse("http://127.0.0.1:1/ledger").unwrap();
        let alice = credentials(&FingerprintKey::random(), "alice");
        let spare = 64 * 1024;
        let fetch = async {
            let mut body = Vec::with_capacity(spare);
            body.extend_from_slice(b"[1]");
            Ok((decode(&body)?, body))
        };
        cache.reusing_ledger(&alice, reuse_json(&SourceName::new("src"), (&url, None), fetch)).await.unwrap();
        cache.store.run_pending_tasks().await;
        let weight = cache.store.weighted_size();
        assert!(weight >= spare as u64, "a 3-byte body holding {spare} bytes weighs {weight}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ledger_read_joining_a_slower_identical_get_gives_up_at_its_own_deadline() {
        let cache = cache(Duration::from_secs(60));
        let url = Url::parse("http://127.0.0.1:1/ledger").unwrap();
        let alice = credentials(&FingerprintKey::random(), "alice");
        let calls = AtomicUsize::new(0);
        let source = SourceName::new("src");
        let slow_read = || {
            let fetch = async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(8)).await;
                Ok((serde_json::json!([1]), b"[1]".to_vec()))
            };
            cache.reusing_ledger(&alice, reuse_json(&source, (&url, None), fetch))
        };
        let start = tokio::time::Instant::now();
        let owner = deadline::within(start + Duration::from_secs(10), slow_read());
        let joiner = async {
            tokio::task::yield_now().await;
            let joined = deadline::within(start + Duration::from_secs(2), slow_read()).await;
            (joined, start.elapsed())
        };
        let (owned, (joined, waited)) = tokio::join!(owner, joiner);
        assert_eq!(owned.unwrap(), serde_json::json!([1]));
        assert_eq!(joined.unwrap_err().failure, UpstreamFailure::Timeout);
        assert_eq!(waited, Duration::from_secs(2), "not the 8 s the shared GET took");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the second read joined the first one's GET");
    }
}

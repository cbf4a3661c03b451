//! Item and location lookups over any source, the same for every connector:
//! keys go through the shared cache first (per caller), misses are split into
//! chunks of the source's `BatchLimits::max_keys` with at most `concurrency`
//! upstream calls in flight, and concurrent lookups of the same keys share
//! those calls. Entries by id are a ledger read filtered by ids. Nothing
//! here knows a particular upstream.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde::Serialize;

use super::{next_entries, Source};
use crate::ledger::{plan, BatchLimits, Capabilities, LedgerFilter};
use crate::model::{global_id, Item, LedgerEntry, Location, StockLevel};
use crate::upstream::{Credentials, Fetched, Resource, Scope, UpstreamCache, UpstreamError, UpstreamFailure};

/// A kind of thing a source can look up by native key.
pub trait Entity: Clone + Serialize + Send + Sync + 'static {
    const RESOURCE: Resource;

    /// How the source batches this kind; `None`: the source has none.
    fn limits(capabilities: &Capabilities) -> Option<BatchLimits>;

    /// One upstream lookup of at most `limits().max_keys` keys.
    fn fetch<'a>(
        source: &'a dyn Source,
        credentials: &'a Credentials,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, Self>, UpstreamError>>;
}

impl Entity for Item {
    const RESOURCE: Resource = Resource::Item;

    fn limits(capabilities: &Capabilities) -> Option<BatchLimits> {
        capabilities.items
    }

    fn fetch<'a>(
        source: &'a dyn Source,
        credentials: &'a Credentials,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, Self>, UpstreamError>> {
        source.items(credentials, keys)
    }
}

impl Entity for Location {
    const RESOURCE: Resource = Resource::Location;

    fn limits(capabilities: &Capabilities) -> Option<BatchLimits> {
        capabilities.locations
    }

    fn fetch<'a>(
        source: &'a dyn Source,
        credentials: &'a Credentials,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, Self>, UpstreamError>> {
        source.locations(credentials, keys)
    }
}

/// The entities `keys` name in `source`, as the caller holding `credentials`
/// sees them; unknown keys are left out.
pub async fn lookup<E: Entity>(
    source: &Arc<dyn Source>,
    credentials: &Credentials,
    cache: &Arc<UpstreamCache>,
    keys: &[String],
) -> Result<Fetched<Arc<E>>, UpstreamError> {
    let Some(limits) = E::limits(source.capabilities()) else {
        return Ok(Fetched { values: HashMap::new(), stale_age: None });
    };
    let scope = Scope::new(credentials, source.name(), E::RESOURCE);
    let (source, credentials) = (source.clone(), credentials.clone());
    cache
        .get_or_fetch(&scope, keys, move |missing: Vec<String>| {
            fetch_chunked::<E>(source, credentials, limits, missing).boxed()
        })
        .await
}

/// `keys` in chunks the upstream accepts, a bounded number at a time. The
/// first failure (other than a 404) fails the whole lookup: nothing partial
/// is cached.
async fn fetch_chunked<E: Entity>(
    source: Arc<dyn Source>,
    credentials: Credentials,
    limits: BatchLimits,
    keys: Vec<String>,
) -> Result<HashMap<String, Arc<E>>, UpstreamError> {
    let chunks: Vec<Vec<String>> = keys.chunks(limits.max_keys.max(1)).map(<[String]>::to_vec).collect();
    let (source, credentials) = (&source, &credentials);
    let mut calls = futures::stream::iter(chunks)
        .map(|chunk: Vec<String>| async move { E::fetch(source.as_ref(), credentials, &chunk).await })
        .buffer_unordered(limits.concurrency.max(1));
    let mut found = HashMap::new();
    while let Some(answer) = calls.next().await {
        match answer {
            Ok(entities) => found.extend(entities.into_iter().map(|(key, entity)| (key, Arc::new(entity)))),
            // A 404 for a lookup (a single-key GET, say): the upstream knows none of these keys.
            Err(error) if error.failure == UpstreamFailure::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(found)
}

/// The entries `native_ids` name in `source`, read as
/// `ledgerEntries(filter: { ids })` reads them (the same plan and scan, so
/// the same calls: Trackstar's `ids[in]` 100 a call, Business Central's
/// `id eq … or …` within its URL limit...); unknown ids are left out.
pub async fn entries(
    source: &Arc<dyn Source>,
    credentials: &Credentials,
    cache: &Arc<UpstreamCache>,
    native_ids: &[String],
) -> Result<HashMap<String, Arc<LedgerEntry>>, UpstreamError> {
    let name = source.name();
    let ids = native_ids.iter().map(|id| global_id(name, id)).collect();
    let filter = LedgerFilter { ids: Some(ids), ..Default::default() };
    let Some(plan) = plan(name.as_str(), source.capabilities(), &filter) else { return Ok(HashMap::new()) };
    let read = next_entries(source.as_ref(), credentials, plan, None, native_ids.len(), None);
    let page = cache.reusing_ledger(credentials, read).await?;
    Ok(page.entries.into_iter().map(|entry| (entry.native_id.clone(), Arc::new(entry))).collect())
}

/// The stock levels at one location, cached like the location itself;
/// absent when the source cannot list stock by location.
pub async fn location_stock(
    source: &Arc<dyn Source>,
    credentials: &Credentials,
    cache: &Arc<UpstreamCache>,
    location: &str,
) -> Result<Fetched<Arc<Vec<StockLevel>>>, UpstreamError> {
    let scope = Scope::new(credentials, source.name(), Resource::Stock);
    let (source, credentials) = (source.clone(), credentials.clone());
    let fetch = move |keys: Vec<String>| {
        async move {
            let mut found = HashMap::new();
            for key in keys {
                if let Some(levels) = source.location_stock(&credentials, &key).await? {
                    found.insert(key, Arc::new(levels));
                }
            }
            Ok(found)
        }
        .boxed()
    };
    cache.get_or_fetch(&scope, &[location.to_owned()], fetch).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::config::CacheConfig;
    use crate::ledger::{Pushdown, SourceFilter, Support, Watermark};
    use crate::model::{LedgerEntry, SourceKind, SourceName};
    use crate::sources::{Batch, LedgerScan, ScanRequest, SourceInfo};
    use crate::upstream::{FingerprintKey, HttpPolicy, UpstreamClient};

    /// A source whose item lookups record their keys and how many run at once.
    #[derive(Debug)]
    struct Recording {
        info: SourceInfo,
        client: UpstreamClient,
        calls: Mutex<Vec<usize>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl Recording {
        fn new(items: Option<BatchLimits>) -> Arc<Self> {
            let support = Support::Gateway;
            let pushdown = Pushdown {
                entry_date: support,
                updated_at: support,
                event_types: support,
                skus: support,
                item_ids: support,
                location_ids: support,
                ids: support,
                ids_override_other_filters: false,
            };
            Arc::new(Self {
                info: SourceInfo {
                    name: SourceName::new("fake"),
                    kind: SourceKind::Trackstar,
                    capabilities: Capabilities {
                        pushdown,
                        event_types: &[],
                        max_page_size: 1,
                        ids_per_read: 1,
                        items,
                        locations: None,
                    },
                    credential_fields: &[],
                },
                client: UpstreamClient::new(
                    SourceName::new("fake"),
                    HttpPolicy::default(),
                    |_, _| None,
                    crate::clock::Clock::System,
                ),
                calls: Mutex::default(),
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
            })
        }
    }

    struct NoEntries;

    #[async_trait]
    impl LedgerScan for NoEntries {
        async fn next_batch(&mut self) -> Result<Batch, UpstreamError> {
            Ok(Batch { entries: Vec::new(), watermark: Watermark::Exhausted })
        }
    }

    fn item(name: &SourceName, key: &str) -> Item {
        Item {
            source: name.clone(),
            source_kind: SourceKind::Trackstar,
            native_id: key.to_owned(),
            sku: None,
            name: Some(format!("item {key}")),
            description: None,
            barcode: None,
            unit: None,
            cost: None,
            price: None,
            active: None,
            on_hand: None,
            available: None,
            reserved: None,
            stock_levels: Vec::new(),
        }
    }

    #[async_trait]
    impl Source for Recording {
        fn info(&self) -> &SourceInfo {
            &self.info
        }
        fn client(&self) -> &UpstreamClient {
            &self.client
        }
        fn scan<'a>(&'a self, _: &'a Credentials, _: ScanRequest) -> Box<dyn LedgerScan + 'a> {
            Box::new(NoEntries)
        }
        async fn entry(&self, _: &Credentials, _: &str) -> Result<Option<LedgerEntry>, UpstreamError> {
            Ok(None)
        }
        async fn count(&self, _: &Credentials, _: &SourceFilter) -> Result<Option<u64>, UpstreamError> {
            Ok(None)
        }
        async fn items(&self, _: &Credentials, keys: &[String]) -> Result<HashMap<String, Item>, UpstreamError> {
            self.calls.lock().unwrap().push(keys.len());
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(keys
                .iter()
                .filter(|k| !k.starts_with("unknown"))
                .map(|k| (k.clone(), item(&self.info.name, k)))
                .collect())
        }
        async fn locations(&self, _: &Credentials, _: &[String]) -> Result<HashMap<String, Location>, UpstreamError> {
            Ok(HashMap::new())
        }
        async fn check_ready(&self, _: &Credentials) -> Result<(), UpstreamError> {
            Ok(())
        }
    }

    fn setup(items: Option<BatchLimits>) -> (Arc<Recording>, Arc<dyn Source>, Credentials, Arc<UpstreamCache>) {
        let recording = Recording::new(items);
        let source: Arc<dyn Source> = recording.clone();
        let credentials = Credentials::new(&FingerprintKey::random(), BTreeMap::new());
        (
            recording,
            source,
            credentials,
            Arc::new(UpstreamCache::new(&CacheConfig::default(), crate::clock::Clock::System)),
        )
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("k{i:03}")).collect()
    }

    #[tokio::test]
    async fn keys_are_split_at_max_keys_with_bounded_concurrency() {
        let (recording, source, credentials, cache) = setup(Some(BatchLimits { max_keys: 100, concurrency: 2 }));
        let found = lookup::<Item>(&source, &credentials, &cache, &keys(450)).await.unwrap().values;
        assert_eq!(found.len(), 450);
        let mut calls = recording.calls.lock().unwrap().clone();
        calls.sort_unstable();
        assert_eq!(calls, [50, 100, 100, 100, 100]);
        assert_eq!(recording.most_in_flight.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_source_without_batching_gets_one_key_a_call() {
        let (recording, source, credentials, cache) = setup(Some(BatchLimits { max_keys: 1, concurrency: 5 }));
        let mut wanted = keys(12);
        wanted.push("unknown-1".into());
        let found = lookup::<Item>(&source, &credentials, &cache, &wanted).await.unwrap().values;
        assert_eq!(found.len(), 12);
        assert!(!found.contains_key("unknown-1"));
        assert_eq!(recording.calls.lock().unwrap().as_slice(), [1; 13]);
        assert_eq!(recording.most_in_flight.load(Ordering::SeqCst), 5);
        // Warm, known and unknown keys alike cost nothing.
        lookup::<Item>(&source, &credentials, &cache, &wanted).await.unwrap();
        assert_eq!(recording.calls.lock().unwrap().len(), 13);
    }

    #[tokio::test]
    async fn a_source_without_items_is_never_called() {
        let (recording, source, credentials, cache) = setup(None);
        let found = lookup::<Item>(&source, &credentials, &cache, &keys(3)).await.unwrap().values;
        assert!(found.is_empty());
        assert!(recording.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn stock_is_none_for_a_source_that_cannot_list_it() {
        let (_, source, credentials, cache) = setup(None);
        assert!(location_stock(&source, &credentials, &cache, "w1").await.unwrap().values.is_empty());
    }
}

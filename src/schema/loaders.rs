//! One request's `DataLoader`s: per source, one for ledger entries by id,
//! one for items and one for locations, bound to that request's
//! credentials. They batch the lookups a request makes while it resolves (a
//! page of entries, `items(ids:)`, `nodes(ids:)`, federation `_entities`)
//! into the fewest upstream calls; anything shared
//! between requests lives in the cache, keyed by the caller's fingerprint.
//! Loaders are cheap, so they are made per request and never mix callers.
//!
//! A list's fields register their keys over several scheduler turns
//! (async-graphql resolves list items cooperatively), so the loader's short
//! delay alone would cut a page into several upstream calls. Resolvers that
//! produce a list therefore *prime* the loaders with every key the list's
//! fields will ask for (`prime_entries`, `prime_stock`): one load per source
//! and kind, whose answers (found or not) the request's loader cache keeps
//! for the fields that follow.

use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::Context;
use futures::future::join_all;

use super::stale::StaleAnswers;
use crate::model::{self, SourceName};
use crate::sources::lookup::{self, Entity};
use crate::sources::{Caller, Registry, Source};
use crate::upstream::{Credentials, Resource, UpstreamCache, UpstreamError};

/// What every loader of one source needs.
#[derive(Clone)]
struct Binding {
    source: Arc<dyn Source>,
    credentials: Result<Credentials, UpstreamError>,
    cache: Arc<UpstreamCache>,
    /// The request's record of expired answers that stood in.
    stale: Arc<StaleAnswers>,
}

/// Loads one kind of entity from one source. Every key asked gets an
/// answer, `None` when the source does not know it, so the request's loader
/// cache remembers absences too.
struct EntityLoader<E> {
    binding: Binding,
    kind: PhantomData<fn() -> E>,
}

impl<E: Entity> Loader<String> for EntityLoader<E> {
    type Value = Option<Arc<E>>;
    type Error = UpstreamError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Option<Arc<E>>>, UpstreamError> {
        let binding = &self.binding;
        let credentials = binding.credentials.as_ref().map_err(Clone::clone)?;
        let mut found = lookup::lookup::<E>(&binding.source, credentials, &binding.cache, keys).await?;
        binding.stale.note(binding.source.name(), E::RESOURCE, found.stale_age);
        Ok(keys.iter().map(|key| (key.clone(), found.values.remove(key))).collect())
    }
}

/// Loads ledger entries of one source by native id, every id asked in one
/// ledger read filtered by ids: N entries cost what
/// `ledgerEntries(filter: { ids })` costs for them.
struct EntryLoader {
    binding: Binding,
}

impl Loader<String> for EntryLoader {
    type Value = Option<Arc<model::LedgerEntry>>;
    type Error = UpstreamError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Option<Arc<model::LedgerEntry>>>, UpstreamError> {
        let binding = &self.binding;
        let credentials = binding.credentials.as_ref().map_err(Clone::clone)?;
        let mut found = lookup::entries(&binding.source, credentials, &binding.cache, keys).await?;
        Ok(keys.iter().map(|key| (key.clone(), found.remove(key))).collect())
    }
}

type BoundLoader<L> = DataLoader<L, HashMapCache>;

fn loader<L: Loader<String>>(loader: L) -> BoundLoader<L> {
    DataLoader::with_cache(loader, crate::upstream::budget::spawn, HashMapCache::new())
}

fn entity_loader<E: Entity>(binding: &Binding) -> BoundLoader<EntityLoader<E>> {
    loader(EntityLoader { binding: binding.clone(), kind: PhantomData })
}

struct SourceLoaders {
    binding: Binding,
    entries: BoundLoader<EntryLoader>,
    items: BoundLoader<EntityLoader<model::Item>>,
    locations: BoundLoader<EntityLoader<model::Location>>,
}

/// Which loader of a source a kind of object uses.
trait Loaded: Send + Sync + Sized + 'static {
    type Loader: Loader<String, Value = Option<Arc<Self>>, Error = UpstreamError>;
    const RESOURCE: Resource;
    fn loader(loaders: &SourceLoaders) -> &BoundLoader<Self::Loader>;
}

impl Loaded for model::LedgerEntry {
    type Loader = EntryLoader;
    const RESOURCE: Resource = Resource::Ledger;
    fn loader(loaders: &SourceLoaders) -> &BoundLoader<EntryLoader> {
        &loaders.entries
    }
}

impl Loaded for model::Item {
    type Loader = EntityLoader<Self>;
    const RESOURCE: Resource = <Self as Entity>::RESOURCE;
    fn loader(loaders: &SourceLoaders) -> &BoundLoader<Self::Loader> {
        &loaders.items
    }
}

impl Loaded for model::Location {
    type Loader = EntityLoader<Self>;
    const RESOURCE: Resource = <Self as Entity>::RESOURCE;
    fn loader(loaders: &SourceLoaders) -> &BoundLoader<Self::Loader> {
        &loaders.locations
    }
}

/// Which relations of ledger entries a selection asks for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Relations {
    pub item: bool,
    pub location: bool,
    pub warehouse: bool,
}

impl Relations {
    /// What a connection field's selection asks of its entries, under
    /// `edges.node` or `nodes`.
    pub fn selected(ctx: &Context<'_>) -> Self {
        let look = ctx.look_ahead();
        let nodes = [look.field("edges").field("node"), look.field("nodes")];
        let asks = |name: &str| nodes.iter().any(|node| node.field(name).exists());
        Self { item: asks("item"), location: asks("location"), warehouse: asks("warehouse") }
    }
}

/// The loaders of one request, by source name.
pub struct Loaders {
    sources: HashMap<SourceName, SourceLoaders>,
    /// Lookups that failed in this request: each field asking again gets the
    /// same error instead of another upstream call. Never shared between
    /// requests (the shared cache keeps no errors).
    failed: Mutex<HashMap<(SourceName, Resource), UpstreamError>>,
    stale: Arc<StaleAnswers>,
}

impl std::fmt::Debug for Loaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaders").field("sources", &self.sources.keys().collect::<Vec<_>>()).finish()
    }
}

impl Loaders {
    /// Fresh loaders for one request of `caller`.
    pub fn new(registry: &Registry, caller: &Caller) -> Self {
        let stale = Arc::new(StaleAnswers::default());
        let sources = registry
            .sources()
            .map(|source| {
                let binding = Binding {
                    source: source.clone(),
                    credentials: caller.credentials(source.name()).cloned(),
                    cache: registry.cache().clone(),
                    stale: stale.clone(),
                };
                let loaders = SourceLoaders {
                    entries: loader(EntryLoader { binding: binding.clone() }),
                    items: entity_loader(&binding),
                    locations: entity_loader(&binding),
                    binding,
                };
                (source.name().clone(), loaders)
            })
            .collect();
        Self { sources, failed: Mutex::default(), stale }
    }

    /// Expired answers that stood in for failing sources in this request.
    pub fn stale_answers(&self) -> &StaleAnswers {
        &self.stale
    }

    fn source(&self, name: &str) -> Option<&SourceLoaders> {
        self.sources.get(&SourceName::new(name))
    }

    /// Entities of `source` by native key; an unknown source knows none.
    async fn load<E: Loaded>(&self, source: &str, keys: Vec<String>) -> Result<HashMap<String, Arc<E>>, UpstreamError> {
        let Some(loaders) = self.source(source) else { return Ok(HashMap::new()) };
        let failure = (loaders.binding.source.name().clone(), <E as Loaded>::RESOURCE);
        if let Some(error) = self.failed.lock().unwrap_or_else(PoisonError::into_inner).get(&failure) {
            return Err(error.clone());
        }
        match E::loader(loaders).load_many(keys).await {
            Ok(found) => Ok(found.into_iter().filter_map(|(key, entity)| Some((key, entity?))).collect()),
            Err(error) => {
                self.failed.lock().unwrap_or_else(PoisonError::into_inner).insert(failure, error.clone());
                Err(error)
            }
        }
    }

    /// Ledger entries of `source` by native id; unknown ids are left out.
    pub async fn entries(
        &self,
        source: &str,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Arc<model::LedgerEntry>>, UpstreamError> {
        self.load(source, ids).await
    }

    pub async fn entry(&self, source: &str, id: &str) -> Result<Option<Arc<model::LedgerEntry>>, UpstreamError> {
        Ok(self.entries(source, vec![id.to_owned()]).await?.remove(id))
    }

    /// Items of `source` by native key; unknown keys are left out.
    pub async fn items(
        &self,
        source: &str,
        keys: Vec<String>,
    ) -> Result<HashMap<String, Arc<model::Item>>, UpstreamError> {
        self.load(source, keys).await
    }

    /// Locations of `source` by native key; unknown keys are left out.
    pub async fn locations(
        &self,
        source: &str,
        keys: Vec<String>,
    ) -> Result<HashMap<String, Arc<model::Location>>, UpstreamError> {
        self.load(source, keys).await
    }

    pub async fn item(&self, source: &str, key: &str) -> Result<Option<Arc<model::Item>>, UpstreamError> {
        Ok(self.items(source, vec![key.to_owned()]).await?.remove(key))
    }

    pub async fn location(&self, source: &str, key: &str) -> Result<Option<Arc<model::Location>>, UpstreamError> {
        Ok(self.locations(source, vec![key.to_owned()]).await?.remove(key))
    }

    /// Stock levels at a location; `None` when its source cannot list them.
    pub async fn location_stock(
        &self,
        source: &str,
        location: &str,
    ) -> Result<Option<Arc<Vec<model::StockLevel>>>, UpstreamError> {
        let Some(SourceLoaders { binding, .. }) = self.source(source) else { return Ok(None) };
        let credentials = binding.credentials.as_ref().map_err(Clone::clone)?;
        let mut found = lookup::location_stock(&binding.source, credentials, &binding.cache, location).await?;
        binding.stale.note(binding.source.name(), Resource::Stock, found.stale_age);
        Ok(found.values.remove(location))
    }

    /// Looks up, in one load per source and kind, every item and location
    /// the `relations` of `entries` will ask for.
    pub async fn prime_entries<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a model::LedgerEntry>,
        relations: Relations,
    ) {
        let mut items = Vec::new();
        let mut places = Vec::new();
        for entry in entries {
            let source = &entry.source;
            if relations.item {
                items.extend(entry.item_ref.iter().map(|key| (source, key)));
            }
            if relations.location {
                places.extend(entry.location_id.as_ref().or(entry.warehouse_id.as_ref()).map(|key| (source, key)));
            }
            if relations.warehouse {
                places.extend(entry.warehouse_id.iter().map(|key| (source, key)));
            }
        }
        self.prime(items, places).await;
    }

    /// Like `prime_entries`, for the items and locations of stock levels.
    pub async fn prime_stock(&self, source: &SourceName, levels: &[model::StockLevel], item: bool, location: bool) {
        let items = levels.iter().filter(|_| item).map(|level| (source, &level.item_ref)).collect();
        let places = levels.iter().filter(|_| location).map(|level| (source, &level.location_ref)).collect();
        self.prime(items, places).await;
    }

    async fn prime(&self, items: Vec<(&SourceName, &String)>, places: Vec<(&SourceName, &String)>) {
        let items = group(items);
        let places = group(places);
        let item_loads = items.into_iter().map(|(source, keys)| self.items(source.as_str(), keys));
        let place_loads = places.into_iter().map(|(source, keys)| self.locations(source.as_str(), keys));
        // Answers land in the loader caches; a failure is remembered in
        // `failed` and reported by each field that asks.
        let _ = futures::join!(join_all(item_loads), join_all(place_loads));
    }
}

/// Keys by source, each once.
fn group<'a>(pairs: Vec<(&'a SourceName, &String)>) -> HashMap<&'a SourceName, Vec<String>> {
    let mut grouped: HashMap<&SourceName, BTreeSet<String>> = HashMap::new();
    for (source, key) in pairs {
        grouped.entry(source).or_default().insert(key.clone());
    }
    grouped.into_iter().map(|(source, keys)| (source, keys.into_iter().collect())).collect()
}

//! One request's `DataLoader`s: per source, one for items and one for
//! locations, bound to that request's credentials. They batch the lookups a
//! request makes while it resolves (a page of entries, `items(ids:)`,
//! federation `_entities`) into the fewest upstream calls; anything shared
//! between requests lives in the cache, keyed by the caller's fingerprint.
//! Loaders are cheap, so they are made per request and never mix callers.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};

use crate::model::{self, SourceName};
use crate::sources::lookup::{self, Entity};
use crate::sources::{Caller, Registry, Source};
use crate::upstream::{Credentials, UpstreamCache, UpstreamError};

/// What every loader of one source needs.
#[derive(Clone)]
struct Binding {
    source: Arc<dyn Source>,
    credentials: Result<Credentials, UpstreamError>,
    cache: Arc<UpstreamCache>,
}

impl Binding {
    fn credentials(&self) -> Result<&Credentials, UpstreamError> {
        self.credentials.as_ref().map_err(Clone::clone)
    }
}

/// Loads one kind of entity from one source.
struct EntityLoader<E> {
    binding: Binding,
    kind: PhantomData<fn() -> E>,
}

impl<E: Entity> Loader<String> for EntityLoader<E> {
    type Value = Arc<E>;
    type Error = UpstreamError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Arc<E>>, UpstreamError> {
        let binding = &self.binding;
        lookup::lookup::<E>(&binding.source, binding.credentials()?, &binding.cache, keys).await
    }
}

struct SourceLoaders {
    binding: Binding,
    items: DataLoader<EntityLoader<model::Item>>,
    locations: DataLoader<EntityLoader<model::Location>>,
}

/// The loaders of one request, by source name.
pub struct Loaders {
    sources: HashMap<SourceName, SourceLoaders>,
}

impl std::fmt::Debug for Loaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaders").field("sources", &self.sources.keys().collect::<Vec<_>>()).finish()
    }
}

fn loader<E: Entity>(binding: &Binding) -> DataLoader<EntityLoader<E>> {
    DataLoader::new(EntityLoader { binding: binding.clone(), kind: PhantomData }, tokio::spawn)
}

impl Loaders {
    /// Fresh loaders for one request of `caller`.
    pub fn new(registry: &Registry, caller: &Caller) -> Self {
        let sources = registry
            .sources()
            .map(|source| {
                let binding = Binding {
                    source: source.clone(),
                    credentials: caller.credentials(source.name()).cloned(),
                    cache: registry.cache().clone(),
                };
                let loaders = SourceLoaders { items: loader(&binding), locations: loader(&binding), binding };
                (source.name().clone(), loaders)
            })
            .collect();
        Self { sources }
    }

    fn source(&self, name: &str) -> Option<&SourceLoaders> {
        self.sources.get(&SourceName::new(name))
    }

    /// Items of `source` by native key; an unknown source knows none.
    pub async fn items(
        &self,
        source: &str,
        keys: Vec<String>,
    ) -> Result<HashMap<String, Arc<model::Item>>, UpstreamError> {
        match self.source(source) {
            Some(loaders) => loaders.items.load_many(keys).await,
            None => Ok(HashMap::new()),
        }
    }

    /// Locations of `source` by native key; an unknown source knows none.
    pub async fn locations(
        &self,
        source: &str,
        keys: Vec<String>,
    ) -> Result<HashMap<String, Arc<model::Location>>, UpstreamError> {
        match self.source(source) {
            Some(loaders) => loaders.locations.load_many(keys).await,
            None => Ok(HashMap::new()),
        }
    }

    pub async fn item(&self, source: &str, key: &str) -> Result<Option<Arc<model::Item>>, UpstreamError> {
        match self.source(source) {
            Some(loaders) => loaders.items.load_one(key.to_owned()).await,
            None => Ok(None),
        }
    }

    pub async fn location(&self, source: &str, key: &str) -> Result<Option<Arc<model::Location>>, UpstreamError> {
        match self.source(source) {
            Some(loaders) => loaders.locations.load_one(key.to_owned()).await,
            None => Ok(None),
        }
    }

    /// Stock levels at a location; `None` when its source cannot list them.
    pub async fn location_stock(
        &self,
        source: &str,
        location: &str,
    ) -> Result<Option<Arc<Vec<model::StockLevel>>>, UpstreamError> {
        let Some(SourceLoaders { binding, .. }) = self.source(source) else { return Ok(None) };
        lookup::location_stock(&binding.source, binding.credentials()?, &binding.cache, location).await
    }
}

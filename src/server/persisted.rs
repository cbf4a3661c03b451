//! Automatic persisted queries, as Apollo's protocol has them
//! (`extensions.persistedQuery { version: 1, sha256Hash }`), and the
//! optional safelist (an Apollo persisted query manifest).
//!
//! Without a safelist, a hash alone runs the document stored under it, or
//! answers `PersistedQueryNotFound` (HTTP 200, so that Apollo Client's
//! persisted-queries link and urql's persisted exchange resend the hash
//! with its query); a hash with its query is checked (the hash must be the
//! query's SHA-256) and runs, and the document is stored once it has
//! parsed, validated and passed the limits, as Apollo Server does, so the
//! store only ever holds documents that execute. One store serves every
//! caller: a document holds no caller data (credentials and variables come
//! with each request).
//!
//! With a safelist, the manifest is the only store: an operation runs when
//! its hash is a listed id (or the SHA-256 of a listed body) or its query
//! is a listed body, byte for byte; anything else is
//! `PERSISTED_QUERY_NOT_IN_SAFELIST`, whether or not it carries a hash, and
//! nothing is ever registered, so APQ cannot smuggle a document in.
//!
//! async-graphql's `ApolloPersistedQueries` extension is not used: it runs
//! inside execution, after this server has already decoded and bounded the
//! request, so a GET by hash alone would be refused for lacking `query`, a
//! batch's field allowance would be counted over empty queries and a miss
//! would be a 400 request error without a code (on which a client may give
//! up on APQ for good); it also stores parsed documents by count only
//! (no byte bound), registers documents that never validated, and has no
//! safelist.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_graphql::parser::parse_query;
use async_graphql::{Request, Response, Value};
use moka::future::Cache;
use moka::policy::EvictionPolicy;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, PersistedQueriesConfig};
use crate::schema::codes::is_request_error;

/// The `extensions` key of the protocol.
pub const EXTENSION: &str = "persistedQuery";
/// The `format` of an Apollo persisted query manifest.
const MANIFEST_FORMAT: &str = "apollo-persisted-query-manifest";

/// Why a persisted-query request does not run. Codes and statuses are in
/// `crate::error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PersistedQueryError {
    /// The message is the protocol's: clients match it exactly.
    #[error("PersistedQueryNotFound")]
    NotFound,
    #[error("extensions.persistedQuery.sha256Hash is not the SHA-256 of the query")]
    HashMismatch,
    #[error("persisted query version {found} is not supported: send version 1")]
    UnsupportedVersion { found: String },
    #[error("extensions.persistedQuery must be an object with version 1 and a string sha256Hash")]
    Malformed,
    #[error("operation is not in the safelist of persisted queries")]
    NotInSafelist,
}

/// A request ready to run, and what to store once it has run.
#[derive(Debug)]
pub struct Resolved {
    pub request: Request,
    registration: Option<Registration>,
}

/// A verified hash and its document, stored if the operation executes.
#[derive(Debug)]
pub struct Registration {
    hash: Arc<str>,
    query: Arc<str>,
}

/// The store of documents by hash, or the safelist that replaces it.
#[derive(Clone, Debug)]
pub struct PersistedQueries {
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    Store(Store),
    Safelist(Arc<Safelist>),
}

impl PersistedQueries {
    /// The store bounded as configured, or the safelist read from its
    /// manifest; an unreadable or invalid manifest is an error, never an
    /// open server.
    pub fn new(config: &PersistedQueriesConfig) -> Result<Self, ConfigError> {
        let source = match &config.safelist {
            Some(path) => Source::Safelist(Arc::new(Safelist::load(path)?)),
            None => Source::Store(Store::new(config.max_entries, config.max_bytes)),
        };
        Ok(Self { source })
    }

    /// The request to run for `request`: its own query, or the stored (or
    /// listed) document its hash names.
    pub async fn resolve(&self, mut request: Request) -> Result<Resolved, PersistedQueryError> {
        let hash = match request.extensions.remove(EXTENSION) {
            Some(extension) => Some(requested_hash(extension)?),
            None => None,
        };
        // Clients that send the hash alone omit `query`; some send it empty.
        let query = Some(request.query.as_str()).filter(|query| !query.is_empty());
        if let (Some(hash), Some(query)) = (&hash, query) {
            if sha256_hex(query) != **hash {
                return Err(PersistedQueryError::HashMismatch);
            }
        }
        match &self.source {
            Source::Store(store) => store.resolve(request, hash).await,
            Source::Safelist(safelist) => safelist.resolve(request, hash),
        }
    }

    /// Stores what `resolved` registers, if its operation executed (parsed,
    /// validated, within the limits); a document that failed is not kept.
    pub async fn settle(&self, registration: Option<Registration>, response: &Response) {
        if !is_request_error(response) {
            self.register(registration).await;
        }
    }

    /// Stores what `registration` registers, for an operation known to
    /// have executed (its answer was kept by the response cache).
    pub async fn register(&self, registration: Option<Registration>) {
        if let (Source::Store(store), Some(registration)) = (&self.source, registration) {
            store.register(registration).await;
        }
    }
}

impl Resolved {
    /// The request, and what [`PersistedQueries::settle`] stores after it ran.
    pub fn into_parts(self) -> (Request, Option<Registration>) {
        (self.request, self.registration)
    }
}

/// The hash an `extensions.persistedQuery` value asks for.
fn requested_hash(extension: Value) -> Result<Arc<str>, PersistedQueryError> {
    let Value::Object(mut fields) = extension else { return Err(PersistedQueryError::Malformed) };
    match fields.get("version") {
        Some(Value::Number(version)) if version.as_u64() == Some(1) => {}
        Some(other) => return Err(PersistedQueryError::UnsupportedVersion { found: other.to_string() }),
        None => return Err(PersistedQueryError::Malformed),
    }
    match fields.swap_remove("sha256Hash") {
        Some(Value::String(hash)) => Ok(hash.into()),
        _ => Err(PersistedQueryError::Malformed),
    }
}

/// Lowercase hex SHA-256 of `text`, as the protocol's hashes are written.
fn sha256_hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// Counts one outcome on `/metrics`.
fn count(outcome: &'static str) {
    metrics::counter!("graphql_persisted_queries_total", "outcome" => outcome).increment(1);
}

/// Documents by hash, shared by every caller, bounded both in entries and
/// in bytes, least recently used evicted first.
#[derive(Clone)]
struct Store {
    documents: Cache<Arc<str>, Arc<str>>,
    max_bytes: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("entries", &self.documents.entry_count()).finish()
    }
}

impl Store {
    fn new(max_entries: u64, max_bytes: u64) -> Self {
        // moka bounds one total weight. Weighing every entry at least
        // `max_bytes / max_entries` makes that one bound both: the weights
        // sum to at most `max_bytes`, so the bytes do, and no more than
        // `max_entries` entries fit.
        let floor = max_bytes.div_ceil(max_entries);
        let documents = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |hash: &Arc<str>, query: &Arc<str>| {
                weight(hash, query).max(floor).try_into().unwrap_or(u32::MAX)
            })
            // Admit every registration: TinyLFU, moka's default, may turn a
            // new document away, and the client that just sent it would miss.
            .eviction_policy(EvictionPolicy::lru())
            .build();
        Self { documents, max_bytes }
    }

    async fn resolve(&self, mut request: Request, hash: Option<Arc<str>>) -> Result<Resolved, PersistedQueryError> {
        let Some(hash) = hash else { return Ok(Resolved { request, registration: None }) };
        if !request.query.is_empty() {
            let query = Arc::from(request.query.as_str());
            return Ok(Resolved { request, registration: Some(Registration { hash, query }) });
        }
        match self.documents.get(&hash).await {
            Some(query) => {
                count("hit");
                request.query = query.to_string();
                Ok(Resolved { request, registration: None })
            }
            None => {
                count("miss");
                Err(PersistedQueryError::NotFound)
            }
        }
    }

    async fn register(&self, Registration { hash, query }: Registration) {
        // Larger than the whole store: it still ran, it is just not kept.
        if weight(&hash, &query) > self.max_bytes {
            return;
        }
        self.documents.insert(hash, query).await;
        // moka evicts lazily; running its maintenance now keeps the bounds
        // exact after every registration, which are rare next to lookups.
        self.documents.run_pending_tasks().await;
        count("registered");
    }
}

fn weight(hash: &str, query: &str) -> u64 {
    (hash.len() + query.len()) as u64
}

/// The operations of a persisted query manifest.
#[derive(Debug)]
struct Safelist {
    /// Body by manifest id.
    by_id: HashMap<String, Arc<str>>,
    /// Body by its SHA-256: what APQ clients send as the hash, and how a
    /// query is found to be a listed body.
    by_hash: HashMap<String, Arc<str>>,
}

/// Apollo's persisted query manifest, as `generate-persisted-query-manifest`
/// writes it and GraphOS and Apollo Router read it.
#[derive(Deserialize)]
struct Manifest {
    format: String,
    version: u64,
    operations: Vec<ManifestOperation>,
}

#[derive(Deserialize)]
struct ManifestOperation {
    id: String,
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "type")]
    _kind: OperationKind,
    body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

impl Safelist {
    fn load(path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            key: "server.persisted_queries.safelist",
            message: format!("{}: {message}", path.display()),
        };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot be read: {e}")))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("is not an Apollo persisted query manifest: {e}")))?;
        Self::from_manifest(manifest).map_err(invalid)
    }

    fn from_manifest(manifest: Manifest) -> Result<Self, String> {
        if manifest.format != MANIFEST_FORMAT {
            return Err(format!("format is {:?}, not {MANIFEST_FORMAT:?}", manifest.format));
        }
        if manifest.version != 1 {
            return Err(format!("version is {}, only version 1 is supported", manifest.version));
        }
        if manifest.operations.is_empty() {
            return Err("lists no operations: every request would be refused".into());
        }
        let mut safelist = Self { by_id: HashMap::new(), by_hash: HashMap::new() };
        for operation in manifest.operations {
            if operation.id.is_empty() {
                return Err("an operation has an empty id".into());
            }
            if parse_query(&operation.body).is_err() {
                return Err(format!("the body of operation {} does not parse", operation.id));
            }
            let body: Arc<str> = operation.body.into();
            safelist.by_hash.insert(sha256_hex(&body), body.clone());
            if safelist.by_id.insert(operation.id.clone(), body).is_some() {
                return Err(format!("operation id {} is listed twice", operation.id));
            }
        }
        Ok(safelist)
    }

    fn resolve(&self, mut request: Request, hash: Option<Arc<str>>) -> Result<Resolved, PersistedQueryError> {
        let listed = if request.query.is_empty() {
            hash.and_then(|hash| self.by_id.get(&*hash).or_else(|| self.by_hash.get(&*hash)))
        } else {
            self.by_hash.get(&sha256_hex(&request.query)).filter(|body| ***body == *request.query)
        };
        match listed {
            Some(body) => {
                count("hit");
                request.query = body.to_string();
                Ok(Resolved { request, registration: None })
            }
            None => {
                count("not_in_safelist");
                Err(PersistedQueryError::NotInSafelist)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(operations: serde_json::Value) -> Manifest {
        serde_json::from_value(serde_json::json!({"format": MANIFEST_FORMAT, "version": 1, "operations": operations}))
            .unwrap()
    }

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(sha256_hex("{ __typename }"), "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b");
    }

    #[test]
    fn malformed_extensions_and_other_versions_are_refused() {
        let hash = || Value::from("abc");
        let object = |fields: Vec<(&str, Value)>| {
            Value::Object(fields.into_iter().map(|(k, v)| (async_graphql::Name::new(k), v)).collect())
        };
        assert_eq!(
            requested_hash(object(vec![("version", Value::from(1)), ("sha256Hash", hash())])).unwrap(),
            "abc".into()
        );
        assert_eq!(
            requested_hash(object(vec![("version", Value::from(2)), ("sha256Hash", hash())])).unwrap_err(),
            PersistedQueryError::UnsupportedVersion { found: "2".into() }
        );
        for malformed in [
            Value::from("abc"),
            object(vec![("sha256Hash", hash())]),
            object(vec![("version", Value::from(1))]),
            object(vec![("version", Value::from(1)), ("sha256Hash", Value::from(5))]),
        ] {
            assert_eq!(requested_hash(malformed).unwrap_err(), PersistedQueryError::Malformed);
        }
    }

    #[test]
    fn manifests_must_be_well_formed() {
        let op = |id: &str, body: &str| serde_json::json!({"id": id, "name": "Q", "type": "query", "body": body});
        assert!(Safelist::from_manifest(manifest(serde_json::json!([op("a", "{ a }")]))).is_ok());
        let cases = [
            (serde_json::json!([]), "lists no operations"),
            (serde_json::json!([op("", "{ a }")]), "empty id"),
            (serde_json::json!([op("a", "{ a")]), "does not parse"),
            (serde_json::json!([op("a", "{ a }"), op("a", "{ b }")]), "listed twice"),
        ];
        for (operations, expected) in cases {
            let error = Safelist::from_manifest(manifest(operations)).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let mut other = manifest(serde_json::json!([op("a", "{ a }")]));
        other.format = "relay".into();
        assert!(Safelist::from_manifest(other).unwrap_err().contains("not \"apollo-persisted-query-manifest\""));
    }
}

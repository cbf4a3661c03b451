//! The configured sources, per-caller credential resolution, and the fan-out
//! that asks every planned source for its next entries concurrently and
//! merges them into one page.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use axum::http::HeaderMap;
use futures::future::join_all;
use secrecy::SecretString;
use tracing::{instrument, Instrument, Span};

use super::{bigledger, business_central, next_entries, pennylane, trackstar, Source};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, SourceConfig};
use crate::ledger::{merge, plan, Cursor, LedgerFilter, MergedPage};
use crate::model::{LedgerEntry, SourceKind, SourceName};
use crate::telemetry;
use crate::upstream::{Credentials, FingerprintKey, UpstreamCache, UpstreamError, UpstreamFailure};

/// `read` inside `span`, which records how it failed.
pub async fn traced<T>(span: Span, read: impl Future<Output = Result<T, UpstreamError>>) -> Result<T, UpstreamError> {
    let result = read.instrument(span.clone()).await;
    if let Err(error) = &result {
        telemetry::record_error(&span, crate::error::upstream_code(&error.failure));
    }
    result
}

/// Builds the connector for one configured source: the one place that knows
/// every kind.
fn build_source(name: SourceName, config: &SourceConfig, clock: Clock) -> Arc<dyn Source> {
    match config.kind {
        SourceKind::Trackstar => Arc::new(trackstar::Trackstar::new(name, config, clock)),
        SourceKind::BusinessCentral => Arc::new(business_central::BusinessCentral::new(name, config, clock)),
        SourceKind::Bigledger => Arc::new(bigledger::BigLedger::new(name, config, clock)),
        SourceKind::Pennylane => Arc::new(pennylane::Pennylane::new(name, config, clock)),
    }
}

/// What a kind of source accepts in its configuration.
#[derive(Clone, Copy, Debug)]
pub struct KindRules {
    /// Every credential field each call needs (and the only ones a caller
    /// may forward).
    pub credential_fields: &'static [&'static str],
    /// Fields a service account may configure instead, from which the
    /// connector obtains `credential_fields` itself (Business Central's
    /// client credentials); empty for kinds that cannot sign in.
    pub sign_in_fields: &'static [&'static str],
    /// The largest `page_size` its API serves.
    pub max_page_size: usize,
    /// Whether it reads its ledger in date windows (`initial_window_secs`).
    pub date_windows: bool,
}

/// The configuration rules of a kind of source, for config validation.
pub fn rules(kind: SourceKind) -> KindRules {
    let (credential_fields, max_page_size, date_windows) = match kind {
        SourceKind::Trackstar => (trackstar::CREDENTIAL_FIELDS, trackstar::MAX_PAGE_SIZE, true),
        SourceKind::BusinessCentral => (business_central::CREDENTIAL_FIELDS, business_central::MAX_PAGE_SIZE, false),
        SourceKind::Bigledger => (bigledger::CREDENTIAL_FIELDS, bigledger::MAX_PAGE_SIZE, true),
        SourceKind::Pennylane => (pennylane::CREDENTIAL_FIELDS, pennylane::MAX_PAGE_SIZE, false),
    };
    let sign_in_fields = match kind {
        SourceKind::BusinessCentral => business_central::SIGN_IN_FIELDS,
        _ => &[],
    };
    KindRules { credential_fields, sign_in_fields, max_page_size, date_windows }
}

/// Where each credential field of a source comes from.
#[derive(Debug)]
struct CredentialPolicy {
    configured: BTreeMap<String, SecretString>,
    /// Credential field -> request header carrying the caller's own value.
    forwarded: BTreeMap<String, String>,
    required: &'static [&'static str],
    /// The service account's configured sign-in fields, when it signs in:
    /// the credentials of every call that brings none of its own.
    sign_in: Option<Credentials>,
}

impl CredentialPolicy {
    fn new(config: &SourceConfig, required: &'static [&'static str], key: &FingerprintKey) -> Self {
        let sign_in_fields = rules(config.kind).sign_in_fields;
        let sign_in: BTreeMap<String, SecretString> = sign_in_fields
            .iter()
            .filter_map(|field| Some(((*field).to_owned(), config.credentials.get(*field)?.clone())))
            .collect();
        // Validation lets a source configure all of them or none.
        let sign_in = (!sign_in_fields.is_empty() && sign_in.len() == sign_in_fields.len())
            .then(|| Credentials::new(key, sign_in));
        Self { configured: config.credentials.clone(), forwarded: config.forward.clone(), required, sign_in }
    }

    fn resolve(&self, key: &FingerprintKey, headers: &HeaderMap) -> Result<Credentials, UpstreamFailure> {
        let mut fields = BTreeMap::new();
        for field in self.required {
            let forwarded = match self.forwarded.get(*field) {
                Some(header) => forwarded_value(headers, header)?,
                None => None,
            };
            if let Some(value) = forwarded.or_else(|| self.configured.get(*field).cloned()) {
                fields.insert((*field).to_owned(), value);
            }
        }
        match &self.sign_in {
            Some(sign_in) if fields.is_empty() => Ok(sign_in.clone()),
            _ if fields.len() < self.required.len() => Err(UpstreamFailure::MissingCredentials),
            _ => Ok(Credentials::new(key, fields)),
        }
    }
}

/// The caller's own credential in `header`; `None` only when the header is
/// absent. A header that is present but cannot be a credential (blank,
/// repeated, or not visible ASCII) is an error: taking it as absent would
/// quietly answer with the service account's data instead of the caller's.
fn forwarded_value(headers: &HeaderMap, header: &str) -> Result<Option<SecretString>, UpstreamFailure> {
    let mut values = headers.get_all(header).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(UpstreamFailure::UnusableCredentials);
    }
    // Inner spaces stay: a forwarded `Authorization` carries its scheme.
    let usable = |value: &str| !value.is_empty() && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    match value.to_str().map(str::trim) {
        Ok(value) if usable(value) => Ok(Some(SecretString::from(value))),
        _ => Err(UpstreamFailure::UnusableCredentials),
    }
}

#[derive(Debug)]
struct Registered {
    source: Arc<dyn Source>,
    credentials: CredentialPolicy,
}

/// Every configured source, in name order.
#[derive(Debug)]
pub struct Registry {
    sources: Vec<Registered>,
    key: FingerprintKey,
    /// Shared by every request; keys carry each caller's fingerprint.
    cache: Arc<UpstreamCache>,
}

/// One request's credentials for every source, resolved once.
#[derive(Debug, Default)]
pub struct Caller {
    credentials: HashMap<SourceName, Result<Credentials, UpstreamFailure>>,
}

impl Caller {
    /// Whose answers this caller gets: per source, in name order, the
    /// credentials' fingerprint or the code of why there are none.
    pub fn identity(&self) -> Vec<(&SourceName, Result<&str, &'static str>)> {
        let mut identity: Vec<_> = self
            .credentials
            .iter()
            .map(|(source, credentials)| {
                let id = match credentials {
                    Ok(credentials) => Ok(credentials.fingerprint().as_str()),
                    Err(failure) => Err(crate::error::upstream_code(failure)),
                };
                (source, id)
            })
            .collect();
        identity.sort_unstable_by_key(|(source, _)| *source);
        identity
    }

    pub fn credentials(&self, source: &SourceName) -> Result<&Credentials, UpstreamError> {
        match self.credentials.get(source) {
            Some(Ok(credentials)) => Ok(credentials),
            Some(Err(failure)) => Err(UpstreamError::new(source, failure.clone())),
            None => Err(UpstreamError::new(source, UpstreamFailure::MissingCredentials)),
        }
    }
}

/// A merged page and the sources that failed while making it.
#[derive(Debug)]
pub struct LedgerPage {
    pub merged: MergedPage,
    pub errors: Vec<UpstreamError>,
}

impl Registry {
    pub fn from_config(config: &Config, key: FingerprintKey) -> Result<Self, ConfigError> {
        let sources = config
            .sources
            .iter()
            .map(|(name, source_config)| {
                let source = build_source(SourceName::new(name), source_config, config.clock);
                let credentials = CredentialPolicy::new(source_config, source.credential_fields(), &key);
                Ok(Registered { source, credentials })
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self { sources, key, cache: Arc::new(UpstreamCache::new(&config.cache, config.clock)) })
    }

    pub fn cache(&self) -> &Arc<UpstreamCache> {
        &self.cache
    }

    pub fn sources(&self) -> impl Iterator<Item = &Arc<dyn Source>> {
        self.sources.iter().map(|r| &r.source)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Source>> {
        self.sources().find(|s| s.name().as_str() == name)
    }

    /// The configured credentials of every source (the service account),
    /// as a request without forwarded headers gets them.
    pub fn service_caller(&self) -> Caller {
        self.caller(&HeaderMap::new())
    }

    /// Resolves every source's credentials for one request.
    pub fn caller(&self, headers: &HeaderMap) -> Caller {
        let credentials =
            self.sources.iter().map(|r| (r.source.name().clone(), r.credentials.resolve(&self.key, headers))).collect();
        Caller { credentials }
    }

    /// The first `first` entries after `after`, merged across sources. A
    /// failing source costs its entries on this page, not the page.
    #[instrument(skip_all, fields(first))]
    pub async fn ledger_page(
        &self,
        caller: &Caller,
        filter: &LedgerFilter,
        after: Option<&Cursor>,
        first: usize,
    ) -> LedgerPage {
        let fetches = self.sources().filter_map(|source| {
            let name = source.name().as_str();
            let plan = plan(name, source.capabilities(), filter)?;
            let position = after.and_then(|c| c.position_for(name).cloned());
            let hint = after.and_then(|c| c.hints.get(name).cloned());
            let read = async move {
                let credentials = caller.credentials(source.name())?;
                // Before the read, so that it sees no window the probe drops.
                let probe = |since| source.changed_since(credentials, since);
                self.cache.probe_settled(credentials, source.name(), probe).await;
                let read = next_entries(source.as_ref(), credentials, plan, position, first, hint);
                self.cache.reusing_ledger(credentials, read).await
            };
            Some(traced(telemetry::source_read(source.name(), "ledger_page"), read))
        });
        let mut pages = Vec::new();
        let mut errors = Vec::new();
        for result in join_all(fetches).await {
            match result {
                Ok(page) => pages.push(page),
                Err(error) => errors.push(error),
            }
        }
        let failed: Vec<String> = errors.iter().map(|e| e.source_name.to_string()).collect();
        let merged = merge(pages, first, &filter.digest(), after, &failed);
        LedgerPage { merged, errors }
    }

    /// One entry by global id; `Ok(None)` when no source has it.
    pub async fn entry(
        &self,
        caller: &Caller,
        source: &str,
        native_id: &str,
    ) -> Result<Option<LedgerEntry>, UpstreamError> {
        let Some(source) = self.get(source) else { return Ok(None) };
        let read = async {
            let credentials = caller.credentials(source.name())?;
            self.cache.reusing_ledger(credentials, source.entry(credentials, native_id)).await
        };
        traced(telemetry::source_read(source.name(), "entry"), read).await
    }

    /// Exact total across the sources `filter` reaches; `None` when any of
    /// them cannot count.
    pub async fn total_count(&self, caller: &Caller, filter: &LedgerFilter) -> Result<Option<u64>, UpstreamError> {
        let counts = self.sources().filter_map(|source| {
            let plan = plan(source.name().as_str(), source.capabilities(), filter)?;
            let read = async move {
                // A residual makes the upstream's count an overcount.
                if plan.residual != Default::default() {
                    return Ok(None);
                }
                let credentials = caller.credentials(source.name())?;
                self.cache.reusing_ledger(credentials, source.count(credentials, &plan.filter)).await
            };
            Some(traced(telemetry::source_read(source.name(), "count"), read))
        });
        let mut total = Some(0u64);
        for count in join_all(counts).await {
            total = match (total, count?) {
                (Some(total), Some(count)) => Some(total + count),
                _ => None,
            };
        }
        Ok(total)
    }

    /// Checks every source answers with the configured credentials.
    pub async fn check_ready(&self) -> Vec<(SourceName, Result<(), UpstreamError>)> {
        let caller = self.service_caller();
        join_all(self.sources().map(|source| {
            let caller = &caller;
            async move {
                let result = match caller.credentials(source.name()) {
                    // Sources that only use callers' own credentials cannot
                    // be probed without a caller; they count as ready.
                    Err(e) if e.failure == UpstreamFailure::MissingCredentials => Ok(()),
                    Err(e) => Err(e),
                    Ok(credentials) => source.check_ready(credentials).await,
                };
                (source.name().clone(), result)
            }
        }))
        .await
    }
}

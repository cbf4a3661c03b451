//! Connectors, one folder per upstream, behind one object-safe trait. A
//! connector translates a planned filter into native queries and native
//! records into the unified model; everything else (HTTP mechanics, merge,
//! cursors) is shared. Adding an upstream: a folder here plus one line in
//! `registry::build_source`.

pub mod bigledger;
pub mod business_central;
pub mod lookup;
pub mod pennylane;
pub mod registry;
pub mod trackstar;
pub mod window;

use std::collections::HashMap;
use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ledger::{Capabilities, Collector, Hint, SourceFilter, SourcePage, SourcePlan, Watermark};
use crate::model::{Item, LedgerEntry, Location, NodeKind, SortKey, SourceKind, SourceName, StockLevel};
use crate::upstream::settled::Changes;
use crate::upstream::{Credentials, UpstreamClient, UpstreamError};

pub use registry::{Caller, Registry};

/// A chunk of a source's ledger, in no particular order inside, with the
/// watermark that says how complete the source's output is so far.
#[derive(Debug)]
pub struct Batch {
    pub entries: Vec<LedgerEntry>,
    pub watermark: Watermark,
}

/// A source's ledger walked newest first in batches. Each call makes at most
/// a bounded number of upstream calls, so the driver decides when to stop.
#[async_trait]
pub trait LedgerScan: Send {
    async fn next_batch(&mut self) -> Result<Batch, UpstreamError>;

    /// A hint for the next page's scan, carried in the cursor.
    fn hint(&self) -> Option<Hint> {
        None
    }
}

/// What a scan is asked for.
#[derive(Clone, Debug)]
pub struct ScanRequest {
    pub filter: SourceFilter,
    /// Continue strictly after this entry (merged order); `None`: from the newest.
    pub position: Option<SortKey>,
    /// How many entries the page needs from this source.
    pub want: usize,
    /// What the gateway still checks on each entry: a walk sizes its
    /// windows by the entries that will match, not by those it reads.
    pub residual: SourceFilter,
    pub hint: Option<Hint>,
}

/// What is known of a source without calling it; each connector builds its
/// own in `new`.
#[derive(Clone, Debug)]
pub struct SourceInfo {
    pub name: SourceName,
    pub kind: SourceKind,
    pub capabilities: Capabilities,
    /// The credential fields every call needs (`api_key`, `access_token`...).
    pub credential_fields: &'static [&'static str],
}

/// One upstream, as the planner and the schema see it.
#[async_trait]
pub trait Source: Send + Sync + Debug {
    fn info(&self) -> &SourceInfo;

    fn name(&self) -> &SourceName {
        &self.info().name
    }

    fn kind(&self) -> SourceKind {
        self.info().kind
    }

    fn capabilities(&self) -> &Capabilities {
        &self.info().capabilities
    }

    fn credential_fields(&self) -> &'static [&'static str] {
        self.info().credential_fields
    }

    /// The kinds of object `native_id` can name here, as far as the
    /// upstream's id grammar tells them apart; `node(id:)` looks an id up as
    /// each of them. By default every kind the source has: opaque ids say
    /// nothing.
    fn node_kinds(&self, _native_id: &str) -> Vec<NodeKind> {
        let capabilities = self.capabilities();
        let kinds = [
            (NodeKind::Entry, true),
            (NodeKind::Item, capabilities.items.is_some()),
            (NodeKind::Location, capabilities.locations.is_some()),
        ];
        kinds.into_iter().filter_map(|(kind, has)| has.then_some(kind)).collect()
    }

    fn scan<'a>(&'a self, credentials: &'a Credentials, request: ScanRequest) -> Box<dyn LedgerScan + 'a>;

    /// One entry by native id; `None` when the upstream has no such entry.
    async fn entry(&self, credentials: &Credentials, native_id: &str) -> Result<Option<LedgerEntry>, UpstreamError>;

    /// Exact number of entries matching `filter`, when the upstream reports one.
    async fn count(&self, credentials: &Credentials, filter: &SourceFilter) -> Result<Option<u64>, UpstreamError>;

    /// Items by native key (the `item_ref` of entries), at most
    /// `capabilities().items.max_keys` keys a call. Keys the upstream does
    /// not know are absent from the result. It may also hold items it was
    /// not asked for but got in the same upstream call: they are cached too.
    async fn items(&self, credentials: &Credentials, keys: &[String]) -> Result<HashMap<String, Item>, UpstreamError>;

    /// Locations by native key (an entry's `location_id` or `warehouse_id`),
    /// like `items` (a source that lists bins per warehouse returns the
    /// warehouse's other bins as well).
    async fn locations(
        &self,
        credentials: &Credentials,
        keys: &[String],
    ) -> Result<HashMap<String, Location>, UpstreamError>;

    /// The stock levels at one location (native key), including the bins
    /// inside it; `None` when the upstream cannot list stock by location,
    /// which is the default.
    async fn location_stock(
        &self,
        _credentials: &Credentials,
        _location: &str,
    ) -> Result<Option<Vec<StockLevel>>, UpstreamError> {
        Ok(None)
    }

    /// The entry dates of the ledger records created or modified at or after
    /// `since`, in one upstream call (the settled-history change probe, see
    /// `upstream::settled`). `None`: the upstream cannot filter on modification
    /// time, which is the default (see [`probes_changes`]).
    async fn changed_since(
        &self,
        _credentials: &Credentials,
        _since: DateTime<Utc>,
    ) -> Result<Option<Changes>, UpstreamError> {
        Ok(None)
    }

    /// A cheap authenticated call, for readiness.
    async fn check_ready(&self, credentials: &Credentials) -> Result<(), UpstreamError>;

    /// The client every call of this source goes through: its breakers,
    /// limits and recorded outcomes are the source's health.
    fn client(&self) -> &UpstreamClient;
}

/// Whether sources of `kind` answer [`Source::changed_since`]: only those
/// may have settled-history caching configured.
pub fn probes_changes(kind: SourceKind) -> bool {
    matches!(kind, SourceKind::Trackstar)
}

/// The next `want` entries of one source after `position`, pulling batches
/// until they are known or the source is exhausted.
pub async fn next_entries(
    source: &dyn Source,
    credentials: &Credentials,
    plan: SourcePlan,
    position: Option<SortKey>,
    want: usize,
    hint: Option<Hint>,
) -> Result<SourcePage, UpstreamError> {
    let request =
        ScanRequest { filter: plan.filter, position: position.clone(), want, residual: plan.residual.clone(), hint };
    let scan = source.scan(credentials, request);
    let collector = Collector::new(position, plan.residual, want);
    let (entries, has_more, hint) = drive(scan, collector).await?;
    Ok(SourcePage { source: source.name().to_string(), entries, has_more, hint })
}

/// Feeds `scan`'s batches to `collector` until it holds a full page or the
/// scan is exhausted: the entries, whether more exist, and the scan's hint.
pub async fn drive(
    mut scan: Box<dyn LedgerScan + '_>,
    mut collector: Collector,
) -> Result<(Vec<LedgerEntry>, bool, Option<Hint>), UpstreamError> {
    let mut exhausted = false;
    while !exhausted && !collector.is_satisfied() {
        let batch = scan.next_batch().await?;
        exhausted = batch.watermark == Watermark::Exhausted;
        collector.push(batch.entries, batch.watermark);
    }
    let hint = scan.hint();
    let (entries, has_more) = collector.finish(exhausted);
    Ok((entries, has_more, hint))
}

//! Root query fields, and the ledger connection resolver that `Item` and
//! `Location` reuse for their own entries.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ErrorExtensions, Object, PathSegment, Result, ID};
use futures::future::join_all;
use tokio::sync::OnceCell;

use super::entry::LedgerEntry;
use super::filter::{LedgerEntryFilter, MAX_FILTER_VALUES};
use super::inventory::{load_item, load_location, upstream_error, Item, Location};
use super::loaders::{Loaders, Relations};
use super::node::{self, Node};
use crate::config::LimitsConfig;
use crate::error::{bad_input, GatewayError};
use crate::ledger::{Cursor, LedgerFilter};
use crate::model::{split_global_id, NodeKind, SourceName};
use crate::sources::{Caller, Registry};
use crate::upstream::UpstreamError;

/// Extra fields of `LedgerEntryConnection`.
#[derive(Debug)]
pub struct LedgerEntryConnectionFields {
    filter: Arc<LedgerFilter>,
    /// The count, computed once however many selections (aliases,
    /// fragments) ask this connection for it.
    total: OnceCell<Result<Option<u64>, UpstreamError>>,
}

#[Object]
impl LedgerEntryConnectionFields {
    /// Exact number of entries matching the filter across all sources, or
    /// null when any selected source cannot count exactly (Trackstar reports
    /// no totals; a gateway-side filter also makes a count inexact).
    /// Costs extra upstream calls: only ask for it when you show it.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<Option<u64>> {
        let registry = ctx.data::<Arc<Registry>>()?;
        let caller = ctx.data::<Caller>()?;
        let total = self.total.get_or_init(|| registry.total_count(caller, &self.filter)).await;
        total.clone().map_err(|e| GatewayError::from(e).extend())
    }
}

pub type LedgerEntryConnection = Connection<String, LedgerEntry, LedgerEntryConnectionFields, EmptyFields>;

#[derive(Debug, Default)]
pub struct Query;

/// The entry points: the merged ledger, single entries, and items and
/// locations by id (also as federation entities).
#[Object]
impl Query {
    /// Ledger entries from every configured source, merged newest first
    /// (`entryDate` descending, ties by source then native id). Page forward
    /// with `first` and `after` (an `endCursor` from the previous page of the
    /// same filter). When a source fails, the page holds the other sources'
    /// entries and an error naming it; the cursor remembers where that
    /// source stood, so the next page neither loses nor repeats its entries.
    #[graphql(complexity = "super::limits::page_cost(first, child_complexity)")]
    async fn ledger_entries(
        &self,
        ctx: &Context<'_>,
        filter: Option<LedgerEntryFilter>,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<LedgerEntryConnection> {
        ledger_connection(ctx, filter.unwrap_or_default(), after, first).await
    }

    /// Each configured source's health for the caller's own credentials,
    /// from what the gateway already holds: it makes no upstream call.
    async fn sources(&self, ctx: &Context<'_>) -> Result<Vec<super::health::SourceHealth>> {
        // Live state, not an upstream answer: no time-to-live bounds it.
        crate::upstream::freshness::unkeepable();
        super::health::sources(ctx)
    }

    /// One ledger entry by id (`<source>:<native id>`); null when no source
    /// has it.
    async fn ledger_entry(&self, ctx: &Context<'_>, id: ID) -> Result<Option<LedgerEntry>> {
        find_entry(ctx, &id).await
    }

    /// Federation: ledger entries by `id`, batched per source like
    /// `ledgerEntries(filter: { ids })`.
    #[graphql(entity)]
    async fn find_ledger_entry_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<LedgerEntry>> {
        match node::entity(ctx, "LedgerEntry", &id, NodeKind::Entry).await? {
            Some(Node::LedgerEntry(entry)) => Ok(Some(entry)),
            _ => Ok(None),
        }
    }

    /// One item by id (`<source>:<native id>`), looked up in that source;
    /// null when the source does not know it (or is not configured).
    async fn item(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Item>> {
        find_item(ctx, &id).await
    }

    /// Items by id, in the order asked, null where a source does not know
    /// one; at most 500 ids. Ids of one source cost one batched lookup (split
    /// at the source's batch limit). When a source fails, its items are null
    /// with an error each, naming the source; the others still resolve.
    #[graphql(complexity = "super::limits::ids_cost(ids.len(), child_complexity)")]
    async fn items(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Item>>> {
        let loaders = ctx.data::<Loaders>()?;
        by_source(ctx, &ids, |source, keys| loaders.items(source, keys))
            .await
            .map(|found| found.into_iter().map(|item| item.map(Item)).collect())
    }

    /// Relay: the entry, item or location with this id. Null with an error
    /// when none has it (`NOT_FOUND`), the id is malformed, or more than one
    /// kind of the source has it (`AMBIGUOUS_ID`; see the README).
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        node::find(ctx, &id, None).await.map(Some)
    }

    /// Relay: `node` for each id, in the order asked, through the same
    /// batched loaders (N entry ids of one source cost one ledger read by
    /// ids). A failing id is null with its error; the others resolve. At
    /// most `limits.max_node_ids` ids per operation.
    #[graphql(complexity = "super::limits::ids_cost(ids.len(), child_complexity)")]
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Vec<Option<Node>> {
        let found = join_all(ids.iter().map(|id| node::find(ctx, id, None))).await;
        found.into_iter().enumerate().map(|(index, found)| node::element(ctx, index, found)).collect()
    }

    /// One location (warehouse, store or bin) by id; null when the source
    /// does not know it (or is not configured).
    async fn location(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Location>> {
        find_location(ctx, &id).await
    }

    /// Locations by id, like `items`.
    #[graphql(complexity = "super::limits::ids_cost(ids.len(), child_complexity)")]
    async fn locations(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Location>>> {
        let loaders = ctx.data::<Loaders>()?;
        by_source(ctx, &ids, |source, keys| loaders.locations(source, keys))
            .await
            .map(|found| found.into_iter().map(|location| location.map(Location)).collect())
    }

    /// Federation: items by `id`, batched through the same loaders.
    #[graphql(entity)]
    async fn find_item_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Item>> {
        match node::entity(ctx, "Item", &id, NodeKind::Item).await? {
            Some(Node::Item(item)) => Ok(Some(item)),
            _ => Ok(None),
        }
    }

    /// Federation: locations by `id`, batched through the same loaders.
    #[graphql(entity)]
    async fn find_location_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Location>> {
        match node::entity(ctx, "Location", &id, NodeKind::Location).await? {
            Some(Node::Location(location)) => Ok(Some(location)),
            _ => Ok(None),
        }
    }
}

/// The ledger connection for `filter`: what `Query.ledgerEntries` answers,
/// and what `Item.ledgerEntries` / `Location.ledgerEntries` answer with their
/// own id added to the filter. Source failures become errors at this field's
/// path beside the entries that did arrive.
pub async fn ledger_connection(
    ctx: &Context<'_>,
    filter: LedgerEntryFilter,
    after: Option<String>,
    first: Option<i32>,
) -> Result<LedgerEntryConnection> {
    let registry = ctx.data::<Arc<Registry>>()?;
    let limits = ctx.data::<LimitsConfig>()?;
    let caller = ctx.data::<Caller>()?;
    let first = page_size(first, limits)?;
    let known: Vec<&str> = registry.sources().map(|s| s.name().as_str()).collect();
    let filter = filter.into_ledger_filter(&known).map_err(bad_input)?;
    let cursor = after
        .map(|text| Cursor::decode(&text, &filter.digest()))
        .transpose()
        .map_err(|e| GatewayError::from(e).extend())?;
    let page = registry.ledger_page(caller, &filter, cursor.as_ref(), first).await;
    let entries = page.merged.edges.iter().map(|(entry, _)| entry);
    ctx.data::<Loaders>()?.prime_entries(entries, Relations::selected(ctx)).await;
    for error in page.errors {
        ctx.add_error(ctx.set_error_path(GatewayError::from(error).into_server_error(Some(ctx.item.pos))));
    }
    let fields = LedgerEntryConnectionFields { filter: Arc::new(filter), total: OnceCell::new() };
    let mut connection = Connection::with_additional_fields(cursor.is_some(), page.merged.has_next_page, fields);
    connection.edges.extend(page.merged.edges.into_iter().map(|(entry, cursor)| Edge::new(cursor, LedgerEntry(entry))));
    Ok(connection)
}

fn parse_id(id: &ID) -> Result<(&str, &str)> {
    split_global_id(id)
        .ok_or_else(|| bad_input(format!("id {:?} is not of the form <source>:<native id>", id.as_str())))
}

async fn find_item(ctx: &Context<'_>, id: &ID) -> Result<Option<Item>> {
    let (source, native) = parse_id(id)?;
    load_item(ctx, &SourceName::new(source), native).await
}

async fn find_location(ctx: &Context<'_>, id: &ID) -> Result<Option<Location>> {
    let (source, native) = parse_id(id)?;
    load_location(ctx, &SourceName::new(source), native).await
}

/// Resolves `ids` source by source (concurrently, one `load` per source),
/// in the order asked. A failing source's elements are null, each with an
/// error at its own path.
async fn by_source<'a, T, F, Fut>(ctx: &Context<'_>, ids: &'a [ID], load: F) -> Result<Vec<Option<T>>>
where
    F: Fn(&'a str, Vec<String>) -> Fut,
    Fut: Future<Output = std::result::Result<HashMap<String, T>, UpstreamError>>,
    T: Clone,
{
    if ids.len() > MAX_FILTER_VALUES {
        return Err(bad_input(format!("ids takes at most {MAX_FILTER_VALUES} values")));
    }
    let parsed: Vec<(&str, &str)> = ids.iter().map(parse_id).collect::<Result<_>>()?;
    let mut wanted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (source, native) in &parsed {
        wanted.entry(source).or_default().push((*native).to_owned());
    }
    let load = &load;
    let answers: HashMap<&str, _> =
        join_all(wanted.into_iter().map(|(source, keys)| async move { (source, load(source, keys).await) }))
            .await
            .into_iter()
            .collect();
    let mut resolved = Vec::with_capacity(parsed.len());
    for (index, (source, native)) in parsed.into_iter().enumerate() {
        match &answers[source] {
            Ok(found) => resolved.push(found.get(native).cloned()),
            Err(error) => {
                let mut error = ctx.set_error_path(upstream_error(error.clone()).into_server_error(ctx.item.pos));
                error.path.push(PathSegment::Index(index));
                ctx.add_error(error);
                resolved.push(None);
            }
        }
    }
    Ok(resolved)
}

fn page_size(first: Option<i32>, limits: &LimitsConfig) -> Result<usize> {
    match first {
        None => Ok(limits.default_page_size),
        Some(n) if n >= 1 && n as usize <= limits.max_page_size => Ok(n as usize),
        Some(n) => Err(bad_input(format!("first must be between 1 and {}, got {n}", limits.max_page_size))),
    }
}

async fn find_entry(ctx: &Context<'_>, id: &ID) -> Result<Option<LedgerEntry>> {
    let registry = ctx.data::<Arc<Registry>>()?;
    let caller = ctx.data::<Caller>()?;
    let (source, native) = split_global_id(id)
        .ok_or_else(|| bad_input(format!("id {:?} is not of the form <source>:<native id>", id.as_str())))?;
    match registry.entry(caller, source, native).await {
        Ok(entry) => Ok(entry.map(LedgerEntry)),
        Err(e) if e.failure == crate::upstream::UpstreamFailure::NotFound => Ok(None),
        Err(e) => Err(GatewayError::from(e).extend()),
    }
}

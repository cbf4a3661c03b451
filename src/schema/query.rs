//! Root query fields.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ErrorExtensions, Object, Result, ID};

use super::entry::LedgerEntry;
use super::filter::LedgerEntryFilter;
use crate::config::LimitsConfig;
use crate::error::{bad_input, GatewayError};
use crate::ledger::{Cursor, LedgerFilter};
use crate::model::split_global_id;
use crate::sources::{Caller, Registry};

/// Extra fields of `LedgerEntryConnection`.
#[derive(Debug)]
pub struct LedgerEntryConnectionFields {
    filter: Arc<LedgerFilter>,
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
        registry.total_count(caller, &self.filter).await.map_err(|e| GatewayError::from(e).extend())
    }
}

pub type LedgerEntryConnection = Connection<String, LedgerEntry, LedgerEntryConnectionFields, EmptyFields>;

#[derive(Debug, Default)]
pub struct Query;

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
        let registry = ctx.data::<Arc<Registry>>()?;
        let limits = ctx.data::<LimitsConfig>()?;
        let caller = ctx.data::<Caller>()?;
        let first = page_size(first, limits)?;
        let known: Vec<&str> = registry.sources().map(|s| s.name().as_str()).collect();
        let filter = filter.unwrap_or_default().into_ledger_filter(&known).map_err(bad_input)?;
        let cursor = after
            .map(|text| Cursor::decode(&text, &filter.digest()))
            .transpose()
            .map_err(|e| GatewayError::from(e).extend())?;
        let page = registry.ledger_page(caller, &filter, cursor.as_ref(), first).await;
        for error in page.errors {
            ctx.add_error(ctx.set_error_path(GatewayError::from(error).into_server_error(Some(ctx.item.pos))));
        }
        let fields = LedgerEntryConnectionFields { filter: Arc::new(filter) };
        let mut connection = Connection::with_additional_fields(cursor.is_some(), page.merged.has_next_page, fields);
        connection
            .edges
            .extend(page.merged.edges.into_iter().map(|(entry, cursor)| Edge::new(cursor, LedgerEntry(entry))));
        Ok(connection)
    }

    /// One ledger entry by id (`<source>:<native id>`); null when no source
    /// has it.
    async fn ledger_entry(&self, ctx: &Context<'_>, id: ID) -> Result<Option<LedgerEntry>> {
        find_entry(ctx, &id).await
    }

    #[graphql(entity)]
    async fn find_ledger_entry_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<LedgerEntry>> {
        find_entry(ctx, &id).await
    }
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

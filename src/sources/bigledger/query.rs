//! Unified filter -> BigLedger list queries. BigLedger filters documents
//! (adjustments, transfers), not the entries synthesized from their lines,
//! and only by whole days (`dateFrom`/`dateTo`, inclusive), one `itemId` and
//! one `locationId`: everything here narrows to a superset of documents and
//! the residual step re-checks each entry (see the capabilities in `mod.rs`).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::records::{midnight, EntryId};
use crate::ledger::{SourceFilter, TimeRange, CALENDAR_YEARS};
use crate::model::EventType;
use crate::sources::window::{DateAxis, Window};

/// Query parameters, in order, before URL encoding.
pub type Params = Vec<(String, String)>;

/// Transfer entries are dated by their shipment and delivery, BigLedger
/// filters transfers by their `date`. Assumed: a transfer ships and arrives
/// within this long before its date's day starts or after it ends. An entry
/// outside it is logged; it can be missed, never repeated.
pub const TRANSFER_SKEW: Duration = Duration::days(7);

/// How each list's filtered date relates to its entries' dates. Both filter
/// by day; an adjustment line is dated by its adjustment's day itself.
pub fn axis(transfers: bool) -> DateAxis {
    let day = Duration::days(1);
    if transfers {
        DateAxis { granularity: day, lead: TRANSFER_SKEW, lag: day + TRANSFER_SKEW }
    } else {
        DateAxis { granularity: day, lead: Duration::zero(), lag: Duration::zero() }
    }
}

/// What one walk of the ledger reads, natively narrowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerQuery {
    /// Read `GET /inventory/adjustments` (ADJUSTMENT entries).
    pub adjustments: bool,
    /// Read `GET /inventory/transfers` (TRANSFER entries).
    pub transfers: bool,
    /// `itemId`: documents with a line for this item (one value only).
    pub item_id: Option<String>,
    /// `locationId`, adjustments only: a transfer has two locations, and
    /// which one BigLedger would match is undocumented.
    pub location_id: Option<String>,
    /// The caller's item filter, to intersect with a resolved sku.
    pub item_refs: Option<BTreeSet<String>>,
    /// A single sku, resolved to an item id through `GET /items?search=`
    /// before the walk (several skus cannot be pushed down: one `itemId`).
    pub sku: Option<String>,
    /// The caller's entry-date range, narrowed to the days ids name.
    pub entry_date: TimeRange,
}

/// The query for `filter`; `None` when no BigLedger entry can match (ids
/// that are not BigLedger entry ids, say), so no call is needed.
pub fn ledger_query(filter: &SourceFilter) -> Option<LedgerQuery> {
    let wants = |event: EventType| filter.event_types.as_ref().is_none_or(|set| set.contains(&event));
    let single =
        |set: &Option<BTreeSet<String>>| set.as_ref().filter(|s| s.len() == 1).and_then(|s| s.first().cloned());
    let mut query = LedgerQuery {
        adjustments: wants(EventType::Adjustment),
        transfers: wants(EventType::Transfer),
        item_id: single(&filter.item_refs),
        location_id: single(&filter.location_ids),
        item_refs: filter.item_refs.clone(),
        sku: single(&filter.skus),
        entry_date: filter.entry_date.clone(),
    };
    if let Some(ids) = &filter.ids {
        let ids: Vec<EntryId> = ids.iter().filter_map(|id| EntryId::parse(id)).collect();
        query.adjustments &= ids.iter().any(|id| matches!(id, EntryId::Adjustment { .. }));
        query.transfers &= ids.iter().any(|id| matches!(id, EntryId::Transfer { .. }));
        query.entry_date = narrowed_to(&query.entry_date, &ids);
    }
    (query.adjustments || query.transfers).then_some(query)
}

/// `range` narrowed to the entry dates the documents of `ids` can have. A
/// side stays as it was when some id's skew reaches past chrono's range.
fn narrowed_to(range: &TimeRange, ids: &[EntryId]) -> TimeRange {
    let spans = ids.iter().map(|id| (midnight(id.date()), axis(matches!(id, EntryId::Transfer { .. }))));
    let low: Option<Vec<_>> = spans.clone().map(|(day, axis)| day.checked_sub_signed(axis.lead)).collect();
    let high: Option<Vec<_>> = spans.map(|(day, axis)| day.checked_add_signed(axis.lag)).collect();
    let mut narrowed = range.clone();
    narrowed.gte = narrowed.gte.into_iter().chain(low.into_iter().flatten().min()).max();
    narrowed.lte = narrowed.lte.into_iter().chain(high.into_iter().flatten().max()).min();
    narrowed
}

/// Whole days, both ends inclusive; `None` leaves that side open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayRange {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl DayRange {
    pub fn single(day: NaiveDate) -> Self {
        Self { from: Some(day), to: Some(day) }
    }
}

/// The days whose midnight lies in `window`, the documents a window holds
/// (a document's filtered date is its day's midnight); `None` when there is
/// no such day, so the window needs no call.
pub fn day_range(window: Window) -> Option<DayRange> {
    // A day past year 9999 cannot be written (and holds no document).
    let first_midnight_from = |at: DateTime<Utc>| {
        let day = at.date_naive();
        let day = if midnight(day) == at { Some(day) } else { day.succ_opt() };
        day.filter(|d| CALENDAR_YEARS.contains(&d.year()))
    };
    let from = match window.from {
        Some(at) => Some(first_midnight_from(at)?),
        None => None,
    };
    let to = match window.to {
        Some(at) => Some(first_midnight_from(at)?.pred_opt()?),
        None => None,
    };
    match (from, to) {
        (Some(from), Some(to)) if from > to => None,
        _ => Some(DayRange { from, to }),
    }
}

fn date(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn push_page(params: &mut Params, limit: usize, cursor: Option<&str>) {
    params.push(("limit".into(), limit.to_string()));
    if let Some(cursor) = cursor {
        params.push(("cursor".into(), cursor.to_owned()));
    }
}

fn push_days(params: &mut Params, days: DayRange) {
    params.extend(days.from.map(|d| ("dateFrom".to_owned(), date(d))));
    params.extend(days.to.map(|d| ("dateTo".to_owned(), date(d))));
}

/// One page of posted adjustments on `days`.
pub fn adjustment_params(query: &LedgerQuery, days: DayRange, limit: usize, cursor: Option<&str>) -> Params {
    let mut params = vec![("status".to_owned(), "posted".to_owned())];
    push_days(&mut params, days);
    params.extend(query.item_id.clone().map(|id| ("itemId".to_owned(), id)));
    params.extend(query.location_id.clone().map(|id| ("locationId".to_owned(), id)));
    push_page(&mut params, limit, cursor);
    params
}

/// One page of completed transfers on `days`. Transfers take the
/// adjustments' parameters (assumed; BigLedger documents none for them).
pub fn transfer_params(query: &LedgerQuery, days: DayRange, limit: usize, cursor: Option<&str>) -> Params {
    let mut params = vec![("status".to_owned(), "completed".to_owned())];
    push_days(&mut params, days);
    params.extend(query.item_id.clone().map(|id| ("itemId".to_owned(), id)));
    push_page(&mut params, limit, cursor);
    params
}

/// One page of the fuzzy item search for `sku`.
pub fn item_search_params(sku: &str, limit: usize, cursor: Option<&str>) -> Params {
    let mut params = vec![("search".to_owned(), sku.to_owned())];
    push_page(&mut params, limit, cursor);
    params
}

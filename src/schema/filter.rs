//! GraphQL filter inputs and their translation into the planner's filter.

use std::collections::BTreeSet;

use async_graphql::{InputObject, ID};
use chrono::{DateTime, Datelike, Utc};

use crate::ledger::{LedgerFilter, TimeRange, CALENDAR_YEARS};
use crate::model::EventType;

/// Most values one list filter may hold.
pub const MAX_FILTER_VALUES: usize = 500;

/// A range of instants; every bound optional, all given bounds must hold.
#[derive(Clone, Debug, Default, InputObject)]
pub struct DateTimeFilter {
    /// Strictly after.
    pub gt: Option<DateTime<Utc>>,
    /// At or after.
    pub gte: Option<DateTime<Utc>>,
    /// Strictly before.
    pub lt: Option<DateTime<Utc>>,
    /// At or before.
    pub lte: Option<DateTime<Utc>>,
}

/// Which ledger entries to return. Every given field must match; a list
/// matches when the entry has any of its values.
#[derive(Clone, Debug, Default, InputObject)]
pub struct LedgerEntryFilter {
    /// Only these configured sources (e.g. `trackstar`).
    pub sources: Option<Vec<String>>,
    /// When the movement happened.
    pub entry_date: Option<DateTimeFilter>,
    /// When the source last changed the entry.
    pub updated_at: Option<DateTimeFilter>,
    /// Unified event types.
    pub event_types: Option<Vec<EventType>>,
    /// Item SKUs, exactly as the source spells them.
    pub skus: Option<Vec<String>>,
    /// Item ids (`<source>:<native id>`).
    pub item_ids: Option<Vec<ID>>,
    /// Warehouse or location ids (`<source>:<native id>`); matches either.
    pub location_ids: Option<Vec<ID>>,
    /// Entry ids (`<source>:<native id>`).
    pub ids: Option<Vec<ID>>,
}

impl From<DateTimeFilter> for TimeRange {
    fn from(f: DateTimeFilter) -> Self {
        TimeRange { gt: f.gt, gte: f.gte, lt: f.lt, lte: f.lte }
    }
}

/// RFC 3339 dates have four-digit years, and so does every upstream's date
/// format; chrono also parses `+262142-12-31T…`, which would reach an
/// upstream as a date it rejects (or overflow date arithmetic).
fn check_years(name: &str, range: &DateTimeFilter) -> Result<(), String> {
    let bounds = [("gt", range.gt), ("gte", range.gte), ("lt", range.lt), ("lte", range.lte)];
    match bounds.into_iter().find(|(_, at)| at.is_some_and(|at| !CALENDAR_YEARS.contains(&at.year()))) {
        Some((op, _)) => Err(format!("filter.{name}.{op}: years must be between 0000 and 9999")),
        None => Ok(()),
    }
}

impl LedgerEntryFilter {
    /// Checks sizes and source names and normalizes the lists.
    pub fn into_ledger_filter(self, known_sources: &[&str]) -> Result<LedgerFilter, String> {
        let lists: [(&str, Option<usize>); 6] = [
            ("sources", self.sources.as_ref().map(Vec::len)),
            ("eventTypes", self.event_types.as_ref().map(Vec::len)),
            ("skus", self.skus.as_ref().map(Vec::len)),
            ("itemIds", self.item_ids.as_ref().map(Vec::len)),
            ("locationIds", self.location_ids.as_ref().map(Vec::len)),
            ("ids", self.ids.as_ref().map(Vec::len)),
        ];
        if let Some((name, _)) = lists.iter().find(|(_, len)| len.is_some_and(|l| l > MAX_FILTER_VALUES)) {
            return Err(format!("filter.{name} takes at most {MAX_FILTER_VALUES} values"));
        }
        for (name, range) in [("entryDate", &self.entry_date), ("updatedAt", &self.updated_at)] {
            if let Some(range) = range {
                check_years(name, range)?;
            }
        }
        if let Some(unknown) = self.sources.iter().flatten().find(|s| !known_sources.contains(&s.as_str())) {
            return Err(format!(
                "filter.sources: unknown source {unknown:?}; configured sources: {}",
                known_sources.join(", ")
            ));
        }
        let set = |values: Option<Vec<String>>| values.map(|v| v.into_iter().collect::<BTreeSet<_>>());
        let ids = |values: Option<Vec<ID>>| values.map(|v| v.into_iter().map(|id| id.0).collect::<BTreeSet<_>>());
        Ok(LedgerFilter {
            sources: set(self.sources),
            entry_date: self.entry_date.map(Into::into).unwrap_or_default(),
            updated_at: self.updated_at.map(Into::into).unwrap_or_default(),
            event_types: self.event_types.map(|v| v.into_iter().collect()),
            skus: set(self.skus),
            item_ids: ids(self.item_ids),
            location_ids: ids(self.location_ids),
            ids: ids(self.ids),
        })
    }
}

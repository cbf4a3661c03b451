//! The unified filter, as the planner and the residual step see it. Lists are
//! normalized (sorted, deduplicated) so equal filters hash equal, which is
//! how a cursor knows it belongs to the query it is used with.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use chrono::{DateTime, Datelike, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{split_global_id, EventType, LedgerEntry};

/// The years every upstream's date format can write (RFC 3339 has four
/// digits); GraphQL's `DateTime` and forged cursors reach further.
pub const CALENDAR_YEARS: RangeInclusive<i32> = 0..=9999;

/// `at` if an upstream can be asked about it. A bound outside the calendar
/// bounds nothing an upstream holds: the query leaves it out and the
/// residual step applies it.
pub fn nameable(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    CALENDAR_YEARS.contains(&at.year()).then_some(at)
}

/// An interval on a timestamp; each bound optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    pub gt: Option<DateTime<Utc>>,
    pub gte: Option<DateTime<Utc>>,
    pub lt: Option<DateTime<Utc>>,
    pub lte: Option<DateTime<Utc>>,
}

impl TimeRange {
    pub fn is_unbounded(&self) -> bool {
        self.gt.is_none() && self.gte.is_none() && self.lt.is_none() && self.lte.is_none()
    }

    /// A missing timestamp is outside every bounded range.
    pub fn contains(&self, at: Option<DateTime<Utc>>) -> bool {
        let Some(at) = at else { return self.is_unbounded() };
        self.gt.is_none_or(|b| at > b)
            && self.gte.is_none_or(|b| at >= b)
            && self.lt.is_none_or(|b| at < b)
            && self.lte.is_none_or(|b| at <= b)
    }

    /// The range narrowed to at most `bound` (inclusive).
    pub fn capped_at(&self, bound: DateTime<Utc>) -> TimeRange {
        let mut capped = self.clone();
        capped.lte = Some(capped.lte.map_or(bound, |lte| lte.min(bound)));
        capped
    }

    /// The smallest half-open `[from, to)` with both ends on whole multiples
    /// of `step` that contains the range (`None`: open on that side): what
    /// to ask an upstream that compares coarser timestamps. The residual
    /// step then re-applies the exact bounds.
    pub fn covering(&self, step: TimeDelta) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let floor = |d: DateTime<Utc>| d.duration_trunc(step).unwrap_or(d);
        let from = self.gt.into_iter().chain(self.gte).max().map(floor).and_then(nameable);
        // A bound past the last representable step bounds nothing (and a
        // client can send one: GraphQL dates and cursors reach that far).
        let next = |d: DateTime<Utc>| floor(d).checked_add_signed(step);
        let to = [self.lt.and_then(|d| if floor(d) == d { Some(d) } else { next(d) }), self.lte.and_then(next)]
            .into_iter()
            .flatten()
            .min()
            .and_then(nameable);
        (from, to)
    }

    /// No timestamp can be inside.
    pub fn is_empty(&self) -> bool {
        let low = self.gt.into_iter().chain(self.gte).max();
        let high = self.lt.into_iter().chain(self.lte).min();
        match (low, high) {
            (Some(low), Some(high)) => low > high || (low == high && (self.gt == Some(low) || self.lt == Some(high))),
            _ => false,
        }
    }
}

/// What a caller asked for, with global ids (`<source>:<native>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LedgerFilter {
    pub sources: Option<BTreeSet<String>>,
    pub entry_date: TimeRange,
    pub updated_at: TimeRange,
    pub event_types: Option<BTreeSet<EventType>>,
    pub skus: Option<BTreeSet<String>>,
    pub item_ids: Option<BTreeSet<String>>,
    pub location_ids: Option<BTreeSet<String>>,
    pub ids: Option<BTreeSet<String>>,
}

impl LedgerFilter {
    /// A stable digest of the filter, carried in cursors.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(canonical)[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One source's share of a filter: ids reduced to that source's native ids.
/// This is what a connector translates and what the residual step checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceFilter {
    pub entry_date: TimeRange,
    pub updated_at: TimeRange,
    pub event_types: Option<BTreeSet<EventType>>,
    pub skus: Option<BTreeSet<String>>,
    pub item_refs: Option<BTreeSet<String>>,
    pub location_ids: Option<BTreeSet<String>>,
    pub ids: Option<BTreeSet<String>>,
}

/// The filter fields, named, so capabilities and residuals can talk about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    EntryDate,
    UpdatedAt,
    EventTypes,
    Skus,
    ItemIds,
    LocationIds,
    Ids,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::EntryDate,
        Field::UpdatedAt,
        Field::EventTypes,
        Field::Skus,
        Field::ItemIds,
        Field::LocationIds,
        Field::Ids,
    ];
}

impl SourceFilter {
    pub fn is_set(&self, field: Field) -> bool {
        match field {
            Field::EntryDate => !self.entry_date.is_unbounded(),
            Field::UpdatedAt => !self.updated_at.is_unbounded(),
            Field::EventTypes => self.event_types.is_some(),
            Field::Skus => self.skus.is_some(),
            Field::ItemIds => self.item_refs.is_some(),
            Field::LocationIds => self.location_ids.is_some(),
            Field::Ids => self.ids.is_some(),
        }
    }

    /// The same filter with only `fields` kept.
    pub fn only(&self, fields: &[Field]) -> SourceFilter {
        let keep = |f: Field| fields.contains(&f);
        SourceFilter {
            entry_date: if keep(Field::EntryDate) { self.entry_date.clone() } else { TimeRange::default() },
            updated_at: if keep(Field::UpdatedAt) { self.updated_at.clone() } else { TimeRange::default() },
            event_types: self.event_types.clone().filter(|_| keep(Field::EventTypes)),
            skus: self.skus.clone().filter(|_| keep(Field::Skus)),
            item_refs: self.item_refs.clone().filter(|_| keep(Field::ItemIds)),
            location_ids: self.location_ids.clone().filter(|_| keep(Field::LocationIds)),
            ids: self.ids.clone().filter(|_| keep(Field::Ids)),
        }
    }

    /// Whether `entry` passes every field that is set.
    pub fn matches(&self, entry: &LedgerEntry) -> bool {
        let within = |set: &Option<BTreeSet<String>>, value: Option<&String>| {
            set.as_ref().is_none_or(|set| value.is_some_and(|v| set.contains(v)))
        };
        self.entry_date.contains(entry.entry_date)
            && self.updated_at.contains(entry.updated_at)
            && self.event_types.as_ref().is_none_or(|set| set.contains(&entry.event_type))
            && within(&self.skus, entry.sku.as_ref())
            && within(&self.item_refs, entry.item_ref.as_ref())
            && self.location_ids.as_ref().is_none_or(|set| {
                [&entry.location_id, &entry.warehouse_id]
                    .iter()
                    .any(|id| id.as_ref().is_some_and(|id| set.contains(id)))
            })
            && within(&self.ids, Some(&entry.native_id))
    }
}

/// The native ids in `ids` that belong to `source`; `None` when unfiltered.
pub fn native_ids_for(ids: &Option<BTreeSet<String>>, source: &str) -> Option<BTreeSet<String>> {
    ids.as_ref().map(|ids| {
        ids.iter()
            .filter_map(|id| split_global_id(id).filter(|(s, _)| *s == source).map(|(_, native)| native.to_owned()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, h, 0, 0).unwrap()
    }

    #[test]
    fn ranges_honour_each_bound() {
        let range = TimeRange { gt: Some(at(1)), lte: Some(at(3)), ..Default::default() };
        assert!(!range.contains(Some(at(1))));
        assert!(range.contains(Some(at(2))));
        assert!(range.contains(Some(at(3))));
        assert!(!range.contains(Some(at(4))));
        assert!(!range.contains(None));
        assert!(TimeRange::default().contains(None));
    }

    #[test]
    fn empty_ranges_are_detected() {
        assert!(TimeRange { gte: Some(at(3)), lte: Some(at(2)), ..Default::default() }.is_empty());
        assert!(TimeRange { gt: Some(at(2)), lte: Some(at(2)), ..Default::default() }.is_empty());
        assert!(!TimeRange { gte: Some(at(2)), lte: Some(at(2)), ..Default::default() }.is_empty());
        assert!(!TimeRange { gte: Some(at(2)), ..Default::default() }.is_empty());
    }

    #[test]
    fn a_covering_range_widens_to_whole_steps_and_never_narrows() {
        let second = TimeDelta::seconds(1);
        let half = TimeDelta::milliseconds(500);
        let range = TimeRange { gt: Some(at(1) + half), lte: Some(at(3) + half), ..Default::default() };
        assert_eq!(range.covering(second), (Some(at(1)), Some(at(3) + second)));
        let exact = TimeRange { gte: Some(at(1)), lt: Some(at(3)), ..Default::default() };
        assert_eq!(exact.covering(second), (Some(at(1)), Some(at(3))));
        assert_eq!(TimeRange::default().covering(second), (None, None));
    }

    #[test]
    fn capping_keeps_the_tighter_bound() {
        let range = TimeRange { lte: Some(at(2)), ..Default::default() };
        assert_eq!(range.capped_at(at(5)).lte, Some(at(2)));
        assert_eq!(range.capped_at(at(1)).lte, Some(at(1)));
    }

    #[test]
    fn native_ids_keep_only_the_sources_own() {
        let ids = Some(BTreeSet::from(["a:1".to_owned(), "b:2".to_owned(), "a:x:y".to_owned(), "junk".to_owned()]));
        assert_eq!(native_ids_for(&ids, "a"), Some(BTreeSet::from(["1".to_owned(), "x:y".to_owned()])));
        assert_eq!(native_ids_for(&ids, "c"), Some(BTreeSet::new()));
        assert_eq!(native_ids_for(&None, "a"), None);
    }

    #[test]
    fn equal_filters_have_equal_digests() {
        let a = LedgerFilter { skus: Some(BTreeSet::from(["x".into(), "y".into()])), ..Default::default() };
        let b = LedgerFilter { skus: Some(BTreeSet::from(["y".into(), "x".into()])), ..Default::default() };
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), LedgerFilter::default().digest());
    }
}

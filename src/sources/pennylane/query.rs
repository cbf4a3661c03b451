//! Unified filter -> Pennylane query parameters. A filter is a JSON array of
//! `{field, operator, value}` conditions, all of which must hold, sent
//! URL-encoded as `filter`. It is built with serde_json from typed values, so
//! a caller's text can only ever be a JSON string value, never syntax.
//!
//! What Pennylane can filter since the 2026 changes: `id` (every operator),
//! `date` (no `in`/`not_in`), `journal_id`; `created_at`/`updated_at` were
//! removed and now fail, so `updatedAt` is never sent (the gateway filters
//! it). Sorting is by `id` or `date` only, one field.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::ledger::{TimeRange, CALENDAR_YEARS};

/// Query parameters, in order, before URL encoding.
pub type Params = Vec<(String, String)>;

/// Newest first. Pennylane sorts by one field only, so entries of one day
/// come in no promised order: the scan never relies on it.
pub const NEWEST_FIRST: &str = "-date";

/// The latest day Pennylane can hold, as an always-true upper bound.
pub const LAST_DAY: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date");

/// One `{field, operator, value}` filter condition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Condition {
    pub field: &'static str,
    pub operator: &'static str,
    pub value: Value,
}

impl Condition {
    fn new(field: &'static str, operator: &'static str, value: impl Into<Value>) -> Self {
        Self { field, operator, value: value.into() }
    }
}

/// The `filter` parameter's value; `None` when there is nothing to filter.
pub fn encode_filter(conditions: &[Condition]) -> Option<String> {
    (!conditions.is_empty()).then(|| serde_json::to_string(conditions).expect("conditions serialize"))
}

/// Parameters for one page of a list endpoint.
pub fn list_params(conditions: &[Condition], sort: Option<&str>, limit: usize, cursor: Option<&str>) -> Params {
    let mut params = Params::new();
    if let Some(filter) = encode_filter(conditions) {
        params.push(("filter".into(), filter));
    }
    if let Some(sort) = sort {
        params.push(("sort".into(), sort.into()));
    }
    params.push(("limit".into(), limit.to_string()));
    if let Some(cursor) = cursor {
        params.push(("cursor".into(), cursor.into()));
    }
    params
}

/// A Pennylane id as the number it must be. Ids are int64 written without
/// leading zeros, so any other text names no entry and is never sent.
pub fn native_id(text: &str) -> Option<i64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// `id in [...]`, values as JSON strings.
pub fn ids_condition(ids: &[i64]) -> Condition {
    Condition::new("id", "in", ids.iter().map(|id| Value::String(id.to_string())).collect::<Vec<_>>())
}

/// An inclusive range of days; either side open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayRange {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

impl DayRange {
    /// The days whose midnight lies in `range`: entries are dated at
    /// midnight, so this selects exactly the entries `range` holds.
    pub fn of(range: &TimeRange) -> Self {
        let day = |at: DateTime<Utc>| at.date_naive();
        let first_midnight_at_or_after = |at: DateTime<Utc>| {
            if midnight(day(at)) == at {
                Some(day(at))
            } else {
                day(at).checked_add_days(Days::new(1))
            }
        };
        let last_midnight_before = |at: DateTime<Utc>| {
            if midnight(day(at)) == at {
                day(at).checked_sub_days(Days::new(1))
            } else {
                Some(day(at))
            }
        };
        let lows = [
            range.gte.and_then(first_midnight_at_or_after),
            range.gt.and_then(|at| day(at).checked_add_days(Days::new(1))),
        ];
        let highs = [range.lte.map(day), range.lt.and_then(last_midnight_before)];
        let nameable = |day: NaiveDate| CALENDAR_YEARS.contains(&day.year()).then_some(day);
        Self {
            from: lows.into_iter().flatten().max().and_then(nameable),
            to: highs.into_iter().flatten().min().and_then(nameable),
        }
    }

    /// The range narrowed to end at `day` at the latest.
    pub fn up_to(self, day: NaiveDate) -> Self {
        Self { to: Some(self.to.map_or(day, |to| to.min(day))), ..self }
    }

    /// No day can be inside.
    pub fn is_empty(&self) -> bool {
        matches!((self.from, self.to), (Some(from), Some(to)) if from > to)
    }

    /// `date gteq/lteq` conditions (`eq` for a single day).
    pub fn conditions(&self) -> Vec<Condition> {
        let text = |day: NaiveDate| day.format("%Y-%m-%d").to_string();
        match (self.from, self.to) {
            (Some(from), Some(to)) if from == to => vec![Condition::new("date", "eq", text(from))],
            (from, to) => from
                .map(|d| Condition::new("date", "gteq", text(d)))
                .into_iter()
                .chain(to.map(|d| Condition::new("date", "lteq", text(d))))
                .collect(),
        }
    }
}

/// Conditions that select the lines of entries dated within `days` in
/// `journals` (`None`: some entry's journal is unknown, so all journals).
/// The line list cannot filter by entry, so this is the tightest documented
/// bound; lines of other entries it brings are ignored.
pub fn lines_conditions(days: DayRange, journals: Option<&BTreeSet<i64>>) -> Vec<Condition> {
    let mut conditions = days.conditions();
    if let Some(journals) = journals {
        let values: Vec<Value> = journals.iter().map(|id| Value::String(id.to_string())).collect();
        conditions.push(Condition::new("journal_id", "in", values));
    }
    conditions
}

//! Unified filter -> OData `$filter` for Business Central. BC's grammar has
//! two traps: `or` only works within one field (across fields it is a 400),
//! so every clause here is about one field and clauses are joined by `and`;
//! and literals are typed: strings single-quoted with quotes doubled, dates,
//! datetimes and GUIDs bare. User text only ever appears inside a string
//! literal, so it cannot change the expression. Long value lists are split
//! so every URL stays under [`MAX_URL_LEN`].

use std::fmt::{self, Write as _};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::records::ENTRY_TYPES;
use crate::ledger::{SourceFilter, TimeRange};
use crate::model::{EventType, SortKey};

/// Longest URL sent: the limit web front ends commonly enforce on a
/// request line (IIS's default query string limit is 2048).
pub const MAX_URL_LEN: usize = 2048;

/// Newest first; `entryNumber` (the table's key) makes the order total, so
/// BC's server-side paging neither repeats nor skips.
pub const ORDER_BY: &str = "postingDate desc,entryNumber desc";

/// Everything but RFC 3986's unreserved characters. A space becomes `%20`,
/// never `+`, which OData reads as a literal plus.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A query string from `(key, value)` pairs, values percent-encoded.
pub fn query_string(params: &[(&str, String)]) -> String {
    let pairs: Vec<String> =
        params.iter().map(|(key, value)| format!("{key}={}", utf8_percent_encode(value, QUERY_VALUE))).collect();
    pairs.join("&")
}

/// A BC GUID in its canonical form (lowercase, hyphenated). Anything else
/// cannot be a BC id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Guid(String);

impl Guid {
    pub fn parse(text: &str) -> Option<Guid> {
        let groups: Vec<&str> = text.split('-').collect();
        let shape = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
        let hex = groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
        (shape && hex).then(|| Guid(text.to_ascii_lowercase()))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An OData string literal: single quotes, a quote inside doubled.
pub fn string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// An enum member's name as BC's OData names it: every character other
/// than an ASCII letter or digit becomes `_xHHHH_` (XmlConvert style), as
/// does an underscore that would otherwise read as the start of an escape.
pub fn encode_enum(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        let plain = c.is_ascii_alphanumeric() || (c == '_' && chars.peek() != Some(&'x'));
        match u32::from(c) {
            _ if plain => encoded.push(c),
            code @ 0..=0xFFFF => {
                let _ = write!(encoded, "_x{code:04X}_");
            }
            code => {
                let _ = write!(encoded, "_x{code:08X}_");
            }
        }
    }
    encoded
}

/// The lowest date BC stores; it is also how BC writes a blank date, and
/// those entries come last in the merged order.
fn blank_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// A day as an OData date literal, when BC can represent it.
fn date_literal(day: NaiveDate) -> Option<String> {
    (blank_date()..=NaiveDate::from_ymd_opt(9999, 12, 31)?).contains(&day).then(|| day.format("%Y-%m-%d").to_string())
}

fn is_midnight(at: DateTime<Utc>) -> bool {
    at.time() == NaiveTime::MIN
}

/// `postingDate` clauses that select exactly the days whose midnight UTC
/// (an entry's `entryDate`) lies in `range`. Bounds BC cannot represent
/// are left out: the gateway re-checks the range anyway.
pub fn posting_date_clauses(range: &TimeRange) -> Vec<String> {
    let bounds = [
        range.gt.map(|t| ("gt", t)),
        range.gte.map(|t| (if is_midnight(t) { "ge" } else { "gt" }, t)),
        range.lt.map(|t| (if is_midnight(t) { "lt" } else { "le" }, t)),
        range.lte.map(|t| ("le", t)),
    ];
    bounds
        .into_iter()
        .flatten()
        .filter_map(|(op, t)| Some(format!("postingDate {op} {}", date_literal(t.date_naive())?)))
        .collect()
}

/// A datetime as an OData `DateTimeOffset` literal, whole seconds.
fn datetime_literal(at: DateTime<Utc>) -> Option<String> {
    date_literal(at.date_naive())?;
    Some(at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// `lastModifiedDateTime` clauses on whole seconds that contain `range`:
/// how BC rounds sub-second literals is undocumented, so the range is
/// widened and re-checked by the gateway.
pub fn modified_clauses(range: &TimeRange) -> Vec<String> {
    let (from, to) = range.covering(TimeDelta::seconds(1));
    let from = from.and_then(datetime_literal).map(|at| format!("lastModifiedDateTime ge {at}"));
    let to = to.and_then(datetime_literal).map(|at| format!("lastModifiedDateTime lt {at}"));
    from.into_iter().chain(to).collect()
}

/// Entries at or before `position` in the merged order: those of its day
/// and older (entries of that day after it are kept by the collector).
/// Undated entries sort last; BC stores them with the blank date.
pub fn position_clause(position: &SortKey) -> String {
    let day = position.entry_date.map_or_else(blank_date, |at| at.date_naive());
    format!("postingDate le {}", date_literal(day).unwrap_or_else(|| "9999-12-31".to_owned()))
}

/// The `entryType` clause for `events`. `None` when OTHER is wanted: it
/// also stands for members added by extensions, which no list can name.
pub fn entry_type_clause(events: &std::collections::BTreeSet<EventType>) -> Option<String> {
    if events.contains(&EventType::Other) {
        return None;
    }
    let members: Vec<String> = ENTRY_TYPES
        .iter()
        .filter(|(_, produces)| produces.iter().any(|e| events.contains(e)))
        .map(|(name, _)| string_literal(&encode_enum(name)))
        .collect();
    Some(format!("entryType in ({})", members.join(",")))
}

/// How a clause lists the values one field may take.
#[derive(Clone, Copy, Debug)]
pub enum AnyOf {
    /// `field in ('a','b')`, for strings.
    In,
    /// `(field eq a or field eq b)`, for GUIDs: the form BC documents
    /// for them; `or` within one field is allowed.
    OrEq,
}

/// One clause: `field` equals any of `literals` (already literals).
pub fn any_of(field: &str, literals: &[String], form: AnyOf) -> String {
    match (form, literals) {
        (AnyOf::OrEq, [one]) => format!("{field} eq {one}"),
        (AnyOf::OrEq, _) => {
            let terms: Vec<String> = literals.iter().map(|l| format!("{field} eq {l}")).collect();
            format!("({})", terms.join(" or "))
        }
        (AnyOf::In, _) => format!("{field} in ({})", literals.join(",")),
    }
}

/// The clauses joined into one `$filter` value.
pub fn conjunction(clauses: &[String]) -> String {
    clauses.join(" and ")
}

/// Splits `literals` into as few `any_of` clauses as keep `fits(filter)`
/// true, where the filter is `base` plus the clause. A value too long to
/// fit even alone cannot be a BC key (BC's codes are at most 20
/// characters), so it is left out.
pub fn chunked_any_of(
    base: &[String],
    field: &str,
    literals: &[String],
    form: AnyOf,
    fits: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let with = |chunk: &[String]| {
        let mut clauses = base.to_vec();
        clauses.push(any_of(field, chunk, form));
        conjunction(&clauses)
    };
    let mut filters = Vec::new();
    let mut chunk: Vec<String> = Vec::new();
    for literal in literals {
        if !fits(&with(std::slice::from_ref(literal))) {
            continue;
        }
        chunk.push(literal.clone());
        if !fits(&with(&chunk)) {
            chunk.pop();
            filters.push(with(&chunk));
            chunk = vec![literal.clone()];
        }
    }
    if !chunk.is_empty() {
        filters.push(with(&chunk));
    }
    filters
}

/// How many entry ids one ledger read carries within `fits`: every GUID is
/// as long as any other, so as many as the first read of a long list holds.
pub fn ids_per_read(fits: &dyn Fn(&str) -> bool) -> usize {
    const SAMPLE: usize = 500;
    let sample: Vec<String> = (0..SAMPLE).map(|i| format!("{i:08x}-0000-0000-0000-000000000000")).collect();
    let reads = chunked_any_of(&[], "id", &sample, AnyOf::OrEq, fits);
    reads.first().map_or(1, |read| read.matches(" eq ").count())
}

/// What to ask BC for one ledger read.
#[derive(Debug, Default, PartialEq)]
pub struct LedgerQuery {
    /// The `$filter` of each read (`""`: no filter). None: nothing can
    /// match. One: an ordered walk. Several (long id lists): chunks, each
    /// read to its end.
    pub filters: Vec<String>,
    /// Fields whose lists did not fit a URL: the connector applies these
    /// to what BC returns instead.
    pub local: SourceFilter,
}

/// The ledger read for `filter`, continuing after `position`. `fits` says
/// whether a `$filter` value keeps the request URL short enough.
pub fn ledger_query(filter: &SourceFilter, position: Option<&SortKey>, fits: &dyn Fn(&str) -> bool) -> LedgerQuery {
    let mut clauses = posting_date_clauses(&filter.entry_date);
    clauses.extend(position.map(position_clause));
    clauses.extend(modified_clauses(&filter.updated_at));
    clauses.extend(filter.event_types.as_ref().and_then(entry_type_clause));
    let ids: Option<Vec<String>> =
        filter.ids.as_ref().map(|ids| ids.iter().filter_map(|id| Guid::parse(id)).map(|g| g.to_string()).collect());
    if ids.as_ref().is_some_and(Vec::is_empty) {
        // Only non-GUID ids: no BC entry can have one.
        return LedgerQuery::default();
    }
    // The shortest id clause must still fit next to the item clauses.
    let id_probe: Vec<String> =
        ids.iter().flatten().take(1).map(|id| any_of("id", std::slice::from_ref(id), AnyOf::OrEq)).collect();
    let mut local = SourceFilter::default();
    for (values, local_field) in [(&filter.skus, &mut local.skus), (&filter.item_refs, &mut local.item_refs)] {
        let Some(values) = values else { continue };
        let literals: Vec<String> = values.iter().map(|v| string_literal(v)).collect();
        let clause = any_of("itemNumber", &literals, AnyOf::In);
        let candidate: Vec<String> = clauses.iter().chain([&clause]).chain(&id_probe).cloned().collect();
        if fits(&conjunction(&candidate)) {
            clauses.push(clause);
        } else {
            *local_field = Some(values.clone());
        }
    }
    let filters = match ids {
        Some(ids) => chunked_any_of(&clauses, "id", &ids, AnyOf::OrEq, fits),
        None => vec![conjunction(&clauses)],
    };
    LedgerQuery { filters, local }
}

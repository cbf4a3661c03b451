//! Unified filter -> Trackstar query parameters: deepObject `field[op]=value`,
//! CSV lists, dates exactly `YYYY-MM-DDTHH:MM:SSZ`, and the same filters on
//! every page. Trackstar has no sku, item or location filter: those stay in
//! the gateway's residual step (see the capabilities in `mod.rs`).

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::records::native_event_type;
use crate::ledger::{SourceFilter, TimeRange};
use crate::sources::window::Window;

/// Query parameters, in order, before URL encoding.
pub type Params = Vec<(String, String)>;

/// The only date format Trackstar accepts.
pub fn format_date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn param(field: &str, op: &str, value: String) -> (String, String) {
    (format!("{field}[{op}]"), value)
}

/// A range on whole seconds that contains `range`: lower bounds round down,
/// upper bounds become exclusive and round up. The residual step re-checks.
fn push_range(params: &mut Params, field: &str, range: &TimeRange) {
    let second = TimeDelta::seconds(1);
    let floor = |d: DateTime<Utc>| d.duration_trunc(second).unwrap_or(d);
    if let Some(low) = range.gt.into_iter().chain(range.gte).max() {
        params.push(param(field, "gte", format_date(floor(low))));
    }
    // A bound past the last representable second bounds nothing.
    let next = |d: DateTime<Utc>| floor(d).checked_add_signed(second);
    let upper = [range.lt.and_then(|d| if floor(d) == d { Some(d) } else { next(d) }), range.lte.and_then(next)];
    if let Some(high) = upper.into_iter().flatten().min() {
        params.push(param(field, "lt", format_date(high)));
    }
}

/// Parameters for one page of the ledger within `window`.
pub fn ledger_params(filter: &SourceFilter, window: Window, page_token: Option<&str>, limit: usize) -> Params {
    let mut params = Params::new();
    if let Some(ids) = &filter.ids {
        // `ids[in]` makes Trackstar ignore every other filter.
        params.push(param("ids", "in", ids.iter().cloned().collect::<Vec<_>>().join(",")));
    } else {
        push_range(&mut params, "entry_date", &TimeRange { gte: window.from, lt: window.to, ..Default::default() });
        push_range(&mut params, "updated_date", &filter.updated_at);
        if let Some(events) = &filter.event_types {
            let native: Vec<&str> = events.iter().filter_map(|e| native_event_type(*e)).collect();
            params.push(param("event_type", "in", native.join(",")));
        }
    }
    params.push(("limit".into(), limit.to_string()));
    if let Some(token) = page_token {
        params.push(("page_token".into(), token.to_owned()));
    }
    params
}

/// Parameters to fetch entries by id, one chunk at a time.
pub fn ids_params(ids: &[String]) -> Params {
    vec![param("ids", "in", ids.join(",")), ("limit".into(), ids.len().max(1).to_string())]
}

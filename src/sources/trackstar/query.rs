//! Unified filter -> Trackstar query parameters: deepObject `field[op]=value`,
//! CSV lists, dates exactly `YYYY-MM-DDTHH:MM:SSZ`, and the same filters on
//! every page. Trackstar has no sku, item or location filter: those stay in
//! the gateway's residual step (see the capabilities in `mod.rs`).

use chrono::{DateTime, TimeDelta, Utc};

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
/// upper bounds round up to the next whole second, which is sent as `lte`.
///
/// Trackstar's docs call `gte`+`lte` much faster than `gt`/`lt`, so only
/// those two are sent. They do not say entry dates are whole seconds (the
/// schema says `date-time`, which may carry a fraction, and Trackstar
/// relays many WMSs), only that filter values are: `lte` of the second
/// *before* an exclusive end would miss an entry at `…:59.5`, so `lte` takes
/// the exclusive end itself. That also returns entries dated exactly at it,
/// which the caller drops: the residual step for the caller's bounds, the
/// window read for a window's end (such entries belong to the window above).
fn push_range(params: &mut Params, field: &str, range: &TimeRange) {
    let (from, to) = range.covering(TimeDelta::seconds(1));
    params.extend(from.map(|low| param(field, "gte", format_date(low))));
    params.extend(to.map(|high| param(field, "lte", format_date(high))));
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

/// Parameters for the change probe: the records Trackstar created or
/// updated at or after `since` (whole seconds, rounded down).
pub fn changed_since_params(since: DateTime<Utc>, limit: usize) -> Params {
    let mut params = Params::new();
    push_range(&mut params, "trackstar_updated_date", &TimeRange { gte: Some(since), ..Default::default() });
    params.push(("limit".into(), limit.to_string()));
    params
}

/// Parameters to fetch entries by id, one chunk at a time.
pub fn ids_params(ids: &[String]) -> Params {
    vec![param("ids", "in", ids.join(",")), ("limit".into(), ids.len().max(1).to_string())]
}

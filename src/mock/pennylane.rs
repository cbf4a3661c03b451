//! Pennylane's dialect (API v2) under `/pennylane/api/external/v2/`:
//! - `Authorization: Bearer <token>`: the demo token or any `pl-…` token
//!   (each its own company); anything else is a 401.
//! - The 2026 behaviour by default (cursor pages `{items, has_more,
//!   next_cursor, total_*: null}`, drafts with a null date, ids without the
//!   3-digit suffix); the seed's page format (`page`/`per_page`, totals,
//!   suffixed ids, no drafts) only with `X-Use-2026-API-Changes: false`. A
//!   header and a `use_2026_api_changes` parameter that disagree are a 400.
//! - `filter` is JSON, parsed strictly: an unknown field or operator, or the
//!   removed `created_at`/`updated_at`, is a 422 with the documented body.
//!   `in`/`not_in` take a JSON array (or CSV text). A null date matches no
//!   comparison, as in SQL.
//! - `sort` on `id` or `date`, one field, optional `-`. Under `-date` undated
//!   entries come first, under `date` last (PostgreSQL's NULLS defaults);
//!   inside a day by numeric id, which is not the gateway's string order.
//! - A cursor the mock did not issue for the same query is a 422 naming
//!   the cursor (`details.cursor`); `reject_next_cursors` forces that.
//! - Lines in bulk (`/ledger_entry_lines`, filters `id journal_id
//!   ledger_account_id date`) and per entry; decimal-string debit/credit
//!   that balance per entry.
//! - `ratelimit-*` headers on every answer, for the budget it enforces;
//!   with `set_rate_limit` (Pennylane's own is 25 per 5 s), a 429 with a
//!   plain-text body and `retry-after` past the budget. Without one it
//!   reports a budget no test reaches: the gateway honours a reported
//!   `ratelimit-remaining: 0`, so reporting Pennylane's real 25 per 5 s
//!   would throttle every test that reads more than 25 pages.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration as Span, NaiveDate, NaiveTime, Utc};
use rand::rngs::SmallRng;
use rand::Rng;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;

use super::fixtures::{self, MockOptions};
use super::MockState;
use crate::config::SourceConfig;
use crate::model::SourceKind;

/// The demo company's token.
pub const TOKEN: &str = "demo-pennylane-token";
/// Callers' own tokens: each token with this prefix is a company of its own.
pub const CALLER_TOKEN_PREFIX: &str = "pl-";
/// What the mock reports while it enforces nothing.
const UNENFORCED_RATE_LIMIT: RateLimit = RateLimit { requests: 100_000, window: Duration::from_secs(5) };
const MAX_LIMIT: usize = 100;
const DEFAULT_LIMIT: usize = 20;
const API: &str = "https://app.pennylane.com/api/external/v2";

pub fn source_config(mock_url: Url) -> SourceConfig {
    SourceConfig {
        kind: SourceKind::Pennylane,
        base_url: mock_url.join("api/external/v2").expect("static path joins"),
        credentials: [("token".to_owned(), SecretString::from(TOKEN))].into(),
        forward: [("token".to_owned(), "x-pennylane-token".to_owned())].into(),
        http: super::http_config(),
        page_size: None,
        initial_window_secs: None,
        authority: None,
        scope: None,
    }
}

/// A journal (purchases, sales, bank, miscellaneous).
#[derive(Debug)]
pub struct Journal {
    pub id: i64,
    pub code: &'static str,
}

/// One ledger entry.
#[derive(Debug)]
pub struct Entry {
    pub id: i64,
    /// `None` for undated drafts.
    pub date: Option<NaiveDate>,
    pub journal_id: i64,
    pub label: String,
    pub piece_number: String,
    pub invoice_number: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Indexes of its lines in `TenantData::lines`.
    pub lines: Range<usize>,
}

/// One ledger entry line; amounts in cents so they stay exact.
#[derive(Debug)]
pub struct Line {
    pub id: i64,
    pub entry_id: i64,
    pub journal_id: i64,
    pub date: Option<NaiveDate>,
    pub account: (i64, &'static str),
    pub label: String,
    pub debit_cents: i64,
    pub credit_cents: i64,
}

/// One company's (token's) books.
#[derive(Debug)]
pub struct TenantData {
    pub journals: Vec<Journal>,
    /// Sorted by id.
    pub entries: Vec<Entry>,
    /// Sorted by id; an entry's lines are contiguous.
    pub lines: Vec<Line>,
}

const JOURNALS: [(i64, &str); 4] = [(7, "HA"), (12, "VT"), (31, "BQ"), (104, "OD")];
const ACCOUNTS: [(i64, &str); 7] =
    [(1, "401000"), (2, "411000"), (3, "512000"), (4, "606000"), (5, "706000"), (6, "445660"), (7, "445710")];
const PARTIES: [&str; 8] =
    ["Acme SAS", "Boulangerie Martin", "Orange", "OVH", "Leroy Merlin", "Total", "SNCF", "Metro"];

impl TenantData {
    fn generate(options: &MockOptions, tenant: &str) -> Self {
        let mut rng = fixtures::rng(options, "pennylane", tenant);
        let journals: Vec<Journal> = JOURNALS.iter().map(|(id, code)| Journal { id: *id, code }).collect();
        let mut dates: Vec<Option<NaiveDate>> = Vec::with_capacity(options.entries);
        let mut last_dated = None;
        for _ in 0..options.entries {
            let date = match rng.random_range(0..100) {
                0..5 => None,
                // Several entries a day are normal and must page cleanly.
                5..20 if last_dated.is_some() => last_dated,
                _ => Some(fixtures::instant_in_year(&mut rng, options.anchor).date_naive()),
            };
            last_dated = date.or(last_dated);
            dates.push(date);
        }
        // Ids whose text order differs from their numeric order share a
        // day: 9, 10, 11 sort "10" < "11" < "9" in the merged order.
        for first in [9usize, 99, 999, 9999] {
            if first + 2 <= dates.len() {
                let day = dates[first - 1]
                    .unwrap_or_else(|| fixtures::instant_in_year(&mut rng, options.anchor).date_naive());
                dates[first - 1..first + 2].fill(Some(day));
            }
        }
        let mut entries = Vec::with_capacity(dates.len());
        let mut lines = Vec::with_capacity(dates.len() * 3);
        for (n, date) in dates.into_iter().enumerate() {
            let id = n as i64 + 1;
            let journal = &journals[rng.random_range(0..journals.len())];
            let entry = random_entry(&mut rng, options, id, date, journal, &mut lines);
            entries.push(entry);
        }
        Self { journals, entries, lines }
    }

    pub fn entry(&self, id: i64) -> Option<&Entry> {
        self.entries.binary_search_by_key(&id, |e| e.id).ok().map(|i| &self.entries[i])
    }

    pub fn lines_of(&self, entry: &Entry) -> &[Line] {
        &self.lines[entry.lines.clone()]
    }

    /// The entry's debit and credit sums, exact.
    pub fn totals(&self, entry: &Entry) -> (Decimal, Decimal) {
        let lines = self.lines_of(entry);
        let sum = |cents: fn(&Line) -> i64| Decimal::new(lines.iter().map(cents).sum(), 2);
        (sum(|l| l.debit_cents), sum(|l| l.credit_cents))
    }
}

/// A line to be: (account, debit cents, credit cents).
type Posting = ((i64, &'static str), i64, i64);

fn random_entry(
    rng: &mut SmallRng,
    options: &MockOptions,
    id: i64,
    date: Option<NaiveDate>,
    journal: &Journal,
    lines: &mut Vec<Line>,
) -> Entry {
    let party = PARTIES[rng.random_range(0..PARTIES.len())];
    let amount = rng.random_range(1_000..=500_000i64);
    let net = amount * 5 / 6;
    let account = |number: &str| *ACCOUNTS.iter().find(|(_, n)| *n == number).unwrap_or(&ACCOUNTS[0]);
    // Every entry balances.
    let (label, postings): (String, Vec<Posting>) = match journal.code {
        "HA" => (
            format!("Facture {party}"),
            vec![(account("606000"), net, 0), (account("445660"), amount - net, 0), (account("401000"), 0, amount)],
        ),
        "VT" => (
            format!("Facture client {party}"),
            vec![(account("411000"), amount, 0), (account("706000"), 0, net), (account("445710"), 0, amount - net)],
        ),
        "BQ" => (format!("Virement {party}"), vec![(account("512000"), amount, 0), (account("411000"), 0, amount)]),
        _ => (format!("Régularisation {party}"), vec![(account("606000"), amount, 0), (account("401000"), 0, amount)]),
    };
    let start = lines.len();
    for (account, debit_cents, credit_cents) in postings {
        lines.push(Line {
            // Line ids live in their own range, unlike entry ids.
            id: 500_000 + lines.len() as i64,
            entry_id: id,
            journal_id: journal.id,
            date,
            account,
            label: label.clone(),
            debit_cents,
            credit_cents,
        });
    }
    let day = date.unwrap_or_else(|| fixtures::instant_in_year(rng, options.anchor).date_naive());
    let micros = Span::microseconds(rng.random_range(0..86_400_000_000));
    let created_at = day.and_time(NaiveTime::MIN).and_utc() + micros;
    let updated_at = created_at + Span::seconds(rng.random_range(0..30 * 86_400));
    let year = day.format("%Y");
    Entry {
        id,
        date,
        journal_id: journal.id,
        piece_number: format!("{}-{year}-{id:05}", journal.code),
        invoice_number: matches!(journal.code, "HA" | "VT").then(|| format!("F-{year}-{id:06}")),
        label,
        created_at,
        updated_at,
        lines: start..lines.len(),
    }
}

/// A request budget per token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
}

/// Fixed windows per token: (window start, requests in it).
#[derive(Debug, Default)]
struct Limiter {
    enforced: Option<RateLimit>,
    windows: HashMap<String, (Instant, u32)>,
}

/// Tenants are created on first use, one per token.
#[derive(Debug)]
pub struct PennylaneMock {
    options: MockOptions,
    tenants: Mutex<HashMap<String, Arc<TenantData>>>,
    limiter: Mutex<Limiter>,
    reject_cursors: AtomicU32,
}

impl PennylaneMock {
    pub fn new(options: MockOptions) -> Self {
        Self { options, tenants: Mutex::default(), limiter: Mutex::default(), reject_cursors: AtomicU32::new(0) }
    }

    pub fn tenant(&self, token: &str) -> Arc<TenantData> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.entry(token.to_owned()).or_insert_with(|| Arc::new(TenantData::generate(&self.options, token))).clone()
    }

    /// Enforces `limit` per token from now on (`None`: only report it).
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut limiter = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        *limiter = Limiter { enforced: limit, windows: HashMap::new() };
    }

    /// The next `n` requests that carry a cursor get the invalid-cursor 422.
    pub fn reject_next_cursors(&self, n: u32) {
        self.reject_cursors.store(n, Ordering::SeqCst);
    }

    /// Counts a request; its `ratelimit-*` headers, or the 429.
    fn take(&self, token: &str) -> Result<HeaderMap, Response> {
        let mut limiter = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let enforced = limiter.enforced;
        let limit = enforced.unwrap_or(UNENFORCED_RATE_LIMIT);
        let now = Instant::now();
        let window = limiter.windows.entry(token.to_owned()).or_insert((now, 0));
        if now.duration_since(window.0) >= limit.window {
            *window = (now, 0);
        }
        window.1 += 1;
        let reset_in = limit.window.saturating_sub(now.duration_since(window.0)).as_secs().max(1);
        let remaining = limit.requests.saturating_sub(window.1);
        let mut headers = HeaderMap::new();
        let reset_at = self.options.clock.now().timestamp() + reset_in as i64;
        for (name, value) in [
            ("ratelimit-limit", u64::from(limit.requests)),
            ("ratelimit-remaining", u64::from(remaining)),
            ("ratelimit-reset", reset_at as u64),
        ] {
            headers.insert(name, HeaderValue::from(value));
        }
        if enforced.is_some() && window.1 > limit.requests {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(reset_in));
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            let body = format!("Rate limit exceeded. Please retry in {reset_in} seconds.");
            return Err((StatusCode::TOO_MANY_REQUESTS, headers, body).into_response());
        }
        Ok(headers)
    }

    fn cursor_rejected(&self) -> bool {
        self.reject_cursors.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

pub fn router() -> Router<Arc<MockState>> {
    Router::new()
        .route("/api/external/v2/ledger_entries", get(list_entries))
        .route("/api/external/v2/ledger_entries/{id}", get(get_entry))
        .route("/api/external/v2/ledger_entries/{id}/ledger_entry_lines", get(entry_lines))
        .route("/api/external/v2/ledger_entry_lines", get(list_lines))
}

fn error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// The documented 422 body.
fn unprocessable(message: &str, details: Value) -> Response {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"error": "unprocessable_entity", "message": message, "details": details}),
    )
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, json!({"status": 404, "error": format!("Couldn't find LedgerEntry with 'id'={id}")}))
}

fn invalid_cursor() -> Response {
    unprocessable("Invalid cursor", json!({"cursor": ["is invalid or has expired"]}))
}

/// An authenticated request: the company's data, which behaviour it asked
/// for, its decoded parameters and the rate-limit headers for the answer.
struct Admitted {
    data: Arc<TenantData>,
    modern: bool,
    params: HashMap<String, String>,
    rate_headers: HeaderMap,
}

impl Admitted {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

fn parse_flag(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn admit(state: &MockState, headers: &HeaderMap, raw: Option<&str>) -> Result<Admitted, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| *t == TOKEN || t.strip_prefix(CALLER_TOKEN_PREFIX).is_some_and(|rest| !rest.is_empty()));
    let Some(token) = token else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            json!({"error": "unauthorized", "message": "The access token is missing, invalid or expired"}),
        ));
    };
    let rate_headers = state.pennylane.take(token)?;
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
    let bad_flag = || {
        error(
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "message": "X-Use-2026-API-Changes and use_2026_api_changes must be true or false and agree"}),
        )
    };
    let header_flag = headers.get("x-use-2026-api-changes").map(|v| v.to_str().ok().and_then(parse_flag));
    let query_flag = params.get("use_2026_api_changes").map(|v| parse_flag(v));
    let modern = match (header_flag, query_flag) {
        (Some(None), _) | (_, Some(None)) => return Err(bad_flag()),
        (Some(Some(a)), Some(Some(b))) if a != b => return Err(bad_flag()),
        (Some(Some(flag)), _) | (None, Some(Some(flag))) => flag,
        // The sunset phase: the new behaviour unless opted out.
        (None, None) => true,
    };
    Ok(Admitted { data: state.pennylane.tenant(token), modern, params, rate_headers })
}

/// Runs `handle` for an admitted request and adds the rate-limit headers.
fn respond(
    state: &MockState,
    headers: &HeaderMap,
    raw: Option<&str>,
    handle: impl FnOnce(&Admitted) -> Result<Value, Response>,
) -> Response {
    let request = match admit(state, headers, raw) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let mut response = match handle(&request) {
        Ok(body) => Json(body).into_response(),
        Err(response) => response,
    };
    response.headers_mut().extend(request.rate_headers);
    response
}

/// A comparable field value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Val {
    Int(i64),
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Day,
    Instant,
}

const ALL_OPERATORS: &[&str] = &["lt", "lteq", "gt", "gteq", "eq", "not_eq", "in", "not_in"];
const COMPARISONS: &[&str] = &["lt", "lteq", "gt", "gteq", "eq", "not_eq"];

/// What one endpoint lets a filter use.
type FieldSpec = (&'static str, Kind, &'static [&'static str]);

const ENTRY_FIELDS: &[FieldSpec] =
    &[("id", Kind::Int, ALL_OPERATORS), ("date", Kind::Day, COMPARISONS), ("journal_id", Kind::Int, ALL_OPERATORS)];
/// The seed's fields, before the 2026 changes.
const SEED_ENTRY_FIELDS: &[FieldSpec] = &[
    ("updated_at", Kind::Instant, COMPARISONS),
    ("created_at", Kind::Instant, COMPARISONS),
    ("date", Kind::Day, COMPARISONS),
    ("journal_id", Kind::Int, ALL_OPERATORS),
];
const LINE_FIELDS: &[FieldSpec] = &[
    ("id", Kind::Int, ALL_OPERATORS),
    ("journal_id", Kind::Int, ALL_OPERATORS),
    ("ledger_account_id", Kind::Int, ALL_OPERATORS),
    ("date", Kind::Day, ALL_OPERATORS),
];
/// Removed by the 2026 changes: filtering or sorting on them fails.
const REMOVED_FIELDS: [&str; 2] = ["created_at", "updated_at"];

#[derive(Debug)]
struct Condition {
    field: &'static str,
    operator: &'static str,
    values: Vec<Val>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    field: String,
    operator: String,
    value: Value,
}

fn parse_scalar(kind: Kind, value: &Value) -> Option<Val> {
    match (kind, value) {
        (Kind::Int, Value::Number(n)) => n.as_i64().map(Val::Int),
        (Kind::Int, Value::String(s)) => s.trim().parse().ok().map(Val::Int),
        (Kind::Day, Value::String(s)) if s.len() == 10 => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(Val::Day),
        (Kind::Instant, Value::String(s)) => DateTime::parse_from_rfc3339(s).ok().map(|d| Val::Instant(d.to_utc())),
        _ => None,
    }
}

fn parse_filter(text: Option<&str>, fields: &[FieldSpec], modern: bool) -> Result<Vec<Condition>, Response> {
    let Some(text) = text else { return Ok(Vec::new()) };
    let invalid = |message: String| unprocessable(&message, json!({"filter": [message.clone()]}));
    let raw: Vec<RawCondition> = serde_json::from_str(text)
        .map_err(|_| invalid("filter must be a JSON array of {field, operator, value}".into()))?;
    raw.into_iter()
        .map(|c| {
            if modern && REMOVED_FIELDS.contains(&c.field.as_str()) {
                return Err(invalid(format!("filtering on {} is no longer supported", c.field)));
            }
            let (field, kind, operators) = fields
                .iter()
                .find(|(name, _, _)| *name == c.field)
                .ok_or_else(|| invalid(format!("{} is not a filterable field", c.field)))?;
            let operator = operators
                .iter()
                .find(|op| **op == c.operator)
                .ok_or_else(|| invalid(format!("operator {} is not allowed on {}", c.operator, c.field)))?;
            let list = matches!(*operator, "in" | "not_in");
            let items: Vec<Value> = match (&c.value, list) {
                (Value::Array(items), true) => items.clone(),
                (Value::String(csv), true) => csv.split(',').map(|s| Value::String(s.to_owned())).collect(),
                (scalar, false) => vec![scalar.clone()],
                _ => return Err(invalid(format!("{} {} takes a list", c.field, c.operator))),
            };
            let values = items
                .iter()
                .map(|v| parse_scalar(*kind, v))
                .collect::<Option<Vec<Val>>>()
                .ok_or_else(|| invalid(format!("invalid value for {}", c.field)))?;
            Ok(Condition { field, operator, values })
        })
        .collect()
}

/// A row a filter and a sort can read.
trait Row {
    fn id(&self) -> i64;
    fn field(&self, name: &str) -> Option<Val>;
}

impl Row for Entry {
    fn id(&self) -> i64 {
        self.id
    }
    fn field(&self, name: &str) -> Option<Val> {
        match name {
            "id" => Some(Val::Int(self.id)),
            "date" => self.date.map(Val::Day),
            "journal_id" => Some(Val::Int(self.journal_id)),
            "created_at" => Some(Val::Instant(self.created_at)),
            "updated_at" => Some(Val::Instant(self.updated_at)),
            _ => None,
        }
    }
}

impl Row for Line {
    fn id(&self) -> i64 {
        self.id
    }
    fn field(&self, name: &str) -> Option<Val> {
        match name {
            "id" => Some(Val::Int(self.id)),
            "date" => self.date.map(Val::Day),
            "journal_id" => Some(Val::Int(self.journal_id)),
            "ledger_account_id" => Some(Val::Int(self.account.0)),
            _ => None,
        }
    }
}

fn holds(row: &impl Row, condition: &Condition) -> bool {
    // A null matches no comparison at all, as in SQL.
    let Some(actual) = row.field(condition.field) else { return false };
    let value = &condition.values[0];
    match condition.operator {
        "lt" => actual < *value,
        "lteq" => actual <= *value,
        "gt" => actual > *value,
        "gteq" => actual >= *value,
        "eq" => actual == *value,
        "not_eq" => actual != *value,
        "in" => condition.values.contains(&actual),
        "not_in" => !condition.values.contains(&actual),
        _ => false,
    }
}

/// `field` or `-field`, among `allowed`.
fn parse_sort(
    text: Option<&str>,
    default: &'static str,
    allowed: &[&'static str],
    modern: bool,
) -> Result<(&'static str, bool), Response> {
    let text = text.unwrap_or(default);
    let (descending, name) = text.strip_prefix('-').map_or((false, text), |rest| (true, rest));
    if modern && REMOVED_FIELDS.contains(&name) {
        return Err(unprocessable(&format!("sorting on {name} is no longer supported"), json!({"sort": [text]})));
    }
    let field = allowed
        .iter()
        .find(|f| **f == name)
        .ok_or_else(|| unprocessable(&format!("cannot sort on {text}"), json!({"sort": [text]})))?;
    Ok((field, descending))
}

/// Rows passing every condition, sorted; ties by ascending id.
fn select<'a, R: Row + 'a>(
    rows: impl Iterator<Item = &'a R>,
    conditions: &[Condition],
    (field, descending): (&str, bool),
) -> Vec<&'a R> {
    let mut selected: Vec<&R> = rows.filter(|r| conditions.iter().all(|c| holds(*r, c))).collect();
    selected.sort_by(|a, b| {
        // Ascending puts nulls last; descending reverses that (nulls first).
        let key = |r: &R| {
            let value = r.field(field);
            (value.is_none(), value)
        };
        let order = key(a).cmp(&key(b));
        (if descending { order.reverse() } else { order }).then_with(|| a.id().cmp(&b.id()))
    });
    selected
}

fn parse_limit(text: Option<&str>, name: &str) -> Result<usize, Response> {
    let Some(text) = text else { return Ok(DEFAULT_LIMIT) };
    text.parse()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| unprocessable(&format!("{name} must be between 1 and {MAX_LIMIT}"), json!({name: [text]})))
}

/// One cursor page of `rows`. A cursor is the offset plus a digest of the
/// query it belongs to, so one from another query is refused.
fn cursor_page<R>(
    state: &MockState,
    request: &Admitted,
    query_key: &str,
    rows: &[R],
    render: impl Fn(&R) -> Value,
) -> Result<Value, Response> {
    let limit = parse_limit(request.param("limit"), "limit")?;
    let digest: String = Sha256::digest(query_key.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect();
    let offset = match request.param("cursor") {
        None => 0,
        Some(_) if state.pennylane.cursor_rejected() => return Err(invalid_cursor()),
        Some(cursor) => URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| {
                let (offset, of) = text.split_once(':')?;
                (of == digest).then(|| offset.parse::<usize>().ok()).flatten()
            })
            .filter(|offset| *offset <= rows.len())
            .ok_or_else(invalid_cursor)?,
    };
    let end = (offset + limit).min(rows.len());
    let has_more = end < rows.len();
    let next_cursor = has_more.then(|| URL_SAFE_NO_PAD.encode(format!("{end}:{digest}")));
    let items: Vec<Value> = rows[offset..end].iter().map(render).collect();
    Ok(json!({
        "items": items,
        "has_more": has_more,
        "next_cursor": next_cursor,
        "total_pages": null,
        "current_page": null,
        "per_page": null,
        "total_items": null,
    }))
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn money(cents: i64) -> String {
    Decimal::new(cents, 2).to_string()
}

fn entry_json(entry: &Entry) -> Value {
    json!({
        "id": entry.id,
        "label": entry.label,
        "date": entry.date,
        "journal": {"id": entry.journal_id, "url": format!("{API}/journals/{}", entry.journal_id)},
        "piece_number": entry.piece_number,
        "due_date": entry.date.and_then(|d| d.checked_add_days(chrono::Days::new(30))),
        "invoice_number": entry.invoice_number,
        "status": if entry.date.is_some() { "posted" } else { "draft" },
        "categories": [],
        "attachment": null,
        "created_at": timestamp(entry.created_at),
        "updated_at": timestamp(entry.updated_at),
    })
}

/// The seed's (pre-2026) item: ids carry a 3-digit suffix.
fn seed_entry_json(entry: &Entry) -> Value {
    json!({
        "id": entry.id * 1000 + 3,
        "created_at": timestamp(entry.created_at),
        "updated_at": timestamp(entry.updated_at),
        "label": entry.label,
        "date": entry.date,
        "journal_id": entry.journal_id,
        "ledger_attachment_filename": null,
    })
}

fn line_json(line: &Line) -> Value {
    json!({
        "id": line.id,
        "debit": money(line.debit_cents),
        "credit": money(line.credit_cents),
        "label": line.label,
        "date": line.date,
        "ledger_account": {"id": line.account.0, "number": line.account.1, "url": format!("{API}/ledger_accounts/{}", line.account.0)},
        "journal": {"id": line.journal_id, "url": format!("{API}/journals/{}", line.journal_id)},
        "ledger_entry": {"id": line.entry_id},
        "lettered_ledger_entry_lines": {"ids": [], "url": format!("{API}/ledger_entry_lines/{}/lettered_ledger_entry_lines", line.id)},
    })
}

async fn list_entries(State(state): State<Arc<MockState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    respond(&state, &headers, raw.as_deref(), |request| {
        if !request.modern {
            return seed_page(request);
        }
        let conditions = parse_filter(request.param("filter"), ENTRY_FIELDS, true)?;
        let sort = parse_sort(request.param("sort"), "id", &["id", "date"], true)?;
        let rows = select(request.data.entries.iter(), &conditions, sort);
        let key = format!("ledger_entries {:?} {:?}", request.param("filter"), sort);
        cursor_page(&state, request, &key, &rows, |e| entry_json(e))
    })
}

/// The pre-2026 list: `page`/`per_page`, totals, no drafts.
fn seed_page(request: &Admitted) -> Result<Value, Response> {
    let conditions = parse_filter(request.param("filter"), SEED_ENTRY_FIELDS, false)?;
    let sort = parse_sort(request.param("sort"), "id", &["updated_at", "created_at", "date", "id"], false)?;
    let per_page = parse_limit(request.param("per_page"), "per_page")?;
    let page: usize = match request.param("page") {
        None => 1,
        Some(text) => text
            .parse()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| unprocessable("page must be at least 1", json!({"page": [text]})))?,
    };
    let rows = select(request.data.entries.iter().filter(|e| e.date.is_some()), &conditions, sort);
    let items: Vec<Value> =
        rows.iter().skip((page - 1) * per_page).take(per_page).map(|e| seed_entry_json(e)).collect();
    Ok(json!({
        "total_pages": rows.len().div_ceil(per_page),
        "current_page": page,
        "total_items": rows.len(),
        "per_page": per_page,
        "items": items,
    }))
}

fn find_entry<'a>(data: &'a TenantData, id: &str) -> Result<&'a Entry, Response> {
    id.parse().ok().and_then(|id| data.entry(id)).ok_or_else(|| not_found(id))
}

async fn get_entry(
    State(state): State<Arc<MockState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(&state, &headers, raw.as_deref(), |request| find_entry(&request.data, &id).map(entry_json))
}

async fn entry_lines(
    State(state): State<Arc<MockState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(&state, &headers, raw.as_deref(), |request| {
        let entry = find_entry(&request.data, &id)?;
        let lines: Vec<&Line> = request.data.lines_of(entry).iter().collect();
        cursor_page(&state, request, &format!("ledger_entries/{id}/ledger_entry_lines"), &lines, |l| line_json(l))
    })
}

async fn list_lines(State(state): State<Arc<MockState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    respond(&state, &headers, raw.as_deref(), |request| {
        let conditions = parse_filter(request.param("filter"), LINE_FIELDS, true)?;
        let sort = parse_sort(request.param("sort"), "-id", &["id", "date"], true)?;
        let rows = select(request.data.lines.iter(), &conditions, sort);
        let key = format!("ledger_entry_lines {:?} {:?}", request.param("filter"), sort);
        cursor_page(&state, request, &key, &rows, |l| line_json(l))
    })
}

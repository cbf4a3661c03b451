//! BigLedger's dialect, under `/bigledger/v1/…` and `/bigledger/api/v1/…`
//! (the docs show both): `Authorization: Bearer blg_…` + `X-Company-Id`,
//! list envelopes `{success, data, pagination:{hasMore, nextCursor, limit,
//! total}}` with `limit` (1-200) and an opaque `cursor`, single envelopes
//! `{success, data, meta}`, and error bodies `{success:false, error:{code,
//! message, details[], requestId, timestamp, documentation}, meta}`.
//!
//! Routes: `GET /inventory/adjustments`, `GET /inventory/transfers`,
//! `GET /items`, `GET /items/{id}`, and the assumed `GET /locations` and
//! `GET /locations/{id}`. Documents come in id order, not date order, as a
//! real BigLedger may. Numbers are written as exact decimal text.
//!
//! Assumed where the docs are silent: transfers take the adjustments'
//! filters plus `fromLocationId`/`toLocationId` (`locationId` matches either
//! end); unknown or repeated parameters and malformed values are `400
//! VALIDATION_ERROR`, contradictory or unknown enum values `422`; a cursor
//! that does not decode is `400 VALIDATION_ERROR` on field `cursor`; a key
//! without access to the company is `403 FORBIDDEN`. Any `blg_…` key is a
//! tenant of its own. The rate limit (429 `RATE_LIMIT_EXCEEDED`) is off
//! unless a test sets one with [`BigLedgerMock::limit_rate`]; cursors do not
//! expire unless a test says so with [`BigLedgerMock::expire_next_cursor`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use rand::rngs::SmallRng;
use rand::Rng;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use url::Url;

use super::fixtures::{self, MockOptions};
use super::MockState;
use crate::config::SourceConfig;
use crate::model::SourceKind;

pub const API_KEY: &str = "blg_demo_key";
pub const COMPANY_ID: &str = "comp_demo";
const MAX_LIMIT: usize = 200;
const DEFAULT_LIMIT: usize = 50;

pub const ADJUSTMENT_REASONS: [&str; 5] = ["stock_count", "damaged", "found", "lost", "expired"];
pub const TRANSFER_STATUSES: [&str; 7] =
    ["draft", "pending_approval", "approved", "shipped", "in_transit", "completed", "cancelled"];

pub fn source_config(base_url: Url) -> SourceConfig {
    SourceConfig {
        kind: SourceKind::Bigledger,
        base_url: base_url.join("v1/").unwrap_or(base_url),
        credentials: BTreeMap::from([
            ("api_key".to_owned(), SecretString::from(API_KEY)),
            ("company_id".to_owned(), SecretString::from(COMPANY_ID)),
        ]),
        forward: BTreeMap::from([("api_key".to_owned(), "x-bigledger-api-key".to_owned())]),
        http: super::http_config(),
        page_size: None,
        initial_window_secs: None,
        authority: None,
        scope: None,
    }
}

/// A warehouse or store.
#[derive(Debug)]
pub struct Place {
    pub id: String,
    pub name: String,
    pub code: String,
    /// `warehouse` or `store`.
    pub kind: &'static str,
}

#[derive(Debug)]
pub struct Item {
    pub id: String,
    pub code: String,
    pub barcode: String,
    pub name: String,
    pub unit: &'static str,
    pub cost: Decimal,
    pub price: Decimal,
    /// Stock per place index.
    pub stock: Vec<(usize, Decimal)>,
    pub active: bool,
}

#[derive(Debug)]
pub struct Adjustment {
    pub id: String,
    pub number: String,
    pub date: NaiveDate,
    pub reason: &'static str,
    pub posted: bool,
    pub place: usize,
    pub reference: Option<String>,
    pub notes: Option<String>,
    pub lines: Vec<AdjustmentLine>,
    pub created_at: DateTime<Utc>,
    pub posted_at: Option<DateTime<Utc>>,
}

impl Adjustment {
    /// `positive`, `negative` or `mixed`, from the lines' signs.
    pub fn kind(&self) -> &'static str {
        let positive = self.lines.iter().any(|l| l.quantity > Decimal::ZERO);
        let negative = self.lines.iter().any(|l| l.quantity < Decimal::ZERO);
        match (positive, negative) {
            (true, true) => "mixed",
            (false, true) => "negative",
            _ => "positive",
        }
    }
}

#[derive(Debug)]
pub struct AdjustmentLine {
    pub id: String,
    pub item: usize,
    pub current_stock: Decimal,
    /// Signed.
    pub quantity: Decimal,
    pub unit_cost: Decimal,
    pub reason: Option<&'static str>,
    pub notes: Option<String>,
}

impl AdjustmentLine {
    pub fn total_cost(&self) -> Decimal {
        (self.quantity * self.unit_cost).round_dp(2)
    }
}

#[derive(Debug)]
pub struct Transfer {
    pub id: String,
    pub number: String,
    pub date: NaiveDate,
    pub status: &'static str,
    pub from: usize,
    pub to: usize,
    pub reference: Option<String>,
    pub notes: Option<String>,
    pub lines: Vec<TransferLine>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct TransferLine {
    pub id: String,
    pub item: usize,
    pub requested: Decimal,
    pub shipped: Decimal,
    pub received: Decimal,
    pub unit_cost: Decimal,
    pub notes: Option<String>,
}

impl TransferLine {
    pub fn total_cost(&self) -> Decimal {
        (self.shipped * self.unit_cost).round_dp(2)
    }
}

/// One tenant's (API key's) data. Documents are sorted by id: the order
/// pages come in.
#[derive(Debug)]
pub struct TenantData {
    pub places: Vec<Place>,
    pub items: Vec<Item>,
    pub adjustments: Vec<Adjustment>,
    pub transfers: Vec<Transfer>,
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

impl TenantData {
    fn generate(options: &MockOptions, tenant: &str) -> Self {
        let mut rng = fixtures::rng(options, "bigledger", tenant);
        let places = generate_places(&mut rng);
        let items = generate_items(&mut rng, places.len());
        let (mut adjustments, mut transfers) = (Vec::new(), Vec::new());
        // Documents until their lines make `options.entries` ledger entries.
        let mut entries = 0;
        while entries < options.entries {
            if rng.random_bool(0.55) {
                let adjustment = random_adjustment(&mut rng, options, &items, places.len(), adjustments.len() + 1);
                entries += if adjustment.posted { adjustment.lines.len() } else { 0 };
                adjustments.push(adjustment);
            } else {
                let transfer = random_transfer(&mut rng, options, &items, places.len(), transfers.len() + 1);
                entries += if transfer.status == "completed" { 2 * transfer.lines.len() } else { 0 };
                transfers.push(transfer);
            }
        }
        adjustments.sort_by(|a, b| a.id.cmp(&b.id));
        transfers.sort_by(|a, b| a.id.cmp(&b.id));
        Self { places, items, adjustments, transfers }
    }
}

fn generate_places(rng: &mut SmallRng) -> Vec<Place> {
    let stores = ["Downtown Store", "Harbour Store"];
    let warehouses = fixtures::WAREHOUSE_NAMES[..4].iter().map(|name| (*name, "warehouse"));
    warehouses
        .chain(stores.iter().map(|name| (*name, "store")))
        .enumerate()
        .map(|(n, (name, kind))| Place {
            id: format!("loc_{}", fixtures::hex_id(rng, 8)),
            name: name.to_owned(),
            code: format!("{}{}", &kind[..1].to_uppercase(), n + 1),
            kind,
        })
        .collect()
}

fn generate_items(rng: &mut SmallRng, places: usize) -> Vec<Item> {
    let mut items = Vec::new();
    for n in 1..=110 {
        // Every tenth item has a variant whose code extends the base code,
        // so a fuzzy search for the base code finds both.
        let codes =
            if n % 10 == 7 { vec![format!("BL-{n:04}"), format!("BL-{n:04}-RED")] } else { vec![format!("BL-{n:04}")] };
        for code in codes {
            let cost = fixtures::money(rng, 50..40_000);
            let stock = (0..rng.random_range(1..=3))
                .map(|_| (rng.random_range(0..places), Decimal::from(rng.random_range(0..400))))
                .collect();
            items.push(Item {
                id: format!("item_{}", fixtures::hex_id(rng, 10)),
                barcode: format!("955{:010}", rng.random_range(0..10_000_000_000u64)),
                name: fixtures::product_name(rng, n),
                unit: if n % 6 == 0 { "kg" } else { "pcs" },
                price: (cost * Decimal::new(135, 2)).round_dp(2),
                cost,
                stock,
                active: n % 23 != 0,
                code,
            });
        }
    }
    items
}

/// A quantity in the item's unit: whole pieces, or kilograms to the gram.
fn quantity(rng: &mut SmallRng, item: &Item, max: i64) -> Decimal {
    if item.unit == "kg" {
        Decimal::new(rng.random_range(1..=max * 1000), 3)
    } else {
        Decimal::from(rng.random_range(1..=max))
    }
}

fn random_adjustment(rng: &mut SmallRng, options: &MockOptions, items: &[Item], places: usize, n: usize) -> Adjustment {
    let date = fixtures::day_in_year(rng, options.anchor);
    let reason = ADJUSTMENT_REASONS[rng.random_range(0..ADJUSTMENT_REASONS.len())];
    let posted = rng.random_bool(0.85);
    let created_at = midnight(date) + Duration::seconds(rng.random_range(8 * 3600..18 * 3600));
    let lines = (0..rng.random_range(1..=4))
        .map(|_| {
            let item = rng.random_range(0..items.len());
            let magnitude = quantity(rng, &items[item], 20);
            let removed = match reason {
                "damaged" | "lost" | "expired" => true,
                "found" => false,
                _ => rng.random_bool(0.5),
            };
            let line_reason = match reason {
                "stock_count" => Some(if removed { "damaged" } else { "found" }),
                _ => rng.random_bool(0.3).then_some(reason),
            };
            AdjustmentLine {
                id: format!("adjitem_{}", fixtures::hex_id(rng, 10)),
                item,
                current_stock: Decimal::from(rng.random_range(20..500)),
                quantity: if removed { -magnitude } else { magnitude },
                unit_cost: items[item].cost,
                reason: line_reason,
                notes: rng.random_bool(0.5).then(|| {
                    format!("{} during {}", if removed { "Removed" } else { "Added" }, reason.replace('_', " "))
                }),
            }
        })
        .collect();
    Adjustment {
        id: format!("adj_{}", fixtures::hex_id(rng, 12)),
        number: format!("ADJ-{}-{n:04}", date.format("%Y")),
        date,
        reason,
        posted,
        place: rng.random_range(0..places),
        reference: rng.random_bool(0.6).then(|| format!("SC-{}", fixtures::hex_id(rng, 6).to_uppercase())),
        notes: rng.random_bool(0.5).then(|| "Monthly stock count adjustments".to_owned()),
        lines,
        // Posted minutes to days later: `postedAt` is often another day than `date`.
        posted_at: posted.then(|| created_at + Duration::seconds(rng.random_range(300..3 * 86_400))),
        created_at,
    }
}

fn random_transfer(rng: &mut SmallRng, options: &MockOptions, items: &[Item], places: usize, n: usize) -> Transfer {
    // A week before the anchor at the latest, so nothing arrives after it.
    let date = (options.anchor - Duration::days(rng.random_range(7..=365))).date_naive();
    let status = if rng.random_bool(0.6) {
        "completed"
    } else {
        TRANSFER_STATUSES[rng.random_range(0..TRANSFER_STATUSES.len())]
    };
    let from = rng.random_range(0..places);
    let to = (from + rng.random_range(1..places)) % places;
    let shipped = matches!(status, "shipped" | "in_transit" | "completed");
    // Shipped from a day before the transfer's date to three days after it,
    // delivered up to three days later: often on other days than `date`.
    let shipped_at = shipped.then(|| midnight(date) + Duration::seconds(rng.random_range(-86_400..4 * 86_400)));
    let delivered_at = (status == "completed")
        .then(|| shipped_at.map(|at| at + Duration::seconds(rng.random_range(3600..3 * 86_400))))
        .flatten();
    let lines = (0..rng.random_range(1..=3))
        .map(|_| {
            let item = rng.random_range(0..items.len());
            let requested = quantity(rng, &items[item], 60);
            let shipped_quantity = if shipped { requested } else { Decimal::ZERO };
            // Now and then some units arrive damaged or go missing.
            let lost = if status == "completed" && rng.random_bool(0.25) {
                (shipped_quantity * Decimal::new(rng.random_range(1..=30), 2)).round_dp(shipped_quantity.scale())
            } else {
                Decimal::ZERO
            };
            let received = if status == "completed" { shipped_quantity - lost } else { Decimal::ZERO };
            TransferLine {
                id: format!("xferitem_{}", fixtures::hex_id(rng, 10)),
                item,
                requested,
                shipped: shipped_quantity,
                received,
                unit_cost: items[item].cost,
                notes: (lost > Decimal::ZERO).then(|| format!("{lost} damaged in transit")),
            }
        })
        .collect();
    let created_at = midnight(date) - Duration::seconds(rng.random_range(0..2 * 86_400));
    Transfer {
        id: format!("xfer_{}", fixtures::hex_id(rng, 12)),
        number: format!("XFR-{}-{n:04}", date.format("%Y")),
        date,
        status,
        from,
        to,
        reference: rng.random_bool(0.5).then(|| format!("RESTOCK-{n:03}")),
        notes: rng.random_bool(0.4).then(|| "Weekly restock".to_owned()),
        lines,
        updated_at: delivered_at.or(shipped_at).unwrap_or(created_at),
        shipped_at,
        delivered_at,
        created_at,
    }
}

/// A fixed-window request limit per API key.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub requests: u32,
    pub per: StdDuration,
}

#[derive(Debug, Default)]
struct Limiter {
    limit: Option<RateLimit>,
    /// Per key: when its window started and the requests in it.
    windows: HashMap<String, (Instant, u32)>,
}

/// Tenants are created on first use, one per API key.
#[derive(Debug)]
pub struct BigLedgerMock {
    options: MockOptions,
    tenants: Mutex<HashMap<String, Arc<TenantData>>>,
    limiter: Mutex<Limiter>,
    requests: AtomicU64,
    /// The next request carrying a cursor is told it expired.
    cursor_expiry_pending: AtomicBool,
}

impl BigLedgerMock {
    pub fn new(options: MockOptions) -> Self {
        Self {
            options,
            tenants: Mutex::default(),
            limiter: Mutex::default(),
            requests: AtomicU64::new(0),
            cursor_expiry_pending: AtomicBool::new(false),
        }
    }

    pub fn tenant(&self, key: &str) -> Arc<TenantData> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.entry(key.to_owned()).or_insert_with(|| Arc::new(TenantData::generate(&self.options, key))).clone()
    }

    /// Answers the next request that carries a cursor as if the cursor had
    /// expired (`400 VALIDATION_ERROR` on `cursor`), as a real one may.
    pub fn expire_next_cursor(&self) {
        self.cursor_expiry_pending.store(true, Ordering::SeqCst);
    }

    /// Turns the per-key rate limit on (`Some`) or off.
    pub fn limit_rate(&self, limit: Option<RateLimit>) {
        let mut limiter = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        *limiter = Limiter { limit, windows: HashMap::new() };
    }

    /// Counts a request of `key`; the 429 when it is over the limit.
    fn admit(&self, key: &str) -> Result<(), Response> {
        let mut limiter = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let Some(limit) = limiter.limit else { return Ok(()) };
        let now = Instant::now();
        let (start, count) = limiter.windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(*start) >= limit.per {
            (*start, *count) = (now, 0);
        }
        *count += 1;
        if *count <= limit.requests {
            return Ok(());
        }
        let wait = limit.per.saturating_sub(now.duration_since(*start)).as_secs().max(1);
        let mut response = self.error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded", &[]);
        let headers = response.headers_mut();
        let reset = self.options.clock.now().timestamp() + wait as i64;
        for (name, value) in [
            ("retry-after", wait.to_string()),
            ("x-ratelimit-limit", limit.requests.to_string()),
            ("x-ratelimit-remaining", "0".to_owned()),
            ("x-ratelimit-reset", reset.to_string()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        Err(response)
    }

    fn request_id(&self) -> String {
        format!("req_{:09}", self.requests.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// A documented BigLedger error response.
    fn error(&self, status: StatusCode, code: &str, message: &str, details: &[(&str, &str, &str)]) -> Response {
        let request_id = self.request_id();
        let timestamp = self.options.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let details: Vec<Value> = details
            .iter()
            .map(|(field, message, code)| json!({"field": field, "message": message, "code": code}))
            .collect();
        let body = json!({
            "success": false,
            "error": {
                "code": code,
                "message": message,
                "details": details,
                "requestId": request_id,
                "timestamp": timestamp,
                "documentation": format!("https://developers.bigledger.com/errors#{}", code.to_lowercase().replace('_', "-")),
            },
            "meta": {"requestId": request_id, "timestamp": timestamp},
        });
        (status, Json(body)).into_response()
    }

    fn invalid(&self, status: StatusCode, field: &str, message: &str, code: &str) -> Response {
        let summary = "One or more validation errors occurred";
        self.error(status, "VALIDATION_ERROR", summary, &[(field, message, code)])
    }
}

pub fn router() -> Router<Arc<MockState>> {
    let api = Router::new()
        .route("/inventory/adjustments", get(adjustments))
        .route("/inventory/transfers", get(transfers))
        .route("/items", get(items))
        .route("/items/{id}", get(item))
        .route("/locations", get(locations))
        .route("/locations/{id}", get(location));
    Router::new().nest("/v1", api.clone()).nest("/api/v1", api)
}

/// The tenant for a request's headers, or BigLedger's 401/403/429.
fn authenticate(state: &MockState, headers: &HeaderMap) -> Result<Arc<TenantData>, Response> {
    let mock = &state.bigledger;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = header("authorization").and_then(|v| v.strip_prefix("Bearer ")).filter(|k| k.starts_with("blg_"));
    let Some(key) = key else {
        return Err(mock.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Invalid or missing API key", &[]));
    };
    if header("x-company-id") != Some(COMPANY_ID) {
        let message = "The API key has no access to this company";
        return Err(mock.error(StatusCode::FORBIDDEN, "FORBIDDEN", message, &[]));
    }
    mock.admit(key)?;
    Ok(mock.tenant(key))
}

/// A list request's parameters, checked against what the endpoint takes.
#[derive(Debug, Default)]
struct ListQuery {
    params: HashMap<String, String>,
    limit: usize,
    after: Option<String>,
}

impl ListQuery {
    fn parse(mock: &BigLedgerMock, raw: Option<&str>, allowed: &[&str]) -> Result<Self, Response> {
        let bad = |field: &str, message: &str, code: &str| mock.invalid(StatusCode::BAD_REQUEST, field, message, code);
        let mut query = ListQuery { limit: DEFAULT_LIMIT, ..Default::default() };
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if !allowed.contains(&key.as_ref()) && !matches!(key.as_ref(), "limit" | "cursor") {
                return Err(bad(&key, "Unknown parameter", "UNKNOWN_PARAMETER"));
            }
            if query.params.insert(key.to_string(), value.to_string()).is_some() {
                return Err(bad(&key, "Parameter given more than once", "DUPLICATE_PARAMETER"));
            }
        }
        if let Some(limit) = query.params.get("limit") {
            query.limit = limit
                .parse()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| bad("limit", "Must be an integer between 1 and 200", "OUT_OF_RANGE"))?;
        }
        if let Some(cursor) = query.params.get("cursor") {
            let decoded = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).ok().and_then(|b| String::from_utf8(b).ok());
            let after = decoded.and_then(|d| d.strip_prefix("after:").map(str::to_owned));
            let expired = mock.cursor_expiry_pending.swap(false, Ordering::SeqCst);
            let after = after.filter(|_| !expired);
            query.after = Some(after.ok_or_else(|| bad("cursor", "Invalid or expired cursor", "INVALID_CURSOR"))?);
        }
        Ok(query)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// `dateFrom`/`dateTo`, inclusive days.
    fn days(&self, mock: &BigLedgerMock) -> Result<(Option<NaiveDate>, Option<NaiveDate>), Response> {
        let day = |field: &str| -> Result<Option<NaiveDate>, Response> {
            let Some(text) = self.get(field) else { return Ok(None) };
            NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().filter(|_| text.len() == 10).map(Some).ok_or_else(|| {
                mock.invalid(StatusCode::BAD_REQUEST, field, "Must be a date YYYY-MM-DD", "INVALID_DATE")
            })
        };
        let (from, to) = (day("dateFrom")?, day("dateTo")?);
        if from.zip(to).is_some_and(|(from, to)| from > to) {
            let message = "dateTo must not be before dateFrom";
            return Err(mock.invalid(StatusCode::UNPROCESSABLE_ENTITY, "dateTo", message, "INVALID_RANGE"));
        }
        Ok((from, to))
    }

    /// An enum parameter: `422` for a value outside `values`.
    fn one_of(&self, mock: &BigLedgerMock, field: &str, values: &[&str]) -> Result<Option<&str>, Response> {
        match self.get(field) {
            Some(value) if !values.contains(&value) => {
                let message = format!("Must be one of {}", values.join(", "));
                Err(mock.invalid(StatusCode::UNPROCESSABLE_ENTITY, field, &message, "INVALID_VALUE"))
            }
            other => Ok(other),
        }
    }

    /// One page of `docs` (sorted by id) after the cursor.
    fn page<'a, T>(&self, docs: Vec<&'a T>, id: impl Fn(&T) -> &str) -> (Vec<&'a T>, Pagination) {
        let total = docs.len();
        let after = self.after.as_deref().unwrap_or("");
        let mut page: Vec<&T> = docs.into_iter().filter(|d| id(d) > after).take(self.limit + 1).collect();
        let has_more = page.len() > self.limit;
        page.truncate(self.limit);
        let next_cursor = has_more.then(|| URL_SAFE_NO_PAD.encode(format!("after:{}", id(page[page.len() - 1]))));
        (page, Pagination { has_more, next_cursor, limit: self.limit, total })
    }
}

/// Writes a decimal as the exact JSON number it is (`18.50`, not `18.5`).
fn number<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    let raw = serde_json::value::RawValue::from_string(value.to_string()).map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

fn number_opt<S: Serializer>(value: &Option<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => number(value, serializer),
        None => serializer.serialize_none(),
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    has_more: bool,
    next_cursor: Option<String>,
    limit: usize,
    total: usize,
}

#[derive(Debug, Serialize)]
struct ListBody<T> {
    success: bool,
    data: Vec<T>,
    pagination: Pagination,
}

#[derive(Debug, Serialize)]
struct SingleBody<T> {
    success: bool,
    data: T,
    meta: Value,
}

fn list_response<T: Serialize>(data: Vec<T>, pagination: Pagination) -> Response {
    Json(ListBody { success: true, data, pagination }).into_response()
}

fn single_response<T: Serialize>(mock: &BigLedgerMock, data: T) -> Response {
    let meta = json!({"timestamp": timestamp(mock.options.clock.now()), "requestId": mock.request_id()});
    Json(SingleBody { success: true, data, meta }).into_response()
}

#[derive(Debug, Serialize)]
struct PlaceRefJson<'a> {
    id: &'a str,
    name: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AdjustmentJson<'a> {
    id: &'a str,
    adjustment_number: &'a str,
    date: String,
    #[serde(rename = "type")]
    kind: &'static str,
    reason: &'static str,
    status: &'static str,
    location_id: &'a str,
    location: PlaceRefJson<'a>,
    reference: Option<&'a str>,
    notes: Option<&'a str>,
    items: Vec<AdjustmentLineJson<'a>>,
    #[serde(serialize_with = "number")]
    total_value: Decimal,
    created_by: &'static str,
    created_at: String,
    posted_at: Option<String>,
    updated_at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AdjustmentLineJson<'a> {
    id: &'a str,
    item_id: &'a str,
    item_code: &'a str,
    item_name: &'a str,
    #[serde(serialize_with = "number")]
    current_stock: Decimal,
    #[serde(serialize_with = "number")]
    adjusted_stock: Decimal,
    #[serde(serialize_with = "number")]
    adjustment_quantity: Decimal,
    #[serde(serialize_with = "number")]
    unit_cost: Decimal,
    #[serde(serialize_with = "number")]
    total_cost: Decimal,
    reason: Option<&'static str>,
    notes: Option<&'a str>,
}

fn adjustment_json<'a>(data: &'a TenantData, adjustment: &'a Adjustment) -> AdjustmentJson<'a> {
    let place = &data.places[adjustment.place];
    let items: Vec<AdjustmentLineJson> = adjustment
        .lines
        .iter()
        .map(|line| {
            let item = &data.items[line.item];
            AdjustmentLineJson {
                id: &line.id,
                item_id: &item.id,
                item_code: &item.code,
                item_name: &item.name,
                current_stock: line.current_stock,
                adjusted_stock: line.current_stock + line.quantity,
                adjustment_quantity: line.quantity,
                unit_cost: line.unit_cost,
                total_cost: line.total_cost(),
                reason: line.reason,
                notes: line.notes.as_deref(),
            }
        })
        .collect();
    AdjustmentJson {
        id: &adjustment.id,
        adjustment_number: &adjustment.number,
        date: adjustment.date.format("%Y-%m-%d").to_string(),
        kind: adjustment.kind(),
        reason: adjustment.reason,
        status: if adjustment.posted { "posted" } else { "draft" },
        location_id: &place.id,
        location: PlaceRefJson { id: &place.id, name: &place.name },
        reference: adjustment.reference.as_deref(),
        notes: adjustment.notes.as_deref(),
        total_value: adjustment.lines.iter().map(AdjustmentLine::total_cost).sum(),
        items,
        created_by: "user_456",
        created_at: timestamp(adjustment.created_at),
        posted_at: adjustment.posted_at.map(timestamp),
        updated_at: timestamp(adjustment.posted_at.unwrap_or(adjustment.created_at)),
    }
}

async fn adjustments(State(state): State<Arc<MockState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    list_adjustments(&state, &headers, raw.as_deref()).unwrap_or_else(|response| response)
}

fn list_adjustments(state: &MockState, headers: &HeaderMap, raw: Option<&str>) -> Result<Response, Response> {
    let mock = &state.bigledger;
    let allowed = ["dateFrom", "dateTo", "type", "reason", "status", "locationId", "itemId"];
    let data = authenticate(state, headers)?;
    let query = ListQuery::parse(mock, raw, &allowed)?;
    let (from, to) = query.days(mock)?;
    let status = query.one_of(mock, "status", &["draft", "posted"])?;
    let kind = query.one_of(mock, "type", &["positive", "negative", "mixed"])?;
    let reason = query.one_of(mock, "reason", &ADJUSTMENT_REASONS)?;
    let (location, item) = (query.get("locationId"), query.get("itemId"));
    let docs: Vec<&Adjustment> = data
        .adjustments
        .iter()
        .filter(|a| {
            from.is_none_or(|f| a.date >= f)
                && to.is_none_or(|t| a.date <= t)
                && status.is_none_or(|s| (s == "posted") == a.posted)
                && reason.is_none_or(|r| r == a.reason)
                && location.is_none_or(|l| data.places[a.place].id == l)
                && item.is_none_or(|i| a.lines.iter().any(|line| data.items[line.item].id == i))
        })
        .filter(|a| kind.is_none_or(|k| a.kind() == k))
        .collect();
    let (page, pagination) = query.page(docs, |a| &a.id);
    Ok(list_response(page.into_iter().map(|a| adjustment_json(&data, a)).collect(), pagination))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TransferJson<'a> {
    id: &'a str,
    transfer_number: &'a str,
    date: String,
    status: &'static str,
    from_location_id: &'a str,
    from_location: PlaceRefJson<'a>,
    to_location_id: &'a str,
    to_location: PlaceRefJson<'a>,
    reference: Option<&'a str>,
    notes: Option<&'a str>,
    items: Vec<TransferLineJson<'a>>,
    shipping: Value,
    #[serde(serialize_with = "number")]
    total_value: Decimal,
    created_by: &'static str,
    created_at: String,
    updated_at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TransferLineJson<'a> {
    id: &'a str,
    item_id: &'a str,
    item_code: &'a str,
    item_name: &'a str,
    #[serde(serialize_with = "number")]
    quantity_requested: Decimal,
    #[serde(serialize_with = "number")]
    quantity_shipped: Decimal,
    #[serde(serialize_with = "number")]
    quantity_received: Decimal,
    #[serde(serialize_with = "number")]
    unit_cost: Decimal,
    #[serde(serialize_with = "number")]
    total_cost: Decimal,
    notes: Option<&'a str>,
}

fn transfer_json<'a>(data: &'a TenantData, transfer: &'a Transfer) -> TransferJson<'a> {
    let (from, to) = (&data.places[transfer.from], &data.places[transfer.to]);
    let items = transfer
        .lines
        .iter()
        .map(|line| {
            let item = &data.items[line.item];
            TransferLineJson {
                id: &line.id,
                item_id: &item.id,
                item_code: &item.code,
                item_name: &item.name,
                quantity_requested: line.requested,
                quantity_shipped: line.shipped,
                quantity_received: line.received,
                unit_cost: line.unit_cost,
                total_cost: line.total_cost(),
                notes: line.notes.as_deref(),
            }
        })
        .collect();
    let shipping = json!({
        "method": "internal_delivery",
        "trackingNumber": transfer.shipped_at.map(|_| format!("INT-{}", transfer.number)),
        "shippedAt": transfer.shipped_at.map(timestamp),
        "estimatedDelivery": transfer.shipped_at.map(|at| timestamp(at + Duration::days(1))),
        "actualDelivery": transfer.delivered_at.map(timestamp),
    });
    TransferJson {
        id: &transfer.id,
        transfer_number: &transfer.number,
        date: transfer.date.format("%Y-%m-%d").to_string(),
        status: transfer.status,
        from_location_id: &from.id,
        from_location: PlaceRefJson { id: &from.id, name: &from.name },
        to_location_id: &to.id,
        to_location: PlaceRefJson { id: &to.id, name: &to.name },
        reference: transfer.reference.as_deref(),
        notes: transfer.notes.as_deref(),
        total_value: transfer.lines.iter().map(TransferLine::total_cost).sum(),
        items,
        shipping,
        created_by: "user_456",
        created_at: timestamp(transfer.created_at),
        updated_at: timestamp(transfer.updated_at),
    }
}

async fn transfers(State(state): State<Arc<MockState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    list_transfers(&state, &headers, raw.as_deref()).unwrap_or_else(|response| response)
}

fn list_transfers(state: &MockState, headers: &HeaderMap, raw: Option<&str>) -> Result<Response, Response> {
    let mock = &state.bigledger;
    let allowed = ["dateFrom", "dateTo", "status", "locationId", "fromLocationId", "toLocationId", "itemId"];
    let data = authenticate(state, headers)?;
    let query = ListQuery::parse(mock, raw, &allowed)?;
    let (from, to) = query.days(mock)?;
    let status = query.one_of(mock, "status", &TRANSFER_STATUSES)?;
    let place = |index: usize| data.places[index].id.as_str();
    let docs: Vec<&Transfer> = data
        .transfers
        .iter()
        .filter(|t| {
            from.is_none_or(|f| t.date >= f)
                && to.is_none_or(|d| t.date <= d)
                && status.is_none_or(|s| s == t.status)
                && query.get("locationId").is_none_or(|l| place(t.from) == l || place(t.to) == l)
                && query.get("fromLocationId").is_none_or(|l| place(t.from) == l)
                && query.get("toLocationId").is_none_or(|l| place(t.to) == l)
                && query.get("itemId").is_none_or(|i| t.lines.iter().any(|line| data.items[line.item].id == i))
        })
        .collect();
    let (page, pagination) = query.page(docs, |t| &t.id);
    Ok(list_response(page.into_iter().map(|t| transfer_json(&data, t)).collect(), pagination))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemJson<'a> {
    id: &'a str,
    item_code: &'a str,
    barcode: &'a str,
    name: &'a str,
    description: String,
    #[serde(rename = "type")]
    kind: &'static str,
    unit: &'static str,
    pricing: PricingJson,
    inventory: InventoryJson,
    locations: Vec<ItemLocationJson<'a>>,
    is_active: bool,
    created_at: &'static str,
    updated_at: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PricingJson {
    #[serde(serialize_with = "number")]
    cost_price: Decimal,
    #[serde(serialize_with = "number")]
    selling_price: Decimal,
    currency: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InventoryJson {
    tracked: bool,
    #[serde(serialize_with = "number")]
    current_stock: Decimal,
    #[serde(serialize_with = "number")]
    available_stock: Decimal,
    #[serde(serialize_with = "number")]
    reserved_stock: Decimal,
    #[serde(serialize_with = "number_opt")]
    minimum_stock: Option<Decimal>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemLocationJson<'a> {
    location_id: &'a str,
    #[serde(serialize_with = "number")]
    stock: Decimal,
    #[serde(serialize_with = "number")]
    available: Decimal,
    #[serde(serialize_with = "number")]
    reserved: Decimal,
    bin_location: String,
}

/// An item's reserved stock at a place: a tenth, rounded down.
fn reserved(stock: Decimal) -> Decimal {
    (stock / Decimal::TEN).floor()
}

fn item_json<'a>(data: &'a TenantData, item: &'a Item) -> ItemJson<'a> {
    let on_hand: Decimal = item.stock.iter().map(|(_, q)| *q).sum();
    let held: Decimal = item.stock.iter().map(|(_, q)| reserved(*q)).sum();
    ItemJson {
        id: &item.id,
        item_code: &item.code,
        barcode: &item.barcode,
        name: &item.name,
        description: format!("{} for industrial applications", item.name),
        kind: "inventory",
        unit: item.unit,
        pricing: PricingJson { cost_price: item.cost, selling_price: item.price, currency: "MYR" },
        inventory: InventoryJson {
            tracked: true,
            current_stock: on_hand,
            available_stock: on_hand - held,
            reserved_stock: held,
            minimum_stock: Some(Decimal::from(20)),
        },
        locations: item
            .stock
            .iter()
            .map(|(place, stock)| ItemLocationJson {
                location_id: &data.places[*place].id,
                stock: *stock,
                available: stock - reserved(*stock),
                reserved: reserved(*stock),
                bin_location: format!("{}-A1", data.places[*place].code),
            })
            .collect(),
        is_active: item.active,
        created_at: "2024-01-01T00:00:00Z",
        updated_at: "2024-06-01T00:00:00Z",
    }
}

/// `search` is fuzzy: case-insensitive, anywhere in code, name, barcode or
/// description.
async fn items(State(state): State<Arc<MockState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    list_items(&state, &headers, raw.as_deref()).unwrap_or_else(|response| response)
}

fn list_items(state: &MockState, headers: &HeaderMap, raw: Option<&str>) -> Result<Response, Response> {
    let mock = &state.bigledger;
    let data = authenticate(state, headers)?;
    let query = ListQuery::parse(mock, raw, &["search", "type", "active"])?;
    let active = query.one_of(mock, "active", &["true", "false"])?.map(|a| a == "true");
    let search = query.get("search").map(str::to_lowercase);
    let mut found: Vec<&Item> = data
        .items
        .iter()
        .filter(|item| active.is_none_or(|a| a == item.active))
        .filter(|item| {
            search.as_deref().is_none_or(|s| {
                let description = format!("{} for industrial applications", item.name);
                [item.code.as_str(), &item.name, &item.barcode, &description]
                    .iter()
                    .any(|f| f.to_lowercase().contains(s))
            })
        })
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    let (page, pagination) = query.page(found, |i| &i.id);
    Ok(list_response(page.into_iter().map(|i| item_json(&data, i)).collect(), pagination))
}

async fn item(State(state): State<Arc<MockState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mock = &state.bigledger;
    let data = match authenticate(&state, &headers) {
        Ok(data) => data,
        Err(response) => return response,
    };
    match data.items.iter().find(|i| i.id == id) {
        Some(item) => single_response(mock, item_json(&data, item)),
        None => mock.error(StatusCode::NOT_FOUND, "NOT_FOUND", "Item not found", &[]),
    }
}

fn location_json(place: &Place) -> Value {
    let city = place.name.split_whitespace().next().unwrap_or_default();
    json!({
        "id": place.id,
        "name": place.name,
        "code": place.code,
        "type": place.kind,
        "address": {"line1": "1 Industrial Park", "line2": null, "city": city, "state": null, "postalCode": "50000", "country": "MY"},
        "isActive": true,
        "createdAt": "2024-01-01T00:00:00Z",
    })
}

async fn locations(State(state): State<Arc<MockState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    list_locations(&state, &headers, raw.as_deref()).unwrap_or_else(|response| response)
}

fn list_locations(state: &MockState, headers: &HeaderMap, raw: Option<&str>) -> Result<Response, Response> {
    let mock = &state.bigledger;
    let data = authenticate(state, headers)?;
    let query = ListQuery::parse(mock, raw, &[])?;
    let mut places: Vec<&Place> = data.places.iter().collect();
    places.sort_by(|a, b| a.id.cmp(&b.id));
    let (page, pagination) = query.page(places, |p| &p.id);
    Ok(list_response(page.into_iter().map(location_json).collect(), pagination))
}

async fn location(State(state): State<Arc<MockState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mock = &state.bigledger;
    let data = match authenticate(&state, &headers) {
        Ok(data) => data,
        Err(response) => return response,
    };
    match data.places.iter().find(|p| p.id == id) {
        Some(place) => single_response(mock, location_json(place)),
        None => mock.error(StatusCode::NOT_FOUND, "NOT_FOUND", "Location not found", &[]),
    }
}

//! Trackstar's dialect: `x-trackstar-api-key` + `x-trackstar-access-token`,
//! deepObject filters (`entry_date[gte]=...`), strict `YYYY-MM-DDTHH:MM:SSZ`
//! dates, `limit` 1-1000, opaque `page_token`/`next_token`, 401/422 bodies as
//! documented. Entries come ordered by id, which is not entry_date order, as
//! a real Trackstar may. Each warehouse has bins (`/wms/warehouses/{id}/locations`,
//! `id, warehouse_id, name`); ledger rows and stock sit in a bin or in the
//! warehouse as a whole.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use rand::Rng;
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;

use super::fixtures::{self, MockOptions};
use super::MockState;
use crate::config::SourceConfig;
use crate::model::SourceKind;

pub const API_KEY: &str = "demo-trackstar-key";
pub const ACCESS_TOKEN: &str = "demo-trackstar-token";

pub const EVENT_TYPES: [&str; 7] =
    ["adjustment", "return_receipt", "inbound_receipt", "order_shipment", "supplier_return", "movement", "other"];
const DATE_FIELDS: [&str; 5] =
    ["created_date", "updated_date", "trackstar_created_date", "trackstar_updated_date", "entry_date"];
const MAX_LIMIT: usize = 1000;
const BINS_PER_WAREHOUSE: usize = 6;

pub fn source_config(base_url: Url) -> SourceConfig {
    SourceConfig {
        kind: SourceKind::Trackstar,
        base_url,
        credentials: BTreeMap::from([
            ("api_key".to_owned(), SecretString::from(API_KEY)),
            ("access_token".to_owned(), SecretString::from(ACCESS_TOKEN)),
        ]),
        forward: BTreeMap::from([("access_token".to_owned(), "x-trackstar-access-token".to_owned())]),
        http: super::http_config(),
        page_size: None,
        initial_window_secs: None,
        authority: None,
        scope: None,
    }
}

/// One ledger row as Trackstar sends it.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub entry_date: DateTime<Utc>,
    pub created_date: DateTime<Utc>,
    pub updated_date: DateTime<Utc>,
    pub item: usize,
    pub quantity: i64,
    pub event_type: &'static str,
    pub raw_event_type: Option<&'static str>,
    pub reason: Option<&'static str>,
    pub object: Option<(&'static str, String)>,
    pub warehouse: usize,
    /// Index of the bin inside the warehouse, when the row names one.
    pub bin: Option<usize>,
}

/// Some stock of an item: in a bin of a warehouse, or in the warehouse as a whole.
#[derive(Clone, Debug)]
pub struct Stock {
    pub warehouse: usize,
    pub bin: Option<usize>,
    pub quantity: i64,
}

#[derive(Clone, Debug)]
pub struct Item {
    pub id: String,
    pub sku: String,
    pub name: String,
    /// In cents, so the JSON number is exact.
    pub unit_cost_cents: i64,
    pub onhand: i64,
    pub committed: i64,
    pub stock: Vec<Stock>,
}

#[derive(Clone, Debug)]
pub struct Warehouse {
    pub id: String,
    pub name: String,
    pub bins: Vec<Bin>,
}

/// A bin (Trackstar calls it a location) inside a warehouse.
#[derive(Clone, Debug)]
pub struct Bin {
    pub id: String,
    pub name: String,
}

/// One tenant's (access token's) data.
#[derive(Clone, Debug)]
pub struct TenantData {
    pub items: Vec<Item>,
    pub warehouses: Vec<Warehouse>,
    /// Sorted by entry_date, for range filters.
    pub by_date: Vec<Arc<Row>>,
    /// Sorted by id: the order pages come in.
    pub by_id: Vec<Arc<Row>>,
}

impl TenantData {
    fn generate(options: &MockOptions, tenant: &str) -> Self {
        let mut rng = fixtures::rng(options, "trackstar", tenant);
        let warehouses: Vec<Warehouse> = fixtures::WAREHOUSE_NAMES
            .iter()
            .map(|name| {
                let id = format!("wh_{}", fixtures::hex_id(&mut rng, 10));
                let bins = (0..BINS_PER_WAREHOUSE)
                    .map(|n| Bin {
                        id: format!("loc_{}", fixtures::hex_id(&mut rng, 8)),
                        name: format!("{}-{:02}", char::from(b'A' + (n / 3) as u8), n % 3 + 1),
                    })
                    .collect();
                Warehouse { id, name: (*name).to_owned(), bins }
            })
            .collect();
        let items: Vec<Item> = (1..=300)
            .map(|n| {
                let stock: Vec<Stock> = (0..rng.random_range(1..=3))
                    .map(|_| Stock {
                        warehouse: rng.random_range(0..warehouses.len()),
                        bin: rng.random_bool(0.7).then(|| rng.random_range(0..BINS_PER_WAREHOUSE)),
                        quantity: rng.random_range(0..500),
                    })
                    .collect();
                let onhand = stock.iter().map(|s| s.quantity).sum::<i64>();
                Item {
                    id: format!("inv_{}", fixtures::hex_id(&mut rng, 12)),
                    sku: format!("SKU-{n:04}"),
                    name: fixtures::product_name(&mut rng, n),
                    unit_cost_cents: rng.random_range(50..50_000),
                    committed: rng.random_range(0..=onhand.max(1) / 4),
                    onhand,
                    stock,
                }
            })
            .collect();
        let mut rows: Vec<Row> = (0..options.entries).map(|_| random_row(&mut rng, options, items.len())).collect();
        // Bulk postings book several lines in the same second: ties in
        // entry_date are normal and must page cleanly.
        for i in 1..rows.len() {
            if rng.random_bool(0.1) {
                rows[i].entry_date = rows[i - 1].entry_date;
            }
        }
        let mut by_date: Vec<Arc<Row>> = rows.into_iter().map(Arc::new).collect();
        by_date.sort_by(|a, b| a.entry_date.cmp(&b.entry_date).then_with(|| a.id.cmp(&b.id)));
        let mut by_id = by_date.clone();
        by_id.sort_by(|a, b| a.id.cmp(&b.id));
        Self { items, warehouses, by_date, by_id }
    }
}

fn random_row(rng: &mut rand::rngs::SmallRng, options: &MockOptions, items: usize) -> Row {
    let entry_date = fixtures::instant_in_year(rng, options.anchor);
    let event_type = EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())];
    let magnitude = rng.random_range(1..=50);
    let outbound = matches!(event_type, "order_shipment" | "supplier_return")
        || (event_type != "inbound_receipt" && rng.random_bool(0.4));
    let object = match event_type {
        "order_shipment" => Some(("order", format!("ord_{}", fixtures::hex_id(rng, 8)))),
        "inbound_receipt" => Some(("inbound_shipment", format!("ibs_{}", fixtures::hex_id(rng, 8)))),
        "return_receipt" => Some(("return", format!("ret_{}", fixtures::hex_id(rng, 8)))),
        _ => None,
    };
    let raw_event_type = match event_type {
        "inbound_receipt" => Some("receipt_into_system"),
        "adjustment" => Some("cycle_count"),
        _ => None,
    };
    let reason = match event_type {
        "adjustment" => Some(["damaged", "cycle count", "found"][rng.random_range(0..3)]),
        _ => None,
    };
    let updated_date = entry_date + chrono::Duration::seconds(rng.random_range(0..86_400));
    Row {
        id: format!("led_{}", fixtures::hex_id(rng, 20)),
        entry_date,
        created_date: entry_date,
        updated_date,
        item: rng.random_range(0..items),
        quantity: if outbound { -magnitude } else { magnitude },
        event_type,
        raw_event_type,
        reason,
        object,
        warehouse: rng.random_range(0..fixtures::WAREHOUSE_NAMES.len()),
        bin: rng.random_bool(0.7).then(|| rng.random_range(0..BINS_PER_WAREHOUSE)),
    }
}

/// Tenants are created on first use, one per access token.
#[derive(Debug)]
pub struct TrackstarMock {
    options: MockOptions,
    tenants: Mutex<HashMap<String, Arc<TenantData>>>,
    /// Lookup routes told to fail, with the status they answer.
    faults: Mutex<HashMap<&'static str, StatusCode>>,
}

impl TrackstarMock {
    pub fn new(options: MockOptions) -> Self {
        Self { options, tenants: Mutex::default(), faults: Mutex::default() }
    }

    /// Makes every request to a lookup route (`inventory`, `warehouses`,
    /// `bins`) answer `status` with Trackstar's error body, until called
    /// again with `None`.
    pub fn fail(&self, route: &'static str, status: Option<StatusCode>) {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        match status {
            Some(status) => faults.insert(route, status),
            None => faults.remove(route),
        };
    }

    fn fault(&self, route: &str) -> Result<(), Response> {
        let faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        match faults.get(route) {
            Some(status) => Err(error(*status, json!({"error": "Injected failure", "origin": "trackstar"}))),
            None => Ok(()),
        }
    }

    /// Adds an entry dated `entry_date` to the ledger of `token`'s tenant,
    /// created and updated now (the mock's clock): a late or back-dated
    /// posting, as a change probe should find it. Returns its id.
    pub fn add_entry(&self, token: &str, entry_date: DateTime<Utc>) -> String {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let current = tenants
            .entry(token.to_owned())
            .or_insert_with(|| Arc::new(TenantData::generate(&self.options, token)))
            .clone();
        let mut data = (*current).clone();
        let mut row = (*data.by_id[0]).clone();
        row.id = format!("led_added{:012}", data.by_id.len());
        row.entry_date = entry_date;
        row.created_date = entry_date;
        row.updated_date = self.options.clock.now();
        let id = row.id.clone();
        let row = Arc::new(row);
        let at = data.by_date.partition_point(|r| (r.entry_date, &r.id) < (row.entry_date, &row.id));
        data.by_date.insert(at, row.clone());
        let at = data.by_id.partition_point(|r| r.id < row.id);
        data.by_id.insert(at, row);
        tenants.insert(token.to_owned(), Arc::new(data));
        id
    }

    pub fn tenant(&self, token: &str) -> Arc<TenantData> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.entry(token.to_owned()).or_insert_with(|| Arc::new(TenantData::generate(&self.options, token))).clone()
    }
}

pub fn router() -> Router<Arc<MockState>> {
    Router::new()
        .route("/wms/inventory/ledger", get(ledger))
        .route("/wms/inventory", get(inventory))
        .route("/wms/warehouses", get(warehouses))
        .route("/wms/warehouses/{id}/locations", get(bins))
}

/// A documented Trackstar error response.
fn error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, json!({"error": "Unauthorized", "origin": "trackstar"}))
}

fn invalid(field: &str, message: &str) -> Response {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"error": "Validation error", "detail": {"query": {field: [message]}}}),
    )
}

/// The tenant for a request's headers, or the 401 Trackstar sends.
fn authenticate(state: &MockState, headers: &HeaderMap) -> Result<Arc<TenantData>, Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    match (header("x-trackstar-api-key"), header("x-trackstar-access-token")) {
        (Some(API_KEY), Some(token)) => Ok(state.trackstar.tenant(token)),
        _ => Err(unauthorized()),
    }
}

/// A parsed `field[op]=value` condition.
#[derive(Debug)]
struct Condition {
    field: String,
    op: String,
    value: String,
}

#[derive(Debug, Default)]
struct LedgerQuery {
    conditions: Vec<Condition>,
    limit: usize,
    after_id: Option<String>,
}

fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    // Exactly YYYY-MM-DDTHH:MM:SSZ: no fractions, no offsets.
    (value.len() == 20).then_some(())?;
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ").ok().map(|d| d.and_utc())
}

fn parse_query(raw: Option<&str>) -> Result<LedgerQuery, Response> {
    let mut query = LedgerQuery { limit: MAX_LIMIT, ..Default::default() };
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| invalid("limit", "ensure this value is between 1 and 1000"))?
            }
            "page_token" => {
                let decoded = URL_SAFE_NO_PAD.decode(value.as_bytes()).ok().and_then(|b| String::from_utf8(b).ok());
                let id = decoded.and_then(|d| d.strip_prefix("after:").map(str::to_owned));
                query.after_id = Some(id.ok_or_else(|| invalid("page_token", "invalid page token"))?);
            }
            _ => query.conditions.push(parse_condition(&key, &value)?),
        }
    }
    Ok(query)
}

fn parse_condition(key: &str, value: &str) -> Result<Condition, Response> {
    let (field, op) = match key.split_once('[') {
        Some((field, rest)) => (field, rest.strip_suffix(']').ok_or_else(|| invalid(key, "malformed parameter"))?),
        None => (key, "eq"),
    };
    let date_ops = ["eq", "neq", "gt", "gte", "lt", "lte", "in", "nin"];
    let allowed: &[&str] = match field {
        f if DATE_FIELDS.contains(&f) => &date_ops,
        "ids" => &["in"],
        "event_type" | "warehouse_customer_id" => &["eq", "neq", "in", "nin", "contains", "not_contains"],
        _ => return Err(invalid(field, "unknown field")),
    };
    if !allowed.contains(&op) {
        return Err(invalid(field, &format!("unsupported operator {op}")));
    }
    let values = || value.split(',');
    if DATE_FIELDS.contains(&field) && values().any(|v| parse_date(v).is_none()) {
        return Err(invalid(field, "date must be formatted YYYY-MM-DDTHH:MM:SSZ"));
    }
    if field == "event_type" && matches!(op, "eq" | "neq" | "in" | "nin") && values().any(|v| !EVENT_TYPES.contains(&v))
    {
        return Err(invalid(field, "not a valid event type"));
    }
    Ok(Condition { field: field.to_owned(), op: op.to_owned(), value: value.to_owned() })
}

fn field_value(row: &Row, field: &str) -> String {
    match field {
        "created_date" | "trackstar_created_date" => row.created_date.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "updated_date" | "trackstar_updated_date" => row.updated_date.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "entry_date" => row.entry_date.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "event_type" => row.event_type.to_owned(),
        "ids" => row.id.clone(),
        _ => String::new(),
    }
}

fn holds(row: &Row, condition: &Condition) -> bool {
    let actual = field_value(row, &condition.field);
    let value = condition.value.as_str();
    // Same-format UTC timestamps compare correctly as strings.
    match condition.op.as_str() {
        "eq" => actual == value,
        "neq" => actual != value,
        "gt" => actual.as_str() > value,
        "gte" => actual.as_str() >= value,
        "lt" => actual.as_str() < value,
        "lte" => actual.as_str() <= value,
        "in" => value.split(',').any(|v| v == actual),
        "nin" => !value.split(',').any(|v| v == actual),
        "contains" => actual.contains(value),
        "not_contains" => !actual.contains(value),
        _ => false,
    }
}

/// The rows an entry_date range selects, via the date index.
fn date_slice<'a>(data: &'a TenantData, conditions: &[Condition]) -> &'a [Arc<Row>] {
    let mut low = Bound::Unbounded;
    let mut high = Bound::Unbounded;
    for c in conditions.iter().filter(|c| c.field == "entry_date") {
        let Some(at) = parse_date(&c.value) else { continue };
        match c.op.as_str() {
            "gte" | "gt" => low = Bound::Included(at),
            "lte" | "lt" => high = Bound::Included(at),
            _ => {}
        }
    }
    let start = match low {
        Bound::Included(at) => data.by_date.partition_point(|r| r.entry_date < at),
        _ => 0,
    };
    let end = match high {
        Bound::Included(at) => data.by_date.partition_point(|r| r.entry_date <= at),
        _ => data.by_date.len(),
    };
    &data.by_date[start..end.max(start)]
}

async fn ledger(State(state): State<Arc<MockState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let data = match authenticate(&state, &headers) {
        Ok(data) => data,
        Err(response) => return response,
    };
    let mut query = match parse_query(raw.as_deref()) {
        Ok(query) => query,
        Err(response) => return response,
    };
    // `ids[in]` overrides every other filter, as documented.
    if let Some(ids) = query.conditions.iter().position(|c| c.field == "ids") {
        query.conditions = vec![query.conditions.swap_remove(ids)];
    }
    let after = query.after_id.as_deref().unwrap_or("");
    let candidates = date_slice(&data, &query.conditions);
    let matches = |row: &&Arc<Row>| row.id.as_str() > after && query.conditions.iter().all(|c| holds(row, c));
    // Narrow ranges: sort the slice by id. Wide ones: walk the id index.
    let mut page: Vec<&Arc<Row>> = if candidates.len() * 4 < data.by_id.len() {
        let mut rows: Vec<&Arc<Row>> = candidates.iter().filter(matches).collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows.truncate(query.limit + 1);
        rows
    } else {
        data.by_id.iter().filter(matches).take(query.limit + 1).collect()
    };
    let next_token = (page.len() > query.limit).then(|| {
        page.truncate(query.limit);
        URL_SAFE_NO_PAD.encode(format!("after:{}", page[page.len() - 1].id))
    });
    let rows: Vec<Value> = page.iter().map(|row| row_json(&data, row)).collect();
    Json(json!({ "data": rows, "next_token": next_token, "total_count": rows.len() })).into_response()
}

fn row_json(data: &TenantData, row: &Row) -> Value {
    let item = &data.items[row.item];
    let warehouse = &data.warehouses[row.warehouse];
    let date = |d: DateTime<Utc>| d.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    json!({
        "id": row.id,
        "created_date": date(row.created_date),
        "updated_date": date(row.updated_date),
        "entry_date": date(row.entry_date),
        "inventory_item_id": item.id,
        "sku": item.sku,
        "quantity": row.quantity,
        "raw_event_type": row.raw_event_type,
        "event_type": row.event_type,
        "reason": row.reason,
        "object_id": row.object.as_ref().map(|(_, id)| id),
        "object_type": row.object.as_ref().map(|(kind, _)| kind),
        "warehouse_id": warehouse.id,
        "location_id": row.bin.map(|b| &warehouse.bins[b].id),
        "additional_fields": {"item_name": item.name},
        "trackstar_created_date": date(row.created_date),
        "trackstar_updated_date": date(row.updated_date),
    })
}

/// A list endpoint over `rows` (id, JSON), sorted by id: `ids[in]`,
/// `limit`, `page_token`.
fn list(rows: Vec<(&str, Value)>, raw: Option<&str>) -> Response {
    let query = match parse_query(raw) {
        Ok(query) => query,
        Err(response) => return response,
    };
    if let Some(c) = query.conditions.iter().find(|c| c.field != "ids") {
        return invalid(&c.field, "unknown field");
    }
    let wanted: Option<Vec<&str>> = query.conditions.first().map(|c| c.value.split(',').collect());
    let after = query.after_id.as_deref().unwrap_or("");
    let mut page: Vec<(&str, Value)> = rows
        .into_iter()
        .filter(|(id, _)| *id > after && wanted.as_ref().is_none_or(|w| w.contains(id)))
        .take(query.limit + 1)
        .collect();
    let next_token = (page.len() > query.limit).then(|| {
        page.truncate(query.limit);
        URL_SAFE_NO_PAD.encode(format!("after:{}", page[page.len() - 1].0))
    });
    let data: Vec<Value> = page.into_iter().map(|(_, v)| v).collect();
    Json(json!({ "data": data, "next_token": next_token, "total_count": data.len() })).into_response()
}

async fn inventory(State(state): State<Arc<MockState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let data = match authenticate(&state, &headers).and_then(|data| state.trackstar.fault("inventory").map(|()| data)) {
        Ok(data) => data,
        Err(response) => return response,
    };
    let mut items: Vec<&Item> = data.items.iter().collect();
    items.sort_by(|a, b| a.id.cmp(&b.id));
    let rows = items.into_iter().map(|item| (item.id.as_str(), item_json(&data, item))).collect();
    list(rows, raw.as_deref())
}

fn item_json(data: &TenantData, item: &Item) -> Value {
    let cost = serde_json::Number::from_f64(item.unit_cost_cents as f64 / 100.0).map_or(Value::Null, Value::Number);
    let locations: Vec<Value> = item
        .stock
        .iter()
        .map(|s| {
            let warehouse = &data.warehouses[s.warehouse];
            let bin = s.bin.map(|b| &warehouse.bins[b].id);
            json!({"location_id": bin, "warehouse_id": warehouse.id, "quantity": s.quantity})
        })
        .collect();
    let mut by_warehouse = serde_json::Map::new();
    for s in &item.stock {
        let onhand =
            by_warehouse.entry(data.warehouses[s.warehouse].id.clone()).or_insert_with(|| json!({"onhand": 0}));
        onhand["onhand"] = json!(onhand["onhand"].as_i64().unwrap_or(0) + s.quantity);
    }
    json!({
        "id": item.id,
        "sku": item.sku,
        "name": item.name,
        "active": true,
        "unit_cost": cost,
        "onhand": item.onhand,
        "committed": item.committed,
        "fulfillable": item.onhand - item.committed,
        "sellable": item.onhand - item.committed,
        "awaiting": 0,
        "inventory_by_warehouse_id": by_warehouse,
        "locations": locations,
        "created_date": "2024-01-01T00:00:00Z",
        "updated_date": "2024-06-01T00:00:00Z",
    })
}

async fn warehouses(State(state): State<Arc<MockState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let data = match authenticate(&state, &headers).and_then(|data| state.trackstar.fault("warehouses").map(|()| data))
    {
        Ok(data) => data,
        Err(response) => return response,
    };
    let mut warehouses: Vec<&Warehouse> = data.warehouses.iter().collect();
    warehouses.sort_by(|a, b| a.id.cmp(&b.id));
    let rows = warehouses
        .into_iter()
        .map(|w| {
            let code: String = w.name.split_whitespace().map(|p| p.chars().take(3).collect::<String>()).collect::<String>().to_uppercase();
            let city = w.name.split_whitespace().next().unwrap_or_default();
            let body = json!({
                "id": w.id,
                "name": w.name,
                "code": code,
                "address": {"address1": "1 Logistics Way", "address2": null, "city": city, "state": null, "postal_code": "10001", "country": "EU"},
                "created_date": "2024-01-01T00:00:00Z",
                "updated_date": "2024-06-01T00:00:00Z",
            });
            (w.id.as_str(), body)
        })
        .collect();
    list(rows, raw.as_deref())
}

/// The bins of one warehouse; 404 for a warehouse the tenant does not have.
async fn bins(
    State(state): State<Arc<MockState>>,
    Path(warehouse): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let data = match authenticate(&state, &headers).and_then(|data| state.trackstar.fault("bins").map(|()| data)) {
        Ok(data) => data,
        Err(response) => return response,
    };
    let Some(warehouse) = data.warehouses.iter().find(|w| w.id == warehouse) else {
        return error(StatusCode::NOT_FOUND, json!({"error": "Warehouse not found", "origin": "trackstar"}));
    };
    let mut bins: Vec<&Bin> = warehouse.bins.iter().collect();
    bins.sort_by(|a, b| a.id.cmp(&b.id));
    let rows = bins
        .into_iter()
        .map(|b| (b.id.as_str(), json!({"id": b.id, "warehouse_id": warehouse.id, "name": b.name})))
        .collect();
    list(rows, raw.as_deref())
}

//! Business Central's dialect (API v2.0) under `/business-central/`:
//! `/business-central/v2.0/{tenant}/{env}/api/v2.0/companies({id})/…` (or
//! `companies(name='…')`), `Authorization: Bearer`, and a strict OData
//! subset: `$filter` (`eq ne gt ge lt le and or in`, typed literals, `or`
//! only within one field), `$orderby`, `$top`, `$skip`, `$count`,
//! `$select`, `Prefer: odata.maxpagesize` with opaque `$skiptoken`
//! nextLinks, entities by id, BC's error bodies. Enum members come
//! XmlConvert-escaped, decimals as JSON numbers (some with many digits),
//! posting dates in bursts of many entries per day, and entry numbers that
//! do not follow posting dates (backdated postings), as a real BC's do.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use rand::rngs::SmallRng;
use rand::Rng;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;
use url::Url;

use super::fixtures::{self, MockOptions};
use super::{entra, MockState};
use crate::config::SourceConfig;
use crate::model::SourceKind;

/// The demo tenant's data set; also a token the mock always accepts for it
/// (a static token, for short tests). The demo signs in for tokens instead.
pub const TOKEN: &str = "demo-business-central-token";
/// Any token with this prefix is accepted and gets a tenant of its own.
pub const TENANT_TOKEN_PREFIX: &str = "bc-tenant-";
pub const TENANT: &str = "3c7d1e58-5c1b-4d8e-9a41-6f0d2b9e7a10";
pub const ENVIRONMENT: &str = "production";
pub const COMPANY_ID: &str = "f03f6225-081c-ec11-bb77-000d3abcd65f";
pub const COMPANY_NAME: &str = "CRONUS International Ltd.";
/// BC's cap on entities in one response.
pub const SERVER_PAGE_SIZE: usize = 20_000;

/// `(member, as BC's OData writes it)`, written out by hand so the
/// connector's encoder is checked against them, not against itself.
pub const ENTRY_TYPES: [(&str, &str); 10] = [
    ("Purchase", "Purchase"),
    ("Sale", "Sale"),
    ("Positive Adjmt.", "Positive_x0020_Adjmt_x002E_"),
    ("Negative Adjmt.", "Negative_x0020_Adjmt_x002E_"),
    ("Transfer", "Transfer"),
    ("Consumption", "Consumption"),
    ("Output", "Output"),
    (" ", "_x0020_"),
    ("Assembly Consumption", "Assembly_x0020_Consumption"),
    ("Assembly Output", "Assembly_x0020_Output"),
];
pub const DOCUMENT_TYPES: [(&str, &str); 18] = [
    (" ", "_x0020_"),
    ("Sales Shipment", "Sales_x0020_Shipment"),
    ("Sales Invoice", "Sales_x0020_Invoice"),
    ("Sales Return Receipt", "Sales_x0020_Return_x0020_Receipt"),
    ("Sales Credit Memo", "Sales_x0020_Credit_x0020_Memo"),
    ("Purchase Receipt", "Purchase_x0020_Receipt"),
    ("Purchase Invoice", "Purchase_x0020_Invoice"),
    ("Purchase Return Shipment", "Purchase_x0020_Return_x0020_Shipment"),
    ("Purchase Credit Memo", "Purchase_x0020_Credit_x0020_Memo"),
    ("Transfer Shipment", "Transfer_x0020_Shipment"),
    ("Transfer Receipt", "Transfer_x0020_Receipt"),
    ("Service Shipment", "Service_x0020_Shipment"),
    ("Service Invoice", "Service_x0020_Invoice"),
    ("Service Credit Memo", "Service_x0020_Credit_x0020_Memo"),
    ("Posted Assembly", "Posted_x0020_Assembly"),
    ("Inventory Receipt", "Inventory_x0020_Receipt"),
    ("Inventory Shipment", "Inventory_x0020_Shipment"),
    ("Direct Transfer", "Direct_x0020_Transfer"),
];
pub const SOURCE_TYPES: [(&str, &str); 4] =
    [(" ", "_x0020_"), ("Customer", "Customer"), ("Vendor", "Vendor"), ("Item", "Item")];
const ITEM_TYPES: [(&str, &str); 3] =
    [("Inventory", "Inventory"), ("Service", "Service"), ("Non-Inventory", "Non_x002D_Inventory")];

/// A source config pointing at this dialect under `root` (the mock's
/// `/business-central/`), signing in as the demo app at `authority` (the
/// mock's `/entra/`).
pub fn source_config(root: Url, authority: Url) -> SourceConfig {
    let company = format!("v2.0/{TENANT}/{ENVIRONMENT}/api/v2.0/companies({COMPANY_ID})/");
    let credentials = [("tenant_id", TENANT), ("client_id", entra::CLIENT_ID), ("client_secret", entra::CLIENT_SECRET)];
    SourceConfig {
        kind: SourceKind::BusinessCentral,
        base_url: root.join(&company).expect("static path joins"),
        credentials: credentials.map(|(field, value)| (field.to_owned(), SecretString::from(value))).into(),
        forward: [("token".to_owned(), "x-business-central-token".to_owned())].into(),
        http: super::http_config(),
        page_size: None,
        initial_window_secs: None,
        authority: Some(authority),
        scope: None,
    }
}

/// One item ledger entry, typed. Enum fields hold member names (plain).
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: String,
    pub entry_number: i64,
    pub item: usize,
    /// `None`: BC's blank date, sent as `0001-01-01`.
    pub posting_date: Option<NaiveDate>,
    pub entry_type: &'static str,
    pub document_type: &'static str,
    pub document_number: String,
    pub source_type: &'static str,
    pub source_number: String,
    pub description: String,
    pub quantity: Decimal,
    pub sales_amount: Decimal,
    pub cost_amount: Decimal,
    pub last_modified: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Item {
    pub id: String,
    pub number: String,
    pub display_name: String,
    pub blocked: bool,
    pub gtin: String,
    pub inventory: Decimal,
    pub unit_price: Decimal,
    pub unit_cost: Decimal,
    pub unit: &'static str,
}

#[derive(Clone, Debug)]
pub struct Location {
    pub id: String,
    pub code: &'static str,
    pub display_name: String,
    pub city: &'static str,
    pub postal_code: String,
}

/// One tenant's (token's) data, typed for tests and as rows for OData.
#[derive(Debug)]
pub struct TenantData {
    /// In entry number order.
    pub entries: Vec<Entry>,
    pub items: Vec<Item>,
    pub locations: Vec<Location>,
    ledger_rows: Vec<Row>,
    item_rows: Vec<Row>,
    location_rows: Vec<Row>,
}

/// `(entry type, document type, goods leave, source type, document prefix)`.
const MOVEMENTS: [(&str, &str, bool, &str, &str); 20] = [
    ("Purchase", "Purchase Receipt", false, "Vendor", "PR"),
    ("Purchase", "Purchase Receipt", false, "Vendor", "PR"),
    ("Purchase", "Purchase Invoice", false, "Vendor", "PI"),
    ("Purchase", "Purchase Return Shipment", true, "Vendor", "PRS"),
    ("Purchase", "Purchase Credit Memo", true, "Vendor", "PCM"),
    // An item journal purchase correction: only the sign tells.
    ("Purchase", " ", true, "Vendor", "PJ"),
    ("Sale", "Sales Shipment", true, "Customer", "SS"),
    ("Sale", "Sales Shipment", true, "Customer", "SS"),
    ("Sale", "Sales Invoice", true, "Customer", "SI"),
    ("Sale", "Sales Return Receipt", false, "Customer", "SRR"),
    ("Sale", "Sales Credit Memo", false, "Customer", "SCM"),
    ("Sale", "Service Shipment", true, "Customer", "SVS"),
    ("Positive Adjmt.", " ", false, " ", "ADJ"),
    ("Negative Adjmt.", " ", true, " ", "ADJ"),
    ("Transfer", "Transfer Shipment", true, " ", "TS"),
    ("Transfer", "Transfer Receipt", false, " ", "TR"),
    ("Consumption", " ", true, " ", "PO"),
    ("Output", " ", false, " ", "PO"),
    ("Assembly Consumption", "Posted Assembly", true, " ", "ASM"),
    ("Assembly Output", "Posted Assembly", false, " ", "ASM"),
];

/// CRONUS's locations: codes with dots and blanks exercise quoting.
const LOCATIONS: [(&str, &str, &str); 8] = [
    ("BLUE", "Blue Warehouse", "Atlanta"),
    ("GREEN", "Green Warehouse", "Chicago"),
    ("MAIN", "Main Warehouse", "Miami"),
    ("RED", "Red Warehouse", "Boston"),
    ("SILVER", "Silver Warehouse", "Denver"),
    ("WHITE", "White Warehouse", "Seattle"),
    ("YELLOW", "Yellow Warehouse", "Austin"),
    ("OUT. LOG.", "Outsourced Logistics", "Dallas"),
];

/// Item numbers a filter must quote correctly to match.
pub const AWKWARD_ITEM_NUMBERS: [&str; 2] = ["O'NEIL-7", "A&B+10 #2"];

impl TenantData {
    fn generate(options: &MockOptions, tenant: &str) -> Self {
        let mut rng = fixtures::rng(options, "business-central", tenant);
        let items = generate_items(&mut rng);
        let locations = LOCATIONS
            .iter()
            .map(|(code, name, city)| Location {
                id: fixtures::guid(&mut rng),
                code,
                display_name: (*name).to_owned(),
                city,
                postal_code: format!("{:05}", rng.random_range(10_000..99_999)),
            })
            .collect();
        let entries = generate_entries(&mut rng, options, &items);
        let ledger_rows = entries.iter().map(|e| ledger_row(e, &items)).collect();
        let item_rows = items.iter().map(item_row).collect();
        let location_rows = LOCATIONS.iter().zip(&locations).map(|(_, l)| location_row(l)).collect();
        Self { entries, items, locations, ledger_rows, item_rows, location_rows }
    }
}

fn generate_items(rng: &mut SmallRng) -> Vec<Item> {
    let mut numbers: Vec<String> = (1..=118)
        .map(|n| {
            if n % 3 == 0 {
                format!("{}", 70_000 + n * 10)
            } else {
                format!("{}-{}", 1000 + n * 7, ["S", "W"][n % 2])
            }
        })
        .collect();
    numbers.extend(AWKWARD_ITEM_NUMBERS.map(str::to_owned));
    numbers
        .into_iter()
        .enumerate()
        .map(|(n, number)| Item {
            id: fixtures::guid(rng),
            display_name: fixtures::product_name(rng, n + 1),
            blocked: rng.random_bool(0.05),
            gtin: if rng.random_bool(0.7) {
                format!("{:013}", rng.random_range(0..10_000_000_000_000u64))
            } else {
                String::new()
            },
            inventory: Decimal::new(rng.random_range(0..50_000), 1),
            unit_price: Decimal::new(rng.random_range(100..500_000), 2),
            unit_cost: Decimal::new(rng.random_range(10_000..50_000_000), 5),
            unit: ["PCS", "BOX", "KG"][rng.random_range(0..3)],
            number,
        })
        .collect()
}

/// Posting days walking back from the anchor, each with a burst of
/// entries; entry numbers follow posting order, and some postings are
/// backdated, so they do not follow posting dates.
fn generate_entries(rng: &mut SmallRng, options: &MockOptions, items: &[Item]) -> Vec<Entry> {
    let blank = if options.entries >= 50 { 2 } else { 0 };
    let mut days: Vec<Option<NaiveDate>> = vec![None; blank];
    let mut day = options.anchor.date_naive();
    while days.len() < options.entries {
        day = day - Days::new(rng.random_range(1..=4));
        let burst = rng.random_range(1..=24).min(options.entries - days.len());
        days.extend(std::iter::repeat_n(Some(day), burst));
    }
    days.sort();
    let mut posted: Vec<(usize, Option<NaiveDate>)> = days
        .into_iter()
        .enumerate()
        .map(|(i, day)| (i * 10 + if rng.random_bool(0.1) { rng.random_range(10..2000) } else { 0 }, day))
        .collect();
    posted.sort();
    posted.into_iter().enumerate().map(|(n, (_, day))| random_entry(rng, n, day, items)).collect()
}

fn random_entry(rng: &mut SmallRng, n: usize, posting_date: Option<NaiveDate>, items: &[Item]) -> Entry {
    let (entry_type, document_type, outbound, source_type, prefix) = match posting_date {
        None => (" ", " ", false, " ", "START"),
        Some(_) => MOVEMENTS[rng.random_range(0..MOVEMENTS.len())],
    };
    let item = match n % 50 {
        7 => items.len() - 2,
        13 => items.len() - 1,
        _ => rng.random_range(0..items.len()),
    };
    let magnitude = match rng.random_range(0..20) {
        0..=13 => Decimal::from(rng.random_range(1..=40)),
        14..=17 => Decimal::new(rng.random_range(1..=400), 1),
        _ => Decimal::new(rng.random_range(1..=40_000), 3),
    };
    let quantity = if outbound { -magnitude } else { magnitude };
    let entry_number = n as i64 + 1;
    let cost_amount = if entry_number % 37 == 0 {
        // Beyond what an f64 holds exactly.
        Decimal::from_i128_with_scale(rng.random_range(10i128.pow(22)..10i128.pow(23)), 9)
    } else {
        quantity * items[item].unit_cost
    };
    let sales_amount = if entry_type == "Sale" { -quantity * items[item].unit_price } else { Decimal::ZERO };
    let posted = posting_date.unwrap_or(NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default());
    let last_modified = posted.and_time(NaiveTime::MIN).and_utc()
        + chrono::Duration::seconds(rng.random_range(6 * 3600..48 * 3600))
        + chrono::Duration::nanoseconds(rng.random_range(0..10_000_000) * 100);
    let source_number = match source_type {
        "Vendor" | "Customer" => format!("{}", 10_000 + 10 * rng.random_range(0..50)),
        _ => String::new(),
    };
    let document_number = match prefix {
        "START" => "START-MANF".to_owned(),
        _ => format!("{prefix}-{:06}", rng.random_range(100_000..999_999)),
    };
    let description = if rng.random_bool(0.8) { items[item].display_name.clone() } else { String::new() };
    Entry {
        id: fixtures::guid(rng),
        entry_number,
        item,
        posting_date,
        entry_type,
        document_type,
        document_number,
        source_type,
        source_number,
        description,
        quantity,
        sales_amount,
        cost_amount,
        last_modified,
    }
}

/// Tenants are created on first use, one per token.
#[derive(Debug)]
pub struct BusinessCentralMock {
    options: MockOptions,
    tenants: Mutex<HashMap<String, Arc<TenantData>>>,
    faults: Mutex<VecDeque<Fault>>,
}

/// A failure to answer instead of the next request.
#[derive(Clone, Debug)]
pub struct Fault {
    pub status: StatusCode,
    pub retry_after_secs: Option<u64>,
}

impl BusinessCentralMock {
    pub fn new(options: MockOptions) -> Self {
        Self { options, tenants: Mutex::default(), faults: Mutex::default() }
    }

    pub fn tenant(&self, token: &str) -> Arc<TenantData> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.entry(token.to_owned()).or_insert_with(|| Arc::new(TenantData::generate(&self.options, token))).clone()
    }

    /// Answers the next `times` requests with `fault` and BC's error body.
    pub fn fail_next(&self, fault: Fault, times: usize) {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        faults.extend(std::iter::repeat_n(fault, times));
    }

    fn take_fault(&self) -> Option<Fault> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }
}

pub fn router() -> Router<Arc<MockState>> {
    let company = "/v2.0/{tenant}/{env}/api/v2.0/{company}";
    Router::new()
        .route(&format!("{company}/itemLedgerEntries"), get(ledger))
        .route(&format!("{company}/items"), get(items))
        .route(&format!("{company}/locations"), get(locations))
        .route(&format!("{company}/{{entity}}"), get(by_key))
}

// ---- errors ----------------------------------------------------------------

static CORRELATION: AtomicU64 = AtomicU64::new(1);

/// BC's error response: `{"error": {"code", "message"}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let correlation = format!("00000000-0000-4000-8000-{:012x}", CORRELATION.fetch_add(1, AtomicOrdering::Relaxed));
    let body =
        serde_json::json!({"error": {"code": code, "message": format!("{message}  CorrelationId:  {correlation}.")}});
    (status, axum::Json(body)).into_response()
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn syntax_error() -> Response {
    error(StatusCode::BAD_REQUEST, "BadRequest_NotFound", "Bad Request - Error in query syntax.")
}

fn not_found(message: &str) -> Response {
    error(StatusCode::NOT_FOUND, "BadRequest_NotFound", message)
}

fn fault_response(fault: &Fault) -> Response {
    let (code, message) = match fault.status.as_u16() {
        400 => ("BadRequest_NotFound", "Bad Request - Error in query syntax."),
        401 => ("Authentication_InvalidCredentials", "The server has rejected the client credentials."),
        408 => ("RequestTimeout", "The operation has timed out."),
        429 => ("Application_TooManyRequests", "Too many requests reached. Actual (101). Maximum (100)."),
        504 => ("GatewayTimeout", "The request timed out."),
        _ => ("Internal_ServerError", "An unexpected error occurred."),
    };
    let mut response = error(fault.status, code, message);
    if let Some(secs) = fault.retry_after_secs {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

// ---- request checks ---------------------------------------------------------

/// The tenant for a request's token, or BC's 401: a live token the mock's
/// Entra ID issued, or one of the fixed test tokens.
fn authenticate(state: &MockState, headers: &HeaderMap) -> Result<Arc<TenantData>, Response> {
    let fixed = |t: &str| t == TOKEN || (t.starts_with(TENANT_TOKEN_PREFIX) && t.len() > TENANT_TOKEN_PREFIX.len());
    let data = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| state.entra.live(t).or(fixed(t).then_some(t)));
    match data {
        Some(data) => Ok(state.business_central.tenant(data)),
        None => {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "Authentication_InvalidCredentials",
                "The server has rejected the client credentials.",
            );
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(response)
        }
    }
}

/// `companies(<id>)` or `companies(name='<name>')` naming the demo company.
fn check_company(segment: &str) -> Result<(), Response> {
    let inner = segment.strip_prefix("companies(").and_then(|s| s.strip_suffix(')'));
    let known = match inner {
        Some(name) if name.starts_with("name=") => {
            unquote(&name["name=".len()..]).is_some_and(|name| name == COMPANY_NAME)
        }
        Some(id) => id.eq_ignore_ascii_case(COMPANY_ID),
        None => false,
    };
    known.then_some(()).ok_or_else(|| not_found("Resource not found for the segment 'companies'."))
}

/// The text of a whole single-quoted literal, quotes undoubled.
fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// Everything a request needs before it can be answered.
struct Request {
    data: Arc<TenantData>,
    /// `http://host`, for nextLinks.
    origin: String,
    /// `http://host/…/api/v2.0/`, for contexts.
    service_root: String,
}

fn admit(state: &MockState, headers: &HeaderMap, path: (&str, &str, &str)) -> Result<Request, Response> {
    if let Some(fault) = state.business_central.take_fault() {
        return Err(fault_response(&fault));
    }
    let data = authenticate(state, headers)?;
    let (tenant, env, company) = path;
    check_company(company)?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let origin = format!("http://{host}");
    let service_root = format!("{origin}/business-central/v2.0/{tenant}/{env}/api/v2.0/");
    Ok(Request { data, origin, service_root })
}

// ---- entity sets -----------------------------------------------------------

/// A field's OData type, for type checks and ordering.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Int,
    Dec,
    Date,
    DateTime,
    Guid,
    Bool,
    Enum(&'static [(&'static str, &'static str)]),
}

impl Kind {
    fn edm(self) -> &'static str {
        match self {
            Kind::Str | Kind::Enum(_) => "Edm.String",
            Kind::Int => "Edm.Int32",
            Kind::Dec => "Edm.Decimal",
            Kind::Date => "Edm.Date",
            Kind::DateTime => "Edm.DateTimeOffset",
            Kind::Guid => "Edm.Guid",
            Kind::Bool => "Edm.Boolean",
        }
    }
}

/// A value of one field of one row.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Str(String),
    Int(i64),
    Dec(Decimal),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Guid(String),
    Bool(bool),
    /// The member as BC's OData writes it.
    Enum(&'static str),
}

impl Val {
    fn compare(&self, other: &Val) -> Option<Ordering> {
        match (self, other) {
            (Val::Str(a), Val::Str(b)) | (Val::Guid(a), Val::Guid(b)) => Some(a.cmp(b)),
            (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
            (Val::Dec(a), Val::Dec(b)) => Some(a.cmp(b)),
            (Val::Date(a), Val::Date(b)) => Some(a.cmp(b)),
            (Val::DateTime(a), Val::DateTime(b)) => Some(a.cmp(b)),
            (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
            (Val::Enum(a), Val::Enum(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Str(s) | Val::Guid(s) => serializer.serialize_str(s),
            Val::Int(n) => serializer.serialize_i64(*n),
            // A JSON number with exactly the decimal's digits.
            Val::Dec(d) => {
                RawValue::from_string(d.to_string()).map_err(serde::ser::Error::custom)?.serialize(serializer)
            }
            Val::Date(d) => serializer.serialize_str(&d.format("%Y-%m-%d").to_string()),
            Val::DateTime(t) => serializer.serialize_str(&datetime_text(*t)),
            Val::Bool(b) => serializer.serialize_bool(*b),
            Val::Enum(e) => serializer.serialize_str(e),
        }
    }
}

/// BC's timestamp form: as many fractional digits as needed, no more.
fn datetime_text(at: DateTime<Utc>) -> String {
    let fraction = format!("{:09}", at.timestamp_subsec_nanos());
    let fraction = fraction.trim_end_matches('0');
    let dot = if fraction.is_empty() { "" } else { "." };
    format!("{}{dot}{fraction}Z", at.format("%Y-%m-%dT%H:%M:%S"))
}

/// One entity: values in the order of its set's fields.
#[derive(Debug)]
struct Row {
    etag: String,
    values: Vec<Val>,
}

struct EntitySet {
    /// As in URLs (`itemLedgerEntries`).
    name: &'static str,
    /// As in messages (`itemLedgerEntry`).
    singular: &'static str,
    fields: &'static [(&'static str, Kind)],
    /// The key every order ends with, so paging is stable.
    key: &'static str,
}

impl EntitySet {
    fn field(&self, name: &str) -> Result<(usize, Kind), Response> {
        self.fields.iter().position(|(f, _)| *f == name).map(|i| (i, self.fields[i].1)).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "BadRequest_NotFound",
                &format!("Could not find a property named '{name}' on type 'Microsoft.NAV.{}'.", self.singular),
            )
        })
    }
}

const LEDGER: EntitySet = EntitySet {
    name: "itemLedgerEntries",
    singular: "itemLedgerEntry",
    fields: &[
        ("id", Kind::Guid),
        ("entryNumber", Kind::Int),
        ("itemNumber", Kind::Str),
        ("postingDate", Kind::Date),
        ("entryType", Kind::Enum(&ENTRY_TYPES)),
        ("sourceNumber", Kind::Str),
        ("sourceType", Kind::Enum(&SOURCE_TYPES)),
        ("documentNumber", Kind::Str),
        ("documentType", Kind::Enum(&DOCUMENT_TYPES)),
        ("description", Kind::Str),
        ("quantity", Kind::Dec),
        ("salesAmountActual", Kind::Dec),
        ("costAmountActual", Kind::Dec),
        ("lastModifiedDateTime", Kind::DateTime),
    ],
    key: "entryNumber",
};

const ITEMS: EntitySet = EntitySet {
    name: "items",
    singular: "item",
    fields: &[
        ("id", Kind::Guid),
        ("number", Kind::Str),
        ("displayName", Kind::Str),
        ("type", Kind::Enum(&ITEM_TYPES)),
        ("itemCategoryCode", Kind::Str),
        ("blocked", Kind::Bool),
        ("gtin", Kind::Str),
        ("inventory", Kind::Dec),
        ("unitPrice", Kind::Dec),
        ("unitCost", Kind::Dec),
        ("baseUnitOfMeasureCode", Kind::Str),
        ("lastModifiedDateTime", Kind::DateTime),
    ],
    key: "number",
};

const LOCATION_SET: EntitySet = EntitySet {
    name: "locations",
    singular: "location",
    fields: &[
        ("id", Kind::Guid),
        ("code", Kind::Str),
        ("displayName", Kind::Str),
        ("contact", Kind::Str),
        ("addressLine1", Kind::Str),
        ("addressLine2", Kind::Str),
        ("city", Kind::Str),
        ("state", Kind::Str),
        ("country", Kind::Str),
        ("postalCode", Kind::Str),
        ("phoneNumber", Kind::Str),
        ("email", Kind::Str),
        ("website", Kind::Str),
        ("lastModifiedDateTime", Kind::DateTime),
    ],
    key: "code",
};

fn encoded(table: &'static [(&'static str, &'static str)], member: &str) -> &'static str {
    table.iter().find(|(plain, _)| *plain == member).map_or("_x0020_", |(_, encoded)| encoded)
}

fn etag(parts: &str) -> String {
    format!("W/\"{}\"", STANDARD.encode(format!("JzE5O{parts}Oyc=")))
}

fn ledger_row(entry: &Entry, items: &[Item]) -> Row {
    let blank = NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN);
    Row {
        etag: etag(&format!("{};{}", entry.entry_number, entry.last_modified.timestamp_millis())),
        values: vec![
            Val::Guid(entry.id.clone()),
            Val::Int(entry.entry_number),
            Val::Str(items[entry.item].number.clone()),
            Val::Date(entry.posting_date.unwrap_or(blank)),
            Val::Enum(encoded(&ENTRY_TYPES, entry.entry_type)),
            Val::Str(entry.source_number.clone()),
            Val::Enum(encoded(&SOURCE_TYPES, entry.source_type)),
            Val::Str(entry.document_number.clone()),
            Val::Enum(encoded(&DOCUMENT_TYPES, entry.document_type)),
            Val::Str(entry.description.clone()),
            Val::Dec(entry.quantity),
            Val::Dec(entry.sales_amount),
            Val::Dec(entry.cost_amount),
            Val::DateTime(entry.last_modified),
        ],
    }
}

fn modified() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2024, 6, 1).unwrap_or_default().and_time(NaiveTime::MIN).and_utc()
}

fn item_row(item: &Item) -> Row {
    Row {
        etag: etag(&item.number),
        values: vec![
            Val::Guid(item.id.clone()),
            Val::Str(item.number.clone()),
            Val::Str(item.display_name.clone()),
            Val::Enum("Inventory"),
            Val::Str("PARTS".to_owned()),
            Val::Bool(item.blocked),
            Val::Str(item.gtin.clone()),
            Val::Dec(item.inventory),
            Val::Dec(item.unit_price),
            Val::Dec(item.unit_cost),
            Val::Str(item.unit.to_owned()),
            Val::DateTime(modified()),
        ],
    }
}

fn location_row(location: &Location) -> Row {
    Row {
        etag: etag(location.code),
        values: vec![
            Val::Guid(location.id.clone()),
            Val::Str(location.code.to_owned()),
            Val::Str(location.display_name.clone()),
            Val::Str(String::new()),
            Val::Str(format!("{} Logistics Way", location.postal_code)),
            Val::Str(String::new()),
            Val::Str(location.city.to_owned()),
            Val::Str("US".to_owned()),
            Val::Str("US".to_owned()),
            Val::Str(location.postal_code.clone()),
            Val::Str(String::new()),
            Val::Str(String::new()),
            Val::Str(String::new()),
            Val::DateTime(modified()),
        ],
    }
}

/// A row as JSON, with only the `select`ed fields when given.
struct RowJson<'a> {
    set: &'a EntitySet,
    row: &'a Row,
    select: Option<&'a [usize]>,
    context: Option<String>,
}

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(context) = &self.context {
            map.serialize_entry("@odata.context", context)?;
        }
        map.serialize_entry("@odata.etag", &self.row.etag)?;
        for (i, ((name, _), value)) in self.set.fields.iter().zip(&self.row.values).enumerate() {
            if self.select.is_none_or(|s| s.contains(&i)) {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

fn json_response<T: Serialize>(body: &T, extra: Option<(&'static str, String)>) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => {
            let mut response =
                ([(header::CONTENT_TYPE, "application/json; odata.metadata=minimal")], text).into_response();
            if let Some((name, value)) = extra.and_then(|(n, v)| Some((n, HeaderValue::from_str(&v).ok()?))) {
                response.headers_mut().insert(name, value);
            }
            response
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal_ServerError", "Serialization failed."),
    }
}

// ---- $filter ---------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, Response> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => value.push(c),
                        None => return Err(syntax_error()),
                    }
                }
                tokens.push(Token::Str(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek().filter(|c| !matches!(c, ' ' | '(' | ')' | ',' | '\'')) {
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// A literal as written, before it is checked against a field's type.
#[derive(Clone, Debug)]
enum Literal {
    Str(String),
    Bare(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }

    fn kind_name(self) -> &'static str {
        match self {
            Op::Eq => "Equal",
            Op::Ne => "NotEqual",
            Op::Gt => "GreaterThan",
            Op::Ge => "GreaterThanOrEqual",
            Op::Lt => "LessThan",
            Op::Le => "LessThanOrEqual",
        }
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Op::Eq => ordering.is_eq(),
            Op::Ne => ordering.is_ne(),
            Op::Gt => ordering.is_gt(),
            Op::Ge => ordering.is_ge(),
            Op::Lt => ordering.is_lt(),
            Op::Le => ordering.is_le(),
        }
    }
}

/// A parsed, type-checked `$filter`.
#[derive(Debug)]
enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Cmp(usize, Op, Val),
    In(usize, Vec<Val>),
}

impl Cond {
    fn holds(&self, row: &Row) -> bool {
        match self {
            Cond::And(a, b) => a.holds(row) && b.holds(row),
            Cond::Or(a, b) => a.holds(row) || b.holds(row),
            Cond::Cmp(field, op, value) => row.values[*field].compare(value).is_some_and(|o| op.holds(o)),
            Cond::In(field, values) => values.iter().any(|v| row.values[*field] == *v),
        }
    }

    fn fields(&self, into: &mut Vec<usize>) {
        match self {
            Cond::And(a, b) | Cond::Or(a, b) => {
                a.fields(into);
                b.fields(into);
            }
            Cond::Cmp(field, ..) | Cond::In(field, _) => into.push(*field),
        }
    }
}

struct Parser<'a> {
    set: &'a EntitySet,
    tokens: Vec<Token>,
    at: usize,
}

impl Parser<'_> {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w == word)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, token: Token) -> Result<(), Response> {
        (self.next() == Some(token)).then_some(()).ok_or_else(syntax_error)
    }

    fn or(&mut self) -> Result<Cond, Response> {
        let mut cond = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            cond = Cond::Or(Box::new(cond), Box::new(self.and()?));
            let mut fields = Vec::new();
            cond.fields(&mut fields);
            if fields.iter().any(|f| *f != fields[0]) {
                return Err(bad_request("The 'OR' operator is not supported on distinct fields on an OData filter."));
            }
        }
        Ok(cond)
    }

    fn and(&mut self) -> Result<Cond, Response> {
        let mut cond = self.primary()?;
        while self.peek_word("and") {
            self.at += 1;
            cond = Cond::And(Box::new(cond), Box::new(self.primary()?));
        }
        Ok(cond)
    }

    fn primary(&mut self) -> Result<Cond, Response> {
        match self.next() {
            Some(Token::Open) => {
                let cond = self.or()?;
                self.expect(Token::Close)?;
                Ok(cond)
            }
            Some(Token::Word(field)) if is_identifier(&field) => {
                let (index, kind) = self.set.field(&field)?;
                match self.next() {
                    Some(Token::Word(word)) if word == "in" => {
                        self.expect(Token::Open)?;
                        let mut values = vec![typed(kind, self.literal()?, "In")?];
                        while self.tokens.get(self.at) == Some(&Token::Comma) {
                            self.at += 1;
                            values.push(typed(kind, self.literal()?, "In")?);
                        }
                        self.expect(Token::Close)?;
                        Ok(Cond::In(index, values))
                    }
                    Some(Token::Word(word)) => {
                        let op = Op::parse(&word).ok_or_else(syntax_error)?;
                        Ok(Cond::Cmp(index, op, typed(kind, self.literal()?, op.kind_name())?))
                    }
                    _ => Err(syntax_error()),
                }
            }
            _ => Err(syntax_error()),
        }
    }

    fn literal(&mut self) -> Result<Literal, Response> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Literal::Str(s)),
            Some(Token::Word(w)) if !is_identifier(&w) || w == "true" || w == "false" || is_guid(&w) => {
                Ok(Literal::Bare(w))
            }
            _ => Err(syntax_error()),
        }
    }
}

fn is_identifier(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_alphabetic()) && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_guid(word: &str) -> bool {
    let groups: Vec<&str> = word.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks `literal` against a field of `kind`, as BC's OData does.
fn typed(kind: Kind, literal: Literal, op: &str) -> Result<Val, Response> {
    let value = match (&literal, kind) {
        (Literal::Str(s), Kind::Str) => Some(Val::Str(s.clone())),
        (Literal::Str(s), Kind::Enum(members)) => {
            let member = members.iter().find(|(_, encoded)| encoded == s).map(|(_, encoded)| *encoded);
            return member
                .map(Val::Enum)
                .ok_or_else(|| bad_request(&format!("The value '{s}' is not a valid enum member.")));
        }
        (Literal::Bare(w), Kind::Int) => w.parse().ok().map(Val::Int),
        (Literal::Bare(w), Kind::Dec) => Decimal::from_str(w).ok().map(Val::Dec),
        (Literal::Bare(w), Kind::Date) => NaiveDate::parse_from_str(w, "%Y-%m-%d").ok().map(Val::Date),
        (Literal::Bare(w), Kind::DateTime) => DateTime::parse_from_rfc3339(w).ok().map(|t| Val::DateTime(t.to_utc())),
        (Literal::Bare(w), Kind::Guid) if is_guid(w) => Some(Val::Guid(w.to_ascii_lowercase())),
        (Literal::Bare(w), Kind::Bool) => w.parse().ok().map(Val::Bool),
        _ => None,
    };
    value.ok_or_else(|| {
        let found = match &literal {
            Literal::Str(_) => "Edm.String",
            Literal::Bare(w) if is_guid(w) => "Edm.Guid",
            Literal::Bare(w) if w.contains('T') => "Edm.DateTimeOffset",
            Literal::Bare(w) if w.matches('-').count() == 2 => "Edm.Date",
            Literal::Bare(_) => "Edm.Int32",
        };
        bad_request(&format!(
            "A binary operator with incompatible types was detected. Found operand types '{}' and '{found}' for operator kind '{op}'.",
            kind.edm()
        ))
    })
}

fn parse_filter(set: &EntitySet, text: &str) -> Result<Cond, Response> {
    let mut parser = Parser { set, tokens: tokenize(text)?, at: 0 };
    let cond = parser.or()?;
    (parser.at == parser.tokens.len()).then_some(cond).ok_or_else(syntax_error)
}

// ---- query options and paging ---------------------------------------------

#[derive(Default)]
struct Options {
    filter: Option<Cond>,
    order: Vec<(usize, bool)>,
    top: Option<usize>,
    skip: usize,
    count: bool,
    select: Option<Vec<usize>>,
    skiptoken: Option<String>,
    /// The query without `$skiptoken`, as sent, for nextLinks.
    raw_rest: Vec<String>,
}

fn decode(text: &str) -> Result<String, Response> {
    percent_encoding::percent_decode_str(text).decode_utf8().map(|s| s.into_owned()).map_err(|_| syntax_error())
}

fn parse_options(set: &EntitySet, raw: Option<&str>) -> Result<Options, Response> {
    let mut options = Options::default();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        // No `+` for a blank here: OData URLs spell it `%20`.
        let (key, value) = (decode(key)?, decode(value)?);
        let number = |v: &str| v.parse::<usize>().map_err(|_| bad_request(&format!("Invalid value for {key}.")));
        match key.as_str() {
            "$filter" => options.filter = Some(parse_filter(set, &value)?),
            "$orderby" => options.order = parse_order(set, &value)?,
            "$top" => options.top = Some(number(&value)?),
            "$skip" => options.skip = number(&value)?,
            "$count" => options.count = value.parse().map_err(|_| bad_request("Invalid value for $count."))?,
            "$select" => {
                options.select =
                    Some(value.split(',').map(|f| set.field(f.trim()).map(|(i, _)| i)).collect::<Result<_, _>>()?)
            }
            "$skiptoken" => {
                options.skiptoken = Some(value);
                continue;
            }
            other => return Err(bad_request(&format!("The query parameter '{other}' is not supported."))),
        }
        options.raw_rest.push(pair.to_owned());
    }
    Ok(options)
}

fn parse_order(set: &EntitySet, text: &str) -> Result<Vec<(usize, bool)>, Response> {
    text.split(',')
        .map(|part| {
            let mut words = part.split(' ').filter(|w| !w.is_empty());
            let (index, _) = set.field(words.next().unwrap_or_default())?;
            let descending = match words.next() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(_) => return Err(syntax_error()),
            };
            words.next().map_or(Ok((index, descending)), |_| Err(syntax_error()))
        })
        .collect()
}

/// `odata.maxpagesize` from a `Prefer` header.
fn max_page_size(headers: &HeaderMap) -> Option<usize> {
    let prefer = headers.get("prefer")?.to_str().ok()?;
    prefer.split(',').find_map(|p| p.trim().strip_prefix("odata.maxpagesize=")?.trim().parse().ok())
}

/// FNV-1a over the query, so a skiptoken only continues its own query.
fn digest(parts: &[String]) -> u64 {
    parts.join("&").bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn skiptoken(offset: usize, query: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{offset}:{query:x}"))
}

fn read_skiptoken(token: &str, query: u64) -> Option<usize> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (offset, digest) = text.split_once(':')?;
    (digest == format!("{query:x}")).then_some(())?;
    offset.parse().ok()
}

/// A collection response: filter, order, count, page.
fn collection(
    set: &EntitySet,
    rows: &[Row],
    request: &Request,
    path: &str,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Response {
    let options = match parse_options(set, raw) {
        Ok(options) => options,
        Err(response) => return response,
    };
    let query = digest(&options.raw_rest);
    let offset = match options.skiptoken.as_deref().map(|t| read_skiptoken(t, query)) {
        None => 0,
        Some(Some(offset)) => offset,
        Some(None) => return bad_request("The skip token is not valid."),
    };
    let mut matching: Vec<&Row> = rows.iter().filter(|r| options.filter.as_ref().is_none_or(|f| f.holds(r))).collect();
    let key = set.fields.iter().position(|(f, _)| *f == set.key).unwrap_or(0);
    matching.sort_by(|a, b| {
        let by = |(field, descending): &(usize, bool)| {
            let ordering = a.values[*field].compare(&b.values[*field]).unwrap_or(Ordering::Equal);
            if *descending {
                ordering.reverse()
            } else {
                ordering
            }
        };
        options.order.iter().map(by).find(|o| o.is_ne()).unwrap_or_else(|| by(&(key, false)))
    });
    let count = matching.len();
    let selected: Vec<&Row> = matching.into_iter().skip(options.skip).take(options.top.unwrap_or(usize::MAX)).collect();
    let prefer = max_page_size(headers);
    let page_size = prefer.unwrap_or(SERVER_PAGE_SIZE).clamp(1, SERVER_PAGE_SIZE);
    let end = (offset + page_size).min(selected.len());
    let page = selected.get(offset.min(end)..end).unwrap_or_default();
    let next_link = (end < selected.len()).then(|| {
        let mut query_parts = options.raw_rest.clone();
        query_parts.push(format!("$skiptoken={}", skiptoken(end, query)));
        format!("{}{path}?{}", request.origin, query_parts.join("&"))
    });
    let body = Page {
        context: format!("{}$metadata#companies({COMPANY_ID})/{}", request.service_root, set.name),
        count: options.count.then_some(count),
        value: page.iter().map(|row| RowJson { set, row, select: options.select.as_deref(), context: None }).collect(),
        next_link,
    };
    json_response(&body, prefer.map(|_| ("preference-applied", format!("odata.maxpagesize={page_size}"))))
}

#[derive(Serialize)]
struct Page<'a> {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(rename = "@odata.count", skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
    value: Vec<RowJson<'a>>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

// ---- handlers ----------------------------------------------------------------

type CompanyPath = Path<(String, String, String)>;

async fn ledger(
    State(state): State<Arc<MockState>>,
    Path((tenant, env, company)): CompanyPath,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    list(&state, (&tenant, &env, &company), uri.path(), &headers, raw.as_deref(), &LEDGER, |d| &d.ledger_rows)
}

async fn items(
    State(state): State<Arc<MockState>>,
    Path((tenant, env, company)): CompanyPath,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    list(&state, (&tenant, &env, &company), uri.path(), &headers, raw.as_deref(), &ITEMS, |d| &d.item_rows)
}

async fn locations(
    State(state): State<Arc<MockState>>,
    Path((tenant, env, company)): CompanyPath,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    list(&state, (&tenant, &env, &company), uri.path(), &headers, raw.as_deref(), &LOCATION_SET, |d| &d.location_rows)
}

fn list(
    state: &MockState,
    path: (&str, &str, &str),
    uri_path: &str,
    headers: &HeaderMap,
    raw: Option<&str>,
    set: &EntitySet,
    rows: fn(&TenantData) -> &Vec<Row>,
) -> Response {
    match admit(state, headers, path) {
        Ok(request) => {
            let data = request.data.clone();
            collection(set, rows(&data), &request, uri_path, headers, raw)
        }
        Err(response) => response,
    }
}

/// `itemLedgerEntries(<id>)`, `items(<id>)`, `locations(<id>)`.
async fn by_key(
    State(state): State<Arc<MockState>>,
    Path((tenant, env, company, entity)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let request = match admit(&state, &headers, (&tenant, &env, &company)) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let Some((name, key)) = entity.strip_suffix(')').and_then(|e| e.split_once('(')) else {
        return not_found(&format!("Resource not found for the segment '{entity}'."));
    };
    let data = &request.data;
    let (set, rows) = match name {
        "itemLedgerEntries" => (&LEDGER, &data.ledger_rows),
        "items" => (&ITEMS, &data.item_rows),
        "locations" => (&LOCATION_SET, &data.location_rows),
        _ => return not_found(&format!("Resource not found for the segment '{name}'.")),
    };
    if !is_guid(key) {
        return syntax_error();
    }
    let id = Val::Guid(key.to_ascii_lowercase());
    match rows.iter().find(|row| row.values[0] == id) {
        Some(row) => {
            let context = format!("{}$metadata#companies({COMPANY_ID})/{}/$entity", request.service_root, set.name);
            json_response(&RowJson { set, row, select: None, context: Some(context) }, None)
        }
        None => {
            not_found(&format!("The {} does not exist. Identification fields and values: Id='{key}'", set.singular))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(text: &str) -> Result<Cond, StatusCode> {
        parse_filter(&LEDGER, text).map_err(|r| r.status())
    }

    #[test]
    fn the_filter_grammar_accepts_what_bc_accepts() {
        for ok in [
            "postingDate ge 2024-06-01 and postingDate le 2024-06-30",
            "itemNumber in ('A','O''B')",
            "(id eq 44a76d24-52ff-eb11-bb76-000d3a220646 or id eq 44a76d24-52ff-eb11-bb76-000d3a220647) and quantity lt -2.5",
            "entryType in ('Positive_x0020_Adjmt_x002E_','Sale')",
            "lastModifiedDateTime gt 2024-06-15T10:00:00Z",
            "itemNumber eq 'x'' or 1 eq 1'",
        ] {
            assert!(filter(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_filter_grammar_rejects_what_bc_rejects() {
        for bad in [
            "postingDate ge '2024-06-01'",
            "itemNumber eq 'A' or entryType eq 'Sale'",
            "(itemNumber eq 'A' and quantity gt 0) or itemNumber eq 'B'",
            "colour eq 'red'",
            "itemNumber eq A",
            "itemNumber eq 'unterminated",
            "entryType eq 'Positive Adjmt.'",
            "id eq 'not-a-guid'",
            "postingDate ge 2024-06-01 and",
            "itemNumber eq 'x' or 1 eq 1",
        ] {
            assert_eq!(filter(bad).err(), Some(StatusCode::BAD_REQUEST), "{bad}");
        }
    }

    #[test]
    fn a_doubled_quote_is_one_quote_inside_the_literal() {
        let Ok(Cond::Cmp(_, Op::Eq, Val::Str(value))) = filter("itemNumber eq 'x'' or 1 eq 1'") else { panic!() };
        assert_eq!(value, "x' or 1 eq 1");
    }

    /// The mock on loopback and a GET helper sending the demo token.
    async fn served() -> (crate::mock::Mock, impl Fn(&str, &[(&str, &str)]) -> reqwest::RequestBuilder) {
        let mock = crate::mock::Mock::start().await.unwrap();
        let root = source_config(mock.url("business-central"), mock.url("entra")).base_url;
        let client = reqwest::Client::new();
        let get = move |path: &str, headers: &[(&str, &str)]| {
            let mut request = client.get(format!("{root}{path}")).bearer_auth(TOKEN);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request
        };
        (mock, get)
    }

    async fn json(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    #[tokio::test]
    async fn pages_follow_opaque_skiptokens_to_the_end() {
        let (_mock, get) = served().await;
        let mut url = "itemLedgerEntries?$orderby=postingDate%20desc&$top=25&$skip=5&$count=true".to_owned();
        let (mut pages, mut seen, mut count) = (0, Vec::new(), None);
        loop {
            let (status, body) = json(get(&url, &[("prefer", "odata.maxpagesize=10")])).await;
            assert_eq!(status, 200, "{body}");
            pages += 1;
            count = count.or(body["@odata.count"].as_u64());
            seen.extend(body["value"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()));
            let Some(next) = body["@odata.nextLink"].as_str() else { break };
            assert!(next.contains("$skiptoken=") && next.contains("$top=25"), "{next}");
            url = next.rsplit_once("/itemLedgerEntries").map(|(_, rest)| format!("itemLedgerEntries{rest}")).unwrap();
        }
        assert_eq!((pages, seen.len(), count), (3, 25, Some(3000)));
        assert_eq!(seen.iter().collect::<std::collections::HashSet<_>>().len(), 25);
        let (status, _) = json(get("itemLedgerEntries?$skiptoken=bm9wZQ", &[])).await;
        assert_eq!(status, 400, "a token from no query of ours");
    }

    #[tokio::test]
    async fn entities_carry_etags_escaped_enums_and_selected_fields() {
        let (_mock, get) = served().await;
        let (_, body) = json(get("itemLedgerEntries?$top=1&$select=id,entryType,quantity", &[])).await;
        let entry = &body["value"][0];
        assert!(entry["@odata.etag"].as_str().unwrap().starts_with("W/\""), "{entry}");
        assert_eq!(entry.as_object().unwrap().len(), 4, "{entry}");
        assert!(body["@odata.context"].as_str().unwrap().contains("$metadata#companies("));
        let id = entry["id"].as_str().unwrap();
        let (status, one) = json(get(&format!("itemLedgerEntries({id})"), &[])).await;
        assert_eq!((status, one["id"].as_str()), (200, Some(id)));
        let (status, missing) = json(get("itemLedgerEntries(00000000-0000-0000-0000-000000000000)", &[])).await;
        assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("BadRequest_NotFound")));
        let (_, adjusted) =
            json(get("itemLedgerEntries?$filter=entryType%20eq%20%27Positive_x0020_Adjmt_x002E_%27", &[])).await;
        assert!(adjusted["value"].as_array().unwrap().iter().all(|e| e["entryType"] == "Positive_x0020_Adjmt_x002E_"));
        assert!(!adjusted["value"].as_array().unwrap().is_empty());
    }

    #[tokio::test]
    async fn bc_error_bodies_answer_bad_requests_and_bad_tokens() {
        let (mock, get) = served().await;
        let cases = [
            (
                "itemLedgerEntries?$filter=postingDate%20ge%20%272024-06-01%27",
                "operand types 'Edm.Date' and 'Edm.String'",
            ),
            (
                "itemLedgerEntries?$filter=itemNumber%20eq%20%27A%27%20or%20quantity%20gt%201",
                "not supported on distinct fields",
            ),
            ("itemLedgerEntries?$filter=colour%20eq%20%27red%27", "Could not find a property named 'colour'"),
            ("itemLedgerEntries?$filter=itemNumber+eq+%27A%27", "Error in query syntax"),
            ("itemLedgerEntries?$expand=item", "'$expand' is not supported"),
        ];
        for (path, message) in cases {
            let (status, body) = json(get(path, &[])).await;
            assert_eq!(status, 400, "{path}");
            assert!(body["error"]["message"].as_str().unwrap().contains(message), "{path}: {body}");
        }
        let root = source_config(mock.url("business-central"), mock.url("entra")).base_url;
        let response = reqwest::Client::new().get(format!("{root}items")).bearer_auth("guessed").send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "Authentication_InvalidCredentials");
        let other_company = root.as_str().replace(COMPANY_ID, "00000000-0000-0000-0000-000000000000");
        let response =
            reqwest::Client::new().get(format!("{other_company}items")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404);
    }

    #[test]
    fn decimals_serialize_with_every_digit() {
        let value = Val::Dec(Decimal::from_str_exact("12345678901234.123456789").unwrap());
        assert_eq!(serde_json::to_string(&value).unwrap(), "12345678901234.123456789");
        assert_eq!(serde_json::to_string(&Val::Dec(Decimal::new(-30, 1))).unwrap(), "-3.0");
    }

    #[test]
    fn timestamps_have_only_the_digits_they_need() {
        let at = DateTime::parse_from_rfc3339("2021-08-17T11:57:21.73Z").unwrap().to_utc();
        assert_eq!(datetime_text(at), "2021-08-17T11:57:21.73Z");
        assert_eq!(datetime_text(modified()), "2024-06-01T00:00:00Z");
    }
}

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use ledger_gateway::config::Config;
use ledger_gateway::mock::business_central::{
    Entry, Fault, TenantData, AWKWARD_ITEM_NUMBERS, COMPANY_NAME, ENVIRONMENT, TENANT, TOKEN,
};
use ledger_gateway::sources::Registry;
use ledger_gateway::upstream::FingerprintKey;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::helpers::{error_codes, operation, small_data, spawn_app, spawn_app_with, TestApp};

const SOURCE: &str = "business-central";

/// `config`'s Business Central source with a static `token` instead of
/// the demo's client credentials.
fn static_token(config: &mut Config, token: &str) {
    let credentials = &mut config.sources.get_mut(SOURCE).unwrap().credentials;
    *credentials = [("token".to_owned(), secrecy::SecretString::from(token))].into();
    config.sources.get_mut(SOURCE).unwrap().authority = None;
}

fn tenant(app: &TestApp) -> Arc<TenantData> {
    app.mock.state.business_central.tenant(TOKEN)
}

/// `filter` restricted to Business Central.
fn bc_only(mut filter: Value) -> Value {
    filter["sources"] = json!([SOURCE]);
    filter
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// The merged order: newest first, undated last, then id.
fn merged_order(a: &Entry, b: &Entry) -> Ordering {
    b.posting_date.cmp(&a.posting_date).then_with(|| a.id.cmp(&b.id))
}

/// Global ids of the entries `keep` selects, in the merged order.
fn expected(app: &TestApp, keep: impl Fn(&TenantData, &Entry) -> bool) -> Vec<String> {
    let data = tenant(app);
    let mut entries: Vec<&Entry> = data.entries.iter().filter(|e| keep(&data, e)).collect();
    entries.sort_by(|a, b| merged_order(a, b));
    entries.iter().map(|e| format!("{SOURCE}:{}", e.id)).collect()
}

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes.iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect()
}

/// The unified event type the README documents for an entry.
fn documented_event_type(entry: &Entry) -> &'static str {
    let quantity = entry.quantity;
    match (entry.entry_type, entry.document_type) {
        ("Purchase", "Purchase Return Shipment" | "Purchase Credit Memo") => "SUPPLIER_RETURN",
        ("Purchase", "Purchase Receipt" | "Purchase Invoice") => "RECEIPT",
        ("Purchase", _) if quantity < Decimal::ZERO => "SUPPLIER_RETURN",
        ("Purchase", _) => "RECEIPT",
        ("Sale", "Sales Return Receipt" | "Sales Credit Memo") => "RETURN_RECEIPT",
        ("Sale", "Sales Shipment" | "Sales Invoice" | "Service Shipment") => "SHIPMENT",
        ("Sale", _) if quantity > Decimal::ZERO => "RETURN_RECEIPT",
        ("Sale", _) => "SHIPMENT",
        ("Positive Adjmt." | "Negative Adjmt.", _) => "ADJUSTMENT",
        ("Transfer", _) => "TRANSFER",
        ("Consumption" | "Assembly Consumption", _) => "CONSUMPTION",
        ("Output" | "Assembly Output", _) => "PRODUCTION_OUTPUT",
        _ => "OTHER",
    }
}

/// `$filter` of every ledger read Business Central received.
async fn ledger_filters(app: &TestApp) -> Vec<String> {
    app.requests()
        .await
        .into_iter()
        .filter(|(path, _)| path.starts_with("/business-central/") && path.ends_with("/itemLedgerEntries"))
        .map(|(_, query)| query.into_iter().find(|(k, _)| k == "$filter").map(|(_, v)| v).unwrap_or_default())
        .collect()
}

/// The day with the most entries, and how many it has.
fn busiest_day(data: &TenantData) -> (NaiveDate, usize) {
    let mut days: Vec<NaiveDate> = data.entries.iter().filter_map(|e| e.posting_date).collect();
    days.sort();
    let mut best = (days[0], 0);
    for chunk in days.chunk_by(|a, b| a == b) {
        if chunk.len() > best.1 {
            best = (chunk[0], chunk.len());
        }
    }
    best
}

#[tokio::test]
async fn walking_business_central_alone_yields_each_entry_once_newest_first() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let all = expected(&app, |_, _| true);
    assert_eq!(all.len(), 400);
    assert!(busiest_day(&data).1 >= 15, "the mock posts many entries a day");
    assert!(data.entries.iter().any(|e| e.posting_date.is_none()), "the mock has undated entries");
    for first in [1, 7, 50, 500] {
        let (nodes, pages) = app.walk(bc_only(json!({})), first).await;
        let walked = ids(&nodes);
        assert_eq!(walked.len(), walked.iter().collect::<HashSet<_>>().len(), "first={first}: an entry repeats");
        assert_eq!(walked, all, "first={first}");
        assert_eq!(pages, all.len().div_ceil(first), "first={first}");
        let dates: Vec<Option<DateTime<Utc>>> =
            nodes.iter().map(|n| n["entryDate"].as_str().map(|d| d.parse().unwrap())).collect();
        // Newest first; undated (blank posting date) entries last.
        assert!(dates.windows(2).all(|w| w[1].is_none() || w[0] >= w[1]), "first={first}: not newest first");
        assert!(dates.iter().skip_while(|d| d.is_some()).all(Option::is_none), "first={first}");
    }
}

#[tokio::test]
async fn small_upstream_pages_split_days_without_losing_or_repeating_entries() {
    let app = spawn_app_with(small_data(), |config| {
        config.sources.get_mut(SOURCE).unwrap().page_size = Some(3);
    })
    .await;
    // The busiest days, each spread over many 3-entry upstream pages.
    let (day, count) = busiest_day(&tenant(&app));
    assert!(count > 6);
    let (from, to) = (day - chrono::Days::new(6), day + chrono::Days::new(6));
    let range = json!({"entryDate": {"gte": midnight(from).to_rfc3339(), "lte": midnight(to).to_rfc3339()}});
    let all = expected(&app, |_, e| e.posting_date.is_some_and(|d| d >= from && d <= to));
    for first in [1, 4, 25] {
        let (nodes, _) = app.walk(bc_only(range.clone()), first).await;
        assert_eq!(ids(&nodes), all, "first={first}");
    }
}

#[tokio::test]
async fn a_days_entries_are_read_to_the_end_before_any_is_released() {
    let app = spawn_app_with(small_data(), |config| {
        config.sources.get_mut(SOURCE).unwrap().page_size = Some(5);
    })
    .await;
    let (day, count) = busiest_day(&tenant(&app));
    let at = midnight(day).to_rfc3339();
    let filter = bc_only(json!({"entryDate": {"gte": at, "lte": at}}));
    app.reset_stats().await;
    let body = app.query(&operation("LedgerPage"), json!({"filter": filter, "first": 3})).await;
    assert!(body["errors"].is_null(), "{body}");
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().unwrap();
    let nodes: Vec<Value> = edges.iter().map(|e| e["node"].clone()).collect();
    let want = expected(&app, |_, e| e.posting_date == Some(day));
    assert_eq!(ids(&nodes), want[..3]);
    // BC orders a day by entry number, the gateway by id: every page of
    // the day is read before its first three entries are known.
    assert_eq!(app.calls_to(SOURCE).await, count.div_ceil(5) as u64);
    let filters = ledger_filters(&app).await;
    assert!(filters.iter().all(|f| f == &format!("postingDate ge {day} and postingDate le {day}")), "{filters:?}");
}

#[tokio::test]
async fn a_first_page_costs_exactly_the_calls_its_days_need() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let mut bc_order: Vec<&Entry> = data.entries.iter().collect();
    bc_order.sort_by(|a, b| b.posting_date.cmp(&a.posting_date).then(b.entry_number.cmp(&a.entry_number)));
    // The documented walk: pages of 2 × (first + 1), doubling, until more
    // than `first` entries lie above the oldest day read so far.
    let first = 20;
    let (mut size, mut read, mut calls) = (2 * (first + 1), 0, 0);
    loop {
        calls += 1;
        read = (read + size).min(bc_order.len());
        let oldest = bc_order[read - 1].posting_date;
        let complete = bc_order[..read].iter().filter(|e| e.posting_date > oldest).count();
        if read == bc_order.len() || complete > first {
            break;
        }
        size *= 2;
    }
    app.reset_stats().await;
    let body = app.query(&operation("LedgerPage"), json!({"filter": bc_only(json!({})), "first": first})).await;
    let nodes: Vec<Value> =
        body["data"]["ledgerEntries"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect();
    assert_eq!(ids(&nodes), expected(&app, |_, _| true)[..first]);
    assert_eq!(app.calls_to(SOURCE).await, calls);
    assert!(calls <= 2, "day bursts under 42 entries need at most one more page: {calls}");
}

#[tokio::test]
async fn business_central_joins_the_merged_ledger() {
    let app = spawn_app().await;
    let trackstar = app.mock.state.trackstar.tenant(ledger_gateway::mock::trackstar::ACCESS_TOKEN);
    let bc = tenant(&app);
    let mut keys: Vec<(Option<DateTime<Utc>>, &str, String)> = bc
        .entries
        .iter()
        .map(|e| (e.posting_date.map(midnight), SOURCE, e.id.clone()))
        .chain(trackstar.by_id.iter().map(|r| (Some(r.entry_date), "trackstar", r.id.clone())))
        .collect();
    keys.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)).then_with(|| a.2.cmp(&b.2)));
    let all: Vec<String> = keys.iter().map(|(_, source, id)| format!("{source}:{id}")).collect();
    let (nodes, _) = app.walk(json!({"sources": [SOURCE, "trackstar"]}), 50).await;
    assert_eq!(ids(&nodes), all);
}

#[tokio::test]
async fn entry_date_ranges_push_down_as_posting_days() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let (day, _) = busiest_day(&data);
    let (from, to) = (day - chrono::Days::new(10), day + chrono::Days::new(3));
    // An instant inside `to`: that day's entries (at midnight) are before it.
    let lt = midnight(to) + chrono::Duration::hours(6);
    app.reset_stats().await;
    let filter = bc_only(json!({"entryDate": {"gte": midnight(from).to_rfc3339(), "lt": lt.to_rfc3339()}}));
    let (nodes, _) = app.walk(filter, 500).await;
    assert_eq!(ids(&nodes), expected(&app, |_, e| e.posting_date.is_some_and(|d| d >= from && d <= to)));
    assert_eq!(ledger_filters(&app).await, [format!("postingDate ge {from} and postingDate le {to}")]);
}

#[tokio::test]
async fn updated_at_ranges_push_down_on_whole_seconds() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let mut stamps: Vec<DateTime<Utc>> = data.entries.iter().map(|e| e.last_modified).collect();
    stamps.sort();
    let gt = stamps[stamps.len() / 2];
    app.reset_stats().await;
    let (nodes, _) = app.walk(bc_only(json!({"updatedAt": {"gt": gt.to_rfc3339()}})), 500).await;
    assert_eq!(ids(&nodes), expected(&app, |_, e| e.last_modified > gt));
    assert_eq!(ledger_filters(&app).await, [format!("lastModifiedDateTime ge {}", gt.format("%Y-%m-%dT%H:%M:%SZ"))]);
}

#[tokio::test]
async fn event_types_push_down_as_encoded_entry_types_and_are_refined_in_the_gateway() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let (nodes, _) = app.walk(bc_only(json!({"eventTypes": ["ADJUSTMENT", "SUPPLIER_RETURN"]})), 500).await;
    let want = expected(&app, |_, e| matches!(documented_event_type(e), "ADJUSTMENT" | "SUPPLIER_RETURN"));
    assert!(!want.is_empty());
    assert_eq!(ids(&nodes), want);
    assert_eq!(
        ledger_filters(&app).await,
        ["entryType in ('Purchase','Positive_x0020_Adjmt_x002E_','Negative_x0020_Adjmt_x002E_')"]
    );
}

#[tokio::test]
async fn skus_and_item_ids_push_down_as_item_numbers() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let number = data.items[data.entries[10].item].number.clone();
    app.reset_stats().await;
    let (nodes, _) = app.walk(bc_only(json!({"skus": [number]})), 500).await;
    assert_eq!(ids(&nodes), expected(&app, |d, e| d.items[e.item].number == number));
    assert!(!nodes.is_empty());
    assert!(nodes.iter().all(|n| n["sku"] == json!(number) && n["itemId"] == json!(format!("{SOURCE}:{number}"))));

    app.reset_stats().await;
    let item_ids = json!([format!("{SOURCE}:{number}"), "trackstar:inv_x"]);
    let (nodes, _) = app.walk(bc_only(json!({"itemIds": item_ids})), 500).await;
    assert_eq!(ids(&nodes), expected(&app, |d, e| d.items[e.item].number == number));
    assert_eq!(ledger_filters(&app).await, [format!("itemNumber in ('{number}')")]);
}

#[tokio::test]
async fn ids_push_down_as_one_field_or_and_non_guids_cost_no_call() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let mut picked: Vec<&str> = data.entries.iter().step_by(97).map(|e| e.id.as_str()).collect();
    picked.sort();
    let mut global: Vec<String> = picked.iter().map(|id| format!("{SOURCE}:{id}")).collect();
    global.extend(["business-central:not-a-guid".to_owned(), "trackstar:led_1".to_owned()]);
    app.reset_stats().await;
    let (nodes, _) = app.walk(json!({"ids": global}), 10).await;
    assert_eq!(ids(&nodes), expected(&app, |_, e| picked.contains(&e.id.as_str())));
    let or: Vec<String> = picked.iter().map(|id| format!("id eq {id}")).collect();
    assert_eq!(ledger_filters(&app).await, [format!("({})", or.join(" or "))]);
    assert_eq!(app.calls_to(SOURCE).await, 1);

    app.reset_stats().await;
    let (nodes, _) = app.walk(json!({"ids": ["business-central:x' or 1 eq 1", "business-central:42"]}), 10).await;
    assert!(nodes.is_empty());
    assert_eq!(app.calls_to(SOURCE).await, 0);
}

#[tokio::test]
async fn combined_filters_are_joined_by_and_one_field_per_clause() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let (day, _) = busiest_day(&data);
    let number = data.items[data.entries.iter().find(|e| e.posting_date < Some(day)).unwrap().item].number.clone();
    let filter = bc_only(json!({
        "entryDate": {"lte": midnight(day).to_rfc3339()},
        "eventTypes": ["SHIPMENT", "RETURN_RECEIPT"],
        "skus": [number],
    }));
    app.reset_stats().await;
    // The mock answers `or` across distinct fields with a 400: a clean walk
    // shows every clause kept to one field.
    let (nodes, _) = app.walk(filter, 2).await;
    let want = expected(&app, |d, e| {
        e.posting_date.is_some_and(|p| p <= day)
            && matches!(documented_event_type(e), "SHIPMENT" | "RETURN_RECEIPT")
            && d.items[e.item].number == number
    });
    assert_eq!(ids(&nodes), want);
    let first = &ledger_filters(&app).await[0];
    assert_eq!(first, &format!("postingDate le {day} and entryType in ('Sale') and itemNumber in ('{number}')"));
}

#[tokio::test]
async fn location_filters_skip_business_central_without_a_call() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let (nodes, _) = app.walk(json!({"locationIds": ["business-central:BLUE"]}), 10).await;
    assert!(nodes.is_empty());
    let (_, _) = app.walk(json!({"eventTypes": ["JOURNAL"]}), 10).await;
    assert_eq!(app.calls_to(SOURCE).await, 0);
}

#[tokio::test]
async fn hostile_item_numbers_stay_string_literals_over_http() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let hostile = "x' or 1 eq 1";
    let body = app.query(&operation("LedgerPage"), json!({"filter": bc_only(json!({"skus": [hostile]}))})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["ledgerEntries"]["edges"], json!([]));
    assert_eq!(ledger_filters(&app).await, ["itemNumber in ('x'' or 1 eq 1')"]);

    // Quotes, ampersands, plus signs and hashes survive the URL and match.
    app.reset_stats().await;
    let (nodes, _) = app.walk(bc_only(json!({"skus": AWKWARD_ITEM_NUMBERS})), 500).await;
    let want = expected(&app, |d, e| AWKWARD_ITEM_NUMBERS.contains(&d.items[e.item].number.as_str()));
    assert!(want.len() >= 10);
    assert_eq!(ids(&nodes), want);
    assert_eq!(ledger_filters(&app).await, ["itemNumber in ('A&B+10 #2','O''NEIL-7')"]);
}

#[tokio::test]
async fn one_entry_is_found_by_id_and_unknown_or_malformed_ids_are_null() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let entry = &data.entries[5];
    let query = "query($id: ID!) { ledgerEntry(id: $id) { id quantity sku entryDate rawEventType } }";
    app.reset_stats().await;
    let body = app.query(query, json!({"id": format!("{SOURCE}:{}", entry.id.to_uppercase())})).await;
    assert!(body["errors"].is_null(), "{body}");
    let node = &body["data"]["ledgerEntry"];
    assert_eq!(node["id"], json!(format!("{SOURCE}:{}", entry.id)));
    assert_eq!(node["quantity"], json!(entry.quantity.to_string()));
    assert_eq!(node["sku"], json!(data.items[entry.item].number));
    assert_eq!(app.calls_to(SOURCE).await, 1);

    let body = app.query(query, json!({"id": format!("{SOURCE}:00000000-0000-0000-0000-000000000000")})).await;
    assert!(body["errors"].is_null() && body["data"]["ledgerEntry"].is_null(), "{body}");
    assert_eq!(app.calls_to(SOURCE).await, 2);

    for malformed in ["not-a-guid", "1", "44a76d24-52ff-eb11-bb76-000d3a220646)/items(x", "../items"] {
        let body = app.query(query, json!({"id": format!("{SOURCE}:{malformed}")})).await;
        assert!(body["errors"].is_null() && body["data"]["ledgerEntry"].is_null(), "{body}");
    }
    assert_eq!(app.calls_to(SOURCE).await, 2);
}

const COUNT: &str = "query($filter: LedgerEntryFilter) { ledgerEntries(filter: $filter, first: 1) { totalCount } }";

#[tokio::test]
async fn total_count_is_exact_for_business_central_queries() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let number = data.items[data.entries[0].item].number.clone();
    let cases = [
        (json!({}), data.entries.len()),
        (json!({"skus": [number]}), expected(&app, |d, e| d.items[e.item].number == number).len()),
        (json!({"ids": [format!("{SOURCE}:{}", data.entries[3].id), format!("{SOURCE}:{}", data.entries[9].id)]}), 2),
    ];
    for (filter, count) in cases {
        app.reset_stats().await;
        let body = app.query(COUNT, json!({"filter": bc_only(filter.clone())})).await;
        assert!(body["errors"].is_null(), "{body}");
        assert_eq!(body["data"]["ledgerEntries"]["totalCount"], json!(count), "{filter}");
        // One count, with the same $filter as the page's first read.
        let requests = app.requests().await;
        let (counts, reads): (Vec<_>, Vec<_>) =
            requests.iter().partition(|(_, q)| q.contains(&("$count".into(), "true".into())));
        assert_eq!(counts.len(), 1, "{requests:?}");
        let filter_of = |query: &Vec<(String, String)>| query.iter().find(|(k, _)| k == "$filter").cloned();
        assert_eq!(filter_of(&counts[0].1), filter_of(&reads[0].1));
    }

    // Posting dates are re-checked in the gateway: BC's count would not be exact.
    app.reset_stats().await;
    let filter = bc_only(json!({"entryDate": {"lte": "2026-06-01T00:00:00Z"}}));
    let body = app.query(COUNT, json!({"filter": filter})).await;
    assert_eq!(body["data"]["ledgerEntries"]["totalCount"], Value::Null, "{body}");
    assert!(app.requests().await.iter().all(|(_, q)| !q.iter().any(|(k, _)| k == "$count")));
}

#[tokio::test]
async fn enum_members_arrive_decoded_and_mapped_to_unified_event_types() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let body = app.query(&operation("EntryDetails"), json!({"filter": bc_only(json!({})), "first": 500})).await;
    assert!(body["errors"].is_null(), "{body}");
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), data.entries.len());
    let mut seen = HashSet::new();
    for edge in edges {
        let node = &edge["node"];
        let entry = data.entries.iter().find(|e| node["nativeId"] == json!(e.id)).unwrap();
        let trimmed = |name: &str| Some(name.trim().to_owned()).filter(|n| !n.is_empty());
        assert_eq!(node["sourceKind"], "BUSINESS_CENTRAL");
        assert_eq!(node["rawEventType"], json!(trimmed(entry.entry_type)), "{node}");
        assert_eq!(node["eventType"], documented_event_type(entry), "{node}");
        assert_eq!(node["document"]["kind"], json!(trimmed(entry.document_type)), "{node}");
        assert_eq!(node["document"]["number"], json!(entry.document_number));
        assert_eq!(node["additionalFields"]["entryNumber"], json!(entry.entry_number));
        assert_eq!(node["additionalFields"]["sourceType"], json!(trimmed(entry.source_type)));
        assert_eq!((&node["locationId"], &node["warehouseId"]), (&Value::Null, &Value::Null));
        seen.insert(node["eventType"].as_str().unwrap().to_owned());
    }
    assert!(seen.len() >= 8, "the mock covers the mapping: {seen:?}");
}

#[tokio::test]
async fn quantities_and_amounts_keep_every_digit() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let body = app.query(&operation("EntryDetails"), json!({"filter": bc_only(json!({})), "first": 500})).await;
    let mut long = 0;
    for edge in body["data"]["ledgerEntries"]["edges"].as_array().unwrap() {
        let node = &edge["node"];
        let entry = data.entries.iter().find(|e| node["nativeId"] == json!(e.id)).unwrap();
        assert_eq!(node["quantity"], json!(entry.quantity.to_string()));
        assert_eq!(node["amounts"]["cost"], json!(entry.cost_amount.to_string()));
        assert_eq!(node["amounts"]["sales"], json!(entry.sales_amount.to_string()));
        assert_eq!(node["updatedAt"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), entry.last_modified);
        // More significant digits than an f64 carries.
        long += usize::from(entry.cost_amount.to_string().replace(['-', '.'], "").len() > 17);
    }
    assert!(long >= 5, "the mock sends long decimals: {long}");
}

#[tokio::test]
async fn a_rejected_token_is_unauthorized_from_business_central_and_other_sources_still_answer() {
    let app = spawn_app_with(small_data(), |config| static_token(config, "wrong-token")).await;
    let variables = json!({"first": 5, "filter": {"sources": [SOURCE, "trackstar"]}});
    let body = app.query(&operation("LedgerPage"), variables).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_UNAUTHORIZED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], SOURCE);
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 5);
    assert!(edges.iter().all(|e| e["node"]["source"] != SOURCE));
    let text = body.to_string();
    for leak in ["wrong-token", "Authentication_InvalidCredentials", "CorrelationId", "127.0.0.1"] {
        assert!(!text.contains(leak), "response leaks {leak}: {text}");
    }
    // 401 is not transient: one call, no retries.
    assert_eq!(app.calls_to(SOURCE).await, 1);
}

#[tokio::test]
async fn throttling_maps_to_rate_limited_with_the_wait_bc_asks_for() {
    let app = spawn_app_with(small_data(), |config| config.sources.get_mut(SOURCE).unwrap().http.max_retries = 0).await;
    app.mock
        .state
        .business_central
        .fail_next(Fault { status: StatusCode::TOO_MANY_REQUESTS, retry_after_secs: Some(7) }, 1);
    app.reset_stats().await;
    let body = app.query(&operation("LedgerPage"), json!({"filter": bc_only(json!({})), "first": 5})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_RATE_LIMITED"], "{body}");
    let extensions = &body["errors"][0]["extensions"];
    assert_eq!((&extensions["source"], &extensions["retryAfterSeconds"]), (&json!(SOURCE), &json!(7)));
    assert!(!body.to_string().contains("Too many requests"), "{body}");
    assert_eq!(app.calls_to(SOURCE).await, 1);
}

#[tokio::test]
async fn a_throttled_read_is_retried_when_bc_asks_for_a_short_wait() {
    let app = spawn_app().await;
    let variables = json!({"filter": bc_only(json!({})), "first": 5});
    app.reset_stats().await;
    let unthrottled = app.query(&operation("LedgerPage"), variables.clone()).await;
    let calls = app.calls_to(SOURCE).await;
    app.mock
        .state
        .business_central
        .fail_next(Fault { status: StatusCode::TOO_MANY_REQUESTS, retry_after_secs: Some(0) }, 1);
    app.reset_stats().await;
    let body = app.query(&operation("LedgerPage"), variables).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body, unthrottled);
    assert_eq!(app.calls_to(SOURCE).await, calls + 1);
}

#[tokio::test]
async fn bc_timeouts_map_to_upstream_timeout() {
    let app = spawn_app_with(small_data(), |config| config.sources.get_mut(SOURCE).unwrap().http.max_retries = 0).await;
    for status in [StatusCode::REQUEST_TIMEOUT, StatusCode::GATEWAY_TIMEOUT] {
        app.mock.state.business_central.fail_next(Fault { status, retry_after_secs: None }, 1);
        let body = app.query(&operation("LedgerPage"), json!({"filter": bc_only(json!({})), "first": 5})).await;
        assert_eq!(error_codes(&body), ["UPSTREAM_TIMEOUT"], "{status}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["source"], SOURCE);
    }
}

#[tokio::test]
async fn a_callers_own_token_selects_that_callers_company_data() {
    // The demo forwards `x-business-central-token`, a bare token.
    let app = spawn_app().await;
    let filter = json!({"filter": bc_only(json!({})), "first": 3});
    let body = app
        .query_with_headers(&operation("LedgerPage"), filter.clone(), &[("x-business-central-token", "bc-tenant-bob")])
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let bob = app.mock.state.business_central.tenant("bc-tenant-bob");
    let first = body["data"]["ledgerEntries"]["edges"][0]["node"]["nativeId"].clone();
    assert!(bob.entries.iter().any(|e| json!(e.id) == first));
    assert!(!tenant(&app).entries.iter().any(|e| json!(e.id) == first));

    // Forwarding the caller's own `Authorization` header: it already says
    // `Bearer`, and BC gets the scheme once.
    let app = spawn_app_with(small_data(), |config| {
        config.sources.get_mut(SOURCE).unwrap().forward.insert("token".into(), "authorization".into());
    })
    .await;
    let body =
        app.query_with_headers(&operation("LedgerPage"), filter, &[("authorization", "Bearer bc-tenant-alice")]).await;
    assert!(body["errors"].is_null(), "{body}");
    let alice = app.mock.state.business_central.tenant("bc-tenant-alice");
    let first = body["data"]["ledgerEntries"]["edges"][0]["node"]["nativeId"].clone();
    assert!(alice.entries.iter().any(|e| json!(e.id) == first));
}

/// The connector itself, as the item and location loaders call it.
fn registry(app: &TestApp) -> Registry {
    let config = Config { sources: app.mock.sources_config(), ..Config::default() };
    Registry::from_config(&config, FingerprintKey::random()).unwrap()
}

#[tokio::test]
async fn items_are_looked_up_by_number_in_url_sized_batches() {
    let app = spawn_app().await;
    let registry = registry(&app);
    let source = registry.get(SOURCE).unwrap();
    let caller = registry.caller(&axum::http::HeaderMap::new());
    let credentials = caller.credentials(source.name()).unwrap();
    let data = tenant(&app);

    let keys: Vec<String> =
        ["O'NEIL-7", "NO-SUCH-ITEM", &data.items[0].number].iter().map(|k| (*k).to_owned()).collect();
    app.reset_stats().await;
    let found = source.items(credentials, &keys).await.unwrap();
    assert_eq!(app.calls_to(SOURCE).await, 1);
    assert_eq!(found.len(), 2);
    let awkward = data.items.iter().find(|i| i.number == "O'NEIL-7").unwrap();
    let item = &found["O'NEIL-7"];
    assert_eq!(item.name.as_deref(), Some(awkward.display_name.as_str()));
    assert_eq!(item.cost.as_ref().unwrap().amount, awkward.unit_cost);
    assert_eq!(item.price.as_ref().unwrap().amount, awkward.unit_price);
    assert_eq!((item.on_hand, item.active), (Some(awkward.inventory), Some(!awkward.blocked)));
    let requests = app.requests().await;
    let (_, query) = requests.iter().find(|(path, _)| path.ends_with("/items")).unwrap();
    assert!(query
        .contains(&("$filter".into(), format!("number in ('O''NEIL-7','NO-SUCH-ITEM','{}')", data.items[0].number))));

    // More keys than one call takes: split, none lost.
    let all: Vec<String> = data.items.iter().map(|i| i.number.clone()).collect();
    app.reset_stats().await;
    let found = source.items(credentials, &all).await.unwrap();
    assert_eq!(found.len(), all.len());
    assert_eq!(app.calls_to(SOURCE).await, all.len().div_ceil(50) as u64);
}

#[tokio::test]
async fn locations_are_looked_up_by_code() {
    let app = spawn_app().await;
    let registry = registry(&app);
    let source = registry.get(SOURCE).unwrap();
    let caller = registry.caller(&axum::http::HeaderMap::new());
    let keys = ["BLUE".to_owned(), "OUT. LOG.".to_owned(), "NOWHERE".to_owned()];
    app.reset_stats().await;
    let found = source.locations(caller.credentials(source.name()).unwrap(), &keys).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found["OUT. LOG."].name.as_deref(), Some("Outsourced Logistics"));
    assert_eq!(found["BLUE"].address.as_ref().unwrap().city.as_deref(), Some("Atlanta"));
    assert_eq!(app.calls_to(SOURCE).await, 1);
}

#[tokio::test]
async fn readiness_probes_business_central_with_the_configured_token() {
    let app = spawn_app().await;
    let ready: Value = app.client.get(format!("{}/ready", app.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["sources"][SOURCE]["ready"], true, "{ready}");
    let app = spawn_app_with(small_data(), |config| static_token(config, "expired")).await;
    let ready: Value = app.client.get(format!("{}/ready", app.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["sources"][SOURCE]["code"], "UPSTREAM_UNAUTHORIZED", "{ready}");
}

#[tokio::test]
async fn rejected_queries_and_unreadable_answers_map_to_codes_without_retries() {
    let app = spawn_app().await;
    let cases = [
        (StatusCode::BAD_REQUEST, "UPSTREAM_REJECTED"),
        (StatusCode::NOT_FOUND, "UPSTREAM_NOT_FOUND"),
        // A 200 whose body is no collection.
        (StatusCode::OK, "UPSTREAM_BAD_RESPONSE"),
    ];
    for (status, code) in cases {
        app.mock.state.business_central.fail_next(Fault { status, retry_after_secs: None }, 1);
        app.reset_stats().await;
        let body = app.query(&operation("LedgerPage"), json!({"filter": bc_only(json!({})), "first": 5})).await;
        assert_eq!(error_codes(&body), [code], "{status}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["source"], SOURCE);
        assert!(!body.to_string().contains("CorrelationId"), "{body}");
        assert_eq!(app.calls_to(SOURCE).await, 1, "{status}");
    }
}

#[tokio::test]
async fn a_bearer_scheme_without_a_token_is_unauthenticated_without_a_call() {
    let app = spawn_app_with(small_data(), |config| {
        config.sources.get_mut(SOURCE).unwrap().forward.insert("token".into(), "authorization".into());
    })
    .await;
    app.reset_stats().await;
    let variables = json!({"filter": bc_only(json!({})), "first": 5});
    let body = app.query_with_headers(&operation("LedgerPage"), variables, &[("authorization", "Bearer ")]).await;
    assert_eq!(error_codes(&body), ["UNAUTHENTICATED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], SOURCE);
    assert_eq!(app.calls_to(SOURCE).await, 0);
}

#[tokio::test]
async fn a_company_named_in_the_url_reads_like_its_id() {
    let company = |name: &'static str| {
        move |config: &mut Config| {
            let source = config.sources.get_mut(SOURCE).unwrap();
            let root = source.base_url.as_str().split("/v2.0/").next().unwrap().to_owned();
            let path = format!("/v2.0/{TENANT}/{ENVIRONMENT}/api/v2.0/companies(name='{name}')/");
            source.base_url = format!("{root}{path}").parse().unwrap();
        }
    };
    let app = spawn_app_with(small_data(), company(COMPANY_NAME)).await;
    let (nodes, _) = app.walk(bc_only(json!({})), 500).await;
    assert_eq!(ids(&nodes), expected(&app, |_, _| true));

    let app = spawn_app_with(small_data(), company("Some Other Company")).await;
    let body = app.query(&operation("LedgerPage"), json!({"filter": bc_only(json!({}))})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_NOT_FOUND"], "{body}");
}

#[tokio::test]
async fn a_sku_list_too_long_for_one_url_is_checked_by_the_connector() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let number = data.items[data.entries[0].item].number.clone();
    let mut skus: Vec<String> = (0..400).map(|n| format!("NO-SUCH-ITEM-{n:07}")).collect();
    skus.push(number.clone());
    app.reset_stats().await;
    let (nodes, _) = app.walk(bc_only(json!({"skus": skus})), 500).await;
    assert_eq!(ids(&nodes), expected(&app, |d, e| d.items[e.item].number == number));
    // The list went nowhere near BC: one unfiltered read.
    assert_eq!(ledger_filters(&app).await, [""]);
    // BC would count entries the connector drops: no exact total.
    let body = app.query(COUNT, json!({"filter": bc_only(json!({"skus": skus}))})).await;
    assert_eq!(body["data"]["ledgerEntries"]["totalCount"], Value::Null, "{body}");
}

#[tokio::test]
async fn long_id_lists_are_read_in_url_sized_chunks() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let picked: Vec<&str> = data.entries.iter().take(150).map(|e| e.id.as_str()).collect();
    let global: Vec<String> = picked.iter().map(|id| format!("{SOURCE}:{id}")).collect();
    app.reset_stats().await;
    let (nodes, _) = app.walk(bc_only(json!({"ids": global})), 500).await;
    assert_eq!(ids(&nodes), expected(&app, |_, e| picked.contains(&e.id.as_str())));
    let filters = ledger_filters(&app).await;
    assert!(filters.len() > 1, "one URL cannot hold 150 ids: {filters:?}");
    assert_eq!(app.calls_to(SOURCE).await, filters.len() as u64);
    let mut asked: Vec<&str> = Vec::new();
    for filter in &filters {
        let inner = filter.strip_prefix('(').and_then(|f| f.strip_suffix(')')).unwrap();
        asked.extend(inner.split(" or ").map(|term| term.strip_prefix("id eq ").unwrap()));
    }
    let mut sorted = picked.clone();
    sorted.sort();
    assert_eq!(asked, sorted);
}

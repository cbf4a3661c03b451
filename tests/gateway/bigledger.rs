use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use ledger_gateway::mock::bigledger::{RateLimit, TenantData, API_KEY, COMPANY_ID};
use ledger_gateway::mock::trackstar;
use ledger_gateway::model::{LocationKind, SourceName};
use ledger_gateway::sources::bigledger::BigLedger;
use ledger_gateway::sources::Source;
use ledger_gateway::upstream::{Credentials, FingerprintKey};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{anchor, error_codes, operation, small_data, spawn_app, spawn_app_with, TestApp};

/// One entry the mock's documents should turn into, as the gateway shows it.
#[derive(Clone, Debug)]
struct Expected {
    id: String,
    date: DateTime<Utc>,
    event_type: &'static str,
    raw_event_type: String,
    quantity: Decimal,
    cost: Decimal,
    sku: String,
    item: String,
    location: String,
    updated: DateTime<Utc>,
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

fn tenant(app: &TestApp) -> Arc<TenantData> {
    app.mock.state.bigledger.tenant(API_KEY)
}

/// Every entry of the demo tenant, in the merged order.
fn expected_entries(data: &TenantData) -> Vec<Expected> {
    let mut all = Vec::new();
    for a in data.adjustments.iter().filter(|a| a.posted) {
        for line in &a.lines {
            let item = &data.items[line.item];
            all.push(Expected {
                id: format!("bigledger:adj:{}:{}:{}", a.date, a.id, line.id),
                date: midnight(a.date),
                event_type: "ADJUSTMENT",
                raw_event_type: format!("adjustment:{}", line.reason.unwrap_or(a.reason)),
                quantity: line.quantity,
                cost: line.total_cost(),
                sku: item.code.clone(),
                item: item.id.clone(),
                location: data.places[a.place].id.clone(),
                updated: a.posted_at.unwrap(),
            });
        }
    }
    for t in data.transfers.iter().filter(|t| t.status == "completed") {
        for line in &t.lines {
            let item = &data.items[line.item];
            let legs = [
                ("out", t.shipped_at.unwrap(), -line.shipped, t.from),
                ("in", t.delivered_at.unwrap(), line.received, t.to),
            ];
            for (leg, date, quantity, place) in legs {
                all.push(Expected {
                    id: format!("bigledger:xfer:{}:{}:{}:{leg}", t.date, t.id, line.id),
                    date,
                    event_type: "TRANSFER",
                    raw_event_type: "transfer".into(),
                    quantity,
                    cost: line.unit_cost * quantity,
                    sku: item.code.clone(),
                    item: item.id.clone(),
                    location: data.places[place].id.clone(),
                    updated: t.updated_at,
                });
            }
        }
    }
    all.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.id.cmp(&b.id)));
    all
}

fn expected(app: &TestApp, keep: impl Fn(&Expected) -> bool) -> Vec<String> {
    expected_entries(&tenant(app)).into_iter().filter(|e| keep(e)).map(|e| e.id).collect()
}

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes.iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect()
}

fn only_bigledger(extra: Value) -> Value {
    let mut filter = json!({"sources": ["bigledger"]});
    filter.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    filter
}

/// Requests to BigLedger as `path?key=value&...`, in arrival order per path.
async fn bigledger_requests(app: &TestApp) -> Vec<(String, BTreeMap<String, String>)> {
    let mut requests: Vec<(String, BTreeMap<String, String>)> = app
        .requests()
        .await
        .into_iter()
        .filter(|(path, _)| path.starts_with("/bigledger/"))
        .map(|(path, query)| (path, query.into_iter().collect()))
        .collect();
    // The two lists are read concurrently: compare them in a stable order.
    requests.sort_by(|a, b| a.0.cmp(&b.0));
    requests
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The gateway with a first date window wide enough that one window covers
/// a bounded query: its upstream calls are then exactly one per list read.
async fn spawn_with_wide_window() -> TestApp {
    spawn_app_with(small_data(), |config| {
        config.sources.get_mut("bigledger").unwrap().initial_window_secs = Some(500 * 86_400);
    })
    .await
}

#[tokio::test]
async fn walking_bigledger_yields_each_entry_once_newest_first() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let all = expected_entries(&data);
    assert!(all.len() >= 400, "{} entries", all.len());
    // The data has what makes synthesis and ordering hard.
    assert!(data.adjustments.iter().any(|a| !a.posted) && data.transfers.iter().any(|t| t.status != "completed"));
    assert!(data.adjustments.iter().any(|a| a.kind() == "mixed"));
    let completed = || data.transfers.iter().filter(|t| t.status == "completed");
    assert!(completed().any(|t| t.shipped_at.unwrap().date_naive() < t.date));
    assert!(completed().any(|t| t.delivered_at.unwrap().date_naive() > t.date));
    assert!(completed().flat_map(|t| &t.lines).any(|l| l.received < l.shipped));
    assert!(data.adjustments.windows(2).any(|w| w[0].date > w[1].date), "pages come in date order");
    let by_id: BTreeMap<&str, &Expected> = all.iter().map(|e| (e.id.as_str(), e)).collect();
    for first in [1, 7, 50, 500] {
        let (nodes, pages) = app.walk(only_bigledger(json!({})), first).await;
        let walked = ids(&nodes);
        assert_eq!(walked.len(), walked.iter().collect::<HashSet<_>>().len(), "first={first}: an entry repeats");
        assert_eq!(walked, all.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), "first={first}");
        assert_eq!(pages, all.len().div_ceil(first), "first={first}");
        for node in &nodes {
            let want = by_id[node["id"].as_str().unwrap()];
            assert_eq!(node["source"], "bigledger");
            assert_eq!(node["entryDate"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), want.date);
            assert_eq!(node["eventType"], want.event_type);
            assert_eq!(node["rawEventType"], want.raw_event_type.as_str());
            assert_eq!(node["quantity"], want.quantity.to_string());
            assert_eq!(node["sku"], want.sku.as_str());
            assert_eq!(node["itemId"], format!("bigledger:{}", want.item));
            assert_eq!(node["locationId"], format!("bigledger:{}", want.location));
            assert_eq!(node["warehouseId"], Value::Null);
        }
    }
}

#[tokio::test]
async fn synthesized_entries_carry_exact_costs_and_documents() {
    let app = spawn_app().await;
    let all = expected_entries(&tenant(&app));
    let query = "query($f: LedgerEntryFilter, $n: Int) { ledgerEntries(filter: $f, first: $n) {
        nodes { id amounts { cost currency } document { kind number } description } totalCount } }";
    let body = app.query(query, json!({"f": {"sources": ["bigledger"]}, "n": 500})).await;
    assert!(body["errors"].is_null(), "{body}");
    let nodes = body["data"]["ledgerEntries"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), all.len().min(500));
    for (node, want) in nodes.iter().zip(&all) {
        assert_eq!(node["id"], want.id.as_str());
        // Exact decimal text, trailing zeros included ("-37.00", not -37).
        assert_eq!(node["amounts"]["cost"], want.cost.to_string(), "{}", want.id);
        let kind = if want.event_type == "ADJUSTMENT" { "adjustment" } else { "transfer" };
        assert_eq!(node["document"]["kind"], kind);
        assert!(node["document"]["number"].as_str().unwrap().starts_with(if kind == "adjustment" {
            "ADJ-"
        } else {
            "XFR-"
        }));
        assert!(node["description"].is_string());
    }
    assert!(nodes.iter().any(|n| n["amounts"]["cost"].as_str().unwrap().ends_with('0')), "no trailing zero to check");
    // Documents are counted, not entries: no exact total.
    assert_eq!(body["data"]["ledgerEntries"]["totalCount"], Value::Null);
}

#[tokio::test]
async fn the_merged_ledger_interleaves_both_sources_exactly_once() {
    let app = spawn_app().await;
    let rows = app.mock.state.trackstar.tenant(trackstar::ACCESS_TOKEN);
    let mut all: Vec<(DateTime<Utc>, String, String)> = expected_entries(&tenant(&app))
        .into_iter()
        .map(|e| (e.date, "bigledger".to_owned(), e.id.trim_start_matches("bigledger:").to_owned()))
        .chain(rows.by_date.iter().map(|r| (r.entry_date, "trackstar".to_owned(), r.id.clone())))
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)).then_with(|| a.2.cmp(&b.2)));
    let want: Vec<String> = all.into_iter().map(|(_, source, native)| format!("{source}:{native}")).collect();
    for first in [13, 200] {
        let (nodes, _) = app.walk(json!({"sources": ["bigledger", "trackstar"]}), first).await;
        assert_eq!(ids(&nodes), want, "first={first}");
    }
}

#[tokio::test]
async fn event_types_choose_which_list_is_read() {
    let app = spawn_with_wide_window().await;
    // Ten days holding entries of both kinds.
    let all = expected_entries(&tenant(&app));
    let holds = |from: DateTime<Utc>, kind: &str| {
        all.iter().any(|e| e.event_type == kind && e.date >= from && e.date < from + Duration::days(10))
    };
    let from = (1..300)
        .map(|n| midnight(anchor().date_naive()) - Duration::days(n))
        .find(|from| holds(*from, "ADJUSTMENT") && holds(*from, "TRANSFER"))
        .unwrap();
    let to = from + Duration::days(10);
    let range = json!({"gte": from.to_rfc3339(), "lt": to.to_rfc3339()});
    let in_range = |e: &Expected| e.date >= from && e.date < to;
    let day = |at: DateTime<Utc>| at.date_naive().to_string();

    app.reset_stats().await;
    let (nodes, _) = app.walk(only_bigledger(json!({"eventTypes": ["ADJUSTMENT"], "entryDate": range})), 100).await;
    assert_eq!(ids(&nodes), expected(&app, |e| in_range(e) && e.event_type == "ADJUSTMENT"));
    assert!(!nodes.is_empty());
    // Adjustment days are entry days: exactly the range's days.
    let (first_day, last_day) = (day(from), day(to - Duration::days(1)));
    let window = [("status", "posted"), ("dateFrom", &first_day[..]), ("dateTo", &last_day[..]), ("limit", "200")];
    assert_eq!(bigledger_requests(&app).await, [("/bigledger/v1/inventory/adjustments".to_owned(), params(&window))]);

    app.reset_stats().await;
    let (nodes, _) = app.walk(only_bigledger(json!({"eventTypes": ["TRANSFER"], "entryDate": range})), 100).await;
    assert_eq!(ids(&nodes), expected(&app, |e| in_range(e) && e.event_type == "TRANSFER"));
    assert!(!nodes.is_empty());
    // Transfers are read with their skew: dated up to 8 days before the
    // range (shipped or delivered later) or 7 after it (shipped earlier).
    let (first_day, last_day) = (day(from - Duration::days(8)), day(to + Duration::days(6)));
    let window = [("status", "completed"), ("dateFrom", &first_day[..]), ("dateTo", &last_day[..]), ("limit", "200")];
    assert_eq!(bigledger_requests(&app).await, [("/bigledger/v1/inventory/transfers".to_owned(), params(&window))]);

    app.reset_stats().await;
    let (nodes, _) = app.walk(only_bigledger(json!({"entryDate": range})), 100).await;
    assert_eq!(ids(&nodes), expected(&app, in_range));
    let paths: Vec<String> = bigledger_requests(&app).await.into_iter().map(|(path, _)| path).collect();
    assert_eq!(paths, ["/bigledger/v1/inventory/adjustments", "/bigledger/v1/inventory/transfers"]);
}

#[tokio::test]
async fn event_types_bigledger_never_produces_skip_it_without_a_call() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let (nodes, _) = app.walk(json!({"eventTypes": ["RECEIPT", "SHIPMENT"]}), 50).await;
    assert!(nodes.iter().all(|n| n["source"] != "bigledger"));
    assert!(app.calls_to("trackstar").await > 0);
    assert_eq!(app.calls_to("bigledger").await, 0);
    // Ids of another source skip it as well.
    app.reset_stats().await;
    let (nodes, _) = app.walk(json!({"ids": ["trackstar:led_x"]}), 5).await;
    assert!(nodes.is_empty());
    assert_eq!(app.calls_to("bigledger").await, 0);
}

#[tokio::test]
async fn an_item_filter_becomes_item_id_on_both_lists() {
    let app = spawn_with_wide_window().await;
    let all = expected_entries(&tenant(&app));
    let item = all.iter().find(|e| e.event_type == "TRANSFER").unwrap().item.clone();
    let (from, to) = (anchor() - Duration::days(400), anchor() + Duration::days(30));
    let range = json!({"gte": from.to_rfc3339(), "lt": to.to_rfc3339()});
    app.reset_stats().await;
    let filter = only_bigledger(json!({"itemIds": [format!("bigledger:{item}")], "entryDate": range}));
    let (nodes, _) = app.walk(filter, 500).await;
    assert_eq!(ids(&nodes), expected(&app, |e| e.item == item));
    assert!(nodes.iter().any(|n| n["eventType"] == "TRANSFER"));
    let requests = bigledger_requests(&app).await;
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests.iter().all(|(_, q)| q.get("itemId") == Some(&item)), "{requests:?}");
}

#[tokio::test]
async fn a_location_filter_is_native_for_adjustments_and_checked_per_leg_for_transfers() {
    let app = spawn_with_wide_window().await;
    let place = tenant(&app).places[0].id.clone();
    let range = json!({"gte": (anchor() - Duration::days(400)).to_rfc3339(), "lt": (anchor() + Duration::days(30)).to_rfc3339()});
    app.reset_stats().await;
    let filter = only_bigledger(json!({"locationIds": [format!("bigledger:{place}")], "entryDate": range}));
    let (nodes, _) = app.walk(filter, 500).await;
    assert_eq!(ids(&nodes), expected(&app, |e| e.location == place));
    // Both legs of transfers touching the place appear only at the place.
    assert!(nodes.iter().any(|n| n["id"].as_str().unwrap().ends_with(":out")));
    assert!(nodes.iter().any(|n| n["id"].as_str().unwrap().ends_with(":in")));
    let requests = bigledger_requests(&app).await;
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].1.get("locationId"), Some(&place));
    assert!(requests[1].0.ends_with("/transfers") && !requests[1].1.keys().any(|k| k.contains("ocation")));
}

#[tokio::test]
async fn a_sku_is_resolved_to_its_exact_item_before_the_lists_are_read() {
    let app = spawn_with_wide_window().await;
    let data = tenant(&app);
    // BL-0007 has a variant BL-0007-RED that the fuzzy search also finds.
    let item = data.items.iter().find(|i| i.code == "BL-0007").unwrap();
    assert!(data.items.iter().any(|i| i.code == "BL-0007-RED"));
    let range = json!({"gte": (anchor() - Duration::days(400)).to_rfc3339(), "lt": (anchor() + Duration::days(30)).to_rfc3339()});
    app.reset_stats().await;
    let (nodes, _) = app.walk(only_bigledger(json!({"skus": ["BL-0007"], "entryDate": range})), 500).await;
    assert_eq!(ids(&nodes), expected(&app, |e| e.sku == "BL-0007"));
    assert!(!nodes.is_empty());
    let requests = bigledger_requests(&app).await;
    let paths: Vec<&str> = requests.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/bigledger/v1/inventory/adjustments", "/bigledger/v1/inventory/transfers", "/bigledger/v1/items"]
    );
    assert_eq!(requests[2].1, params(&[("search", "BL-0007"), ("limit", "200")]));
    assert_eq!(requests[0].1.get("itemId"), Some(&item.id));
    assert_eq!(requests[1].1.get("itemId"), Some(&item.id));

    // A sku no item has: one search, no list read, nothing found.
    app.reset_stats().await;
    let (nodes, _) = app.walk(only_bigledger(json!({"skus": ["NO-SUCH-SKU"]})), 10).await;
    assert!(nodes.is_empty());
    let paths: Vec<String> = bigledger_requests(&app).await.into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["/bigledger/v1/items"]);
}

#[tokio::test]
async fn user_text_reaches_bigledger_only_as_encoded_values() {
    let app = spawn_app().await;
    let hostile = "BL-0001&itemId=x&limit=1";
    app.reset_stats().await;
    let (nodes, _) = app.walk(only_bigledger(json!({"skus": [hostile]})), 10).await;
    assert!(nodes.is_empty());
    let requests = bigledger_requests(&app).await;
    assert_eq!(requests, [("/bigledger/v1/items".to_owned(), params(&[("search", hostile), ("limit", "200")]))]);
}

#[tokio::test]
async fn updated_at_is_filtered_in_the_gateway() {
    let app = spawn_app().await;
    let since = anchor() - Duration::days(60);
    app.reset_stats().await;
    let (nodes, _) = app.walk(only_bigledger(json!({"updatedAt": {"gt": since.to_rfc3339()}})), 100).await;
    assert_eq!(ids(&nodes), expected(&app, |e| e.updated > since));
    assert!(!nodes.is_empty());
    for (_, query) in bigledger_requests(&app).await {
        assert!(query.keys().all(|k| !k.to_lowercase().contains("updated")), "{query:?}");
    }
}

#[tokio::test]
async fn ids_read_only_their_documents_days() {
    let app = spawn_app().await;
    let all = expected_entries(&tenant(&app));
    let adjustment = all.iter().find(|e| e.event_type == "ADJUSTMENT").unwrap();
    let leg = all.iter().find(|e| e.id.ends_with(":in")).unwrap();
    app.reset_stats().await;
    let wanted = [adjustment.id.clone(), leg.id.clone(), "bigledger:adj:2020-01-01:nope:nope".to_owned()];
    let (nodes, _) = app.walk(json!({"ids": wanted}), 10).await;
    assert_eq!(ids(&nodes), expected(&app, |e| e.id == adjustment.id || e.id == leg.id));
    assert!(app.calls_to("bigledger").await > 0);
    assert_eq!(app.calls_to("trackstar").await, 0);
    // Only ADJUSTMENT ids: the transfer list is never read.
    app.reset_stats().await;
    let (nodes, _) = app.walk(json!({"ids": [adjustment.id]}), 10).await;
    assert_eq!(ids(&nodes), vec![adjustment.id.as_str()]);
    assert!(bigledger_requests(&app).await.iter().all(|(p, _)| p.ends_with("/adjustments")));
}

#[tokio::test]
async fn one_entry_is_found_by_id_for_both_kinds_and_an_unknown_one_is_null() {
    let app = spawn_app().await;
    let all = expected_entries(&tenant(&app));
    let query = "query($id: ID!) { ledgerEntry(id: $id) { id eventType quantity sku locationId amounts { cost } } }";
    let picks = [
        all.iter().find(|e| e.event_type == "ADJUSTMENT").unwrap(),
        all.iter().find(|e| e.id.ends_with(":out")).unwrap(),
        all.iter().find(|e| e.id.ends_with(":in")).unwrap(),
    ];
    for want in picks {
        app.reset_stats().await;
        let body = app.query(query, json!({"id": want.id})).await;
        assert!(body["errors"].is_null(), "{body}");
        let entry = &body["data"]["ledgerEntry"];
        assert_eq!(entry["id"], want.id.as_str());
        assert_eq!(entry["quantity"], want.quantity.to_string());
        assert_eq!(entry["amounts"]["cost"], want.cost.to_string());
        assert_eq!(entry["locationId"], format!("bigledger:{}", want.location));
        // One day of one list.
        let requests = bigledger_requests(&app).await;
        assert_eq!(requests.len(), 1, "{requests:?}");
        let day = want.id.split(':').nth(2).unwrap();
        assert_eq!(
            (requests[0].1.get("dateFrom"), requests[0].1.get("dateTo")),
            (Some(&day.to_owned()), Some(&day.to_owned()))
        );
    }
    app.reset_stats().await;
    let body = app.query(query, json!({"id": "bigledger:adj:2026-01-05:adj_none:adjitem_none"})).await;
    assert!(body["errors"].is_null() && body["data"]["ledgerEntry"].is_null(), "{body}");
    assert_eq!(app.calls_to("bigledger").await, 1);
    // Not a BigLedger entry id at all: null without a call.
    app.reset_stats().await;
    let body = app.query(query, json!({"id": "bigledger:led_123"})).await;
    assert!(body["errors"].is_null() && body["data"]["ledgerEntry"].is_null(), "{body}");
    assert_eq!(app.calls_to("bigledger").await, 0);
}

#[tokio::test]
async fn rejected_bigledger_credentials_name_the_source_and_keep_the_other_sources_entries() {
    let app = spawn_app_with(small_data(), |config| {
        let source = config.sources.get_mut("bigledger").unwrap();
        source.credentials.insert("api_key".into(), SecretString::from("not-a-bigledger-key"));
    })
    .await;
    app.reset_stats().await;
    let body = app.query(&operation("LedgerPage"), json!({"first": 5, "filter": {"eventTypes": ["ADJUSTMENT"]}})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_UNAUTHORIZED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], "bigledger");
    assert_eq!(body["errors"][0]["path"], json!(["ledgerEntries"]));
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 5);
    assert!(edges.iter().all(|e| e["node"]["source"] != "bigledger"));
    let text = body.to_string();
    assert!(
        !text.contains("not-a-bigledger-key") && !text.contains("127.0.0.1") && !text.contains(COMPANY_ID),
        "{text}"
    );
    // Not transient: one call, no retries.
    assert_eq!(app.calls_to("bigledger").await, 1);
}

#[tokio::test]
async fn a_key_without_access_to_the_company_is_forbidden() {
    let app = spawn_app_with(small_data(), |config| {
        let source = config.sources.get_mut("bigledger").unwrap();
        source.credentials.insert("company_id".into(), SecretString::from("comp_other"));
    })
    .await;
    let body = app.query(&operation("LedgerPage"), json!({"first": 5, "filter": {"sources": ["bigledger"]}})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_FORBIDDEN"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], "bigledger");
}

#[tokio::test]
async fn a_rate_limited_bigledger_reports_when_to_retry() {
    let app = spawn_app().await;
    app.mock.state.bigledger.limit_rate(Some(RateLimit { requests: 1, per: StdDuration::from_secs(600) }));
    app.reset_stats().await;
    // Both lists are read for the first window: the second call is over the limit.
    let body = app.query(&operation("LedgerPage"), json!({"first": 5, "filter": {"sources": ["bigledger"]}})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_RATE_LIMITED"], "{body}");
    let error = &body["errors"][0]["extensions"];
    assert_eq!(error["source"], "bigledger");
    let wait = error["retryAfterSeconds"].as_u64().unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    // Longer than worth waiting inside a request: no retry.
    assert_eq!(app.calls_to("bigledger").await, 2);
}

#[tokio::test]
async fn a_base_url_with_the_api_prefix_reads_the_same_ledger() {
    let app = spawn_app_with(small_data(), |config| {
        let source = config.sources.get_mut("bigledger").unwrap();
        source.base_url = source.base_url.join("../api/v1/").unwrap();
    })
    .await;
    app.reset_stats().await;
    let (nodes, _) = app.walk(only_bigledger(json!({})), 200).await;
    assert_eq!(ids(&nodes), expected(&app, |_| true));
    let requests = bigledger_requests(&app).await;
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|(path, _)| path.starts_with("/bigledger/api/v1/inventory/")), "{requests:?}");
}

#[tokio::test]
async fn a_first_page_costs_a_bounded_number_of_calls() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let body = app.query(&operation("LedgerPage"), json!({"first": 20, "filter": {"sources": ["bigledger"]}})).await;
    assert_eq!(body["data"]["ledgerEntries"]["edges"].as_array().unwrap().len(), 20);
    // Each list walked on its own: a week first, then windows sized to
    // the density the first showed.
    let calls = app.calls_to("bigledger").await;
    assert!((2..=6).contains(&calls), "{calls} calls");
}

#[tokio::test]
async fn readiness_covers_bigledger() {
    let app = spawn_app().await;
    let ready: Value = app.client.get(format!("{}/ready", app.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["sources"]["bigledger"]["ready"], true, "{ready}");
}

fn connector(app: &TestApp) -> (BigLedger, Credentials) {
    let config = app.mock.sources_config().remove("bigledger").unwrap();
    let fields = config.credentials.clone();
    let source = BigLedger::new(SourceName::new("bigledger"), &config, app.mock.state.options.clock);
    (source, Credentials::new(&FingerprintKey::random(), fields))
}

#[tokio::test]
async fn items_and_locations_are_looked_up_one_get_per_key() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let (source, credentials) = connector(&app);
    let limits = source.capabilities().items.unwrap();
    assert_eq!((limits.max_keys, limits.concurrency), (1, 5));

    let keys = vec![data.items[0].id.clone(), data.items[6].id.clone(), "item_unknown".to_owned()];
    app.reset_stats().await;
    let items = source.items(&credentials, &keys).await.unwrap();
    assert_eq!(app.calls_to("bigledger").await, 3);
    assert_eq!(items.len(), 2);
    let (item, want) = (&items[&keys[0]], &data.items[0]);
    assert_eq!(item.sku.as_deref(), Some(want.code.as_str()));
    assert_eq!(item.cost.as_ref().unwrap().amount.to_string(), want.cost.to_string());
    assert_eq!(item.cost.as_ref().unwrap().currency.as_deref(), Some("MYR"));
    assert_eq!(item.on_hand, Some(want.stock.iter().map(|(_, q)| *q).sum()));
    assert_eq!(item.stock_levels.len(), want.stock.len());

    let keys = vec![data.places[4].id.clone(), "loc_unknown".to_owned()];
    app.reset_stats().await;
    let locations = source.locations(&credentials, &keys).await.unwrap();
    assert_eq!(app.calls_to("bigledger").await, 2);
    assert_eq!(locations.len(), 1);
    let location = &locations[&keys[0]];
    assert_eq!(location.name.as_deref(), Some(data.places[4].name.as_str()));
    assert_eq!(location.kind, LocationKind::Store);
}

#[tokio::test]
async fn an_expired_cursor_rereads_the_window_from_its_first_page() {
    // One adjustment a page, so a day with several needs cursors.
    let app = spawn_app_with(small_data(), |config| {
        let source = config.sources.get_mut("bigledger").unwrap();
        source.page_size = Some(1);
        source.initial_window_secs = Some(500 * 86_400);
    })
    .await;
    let data = tenant(&app);
    let mut per_day: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    for a in data.adjustments.iter().filter(|a| a.posted) {
        *per_day.entry(a.date).or_default() += 1;
    }
    let (&day, &documents) = per_day.iter().find(|(_, n)| **n >= 2).expect("a day with several adjustments");
    let from = midnight(day);
    let range = json!({"gte": from.to_rfc3339(), "lt": (from + Duration::days(1)).to_rfc3339()});
    app.mock.state.bigledger.expire_next_cursor();
    app.reset_stats().await;
    let (nodes, _) = app.walk(only_bigledger(json!({"eventTypes": ["ADJUSTMENT"], "entryDate": range})), 100).await;
    assert_eq!(ids(&nodes), expected(&app, |e| e.event_type == "ADJUSTMENT" && e.date == from));
    // First page, the rejected cursor, the first page again, then the rest.
    let requests = bigledger_requests(&app).await;
    let with_cursor = requests.iter().filter(|(_, q)| q.contains_key("cursor")).count();
    assert_eq!((requests.len(), with_cursor), (documents + 2, documents), "{requests:?}");
}

#[tokio::test]
async fn a_callers_forwarded_key_selects_that_callers_bigledger_data() {
    let app = spawn_app().await;
    let query = operation("LedgerPage");
    let variables = json!({"first": 5, "filter": {"sources": ["bigledger"]}});
    let mine = app.query_with_headers(&query, variables.clone(), &[("x-bigledger-api-key", "blg_alice")]).await;
    assert!(mine["errors"].is_null(), "{mine}");
    let alice: Vec<String> =
        expected_entries(&app.mock.state.bigledger.tenant("blg_alice")).into_iter().map(|e| e.id).collect();
    let nodes: Vec<Value> =
        mine["data"]["ledgerEntries"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect();
    assert_eq!(ids(&nodes), alice[..5]);
    let demo = app.query(&query, variables).await;
    assert_ne!(
        demo["data"]["ledgerEntries"]["edges"][0]["node"]["id"],
        mine["data"]["ledgerEntries"]["edges"][0]["node"]["id"]
    );
}

#[tokio::test]
async fn the_mock_answers_bad_requests_with_bigledgers_error_bodies() {
    let app = spawn_app().await;
    let base = app.mock.url("bigledger").join("v1/").unwrap();
    let get = |path: &str, key: &str| {
        app.client
            .get(base.join(path).unwrap())
            .header("authorization", format!("Bearer {key}"))
            .header("x-company-id", COMPANY_ID)
            .send()
    };
    for (path, status, code, field) in [
        ("inventory/adjustments?limit=201", 400, "VALIDATION_ERROR", Some("limit")),
        ("inventory/adjustments?dateFrom=2026-1-5", 400, "VALIDATION_ERROR", Some("dateFrom")),
        ("inventory/adjustments?colour=red", 400, "VALIDATION_ERROR", Some("colour")),
        ("inventory/adjustments?cursor=bm9wZQ", 400, "VALIDATION_ERROR", Some("cursor")),
        ("inventory/adjustments?dateFrom=2026-02-01&dateTo=2026-01-01", 422, "VALIDATION_ERROR", Some("dateTo")),
        ("inventory/transfers?status=lost", 422, "VALIDATION_ERROR", Some("status")),
        ("items/item_nope", 404, "NOT_FOUND", None),
        ("locations/loc_nope", 404, "NOT_FOUND", None),
    ] {
        let response = get(path, API_KEY).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], false, "{path}");
        assert_eq!(body["error"]["code"], code, "{path}");
        assert!(body["error"]["requestId"].is_string() && body["meta"]["requestId"].is_string(), "{path}");
        assert_eq!(body["error"]["details"][0]["field"].as_str(), field, "{path}");
    }
    let response = get("items", "sk_not_bigledger").await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "UNAUTHORIZED");
    // A list page and its cursor.
    let page: Value = get("inventory/adjustments?limit=2", API_KEY).await.unwrap().json().await.unwrap();
    assert_eq!(page["pagination"]["hasMore"], true);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let cursor = page["pagination"]["nextCursor"].as_str().unwrap();
    let next: Value =
        get(&format!("inventory/adjustments?limit=2&cursor={cursor}"), API_KEY).await.unwrap().json().await.unwrap();
    assert_ne!(next["data"][0]["id"], page["data"][0]["id"]);
}

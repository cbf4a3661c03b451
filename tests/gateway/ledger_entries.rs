use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use ledger_gateway::mock::trackstar::{Row, TenantData, ACCESS_TOKEN};
use serde_json::{json, Value};

use crate::helpers::{anchor, error_codes, operation, spawn_app, TestApp};

fn tenant(app: &TestApp) -> std::sync::Arc<TenantData> {
    app.mock.state.trackstar.tenant(ACCESS_TOKEN)
}

/// Global ids of the rows `keep` selects, in the merged order.
fn expected(app: &TestApp, keep: impl Fn(&TenantData, &Row) -> bool) -> Vec<String> {
    let data = tenant(app);
    let mut rows: Vec<&Row> = data.by_date.iter().map(|r| r.as_ref()).filter(|r| keep(&data, r)).collect();
    rows.sort_by(|a, b| b.entry_date.cmp(&a.entry_date).then_with(|| a.id.cmp(&b.id)));
    rows.iter().map(|r| format!("trackstar:{}", r.id)).collect()
}

/// These tests are about Trackstar's dialect; Business Central has its own.
static TRACKSTAR_ONLY: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!({"sources": ["trackstar"]}));

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes.iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

#[tokio::test]
async fn walking_every_page_yields_each_entry_once_newest_first() {
    let app = spawn_app().await;
    let all = expected(&app, |_, _| true);
    assert_eq!(all.len(), 400);
    for first in [7, 50, 500] {
        let (nodes, pages) = app.walk(TRACKSTAR_ONLY.clone(), first).await;
        let walked = ids(&nodes);
        assert_eq!(walked.len(), walked.iter().collect::<HashSet<_>>().len(), "first={first}: an entry repeats");
        assert_eq!(walked, all, "first={first}");
        assert_eq!(pages, all.len().div_ceil(first).max(1), "first={first}");
        let dates: Vec<DateTime<Utc>> = nodes.iter().map(|n| at(n["entryDate"].as_str().unwrap())).collect();
        assert!(dates.windows(2).all(|w| w[0] >= w[1]), "first={first}: not newest first");
    }
}

#[tokio::test]
async fn entries_sharing_a_timestamp_are_neither_lost_nor_repeated() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let tie =
        data.by_date.windows(2).find(|w| w[0].entry_date == w[1].entry_date).expect("mock data has same-second bursts")
            [0]
        .entry_date;
    let (from, to) = (tie - Duration::days(2), tie + Duration::days(2));
    let filter = json!({"sources": ["trackstar"], "entryDate": {"gte": from.to_rfc3339(), "lte": to.to_rfc3339()}});
    let want = expected(&app, |_, r| r.entry_date >= from && r.entry_date <= to);
    // Page size 1: every tie straddles a page boundary.
    let (nodes, pages) = app.walk(filter, 1).await;
    assert_eq!(ids(&nodes), want);
    assert_eq!(pages, want.len());
}

#[tokio::test]
async fn entry_date_and_updated_at_ranges_filter_exactly() {
    let app = spawn_app().await;
    let (gte, lt) = (anchor() - Duration::days(90), anchor() - Duration::days(30));
    let filter = json!({"sources": ["trackstar"], "entryDate": {"gte": gte.to_rfc3339(), "lt": lt.to_rfc3339()}});
    let (nodes, _) = app.walk(filter, 40).await;
    assert_eq!(ids(&nodes), expected(&app, |_, r| r.entry_date >= gte && r.entry_date < lt));

    let updated = anchor() - Duration::days(20);
    let (nodes, _) = app.walk(json!({"sources": ["trackstar"], "updatedAt": {"gt": updated.to_rfc3339()}}), 40).await;
    assert_eq!(ids(&nodes), expected(&app, |_, r| r.updated_date > updated));
}

#[tokio::test]
async fn event_types_are_pushed_down_as_native_names() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let (nodes, _) = app.walk(json!({"sources": ["trackstar"], "eventTypes": ["RECEIPT", "TRANSFER"]}), 100).await;
    assert_eq!(ids(&nodes), expected(&app, |_, r| matches!(r.event_type, "inbound_receipt" | "movement")));
    assert!(nodes.iter().all(|n| matches!(n["eventType"].as_str(), Some("RECEIPT" | "TRANSFER"))));
    let requests = app.requests().await;
    assert!(!requests.is_empty());
    for (path, query) in requests {
        assert_eq!(path, "/trackstar/wms/inventory/ledger");
        assert!(query.contains(&("event_type[in]".into(), "inbound_receipt,movement".into())), "{query:?}");
    }
}

#[tokio::test]
async fn event_types_a_source_never_produces_skip_it_without_a_call() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let (nodes, _) = app.walk(json!({"sources": ["trackstar"], "eventTypes": ["JOURNAL"]}), 10).await;
    assert!(nodes.is_empty());
    assert_eq!(app.calls_to("trackstar").await, 0);
}

#[tokio::test]
async fn skus_items_and_locations_filter_in_the_gateway() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let sample = &data.by_date[10];
    let sku = data.items[sample.item].sku.clone();
    let (nodes, _) = app.walk(json!({"sources": ["trackstar"], "skus": [sku]}), 5).await;
    assert_eq!(ids(&nodes), expected(&app, |d, r| d.items[r.item].sku == sku));
    assert!(!nodes.is_empty());

    let item = data.items[sample.item].id.clone();
    let item_ids = json!([format!("trackstar:{item}"), "other-source:x"]);
    let (nodes, _) = app.walk(json!({"sources": ["trackstar"], "itemIds": item_ids}), 5).await;
    assert_eq!(ids(&nodes), expected(&app, |d, r| d.items[r.item].id == item));

    let warehouse = data.warehouses[sample.warehouse].id.clone();
    let (nodes, _) =
        app.walk(json!({"sources": ["trackstar"], "locationIds": [format!("trackstar:{warehouse}")]}), 50).await;
    assert_eq!(ids(&nodes), expected(&app, |d, r| d.warehouses[r.warehouse].id == warehouse));
    // Trackstar cannot filter these: no such parameter ever reaches it.
    for (_, query) in app.requests().await {
        assert!(
            query.iter().all(|(k, _)| !k.starts_with("sku") && !k.contains("item") && !k.contains("warehouse")),
            "{query:?}"
        );
    }
}

#[tokio::test]
async fn ids_are_fetched_in_one_call_with_other_filters_applied_in_the_gateway() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let picked: Vec<&Row> = data.by_id.iter().take(5).map(|r| r.as_ref()).collect();
    let global: Vec<String> = picked.iter().map(|r| format!("trackstar:{}", r.id)).collect();
    app.reset_stats().await;
    let (nodes, _) = app.walk(json!({"ids": global}), 10).await;
    let wanted: HashSet<&str> = picked.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids(&nodes), expected(&app, |_, r| wanted.contains(r.id.as_str())));
    assert_eq!(app.calls_to("trackstar").await, 1);

    // Trackstar ignores other filters when ids are given: the gateway applies them.
    let event = picked[0].event_type;
    let unified = match event {
        "inbound_receipt" => "RECEIPT".to_owned(),
        "order_shipment" => "SHIPMENT".to_owned(),
        "movement" => "TRANSFER".to_owned(),
        other => other.to_uppercase(),
    };
    let (nodes, _) = app.walk(json!({"ids": global, "eventTypes": [unified]}), 10).await;
    assert_eq!(ids(&nodes), expected(&app, |_, r| wanted.contains(r.id.as_str()) && r.event_type == event));
}

#[tokio::test]
async fn user_text_reaches_trackstar_only_as_encoded_values() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let hostile = "x&limit=1&ids[in]=y";
    let (nodes, _) = app.walk(json!({"ids": [format!("trackstar:{hostile}")]}), 10).await;
    assert!(nodes.is_empty());
    let requests = app.requests().await;
    assert_eq!(requests.len(), 1);
    let (_, query) = &requests[0];
    assert_eq!(query.iter().filter(|(k, _)| k == "ids[in]").count(), 1, "{query:?}");
    assert!(query.contains(&("ids[in]".into(), hostile.into())), "{query:?}");
}

#[tokio::test]
async fn trackstar_receives_whole_second_dates_and_a_bounded_limit() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let filter = json!({"sources": ["trackstar"], "entryDate": {"gt": "2026-03-01T10:00:00.250Z", "lte": "2026-04-01T00:00:00.5Z"}});
    let (nodes, _) = app.walk(filter, 20).await;
    let gt = at("2026-03-01T10:00:00.250Z");
    let lte = at("2026-04-01T00:00:00.5Z");
    assert_eq!(ids(&nodes), expected(&app, |_, r| r.entry_date > gt && r.entry_date <= lte));
    let format = regex_lite_date();
    for (_, query) in app.requests().await {
        for (key, value) in &query {
            if key.starts_with("entry_date[") {
                assert!(format(value), "{key}={value}");
            }
            if key == "limit" {
                let limit: usize = value.parse().unwrap();
                assert!((1..=1000).contains(&limit));
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, nothing else.
fn regex_lite_date() -> impl Fn(&str) -> bool {
    |value: &str| {
        value.len() == 20
            && value.char_indices().all(|(i, c)| match i {
                4 | 7 => c == '-',
                10 => c == 'T',
                13 | 16 => c == ':',
                19 => c == 'Z',
                _ => c.is_ascii_digit(),
            })
    }
}

#[tokio::test]
async fn sources_filter_accepts_configured_names_and_rejects_others() {
    let app = spawn_app().await;
    let (nodes, _) = app.walk(json!({"sources": ["trackstar"]}), 500).await;
    assert_eq!(nodes.len(), 400);
    app.reset_stats().await;
    let body = app.query(&operation("LedgerPage"), json!({"filter": {"sources": ["nope"]}})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("trackstar"), "{body}");
    assert_eq!(app.calls_to("trackstar").await, 0);
}

#[tokio::test]
async fn one_entry_is_found_by_id_and_an_unknown_one_is_null() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let row = &data.by_id[3];
    let query = "query($id: ID!) { ledgerEntry(id: $id) { id quantity sku entryDate } }";
    let body = app.query(query, json!({"id": format!("trackstar:{}", row.id)})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["ledgerEntry"]["quantity"], json!(row.quantity.to_string()));
    assert_eq!(body["data"]["ledgerEntry"]["sku"], json!(data.items[row.item].sku));

    for unknown in ["trackstar:led_doesnotexist", "unconfigured:1"] {
        let body = app.query(query, json!({"id": unknown})).await;
        assert!(body["errors"].is_null(), "{body}");
        assert!(body["data"]["ledgerEntry"].is_null());
    }
    let body = app.query(query, json!({"id": "no-colon"})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn quantities_are_exact_decimal_strings() {
    let app = spawn_app().await;
    let body = app.query(&operation("LedgerPage"), json!({"first": 20, "filter": {"sources": ["trackstar"]}})).await;
    for edge in body["data"]["ledgerEntries"]["edges"].as_array().unwrap() {
        let quantity = &edge["node"]["quantity"];
        assert!(quantity.is_string(), "{quantity}");
        quantity.as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap();
    }
}

#[tokio::test]
async fn a_first_page_costs_a_bounded_number_of_upstream_calls() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let body = app
        .query(&operation("LedgerPage"), json!({"first": 20, "filter": {"entryDate": {"lte": anchor().to_rfc3339()}}}))
        .await;
    assert_eq!(body["data"]["ledgerEntries"]["edges"].as_array().unwrap().len(), 20);
    let calls = app.calls_to("trackstar").await;
    // 400 entries a year, a 1-day first window: a few widening windows.
    assert!((1..=6).contains(&calls), "{calls} calls");
}

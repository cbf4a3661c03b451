//! What the window walk (Trackstar, BigLedger) costs in upstream calls: the
//! end of a ledger, dense ledgers, gateway-side filters, deep pages, and the
//! queries each list is sent. Counts are exact: the clock and data are fixed.

use std::collections::HashSet;

use chrono::Duration;
use ledger_gateway::mock::MockOptions;
use serde_json::{json, Value};

use crate::helpers::{anchor, clock, operation, spawn_app_with, TestApp};

fn demo_data() -> MockOptions {
    MockOptions::at(clock())
}

/// Calls per ledger page while following `filter` for `pages` pages (all when `None`).
async fn page_costs(app: &TestApp, upstream: &str, filter: Value, first: usize, pages: Option<usize>) -> Vec<u64> {
    let query = operation("LedgerPage");
    let (mut after, mut costs, mut seen) = (Value::Null, Vec::new(), HashSet::new());
    loop {
        app.reset_stats().await;
        let body = app.query(&query, json!({"filter": filter, "first": first, "after": after})).await;
        assert!(body["errors"].is_null(), "{body}");
        costs.push(app.calls_to(upstream).await);
        let connection = &body["data"]["ledgerEntries"];
        for edge in connection["edges"].as_array().unwrap() {
            assert!(seen.insert(edge["node"]["id"].as_str().unwrap().to_owned()), "an entry repeats");
        }
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() || Some(costs.len()) == pages {
            return costs;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
}

#[tokio::test]
async fn a_filter_matching_nothing_ends_at_the_oldest_document_with_a_probe() {
    let app = spawn_app_with(demo_data(), |_| {}).await;
    app.reset_stats().await;
    // Two skus: not pushed down (one `itemId` only), so the whole history is read.
    let filter = json!({"sources": ["bigledger"], "skus": ["NO-SUCH-1", "NO-SUCH-2"]});
    let body = app.query(&operation("LedgerPage"), json!({"filter": filter, "first": 10})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["ledgerEntries"]["edges"], json!([]));
    assert_eq!(body["data"]["ledgerEntries"]["pageInfo"]["hasNextPage"], false);
    // Windows grow to full pages as nothing matches; at the oldest
    // document a `limit=1` probe per list ends the walk (one more crossed a
    // quiet stretch). It used to double back to 1919: 122 calls.
    assert_eq!(app.calls_to("bigledger").await, 13);
    let requests = app.requests().await;
    let probes = requests.iter().filter(|(_, q)| q.contains(&("limit".into(), "1".into()))).count();
    assert_eq!(probes, 3, "{requests:?}");
}

#[tokio::test]
async fn a_dense_ledger_with_small_upstream_pages_costs_about_first_over_page_size_plus_two() {
    let app = spawn_app_with(MockOptions { entries: 20_000, ..demo_data() }, |config| {
        config.sources.get_mut("trackstar").unwrap().page_size = Some(50);
    })
    .await;
    // 450 entries in pages of 50: 9 calls at least. Windows span several
    // upstream pages, sized to what the page still needs; no cascade of
    // near-empty windows (this used to cost 109-116 calls a page).
    let costs = page_costs(&app, "trackstar", json!({"sources": ["trackstar"]}), 450, Some(4)).await;
    assert_eq!(costs, [12, 11, 12, 10]);
}

#[tokio::test]
async fn a_filter_only_the_gateway_applies_widens_the_windows() {
    let app = spawn_app_with(demo_data(), |_| {}).await;
    app.reset_stats().await;
    let body = app
        .query(
            r#"{ item(id: "trackstar:inv_3afaea8dc6bb") { ledgerEntries(first: 3) { edges { node { id } } } } }"#,
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["item"]["ledgerEntries"]["edges"].as_array().unwrap().len(), 3);
    let stats = app.stats().await;
    // One item in 300: windows widen to the density of matching entries,
    // up to the upstream page (1000). It used to cost 119 ledger calls.
    assert_eq!(stats["by_route"]["GET /trackstar/wms/inventory/ledger"], 6, "{stats}");
}

#[tokio::test]
async fn deep_pages_and_the_last_cost_what_the_first_costs() {
    let app = spawn_app_with(MockOptions { entries: 5_000, ..demo_data() }, |_| {}).await;
    let costs = page_costs(&app, "trackstar", json!({"sources": ["trackstar"]}), 50, None).await;
    assert_eq!(costs.len(), 100);
    let (first, hundredth, last) = (costs[0], costs[99 - 1], costs[costs.len() - 1]);
    // The density learned is carried in the cursor: no page relearns it.
    // The last page also reads the empty window below the oldest entry and
    // one probe that finds nothing under it.
    assert_eq!((first, hundredth, last), (2, 1, 3), "{costs:?}");
    assert!(costs[..costs.len() - 1].iter().all(|c| *c <= first), "{costs:?}");
}

#[tokio::test]
async fn bigledger_widens_only_the_transfers_by_their_skew_and_trackstar_asks_gte_and_lte() {
    let app = spawn_app_with(demo_data(), |_| {}).await;
    let (from, to) = (anchor() - Duration::days(20), anchor() - Duration::days(18));
    let range = json!({"gte": from.to_rfc3339(), "lt": to.to_rfc3339()});
    app.reset_stats().await;
    let body = app.query(&operation("LedgerPage"), json!({"filter": {"entryDate": range}, "first": 5})).await;
    assert!(body["errors"].is_null(), "{body}");
    let day = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%d").to_string();
    let mut transfers_to = None;
    for (path, query) in app.requests().await {
        let param = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        if path.ends_with("/inventory/adjustments") {
            // An adjustment is dated by its own day: the two days asked, no more.
            assert!(param("dateFrom") >= Some(day(from)) && param("dateTo") < Some(day(to)), "{query:?}");
        } else if path.ends_with("/inventory/transfers") {
            transfers_to = transfers_to.max(param("dateTo"));
        } else if path.ends_with("/wms/inventory/ledger") {
            assert!(param("entry_date[lte]").is_some() && param("entry_date[lt]").is_none(), "{query:?}");
        }
    }
    // A transfer dated up to a week after the range can hold entries in it.
    assert!(transfers_to > Some(day(to)), "transfers keep their week of skew");
}

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use ledger_gateway::mock::trackstar;
use serde_json::{json, Value};

use crate::helpers::{operation, small_data, spawn_app, spawn_app_with, TestApp};

/// The merged order's key for a node: entryDate descending with undated
/// entries last, then source, then nativeId.
fn order_key(node: &Value) -> (bool, std::cmp::Reverse<Option<DateTime<Utc>>>, String, String) {
    let date: Option<DateTime<Utc>> = node["entryDate"].as_str().map(|d| d.parse().unwrap());
    let text = |field: &str| node[field].as_str().unwrap().to_owned();
    (date.is_none(), std::cmp::Reverse(date), text("source"), text("nativeId"))
}

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes.iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect()
}

/// Every configured source walked on its own, in one list per source.
async fn per_source(app: &TestApp, filter: &Value) -> BTreeMap<String, Vec<Value>> {
    let sources: Vec<String> = app_sources(app).await;
    let mut walks = BTreeMap::new();
    for source in sources {
        let mut filter = filter.clone();
        filter["sources"] = json!([source]);
        let (nodes, _) = app.walk(filter, 500).await;
        walks.insert(source, nodes);
    }
    walks
}

async fn app_sources(app: &TestApp) -> Vec<String> {
    let body: Value = app.client.get(format!("{}/ready", app.url)).send().await.unwrap().json().await.unwrap();
    body["sources"].as_object().unwrap().keys().cloned().collect()
}

/// Walks the merged ledger with several page sizes and checks it is exactly
/// the merge of the per-source walks: each entry once, in merged order.
async fn assert_merged_walks(app: &TestApp, filter: Value) {
    let walks = per_source(app, &filter).await;
    let mut expected: Vec<Value> = walks.values().flatten().cloned().collect();
    expected.sort_by_key(order_key);
    assert!(
        walks.values().filter(|w| !w.is_empty()).count() >= 2,
        "needs entries from two sources: {:?}",
        walks.keys()
    );
    for first in [1, 13, 100, 500] {
        if first == 1 && expected.len() > 600 {
            continue;
        }
        let (nodes, _) = app.walk(filter.clone(), first).await;
        let walked = ids(&nodes);
        assert_eq!(walked.len(), walked.iter().collect::<HashSet<_>>().len(), "first={first}: an entry repeats");
        assert_eq!(walked, ids(&expected), "first={first}");
    }
}

#[tokio::test]
async fn the_merged_ledger_is_every_sources_entries_once_in_order() {
    let app = spawn_app().await;
    let sources = app_sources(&app).await;
    if sources.len() < 2 {
        // Two tenants of one upstream are two sources all the same.
        let app = spawn_app_with(small_data(), second_trackstar).await;
        assert_merged_walks(&app, json!({})).await;
    } else {
        assert_merged_walks(&app, json!({})).await;
    }
}

#[tokio::test]
async fn total_count_is_null_when_any_selected_source_cannot_count() {
    let app = spawn_app().await;
    let body = app.query("{ ledgerEntries(first: 1) { totalCount } }", json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    // Trackstar reports no totals, so a query reaching it has none.
    assert!(body["data"]["ledgerEntries"]["totalCount"].is_null());
    let body = app.query(&operation("LedgerPage"), json!({"first": 1})).await;
    assert!(body["errors"].is_null());
}

/// Adds a second Trackstar source (another tenant of the same mock).
fn second_trackstar(config: &mut ledger_gateway::config::Config) {
    let mut eu = trackstar::source_config(config.sources["trackstar"].base_url.clone());
    eu.credentials.insert("access_token".into(), secrecy::SecretString::from("eu-token"));
    eu.forward.clear();
    config.sources.insert("trackstar-eu".into(), eu);
}

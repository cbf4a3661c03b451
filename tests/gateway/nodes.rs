use serde_json::{json, Value};

use crate::federation::source_ids;
use crate::helpers::{error_codes, operation, small_data, spawn_app, spawn_app_with, TestApp};

const NODES: &str = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
    ... on LedgerEntry { source sku } ... on Item { name } ... on Location { name kind } } }";

async fn nodes(app: &TestApp, ids: &[&str]) -> Value {
    app.query(NODES, json!({"ids": ids})).await
}

fn answered(body: &Value) -> Vec<Value> {
    body["data"]["nodes"].as_array().unwrap_or_else(|| panic!("{body}")).clone()
}

/// Each answer's `__typename`, or null where it is null.
fn typenames(body: &Value) -> Vec<Value> {
    answered(body).iter().map(|node| node["__typename"].clone()).collect()
}

/// An entry of `source` with its item and warehouse ids.
async fn entry_of(app: &TestApp, source: &str) -> Value {
    let body = app.query(&operation("LedgerPage"), json!({"first": 1, "filter": {"sources": [source]}})).await;
    body["data"]["ledgerEntries"]["edges"][0]["node"].clone()
}

#[tokio::test]
async fn node_refetches_an_entry_an_item_and_a_location_by_id() {
    let app = spawn_app().await;
    let entry = entry_of(&app, "trackstar").await;
    let cases = [
        (entry["id"].clone(), "LedgerEntry"),
        (entry["itemId"].clone(), "Item"),
        (entry["warehouseId"].clone(), "Location"),
    ];
    for (id, typename) in cases {
        let body = app.query("query($id: ID!) { node(id: $id) { __typename id } }", json!({"id": id})).await;
        assert!(body["errors"].is_null(), "{body}");
        assert_eq!(body["data"]["node"], json!({"__typename": typename, "id": id}), "{body}");
    }
}

#[tokio::test]
async fn nodes_answer_in_request_order_with_duplicates() {
    let app = spawn_app().await;
    let entry = entry_of(&app, "trackstar").await;
    let central = entry_of(&app, "business-central").await;
    let (id, item, warehouse) = (&entry["id"], &entry["itemId"], &entry["warehouseId"]);
    let ids = [item, id, &central["id"], warehouse, id, &central["itemId"], item];
    let ids: Vec<&str> = ids.iter().map(|id| id.as_str().unwrap()).collect();
    let body = nodes(&app, &ids).await;
    assert!(body["errors"].is_null(), "{body}");
    let got = answered(&body);
    let got_ids: Vec<&str> = got.iter().map(|node| node["id"].as_str().unwrap()).collect();
    assert_eq!(got_ids, ids);
    let types: Vec<&str> = got.iter().map(|node| node["__typename"].as_str().unwrap()).collect();
    assert_eq!(types, ["Item", "LedgerEntry", "LedgerEntry", "Location", "LedgerEntry", "Item", "Item"]);
    assert_eq!(got[1], got[4]);
    assert_eq!(got[0], got[6]);
    assert_eq!(got[1]["sku"], entry["sku"]);
    assert_eq!(got[2]["source"], "business-central");
}

/// Upstream calls since the last reset, by route, and their total.
async fn calls(app: &TestApp) -> (Value, u64) {
    let stats = app.stats().await;
    (stats["by_route"].clone(), stats["total"].as_u64().unwrap())
}

const LEDGER: &str = "GET /trackstar/wms/inventory/ledger";
const INVENTORY: &str = "GET /trackstar/wms/inventory";
const WAREHOUSES: &str = "GET /trackstar/wms/warehouses";

#[tokio::test]
async fn ten_trackstar_entry_nodes_cost_one_ledger_read_and_no_lookup() {
    let app = spawn_app().await;
    let ids = source_ids(&app, "trackstar", 10).await;
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.reset_stats().await;
    let body = nodes(&app, &wanted).await;
    assert!(body["errors"].is_null(), "{body}");
    let got: Vec<Value> = answered(&body).iter().map(|node| node["id"].clone()).collect();
    assert_eq!(got, wanted.iter().map(|id| json!(id)).collect::<Vec<_>>());
    assert!(answered(&body).iter().all(|node| node["__typename"] == "LedgerEntry"), "{body}");
    // Trackstar's ids are opaque, but each is found as an entry: no item or
    // location lookup.
    let (by_route, total) = calls(&app).await;
    assert_eq!(by_route[LEDGER], 1, "{by_route}");
    assert_eq!(total, 1, "{by_route}");
}

#[tokio::test]
async fn a_hundred_and_fifty_trackstar_entry_nodes_cost_two_ledger_reads() {
    let app = spawn_app_with(small_data(), |config| config.limits.max_node_ids = 200).await;
    let ids = source_ids(&app, "trackstar", 150).await;
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.reset_stats().await;
    let body = nodes(&app, &wanted).await;
    assert!(body["errors"].is_null(), "{body}");
    let got: Vec<Value> = answered(&body).iter().map(|node| node["id"].clone()).collect();
    assert_eq!(got, wanted.iter().map(|id| json!(id)).collect::<Vec<_>>());
    // `ids[in]` takes 100 ids a call.
    let (by_route, total) = calls(&app).await;
    assert_eq!(by_route[LEDGER], 2, "{by_route}");
    assert_eq!(total, 2, "{by_route}");
}

#[tokio::test]
async fn trackstar_item_and_location_nodes_cost_a_ledger_read_then_one_lookup_per_kind() {
    let app = spawn_app().await;
    let entry = entry_of(&app, "trackstar").await;
    let ids = [entry["itemId"].as_str().unwrap(), entry["warehouseId"].as_str().unwrap()];
    app.reset_stats().await;
    let body = nodes(&app, &ids).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(typenames(&body), [json!("Item"), json!("Location")], "{body}");
    // Neither is an entry (one ledger read for both); then both are looked
    // up as items and as locations, one call each.
    let (by_route, total) = calls(&app).await;
    assert_eq!((&by_route[LEDGER], &by_route[INVENTORY], &by_route[WAREHOUSES]), (&json!(1), &json!(1), &json!(1)));
    assert_eq!(total, 3, "{by_route}");
}

#[tokio::test]
async fn mixed_trackstar_nodes_batch_each_stage_and_keep_their_order() {
    let app = spawn_app().await;
    let ids = source_ids(&app, "trackstar", 2).await;
    let entry = entry_of(&app, "trackstar").await;
    let (item, warehouse) = (entry["itemId"].as_str().unwrap(), entry["warehouseId"].as_str().unwrap());
    let wanted = [ids[0].as_str(), item, "trackstar:nothing", ids[1].as_str(), ids[0].as_str(), warehouse, item];
    app.reset_stats().await;
    let body = nodes(&app, &wanted).await;
    let types = json!(["LedgerEntry", "Item", null, "LedgerEntry", "LedgerEntry", "Location", "Item"]);
    assert_eq!(json!(typenames(&body)), types, "{body}");
    let got_ids: Vec<Value> = answered(&body).iter().map(|node| node["id"].clone()).collect();
    let (first, second) = (&ids[0], &ids[1]);
    assert_eq!(json!(got_ids), json!([first, item, null, second, first, warehouse, item]), "{body}");
    assert_eq!(error_codes(&body), ["NOT_FOUND"], "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["nodes", 2]), "{body}");
    // One ledger read for all five distinct ids, then one item and one
    // location lookup for the three no entry has.
    let (by_route, total) = calls(&app).await;
    assert_eq!((&by_route[LEDGER], &by_route[INVENTORY], &by_route[WAREHOUSES]), (&json!(1), &json!(1), &json!(1)));
    assert_eq!(total, 3, "{by_route}");
}

#[tokio::test]
async fn a_failed_entry_lookup_fails_the_id_without_item_or_location_lookups() {
    let app = spawn_app().await;
    let entry = entry_of(&app, "trackstar").await;
    let central = entry_of(&app, "business-central").await;
    app.reset_stats().await;
    app.inject_faults(json!([{"upstream": "trackstar", "route": "/wms/inventory/ledger", "status": 401}])).await;
    let ids = [entry["itemId"].as_str().unwrap(), central["id"].as_str().unwrap()];
    let body = nodes(&app, &ids).await;
    let got = answered(&body);
    assert!(got[0].is_null(), "{body}");
    assert_eq!(got[1]["id"], central["id"], "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["path"], json!(["nodes", 0]), "{body}");
    assert_eq!(errors[0]["extensions"]["code"], "UPSTREAM_UNAUTHORIZED", "{body}");
    assert_eq!(errors[0]["extensions"]["source"], "trackstar", "{body}");
    let (by_route, _) = calls(&app).await;
    assert!(by_route[INVENTORY].is_null() && by_route[WAREHOUSES].is_null(), "{by_route}");
}

#[tokio::test]
async fn business_central_entry_nodes_cost_one_read_and_no_lookup() {
    let app = spawn_app().await;
    let ids = source_ids(&app, "business-central", 10).await;
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.reset_stats().await;
    let body = nodes(&app, &wanted).await;
    assert!(body["errors"].is_null(), "{body}");
    let got: Vec<Value> = answered(&body).iter().map(|node| node["id"].clone()).collect();
    assert_eq!(got, wanted.iter().map(|id| json!(id)).collect::<Vec<_>>());
    // GUIDs are entry ids only: no item or location lookup.
    assert_eq!(app.calls_to("business-central").await, 1);
}

#[tokio::test]
async fn unknown_malformed_and_failing_ids_are_null_with_an_error_at_their_index() {
    let app = spawn_app().await;
    let entry = entry_of(&app, "trackstar").await;
    let central = entry_of(&app, "business-central").await;
    app.inject_faults(json!([{"upstream": "business-central", "status": 401}])).await;
    let ids = [
        entry["id"].as_str().unwrap(),
        "trackstar:nothing",
        "no-separator",
        central["id"].as_str().unwrap(),
        "nowhere:1",
    ];
    let body = nodes(&app, &ids).await;
    let got = answered(&body);
    assert_eq!(got[0]["id"], entry["id"], "{body}");
    assert!(got[1..].iter().all(Value::is_null), "{body}");
    let mut errors: Vec<(Value, Value, Value)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].clone(), e["extensions"]["code"].clone(), e["extensions"]["source"].clone()))
        .collect();
    errors.sort_by_key(|(path, _, _)| path.to_string());
    assert_eq!(
        errors,
        [
            (json!(["nodes", 1]), json!("NOT_FOUND"), Value::Null),
            (json!(["nodes", 2]), json!("BAD_USER_INPUT"), Value::Null),
            (json!(["nodes", 3]), json!("UPSTREAM_UNAUTHORIZED"), json!("business-central")),
            (json!(["nodes", 4]), json!("NOT_FOUND"), Value::Null),
        ],
        "{body}"
    );
    let body = app.query(r#"{ node(id: "trackstar:nothing") { id } }"#, json!({})).await;
    assert!(body["data"]["node"].is_null(), "{body}");
    assert_eq!(error_codes(&body), ["NOT_FOUND"]);
    assert_eq!(body["errors"][0]["path"], json!(["node"]));
}

#[tokio::test]
async fn too_many_node_ids_are_refused_before_any_call() {
    let app = spawn_app_with(small_data(), |config| config.limits.max_node_ids = 2).await;
    app.reset_stats().await;
    let body = nodes(&app, &["trackstar:a", "trackstar:b", "trackstar:c"]).await;
    assert_eq!(error_codes(&body), ["TOO_MANY_NODE_IDS"], "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(app.stats().await["total"], 0);
}

#[tokio::test]
async fn the_call_budget_counts_each_kind_an_id_may_be() {
    // Walking to the ids costs more than the budget: another gateway over
    // the same data finds them.
    let central = source_ids(&spawn_app_with(small_data(), |_| {}).await, "business-central", 3).await;
    let app = spawn_app_with(small_data(), |config| config.limits.max_upstream_calls = 2).await;
    // An opaque Trackstar id may be an entry, an item or a location: 3 calls.
    let body = nodes(&app, &["trackstar:a"]).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_BUDGET_EXCEEDED"], "{body}");
    assert_eq!(app.stats().await["total"], 0);
    // GUIDs are Business Central entries only: one read.
    let wanted: Vec<&str> = central.iter().map(String::as_str).collect();
    let body = nodes(&app, &wanted).await;
    assert!(body["errors"].is_null(), "{body}");
}

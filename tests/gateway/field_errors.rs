//! Field errors as the GraphQL spec handles them, over real upstream faults:
//! a failed nullable field is present as `null` with its error at its path
//! (code and source), its siblings resolve, and a failed non-null field
//! nulls its nearest nullable parent (or `data`).

use std::sync::Arc;

use ledger_gateway::config::Config;
use ledger_gateway::mock::trackstar::{TenantData, ACCESS_TOKEN, API_KEY};
use ledger_gateway::model::SourceKind;
use serde_json::{json, Value};

use crate::helpers::{small_data, spawn_app_with, TestApp};

/// The Trackstar source of the demo and a second tenant, `trackstar-eu`,
/// with upstream faults answered at once: no retries, no open breaker.
async fn spawn() -> TestApp {
    spawn_app_with(small_data(), |config: &mut Config| {
        config.sources.retain(|_, source| source.kind == SourceKind::Trackstar);
        let mut eu = config.sources["trackstar"].clone();
        eu.credentials.insert("api_key".into(), API_KEY.into());
        eu.credentials.insert("access_token".into(), EU_TOKEN.into());
        eu.forward.clear();
        config.sources.insert("trackstar-eu".into(), eu);
        for source in config.sources.values_mut() {
            source.http.max_retries = 0;
            source.http.breaker.failure_threshold = 1000;
        }
    })
    .await
}

const EU_TOKEN: &str = "eu-token";

fn tenant(app: &TestApp) -> Arc<TenantData> {
    app.mock.state.trackstar.tenant(ACCESS_TOKEN)
}

/// Makes every call to `route` of Trackstar (of one tenant when
/// `credential` is given) answer 503.
async fn fail(app: &TestApp, route: &str, credential: Option<&str>) {
    let mut rule = json!({"upstream": "trackstar", "route": route, "status": 503});
    if let Some(credential) = credential {
        rule["credential"] = json!(credential);
    }
    app.inject_faults(json!([rule])).await;
}

/// `(path, code, source)` of each error, sorted by path.
fn errors(body: &Value) -> Vec<(Value, Value, Value)> {
    let mut errors: Vec<_> = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {body}"))
        .iter()
        .map(|e| (e["path"].clone(), e["extensions"]["code"].clone(), e["extensions"]["source"].clone()))
        .collect();
    errors.sort_by_key(|(path, _, _)| path.to_string());
    errors
}

fn unavailable(path: Value, source: &str) -> (Value, Value, Value) {
    (path, json!("UPSTREAM_UNAVAILABLE"), json!(source))
}

const ENTRIES: &str = r#"{ ledgerEntries(first: 3, filter: {sources: ["trackstar"]}) {
    nodes { id itemId warehouseId item { name } warehouse { name } } } }"#;

fn item_name(data: &TenantData, id: &Value) -> Value {
    let native = id.as_str().unwrap().strip_prefix("trackstar:").unwrap();
    json!(data.items.iter().find(|item| item.id == native).unwrap().name)
}

fn warehouse_name(data: &TenantData, id: &Value) -> Value {
    let native = id.as_str().unwrap().strip_prefix("trackstar:").unwrap();
    json!(data.warehouses.iter().find(|warehouse| warehouse.id == native).unwrap().name)
}

#[tokio::test]
async fn an_entrys_item_is_null_while_the_item_api_fails_and_its_other_fields_resolve() {
    let app = spawn().await;
    let data = tenant(&app);
    fail(&app, "/wms/inventory", None).await;
    let body = app.query(ENTRIES, json!({})).await;
    let nodes = body["data"]["ledgerEntries"]["nodes"].as_array().unwrap_or_else(|| panic!("{body}"));
    assert_eq!(nodes.len(), 3, "{body}");
    for node in nodes {
        let expected = json!({
            "id": node["id"], "itemId": node["itemId"], "warehouseId": node["warehouseId"],
            "item": null,
            "warehouse": {"name": warehouse_name(&data, &node["warehouseId"])},
        });
        assert_eq!(node, &expected);
    }
    let expected: Vec<_> =
        (0..3).map(|i| unavailable(json!(["ledgerEntries", "nodes", i, "item"]), "trackstar")).collect();
    assert_eq!(errors(&body), expected, "{body}");
}

#[tokio::test]
async fn an_entrys_location_is_null_while_the_location_api_fails_and_its_item_resolves() {
    let app = spawn().await;
    let data = tenant(&app);
    fail(&app, "/wms/warehouses*", None).await;
    let body = app.query(ENTRIES, json!({})).await;
    let nodes = body["data"]["ledgerEntries"]["nodes"].as_array().unwrap_or_else(|| panic!("{body}"));
    assert_eq!(nodes.len(), 3, "{body}");
    for node in nodes {
        let expected = json!({
            "id": node["id"], "itemId": node["itemId"], "warehouseId": node["warehouseId"],
            "item": {"name": item_name(&data, &node["itemId"])},
            "warehouse": null,
        });
        assert_eq!(node, &expected);
    }
    let expected: Vec<_> =
        (0..3).map(|i| unavailable(json!(["ledgerEntries", "nodes", i, "warehouse"]), "trackstar")).collect();
    assert_eq!(errors(&body), expected, "{body}");
}

#[tokio::test]
async fn a_failed_nullable_root_field_is_null_beside_the_other_root_fields() {
    let app = spawn().await;
    let data = tenant(&app);
    fail(&app, "/wms/inventory", None).await;
    let query = "query($item: ID!, $warehouse: ID!) { item(id: $item) { name } location(id: $warehouse) { name } }";
    let variables = json!({
        "item": format!("trackstar:{}", data.items[0].id),
        "warehouse": format!("trackstar:{}", data.warehouses[0].id),
    });
    let body = app.query(query, variables.clone()).await;
    assert_eq!(body["data"], json!({"item": null, "location": {"name": data.warehouses[0].name}}), "{body}");
    assert_eq!(errors(&body), [unavailable(json!(["item"]), "trackstar")]);

    // Alone, it is still `data: {item: null}`: the request executed.
    let body = app.query("query($item: ID!) { item(id: $item) { name } }", json!({"item": variables["item"]})).await;
    assert_eq!(body["data"], json!({"item": null}), "{body}");
    assert_eq!(errors(&body), [unavailable(json!(["item"]), "trackstar")]);
}

#[tokio::test]
async fn a_failed_source_nulls_only_its_own_elements_of_a_list() {
    let app = spawn().await;
    let (home, eu) = (tenant(&app), app.mock.state.trackstar.tenant(EU_TOKEN));
    fail(&app, "/wms/inventory", Some(EU_TOKEN)).await;
    let ids = json!([
        format!("trackstar:{}", home.items[0].id),
        format!("trackstar-eu:{}", eu.items[0].id),
        format!("trackstar:{}", home.items[1].id),
    ]);
    let body = app.query("query($ids: [ID!]!) { items(ids: $ids) { name } }", json!({"ids": ids})).await;
    let expected = json!({"items": [{"name": home.items[0].name}, null, {"name": home.items[1].name}]});
    assert_eq!(body["data"], expected, "{body}");
    assert_eq!(errors(&body), [unavailable(json!(["items", 1]), "trackstar-eu")]);
}

#[tokio::test]
async fn a_failed_non_null_field_nulls_its_nearest_nullable_parent() {
    let app = spawn().await;
    let data = tenant(&app);
    // `Item.ledgerEntries` is non-null: its bad `first` nulls the item,
    // the sibling root field stays.
    let query = "query($item: ID!, $warehouse: ID!) {
        item(id: $item) { name ledgerEntries(first: 0) { nodes { id } } }
        location(id: $warehouse) { name } }";
    let variables = json!({
        "item": format!("trackstar:{}", data.items[0].id),
        "warehouse": format!("trackstar:{}", data.warehouses[0].id),
    });
    let body = app.query(query, variables.clone()).await;
    assert_eq!(body["data"], json!({"item": null, "location": {"name": data.warehouses[0].name}}), "{body}");
    assert_eq!(errors(&body), [(json!(["item", "ledgerEntries"]), json!("BAD_USER_INPUT"), Value::Null)]);

    // In a list of nullable items, each element is nulled on its own.
    let query = "query($ids: [ID!]!) { items(ids: $ids) { name ledgerEntries(first: 0) { nodes { id } } } }";
    let ids = json!([format!("trackstar:{}", data.items[0].id), format!("trackstar:{}", data.items[1].id)]);
    let body = app.query(query, json!({"ids": ids})).await;
    assert_eq!(body["data"], json!({"items": [null, null]}), "{body}");
    let bad = |i: usize| (json!(["items", i, "ledgerEntries"]), json!("BAD_USER_INPUT"), Value::Null);
    assert_eq!(errors(&body), [bad(0), bad(1)]);

    // A non-null root field has nothing nullable above it but `data`.
    let query = "query($warehouse: ID!) { ledgerEntries(first: 0) { nodes { id } } location(id: $warehouse) { name } }";
    let body = app.query(query, json!({"warehouse": variables["warehouse"]})).await;
    assert_eq!(body.as_object().unwrap().get("data"), Some(&Value::Null), "{body}");
    assert_eq!(errors(&body), [(json!(["ledgerEntries"]), json!("BAD_USER_INPUT"), Value::Null)]);
}

use serde_json::{json, Value};

use crate::helpers::{operation, small_data, spawn_app, spawn_app_with, TestApp};

/// Ids of the `n` newest entries, as the gateway serves them.
async fn newest_ids(app: &TestApp, n: usize) -> Vec<String> {
    let body = app.query(&operation("LedgerPage"), json!({"first": n})).await;
    assert!(body["errors"].is_null(), "{body}");
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), n, "{body}");
    edges.iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()).collect()
}

fn representations(ids: &[&str]) -> Value {
    json!({"representations": ids.iter().map(|id| json!({"__typename": "LedgerEntry", "id": id})).collect::<Vec<_>>()})
}

async fn entities(app: &TestApp, ids: &[&str]) -> Value {
    app.query(&operation("LedgerEntities"), representations(ids)).await
}

#[tokio::test]
async fn service_sdl_is_the_printed_schema() {
    let app = spawn_app().await;
    let body = app.query("{ _service { sdl } }", json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let served = body["data"]["_service"]["sdl"].as_str().unwrap();
    assert!(served == ledger_gateway::schema::sdl(), "`_service {{ sdl }}` differs from `schema::sdl()`");
    assert!(served.contains("extend schema @link(\n\turl: \"https://specs.apollo.dev/federation/v2."), "{served}");
    assert!(served.contains("type LedgerEntry implements Node @key(fields: \"id\")"), "{served}");
}

#[tokio::test]
async fn service_sdl_is_served_to_a_router_with_introspection_switched_off() {
    // Routers and rover read `_service`, not `__schema`: hiding the schema
    // from clients need not hide it from the supergraph.
    let app = spawn_app_with(small_data(), |config| {
        config.server.introspection = false;
        config.server.federation_sdl = true;
    })
    .await;
    let introspection = app.query("{ __schema { queryType { name } } }", json!({})).await;
    assert!(introspection["data"]["__schema"].is_null(), "{introspection}");
    let body = app.query("{ _service { sdl } }", json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(body["data"]["_service"]["sdl"].as_str().unwrap() == ledger_gateway::schema::sdl());
}

#[tokio::test]
async fn entities_resolve_real_ledger_entry_ids_in_order() {
    let app = spawn_app().await;
    let ids = newest_ids(&app, 3).await;
    let mut wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    wanted.reverse();
    let body = entities(&app, &wanted).await;
    assert!(body["errors"].is_null(), "{body}");
    let resolved = body["data"]["_entities"].as_array().unwrap();
    assert_eq!(resolved.len(), 3, "{body}");
    for (entity, id) in resolved.iter().zip(&wanted) {
        assert_eq!(entity["__typename"], "LedgerEntry", "{body}");
        assert_eq!(entity["id"], *id, "{body}");
        let (source, native) = id.split_once(':').unwrap();
        assert_eq!(entity["source"], source);
        assert_eq!(entity["nativeId"], native);
    }
}

/// Ids of the `n` newest entries of `source`.
pub async fn source_ids(app: &TestApp, source: &str, n: usize) -> Vec<String> {
    let body = app.query(&operation("LedgerPage"), json!({"first": n, "filter": {"sources": [source]}})).await;
    assert!(body["errors"].is_null(), "{body}");
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), n, "{body}");
    edges.iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()).collect()
}

/// Ledger reads made since the last reset, by their path.
async fn ledger_reads(app: &TestApp) -> Vec<(String, Vec<(String, String)>)> {
    app.requests().await.into_iter().filter(|(path, _)| path.ends_with("/wms/inventory/ledger")).collect()
}

fn ids_in(query: &[(String, String)]) -> Vec<String> {
    query.iter().filter(|(k, _)| k == "ids[in]").flat_map(|(_, v)| v.split(',').map(str::to_owned)).collect()
}

/// Each representation's `id`, or null where it resolved to null.
fn resolved_ids(body: &Value) -> Vec<Value> {
    body["data"]["_entities"].as_array().unwrap().iter().map(|e| e["id"].clone()).collect()
}

#[tokio::test]
async fn ten_trackstar_entities_cost_one_ledger_read() {
    let app = spawn_app().await;
    let ids = source_ids(&app, "trackstar", 10).await;
    let mut wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    wanted.reverse();
    app.reset_stats().await;
    let body = entities(&app, &wanted).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(resolved_ids(&body), wanted.iter().map(|id| json!(id)).collect::<Vec<_>>(), "{body}");
    let reads = ledger_reads(&app).await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    let mut asked = ids_in(&reads[0].1);
    asked.sort();
    let mut natives: Vec<String> = ids.iter().map(|id| id.split_once(':').unwrap().1.to_owned()).collect();
    natives.sort();
    assert_eq!(asked, natives);
    assert_eq!(app.calls_to("trackstar").await, 1);
}

#[tokio::test]
async fn trackstar_entities_are_read_100_ids_a_call() {
    let app = spawn_app_with(small_data(), |config| config.limits.max_representations = 200).await;
    let ids = source_ids(&app, "trackstar", 150).await;
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.reset_stats().await;
    let body = entities(&app, &wanted).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(resolved_ids(&body), wanted.iter().map(|id| json!(id)).collect::<Vec<_>>());
    let mut sizes: Vec<usize> = ledger_reads(&app).await.iter().map(|(_, query)| ids_in(query).len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 100]);
    assert_eq!(app.calls_to("trackstar").await, 2);
}

#[tokio::test]
async fn entities_of_every_source_cost_what_their_ids_filter_costs() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for source in ["trackstar", "business-central", "bigledger", "pennylane"] {
        ids.extend(source_ids(&app, source, 5).await);
    }
    // Interleaved, so request order is not source order.
    ids.sort_by(|a, b| a.split_once(':').unwrap().1.cmp(b.split_once(':').unwrap().1));
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.reset_stats().await;
    let filtered = app
        .query(
            "query($ids: [ID!]) { ledgerEntries(first: 20, filter: { ids: $ids }) { nodes { id } } }",
            json!({"ids": ids}),
        )
        .await;
    assert!(filtered["errors"].is_null(), "{filtered}");
    assert_eq!(filtered["data"]["ledgerEntries"]["nodes"].as_array().unwrap().len(), 20);
    let by_filter = app.stats().await["by_upstream"].clone();
    app.reset_stats().await;
    let body = entities(&app, &wanted).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(resolved_ids(&body), wanted.iter().map(|id| json!(id)).collect::<Vec<_>>());
    assert_eq!(app.stats().await["by_upstream"], by_filter);
    assert_eq!(by_filter["trackstar"], 1, "{by_filter}");
    assert_eq!(by_filter["business-central"], 1, "{by_filter}");
}

#[tokio::test]
async fn unknown_and_malformed_entities_are_null_with_an_error_at_their_path() {
    let app = spawn_app().await;
    let ids = source_ids(&app, "trackstar", 2).await;
    app.reset_stats().await;
    let wanted = [&ids[0], "trackstar:led_does_not_exist", "no-separator", "no-such-source:1", &ids[1], &ids[0]];
    let body = entities(&app, &wanted).await;
    let expected = [json!(ids[0]), Value::Null, Value::Null, Value::Null, json!(ids[1]), json!(ids[0])];
    assert_eq!(resolved_ids(&body), expected, "{body}");
    let mut errors: Vec<(Value, Value)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].clone(), e["extensions"]["code"].clone()))
        .collect();
    errors.sort_by_key(|(path, _)| path.to_string());
    assert_eq!(
        errors,
        [
            (json!(["_entities", 1]), json!("NOT_FOUND")),
            (json!(["_entities", 2]), json!("BAD_USER_INPUT")),
            (json!(["_entities", 3]), json!("NOT_FOUND")),
        ],
        "{body}"
    );
    // One read for the known and unknown ids; a source that is not
    // configured, or an id without one, is not asked at all.
    assert_eq!(app.calls_to("trackstar").await, 1);
}

#[tokio::test]
async fn a_failing_source_nulls_its_entities_only_with_its_name() {
    let app = spawn_app().await;
    let (trackstar, central) = (source_ids(&app, "trackstar", 2).await, source_ids(&app, "business-central", 1).await);
    app.inject_faults(json!([{"upstream": "trackstar", "status": 401}])).await;
    let body = entities(&app, &[&trackstar[0], &central[0], &trackstar[1]]).await;
    assert_eq!(resolved_ids(&body), [Value::Null, json!(central[0]), Value::Null], "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");
    let mut paths: Vec<String> = errors.iter().map(|e| e["path"].to_string()).collect();
    paths.sort();
    assert_eq!(paths, [json!(["_entities", 0]).to_string(), json!(["_entities", 2]).to_string()]);
    for error in errors {
        assert_eq!(error["extensions"]["code"], "UPSTREAM_UNAUTHORIZED", "{body}");
        assert_eq!(error["extensions"]["source"], "trackstar", "{body}");
    }
}

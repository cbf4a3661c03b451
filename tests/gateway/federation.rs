use serde_json::{json, Value};

use crate::helpers::{error_codes, operation, small_data, spawn_app, spawn_app_with, TestApp};

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
    assert!(served.contains("type LedgerEntry @key(fields: \"id\")"), "{served}");
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

#[tokio::test]
async fn unknown_entity_ids_resolve_to_null_next_to_known_ones() {
    let app = spawn_app().await;
    let ids = newest_ids(&app, 1).await;
    app.reset_stats().await;
    let body = entities(&app, &["trackstar:led_does_not_exist", &ids[0], "no-such-source:1"]).await;
    assert!(body["errors"].is_null(), "{body}");
    let resolved = &body["data"]["_entities"];
    assert!(resolved[0].is_null(), "{body}");
    assert_eq!(resolved[1]["id"], ids[0].as_str(), "{body}");
    assert!(resolved[2].is_null(), "{body}");
    // A source that is not configured is not asked at all.
    assert_eq!(app.calls_to("trackstar").await, 2);
}

#[tokio::test]
async fn a_malformed_entity_id_is_bad_input_without_an_upstream_call() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let body = entities(&app, &["no-separator"]).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["_entities"]), "{body}");
    // `_entities` is a non-null list, so one failed representation nulls the
    // response's data (async-graphql resolves them with `try_join_all`).
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(app.calls_to("trackstar").await, 0);
}

#[tokio::test]
async fn entities_cost_one_trackstar_call_per_representation() {
    let app = spawn_app().await;
    let ids = newest_ids(&app, 3).await;
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.reset_stats().await;
    let body = entities(&app, &wanted).await;
    assert!(body["errors"].is_null(), "{body}");
    // No entry loader yet: each representation is its own `ids[in]` lookup.
    let requests = app.requests().await;
    assert_eq!(requests.len(), 3, "{requests:?}");
    let mut asked: Vec<String> = requests
        .iter()
        .map(|(path, query)| {
            assert!(path.ends_with("/wms/inventory/ledger"), "{path}");
            let ids: Vec<&String> = query.iter().filter(|(k, _)| k == "ids[in]").map(|(_, v)| v).collect();
            assert_eq!(ids.len(), 1, "{query:?}");
            ids[0].clone()
        })
        .collect();
    asked.sort();
    let mut natives: Vec<String> = wanted.iter().map(|id| id.split_once(':').unwrap().1.to_owned()).collect();
    natives.sort();
    assert_eq!(asked, natives);
    assert_eq!(app.calls_to("trackstar").await, 3);
}

use std::collections::BTreeMap;
use std::time::Duration;

use ledger_gateway::config::CacheTtlOverride;
use serde_json::json;

use crate::helpers::{anchor, error_codes, operation, small_data, spawn_caching_app, spawn_caching_app_with, TestApp};

/// Page variables with a fixed upper bound: the upstream calls of the page
/// do not depend on the clock, so a repeated page makes exactly the same.
fn bounded(first: usize) -> serde_json::Value {
    json!({"first": first, "filter": {"entryDate": {"lte": anchor().to_rfc3339()}}})
}

/// Upstream requests per route since the last reset.
async fn calls_by_route(app: &TestApp) -> BTreeMap<String, u64> {
    serde_json::from_value(app.stats().await["by_route"].clone()).unwrap()
}

async fn ledger_calls(app: &TestApp) -> u64 {
    calls_by_route(app).await.get("GET /trackstar/wms/inventory/ledger").copied().unwrap_or(0)
}

#[tokio::test]
async fn repeating_a_page_within_the_ledger_ttl_costs_no_upstream_call() {
    let app = spawn_caching_app().await;
    let variables = json!({"first": 50, "filter": {"eventTypes": ["RECEIPT", "SHIPMENT"], "entryDate": {"lte": anchor().to_rfc3339()}}});
    app.reset_stats().await;
    let cold = app.query(&operation("LedgerPage"), variables.clone()).await;
    assert!(cold["errors"].is_null(), "{cold}");
    assert!(ledger_calls(&app).await > 0);
    app.reset_stats().await;
    let warm = app.query(&operation("LedgerPage"), variables).await;
    assert_eq!(warm, cold);
    assert_eq!(app.calls_to("trackstar").await, 0);
}

#[tokio::test]
async fn concurrent_identical_pages_of_one_caller_share_every_upstream_call() {
    let mut variables = bounded(60);
    variables["bins"] = json!(true);
    let single = spawn_caching_app().await;
    single.reset_stats().await;
    let alone = single.query(&operation("EntriesWithItems"), variables.clone()).await;
    let cost = calls_by_route(&single).await;
    assert!(cost.keys().any(|route| route.ends_with("/wms/inventory")), "{cost:?}");

    // A fresh gateway over the same data, asked twice at once.
    let app = spawn_caching_app().await;
    app.reset_stats().await;
    let query = operation("EntriesWithItems");
    let (a, b) = tokio::join!(app.query(&query, variables.clone()), app.query(&query, variables.clone()));
    assert_eq!(a, alone);
    assert_eq!(b, alone);
    assert_eq!(calls_by_route(&app).await, cost);
}

#[tokio::test]
async fn ttls_are_per_resource_and_source_and_zero_turns_reuse_off() {
    let app = spawn_caching_app_with(small_data(), |config| {
        let no_items = CacheTtlOverride { item_ttl_secs: Some(0), ..Default::default() };
        config.cache.sources.insert("trackstar".into(), no_items);
    })
    .await;
    let variables = bounded(30);
    let cold = app.query(&operation("EntriesWithItems"), variables.clone()).await;
    assert!(cold["errors"].is_null(), "{cold}");
    app.reset_stats().await;
    let again = app.query(&operation("EntriesWithItems"), variables).await;
    assert_eq!(again, cold);
    let calls = calls_by_route(&app).await;
    assert_eq!(calls.get("GET /trackstar/wms/inventory"), Some(&1), "items are not kept: {calls:?}");
    assert_eq!(calls.values().sum::<u64>(), 1, "ledger and warehouses still are: {calls:?}");
}

#[tokio::test]
async fn ledger_pages_are_fetched_again_once_their_ttl_passed() {
    let app = spawn_caching_app_with(small_data(), |config| config.cache.ledger_ttl_secs = 1).await;
    app.reset_stats().await;
    let first = app.query(&operation("LedgerPage"), bounded(10)).await;
    let cold = ledger_calls(&app).await;
    assert!(cold > 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.reset_stats().await;
    let later = app.query(&operation("LedgerPage"), bounded(10)).await;
    assert_eq!(later, first);
    assert_eq!(ledger_calls(&app).await, cold);
}

#[tokio::test]
async fn failed_upstream_calls_are_never_cached() {
    let app = spawn_caching_app_with(small_data(), |config| {
        let source = config.sources.get_mut("trackstar").unwrap();
        source.credentials.insert("api_key".into(), "wrong-key".into());
    })
    .await;
    for attempt in 1..=2 {
        let body = app.query(&operation("LedgerPage"), json!({"first": 5})).await;
        assert_eq!(error_codes(&body), ["UPSTREAM_UNAUTHORIZED"], "{body}");
        assert_eq!(app.calls_to("trackstar").await, attempt);
    }
    let query = "{ items(ids: [\"trackstar:a\", \"trackstar:b\"]) { id } }";
    app.reset_stats().await;
    for attempt in 1..=2 {
        let body = app.query(query, json!({})).await;
        assert_eq!(error_codes(&body), ["UPSTREAM_UNAUTHORIZED"; 2], "{body}");
        assert_eq!(app.calls_to("trackstar").await, attempt);
    }
}

/// The value of the metric line naming `name` with label `label`.
fn metric(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .reduce(f64::max)
}

#[tokio::test]
async fn cache_hits_and_misses_are_exported_as_metrics() {
    // Without the response cache, which would answer the repeat whole.
    let app = spawn_caching_app_with(small_data(), |config| config.cache.response_max_bytes = 0).await;
    for _ in 0..2 {
        let body = app.query(&operation("EntriesWithItems"), bounded(10)).await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let text = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    for name in ["cache_hits_total", "cache_misses_total"] {
        for resource in ["ledger", "item", "location"] {
            let value = metric(&text, name, &format!("resource=\"{resource}\""));
            assert!(value.is_some_and(|v| v >= 1.0), "{name} {resource}: {text}");
        }
    }
}

/// Items of the demo's Trackstar tenant, with an item TTL of one second
/// and, when `stale_secs` is set, expired items standing in for a failing
/// Trackstar that long.
async fn items_app(stale_secs: Option<u64>) -> (TestApp, Vec<String>) {
    let app = spawn_caching_app_with(small_data(), |config| {
        config.cache.item_ttl_secs = 1;
        config.cache.stale_if_error_secs = stale_secs.unwrap_or(0);
    })
    .await;
    let tenant = app.mock.state.trackstar.tenant(ledger_gateway::mock::trackstar::ACCESS_TOKEN);
    let ids = tenant.items.iter().take(3).map(|item| format!("trackstar:{}", item.id)).collect();
    (app, ids)
}

/// Errors, each with `code`, and at least one.
fn assert_only_code(body: &serde_json::Value, code: &str) {
    let codes = error_codes(body);
    assert!(!codes.is_empty() && codes.iter().all(|c| c == code), "{body}");
}

const ITEMS: &str = "query($ids: [ID!]!) { items(ids: $ids) { id name } }";
const TOKEN_HEADER: &str = "x-trackstar-access-token";

/// Warms the items, lets them expire, then makes every Trackstar call fail
/// with `status` (and `headers`).
async fn expire_then_fail(app: &TestApp, ids: &[String], status: u16) -> serde_json::Value {
    let warm = app.query(ITEMS, json!({"ids": ids})).await;
    assert!(warm["errors"].is_null(), "{warm}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A reset of the mock's counts also clears its fault rules: reset first.
    app.reset_stats().await;
    app.inject_faults(json!([{"upstream": "trackstar", "route": "/wms/inventory", "status": status}])).await;
    warm
}

#[tokio::test]
async fn expired_items_stand_in_for_a_failing_source_flagged_in_the_extensions() {
    let (app, ids) = items_app(Some(60)).await;
    let warm = expire_then_fail(&app, &ids, 503).await;
    let body = app.query(ITEMS, json!({"ids": ids})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"], warm["data"]);
    let stale = &body["extensions"]["staleSources"];
    assert_eq!(stale[0]["source"], "trackstar", "{body}");
    assert_eq!(stale[0]["resource"], "item", "{body}");
    assert_eq!(stale[0]["ageSeconds"], 1, "{body}");
    assert_eq!(stale.as_array().unwrap().len(), 1);
    // The first attempt and its two retries, then the stand-in.
    assert_eq!(app.calls_to("trackstar").await, 3);
    assert!(warm["extensions"]["staleSources"].is_null(), "fresh answers are not flagged: {warm}");
}

#[tokio::test]
async fn expired_answers_never_serve_another_caller_or_an_auth_failure() {
    let (app, ids) = items_app(Some(60)).await;
    expire_then_fail(&app, &ids, 503).await;
    // Another caller has nothing of their own cached: the failure stands.
    let other = app.query_with_headers(ITEMS, json!({"ids": ids}), &[(TOKEN_HEADER, "someone-else")]).await;
    assert_only_code(&other, "UPSTREAM_UNAVAILABLE");
    assert!(other["extensions"]["staleSources"].is_null(), "{other}");
    assert!(other["data"]["items"].as_array().unwrap().iter().all(serde_json::Value::is_null), "{other}");

    // A 401 means this caller may no longer read: nothing stands in.
    app.reset_stats().await;
    app.inject_faults(json!([{"upstream": "trackstar", "route": "/wms/inventory", "status": 401}])).await;
    let revoked = app.query(ITEMS, json!({"ids": ids})).await;
    assert_only_code(&revoked, "UPSTREAM_UNAUTHORIZED");
    assert!(revoked["extensions"]["staleSources"].is_null(), "{revoked}");
    assert_eq!(app.calls_to("trackstar").await, 1, "a 401 is neither retried nor cached");
    let again = app.query(ITEMS, json!({"ids": ids})).await;
    assert_only_code(&again, "UPSTREAM_UNAUTHORIZED");
    assert_eq!(app.calls_to("trackstar").await, 2, "the 401 was not kept");
}

#[tokio::test]
async fn without_stale_if_error_an_expired_item_is_never_served() {
    let (app, ids) = items_app(None).await;
    expire_then_fail(&app, &ids, 503).await;
    let body = app.query(ITEMS, json!({"ids": ids})).await;
    assert_only_code(&body, "UPSTREAM_UNAVAILABLE");
    assert!(body["extensions"]["staleSources"].is_null(), "{body}");
}

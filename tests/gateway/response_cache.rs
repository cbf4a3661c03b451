//! The response cache over real HTTP. Whether an answer was kept shows in
//! the request's log line (`response_cache_hit`), and a kept answer costs
//! neither an upstream call nor an upstream-cache lookup (`cache_hits` 0):
//! an execution over a warm upstream cache also calls nothing, but looks up.

use std::time::Duration;

use ledger_gateway::config::LogFormat;
use serde_json::{json, Value};

use crate::helpers::{anchor, error_codes, operation, small_data, spawn_caching_app_with, TestApp};
use crate::observe::Captured;

const TOKEN_HEADER: &str = "x-trackstar-access-token";

/// A page of entries with items and bins, bounded so that the calls do not
/// depend on the clock.
fn page(first: usize) -> Value {
    json!({"first": first, "bins": true, "filter": {"entryDate": {"lte": anchor().to_rfc3339()}}})
}

/// One response: its request id and exact body.
async fn send(app: &TestApp, query: &str, variables: Value, headers: &[(&str, &str)]) -> (String, String) {
    let mut request =
        app.client.post(format!("{}/graphql", app.url)).json(&json!({"query": query, "variables": variables}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    (id, response.text().await.unwrap())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

/// Logs captured for the current thread, and a Trackstar-only gateway with
/// the cache as configured by default and then `tweak`ed.
async fn logged_app(tweak: impl FnOnce(&mut ledger_gateway::config::Config)) -> (Captured, impl Drop, TestApp) {
    let logs = Captured::default();
    let guard =
        tracing::subscriber::set_default(ledger_gateway::telemetry::subscriber(LogFormat::Json, false, logs.clone()));
    let app = spawn_caching_app_with(small_data(), tweak).await;
    (logs, guard, app)
}

/// Whether request `id` was answered with a kept response; asserts that a
/// kept one looked nothing up upstream or in the upstream cache.
fn kept(logs: &Captured, id: &str) -> bool {
    let line = logs.line_of(id);
    let hit = line["response_cache_hit"].as_bool().unwrap();
    if hit {
        assert_eq!((line["upstream_calls"].as_u64(), line["cache_hits"].as_u64()), (Some(0), Some(0)), "{line}");
    }
    hit
}

// One thread: the subscriber set for each test sees the server's events.
#[tokio::test(flavor = "current_thread")]
async fn an_identical_repeat_gets_the_kept_bytes_without_any_upstream_call() {
    let (logs, _guard, app) = logged_app(|_| {}).await;
    let query = operation("EntriesWithItems");
    let (id, cold) = send(&app, &query, page(20), &[]).await;
    assert!(json(&cold)["errors"].is_null(), "{cold}");
    assert!(!kept(&logs, &id));
    app.reset_stats().await;
    let (id, warm) = send(&app, &query, page(20), &[]).await;
    assert_eq!(warm, cold, "byte for byte");
    assert!(kept(&logs, &id));
    assert_eq!(app.stats().await["total"], 0);

    // Other variables are another answer.
    let (id, other) = send(&app, &query, page(21), &[]).await;
    assert!(!kept(&logs, &id));
    assert_eq!(json(&other)["data"]["ledgerEntries"]["edges"].as_array().unwrap().len(), 21);
}

#[tokio::test(flavor = "current_thread")]
async fn two_callers_never_share_an_answer() {
    let (logs, _guard, app) = logged_app(|_| {}).await;
    let query = operation("EntriesWithItems");
    let (_, alice) = send(&app, &query, page(5), &[(TOKEN_HEADER, "alice-token")]).await;
    let (id, bob) = send(&app, &query, page(5), &[(TOKEN_HEADER, "bob-token")]).await;
    assert!(!kept(&logs, &id), "bob's first request runs");
    assert_ne!(json(&alice)["data"], json(&bob)["data"], "each tenant has its own data");
    let (id, service) = send(&app, &query, page(5), &[]).await;
    assert!(!kept(&logs, &id), "nor does the service account get theirs");
    assert_ne!(json(&service)["data"], json(&alice)["data"]);
    let (id, again) = send(&app, &query, page(5), &[(TOKEN_HEADER, "alice-token")]).await;
    assert!(kept(&logs, &id));
    assert_eq!(again, alice);
}

#[tokio::test(flavor = "current_thread")]
async fn an_answer_with_errors_is_not_kept_and_the_next_identical_request_runs() {
    let (logs, _guard, app) = logged_app(|_| {}).await;
    let query = operation("EntriesWithItems");
    app.inject_faults(json!([{"upstream": "trackstar", "route": "/wms/inventory", "status": 503}])).await;
    let (id, failed) = send(&app, &query, page(5), &[]).await;
    assert!(error_codes(&json(&failed)).iter().all(|code| code == "UPSTREAM_UNAVAILABLE"), "{failed}");
    assert!(!error_codes(&json(&failed)).is_empty(), "{failed}");
    assert!(!kept(&logs, &id));
    // Resetting the counts clears the faults too.
    app.reset_stats().await;
    let (id, answered) = send(&app, &query, page(5), &[]).await;
    assert!(json(&answered)["errors"].is_null(), "{answered}");
    assert!(!kept(&logs, &id), "the failed answer was not kept");
    let by_route = app.stats().await["by_route"].clone();
    assert_eq!(by_route["GET /trackstar/wms/inventory"], 1, "items fetched again, in one call: {by_route}");
    let (id, _) = send(&app, &query, page(5), &[]).await;
    assert!(kept(&logs, &id), "the clean answer is kept");
}

#[tokio::test(flavor = "current_thread")]
async fn a_kept_answer_lives_no_longer_than_the_shortest_ttl_it_was_built_from() {
    // Items for five minutes, ledger pages for one second: the page bounds it.
    let (logs, _guard, app) = logged_app(|config| config.cache.ledger_ttl_secs = 1).await;
    let query = operation("EntriesWithItems");
    send(&app, &query, page(5), &[]).await;
    let (id, _) = send(&app, &query, page(5), &[]).await;
    assert!(kept(&logs, &id));
    // moka and the upstream cache measure time-to-live on the real clock,
    // as the upstream cache's own TTL tests do: wait past it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.reset_stats().await;
    let (id, _) = send(&app, &query, page(5), &[]).await;
    assert!(!kept(&logs, &id));
    let by_route = app.stats().await["by_route"].clone();
    assert!(by_route["GET /trackstar/wms/inventory/ledger"].as_u64() >= Some(1), "{by_route}");
    assert!(by_route["GET /trackstar/wms/inventory"].is_null(), "items are still fresh: {by_route}");
}

#[tokio::test(flavor = "current_thread")]
async fn uncached_resources_and_live_state_are_never_kept() {
    let (logs, _guard, app) = logged_app(|config| config.cache.item_ttl_secs = 0).await;
    let query = operation("EntriesWithItems");
    for _ in 0..2 {
        let (id, _) = send(&app, &query, page(5), &[]).await;
        assert!(!kept(&logs, &id), "items are not cached: nothing bounds the answer");
    }
    let live = "{ sources { name cacheEntries } ledgerEntries(first: 1) { nodes { id } } }";
    for _ in 0..2 {
        let (id, body) = send(&app, live, json!({}), &[]).await;
        assert!(json(&body)["errors"].is_null(), "{body}");
        assert!(!kept(&logs, &id), "`sources` is the gateway's live state");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn answers_over_the_byte_bound_are_not_kept_and_the_counters_are_exported() {
    let (logs, _guard, app) = logged_app(|config| config.cache.response_max_bytes = 4096).await;
    let query = operation("EntriesWithItems");
    send(&app, &query, page(50), &[]).await;
    let (id, body) = send(&app, &query, page(50), &[]).await;
    assert!(body.len() > 4096, "{}", body.len());
    assert!(!kept(&logs, &id), "larger than the whole cache");
    let small = "{ ledgerEntries(first: 1) { nodes { id } } }";
    send(&app, small, json!({}), &[]).await;
    let (id, _) = send(&app, small, json!({}), &[]).await;
    assert!(kept(&logs, &id));
    let text = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    for name in ["response_cache_hits_total", "response_cache_misses_total", "response_cache_stores_total"] {
        let value = text.lines().find_map(|line| line.strip_prefix(&format!("{name} ")));
        assert!(value.is_some_and(|v| v.parse::<f64>().unwrap() >= 1.0), "{name}: {text}");
    }
    for name in ["response_cache_entries", "response_cache_bytes"] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
    }
}

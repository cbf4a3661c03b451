//! The upstream call budget: operations estimated over it are refused before
//! any call, walks stop at it with a coded error, each operation of a batch
//! has its own, and one request cannot take every permit of a shared source.

use std::time::Duration;

use ledger_gateway::config::{Config, RateLimitConfig};
use serde_json::{json, Value};

use crate::helpers::{error_codes, small_data, spawn_app, spawn_app_with, TestApp};

async fn upstream_calls(app: &TestApp) -> u64 {
    app.stats().await["total"].as_u64().unwrap()
}

fn bigledger_ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("bigledger:item_{n}")).collect()
}

fn with_budget(calls: usize) -> impl FnOnce(&mut Config) {
    move |config| config.limits.max_upstream_calls = calls
}

#[tokio::test]
async fn ten_aliased_lookups_of_500_ids_are_refused_before_any_call() {
    let app = spawn_app().await;
    let aliases: String = (0..10).map(|n| format!("a{n}: items(ids: $ids) {{ id }} ")).collect();
    let query = format!("query ($ids: [ID!]!) {{ {aliases} }}");
    app.reset_stats().await;
    let body = app.query(&query, json!({"ids": bigledger_ids(0..500)})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_BUDGET_EXCEEDED"], "{body}");
    assert!(body["data"].is_null(), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("about 500 upstream calls, at most 200"), "{message}");
    assert_eq!(upstream_calls(&app).await, 0);

    // Within the budget the estimate is the exact cost: one GET per id.
    let body =
        app.query("query ($ids: [ID!]!) { items(ids: $ids) { id } }", json!({"ids": bigledger_ids(0..150)})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(upstream_calls(&app).await, 150);
}

#[tokio::test]
async fn a_walk_that_outgrows_the_budget_stops_at_it_with_a_coded_error() {
    let app = spawn_app_with(small_data(), with_budget(8)).await;
    // Two skus cannot be pushed down to BigLedger: it would walk its whole
    // history for entries the gateway then filters out.
    let query = r#"{ ledgerEntries(first: 5, filter: {sources: ["bigledger"], skus: ["NO-SUCH-1", "NO-SUCH-2"]}) {
        edges { node { id } } pageInfo { hasNextPage } } }"#;
    app.reset_stats().await;
    let body = app.query(query, json!({})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_BUDGET_EXCEEDED"], "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["source"], "bigledger", "{body}");
    assert_eq!(error["path"], json!(["ledgerEntries"]), "{body}");
    // The field still answers, with what it had, and says it is not done.
    assert_eq!(body["data"]["ledgerEntries"]["edges"], json!([]), "{body}");
    assert_eq!(body["data"]["ledgerEntries"]["pageInfo"]["hasNextPage"], true, "{body}");
    assert_eq!(upstream_calls(&app).await, 8, "every call up to the budget, none past it");
}

#[tokio::test]
async fn each_operation_of_a_batch_has_its_own_budget() {
    let app = spawn_app_with(small_data(), with_budget(10)).await;
    let lookup = |ids: Vec<String>| json!({"query": "query ($ids: [ID!]!) { items(ids: $ids) { id } }", "variables": {"ids": ids}});
    let batch = |operations: Vec<Value>| {
        let request = app.client.post(format!("{}/graphql", app.url)).json(&operations);
        async move { request.send().await.unwrap().json::<Vec<Value>>().await.unwrap() }
    };
    app.reset_stats().await;
    // Operations of a batch run concurrently: each has the whole budget.
    let bodies = batch(vec![lookup(bigledger_ids(0..6)), lookup(bigledger_ids(6..12))]).await;
    assert!(bodies.iter().all(|body| body["errors"].is_null()), "{bodies:?}");
    assert_eq!(upstream_calls(&app).await, 12);
    // One over its own budget is refused; the other still runs.
    app.reset_stats().await;
    let bodies = batch(vec![lookup(bigledger_ids(20..31)), lookup(bigledger_ids(40..46))]).await;
    assert_eq!(error_codes(&bodies[0]), ["UPSTREAM_BUDGET_EXCEEDED"], "{}", bodies[0]);
    assert!(bodies[0]["data"].is_null());
    assert!(bodies[1]["errors"].is_null(), "{}", bodies[1]);
    assert_eq!(upstream_calls(&app).await, 6);
}

#[tokio::test]
async fn a_big_lookup_leaves_a_shared_source_permits_for_another_request() {
    // Two calls in flight at most for the shared credentials; each takes a while.
    let app = spawn_app_with(small_data(), |config| {
        let limit = RateLimitConfig { requests: 1000, per_ms: 1000, concurrency: Some(2) };
        config.sources.get_mut("bigledger").unwrap().http.rate_limit = Some(limit);
    })
    .await;
    app.reset_stats().await;
    app.inject_faults(json!([{"upstream": "bigledger", "route": "/v1/items/*", "latency_ms": 300}])).await;
    let big = {
        let (client, url) = (app.client.clone(), format!("{}/graphql", app.url));
        let body = json!({"query": "query ($ids: [ID!]!) { items(ids: $ids) { id } }", "variables": {"ids": bigledger_ids(0..10)}});
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().json::<Value>().await.unwrap() })
    };
    while app.calls_to("bigledger").await == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let body = app.query(r#"{ item(id: "bigledger:item_99") { id } }"#, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    // The single lookup got the permit the big one may not hold: it was sent
    // while the big one had sent at most three of its ten (one at a time),
    // instead of queueing behind all of them.
    let when_answered = app.calls_to("bigledger").await;
    assert!(when_answered <= 4, "{when_answered} calls before the single lookup was answered");
    let big = big.await.unwrap();
    assert!(big["errors"].is_null(), "{big}");
    assert_eq!(app.calls_to("bigledger").await, 11);
}

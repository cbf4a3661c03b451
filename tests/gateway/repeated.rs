//! Repeated selections: identical ones run once, whichever way they are
//! repeated, and what an operation (or a whole batch) runs after merging is
//! bounded by `limits.max_fields`. Every count is an upstream call here (the
//! ledger cache is off), so the mock's request log counts resolutions.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_codes, small_data, spawn_app, spawn_app_with, TestApp};

const ONE_COUNT: &str = "{ ledgerEntries(first: 1) { totalCount } }";

/// Business Central's `$count=true` reads since the last reset: one per
/// `totalCount` computed (the other sources cannot count).
async fn counts(app: &TestApp) -> usize {
    app.requests().await.iter().filter(|(_, query)| query.contains(&("$count".into(), "true".into()))).count()
}

/// Upstream requests of every kind since the last reset.
async fn upstream_calls(app: &TestApp) -> u64 {
    app.stats().await["total"].as_u64().unwrap()
}

/// `totalCount` of one connection through `spreads` spreads of one fragment.
fn spread_query(spreads: usize) -> String {
    format!(
        "{{ ledgerEntries(first: 1) {{ {} }} }} fragment F on LedgerEntryConnection {{ totalCount }}",
        "...F ".repeat(spreads)
    )
}

/// `fields` distinct fragments, each selecting `totalCount`, spread once each.
fn distinct_fragments_query(fields: usize) -> String {
    let spreads: String = (0..fields).map(|i| format!("...F{i} ")).collect();
    let fragments: String =
        (0..fields).map(|i| format!("fragment F{i} on LedgerEntryConnection {{ totalCount }}\n")).collect();
    format!("{{ ledgerEntries(first: 1) {{ {spreads} }} }}\n{fragments}")
}

async fn post_batch(app: &TestApp, operations: &[Value]) -> (StatusCode, Value) {
    let response = app.client.post(format!("{}/graphql", app.url)).json(&operations).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// The answer and upstream calls of the plain one-count query, as the
/// baseline a repeated query must match.
async fn baseline(app: &TestApp) -> (Value, u64) {
    // The first query signs Business Central in; later ones reuse its token.
    app.query(ONE_COUNT, json!({})).await;
    app.reset_stats().await;
    let body = app.query(ONE_COUNT, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(counts(app).await, 1);
    (body, upstream_calls(app).await)
}

#[tokio::test]
async fn a_fragment_spread_four_thousand_times_is_counted_once() {
    let app = spawn_app().await;
    let (expected, calls) = baseline(&app).await;
    app.reset_stats().await;
    let query = spread_query(4000);
    assert!(query.len() > 20_000);
    let body = app.query(&query, json!({})).await;
    assert_eq!(body, expected);
    assert_eq!(counts(&app).await, 1);
    assert_eq!(upstream_calls(&app).await, calls);
}

#[tokio::test]
async fn a_field_repeated_four_thousand_times_is_resolved_once() {
    let app = spawn_app().await;
    let (expected, calls) = baseline(&app).await;
    app.reset_stats().await;
    let query = format!("{{ ledgerEntries(first: 1) {{ {} }} }}", "totalCount ".repeat(4000));
    let body = app.query(&query, json!({})).await;
    assert_eq!(body, expected);
    assert_eq!(counts(&app).await, 1);
    assert_eq!(upstream_calls(&app).await, calls);
    // Identical inline fragments merge the same way.
    app.reset_stats().await;
    let inline = "... on LedgerEntryConnection { totalCount } ".repeat(1000);
    let body = app.query(&format!("{{ ledgerEntries(first: 1) {{ {inline} }} }}"), json!({})).await;
    assert_eq!(body, expected);
    assert_eq!(counts(&app).await, 1);
}

#[tokio::test]
async fn a_batch_of_ten_four_thousand_spread_operations_counts_once_per_operation() {
    let app = spawn_app().await;
    let (expected, calls) = baseline(&app).await;
    app.reset_stats().await;
    let operation = json!({"query": spread_query(4000)});
    let (status, body) = post_batch(&app, &vec![operation; 10]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!(vec![expected; 10]));
    assert_eq!(counts(&app).await, 10);
    assert_eq!(upstream_calls(&app).await, 10 * calls);
}

#[tokio::test]
async fn identical_selections_resolve_once_however_they_are_repeated() {
    let app = spawn_app().await;
    // A failing count adds one error per resolution of `totalCount`, so the
    // errors count the resolver calls (the shared count would hide them).
    app.inject_faults(json!([{"upstream": "business-central", "param": "$count", "status": 400}])).await;
    let nested: String = (0..14)
        .map(|i| format!("fragment F{i} on LedgerEntryConnection {{ ...F{next} ...F{next} }}\n", next = i + 1))
        .collect();
    let repeated = [
        spread_query(4000),
        format!("{{ ledgerEntries(first: 1) {{ {} }} }}", "totalCount ".repeat(4000)),
        format!("{{ ledgerEntries(first: 1) {{ {} }} }}", "... on LedgerEntryConnection { totalCount } ".repeat(1000)),
        format!(
            "{{ ledgerEntries(first: 1) {{ ...F0 }} }}\n{nested}fragment F14 on LedgerEntryConnection {{ totalCount }}"
        ),
    ];
    for query in repeated {
        let body = app.query(&query, json!({})).await;
        assert_eq!(error_codes(&body), ["UPSTREAM_REJECTED"], "{}: {body}", &query[..60]);
        assert_eq!(body["errors"][0]["path"], json!(["ledgerEntries", "totalCount"]));
    }
}

#[tokio::test]
async fn different_selections_of_total_count_on_one_connection_count_once() {
    let app = spawn_app().await;
    let (expected, _) = baseline(&app).await;
    app.reset_stats().await;
    // Aliases, distinct fragments and inline fragments are not identical
    // selections: each resolves, and they share the connection's one count.
    let query = format!(
        "{{ ledgerEntries(first: 1) {{ totalCount a: totalCount ... on LedgerEntryConnection {{ totalCount b: totalCount }} {} }} }}\n{}",
        (0..50).map(|i| format!("...F{i} ")).collect::<String>(),
        (0..50).map(|i| format!("fragment F{i} on LedgerEntryConnection {{ totalCount }}\n")).collect::<String>()
    );
    let body = app.query(&query, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let connection = &body["data"]["ledgerEntries"];
    assert_eq!(connection["totalCount"], expected["data"]["ledgerEntries"]["totalCount"]);
    assert_eq!(connection["a"], connection["totalCount"]);
    assert_eq!(connection["b"], connection["totalCount"]);
    assert_eq!(counts(&app).await, 1);
}

#[tokio::test]
async fn identical_spreads_nested_to_an_exponential_expansion_run_once() {
    let app = spawn_app().await;
    let (expected, calls) = baseline(&app).await;
    app.reset_stats().await;
    // F0 spreads F1 twice, F1 spreads F2 twice...: 2^14 totalCounts as
    // written, within the complexity limit; merged, one.
    let levels = 14;
    let mut query = String::from("{ ledgerEntries(first: 1) { ...F0 } }\n");
    for i in 0..levels {
        query.push_str(&format!("fragment F{i} on LedgerEntryConnection {{ ...F{next} ...F{next} }}\n", next = i + 1));
    }
    query.push_str(&format!("fragment F{levels} on LedgerEntryConnection {{ totalCount }}"));
    let body = app.query(&query, json!({})).await;
    assert_eq!(body, expected);
    assert_eq!(upstream_calls(&app).await, calls);
    // Deeper, the document as written is refused, before it is merged.
    app.reset_stats().await;
    let mut bomb = String::from("{ ledgerEntries(first: 1) { ...F0 } }\n");
    for i in 0..25 {
        bomb.push_str(&format!("fragment F{i} on LedgerEntryConnection {{ ...F{next} ...F{next} }}\n", next = i + 1));
    }
    bomb.push_str("fragment F25 on LedgerEntryConnection { totalCount }");
    assert_eq!(error_codes(&app.query(&bomb, json!({})).await), ["QUERY_TOO_COMPLEX"]);
    assert_eq!(upstream_calls(&app).await, 0);
}

#[tokio::test]
async fn more_distinct_fields_than_max_fields_are_refused_before_any_upstream_call() {
    let app = spawn_app().await;
    app.reset_stats().await;
    // ledgerEntries + 1000 distinct spreads of totalCount: 1001 > 1000.
    let body = app.query(&distinct_fragments_query(1000), json!({})).await;
    assert_eq!(error_codes(&body), ["TOO_MANY_FIELDS"], "{body}");
    assert_eq!(body["errors"][0]["message"], "operation selects too many fields: 1001, at most 1000");
    assert!(body["data"].is_null());
    assert_eq!(upstream_calls(&app).await, 0);
    let body = app.query(&distinct_fragments_query(999), json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(counts(&app).await, 1);
}

#[tokio::test]
async fn fragments_that_multiply_distinct_selections_are_refused_by_their_expansion() {
    let app = spawn_app().await;
    app.reset_stats().await;
    // Each level spreads the next once directly and once in an inline
    // fragment: not identical, so nothing merges; 2^10 totalCounts.
    let levels = 10;
    let mut query = String::from("{ ledgerEntries(first: 1) { ...F0 } }\n");
    for i in 0..levels {
        query.push_str(&format!(
            "fragment F{i} on LedgerEntryConnection {{ ...F{next} ... on LedgerEntryConnection {{ ...F{next} }} }}\n",
            next = i + 1
        ));
    }
    query.push_str(&format!("fragment F{levels} on LedgerEntryConnection {{ totalCount }}"));
    let body = app.query(&query, json!({})).await;
    assert_eq!(error_codes(&body), ["TOO_MANY_FIELDS"], "{body}");
    assert_eq!(body["errors"][0]["message"], "operation selects too many fields: 1025, at most 1000");
    assert_eq!(upstream_calls(&app).await, 0);
}

#[tokio::test]
async fn a_batch_shares_one_allowance_of_fields() {
    let app = spawn_app().await;
    app.reset_stats().await;
    // 30 aliased edges of a node of 12 fields: 421 fields, fine alone;
    // three of them in a batch select 1263, over the batch's 1000.
    let node = "node { id source nativeId entryDate updatedAt eventType rawEventType quantity sku itemId warehouseId locationId }";
    let aliased: String = (0..30).map(|i| format!("e{i}: edges {{ {node} }} ")).collect();
    let operation = json!({"query": format!("{{ ledgerEntries(first: 1) {{ {aliased} }} }}")});
    let (status, body) = post_batch(&app, &vec![operation.clone(); 3]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_codes(&body), ["TOO_MANY_FIELDS"], "{body}");
    assert_eq!(body["errors"][0]["message"], "batch selects too many fields: 1263, at most 1000");
    assert_eq!(upstream_calls(&app).await, 0);
    let (status, body) = post_batch(&app, &vec![operation; 2]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_array().unwrap().iter().all(|response| response["errors"].is_null()), "{body}");
}

#[tokio::test]
async fn max_fields_is_configurable() {
    let app = spawn_app_with(small_data(), |config| config.limits.max_fields = 3).await;
    app.reset_stats().await;
    let body = app.query("{ ledgerEntries(first: 1) { totalCount pageInfo { hasNextPage } } }", json!({})).await;
    assert_eq!(error_codes(&body), ["TOO_MANY_FIELDS"], "{body}");
    assert_eq!(upstream_calls(&app).await, 0);
    // Merged first: four identical spreads of three fields are three.
    let query = "{ ...Q ...Q ...Q ...Q } fragment Q on Query { ledgerEntries(first: 1) { pageInfo { hasNextPage } } }";
    let body = app.query(query, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
}

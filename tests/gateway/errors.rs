use serde_json::{json, Value};

use crate::helpers::{error_codes, operation, small_data, spawn_app, spawn_app_with};

fn assert_no_secrets(body: &Value) {
    let text = body.to_string();
    for secret in [
        ledger_gateway::mock::trackstar::API_KEY,
        ledger_gateway::mock::trackstar::ACCESS_TOKEN,
        ledger_gateway::mock::business_central::TOKEN,
        "127.0.0.1",
    ] {
        assert!(!text.contains(secret), "response leaks {secret}: {text}");
    }
}

#[tokio::test]
async fn a_cursor_that_does_not_decode_is_rejected_before_any_upstream_call() {
    let app = spawn_app().await;
    app.reset_stats().await;
    for after in ["garbage", "v1.bm90LWpzb24", "v9.e30", ""] {
        let body = app.query(&operation("LedgerPage"), json!({"after": after})).await;
        assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "after={after:?}: {body}");
        assert!(body["data"].is_null() || body["data"]["ledgerEntries"].is_null());
    }
    assert_eq!(app.stats().await["total"], 0);
}

#[tokio::test]
async fn a_cursor_from_another_filter_is_rejected_not_restarted() {
    let app = spawn_app().await;
    let page = app.query(&operation("LedgerPage"), json!({"first": 5})).await;
    let cursor = page["data"]["ledgerEntries"]["pageInfo"]["endCursor"].clone();
    app.reset_stats().await;
    let body = app
        .query(&operation("LedgerPage"), json!({"first": 5, "after": cursor, "filter": {"eventTypes": ["RECEIPT"]}}))
        .await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("different filter"));
    assert_eq!(app.stats().await["total"], 0);
}

#[tokio::test]
async fn page_sizes_outside_the_limits_are_bad_input() {
    let app = spawn_app().await;
    for first in [0, -1, 501] {
        let body = app.query(&operation("LedgerPage"), json!({"first": first})).await;
        assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "first={first}: {body}");
    }
    let body = app.query(&operation("LedgerPage"), json!({"first": "ten"})).await;
    assert!(!error_codes(&body).is_empty() && !error_codes(&body).contains(&"<none>".to_owned()), "{body}");
}

#[tokio::test]
async fn oversized_filter_lists_are_bad_input() {
    let app = spawn_app().await;
    let skus: Vec<String> = (0..501).map(|i| format!("S{i}")).collect();
    let body = app.query(&operation("LedgerPage"), json!({"filter": {"skus": skus}})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{body}");
}

#[tokio::test]
async fn rejected_upstream_credentials_name_the_source_and_leak_nothing() {
    let app = spawn_app_with(small_data(), |config| {
        let source = config.sources.get_mut("trackstar").unwrap();
        source.credentials.insert("api_key".into(), secrecy::SecretString::from("wrong-key"));
    })
    .await;
    let body = app.query(&operation("LedgerPage"), json!({"first": 5, "filter": {"sources": ["trackstar"]}})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_UNAUTHORIZED"], "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["source"], "trackstar");
    assert_eq!(error["path"], json!(["ledgerEntries"]));
    assert_eq!(body["data"]["ledgerEntries"]["edges"], json!([]));
    assert!(!body.to_string().contains("wrong-key"));
    assert_no_secrets(&body);
    // 401 is not transient: exactly one call, no retries.
    assert_eq!(app.calls_to("trackstar").await, 1);
}

#[tokio::test]
async fn parse_and_validation_errors_carry_codes() {
    let app = spawn_app().await;
    let body = app.query("{ ledgerEntries(first: 1) { edges ", json!({})).await;
    assert_eq!(error_codes(&body), ["GRAPHQL_PARSE_FAILED"], "{body}");
    let body = app.query("{ ledgerEntries { noSuchField } }", json!({})).await;
    assert_eq!(error_codes(&body), ["GRAPHQL_VALIDATION_FAILED"], "{body}");
    assert_eq!(app.stats().await["total"], 0);
}

#[tokio::test]
async fn a_callers_forwarded_token_selects_that_callers_data() {
    let app = spawn_app().await;
    let query = operation("LedgerPage");
    let variables = json!({"first": 5, "filter": {"sources": ["trackstar"]}});
    let mine = app.query_with_headers(&query, variables.clone(), &[("x-trackstar-access-token", "alice-token")]).await;
    let demo = app.query(&query, variables).await;
    assert!(mine["errors"].is_null(), "{mine}");
    assert_ne!(
        mine["data"]["ledgerEntries"]["edges"][0]["node"]["id"],
        demo["data"]["ledgerEntries"]["edges"][0]["node"]["id"]
    );
    let alice = app.mock.state.trackstar.tenant("alice-token");
    let first_id = mine["data"]["ledgerEntries"]["edges"][0]["node"]["nativeId"].as_str().unwrap();
    assert!(alice.by_id.iter().any(|r| r.id == first_id));
}

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_codes, small_data, spawn_app, spawn_app_with};

const SIMPLE: &str = "{ ledgerEntries(first: 2) { edges { node { id } } } }";

#[tokio::test]
async fn get_requests_execute_queries() {
    let app = spawn_app().await;
    let response = app.client.get(format!("{}/graphql", app.url)).query(&[("query", SIMPLE)]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["ledgerEntries"]["edges"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn posts_that_are_not_json_do_not_execute() {
    let app = spawn_app().await;
    app.reset_stats().await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let response = app
            .client
            .post(format!("{}/graphql", app.url))
            .header(CONTENT_TYPE, content_type)
            .body(json!({"query": SIMPLE}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_codes(&body), ["UNSUPPORTED_MEDIA_TYPE"]);
    }
    assert_eq!(app.stats().await["total"], 0);
}

#[tokio::test]
async fn request_errors_are_400_only_for_the_graphql_response_media_type() {
    let app = spawn_app().await;
    let send = |accept: &'static str| {
        app.client.post(format!("{}/graphql", app.url)).header(ACCEPT, accept).json(&json!({"query": "{ nope"})).send()
    };
    let modern = send("application/graphql-response+json").await.unwrap();
    assert_eq!(modern.status(), StatusCode::BAD_REQUEST);
    assert_eq!(modern.headers()[CONTENT_TYPE], "application/graphql-response+json");
    let legacy = send("application/json").await.unwrap();
    assert_eq!(legacy.status(), StatusCode::OK);
    assert_eq!(legacy.headers()[CONTENT_TYPE], "application/json");
    let body: Value = legacy.json().await.unwrap();
    assert_eq!(error_codes(&body), ["GRAPHQL_PARSE_FAILED"]);
}

#[tokio::test]
async fn malformed_bodies_get_a_coded_error() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.url))
        .header(CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_codes(&body), ["BAD_REQUEST"]);
}

#[tokio::test]
async fn batches_execute_each_operation_and_are_bounded() {
    let app = spawn_app().await;
    let one = json!({"query": SIMPLE});
    let response = app.client.post(format!("{}/graphql", app.url)).json(&json!([one, one])).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 2);
    let too_many: Vec<Value> = (0..11).map(|_| one.clone()).collect();
    let response = app.client.post(format!("{}/graphql", app.url)).json(&too_many).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn browsers_get_graphiql_served_from_the_gateway_itself() {
    let app = spawn_app().await;
    for path in ["/", "/graphql"] {
        let response = app
            .client
            .get(format!("{}{path}", app.url))
            .header(ACCEPT, "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.unwrap();
        assert!(html.contains("/graphiql/graphiql.min.js"), "{path}");
        assert!(html.contains("ledgerEntries"), "{path}: the example query is embedded");
        assert!(!html.contains("unpkg") && !html.contains("cdn"), "{path}: no third-party scripts");
    }
    let asset = app.client.get(format!("{}/graphiql/graphiql.min.js", app.url)).send().await.unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
}

#[tokio::test]
async fn graphiql_can_be_switched_off() {
    let app = spawn_app_with(small_data(), |config| config.server.graphiql = false).await;
    let response = app.client.get(format!("{}/", app.url)).header(ACCEPT, "text/html").send().await.unwrap();
    assert!(!response.text().await.unwrap().contains("graphiql.min.js"));
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let app = spawn_app().await;
    let health = app.client.get(format!("{}/health", app.url)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.client.get(format!("{}/ready", app.url)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["sources"]["trackstar"]["ready"], true);
    app.query(SIMPLE, json!({})).await;
    let metrics = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("upstream_requests_total"), "{metrics}");
}

#[tokio::test]
async fn readiness_fails_with_a_code_when_an_upstream_rejects_the_credentials() {
    let app = spawn_app_with(small_data(), |config| {
        let source = config.sources.get_mut("trackstar").unwrap();
        source.credentials.insert("api_key".into(), secrecy::SecretString::from("wrong"));
    })
    .await;
    let ready = app.client.get(format!("{}/ready", app.url)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["sources"]["trackstar"]["code"], "UPSTREAM_UNAUTHORIZED");
}

#[test]
fn schema_graphql_is_the_served_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let served = ledger_gateway::schema::sdl();
    assert!(committed == served, "schema.graphql is stale: run `cargo run -- print-schema > schema.graphql`");
}

//! HTTP statuses per GraphQL over HTTP. A request that is not a GraphQL
//! request is a 4xx in both media types; one that failed before execution is
//! a 400 as `application/graphql-response+json` and a 200 as
//! `application/json`; both have no `data` entry. Whatever executed is a
//! 200, `data: null` included, and so is every batch.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error_codes, small_data, spawn_app_with, TestApp};

const MODERN: &str = "application/graphql-response+json";
const LEGACY: &str = "application/json";

/// The demo, with upstream faults answered at once.
async fn spawn() -> TestApp {
    spawn_app_with(small_data(), |config| {
        for source in config.sources.values_mut() {
            source.http.max_retries = 0;
        }
    })
    .await
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Answer {
        let status = response.status();
        let content_type =
            response.headers().get(CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = response.json().await.unwrap_or_else(|e| panic!("{status}: not JSON: {e}"));
        Answer { status, content_type, body }
    }

    fn has_data(&self) -> bool {
        self.body.as_object().is_some_and(|body| body.contains_key("data"))
    }

    /// A request error: `status`, the one error `code`, and no `data`.
    fn assert_request_error(&self, status: StatusCode, code: &str, case: &str) {
        assert_eq!(self.status, status, "{case}: {self:?}");
        assert_eq!(error_codes(&self.body), [code], "{case}: {self:?}");
        assert!(!self.has_data(), "{case}: a request error has no data entry: {self:?}");
    }
}

async fn post(app: &TestApp, accept: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Answer {
    let request = app.client.post(format!("{}/graphql", app.url)).header(ACCEPT, accept);
    Answer::from(request.header(CONTENT_TYPE, content_type).body(body).send().await.unwrap()).await
}

async fn post_json(app: &TestApp, accept: &str, body: &Value) -> Answer {
    post(app, accept, LEGACY, body.to_string()).await
}

async fn get(app: &TestApp, accept: &str, params: &[(&str, &str)]) -> Answer {
    let request = app.client.get(format!("{}/graphql", app.url)).header(ACCEPT, accept).query(params);
    Answer::from(request.send().await.unwrap()).await
}

#[tokio::test]
async fn requests_that_are_not_graphql_requests_are_4xx_without_data_in_both_media_types() {
    let app = spawn().await;
    app.reset_stats().await;
    let too_large = format!("{{\"query\": \"{{ __typename }}\", \"x\": \"{}\"}}", "a".repeat(1024 * 1024));
    for accept in [MODERN, LEGACY] {
        let cases = [
            (
                "JSON that does not parse",
                post(&app, accept, LEGACY, "{not json").await,
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
            ),
            (
                "no query",
                post_json(&app, accept, &json!({"qeury": "{ __typename }"})).await,
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
            ),
            (
                "GET without query",
                get(&app, accept, &[("operationName", "Q")]).await,
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
            ),
            (
                "body too large",
                post(&app, accept, LEGACY, too_large.clone()).await,
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
            ),
            (
                "wrong media type",
                post(&app, accept, "text/plain", r#"{"query": "{ __typename }"}"#).await,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (
                "a mutation over GET",
                get(&app, accept, &[("query", "mutation { x }")]).await,
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
            ),
        ];
        for (case, answer, status, code) in cases {
            answer.assert_request_error(status, code, &format!("{case} ({accept})"));
        }
        let put = app.client.request(Method::PUT, format!("{}/graphql", app.url)).header(ACCEPT, accept);
        let put = put.json(&json!({"query": "{ __typename }"})).send().await.unwrap();
        assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED, "PUT ({accept})");
    }
    assert_eq!(app.stats().await["total"], 0, "nothing executed");
}

/// Documents that fail before execution, each with its code.
fn unexecutable() -> Vec<(&'static str, Value, &'static str)> {
    let aliases: String = (0..31).map(|i| format!("a{i}: id ")).collect();
    vec![
        ("parse error", json!({"query": "{ nope"}), "GRAPHQL_PARSE_FAILED"),
        ("validation error", json!({"query": "{ nope }"}), "GRAPHQL_VALIDATION_FAILED"),
        (
            "limit",
            json!({"query": format!("{{ ledgerEntries(first: 1) {{ nodes {{ {aliases} }} }} }}")}),
            "TOO_MANY_ALIASES",
        ),
        (
            "unknown operation",
            json!({"query": "query A { __typename }", "operationName": "B"}),
            "OPERATION_RESOLUTION_FAILURE",
        ),
        (
            "operation not named",
            json!({"query": "query A { __typename } query B { __typename }"}),
            "OPERATION_RESOLUTION_FAILURE",
        ),
    ]
}

#[tokio::test]
async fn graphql_request_errors_have_no_data_and_are_400_only_as_graphql_response_json() {
    let app = spawn().await;
    app.reset_stats().await;
    for (case, request, code) in unexecutable() {
        let modern = post_json(&app, MODERN, &request).await;
        modern.assert_request_error(StatusCode::BAD_REQUEST, code, case);
        assert_eq!(modern.content_type, MODERN, "{case}");
        let legacy = post_json(&app, LEGACY, &request).await;
        legacy.assert_request_error(StatusCode::OK, code, case);
        assert_eq!(legacy.content_type, LEGACY, "{case}");
    }
    let modern = get(&app, MODERN, &[("query", "{ nope }")]).await;
    modern.assert_request_error(StatusCode::BAD_REQUEST, "GRAPHQL_VALIDATION_FAILED", "GET");
    get(&app, LEGACY, &[("query", "{ nope }")]).await.assert_request_error(
        StatusCode::OK,
        "GRAPHQL_VALIDATION_FAILED",
        "GET",
    );
    assert_eq!(app.stats().await["total"], 0, "nothing executed");
}

/// Executed requests whose field failed: `(query, data)`.
fn executed_with_errors(item: &str) -> Vec<(String, Value)> {
    vec![
        // A nullable root field whose upstream fails.
        (format!("{{ item(id: \"{item}\") {{ name }} }}"), json!({"item": null})),
        // A non-null root field that fails: `data` is null, yet it executed.
        ("{ ledgerEntries(first: 0) { nodes { id } } }".to_owned(), Value::Null),
    ]
}

#[tokio::test]
async fn executed_requests_are_200_in_both_media_types_even_with_data_null() {
    let app = spawn().await;
    let item = format!(
        "trackstar:{}",
        app.mock.state.trackstar.tenant(ledger_gateway::mock::trackstar::ACCESS_TOKEN).items[0].id
    );
    app.inject_faults(json!([{"upstream": "trackstar", "route": "/wms/inventory", "status": 503}])).await;
    for (query, data) in executed_with_errors(&item) {
        for accept in [MODERN, LEGACY] {
            for answer in
                [post_json(&app, accept, &json!({"query": query})).await, get(&app, accept, &[("query", &query)]).await]
            {
                assert_eq!(answer.status, StatusCode::OK, "{query} ({accept}): {answer:?}");
                assert_eq!(answer.content_type, accept, "{query}");
                assert_eq!(answer.body.get("data"), Some(&data), "{query} ({accept}): {answer:?}");
                let errors = answer.body["errors"].as_array().unwrap();
                assert!(errors.len() == 1 && !errors[0]["path"].as_array().unwrap().is_empty(), "{answer:?}");
            }
        }
    }
    let answer = post_json(&app, MODERN, &json!({"query": "{ __typename }"})).await;
    assert_eq!((answer.status, answer.body), (StatusCode::OK, json!({"data": {"__typename": "Query"}})));
}

#[tokio::test]
async fn a_batch_is_200_and_each_entry_is_shaped_as_its_own_request() {
    let app = spawn().await;
    let ok = json!({"query": "{ __typename }"});
    let executed_null = json!({"query": "{ ledgerEntries(first: 0) { nodes { id } } }"});
    let (_, parse_error, _) = &unexecutable()[0];
    for accept in [MODERN, LEGACY] {
        let answer = post_json(&app, accept, &json!([ok, executed_null])).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.content_type, accept);
        assert_eq!(answer.body[0], json!({"data": {"__typename": "Query"}}));
        assert_eq!(answer.body[1]["data"], Value::Null);
        assert_eq!(answer.body[1]["errors"][0]["path"], json!(["ledgerEntries"]), "{answer:?}");

        // A request error inside a batch is that entry's, not the batch's.
        let answer = post_json(&app, accept, &json!([ok, parse_error, executed_null])).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.body[0], json!({"data": {"__typename": "Query"}}));
        let entry = answer.body[1].as_object().unwrap();
        assert!(!entry.contains_key("data"), "{answer:?}");
        assert_eq!(error_codes(&answer.body[1]), ["GRAPHQL_PARSE_FAILED"]);
        assert_eq!(answer.body[2].get("data"), Some(&Value::Null), "{answer:?}");

        // A batch that is not one is refused whole.
        let answer = post_json(&app, accept, &json!([ok, {"qeury": "{ __typename }"}])).await;
        answer.assert_request_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "malformed batch");
    }
}

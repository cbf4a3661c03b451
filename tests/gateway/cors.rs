use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{small_data, spawn_app, spawn_app_with, TestApp};

const ALLOWED: &str = "http://app.test:3000";
const SIMPLE: &str = "{ ledgerEntries(first: 2) { edges { node { id } } } }";

async fn spawn_with_cors() -> TestApp {
    spawn_app_with(small_data(), |config| {
        config.server.cors = Some(ledger_gateway::config::CorsConfig {
            allow_origins: vec![ALLOWED.into(), "https://other.test".into()],
            allow_headers: vec!["x-request-id".into()],
            expose_headers: vec!["x-trace".into()],
            max_age_secs: 120,
            allow_credentials: false,
        });
    })
    .await
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, format!("{}/graphql", app.url))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-trackstar-access-token")
        .send()
        .await
        .unwrap()
}

fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers.keys().map(|name| name.as_str().to_owned()).filter(|name| name.starts_with("access-control-")).collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name}: {headers:?}"))
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_204_with_its_rules() {
    let app = spawn_with_cors().await;
    app.reset_stats().await;
    let response = preflight(&app, ALLOWED).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), ALLOWED);
    assert_eq!(header(headers, "access-control-allow-methods"), "GET,POST");
    let allowed: Vec<&str> = header(headers, "access-control-allow-headers").split(',').collect();
    for name in ["content-type", "accept", "x-trackstar-access-token", "x-pennylane-token", "x-request-id"] {
        assert!(allowed.contains(&name), "{name} in {allowed:?}");
    }
    assert_eq!(header(headers, "access-control-max-age"), "120");
    assert!(headers.get("access-control-allow-credentials").is_none());
    assert!(header(headers, "vary").contains("origin"));
    assert_eq!(app.stats().await["total"], 0);
}

#[tokio::test]
async fn another_origin_gets_no_cors_header_at_all() {
    let app = spawn_with_cors().await;
    for origin in ["http://evil.test", "http://app.test:3001", "null"] {
        let response = preflight(&app, origin).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{origin}");
        assert_eq!(cors_headers(response.headers()), Vec::<String>::new(), "{origin}");
        assert!(header(response.headers(), "vary").contains("origin"), "caches must tell origins apart");
        let post = app
            .client
            .post(format!("{}/graphql", app.url))
            .header("origin", origin)
            .json(&json!({"query": SIMPLE}))
            .send()
            .await
            .unwrap();
        assert_eq!(cors_headers(post.headers()), Vec::<String>::new(), "{origin}");
    }
}

#[tokio::test]
async fn an_actual_request_from_an_allowed_origin_may_read_its_answer() {
    let app = spawn_with_cors().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.url))
        .header("origin", ALLOWED)
        .json(&json!({"query": SIMPLE}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "access-control-allow-origin"), ALLOWED);
    assert_eq!(header(response.headers(), "access-control-expose-headers"), "x-trace");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["ledgerEntries"]["edges"].as_array().unwrap().len(), 2, "{body}");
    // Refusals below GraphQL are readable too.
    let refused = app
        .client
        .post(format!("{}/graphql", app.url))
        .header("origin", ALLOWED)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(header(refused.headers(), "access-control-allow-origin"), ALLOWED);
}

#[tokio::test]
async fn without_cors_settings_no_origin_gets_cors_headers_and_options_is_refused() {
    let app = spawn_app().await;
    let response = preflight(&app, ALLOWED).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(cors_headers(response.headers()), Vec::<String>::new());
    let post =
        app.client.post(format!("{}/graphql", app.url)).header("origin", ALLOWED).json(&json!({"query": SIMPLE}));
    assert_eq!(cors_headers(post.send().await.unwrap().headers()), Vec::<String>::new());
}

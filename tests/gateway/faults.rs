//! Upstream faults injected through the mock (`/__mock/faults`): every test
//! asserts the error code, that nothing leaks, and the exact number of calls
//! the upstream received.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ledger_gateway::config::{Config, RateLimitConfig, SourceConfig};
use ledger_gateway::mock::trackstar::{Row, ACCESS_TOKEN, API_KEY};
use ledger_gateway::mock::{Mock, MockOptions};
use ledger_gateway::model::{SortKey, SourceKind};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{clock, error_codes, operation, small_data, spawn_app_with, TestApp};

const ENTRY: &str = "query($id: ID!) { ledgerEntry(id: $id) { id quantity } }";
const LEDGER: &str = "/wms/inventory/ledger";
const TOKEN_HEADER: &str = "x-trackstar-access-token";
/// What Trackstar answers for a page token it no longer accepts.
const PAGE_TOKEN_REJECTED: &str =
    r#"{"error":"Validation error","detail":{"query":{"page_token":["invalid page token"]}}}"#;

fn trackstar(config: &mut Config) -> &mut SourceConfig {
    config.sources.get_mut("trackstar").unwrap()
}

/// The demo on its Trackstar sources only: these tests exercise the shared
/// client mechanics through one connector, and count its calls exactly.
async fn spawn(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(small_data(), |config| {
        config.sources.retain(|_, source| source.kind == SourceKind::Trackstar);
        tweak(config);
    })
    .await
}

/// The global id of an entry the demo tenant has.
fn known_id(app: &TestApp) -> String {
    format!("trackstar:{}", app.mock.state.trackstar.tenant(ACCESS_TOKEN).by_id[0].id)
}

async fn lookup(app: &TestApp, id: &str) -> Value {
    app.query(ENTRY, json!({"id": id})).await
}

async fn lookup_as(app: &TestApp, id: &str, token: &str) -> Value {
    app.query_with_headers(ENTRY, json!({"id": id}), &[(TOKEN_HEADER, token)]).await
}

/// Counts the calls the mock received since the last look (a reset would
/// also remove the fault rules).
struct Calls<'a> {
    app: &'a TestApp,
    seen: u64,
}

impl<'a> Calls<'a> {
    async fn start(app: &'a TestApp) -> Calls<'a> {
        Calls { app, seen: app.calls_to("trackstar").await }
    }

    async fn since_last(&mut self) -> u64 {
        let total = self.app.calls_to("trackstar").await;
        let new = total - self.seen;
        self.seen = total;
        new
    }
}

/// One upstream error with `code`, naming `source`, at `path`; and no
/// secret, address, upstream body or decoder message anywhere in it.
fn assert_upstream_error(body: &Value, code: &str, source: &str, path: &str) {
    assert_eq!(error_codes(body), [code], "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["source"], source, "{body}");
    assert_eq!(error["path"], json!([path]), "{body}");
    assert_leaks_nothing(body);
}

fn assert_leaks_nothing(body: &Value) {
    for error in body["errors"].as_array().into_iter().flatten() {
        let shown = format!("{} {}", error["message"], error["extensions"]);
        for leak in [
            API_KEY,
            ACCESS_TOKEN,
            "127.0.0.1",
            "http",
            "wms/",
            "page_token",
            "<",
            "expected",
            "line 1",
            "EOF",
            "invalid type",
            "Validation error",
            "retry in",
        ] {
            assert!(!shown.contains(leak), "error leaks {leak:?}: {shown}");
        }
    }
}

fn retry_after_seconds(body: &Value) -> u64 {
    body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retryAfterSeconds: {body}"))
}

#[tokio::test]
async fn a_503_then_success_costs_two_calls_and_no_error() {
    let app = spawn(|_| {}).await;
    let id = known_id(&app);
    app.reset_stats().await;
    app.inject_faults(json!([{"upstream": "trackstar", "route": LEDGER, "status": 503, "times": 1}])).await;
    let body = lookup(&app, &id).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["ledgerEntry"]["id"], id);
    assert_eq!(app.calls_to("trackstar").await, 2);
}

#[tokio::test]
async fn answers_that_will_not_change_are_never_retried() {
    let app = spawn(|_| {}).await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    for (status, code) in [
        (401, "UPSTREAM_UNAUTHORIZED"),
        (403, "UPSTREAM_FORBIDDEN"),
        (400, "UPSTREAM_REJECTED"),
        (422, "UPSTREAM_REJECTED"),
        (501, "UPSTREAM_NOT_SUPPORTED"),
    ] {
        app.inject_faults(json!([{"upstream": "trackstar", "status": status}])).await;
        let body = lookup(&app, &id).await;
        assert_upstream_error(&body, code, "trackstar", "ledgerEntry");
        assert_eq!(calls.since_last().await, 1, "{status}");
    }
    // A 404 means "no such entry": null, not an error, and not retried.
    app.inject_faults(json!([{"upstream": "trackstar", "status": 404}])).await;
    let body = lookup(&app, &id).await;
    assert!(body["errors"].is_null() && body["data"]["ledgerEntry"].is_null(), "{body}");
    assert_eq!(calls.since_last().await, 1);
}

#[tokio::test]
async fn transient_failures_are_retried_max_retries_times() {
    let app = spawn(|config| {
        let http = &mut trackstar(config).http;
        http.max_retries = 2;
        http.breaker.failure_threshold = 100;
    })
    .await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    for (rule, code) in [
        (json!({"upstream": "trackstar", "status": 503}), "UPSTREAM_UNAVAILABLE"),
        (json!({"upstream": "trackstar", "status": 500}), "UPSTREAM_UNAVAILABLE"),
        (json!({"upstream": "trackstar", "status": 504}), "UPSTREAM_TIMEOUT"),
        // The connection drops before the announced length: a network fault.
        (json!({"upstream": "trackstar", "body": "cut"}), "UPSTREAM_UNAVAILABLE"),
    ] {
        app.inject_faults(json!([rule])).await;
        let body = lookup(&app, &id).await;
        assert_upstream_error(&body, code, "trackstar", "ledgerEntry");
        assert_eq!(calls.since_last().await, 3, "{rule}: one call and two retries");
    }
}

#[tokio::test]
async fn the_retry_budget_caps_retries_across_requests() {
    let app = spawn(|config| {
        let http = &mut trackstar(config).http;
        http.max_retries = 5;
        http.retry_budget_percent = 0;
        http.retry_budget_reserve = 2;
        http.breaker.failure_threshold = 100;
    })
    .await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    app.inject_faults(json!([{"upstream": "trackstar", "status": 503}])).await;
    let body = lookup(&app, &id).await;
    assert_upstream_error(&body, "UPSTREAM_UNAVAILABLE", "trackstar", "ledgerEntry");
    assert_eq!(calls.since_last().await, 3, "the reserve pays for two retries");
    let body = lookup(&app, &id).await;
    assert_upstream_error(&body, "UPSTREAM_UNAVAILABLE", "trackstar", "ledgerEntry");
    assert_eq!(calls.since_last().await, 1, "the budget is spent: no retry");
}

#[tokio::test]
async fn a_429_is_retried_after_the_wait_the_upstream_asks_for() {
    let app = spawn(|_| {}).await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    for rule in [
        json!({"upstream": "trackstar", "status": 429, "headers": {"retry-after": "1"}, "times": 1}),
        json!({"upstream": "trackstar", "status": 429, "body": "Rate limit exceeded. Please retry in 1 seconds.", "times": 1}),
        // No wait given: exponential backoff.
        json!({"upstream": "trackstar", "status": 429, "times": 1}),
    ] {
        app.inject_faults(json!([rule])).await;
        let body = lookup(&app, &id).await;
        assert!(body["errors"].is_null(), "{rule}: {body}");
        assert_eq!(calls.since_last().await, 2, "{rule}");
    }
}

#[tokio::test]
async fn a_429_wait_beyond_the_deadline_fails_fast_for_every_header_variant() {
    let app = spawn(|config| {
        config.server.request_timeout_ms = 3000;
        let http = &mut trackstar(config).http;
        http.request_timeout_ms = 2000;
        // Only the deadline decides here.
        http.max_retry_wait_ms = 600_000;
    })
    .await;
    let id = known_id(&app);
    // Measured by the gateway from the same fixed clock: exactly 30 s away.
    let in_30s = clock().now() + chrono::Duration::seconds(30);
    let epoch = in_30s.timestamp().to_string();
    let http_date = in_30s.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let variants = [
        json!({"headers": {"retry-after": "30"}}),
        json!({"headers": {"retry-after": http_date}}),
        json!({"headers": {"x-rate-limit-retry-after": "30"}}),
        json!({"headers": {"x-ratelimit-retry-after": "30"}}),
        json!({"headers": {"x-rate-limit-reset": epoch, "x-rate-limit-remaining": "0"}}),
        json!({"headers": {"x-ratelimit-reset": epoch, "x-ratelimit-remaining": "0"}}),
        json!({"headers": {"ratelimit-reset": epoch, "ratelimit-remaining": "0"}}),
        json!({"body": "Rate limit exceeded. Please retry in 30 seconds."}),
    ];
    let mut calls = Calls::start(&app).await;
    for (n, variant) in variants.into_iter().enumerate() {
        // Each variant as its own caller: a wait holds only that credential.
        let token = format!("tenant-{n}");
        let mut rule = json!({"upstream": "trackstar", "status": 429, "credential": token, "times": 1});
        rule.as_object_mut().unwrap().extend(variant.as_object().unwrap().clone());
        app.inject_faults(json!([rule])).await;
        let body = lookup_as(&app, &id, &token).await;
        assert_upstream_error(&body, "UPSTREAM_RATE_LIMITED", "trackstar", "ledgerEntry");
        assert_eq!(retry_after_seconds(&body), 30, "{variant}: {body}");
        assert_eq!(calls.since_last().await, 1, "{variant}: no retry into a wait that outlasts the deadline");
        // The wait holds every call of that credential, without asking upstream.
        let body = lookup_as(&app, &id, &token).await;
        assert_upstream_error(&body, "UPSTREAM_RATE_LIMITED", "trackstar", "ledgerEntry");
        assert!((1..=30).contains(&retry_after_seconds(&body)), "{variant}: {body}");
        assert_eq!(calls.since_last().await, 0, "{variant}");
    }
    // Other callers were never held.
    let body = lookup(&app, &id).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(calls.since_last().await, 1);
}

#[tokio::test]
async fn a_quota_reported_exhausted_on_a_success_holds_that_credential() {
    let app = spawn(|config| {
        config.server.request_timeout_ms = 3000;
        trackstar(config).http.request_timeout_ms = 2000;
    })
    .await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    let headers = json!({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "30"});
    app.inject_faults(json!([{"upstream": "trackstar", "headers": headers, "times": 1}])).await;
    let body = lookup(&app, &id).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(calls.since_last().await, 1);
    let body = lookup(&app, &id).await;
    assert_upstream_error(&body, "UPSTREAM_RATE_LIMITED", "trackstar", "ledgerEntry");
    assert_eq!(calls.since_last().await, 0, "the gateway waits instead of earning a 429");
    let body = lookup_as(&app, &id, "someone-else").await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(calls.since_last().await, 1);
}

#[tokio::test]
async fn the_gateway_stays_under_a_configured_rate_limit() {
    let app = spawn(|config| {
        config.server.request_timeout_ms = 3000;
        let http = &mut trackstar(config).http;
        http.request_timeout_ms = 2000;
        http.rate_limit = Some(RateLimitConfig { requests: 2, per_ms: 60_000, concurrency: None });
    })
    .await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    for _ in 0..2 {
        assert!(lookup(&app, &id).await["errors"].is_null());
    }
    assert_eq!(calls.since_last().await, 2);
    let body = lookup(&app, &id).await;
    assert_upstream_error(&body, "UPSTREAM_RATE_LIMITED", "trackstar", "ledgerEntry");
    assert!((58..=60).contains(&retry_after_seconds(&body)), "{body}");
    assert_eq!(calls.since_last().await, 0, "the call that would wait past the deadline is never sent");
    // The quota is per credential.
    assert!(lookup_as(&app, &id, "another-caller").await["errors"].is_null());
    assert_eq!(calls.since_last().await, 1);
}

#[tokio::test]
async fn trackstars_documented_quota_is_the_default_limit() {
    let app = spawn(|config| {
        // Less than the second a call beyond 10 would wait.
        config.server.request_timeout_ms = 600;
        let source = trackstar(config);
        source.http.request_timeout_ms = 500;
        source.http.rate_limit = None;
    })
    .await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    let bodies = futures::future::join_all((0..12).map(|_| lookup(&app, &id))).await;
    let codes: Vec<Vec<String>> = bodies.iter().map(error_codes).collect();
    assert_eq!(codes.iter().filter(|c| c.is_empty()).count(), 10, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| *c == &["UPSTREAM_RATE_LIMITED"]).count(), 2, "{codes:?}");
    assert_eq!(calls.since_last().await, 10);
}

#[tokio::test]
async fn an_attempt_slower_than_the_source_timeout_is_a_timeout() {
    let app = spawn(|config| {
        let http = &mut trackstar(config).http;
        http.request_timeout_ms = 300;
        http.max_retries = 0;
    })
    .await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    app.inject_faults(json!([{"upstream": "trackstar", "latency_ms": 5000}])).await;
    let body = lookup(&app, &id).await;
    assert_upstream_error(&body, "UPSTREAM_TIMEOUT", "trackstar", "ledgerEntry");
    assert_eq!(calls.since_last().await, 1);
}

#[tokio::test]
async fn retries_never_outlast_the_request_deadline() {
    let app = spawn(|config| {
        config.server.request_timeout_ms = 2000;
        let http = &mut trackstar(config).http;
        http.request_timeout_ms = 1200;
        http.max_retries = 5;
        http.backoff_base_ms = 0;
    })
    .await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    app.inject_faults(json!([{"upstream": "trackstar", "latency_ms": 10_000}])).await;
    let body = lookup(&app, &id).await;
    assert_upstream_error(&body, "UPSTREAM_TIMEOUT", "trackstar", "ledgerEntry");
    // A full attempt, then one cut at the deadline; nothing after it.
    assert_eq!(calls.since_last().await, 2);
}

fn breaker(threshold: u32, cool_down_ms: u64) -> impl FnOnce(&mut Config) {
    move |config| {
        let http = &mut trackstar(config).http;
        http.max_retries = 0;
        http.breaker.failure_threshold = threshold;
        http.breaker.cool_down_ms = cool_down_ms;
    }
}

#[tokio::test]
async fn the_circuit_opens_after_consecutive_failures_and_fails_fast() {
    let app = spawn(breaker(3, 60_000)).await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    app.inject_faults(json!([{"upstream": "trackstar", "status": 503, "credential": ACCESS_TOKEN}])).await;
    for _ in 0..3 {
        assert_upstream_error(&lookup(&app, &id).await, "UPSTREAM_UNAVAILABLE", "trackstar", "ledgerEntry");
    }
    assert_eq!(calls.since_last().await, 3);
    let body = lookup(&app, &id).await;
    assert_upstream_error(&body, "CIRCUIT_OPEN", "trackstar", "ledgerEntry");
    assert!((59..=60).contains(&retry_after_seconds(&body)), "{body}");
    assert_eq!(calls.since_last().await, 0, "an open circuit sends nothing");
    // The circuit belongs to one credential: other callers still get through.
    assert!(lookup_as(&app, &id, "another-caller").await["errors"].is_null());
    assert_eq!(calls.since_last().await, 1);
}

#[tokio::test]
async fn answers_like_401_404_and_422_never_open_the_circuit() {
    let app = spawn(breaker(2, 60_000)).await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    for status in [401, 404, 422, 401, 404, 422] {
        app.inject_faults(json!([{"upstream": "trackstar", "status": status}])).await;
        let body = lookup(&app, &id).await;
        assert!(!error_codes(&body).contains(&"CIRCUIT_OPEN".to_owned()), "{status}: {body}");
        assert_eq!(calls.since_last().await, 1, "{status}");
    }
}

#[tokio::test]
async fn a_half_open_circuit_recovers_through_one_trial_request() {
    let app = spawn(breaker(2, 400)).await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    app.inject_faults(json!([{"upstream": "trackstar", "status": 503}])).await;
    for _ in 0..2 {
        lookup(&app, &id).await;
    }
    assert_eq!(calls.since_last().await, 2);
    app.clear_faults().await;
    assert_upstream_error(&lookup(&app, &id).await, "CIRCUIT_OPEN", "trackstar", "ledgerEntry");
    assert_eq!(calls.since_last().await, 0);

    tokio::time::sleep(Duration::from_millis(500)).await;
    // The trial is slow; requests arriving meanwhile wait for its outcome
    // (one trial at a time is the breaker's unit tests' to show) and are
    // served once it closed the circuit.
    app.inject_faults(json!([{"upstream": "trackstar", "latency_ms": 800, "times": 1}])).await;
    let bodies = futures::future::join_all((0..3).map(|_| lookup(&app, &id))).await;
    let codes: Vec<Vec<String>> = bodies.iter().map(error_codes).collect();
    assert!(codes.iter().all(Vec::is_empty), "{codes:?}");
    assert_eq!(calls.since_last().await, 3);
    // The trial succeeded: closed again.
    assert!(lookup(&app, &id).await["errors"].is_null());
    assert_eq!(calls.since_last().await, 1);
}

#[tokio::test]
async fn a_failed_trial_opens_the_circuit_again() {
    let app = spawn(breaker(2, 400)).await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    app.inject_faults(json!([{"upstream": "trackstar", "status": 503}])).await;
    for _ in 0..2 {
        lookup(&app, &id).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls.since_last().await, 2);
    assert_upstream_error(&lookup(&app, &id).await, "UPSTREAM_UNAVAILABLE", "trackstar", "ledgerEntry");
    assert_eq!(calls.since_last().await, 1, "the trial");
    assert_upstream_error(&lookup(&app, &id).await, "CIRCUIT_OPEN", "trackstar", "ledgerEntry");
    assert_eq!(calls.since_last().await, 0);
}

#[tokio::test]
async fn malformed_answers_are_bad_responses_and_are_not_retried() {
    let app = spawn(|config| {
        let http = &mut trackstar(config).http;
        http.max_body_bytes = 1024 * 1024;
        http.breaker.failure_threshold = 100;
    })
    .await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    for body in ["malformed_json", "html", "truncated", "wrong_types", "oversized", "not json at all"] {
        app.inject_faults(json!([{"upstream": "trackstar", "route": LEDGER, "body": body}])).await;
        let answer = lookup(&app, &id).await;
        assert_upstream_error(&answer, "UPSTREAM_BAD_RESPONSE", "trackstar", "ledgerEntry");
        assert_eq!(calls.since_last().await, 1, "{body}");
    }
    // The size cap is what rejects the oversized body: valid JSON under it.
    let roomy = spawn(|config| trackstar(config).http.max_body_bytes = 8 * 1024 * 1024).await;
    roomy.inject_faults(json!([{"upstream": "trackstar", "route": LEDGER, "body": "oversized"}])).await;
    assert!(lookup(&roomy, &known_id(&roomy)).await["errors"].is_null());
}

#[tokio::test]
async fn a_body_cut_off_mid_transfer_is_retried_unlike_a_malformed_one() {
    let app = spawn(|_| {}).await;
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    app.inject_faults(json!([{"upstream": "trackstar", "route": LEDGER, "body": "cut", "times": 1}])).await;
    let body = lookup(&app, &id).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["ledgerEntry"]["id"], id);
    assert_eq!(calls.since_last().await, 2, "the cut answer and its retry");
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let app = spawn(|_| {}).await;
    let elsewhere = Mock::start_on("127.0.0.1:0".parse().unwrap(), MockOptions::default()).await.unwrap();
    let id = known_id(&app);
    let mut calls = Calls::start(&app).await;
    let target = format!("http://{}/trackstar/wms/inventory/ledger?token={ACCESS_TOKEN}", elsewhere.addr);
    for status in [301, 302, 303, 307, 308] {
        app.inject_faults(json!([{"upstream": "trackstar", "status": status, "redirect_to": target}])).await;
        let body = lookup(&app, &id).await;
        assert_upstream_error(&body, "UPSTREAM_BAD_RESPONSE", "trackstar", "ledgerEntry");
        assert_eq!(calls.since_last().await, 1, "{status}");
    }
    assert_eq!(elsewhere.state.stats().total, 0, "no request, so no credential, reached the other host");
}

#[tokio::test]
async fn caller_input_never_changes_the_upstream_host_or_path() {
    let app = spawn(|_| {}).await;
    app.reset_stats().await;
    let hostile = ["../../x", "x?y=1#z", "//evil.example/x", "@evil.example:1", "x&limit=1&ids[in]=y", "..", "%2e%2e"];
    for input in hostile {
        let body = lookup(&app, &format!("trackstar:{input}")).await;
        assert!(body["errors"].is_null() && body["data"]["ledgerEntry"].is_null(), "{input}: {body}");
    }
    let requests = app.requests().await;
    assert_eq!(requests.len(), hostile.len());
    for ((path, query), input) in requests.iter().zip(hostile) {
        assert_eq!(path, "/trackstar/wms/inventory/ledger", "{input}");
        assert_eq!(query[0], ("ids[in]".to_owned(), input.to_owned()), "{input}");
    }
}

/// A same-second pair of entries (and no third): with one entry per
/// upstream page, reading their second takes a page token.
fn same_second_pair(app: &TestApp) -> (chrono::DateTime<Utc>, Vec<String>) {
    let data = app.mock.state.trackstar.tenant(ACCESS_TOKEN);
    let rows = &data.by_date;
    let at = (1..rows.len() - 2)
        .find(|&i| {
            rows[i].entry_date == rows[i + 1].entry_date
                && rows[i - 1].entry_date != rows[i].entry_date
                && rows[i + 2].entry_date != rows[i].entry_date
        })
        .expect("the data has same-second pairs");
    let mut ids: Vec<String> = rows[at..at + 2].iter().map(|r: &Arc<Row>| format!("trackstar:{}", r.id)).collect();
    ids.sort();
    (rows[at].entry_date, ids)
}

fn one_entry_per_page(config: &mut Config) {
    let source = trackstar(config);
    source.page_size = Some(1);
    source.initial_window_secs = Some(1);
}

#[tokio::test]
async fn expired_page_token_restarts_from_the_cursor_position() {
    let app = spawn(one_entry_per_page).await;
    let (at, ids) = same_second_pair(&app);
    let filter = json!({"entryDate": {"gte": at.to_rfc3339(), "lte": at.to_rfc3339()}});
    let query = operation("LedgerPage");
    let first = app.query(&query, json!({"filter": filter, "first": 1})).await;
    assert!(first["errors"].is_null(), "{first}");
    assert_eq!(first["data"]["ledgerEntries"]["edges"][0]["node"]["id"], ids[0]);
    let cursor = first["data"]["ledgerEntries"]["pageInfo"]["endCursor"].clone();

    app.reset_stats().await;
    app.inject_faults(json!([{
        "upstream": "trackstar", "route": LEDGER, "param": "page_token",
        "status": 422, "body": PAGE_TOKEN_REJECTED, "times": 1,
    }]))
    .await;
    let second = app.query(&query, json!({"filter": filter, "first": 1, "after": cursor})).await;
    assert!(second["errors"].is_null(), "{second}");
    let edges = &second["data"]["ledgerEntries"]["edges"];
    assert_eq!(edges.as_array().unwrap().len(), 1);
    assert_eq!(edges[0]["node"]["id"], ids[1], "the entry after the cursor, not the first page again");
    assert_eq!(second["data"]["ledgerEntries"]["pageInfo"]["hasNextPage"], false);

    // First page of the window, its token (rejected), the window again from
    // its first page, its token: all inside the cursor's one-second window.
    let requests = app.requests().await;
    let tokens: Vec<bool> = requests.iter().map(|(_, q)| q.iter().any(|(k, _)| k == "page_token")).collect();
    assert_eq!(tokens, [false, true, false, true]);
    let window =
        |q: &Vec<(String, String)>| q.iter().filter(|(k, _)| k.starts_with("entry_date")).cloned().collect::<Vec<_>>();
    let bounds = window(&requests[0].1);
    assert_eq!(bounds[0], ("entry_date[gte]".to_owned(), at.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
    assert!(requests.iter().all(|(_, q)| window(q) == bounds), "{requests:?}");
    assert_eq!(app.faults().await[0]["fired"], 1);
}

#[tokio::test]
async fn a_page_token_rejected_again_fails_with_its_code_and_the_retry_continues_from_the_cursor() {
    let app = spawn(one_entry_per_page).await;
    let (at, ids) = same_second_pair(&app);
    let filter = json!({"entryDate": {"gte": at.to_rfc3339(), "lte": at.to_rfc3339()}});
    let query = operation("LedgerPage");
    let first = app.query(&query, json!({"filter": filter, "first": 1})).await;
    let cursor = first["data"]["ledgerEntries"]["pageInfo"]["endCursor"].clone();

    app.reset_stats().await;
    app.inject_faults(json!([{
        "upstream": "trackstar", "route": LEDGER, "param": "page_token", "status": 422, "body": PAGE_TOKEN_REJECTED,
    }]))
    .await;
    let failed = app.query(&query, json!({"filter": filter, "first": 1, "after": cursor})).await;
    assert_upstream_error(&failed, "UPSTREAM_PAGE_TOKEN_INVALID", "trackstar", "ledgerEntries");
    let connection = &failed["data"]["ledgerEntries"];
    assert_eq!(connection["edges"], json!([]));
    assert_eq!(connection["pageInfo"]["hasNextPage"], true, "the source's entries are still to come");
    assert!(connection["pageInfo"]["endCursor"].is_null(), "no edge: ask again with the same cursor");
    assert_eq!(app.calls_to("trackstar").await, 4, "one restart of the window, not more");

    app.clear_faults().await;
    let retried = app.query(&query, json!({"filter": filter, "first": 1, "after": cursor})).await;
    assert!(retried["errors"].is_null(), "{retried}");
    assert_eq!(retried["data"]["ledgerEntries"]["edges"][0]["node"]["id"], ids[1]);
}

/// Two Trackstar sources on the same mock: `north` with the demo tenant,
/// `south` with its own, so their entries differ.
fn north_and_south(config: &mut Config) {
    let mut north = config.sources.remove("trackstar").unwrap();
    north.http.breaker.failure_threshold = 1000;
    let mut south = north.clone();
    south.credentials.insert("access_token".into(), SecretString::from("south-token"));
    south.http.max_retries = 0;
    config.sources.insert("north".into(), north);
    config.sources.insert("south".into(), south);
}

/// Every entry of both sources, in the merged order.
fn merged_ids(app: &TestApp) -> Vec<String> {
    let mut keys: Vec<SortKey> = [("north", ACCESS_TOKEN), ("south", "south-token")]
        .iter()
        .flat_map(|(source, token)| {
            let data = app.mock.state.trackstar.tenant(token);
            data.by_id
                .iter()
                .map(|r| SortKey {
                    entry_date: Some(r.entry_date),
                    source: (*source).to_owned(),
                    native_id: r.id.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    keys.sort();
    keys.into_iter().map(|k| format!("{}:{}", k.source, k.native_id)).collect()
}

#[tokio::test]
async fn a_failing_source_leaves_the_others_data_and_names_itself() {
    let app = spawn(north_and_south).await;
    app.inject_faults(json!([{"upstream": "trackstar", "credential": "south-token", "status": 503}])).await;
    let body = app.query(&operation("LedgerPage"), json!({"first": 10})).await;
    assert_upstream_error(&body, "UPSTREAM_UNAVAILABLE", "south", "ledgerEntries");
    let connection = &body["data"]["ledgerEntries"];
    let ids: Vec<&str> =
        connection["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap()).collect();
    let north: Vec<String> = merged_ids(&app).into_iter().filter(|id| id.starts_with("north:")).take(10).collect();
    assert_eq!(ids, north);
    assert_eq!(connection["pageInfo"]["hasNextPage"], true);

    // Once south answers, it continues from where it stood (its newest
    // entry), north from the cursor: the next page is the next ten of both.
    app.clear_faults().await;
    let after = connection["pageInfo"]["endCursor"].clone();
    let next = app.query(&operation("LedgerPage"), json!({"first": 10, "after": after})).await;
    assert!(next["errors"].is_null(), "{next}");
    let ids: Vec<&str> = next["data"]["ledgerEntries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = merged_ids(&app).into_iter().filter(|id| !north.contains(id)).take(10).collect();
    assert_eq!(ids, expected);
    assert!(ids.iter().any(|id| id.starts_with("south:")), "{ids:?}");
}

#[tokio::test]
async fn walking_pages_while_a_source_fails_now_and_then_yields_every_entry_exactly_once() {
    let app = spawn(north_and_south).await;
    // Every third call for south fails, six times: some pages lose it,
    // later ones recover.
    let rule =
        json!({"upstream": "trackstar", "credential": "south-token", "status": 503, "rate": {"every": 3}, "times": 6});
    app.inject_faults(json!([rule])).await;
    let query = operation("LedgerPage");
    let (mut after, mut walked, mut failed_pages) = (Value::Null, Vec::new(), 0);
    for page in 1.. {
        let body = app.query(&query, json!({"first": 25, "after": after})).await;
        if !body["errors"].is_null() {
            assert_upstream_error(&body, "UPSTREAM_UNAVAILABLE", "south", "ledgerEntries");
            failed_pages += 1;
        }
        let connection = &body["data"]["ledgerEntries"];
        walked.extend(
            connection["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        if connection["pageInfo"]["hasNextPage"] == false {
            break;
        }
        // A page left empty by the failure has no cursor: ask again.
        if !connection["pageInfo"]["endCursor"].is_null() {
            after = connection["pageInfo"]["endCursor"].clone();
        }
        assert!(page < 500, "the walk does not end");
    }
    assert_eq!(app.faults().await[0]["fired"], 6);
    assert_eq!(failed_pages, 6, "each failure costs south one page");
    let unique: HashSet<&String> = walked.iter().collect();
    assert_eq!(unique.len(), walked.len(), "an entry repeats");
    let mut expected = merged_ids(&app);
    assert_eq!(expected.len(), 800);
    let mut sorted = walked.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "an entry is missing");
}

thread_local! {
    /// Where this thread's log lines go while a test captures them.
    static CAPTURED: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

/// Writes log lines into this thread's capture buffer.
struct ThreadBuffer;

impl std::io::Write for ThreadBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|c| c.borrow_mut().as_mut().map(|buffer| buffer.extend_from_slice(bytes)));
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines (every level, every crate) written while `work` runs on this
/// thread; a `#[tokio::test]` runs the gateway and the mock on it too. One
/// process-wide subscriber that writes only for capturing threads, with a
/// dynamic filter: a thread-local subscriber, or a filter whose answer is
/// cached per callsite, misses events whose callsites another test's thread
/// reached first.
async fn captured_logs<F: std::future::Future>(work: F) -> (F::Output, String) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let capturing = tracing_subscriber::filter::dynamic_filter_fn(|_, _| CAPTURED.with(|c| c.borrow().is_some()));
        let layer =
            tracing_subscriber::fmt::layer().with_ansi(false).with_writer(|| ThreadBuffer).with_filter(capturing);
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
        // Callsites other threads reached before the subscriber existed.
        tracing::callsite::rebuild_interest_cache();
    });
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let output = work.await;
    let logs = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (output, String::from_utf8_lossy(&logs).into_owned())
}

#[tokio::test]
async fn failing_calls_leak_no_token_into_the_response_or_the_logs() {
    let app = spawn(|config| {
        let http = &mut trackstar(config).http;
        http.max_retries = 1;
        http.backoff_base_ms = 1;
    })
    .await;
    let id = known_id(&app);
    let caller_token = "caller-s3cret-token";
    let echo = format!("invalid token {ACCESS_TOKEN} for key {API_KEY} / {caller_token}");
    let target = format!("http://127.0.0.1:1/x?access_token={ACCESS_TOKEN}&caller={caller_token}");
    let failures = [
        json!({"upstream": "trackstar", "status": 503, "body": echo}),
        json!({"upstream": "trackstar", "status": 401, "body": echo}),
        json!({"upstream": "trackstar", "status": 429, "body": echo, "headers": {"retry-after": "600"}}),
        json!({"upstream": "trackstar", "body": echo}),
        json!({"upstream": "trackstar", "status": 302, "redirect_to": target}),
    ];
    let (bodies, logs) = captured_logs(async {
        let mut bodies = Vec::new();
        for (n, rule) in failures.iter().enumerate() {
            app.inject_faults(json!([rule])).await;
            bodies.push(lookup(&app, &id).await);
            bodies.push(lookup_as(&app, &id, &format!("{caller_token}-{n}")).await);
        }
        bodies
    })
    .await;
    assert!(logs.contains("upstream call failed") && logs.contains("upstream body did not decode"), "{logs}");
    for body in &bodies {
        assert!(!error_codes(body).is_empty(), "{body}");
        assert_leaks_nothing(body);
        assert!(!body.to_string().contains(caller_token), "{body}");
    }
    for secret in [ACCESS_TOKEN, API_KEY, caller_token] {
        assert!(!logs.contains(secret), "logs leak {secret}:\n{logs}");
    }
}

#[tokio::test]
async fn fault_rules_are_managed_over_http() {
    let app = spawn(|_| {}).await;
    let url = format!("http://{}/__mock/faults", app.mock.addr);
    let refused = app.client.post(&url).json(&json!([{"upstream": "trackstar", "rate": 2.0}])).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    let refused =
        app.client.post(&url).json(&json!([{"upstream": "trackstar", "colour": "red"}])).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(app.faults().await, json!([]));

    let id = known_id(&app);
    app.inject_faults(json!([{"upstream": "trackstar", "status": 401, "rate": {"every": 2}, "times": 1}])).await;
    let codes: Vec<Vec<String>> =
        futures::future::join_all((0..4).map(|_| lookup(&app, &id))).await.iter().map(error_codes).collect();
    assert_eq!(codes.iter().filter(|c| c.is_empty()).count(), 3, "{codes:?}");
    let status = app.faults().await;
    assert_eq!((status[0]["matched"].as_u64(), status[0]["fired"].as_u64()), (Some(4), Some(1)));

    app.clear_faults().await;
    assert_eq!(app.faults().await, json!([]));
    app.inject_faults(json!([{"upstream": "trackstar", "status": 500}])).await;
    app.reset_stats().await;
    assert_eq!(app.faults().await, json!([]), "a reset clears faults too");
    assert!(lookup(&app, &id).await["errors"].is_null());
}

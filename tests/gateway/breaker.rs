//! The circuit breaker at every connector, each through its own mock: six
//! 503s open it, and after the cool-down it closes again, also when the
//! source fans a page out into several calls (BigLedger's two lists) and
//! when the trial's caller goes away mid-call. Cool-downs are short and
//! waited out for real; what is asserted is behaviour and call counts.

use std::time::Duration;

use ledger_gateway::config::Config;
use serde_json::{json, Value};

use crate::helpers::{error_codes, small_data, spawn_app_with, TestApp};

const PAGE: &str = "query($filter: LedgerEntryFilter) {
  ledgerEntries(first: 50, filter: $filter) { edges { node { id source } } }
}";
const COOL_DOWN: Duration = Duration::from_millis(400);
/// Past the cool-down, with room for a slow machine.
const COOLED: Duration = Duration::from_millis(500);
/// Each connector's source in the demo, named like its mock upstream.
const SOURCES: [&str; 4] = ["trackstar", "business-central", "bigledger", "pennylane"];

/// The demo's four sources, with a short cool-down and no backoff to wait
/// out between retries; `threshold` consecutive failures open a circuit.
async fn spawn(threshold: u32) -> TestApp {
    spawn_app_with(small_data(), |config: &mut Config| {
        for source in config.sources.values_mut() {
            let http = &mut source.http;
            http.breaker.cool_down_ms = COOL_DOWN.as_millis() as u64;
            http.breaker.failure_threshold = threshold;
            (http.backoff_base_ms, http.backoff_max_ms) = (1, 1);
        }
    })
    .await
}

async fn page(app: &TestApp, source: &str) -> Value {
    page_with(app, &app.client, source).await.expect("gateway answers")
}

async fn page_with(app: &TestApp, client: &reqwest::Client, source: &str) -> reqwest::Result<Value> {
    let variables = json!({"filter": {"sources": [source]}});
    let request = client.post(format!("{}/graphql", app.url)).json(&json!({"query": PAGE, "variables": variables}));
    request.send().await?.json().await
}

/// The page and how many calls the source's upstream got for it.
async fn page_and_calls(app: &TestApp, source: &str) -> (Value, u64) {
    let before = app.calls_to(source).await;
    let body = page(app, source).await;
    (body, app.calls_to(source).await - before)
}

fn assert_entries(body: &Value, source: &str) {
    assert!(body["errors"].is_null(), "{source}: {body}");
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().expect("edges");
    assert!(!edges.is_empty() && edges.iter().all(|e| e["node"]["source"] == source), "{source}: {body}");
}

fn assert_source_error(body: &Value, code: &str, source: &str) {
    assert_eq!(error_codes(body), [code], "{source}: {body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], source, "{source}: {body}");
}

/// Pages fail until one is refused with `CIRCUIT_OPEN` without a call.
async fn fail_until_open(app: &TestApp, source: &str) {
    for _ in 0..6 {
        let (body, calls) = page_and_calls(app, source).await;
        if error_codes(&body) == ["CIRCUIT_OPEN"] {
            assert_source_error(&body, "CIRCUIT_OPEN", source);
            assert_eq!(calls, 0, "{source}: an open circuit sends nothing");
            return;
        }
        assert_source_error(&body, "UPSTREAM_UNAVAILABLE", source);
        assert!(calls > 0, "{source}: {body}");
    }
    panic!("{source}: the circuit never opened");
}

/// The demo's defaults (5 failures, 2 retries) against six 503s: the
/// circuit opens, fails fast, then each cool-down lets a trial through
/// until one succeeds, on the second trial at the latest (one 503 may be
/// left for the first).
async fn recovers_after_six_failures(source: &str) {
    let app = spawn(5).await;
    app.inject_faults(json!([{"upstream": source, "status": 503, "times": 6}])).await;
    fail_until_open(&app, source).await;
    for trial in 1..=2 {
        tokio::time::sleep(COOLED).await;
        let (body, calls) = page_and_calls(&app, source).await;
        assert!(calls > 0, "{source}: trial {trial} was never sent: {body}");
        if body["errors"].is_null() {
            assert_entries(&body, source);
            let fired = app.faults().await[0]["fired"].as_u64();
            assert_eq!(fired, Some(6), "{source}: closed before the 503s ran out");
            // Closed: the next page goes straight through.
            assert_entries(&page(&app, source).await, source);
            return;
        }
        assert_eq!(trial, 1, "{source}: the second trial failed too: {body}");
        // A source that fans a page out (BigLedger's two lists) may report
        // the call that waited on the failed trial before the trial itself.
        let code = if error_codes(&body) == ["CIRCUIT_OPEN"] { "CIRCUIT_OPEN" } else { "UPSTREAM_UNAVAILABLE" };
        assert_source_error(&body, code, source);
    }
}

#[tokio::test]
async fn trackstar_recovers_after_six_failures() {
    recovers_after_six_failures(SOURCES[0]).await;
}

#[tokio::test]
async fn business_central_recovers_after_six_failures() {
    recovers_after_six_failures(SOURCES[1]).await;
}

#[tokio::test]
async fn bigledger_recovers_after_six_failures() {
    recovers_after_six_failures(SOURCES[2]).await;
}

#[tokio::test]
async fn pennylane_recovers_after_six_failures() {
    recovers_after_six_failures(SOURCES[3]).await;
}

/// The trial's caller hangs up while the upstream is slow to answer it:
/// the circuit is not left waiting on that trial, and the next page is
/// served.
async fn recovers_after_a_cancelled_trial(source: &str) {
    let app = spawn(1).await;
    app.inject_faults(json!([{"upstream": source, "status": 503}])).await;
    fail_until_open(&app, source).await;
    tokio::time::sleep(COOLED).await;
    // Replaces the 503s: the upstream is back, but slow once.
    app.inject_faults(json!([{"upstream": source, "latency_ms": 1500, "times": 1}])).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let hung_up = page_with(&app, &impatient, source).await;
    assert!(hung_up.is_err_and(|e| e.is_timeout()), "{source}: the first trial is slow");
    assert_eq!(app.faults().await[0]["fired"], 1, "{source}: the trial was sent");
    let body = page(&app, source).await;
    assert_entries(&body, source);
    assert_entries(&page(&app, source).await, source);
}

#[tokio::test]
async fn trackstar_recovers_after_a_cancelled_trial() {
    recovers_after_a_cancelled_trial(SOURCES[0]).await;
}

#[tokio::test]
async fn business_central_recovers_after_a_cancelled_trial() {
    recovers_after_a_cancelled_trial(SOURCES[1]).await;
}

#[tokio::test]
async fn bigledger_recovers_after_a_cancelled_trial() {
    recovers_after_a_cancelled_trial(SOURCES[2]).await;
}

#[tokio::test]
async fn pennylane_recovers_after_a_cancelled_trial() {
    recovers_after_a_cancelled_trial(SOURCES[3]).await;
}

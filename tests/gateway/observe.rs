use std::io::Write;
use std::sync::{Arc, Mutex};

use ledger_gateway::config::LogFormat;
use serde_json::{json, Value};

use crate::helpers::{operation, small_data, spawn_app, spawn_app_with, TestApp};

const SOURCES: &str = "{ sources { name kind status lastSuccessAt lastFailureAt lastErrorCode circuit \
                       rateLimit { requests perMs remaining } cacheEntries cacheBytes } }";

/// The instant of `helpers::clock`, as a GraphQL `DateTime`.
const NOW: &str = "2026-06-30T10:30:00+00:00";

/// POSTs `query` with `headers`; the response's `x-request-id` and body.
async fn send(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> (String, Value) {
    let mut request = app.client.post(format!("{}/graphql", app.url)).json(&json!({"query": query}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let id = response.headers().get("x-request-id").expect("x-request-id").to_str().unwrap().to_owned();
    (id, response.json().await.unwrap())
}

async fn mock_requests(app: &TestApp) -> Vec<Value> {
    let url = format!("http://{}/__mock/requests", app.mock.addr);
    app.client.get(url).send().await.unwrap().json::<Vec<Value>>().await.unwrap()
}

fn header<'a>(recorded: &'a Value, name: &str) -> Option<&'a str> {
    recorded["headers"].as_array().unwrap().iter().find(|h| h[0] == name).and_then(|h| h[1].as_str())
}

#[tokio::test]
async fn the_request_id_comes_back_and_reaches_every_upstream_call() {
    let app = spawn_app().await;
    let (id, body) = send(&app, &operation("RecentEntries"), &[("x-request-id", "checkout-7f3a.b_c:1")]).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(id, "checkout-7f3a.b_c:1");
    let received = mock_requests(&app).await;
    assert!(received.len() >= 4, "every source was called: {received:?}");
    for request in &received {
        assert_eq!(header(request, "x-request-id"), Some(id.as_str()), "{request}");
    }
}

#[tokio::test]
async fn a_missing_or_unusable_request_id_is_replaced_by_a_generated_one() {
    let app = spawn_app().await;
    let too_long = "a".repeat(129);
    for (n, sent) in [None, Some("has spaces"), Some(too_long.as_str()), Some("<script>")].into_iter().enumerate() {
        app.reset_stats().await;
        let headers: Vec<(&str, &str)> = sent.map(|id| ("x-request-id", id)).into_iter().collect();
        // A new item each time: a cached one would call nothing.
        let query = format!(r#"{{ item(id: "trackstar:inv_missing_{n}") {{ name }} }}"#);
        let (id, _) = send(&app, &query, &headers).await;
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{sent:?}: {id}");
        let received = mock_requests(&app).await;
        assert!(!received.is_empty());
        assert!(received.iter().all(|r| header(r, "x-request-id") == Some(id.as_str())), "{sent:?}");
    }
    // Other routes get one too.
    let health = app.client.get(format!("{}/health", app.url)).send().await.unwrap();
    assert_eq!(health.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn the_mock_records_headers_with_every_credential_redacted() {
    let app = spawn_app().await;
    let (_, body) = send(&app, &operation("RecentEntries"), &[("x-trackstar-access-token", "caller-secret-1")]).await;
    assert!(body["errors"].is_null(), "{body}");
    let received = mock_requests(&app).await;
    let text = serde_json::to_string(&received).unwrap();
    for secret in ["caller-secret-1", "Bearer", "blg_demo_key", "demo-pennylane-token", "comp_demo"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let trackstar = received.iter().find(|r| r["path"].as_str().unwrap().starts_with("/trackstar/")).unwrap();
    assert_eq!(header(trackstar, "x-trackstar-access-token"), Some("[redacted]"));
    assert_eq!(header(trackstar, "x-trackstar-api-key"), Some("[redacted]"));
    let pennylane = received.iter().find(|r| r["path"].as_str().unwrap().starts_with("/pennylane/")).unwrap();
    assert_eq!(header(pennylane, "authorization"), Some("[redacted]"));
    assert_eq!(header(pennylane, "x-use-2026-api-changes"), Some("true"), "other headers are kept");
}

/// Log output captured in memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    /// The `graphql request` line of the request `id`, as JSON.
    pub fn line_of(&self, id: &str) -> Value {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == "graphql request" && line["fields"]["request_id"] == id)
            .collect();
        assert_eq!(lines.len(), 1, "one line per request: {text}");
        lines[0]["fields"].clone()
    }
}

// One thread: the subscriber set for this test sees the server's events.
#[tokio::test(flavor = "current_thread")]
async fn each_graphql_request_logs_one_line_with_its_outcome_calls_and_hits() {
    let logs = Captured::default();
    let _guard =
        tracing::subscriber::set_default(ledger_gateway::telemetry::subscriber(LogFormat::Json, false, logs.clone()));
    let app = spawn_app().await;

    let (id, _) = send(&app, &operation("RecentEntries"), &[]).await;
    let calls = app.stats().await["total"].as_u64().unwrap();
    let line = logs.line_of(&id);
    assert_eq!(line["operation"], "RecentEntries");
    assert_eq!(line["operations"], 1);
    assert_eq!((line["status"].as_u64(), line["outcome"].as_str()), (Some(200), Some("ok")));
    assert_eq!(line["error_codes"], "");
    assert_eq!(line["upstream_calls"].as_u64(), Some(calls), "what the mock received");
    assert_eq!(line["request_id_origin"], "generated");
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);

    // The same item twice: the second request is answered by the cache.
    let item = r#"query One { item(id: "trackstar:inv_missing") { name } }"#;
    send(&app, item, &[]).await;
    app.reset_stats().await;
    let (id, _) = send(&app, item, &[("x-request-id", "second")]).await;
    let line = logs.line_of(&id);
    assert_eq!((line["upstream_calls"].as_u64(), line["cache_hits"].as_u64()), (Some(0), Some(1)));
    assert_eq!(app.stats().await["total"], 0);
    assert_eq!(line["request_id_origin"], "caller");

    app.inject_faults(json!([{"upstream": "bigledger", "status": 503}])).await;
    let (id, _) = send(&app, "{ ledgerEntries(first: 3) { nodes { id } } }", &[]).await;
    let line = logs.line_of(&id);
    assert_eq!((line["operation"].as_str(), line["outcome"].as_str()), (Some("(anonymous)"), Some("partial")));
    assert_eq!(line["error_codes"], "UPSTREAM_UNAVAILABLE");

    // `application/json` (reqwest sends `Accept: */*`): a request error is a 200.
    let (id, _) = send(&app, "{ ledgerEntries(", &[("x-request-id", "x y")]).await;
    let line = logs.line_of(&id);
    assert_eq!((line["operation"].as_str(), line["status"].as_u64()), (Some("(unknown)"), Some(200)));
    assert_eq!(
        (line["error_codes"].as_str(), line["request_id_origin"].as_str()),
        (Some("GRAPHQL_PARSE_FAILED"), Some("replaced"))
    );

    // Refused before decoding: still one line, with the refusal's code.
    let response = app.client.post(format!("{}/graphql", app.url)).body("{}").send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let line = logs.line_of(&id);
    assert_eq!((line["status"].as_u64(), line["error_codes"].as_str()), (Some(415), Some("UNSUPPORTED_MEDIA_TYPE")));
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_logs_its_operations_in_one_line() {
    let logs = Captured::default();
    let _guard =
        tracing::subscriber::set_default(ledger_gateway::telemetry::subscriber(LogFormat::Json, false, logs.clone()));
    let app = spawn_app().await;
    let batch = json!([{"query": "query A { sources { name } }"}, {"query": "query B { sources { name } }"}]);
    let response = app.client.post(format!("{}/graphql", app.url)).json(&batch).send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let line = logs.line_of(&id);
    assert_eq!((line["operation"].as_str(), line["operations"].as_u64()), (Some("A,B"), Some(2)));
    assert_eq!(line["outcome"], "ok");
}

fn by_name(body: &Value) -> std::collections::BTreeMap<String, Value> {
    let sources = body["data"]["sources"].as_array().unwrap_or_else(|| panic!("{body}"));
    sources.iter().map(|s| (s["name"].as_str().unwrap().to_owned(), s.clone())).collect()
}

#[tokio::test]
async fn sources_reports_what_the_gateway_holds_without_calling_upstreams() {
    // A day-long window: what the calls used stays used however slow the test runs.
    let app = spawn_app_with(small_data(), |config| {
        for source in config.sources.values_mut() {
            source.http.rate_limit.as_mut().unwrap().per_ms = 86_400_000;
        }
    })
    .await;
    let before = by_name(&app.query(SOURCES, json!({})).await);
    assert_eq!(before.keys().collect::<Vec<_>>(), ["bigledger", "business-central", "pennylane", "trackstar"]);
    for source in before.values() {
        assert_eq!((&source["status"], &source["circuit"]), (&json!("READY"), &json!("CLOSED")), "{source}");
        assert_eq!(source["lastSuccessAt"], Value::Null, "nothing called yet: {source}");
        assert_eq!(source["rateLimit"], json!({"requests": 1000, "perMs": 86_400_000, "remaining": 1000}));
    }
    assert_eq!(before["trackstar"]["kind"], "TRACKSTAR");
    assert_eq!(app.stats().await["total"], 0, "sources calls nothing");

    app.query(&operation("RecentEntries"), json!({})).await;
    app.query(r#"{ item(id: "trackstar:inv_missing") { name } }"#, json!({})).await;
    let calls = app.stats().await["by_upstream"].clone();
    app.reset_stats().await;
    let after = by_name(&app.query(SOURCES, json!({})).await);
    assert_eq!(app.stats().await["total"], 0, "sources calls nothing");
    for (name, source) in &after {
        assert_eq!((&source["status"], &source["lastSuccessAt"]), (&json!("READY"), &json!(NOW)), "{source}");
        let made = calls[name.as_str()].as_u64().unwrap();
        assert_eq!(source["rateLimit"]["remaining"].as_u64(), Some(1000 - made), "{name}: {made} calls in the window");
    }
    assert_eq!(after["trackstar"]["cacheEntries"], 1, "the known absence of one item");
    assert!(after["trackstar"]["cacheBytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn sources_shows_each_caller_only_its_own_state() {
    let app = spawn_app().await;
    let mallory = [("x-trackstar-access-token", "mallory-token")];
    app.inject_faults(json!([{"upstream": "trackstar", "credential": "mallory-token", "status": 500}])).await;
    app.query_with_headers(r#"{ item(id: "trackstar:inv_1") { name } }"#, json!({}), &mallory).await;
    app.query(r#"{ item(id: "trackstar:inv_missing") { name } }"#, json!({})).await;
    app.reset_stats().await;

    let theirs = by_name(&app.query_with_headers(SOURCES, json!({}), &mallory).await);
    assert_eq!(theirs["trackstar"]["status"], "DEGRADED");
    assert_eq!(theirs["trackstar"]["lastErrorCode"], "UPSTREAM_UNAVAILABLE");
    assert_eq!((&theirs["trackstar"]["lastFailureAt"], &theirs["trackstar"]["cacheEntries"]), (&json!(NOW), &json!(0)));
    let service = by_name(&app.query(SOURCES, json!({})).await);
    assert_eq!(service["trackstar"]["status"], "READY", "another caller's failures are not shown");
    assert_eq!(
        (&service["trackstar"]["lastErrorCode"], &service["trackstar"]["cacheEntries"]),
        (&Value::Null, &json!(1))
    );
    assert_eq!(app.stats().await["total"], 0);

    // An unusable forwarded credential: nothing can be called for it.
    let blank = by_name(&app.query_with_headers(SOURCES, json!({}), &[("x-trackstar-access-token", " ")]).await);
    assert_eq!(
        (&blank["trackstar"]["status"], &blank["trackstar"]["lastErrorCode"]),
        (&json!("DOWN"), &json!("UNAUTHENTICATED"))
    );
    assert_eq!(blank["trackstar"]["rateLimit"], Value::Null);
}

async fn ready(app: &TestApp) -> Value {
    app.client.get(format!("{}/ready", app.url)).send().await.unwrap().json().await.unwrap()
}

/// `/ready` and `sources` say the same of every source.
async fn assert_agree(app: &TestApp) -> (Value, std::collections::BTreeMap<String, Value>) {
    let ready = ready(app).await;
    let sources = by_name(&app.query(SOURCES, json!({})).await);
    for (name, source) in &sources {
        let is_ready = ready["sources"][name.as_str()]["ready"].as_bool().unwrap();
        assert_eq!(is_ready, source["status"] == "READY", "{name}: {ready} vs {source}");
        if !is_ready {
            assert_eq!(ready["sources"][name.as_str()]["code"], source["lastErrorCode"], "{name}");
        }
    }
    (ready, sources)
}

#[tokio::test]
async fn ready_and_sources_agree_under_faults() {
    let app = spawn_app_with(small_data(), |config| {
        let http = &mut config.sources.get_mut("bigledger").unwrap().http;
        http.breaker.failure_threshold = 3;
    })
    .await;
    assert_agree(&app).await;
    app.inject_faults(json!([
        {"upstream": "bigledger", "status": 503},
        {"upstream": "pennylane", "status": 401},
        {"upstream": "trackstar", "status": 503, "times": 1},
    ]))
    .await;
    // Three failed attempts (two retries) open BigLedger's circuit.
    let (ready, sources) = assert_agree(&app).await;
    assert_eq!(ready["sources"]["bigledger"]["code"], "UPSTREAM_UNAVAILABLE");
    assert_eq!((&sources["bigledger"]["status"], &sources["bigledger"]["circuit"]), (&json!("DOWN"), &json!("OPEN")));
    assert_eq!((&sources["pennylane"]["status"], &sources["pennylane"]["circuit"]), (&json!("DOWN"), &json!("CLOSED")));
    assert_eq!(sources["pennylane"]["lastErrorCode"], "UPSTREAM_UNAUTHORIZED");
    // Trackstar's one 503 was retried: answered, with the failure remembered.
    assert_eq!(
        (&sources["trackstar"]["status"], &sources["trackstar"]["lastErrorCode"]),
        (&json!("READY"), &json!("UPSTREAM_UNAVAILABLE"))
    );

    // An open circuit: `/ready` refused without a call, `sources` says DOWN.
    app.reset_stats().await;
    app.inject_faults(json!([{"upstream": "bigledger", "status": 503}])).await;
    let (ready, sources) = assert_agree(&app).await;
    assert_eq!(app.calls_to("bigledger").await, 0);
    assert_eq!(ready["sources"]["bigledger"]["code"], "CIRCUIT_OPEN");
    assert_eq!((&sources["bigledger"]["status"], &sources["bigledger"]["circuit"]), (&json!("DOWN"), &json!("OPEN")));
    assert_eq!(sources["pennylane"]["status"], "READY", "it answers again");
}

#[tokio::test]
async fn metrics_export_request_and_upstream_durations_and_state_gauges() {
    let app = spawn_app().await;
    app.query(&operation("RecentEntries"), json!({})).await;
    let text = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    for expected in [
        r#"graphql_request_duration_seconds_bucket{operation="RecentEntries",outcome="ok",le="0.005"}"#,
        r#"upstream_request_duration_seconds_bucket{source="trackstar",route="ledger",status="200",le="0.005"}"#,
        "# TYPE graphql_request_duration_seconds histogram",
        "# HELP graphql_requests_in_flight",
        r#"upstream_circuit_state{source="trackstar"} 0"#,
        r#"cache_entries{source="trackstar",resource="item"}"#,
        r#"cache_bytes{source="pennylane",resource="ledger"}"#,
        r#"upstream_open_circuits{source="bigledger"}"#,
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
}

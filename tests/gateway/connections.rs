use std::time::Duration;

use reqwest::header::{ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{error_codes, small_data, spawn_app, spawn_app_with, TestApp};

const SIMPLE: &str = "{ ledgerEntries(first: 2) { edges { node { id } } } }";
/// Generous bound on anything a test waits for: a server that never
/// answers or never closes fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

/// Short timeouts for the one being tested, long ones for the others.
fn timeouts(header_ms: u64, keep_alive_ms: u64, body_ms: u64) -> impl FnOnce(&mut ledger_gateway::config::Config) {
    move |config| {
        config.server.header_read_timeout_ms = header_ms;
        config.server.keep_alive_timeout_ms = keep_alive_ms;
        config.server.body_read_timeout_ms = body_ms;
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.url.trim_start_matches("http://")).await.unwrap()
}

/// Everything the server sends until it closes the connection (a reset
/// counts as closed).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.expect("the server closes the connection");
    String::from_utf8_lossy(&received).into_owned()
}

/// One whole response (head and `Content-Length` body) off a connection
/// that stays open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:")?.trim().parse().ok())
                    .unwrap_or(0usize);
                if received.len() >= end + 4 + length {
                    return text;
                }
            }
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed mid-response: {text}");
            received.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read).await.expect("the server answers")
}

/// `http_connections_dropped_total` for `reason`, read over a connection
/// of its own.
async fn dropped(app: &TestApp, reason: &str) -> u64 {
    let mut stream = connect(app).await;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n").await.unwrap();
    dropped_in(&read_until_closed(&mut stream).await, reason)
}

fn dropped_in(metrics: &str, reason: &str) -> u64 {
    let series = format!("http_connections_dropped_total{{reason=\"{reason}\"}} ");
    metrics.lines().find_map(|line| line.strip_prefix(&series)?.trim().parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_timeout() {
    let app = spawn_app_with(small_data(), timeouts(200, 200, 60_000)).await;
    let before = dropped(&app, "header_timeout").await;
    let mut stream = connect(&app).await;
    assert_eq!(read_until_closed(&mut stream).await, "");
    assert!(dropped(&app, "header_timeout").await > before);
}

#[tokio::test]
async fn headers_that_never_end_are_closed_at_the_header_timeout() {
    let app = spawn_app_with(small_data(), timeouts(200, 200, 60_000)).await;
    let before = dropped(&app, "header_timeout").await;
    let mut stream = connect(&app).await;
    stream.write_all(b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: applic").await.unwrap();
    assert_eq!(read_until_closed(&mut stream).await, "");
    assert!(dropped(&app, "header_timeout").await > before);
}

/// Sends a POST head announcing 1000 body bytes, then `sent` of them, one
/// every `pace` (never all of them), and returns what the server sent
/// until it closed the connection.
async fn send_partial_body(app: &TestApp, sent: usize, pace: Duration) -> String {
    let stream = connect(app).await;
    let (mut reader, mut writer) = stream.into_split();
    let head =
        "POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    // Writes in the background: the server answers (and closes) mid-body.
    let writer = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        for _ in 0..sent {
            writer.write_all(b" ").await?;
            tokio::time::sleep(pace).await;
        }
        Ok::<_, std::io::Error>(writer)
    });
    let mut received = Vec::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buffer).await {
            received.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read).await.expect("the server answers and closes");
    writer.abort();
    String::from_utf8_lossy(&received).into_owned()
}

fn assert_body_timeout(response: &str) {
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    let body: Value = serde_json::from_str(&response[response.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(error_codes(&body), ["BODY_READ_TIMEOUT"]);
}

#[tokio::test]
async fn a_body_that_trickles_in_is_refused_at_the_body_deadline() {
    let app = spawn_app_with(small_data(), timeouts(60_000, 5_000, 200)).await;
    app.reset_stats().await;
    let before = dropped(&app, "body_timeout").await;
    // Bytes keep arriving, but the body is never complete in time.
    assert_body_timeout(&send_partial_body(&app, 500, Duration::from_millis(20)).await);
    assert!(dropped(&app, "body_timeout").await > before);
    assert_eq!(app.stats().await["total"], 0);
}

#[tokio::test]
async fn a_body_that_stalls_midway_is_refused_at_the_body_deadline() {
    let app = spawn_app_with(small_data(), timeouts(60_000, 5_000, 200)).await;
    let before = dropped(&app, "body_timeout").await;
    assert_body_timeout(&send_partial_body(&app, 10, Duration::ZERO).await);
    assert!(dropped(&app, "body_timeout").await > before);
}

#[tokio::test]
async fn connections_past_the_bound_are_closed_at_once_and_counted() {
    let app = spawn_app_with(small_data(), |config| {
        config.server.max_connections = 2;
        timeouts(60_000, 60_000, 60_000)(config);
    })
    .await;
    // Two silent clients hold every slot (their header timeout is long).
    let mut first = connect(&app).await;
    let _second = connect(&app).await;
    for _ in 0..3 {
        let mut refused = connect(&app).await;
        assert_eq!(read_until_closed(&mut refused).await, "");
    }
    // A held connection is still served.
    first.write_all(b"GET /metrics HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n").await.unwrap();
    let metrics = read_until_closed(&mut first).await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    // No other test reaches its bound.
    assert!(dropped_in(&metrics, "connection_limit") >= 3, "{metrics}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_at_the_keep_alive_timeout() {
    let app = spawn_app_with(small_data(), timeouts(60_000, 200, 60_000)).await;
    let before = dropped(&app, "keep_alive_timeout").await;
    let mut stream = connect(&app).await;
    for _ in 0..2 {
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n").await.unwrap();
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    assert_eq!(read_until_closed(&mut stream).await, "");
    assert!(dropped(&app, "keep_alive_timeout").await > before);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns_once_connections_close() {
    let app = spawn_app().await;
    let config = ledger_gateway::config::Config { sources: app.mock.sources_config(), ..Default::default() };
    let router = ledger_gateway::app(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        ledger_gateway::server::listen::serve(listener, router, &config.server, shutdown).await
    });
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.unwrap().status(), StatusCode::OK);
    stop.send(()).unwrap();
    // The client's kept-alive connection is closed by the shutdown too.
    tokio::time::timeout(PATIENCE, server).await.expect("serve returns").unwrap().unwrap();
    assert!(client.get(&url).send().await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn heads_over_the_limits_get_coded_json_errors() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let long_query = format!("{{ {} }}", "ledgerEntries(first: 1) { pageInfo { hasNextPage } } ".repeat(400));
    let response =
        app.client.get(format!("{}/graphql", app.url)).query(&[("query", &long_query)]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    assert_eq!(error_codes(&response.json().await.unwrap()), ["URI_TOO_LONG"]);

    let big = "x".repeat(20 * 1024);
    let response = app.client.get(format!("{}/health", app.url)).header("x-big", &big).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(error_codes(&response.json().await.unwrap()), ["HEADERS_TOO_LARGE"]);

    let mut many = app.client.get(format!("{}/health", app.url));
    for n in 0..150 {
        many = many.header(format!("x-h{n}"), "1");
    }
    let response = many.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_codes(&body), ["HEADERS_TOO_LARGE"]);
    assert_eq!(body["errors"][0]["message"], "a request has at most 100 headers");
    assert_eq!(app.stats().await["total"], 0);
}

#[tokio::test]
async fn bodies_with_a_content_coding_are_refused_unread() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let post = |coding: &'static str| {
        app.client
            .post(format!("{}/graphql", app.url))
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, coding)
            .body(json!({"query": SIMPLE}).to_string())
            .send()
    };
    // A plain body labelled gzip must not be read as if it were plain.
    for coding in ["gzip", "foo", "identity, gzip", "br"] {
        let response = post(coding).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{coding}");
        assert_eq!(response.headers()[ACCEPT_ENCODING], "identity");
        assert_eq!(error_codes(&response.json().await.unwrap()), ["UNSUPPORTED_CONTENT_ENCODING"], "{coding}");
    }
    assert_eq!(app.stats().await["total"], 0);
    let body: Value = post("Identity").await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["ledgerEntries"]["edges"].as_array().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn head_is_refused_without_running_the_query() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let response = app.client.head(format!("{}/graphql", app.url)).query(&[("query", SIMPLE)]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[ALLOW], "GET, POST");
    assert_eq!(app.stats().await["total"], 0, "no upstream call");
}

/// The status, `Content-Type` and JSON body of a response read until the
/// server closed the connection.
fn json_response(response: &str) -> (u16, String, Value) {
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {response:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    let content_type = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, content_type, body)
}

/// Sends `bytes` on a fresh connection and returns everything until the
/// server closes it.
async fn exchange(app: &TestApp, bytes: &[u8]) -> String {
    let mut stream = connect(app).await;
    stream.write_all(bytes).await.unwrap();
    read_until_closed(&mut stream).await
}

fn assert_refused(response: &str, status: u16, code: &str) {
    let (got, content_type, body) = json_response(response);
    assert_eq!((got, content_type.as_str()), (status, "application/json"), "{response}");
    assert_eq!(error_codes(&body), [code], "{response}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// What hyper would refuse itself with an empty body: each gets the JSON
/// shape and code, and the connection is closed.
#[tokio::test]
async fn heads_hyper_cannot_parse_get_coded_json_errors_and_a_close() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let post = |header: &str| format!("POST /graphql HTTP/1.1\r\nHost: gateway\r\n{header}\r\n\r\n");
    let long_target = format!("GET /graphql?query={} HTTP/1.1\r\nHost: gateway\r\n\r\n", "a".repeat(70_000));
    let endless_line = format!("GET /graphql?query={}", "a".repeat(300_000));
    let huge_headers = format!("GET /health HTTP/1.1\r\nHost: gateway\r\nx-big: {}\r\n\r\n", "a".repeat(300_000));
    let cases = [
        (post("Content-Length: abc"), 400, "BAD_REQUEST"),
        (post("Content-Length: 5\r\nContent-Length: 6"), 400, "BAD_REQUEST"),
        (post("Content-Length: 5\r\nTransfer-Encoding: chunked"), 400, "BAD_REQUEST"),
        (post("Transfer-Encoding: chunked\r\nContent-Length: 5"), 400, "BAD_REQUEST"),
        (post("Transfer-Encoding: gzip"), 400, "BAD_REQUEST"),
        ("GET /health HTTP/1.1\r\nno colon here\r\n\r\n".to_owned(), 400, "BAD_REQUEST"),
        ("hello there\r\n\r\n".to_owned(), 400, "BAD_REQUEST"),
        (long_target, 414, "URI_TOO_LONG"),
        (endless_line, 414, "URI_TOO_LONG"),
        (huge_headers, 431, "HEADERS_TOO_LARGE"),
    ];
    for (request, status, code) in &cases {
        let response = exchange(&app, request.as_bytes()).await;
        assert_refused(&response, *status, code);
    }
    assert_eq!(app.stats().await["total"], 0);
    assert!(dropped(&app, "bad_head").await >= cases.len() as u64);
}

#[tokio::test]
async fn a_bad_head_after_a_kept_alive_request_is_refused_the_same_way() {
    let app = spawn_app().await;
    let mut stream = connect(&app).await;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n").await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    stream.write_all(b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Length: abc\r\n\r\n").await.unwrap();
    assert_refused(&read_until_closed(&mut stream).await, 400, "BAD_REQUEST");

    // Pipelined behind a request with a chunked body: the guard follows the
    // chunks to find the next head, answers the first request, then refuses.
    let body = json!({"query": SIMPLE}).to_string();
    let chunked = format!(
        "POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let pipelined = format!("{chunked}GET /health HTTP/1.1\r\nHost: gateway\r\nContent-Length: 1, 2\r\n\r\n");
    let response = exchange(&app, pipelined.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"edges\""), "{response}");
    let refusal = &response[response.rfind("HTTP/1.1 ").unwrap()..];
    assert_refused(refusal, 400, "BAD_REQUEST");
}

#[tokio::test]
async fn valid_requests_after_chunked_and_sized_bodies_keep_the_connection() {
    let app = spawn_app().await;
    let mut stream = connect(&app).await;
    let body = json!({"query": SIMPLE}).to_string();
    let (first, second) = body.split_at(10);
    let requests = [
        format!(
            "POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\nx-t: 1\r\n\r\n",
            first.len(),
            second.len()
        ),
        format!(
            "POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        "GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n".to_owned(),
    ];
    for request in &requests {
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}

//! Forwarded credentials at every connector: a present header that cannot
//! be a credential is `UNAUTHENTICATED` for its source and costs no upstream
//! call, so the configured service account never answers in the caller's
//! place; only an absent header falls back, and only to a configured value.

use ledger_gateway::config::Config;
use ledger_gateway::sources::business_central::SIGN_IN_FIELDS;
use reqwest::header::HeaderValue;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{error_codes, small_data, spawn_app, spawn_app_with, TestApp};

const PAGE: &str = "query($filter: LedgerEntryFilter) {
  ledgerEntries(first: 5, filter: $filter) { edges { node { id source } } }
}";

/// Each connector's demo source, named like its mock upstream, and the
/// header the demo forwards for it.
const FORWARDED: [(&str, &str, &str); 4] = [
    ("trackstar", "access_token", "x-trackstar-access-token"),
    ("business-central", "token", "x-business-central-token"),
    ("bigledger", "api_key", "x-bigledger-api-key"),
    ("pennylane", "token", "x-pennylane-token"),
];

/// A page of `source` sent with `headers`, and the calls its upstream got.
async fn page_with(app: &TestApp, source: &str, headers: &[(&str, HeaderValue)]) -> (Value, u64) {
    let before = app.calls_to(source).await;
    let variables = json!({"filter": {"sources": [source]}});
    let mut request =
        app.client.post(format!("{}/graphql", app.url)).json(&json!({"query": PAGE, "variables": variables}));
    for (name, value) in headers {
        request = request.header(*name, value.clone());
    }
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    (body, app.calls_to(source).await - before)
}

fn assert_unauthenticated(body: &Value, source: &str, case: &str) {
    assert_eq!(error_codes(body), ["UNAUTHENTICATED"], "{source} {case}: {body}");
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["source"], source, "{source} {case}: {body}");
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().cloned().unwrap_or_default();
    let own = edges.iter().filter(|e| e["node"]["source"] == source).count();
    assert_eq!(own, 0, "{source} {case}: no entries, least of all the service account's: {body}");
    assert!(!error["message"].as_str().unwrap_or_default().contains("tenant"), "echoes the value: {body}");
}

fn value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap()
}

#[tokio::test]
async fn a_present_but_unusable_forwarded_credential_is_unauthenticated_at_every_source() {
    let app = spawn_app().await;
    for (source, _, header) in FORWARDED {
        let cases = [
            ("non-ASCII", vec![(header, value("tenant-alpha-tokén".as_bytes()))]),
            ("empty", vec![(header, value(b""))]),
            ("blank", vec![(header, value(b"   "))]),
            ("control character", vec![(header, value(b"tenant\talpha"))]),
            ("repeated", vec![(header, value(b"tenant-alpha")), (header, value(b"tenant-beta"))]),
        ];
        for (case, headers) in cases {
            let (body, calls) = page_with(&app, source, &headers).await;
            assert_unauthenticated(&body, source, case);
            assert_eq!(calls, 0, "{source} {case}: nothing is sent, with no credential");
        }
        // The same header well formed is the caller's own credential.
        let (body, calls) = page_with(&app, source, &[(header, value(b"tenant-alpha"))]).await;
        assert!(error_codes(&body).iter().all(|code| code != "UNAUTHENTICATED"), "{source}: {body}");
        assert!(calls > 0, "{source}");
    }
}

#[tokio::test]
async fn an_unusable_credential_for_one_source_leaves_the_others_served() {
    let app = spawn_app().await;
    let variables = json!({"filter": {}});
    let request = app
        .client
        .post(format!("{}/graphql", app.url))
        .header("x-bigledger-api-key", value("tenant-alpha-tokén".as_bytes()))
        .json(&json!({"query": PAGE, "variables": variables}));
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    assert_unauthenticated(&body, "bigledger", "non-ASCII");
    assert_eq!(app.calls_to("bigledger").await, 0);
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().map_or(0, Vec::len);
    assert!(edges > 0, "{body}");
}

#[tokio::test]
async fn an_absent_forwarded_header_falls_back_to_the_configured_credential() {
    let app = spawn_app().await;
    for (source, _, _) in FORWARDED {
        let (body, calls) = page_with(&app, source, &[]).await;
        assert!(body["errors"].is_null(), "{source}: {body}");
        assert!(!body["data"]["ledgerEntries"]["edges"].as_array().unwrap().is_empty(), "{source}: {body}");
        assert!(calls > 0, "{source}");
    }
}

#[tokio::test]
async fn an_absent_forwarded_header_with_nothing_configured_is_unauthenticated() {
    let app = spawn_app_with(small_data(), |config: &mut Config| {
        for (source, field, _) in FORWARDED {
            let source = config.sources.get_mut(source).unwrap();
            source.credentials.remove(field);
            // Business Central's service account signs in for its token instead.
            source.credentials.retain(|key, _| !SIGN_IN_FIELDS.contains(&key.as_str()));
            source.authority = None;
        }
    })
    .await;
    for (source, _, header) in FORWARDED {
        let (body, calls) = page_with(&app, source, &[]).await;
        assert_unauthenticated(&body, source, "absent");
        assert_eq!(calls, 0, "{source}");
        // Forwarded, the caller's own credential is all it takes.
        let (body, calls) = page_with(&app, source, &[(header, value(b"tenant-alpha"))]).await;
        assert!(error_codes(&body).iter().all(|code| code != "UNAUTHENTICATED"), "{source}: {body}");
        assert!(calls > 0, "{source}");
    }
}

#[tokio::test]
async fn control_characters_in_a_header_are_refused_before_any_source_is_asked() {
    // No HTTP client sends them; the server's parser refuses the request.
    let app = spawn_app().await;
    let addr = app.url.trim_start_matches("http://");
    let body = r#"{"query":"{ ledgerEntries(first: 1) { edges { cursor } } }"}"#;
    for control in [b'\x01', b'\x7f', b'\x1b'] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut request = format!(
            "POST /graphql HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nx-trackstar-access-token: tenant",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&[control]);
        request.extend_from_slice(format!("alpha\r\n\r\n{body}").as_bytes());
        stream.write_all(&request).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{control:#x}: {answer}");
    }
    assert_eq!(app.stats().await["total"], 0);
}

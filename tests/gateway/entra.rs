//! Business Central's sign-in with client credentials at the mock's Entra
//! ID: one token for many requests, refreshed before it expires (on a clock
//! the test moves) and once for concurrent requests, a token BC refuses
//! replaced once, refused sign-ins and slow token endpoints as errors that
//! name the source and leak nothing.

use chrono::Duration;
use futures::future::join_all;
use ledger_gateway::clock::ManualClock;
use ledger_gateway::config::Config;
use ledger_gateway::mock::business_central::{Fault, TENANT};
use ledger_gateway::mock::entra::{CLIENT_ID, CLIENT_SECRET, EXPIRES_IN, SCOPE};
use ledger_gateway::mock::MockOptions;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::cli::{config_file, gateway, run_to_exit, text};
use crate::helpers::{clock, error_codes, small_data, spawn_app, spawn_app_with, TestApp};

const SOURCE: &str = "business-central";
const PAGE: &str = "query($filter: LedgerEntryFilter) {
  ledgerEntries(first: 5, filter: $filter) { edges { node { id source } } }
}";
/// Seconds the gateway uses a token for: until five minutes before it expires.
const USED_FOR: i64 = EXPIRES_IN - 300;

async fn read(app: &TestApp, sources: &[&str]) -> Value {
    app.query(PAGE, json!({"filter": {"sources": sources}})).await
}

/// A page of Business Central that must succeed.
async fn read_bc(app: &TestApp) -> Value {
    let body = read(app, &[SOURCE]).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["ledgerEntries"]["edges"].as_array().unwrap().len(), 5, "{body}");
    body
}

async fn token_calls(app: &TestApp) -> u64 {
    app.calls_to("entra").await
}

/// Business Central calls of one page read, with a token at hand.
async fn calls_per_read(app: &TestApp) -> u64 {
    read_bc(app).await;
    app.reset_stats().await;
    read_bc(app).await;
    let calls = app.calls_to(SOURCE).await;
    app.reset_stats().await;
    calls
}

/// The gateway and the mock on one clock the test moves.
async fn spawn_on_manual_clock() -> (TestApp, &'static ManualClock) {
    let manual = ManualClock::starting_at(clock().now());
    let app = spawn_app_with(MockOptions { clock: manual.clock(), ..small_data() }, |_| {}).await;
    (app, manual)
}

fn assert_refused(body: &Value, code: &str) {
    assert_eq!(error_codes(body), [code], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], SOURCE, "{body}");
    let text = body.to_string();
    for leak in
        [CLIENT_SECRET, CLIENT_ID, TENANT, "AADSTS", "invalid_client", "Trace ID", "oauth2", "entra-", "127.0.0.1"]
    {
        assert!(!text.contains(leak), "response leaks {leak}: {text}");
    }
}

#[tokio::test]
async fn one_token_serves_many_requests_and_its_calls_show_in_the_stats() {
    let app = spawn_app().await;
    for _ in 0..5 {
        read_bc(&app).await;
    }
    assert_eq!(token_calls(&app).await, 1);
    assert_eq!(app.stats().await["by_route"]["POST /entra/{tenant}/oauth2/v2.0/token"], 1);
    assert!(app.calls_to(SOURCE).await >= 5);
}

/// The gateway with Business Central's source loaded from a configuration
/// file whose `client_secret_file` holds `secret` (a mounted secret).
async fn spawn_with_secret_file(name: &str, secret: &str) -> TestApp {
    let secret_file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.secret"));
    std::fs::write(&secret_file, secret).unwrap();
    spawn_app_with(small_data(), |config| {
        let mock = &config.sources[SOURCE];
        let (base_url, authority) = (mock.base_url.as_str(), mock.authority.as_ref().unwrap().as_str());
        let toml = format!(
            "[sources.{SOURCE}]\nkind = \"business-central\"\nbase_url = {base_url:?}\nauthority = {authority:?}\n\
             credentials = {{ tenant_id = {TENANT:?}, client_id = {CLIENT_ID:?}, client_secret_file = {secret_file:?} }}\n"
        );
        let loaded = Config::load(Some(config_file(name, &toml).as_ref())).unwrap();
        config.sources.insert(SOURCE.into(), loaded.sources[SOURCE].clone());
    })
    .await
}

#[tokio::test]
async fn a_client_secret_read_from_a_file_signs_in() {
    let app = spawn_with_secret_file("entra-secret-file", &format!("{CLIENT_SECRET}\n")).await;
    read_bc(&app).await;
    assert_eq!(token_calls(&app).await, 1);

    let app = spawn_with_secret_file("entra-wrong-secret-file", "s3cret-that-is-wrong\n").await;
    let body = read(&app, &[SOURCE]).await;
    assert_refused(&body, "UPSTREAM_UNAUTHORIZED");
    assert!(!body.to_string().contains("s3cret-that-is-wrong"), "{body}");
}

#[test]
fn check_config_reads_secret_files_and_shows_neither_their_contents_nor_their_paths() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (secret, token) = (dir.join("check-config-client-secret"), dir.join("check-config-admin-token"));
    std::fs::write(&secret, "hunter2-from-a-file\r\n").unwrap();
    std::fs::write(&token, "an-admin-token-from-a-file\n").unwrap();
    let toml = format!(
        "[server]\nadmin_token_file = {token:?}\n[sources.bc]\nkind = \"business-central\"\n\
         base_url = \"https://api.businesscentral.dynamics.com/v2.0/t/production/api/v2.0/companies(1)/\"\n\
         credentials = {{ tenant_id = \"t\", client_id = \"app\", client_secret_file = {secret:?} }}\n"
    );
    let file = config_file("check-config-secret-files", &toml);
    let output = run_to_exit(gateway(&["check-config", &file], &[]));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let shown = text(&output.stdout);
    assert!(
        shown.contains("client_secret = \"[redacted]\"") && shown.contains("admin_token = \"[redacted]\""),
        "{shown}"
    );
    assert!(!shown.contains("from-a-file") && !shown.contains("_file"), "{shown}");

    let missing = dir.join("check-config-no-such-secret");
    let env = [("LEDGER_GATEWAY__SOURCES__BC__CREDENTIALS__CLIENT_SECRET_FILE", missing.to_str().unwrap())];
    let output = run_to_exit(gateway(&["check-config", &file], &env));
    assert_eq!(output.status.code(), Some(1));
    let expected = format!("sources.bc: credentials.client_secret_file: cannot read {}", missing.display());
    assert!(text(&output.stderr).contains(&expected), "{}", text(&output.stderr));
}

#[tokio::test]
async fn a_token_is_replaced_shortly_before_it_expires_and_never_sent_expired() {
    let (app, manual) = spawn_on_manual_clock().await;
    let per_read = calls_per_read(&app).await;
    manual.advance(Duration::seconds(USED_FOR - 1));
    read_bc(&app).await;
    assert_eq!(token_calls(&app).await, 0, "still fresh");
    manual.advance(Duration::seconds(1));
    read_bc(&app).await;
    assert_eq!(token_calls(&app).await, 1, "five minutes before it expires it is replaced");
    // Long past the token's expiry: the gateway signs in again before BC
    // could refuse it, so no read costs a refused call.
    app.reset_stats().await;
    manual.advance(Duration::seconds(3 * EXPIRES_IN));
    read_bc(&app).await;
    assert_eq!((token_calls(&app).await, app.calls_to(SOURCE).await), (1, per_read));
}

#[tokio::test]
async fn concurrent_requests_wait_for_one_sign_in() {
    let (app, manual) = spawn_on_manual_clock().await;
    // Slow sign-ins, so that every request arrives while one is under way.
    app.inject_faults(json!([{"upstream": "entra", "latency_ms": 300}])).await;
    let reads = join_all((0..12).map(|_| read(&app, &[SOURCE]))).await;
    assert!(reads.iter().all(|body| body["errors"].is_null()), "{reads:?}");
    assert_eq!(token_calls(&app).await, 1);
    manual.advance(Duration::seconds(USED_FOR));
    let reads = join_all((0..12).map(|_| read(&app, &[SOURCE]))).await;
    assert!(reads.iter().all(|body| body["errors"].is_null()), "{reads:?}");
    assert_eq!(token_calls(&app).await, 2, "one refresh for all of them");
}

#[tokio::test]
async fn a_token_business_central_refuses_is_replaced_once_and_the_call_made_once_more() {
    let app = spawn_app().await;
    let per_read = calls_per_read(&app).await;
    let unauthorized = Fault { status: StatusCode::UNAUTHORIZED, retry_after_secs: None };
    app.mock.state.business_central.fail_next(unauthorized.clone(), 1);
    read_bc(&app).await;
    assert_eq!((token_calls(&app).await, app.calls_to(SOURCE).await), (1, per_read + 1));

    // Refused again with the new token: the caller hears of it, no loop.
    app.reset_stats().await;
    app.mock.state.business_central.fail_next(unauthorized, 2);
    let body = read(&app, &[SOURCE]).await;
    assert_refused(&body, "UPSTREAM_UNAUTHORIZED");
    assert_eq!((token_calls(&app).await, app.calls_to(SOURCE).await), (1, 2));
}

#[tokio::test]
async fn a_revoked_app_is_upstream_unauthorized_for_its_source_alone() {
    let app = spawn_app().await;
    read_bc(&app).await;
    app.mock.state.entra.revoke(CLIENT_ID);
    app.reset_stats().await;
    let body = read(&app, &[SOURCE, "trackstar"]).await;
    assert_refused(&body, "UPSTREAM_UNAUTHORIZED");
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().unwrap();
    assert!(edges.len() == 5 && edges.iter().all(|e| e["node"]["source"] == "trackstar"), "{body}");
    // BC refused the revoked app's token; the one sign-in it led to was
    // refused and not repeated.
    assert_eq!((app.calls_to(SOURCE).await, token_calls(&app).await), (1, 1));
    let ready: Value = app.client.get(format!("{}/ready", app.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["sources"][SOURCE]["code"], "UPSTREAM_UNAUTHORIZED", "{ready}");
}

#[tokio::test]
async fn a_wrong_secret_is_upstream_unauthorized_and_never_shown() {
    let app = spawn_app_with(small_data(), |config| {
        let credentials = &mut config.sources.get_mut(SOURCE).unwrap().credentials;
        credentials.insert("client_secret".into(), SecretString::from("s3cret-that-is-wrong"));
    })
    .await;
    let body = read(&app, &[SOURCE]).await;
    assert_refused(&body, "UPSTREAM_UNAUTHORIZED");
    assert!(!body.to_string().contains("s3cret-that-is-wrong"), "{body}");
    assert_eq!((token_calls(&app).await, app.calls_to(SOURCE).await), (1, 0));
}

#[tokio::test]
async fn token_endpoint_failures_map_to_codes_naming_the_source() {
    let app = spawn_app().await;
    let aadsts =
        r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant not found.","error_codes":[90002]}"#;
    let cases = [
        (json!({"upstream": "entra", "status": 400, "body": aadsts}), "UPSTREAM_UNAUTHORIZED"),
        (json!({"upstream": "entra", "status": 503}), "UPSTREAM_UNAVAILABLE"),
        (
            json!({"upstream": "entra", "body": r#"{"token_type":"Bearer","expires_in":0,"access_token":"x"}"#}),
            "UPSTREAM_BAD_RESPONSE",
        ),
        (
            json!({"upstream": "entra", "body": r#"{"token_type":"mac","expires_in":3599,"access_token":"x"}"#}),
            "UPSTREAM_BAD_RESPONSE",
        ),
        (json!({"upstream": "entra", "body": "html"}), "UPSTREAM_BAD_RESPONSE"),
    ];
    for (rule, code) in cases {
        // A reset clears fault rules too: reset first.
        app.reset_stats().await;
        app.inject_faults(json!([rule])).await;
        let body = read(&app, &[SOURCE]).await;
        assert_refused(&body, code);
        // A token request is a POST: never repeated within a request.
        assert_eq!((token_calls(&app).await, app.calls_to(SOURCE).await), (1, 0), "{rule}");
    }
    app.clear_faults().await;
    read_bc(&app).await;
    // Throttled sign-ins pause the source's sign-in for the wait asked.
    let app = spawn_app().await;
    app.inject_faults(json!([{"upstream": "entra", "status": 429, "headers": {"retry-after": "30"}}])).await;
    let body = read(&app, &[SOURCE]).await;
    assert_refused(&body, "UPSTREAM_RATE_LIMITED");
    assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], 30, "{body}");
}

#[tokio::test]
async fn a_slow_token_endpoint_ends_at_the_request_deadline_naming_the_source() {
    let app = spawn_app_with(small_data(), |config| {
        config.server.request_timeout_ms = 1500;
        for source in config.sources.values_mut() {
            source.http.request_timeout_ms = 1400;
        }
    })
    .await;
    app.inject_faults(json!([{"upstream": "entra", "latency_ms": 30000}])).await;
    // The second waits on the first's sign-in, under its own deadline.
    let bodies = join_all((0..2).map(|_| read(&app, &[SOURCE]))).await;
    for body in bodies {
        assert_refused(&body, "UPSTREAM_TIMEOUT");
    }
    assert_eq!(app.calls_to(SOURCE).await, 0);
}

#[tokio::test]
async fn a_callers_own_authorization_is_forwarded_instead_of_signing_in() {
    let app = spawn_app_with(small_data(), |config| {
        config.sources.get_mut(SOURCE).unwrap().forward.insert("token".into(), "authorization".into());
    })
    .await;
    let variables = json!({"filter": {"sources": [SOURCE]}});
    let own = app.query_with_headers(PAGE, variables.clone(), &[("authorization", "Bearer bc-tenant-alice")]).await;
    assert!(own["errors"].is_null(), "{own}");
    assert_eq!(token_calls(&app).await, 0);
    let alice = app.mock.state.business_central.tenant("bc-tenant-alice");
    let first = own["data"]["ledgerEntries"]["edges"][0]["node"]["id"].as_str().unwrap().to_owned();
    assert!(alice.entries.iter().any(|e| first == format!("{SOURCE}:{}", e.id)), "{own}");
    // Refused, the caller's own token is the caller's problem: no sign-in.
    let refused = app.query_with_headers(PAGE, variables, &[("authorization", "Bearer not-a-bc-token")]).await;
    assert_eq!(error_codes(&refused), ["UPSTREAM_UNAUTHORIZED"], "{refused}");
    assert_eq!(token_calls(&app).await, 0);
    // Without the header, the service account signs in.
    assert_ne!(read_bc(&app).await, own);
    assert_eq!(token_calls(&app).await, 1);
}

#[tokio::test]
async fn the_mock_token_endpoint_checks_the_form_like_entra() {
    let app = spawn_app().await;
    let url = |tenant: &str| format!("http://{}/entra/{tenant}/oauth2/v2.0/token", app.mock.addr);
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", SCOPE),
    ];
    let with = |field: &str, value: &'static str| {
        good.iter().map(|(k, v)| (*k, if *k == field { value } else { *v })).collect::<Vec<_>>()
    };
    let post = |tenant: &str, form: Vec<(&'static str, &'static str)>| {
        let request = app.client.post(url(tenant)).form(&form);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, answer) = post(TENANT, good.to_vec()).await;
    assert_eq!((status, &answer["token_type"], &answer["expires_in"]), (200, &json!("Bearer"), &json!(EXPIRES_IN)));
    assert!(answer["access_token"].as_str().unwrap().len() > 20);
    let cases = [
        (TENANT, with("client_secret", "nope"), 401, "invalid_client", 7_000_215),
        (TENANT, with("client_id", "00000000-0000-0000-0000-000000000000"), 400, "unauthorized_client", 700_016),
        (TENANT, with("grant_type", "password"), 400, "unsupported_grant_type", 70_003),
        (TENANT, with("scope", "https://graph.microsoft.com/.default"), 400, "invalid_scope", 70_011),
        (TENANT, with("scope", ""), 400, "invalid_request", 900_144),
        ("contoso.onmicrosoft.com", good.to_vec(), 400, "invalid_request", 90_002),
    ];
    for (tenant, form, status, error, code) in cases {
        let (got, answer) = post(tenant, form.clone()).await;
        assert_eq!(
            (got, &answer["error"], &answer["error_codes"]),
            (status, &json!(error), &json!([code])),
            "{form:?}"
        );
        assert!(answer["error_description"].as_str().unwrap().starts_with(&format!("AADSTS{code}: ")), "{answer}");
    }
    // JSON is not a form.
    let response =
        app.client.post(url(TENANT)).json(&json!({"grant_type": "client_credentials"})).send().await.unwrap();
    assert_eq!(response.status(), 400);
}

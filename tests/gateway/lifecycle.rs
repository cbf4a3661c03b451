//! The binary's lifecycle, in a child process over a mock in this process:
//! graceful shutdown on SIGTERM within `server.shutdown_grace_ms`, reload on
//! SIGHUP and `POST /admin/reload`, and what a reload refuses. A request is
//! held in flight by a fault rule that delays its first upstream call; the
//! tests wait until the mock holds it, so no step depends on timing. The
//! runtime has several threads: the mock must answer while a test thread
//! blocks reading the child's log.

use std::net::SocketAddr;

use ledger_gateway::mock::{trackstar, Mock, MockOptions};
use serde_json::{json, Value};

use crate::cli::{config_file, gateway, Running, WAIT};

/// A configuration serving the mock's Trackstar as the source `wms`, with
/// `api_key` (the mock takes any access token, as a tenant of its own).
/// Ledger pages are not cached: a held request must reach the mock even
/// when an earlier page's window already covered its entries.
pub fn config_for(mock: &Mock, api_key: &str, extra: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
{extra}
[sources.wms]
kind = "trackstar"
base_url = "{base}"
credentials = {{ api_key = "{api_key}", access_token = "{token}" }}
http = {{ rate_limit = {{ requests = 1000, per_ms = 1000 }} }}

[cache]
ledger_ttl_secs = 0
"#,
        base = mock.url("trackstar"),
        token = trackstar::ACCESS_TOKEN,
    )
}

pub async fn start_mock() -> Mock {
    Mock::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), MockOptions { entries: 200, ..MockOptions::default() })
        .await
        .unwrap()
}

/// Holds the next Trackstar ledger call for `ms` before answering it.
fn hold_ledger_call(mock: &Mock, ms: u64) {
    let rule = json!({"upstream": "trackstar", "route": "/wms/inventory/ledger", "latency_ms": ms, "times": 1});
    mock.state.faults.set(vec![serde_json::from_value(rule).unwrap()]).unwrap();
}

/// Waits until the held call reached the mock.
async fn until_held(mock: &Mock) {
    let started = std::time::Instant::now();
    while mock.state.faults.status()[0].fired == 0 {
        assert!(started.elapsed() < WAIT, "the request never reached the mock");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

async fn query(client: &reqwest::Client, addr: &str, query: &str) -> Result<Value, reqwest::Error> {
    client.post(format!("http://{addr}/graphql")).json(&json!({ "query": query })).send().await?.json().await
}

fn in_flight(addr: &str, text: &'static str) -> tokio::task::JoinHandle<Result<Value, reqwest::Error>> {
    let addr = addr.to_owned();
    tokio::spawn(async move { query(&client(), &addr, text).await })
}

const ENTRIES_WITH_ITEMS: &str = "{ ledgerEntries(first: 3) { nodes { id item { name } } } }";
const ONE_ENTRY: &str = "{ ledgerEntries(first: 1) { nodes { id } } }";

#[tokio::test(flavor = "multi_thread")]
async fn a_request_in_flight_at_sigterm_completes_and_new_connections_are_refused() {
    let mock = start_mock().await;
    let file = config_for(&mock, trackstar::API_KEY, "shutdown_grace_ms = 60000");
    let mut gateway = Running::start(gateway(&["serve", "--config", &config_file("sigterm_drains", &file)], &[]));
    let addr = gateway.listening_addr();
    hold_ledger_call(&mock, 2000);
    let request = in_flight(&addr, ENTRIES_WITH_ITEMS);
    until_held(&mock).await;

    gateway.signal("TERM");
    gateway.line_with("stopped accepting connections");
    let refused = tokio::net::TcpStream::connect(&addr).await;
    assert!(refused.is_err(), "a new connection after SIGTERM is refused");

    let body = request.await.unwrap().expect("the request in flight is answered");
    assert!(body["errors"].is_null(), "{body}");
    let nodes = body["data"]["ledgerEntries"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{body}");
    assert!(nodes.iter().all(|node| node["item"]["name"].is_string()), "{body}");
    let (code, log) = gateway.wait_exit();
    assert_eq!(code, Some(0), "{log:#?}");
    assert!(!log.iter().any(|line| line.contains("shutdown grace over")), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_what_is_still_open_when_the_grace_is_over() {
    let mock = start_mock().await;
    let file = config_for(&mock, trackstar::API_KEY, "shutdown_grace_ms = 100");
    let mut gateway = Running::start(gateway(&["serve", "--config", &config_file("sigterm_grace", &file)], &[]));
    let addr = gateway.listening_addr();
    // Far longer than the grace, and than the test waits for the exit.
    hold_ledger_call(&mock, 600_000);
    let request = in_flight(&addr, ONE_ENTRY);
    until_held(&mock).await;

    gateway.signal("TERM");
    let (code, log) = gateway.wait_exit();
    assert_eq!(code, Some(0), "{log:#?}");
    assert!(log.iter().any(|line| line.contains("shutdown grace over") && line.contains("open=1")), "{log:#?}");
    assert!(request.await.unwrap().is_err(), "the connection was closed without an answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_a_valid_configuration_and_requests_in_flight_finish_on_theirs() {
    let mock = start_mock().await;
    let path = config_file("sighup_reload", &config_for(&mock, trackstar::API_KEY, ""));
    let mut gateway = Running::start(gateway(&["serve", "--config", &path], &[]));
    let addr = gateway.listening_addr();
    let client = client();
    let served = |body: &Value| body["errors"].is_null() && body["data"]["ledgerEntries"]["nodes"][0]["id"].is_string();

    // Invalid: refused, logged, the running configuration stays.
    std::fs::write(&path, config_for(&mock, trackstar::API_KEY, "[limits]\nmax_batch = 0")).unwrap();
    gateway.signal("HUP");
    let refused = gateway.line_with("configuration reload refused");
    assert!(refused.contains("limits.max_batch: must be at least 1"), "{refused}");
    let body = query(&client, &addr, ONE_ENTRY).await.unwrap();
    assert!(served(&body), "{body}");

    // A setting only start-up reads: refused, naming it.
    let moved = config_for(&mock, trackstar::API_KEY, "").replace("127.0.0.1:0", "127.0.0.1:1");
    std::fs::write(&path, moved).unwrap();
    gateway.signal("HUP");
    let refused = gateway.line_with("configuration reload refused");
    assert!(refused.contains("server.listen: cannot change on reload, restart to apply"), "{refused}");

    // Valid: a request in flight keeps the credentials it started with for
    // its item lookups after the reload; new requests get the new ones.
    hold_ledger_call(&mock, 2000);
    let request = in_flight(&addr, ENTRIES_WITH_ITEMS);
    until_held(&mock).await;
    std::fs::write(&path, config_for(&mock, "revoked-key", "")).unwrap();
    gateway.signal("HUP");
    gateway.line_with("configuration reloaded");
    let body = query(&client, &addr, ONE_ENTRY).await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UPSTREAM_UNAUTHORIZED", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], "wms", "{body}");
    let body = request.await.unwrap().unwrap();
    assert!(body["errors"].is_null(), "{body}");
    let nodes = body["data"]["ledgerEntries"]["nodes"].as_array().unwrap();
    assert!(nodes.len() == 3 && nodes.iter().all(|node| node["item"]["name"].is_string()), "{body}");

    // Without an admin token the reload route does not exist.
    let response = client.post(format!("http://{addr}/admin/reload")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    gateway.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_reload_needs_the_admin_token() {
    const TOKEN: &str = "admin-token-5b8e1f0c";
    let mock = start_mock().await;
    let path = config_file("admin_reload", &config_for(&mock, trackstar::API_KEY, ""));
    let env = [("LEDGER_GATEWAY__SERVER__ADMIN_TOKEN", TOKEN)];
    let mut gateway = Running::start(gateway(&["serve", "--config", &path], &env));
    let addr = gateway.listening_addr();
    let client = client();
    let reload = |token: Option<&str>| {
        let request = client.post(format!("http://{addr}/admin/reload"));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };

    for token in [None, Some("admin-token-5b8e1f0d"), Some("")] {
        let response = reload(token).await.unwrap();
        assert_eq!(response.status(), 401, "{token:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body}");
    }
    let response = client.get(format!("http://{addr}/admin/reload")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!((response.status().as_u16(), &response.headers()["allow"]), (405, &"POST".parse().unwrap()));

    let response = reload(Some(TOKEN)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"reloaded": true}));
    gateway.line_with("configuration reloaded");

    let cases = [
        ("[limits]\nmax_batch = 0", "CONFIG_INVALID", "limits.max_batch: must be at least 1"),
        ("max_connections = 7", "CONFIG_RESTART_REQUIRED", "server.max_connections: cannot change on reload"),
    ];
    for (extra, code, message) in cases {
        std::fs::write(&path, config_for(&mock, trackstar::API_KEY, extra)).unwrap();
        let response = reload(Some(TOKEN)).await.unwrap();
        assert_eq!(response.status(), 422, "{extra}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().starts_with(message), "{body}");
        let body = query(&client, &addr, ONE_ENTRY).await.unwrap();
        assert!(body["errors"].is_null(), "the running configuration still serves: {body}");
    }
    let log = gateway.stop();
    assert!(log.iter().all(|line| !line.contains(TOKEN)), "{log:#?}");
}

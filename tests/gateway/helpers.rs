//! `spawn_app()`: the real gateway on a loopback port, pointed at the mock
//! upstreams over real HTTP, plus helpers to query it and read the mock's
//! request counts.

use std::net::SocketAddr;

use chrono::{DateTime, TimeZone, Utc};
use ledger_gateway::clock::Clock;
use ledger_gateway::config::Config;
use ledger_gateway::mock::{Mock, MockOptions};
use serde_json::{json, Value};

/// The instant every test runs at: the mock and the gateway both read this
/// clock, so nothing a test sees depends on the day, the hour or the time
/// zone it runs in. Mid-morning, as a demo would be: the newest data lies
/// some hours below "now", where an open date range starts its walk.
pub fn clock() -> Clock {
    Clock::Fixed(Utc.with_ymd_and_hms(2026, 6, 30, 10, 30, 0).unwrap())
}

/// The newest date of test data: midnight of the clock's day, as the demo
/// anchors its data on today.
pub fn anchor() -> DateTime<Utc> {
    clock().today()
}

pub fn small_data() -> MockOptions {
    MockOptions { entries: 400, seed: 7, ..MockOptions::at(clock()) }
}

#[derive(Debug)]
pub struct TestApp {
    pub url: String,
    pub mock: Mock,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The gateway over a small deterministic data set.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(small_data(), |_| {}).await
}

/// The gateway over `options`, with `tweak` applied to its config. Most
/// tests count every upstream request a query makes, so the short-lived
/// ledger-page cache and the response cache are off here; tests about
/// caching use [`spawn_caching_app_with`].
pub async fn spawn_app_with(options: MockOptions, tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn(options, |config| {
        config.cache.ledger_ttl_secs = 0;
        config.cache.response_max_bytes = 0;
        tweak(config);
    })
    .await
}

/// [`spawn_app`] with the cache exactly as configured by default, and only
/// the Trackstar sources: the loader, cache and isolation tests count
/// Trackstar's calls and compare against its tenants' data.
pub async fn spawn_caching_app() -> TestApp {
    spawn_caching_app_with(small_data(), |_| {}).await
}

/// [`spawn_caching_app`] over `options`, with `tweak` applied to its config;
/// sources added by `tweak` whose names start with `trackstar` stay.
pub async fn spawn_caching_app_with(options: MockOptions, tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn(options, |config| {
        tweak(config);
        config.sources.retain(|name, _| name.starts_with("trackstar"));
    })
    .await
}

async fn spawn(options: MockOptions, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mock = Mock::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), options).await.expect("mock starts");
    // The gateway reads the mock's clock: windows walked down from "now"
    // meet the data where the mock put it, and reset times mean what the
    // mock meant.
    let mut config = Config { sources: mock.sources_config(), clock: mock.state.options.clock, ..Config::default() };
    tweak(&mut config);
    let app = ledger_gateway::app(&config).expect("valid config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        ledger_gateway::server::listen::serve(listener, app, &config.server, std::future::pending())
            .await
            .expect("serve");
    });
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().expect("client");
    TestApp { url, mock, client, server }
}

/// A named operation from `tests/queries/`.
pub fn operation(name: &str) -> String {
    let path = format!("{}/tests/queries/{name}.graphql", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

impl TestApp {
    /// POSTs a GraphQL request and returns the JSON body.
    pub async fn query(&self, query: &str, variables: Value) -> Value {
        self.query_with_headers(query, variables, &[]).await
    }

    pub async fn query_with_headers(&self, query: &str, variables: Value, headers: &[(&str, &str)]) -> Value {
        let mut request =
            self.client.post(format!("{}/graphql", self.url)).json(&json!({"query": query, "variables": variables}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("gateway answers");
        response.json().await.expect("json body")
    }

    /// The mock's request counts since the last reset.
    pub async fn stats(&self) -> Value {
        self.client.get(format!("http://{}/__mock/stats", self.mock.addr)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn reset_stats(&self) {
        self.client.post(format!("http://{}/__mock/reset", self.mock.addr)).send().await.unwrap();
    }

    /// Upstream calls to one upstream since the last reset.
    pub async fn calls_to(&self, upstream: &str) -> u64 {
        self.stats().await["by_upstream"][upstream].as_u64().unwrap_or(0)
    }

    /// Follows `ledgerEntries` pages to the end; returns every node and the
    /// number of pages.
    pub async fn walk(&self, filter: Value, first: usize) -> (Vec<Value>, usize) {
        let query = operation("LedgerPage");
        let mut after = Value::Null;
        let mut nodes = Vec::new();
        for page in 1.. {
            let body = self.query(&query, json!({"filter": filter, "first": first, "after": after})).await;
            assert!(body["errors"].is_null(), "page {page}: {body}");
            let connection = &body["data"]["ledgerEntries"];
            let edges = connection["edges"].as_array().expect("edges");
            assert!(edges.len() <= first, "page {page} has {} edges", edges.len());
            nodes.extend(edges.iter().map(|e| e["node"].clone()));
            if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                return (nodes, page);
            }
            after = connection["pageInfo"]["endCursor"].clone();
            assert!(page < 10_000, "walk does not end");
        }
        unreachable!()
    }
}

/// The `extensions.code` of each error in a response.
pub fn error_codes(body: &Value) -> Vec<String> {
    body["errors"].as_array().map_or_else(Vec::new, |errors| {
        errors.iter().map(|e| e["extensions"]["code"].as_str().unwrap_or("<none>").to_owned()).collect()
    })
}

impl TestApp {
    /// Requests the mock received since the last reset: (path, query pairs).
    pub async fn requests(&self) -> Vec<(String, Vec<(String, String)>)> {
        let body: Value = self
            .client
            .get(format!("http://{}/__mock/requests", self.mock.addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let query = r["query"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_str().unwrap().to_owned()))
                    .collect();
                (r["path"].as_str().unwrap().to_owned(), query)
            })
            .collect()
    }
}

impl TestApp {
    /// Installs fault rules in the mock (`POST /__mock/faults`), replacing
    /// earlier ones; returns the mock's answer.
    pub async fn inject_faults(&self, rules: Value) -> Value {
        let response =
            self.client.post(format!("http://{}/__mock/faults", self.mock.addr)).json(&rules).send().await.unwrap();
        assert!(response.status().is_success(), "fault rules refused: {}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// The installed rules with how often each matched and fired.
    pub async fn faults(&self) -> Value {
        self.client.get(format!("http://{}/__mock/faults", self.mock.addr)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn clear_faults(&self) {
        self.client.delete(format!("http://{}/__mock/faults", self.mock.addr)).send().await.unwrap();
    }
}

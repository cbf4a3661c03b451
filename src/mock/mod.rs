//! The mock upstreams as a library: each upstream's wire format (auth,
//! pagination, filters, error bodies) over deterministic data, mounted under
//! `/<upstream>/` on one loopback server. `GET /__mock/stats` counts requests
//! per upstream and route, `GET /__mock/requests` lists the last 2000 requests
//! received (method, path, decoded query, headers with credentials
//! redacted), `/__mock/faults` injects faults into any
//! dialect (see `faults`), `POST /__mock/reset` clears all three.

// Handlers bail out early with the upstream's own error response; boxing it
// would only add noise at every `?`.
#![allow(clippy::result_large_err)]

pub mod bigledger;
pub mod business_central;
pub mod entra;
pub mod faults;
pub mod fixtures;
pub mod pennylane;
pub mod trackstar;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::task::JoinHandle;
use url::Url;

use crate::config::{HttpConfig, RateLimitConfig, SourceConfig};
pub use fixtures::MockOptions;

/// HTTP settings for a source pointed at a mock. The mocks enforce no quota
/// (fault injection stands in for one), so each connector's documented
/// quota would only slow the demo and the tests down.
pub fn http_config() -> HttpConfig {
    HttpConfig {
        rate_limit: Some(RateLimitConfig { requests: 1000, per_ms: 1000, concurrency: None }),
        ..HttpConfig::default()
    }
}

/// Request counts since start or the last reset.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub total: u64,
    /// `"<METHOD> <route>"`, route as mounted (`/trackstar/wms/inventory/ledger`).
    pub by_route: BTreeMap<String, u64>,
    pub by_upstream: BTreeMap<String, u64>,
}

/// One request as the mock received it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// The path as sent, e.g. `/trackstar/wms/inventory/ledger`.
    pub path: String,
    /// The decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The W3C trace context the request carried (no secret in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The headers, names lowercase, in order; credentials show as
    /// [`REDACTED`] (see [`is_credential`]).
    pub headers: Vec<(String, String)>,
}

/// What a credential header's value is recorded as.
pub const REDACTED: &str = "[redacted]";

/// Headers that carry credentials in some dialect (or could): never
/// recorded, so that `/__mock/requests` can be shown anywhere.
fn is_credential(name: &str) -> bool {
    const PARTS: [&str; 6] = ["auth", "token", "key", "secret", "password", "cookie"];
    name == "x-company-id" || PARTS.iter().any(|part| name.contains(part))
}

fn recorded_headers(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = if is_credential(name.as_str()) {
                REDACTED.to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// How many recent requests the mock remembers.
const RECORDED_REQUESTS: usize = 2000;

/// Shared by every dialect's handlers.
#[derive(Debug)]
pub struct MockState {
    pub options: MockOptions,
    stats: Mutex<Stats>,
    requests: Mutex<std::collections::VecDeque<RecordedRequest>>,
    pub faults: faults::Faults,
    pub trackstar: trackstar::TrackstarMock,
    pub business_central: business_central::BusinessCentralMock,
    /// Business Central's sign-in (the token endpoint).
    pub entra: entra::EntraMock,
    pub bigledger: bigledger::BigLedgerMock,
    pub pennylane: pennylane::PennylaneMock,
}

impl MockState {
    fn record(&self, method: &str, route: &str, request: RecordedRequest) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if requests.len() == RECORDED_REQUESTS {
            requests.pop_front();
        }
        requests.push_back(request);
        drop(requests);
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.total += 1;
        *stats.by_route.entry(format!("{method} {route}")).or_default() += 1;
        let upstream = route.trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
        *stats.by_upstream.entry(upstream).or_default() += 1;
    }

    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn reset(&self) {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = Stats::default();
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.faults.clear();
    }

    /// The requests received since the last reset, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}

/// A running mock server.
#[derive(Debug)]
pub struct Mock {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    task: JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mock {
    /// Starts on an ephemeral loopback port with default data.
    pub async fn start() -> std::io::Result<Mock> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), MockOptions::default()).await
    }

    pub async fn start_on(addr: SocketAddr, options: MockOptions) -> std::io::Result<Mock> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState {
            trackstar: trackstar::TrackstarMock::new(options.clone()),
            business_central: business_central::BusinessCentralMock::new(options.clone()),
            entra: entra::EntraMock::new(options.clone()),
            bigledger: bigledger::BigLedgerMock::new(options.clone()),
            pennylane: pennylane::PennylaneMock::new(options.clone()),
            options,
            stats: Mutex::default(),
            requests: Mutex::default(),
            faults: faults::Faults::default(),
        });
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "mock server stopped");
            }
        });
        Ok(Mock { addr, state, task })
    }

    /// Base URL of one upstream's dialect, e.g. `http://127.0.0.1:PORT/trackstar/`.
    pub fn url(&self, upstream: &str) -> Url {
        Url::parse(&format!("http://{}/{upstream}/", self.addr)).expect("loopback url parses")
    }

    /// Source configuration pointing a gateway at this mock with its demo
    /// credentials, under the demo's source names.
    pub fn sources_config(&self) -> BTreeMap<String, SourceConfig> {
        BTreeMap::from([
            ("trackstar".to_owned(), trackstar::source_config(self.url("trackstar"))),
            (
                "business-central".to_owned(),
                business_central::source_config(self.url("business-central"), self.url("entra")),
            ),
            ("bigledger".to_owned(), bigledger::source_config(self.url("bigledger"))),
            ("pennylane".to_owned(), pennylane::source_config(self.url("pennylane"))),
        ])
    }
}

pub fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .nest("/trackstar", trackstar::router())
        .nest("/business-central", business_central::router())
        .nest("/entra", entra::router())
        .nest("/bigledger", bigledger::router())
        .nest("/pennylane", pennylane::router())
        // Inner to the counter: a faulted request is still a request.
        .route_layer(middleware::from_fn_with_state(state.clone(), faults::inject))
        .route_layer(middleware::from_fn_with_state(state.clone(), count_request))
        .route("/__mock/stats", get(stats))
        .route("/__mock/faults", get(faults::list).post(faults::install).delete(faults::clear))
        .route("/__mock/requests", get(requests))
        .route("/__mock/reset", post(reset))
        .with_state(state)
}

async fn count_request(State(state): State<Arc<MockState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path().to_owned(), |p| p.as_str().to_owned());
    let recorded = RecordedRequest {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()).into_owned().collect(),
        traceparent: request.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned),
        headers: recorded_headers(request.headers()),
    };
    state.record(request.method().as_str(), &route, recorded);
    next.run(request).await
}

async fn requests(State(state): State<Arc<MockState>>) -> Json<Vec<RecordedRequest>> {
    Json(state.requests())
}

async fn stats(State(state): State<Arc<MockState>>) -> Json<Stats> {
    Json(state.stats())
}

async fn reset(State(state): State<Arc<MockState>>) -> Json<Stats> {
    state.reset();
    Json(state.stats())
}

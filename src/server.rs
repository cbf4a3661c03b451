//! HTTP: GraphQL over HTTP on `/graphql` (GET and POST), GraphiQL for
//! browsers, health, readiness and metrics.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_graphql::http::parse_query_string;
use async_graphql::{BatchRequest, BatchResponse};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::schema::{codes::is_request_error, LedgerSchema};
use crate::sources::Registry;

/// The example GraphiQL opens with.
pub const EXAMPLE_QUERY: &str = include_str!("../tests/queries/RecentEntries.graphql");
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_BATCH: usize = 10;

#[derive(Clone)]
struct AppState {
    schema: LedgerSchema,
    registry: Arc<Registry>,
    graphiql: bool,
    request_timeout: Duration,
}

pub fn router(schema: LedgerSchema, registry: Arc<Registry>, config: &Config) -> Router {
    let state = AppState {
        schema,
        registry,
        graphiql: config.server.graphiql,
        request_timeout: config.server.request_timeout(),
    };
    Router::new()
        .route("/", get(root))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(crate::graphiql::assets_router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        // A panicking resolver fails its own request with a 500; the server
        // keeps serving everyone else.
        .layer(CatchPanicLayer::custom(|_| {
            graphql_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error")
        }))
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"))
}

fn graphiql_page() -> Response {
    crate::graphiql::page("/graphql", EXAMPLE_QUERY).into_response()
}

async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.graphiql && wants_html(&headers) {
        return graphiql_page();
    }
    Json(json!({"graphql": "/graphql", "health": "/health", "ready": "/ready", "metrics": "/metrics"})).into_response()
}

async fn graphql_get(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    if query.is_empty() && state.graphiql && wants_html(&headers) {
        return graphiql_page();
    }
    let request = match parse_query_string(&query) {
        Ok(request) => request,
        Err(error) => {
            return graphql_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("invalid GraphQL GET request: {error}"),
            )
        }
    };
    execute(&state, &headers, BatchRequest::Single(request)).await
}

async fn graphql_post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    // Only JSON bodies execute: a browser cannot send one cross-site without
    // a CORS preflight, which is what stops CSRF via simple form posts.
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if media_type != "application/json" && media_type != GRAPHQL_RESPONSE_JSON {
        return graphql_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "POST /graphql needs Content-Type: application/json",
        );
    }
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(_) => {
            return graphql_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "request body is not a GraphQL JSON request")
        }
    };
    if let BatchRequest::Batch(requests) = &batch {
        if requests.is_empty() || requests.len() > MAX_BATCH {
            return graphql_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("a batch holds 1 to {MAX_BATCH} operations"),
            );
        }
    }
    execute(&state, &headers, batch).await
}

async fn execute(state: &AppState, headers: &HeaderMap, batch: BatchRequest) -> Response {
    let caller = state.registry.caller(headers);
    let batch = match batch {
        BatchRequest::Single(request) => BatchRequest::Single(request.data(caller)),
        BatchRequest::Batch(requests) => {
            BatchRequest::Batch(requests.into_iter().map(|r| r.data(state.registry.caller(headers))).collect())
        }
    };
    // Every upstream call the request makes fits in this deadline.
    let deadline = tokio::time::Instant::now() + state.request_timeout;
    let response = crate::upstream::deadline::within(deadline, state.schema.execute_batch(batch)).await;
    respond(headers, response)
}

/// Answers in the media type the client prefers: with
/// `application/graphql-response+json` a request that failed before
/// execution is a 400, as the GraphQL-over-HTTP spec asks; with
/// `application/json` it is always a 200.
fn respond(headers: &HeaderMap, response: BatchResponse) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let modern = accept.contains(GRAPHQL_RESPONSE_JSON) || accept.is_empty();
    let failed_early = matches!(&response, BatchResponse::Single(r) if is_request_error(r));
    let status = if modern && failed_early { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let content_type = if modern { GRAPHQL_RESPONSE_JSON } else { "application/json" };
    let body = serde_json::to_vec(&response).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}

/// A GraphQL-shaped error for failures outside execution.
fn graphql_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"errors": [{"message": message, "extensions": {"code": code}}]}))).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when every source answers with its configured credentials.
async fn ready(State(state): State<AppState>) -> Response {
    let checks = state.registry.check_ready().await;
    let all_ready = checks.iter().all(|(_, result)| result.is_ok());
    let sources: serde_json::Map<String, serde_json::Value> = checks
        .into_iter()
        .map(|(name, result)| {
            let status = match result {
                Ok(()) => json!({"ready": true}),
                Err(e) => json!({"ready": false, "code": crate::error::upstream_code(&e.failure)}),
            };
            (name.to_string(), status)
        })
        .collect();
    let status = if all_ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"ready": all_ready, "sources": sources}))).into_response()
}

/// The process-wide Prometheus recorder: metrics are global, so every app
/// in the process (tests start many) shares one.
fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|_| handle)
        })
        .as_ref()
}

pub fn init_metrics() {
    let _ = prometheus();
}

async fn metrics() -> Response {
    match prometheus() {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable").into_response(),
    }
}

//! HTTP: GraphQL over HTTP on `/graphql` (GET and POST), GraphiQL for
//! browsers, health, readiness and metrics.

pub mod cors;
pub mod guard;
pub mod head;
pub mod listen;
pub mod persisted;
pub mod reload;
pub mod request;
pub mod response;
pub mod response_cache;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Executor};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::stream::{FuturesOrdered, StreamExt};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

use crate::config::{Config, ServerConfig};
use crate::schema::limits::Limits;
use crate::sources::{Caller, Registry};
use crate::telemetry::metrics::OperationLabels;
use crate::telemetry::request::{self as request_log, OperationSlot};
use crate::upstream::freshness::{self, Freshness};
use persisted::{PersistedQueries, PersistedQueryError, Resolved};
use request::RequestError;
use response_cache::{Answer, Ran, ResponseCache, ResponseKey};

/// The example GraphiQL opens with.
pub const EXAMPLE_QUERY: &str = include_str!("../tests/queries/RecentEntries.graphql");
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

#[derive(Clone)]
struct AppState<E> {
    schema: E,
    registry: Arc<Registry>,
    graphiql: bool,
    limits: Arc<Limits>,
    persisted: PersistedQueries,
    responses: Option<Arc<ResponseCache>>,
    request_timeout: Duration,
    body_read_timeout: Duration,
}

/// The routes over `schema`: the ledger schema in production; generic so
/// tests can mount a schema that misbehaves (a panicking resolver) behind
/// the very same HTTP handling.
pub fn router<E: Executor>(schema: E, registry: Arc<Registry>, persisted: PersistedQueries, config: &Config) -> Router {
    let limits = Arc::new(Limits::new(config));
    let state = AppState {
        schema,
        registry,
        graphiql: config.server.graphiql,
        limits,
        persisted,
        responses: ResponseCache::new(config.cache.response_max_bytes).map(Arc::new),
        request_timeout: config.server.request_timeout(),
        body_read_timeout: config.server.body_read_timeout(),
    };
    let routes = Router::new()
        .route("/", get(root::<E>))
        .route("/graphql", get(graphql_get::<E>).post(graphql_post::<E>).head(graphql_head))
        .route("/health", get(health))
        .route("/ready", get(ready::<E>))
        .route("/metrics", get(metrics::<E>))
        .with_state(state)
        .merge(crate::graphiql::assets_router())
        // For any extractor that buffers a body; `/graphql` reads its own,
        // with the same limit and a coded error.
        .layer(DefaultBodyLimit::max(config.limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(Arc::new(config.server.clone()), check_head));
    // Outside the head check, so a page can read why its request was refused.
    let routes = match cors::Cors::new(config) {
        Some(cors) => routes.layer(axum::middleware::from_fn_with_state(cors, cors::apply)),
        None => routes,
    };
    routes
        .layer(TraceLayer::new_for_http())
        // A panicking resolver fails its own request with a 500; the server
        // keeps serving everyone else. async-graphql does not catch panics:
        // they unwind through the handler to this layer.
        .layer(CatchPanicLayer::custom(|panic: Box<dyn std::any::Any + Send>| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %message, "request handler panicked");
            graphql_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error")
        }))
        // Outermost: a panic's 500 gets the request id and its log line too.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(OperationLabels::new(config.telemetry.max_operation_names)),
            request_log::layer,
        ))
}

/// Every route's request head within `[server]`'s URI and header limits.
async fn check_head(State(config): State<Arc<ServerConfig>>, request: Request, next: Next) -> Response {
    match request::check_head(request.uri(), request.headers(), &config) {
        Ok(()) => next.run(request).await,
        Err(error) if request.uri().path() == "/graphql" => graphql_refusal(&error),
        Err(error) => request_error(&error),
    }
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"))
}

fn graphiql_page() -> Response {
    crate::graphiql::page("/graphql", EXAMPLE_QUERY).into_response()
}

async fn root<E>(State(state): State<AppState<E>>, headers: HeaderMap) -> Response {
    if state.graphiql && wants_html(&headers) {
        return graphiql_page();
    }
    Json(json!({"graphql": "/graphql", "health": "/health", "ready": "/ready", "metrics": "/metrics"})).into_response()
}

/// GET runs queries only: it is a "safe" method that browsers send
/// cross-site without asking (links, images), so it must have no effects.
/// A persisted query is looked up first: what runs is its document.
async fn graphql_get<E: Executor>(
    State(state): State<AppState<E>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    if query.is_empty() && state.graphiql && wants_html(&headers) {
        return graphiql_page();
    }
    let request = match request::decode_query_string(&query, &state.limits) {
        Ok(request) => request,
        Err(error) => return graphql_refusal(&error),
    };
    let mut resolved = match state.persisted.resolve(request).await {
        Ok(resolved) => resolved,
        Err(error) => return persisted_error(&headers, error),
    };
    // Unknown or unparsable operations fall through: execution reports them.
    if state.limits.operation_type(&mut resolved.request).is_some_and(|ty| ty != OperationType::Query) {
        return graphql_refusal(&RequestError::NotAQueryOverGet);
    }
    execute_single(&state, &headers, resolved).await
}

/// HEAD is answered 405 rather than by running the GET handler (axum's
/// default), which would execute the query, upstream calls included, to
/// send back its headers alone.
async fn graphql_head() -> Response {
    graphql_refusal(&RequestError::HeadNotAllowed)
}

async fn graphql_post<E: Executor>(State(state): State<AppState<E>>, headers: HeaderMap, body: Body) -> Response {
    let decoded = async {
        request::check_post_media_type(&headers)?;
        request::check_content_encoding(&headers)?;
        let limit = state.limits.config.max_body_bytes;
        let body = request::read_body(&headers, body, limit, state.body_read_timeout).await?;
        request::decode_body(&body, &state.limits)
    };
    match decoded.await {
        Ok(BatchRequest::Single(request)) => match state.persisted.resolve(request).await {
            Ok(resolved) => execute_single(&state, &headers, resolved).await,
            Err(error) => persisted_error(&headers, error),
        },
        Ok(BatchRequest::Batch(requests)) => execute_batch(&state, &headers, requests).await,
        Err(error) => {
            if matches!(error, RequestError::BodyTimeout { .. }) {
                listen::Dropped::BodyTimeout.count();
            }
            graphql_refusal(&error)
        }
    }
}

/// A GraphQL request refused before it ran: logged as one.
fn graphql_refusal(error: &RequestError) -> Response {
    request_log::refused(error.code());
    request_error(error)
}

fn request_error(error: &RequestError) -> Response {
    let mut response = graphql_error(error.status(), error.code(), &error.to_string());
    if let Some((name, value)) = advice(error) {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The header that tells a refused client what would be accepted, or that
/// the connection ends (a body left unread cannot be skipped).
fn advice(error: &RequestError) -> Option<(HeaderName, &'static str)> {
    match error {
        RequestError::NotAQueryOverGet => Some((header::ALLOW, "POST")),
        RequestError::HeadNotAllowed => Some((header::ALLOW, "GET, POST")),
        RequestError::UnsupportedContentEncoding => Some((header::ACCEPT_ENCODING, "identity")),
        RequestError::BodyTimeout { .. } => Some((header::CONNECTION, "close")),
        _ => None,
    }
}

async fn execute_single<E: Executor>(state: &AppState<E>, headers: &HeaderMap, resolved: Resolved) -> Response {
    let slot = OperationSlot::default();
    request_log::begin_graphql(std::slice::from_ref(&slot), false);
    let caller = state.registry.caller(headers);
    let (mut request, registration) = resolved.into_parts();
    let operation = state.limits.operation(&mut request);
    let is_query = operation.as_ref().is_some_and(|(ty, _)| *ty == OperationType::Query);
    let work = async {
        match state.responses.as_ref().filter(|_| is_query) {
            Some(cache) => {
                let key = ResponseKey::new(&request, &caller);
                cache.answer(key, || run_keeping(state, headers, request, caller, slot.clone())).await
            }
            None => Answer::Ran(execute_one(state, headers, request, caller, slot.clone()).await),
        }
    };
    match crate::upstream::deadline::within(deadline(state), work).await {
        Answer::Ran(response) => {
            state.persisted.settle(registration, &response).await;
            finish(headers, BatchResponse::Single(response))
        }
        Answer::Kept(body) => {
            // It executed when it was kept: a registration it carries stands.
            state.persisted.register(registration).await;
            slot.answered(operation.and_then(|(_, name)| name));
            request_log::answered_from_cache();
            reply_body(headers, StatusCode::OK, body)
        }
    }
}

/// [`execute_one`], saying whether and how long its answer may be kept: a
/// query answered without errors or extensions from upstream answers that
/// are all fresh for a while (`upstream::freshness`).
async fn run_keeping<E: Executor>(
    state: &AppState<E>,
    headers: &HeaderMap,
    request: async_graphql::Request,
    caller: Caller,
    slot: OperationSlot,
) -> Ran<async_graphql::Response> {
    let freshness = Freshness::new();
    let response = freshness::within(freshness.clone(), execute_one(state, headers, request, caller, slot)).await;
    let clean = response.errors.is_empty() && response.extensions.is_empty();
    let keep =
        freshness.keepable_for().filter(|_| clean).map(|ttl| (Bytes::from(response::single_body(&response)), ttl));
    Ran { outcome: response, keep }
}

/// Each operation of a batch is resolved on its own: a persisted query
/// missing from the store fails its own entry, the others run.
async fn execute_batch<E: Executor>(
    state: &AppState<E>,
    headers: &HeaderMap,
    requests: Vec<async_graphql::Request>,
) -> Response {
    let mut operations = Vec::with_capacity(requests.len());
    for request in requests {
        operations.push(state.persisted.resolve(request).await);
    }
    let runnable = operations.iter_mut().filter_map(|operation| operation.as_mut().ok());
    if let Err(error) = state.limits.check_batch(runnable.map(|resolved| &mut resolved.request)) {
        return graphql_refusal(&RequestError::Limit(error));
    }
    let slots: Vec<OperationSlot> = operations.iter().map(|_| OperationSlot::default()).collect();
    request_log::begin_graphql(&slots, true);
    let responses = operations
        .into_iter()
        .zip(slots)
        .map(|(operation, slot)| async move {
            match operation {
                Ok(resolved) => run(state, headers, resolved, state.registry.caller(headers), slot).await,
                Err(error) => refused(error),
            }
        })
        .collect::<FuturesOrdered<_>>()
        .collect();
    let responses = crate::upstream::deadline::within(deadline(state), responses).await;
    finish(headers, BatchResponse::Batch(responses))
}

/// Logs what the executed request answered, then answers it.
fn finish(headers: &HeaderMap, response: BatchResponse) -> Response {
    request_log::finish_graphql(&response);
    respond(headers, response)
}

/// Every upstream call the request makes fits in this deadline.
fn deadline<E>(state: &AppState<E>) -> tokio::time::Instant {
    tokio::time::Instant::now() + state.request_timeout
}

/// Runs one operation as its caller, then registers its persisted query.
async fn run<E: Executor>(
    state: &AppState<E>,
    headers: &HeaderMap,
    resolved: Resolved,
    caller: Caller,
    slot: OperationSlot,
) -> async_graphql::Response {
    let (request, registration) = resolved.into_parts();
    let response = execute_one(state, headers, request, caller, slot).await;
    state.persisted.settle(registration, &response).await;
    response
}

/// A refused persisted query, with the status its error gives it whatever
/// the media type (a miss is a 200 the client acts on).
fn persisted_error(headers: &HeaderMap, error: PersistedQueryError) -> Response {
    request_log::refused(error.code());
    let status = error.status();
    reply(headers, status, &BatchResponse::Single(refused(error)))
}

/// The response of an operation refused before it ran: its error alone.
fn refused(error: PersistedQueryError) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![error.into_server_error()])
}

/// One operation, with its caller's credentials and loaders, in its own
/// `graphql.request` span; `slot` keeps its name and outcome for the
/// request log.
async fn execute_one<E: Executor>(
    state: &AppState<E>,
    headers: &HeaderMap,
    mut request: async_graphql::Request,
    caller: Caller,
    slot: OperationSlot,
) -> async_graphql::Response {
    let span = crate::telemetry::graphql_request(headers);
    if !span.is_disabled() {
        let ty = state.limits.operation_type(&mut request).map(|ty| ty.to_string());
        crate::telemetry::record_operation(&span, ty.as_deref(), request.operation_name.as_deref());
    }
    let request = crate::schema::for_caller(&state.registry, caller, request).data(slot);
    let response = state.schema.execute(request).instrument(span.clone()).await;
    if response.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

/// Answers in the media type the client prefers, with the status GraphQL
/// over HTTP gives it (see `response::status`).
fn respond(headers: &HeaderMap, response: BatchResponse) -> Response {
    let status = response::status(&response, prefers_graphql_response(headers));
    reply(headers, status, &response)
}

fn prefers_graphql_response(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    accept.contains(GRAPHQL_RESPONSE_JSON) || accept.is_empty()
}

fn reply(headers: &HeaderMap, status: StatusCode, response: &BatchResponse) -> Response {
    reply_body(headers, status, Bytes::from(response::body(response)))
}

fn reply_body(headers: &HeaderMap, status: StatusCode, body: Bytes) -> Response {
    let content_type = if prefers_graphql_response(headers) { GRAPHQL_RESPONSE_JSON } else { "application/json" };
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}

/// A GraphQL-shaped error for failures outside execution.
fn graphql_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(error_body(code, message))).into_response()
}

/// The body of every error outside execution, from the router or from the
/// connection guard.
fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({"errors": [{"message": message, "extensions": {"code": code}}]})
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when every source answers with its configured credentials.
async fn ready<E>(State(state): State<AppState<E>>) -> Response {
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

async fn metrics<E>(State(state): State<AppState<E>>) -> Response {
    match crate::telemetry::metrics::render(&state.registry, state.responses.as_deref()) {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable").into_response(),
    }
}

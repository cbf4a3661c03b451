//! Each HTTP request's id and what its GraphQL request did, for the one
//! log line and the duration histogram every GraphQL request gets.
//!
//! The id comes from the caller's `x-request-id` when it is usable (1 to
//! 128 characters of `A-Z a-z 0-9 - _ . :`, sent once), else it is
//! generated (32 hex digits); either way it is returned in the response's
//! `x-request-id` and sent with every upstream call the request makes. A
//! task-local carries it, with the request's counters, down to the client
//! and the cache, for the reason the deadline is one (`upstream::deadline`).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{BatchResponse, Response as GraphqlResponse, Value};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::metrics::{self, InFlight, OperationLabels};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest caller-chosen request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Where a request's id came from (the log line's `request_id_origin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdOrigin {
    /// The caller's `x-request-id`.
    Caller,
    /// None was sent.
    Generated,
    /// The caller's was unusable (too long, empty, other characters, sent
    /// twice) and was replaced.
    Replaced,
}

impl IdOrigin {
    fn label(self) -> &'static str {
        match self {
            IdOrigin::Caller => "caller",
            IdOrigin::Generated => "generated",
            IdOrigin::Replaced => "replaced",
        }
    }
}

/// The request's id and where it came from.
pub fn request_id(headers: &HeaderMap) -> (HeaderValue, IdOrigin) {
    let mut values = headers.get_all(REQUEST_ID).iter();
    match (values.next(), values.next()) {
        (None, _) => (generated(), IdOrigin::Generated),
        (Some(value), None) if usable(value.as_bytes()) => (value.clone(), IdOrigin::Caller),
        _ => (generated(), IdOrigin::Replaced),
    }
}

fn usable(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn generated() -> HeaderValue {
    HeaderValue::from_str(&format!("{:032x}", rand::random::<u128>())).expect("hex digits are a valid header value")
}

/// What one operation of a request was.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Operation {
    /// It did not run (refused, did not parse or validate).
    Unknown,
    Anonymous,
    Named(String),
}

/// Filled by [`RecordOperation`] when the operation runs: one per
/// operation of a request, in the request's order.
#[derive(Clone, Debug)]
pub struct OperationSlot(Arc<Mutex<Operation>>);

impl Default for OperationSlot {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Operation::Unknown)))
    }
}

impl OperationSlot {
    /// Names the operation whose kept answer was served (`None`: anonymous).
    pub fn answered(&self, name: Option<String>) {
        self.set(name.map_or(Operation::Anonymous, Operation::Named));
    }

    fn set(&self, operation: Operation) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = operation;
    }

    fn get(&self) -> Operation {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The schema extension that names the operation that runs, as
/// async-graphql selected it (the request's `operationName`, or the
/// document's only operation).
#[derive(Debug)]
pub struct RecordOperation;

impl ExtensionFactory for RecordOperation {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RecordOperation)
    }
}

#[async_trait::async_trait]
impl Extension for RecordOperation {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> GraphqlResponse {
        if let Some(slot) = ctx.data_opt::<OperationSlot>() {
            slot.set(operation_name.map_or(Operation::Anonymous, |name| Operation::Named(name.to_owned())));
        }
        next.run(ctx, operation_name).await
    }
}

/// What a GraphQL request did, for its log line.
#[derive(Debug, Default)]
struct Summary {
    operations: Vec<OperationSlot>,
    batch: bool,
    error_codes: BTreeSet<String>,
    /// `ok` (no errors), `partial` (data and errors) or `error` (no data).
    outcome: Option<&'static str>,
    /// Answered with a response the response cache kept.
    kept: bool,
}

/// One HTTP request's id and counters.
#[derive(Debug)]
pub struct RequestContext {
    id: HeaderValue,
    origin: IdOrigin,
    upstream_calls: AtomicU64,
    cache_hits: AtomicU64,
    /// Set once the request turns out to be a GraphQL request.
    graphql: Mutex<Option<Summary>>,
}

impl RequestContext {
    fn new(id: HeaderValue, origin: IdOrigin) -> Self {
        Self { id, origin, upstream_calls: AtomicU64::new(0), cache_hits: AtomicU64::new(0), graphql: Mutex::default() }
    }

    fn summary(&self, update: impl FnOnce(&mut Summary)) {
        update(self.graphql.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Summary::default));
    }
}

tokio::task_local! {
    static CURRENT: Option<Arc<RequestContext>>;
}

fn current() -> Option<Arc<RequestContext>> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// `work` in the current request's context: for work spawned into a task
/// of its own (the DataLoader batches), which task-locals do not follow.
pub fn carry<F: Future>(work: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(current(), work)
}

/// Adds the request id to an upstream call's headers and counts the call.
pub fn tag_upstream_call(headers: &mut reqwest::header::HeaderMap) {
    if let Some(context) = current() {
        context.upstream_calls.fetch_add(1, Ordering::Relaxed);
        headers.insert(REQUEST_ID, context.id.clone());
    }
}

pub fn count_cache_hits(n: usize) {
    if let Some(context) = current() {
        context.cache_hits.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Marks the current request as a GraphQL request of these operations
/// (`batch`: sent as a list), before they run: one that panics is logged too.
pub fn begin_graphql(operations: &[OperationSlot], batch: bool) {
    if let Some(context) = current() {
        context.summary(|summary| {
            summary.operations = operations.to_vec();
            summary.batch = batch;
        });
    }
}

/// The codes and outcome of the executed request.
pub fn finish_graphql(response: &BatchResponse) {
    let responses = match response {
        BatchResponse::Single(response) => std::slice::from_ref(response),
        BatchResponse::Batch(responses) => responses.as_slice(),
    };
    let outcomes: BTreeSet<&'static str> = responses.iter().map(outcome).collect();
    let overall = match (outcomes.len(), outcomes.first()) {
        (1, Some(only)) => only,
        _ => "partial",
    };
    let codes =
        responses.iter().flat_map(|r| &r.errors).filter_map(|error| match error.extensions.as_ref()?.get("code")? {
            Value::String(code) => Some(code.clone()),
            _ => None,
        });
    if let Some(context) = current() {
        context.summary(|summary| {
            summary.error_codes.extend(codes);
            summary.outcome = Some(overall);
        });
    }
}

fn outcome(response: &GraphqlResponse) -> &'static str {
    match (response.errors.is_empty(), &response.data) {
        (true, _) => "ok",
        (false, Value::Null) => "error",
        (false, _) => "partial",
    }
}

/// A GraphQL request answered with a kept response: it had no errors.
pub fn answered_from_cache() {
    if let Some(context) = current() {
        context.summary(|summary| {
            summary.outcome = Some("ok");
            summary.kept = true;
        });
    }
}

/// A GraphQL request refused before it ran, with `code`.
pub fn refused(code: &str) {
    if let Some(context) = current() {
        context.summary(|summary| {
            summary.error_codes.insert(code.to_owned());
            summary.outcome = Some("error");
        });
    }
}

/// The outermost layer: gives every request its id and context, returns
/// the id, and logs and measures the GraphQL ones.
pub async fn layer(State(labels): State<Arc<OperationLabels>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (id, origin) = request_id(request.headers());
    let context = Arc::new(RequestContext::new(id, origin));
    let in_flight = (request.uri().path() == "/graphql").then(InFlight::start);
    let mut response = CURRENT.scope(Some(context.clone()), next.run(request)).await;
    drop(in_flight);
    response.headers_mut().insert(REQUEST_ID, context.id.clone());
    let summary = context.graphql.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(summary) = summary {
        log_graphql(&context, summary, response.status(), started, &labels);
    }
    response
}

fn log_graphql(
    context: &RequestContext,
    mut summary: Summary,
    status: StatusCode,
    started: Instant,
    labels: &OperationLabels,
) {
    let elapsed = started.elapsed();
    let operations: Vec<Operation> = summary.operations.iter().map(OperationSlot::get).collect();
    if status.is_server_error() && summary.error_codes.is_empty() {
        // A panic: the handler never saw the response the panic layer wrote.
        summary.error_codes.insert("INTERNAL".to_owned());
    }
    let outcome = summary.outcome.filter(|_| !status.is_server_error()).unwrap_or("error");
    let label = match operations.as_slice() {
        _ if summary.batch => metrics::BATCH.to_owned(),
        [Operation::Named(name)] => labels.label(Some(name)),
        [Operation::Anonymous] => labels.label(None),
        _ => metrics::UNKNOWN.to_owned(),
    };
    metrics::graphql_request(&label, outcome, elapsed);
    let names: Vec<&str> = operations
        .iter()
        .map(|operation| match operation {
            Operation::Named(name) => name.as_str(),
            Operation::Anonymous => metrics::ANONYMOUS,
            Operation::Unknown => metrics::UNKNOWN,
        })
        .collect();
    let names = if names.is_empty() { metrics::UNKNOWN.to_owned() } else { names.join(",") };
    let codes = summary.error_codes.into_iter().collect::<Vec<_>>().join(",");
    tracing::info!(
        request_id = context.id.to_str().unwrap_or_default(),
        request_id_origin = context.origin.label(),
        operation = %names,
        operations = operations.len(),
        status = status.as_u16(),
        outcome,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        error_codes = %codes,
        upstream_calls = context.upstream_calls.load(Ordering::Relaxed),
        cache_hits = context.cache_hits.load(Ordering::Relaxed),
        response_cache_hit = summary.kept,
        "graphql request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(REQUEST_ID, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_usable_request_id_is_kept_and_an_unusable_one_replaced() {
        let (id, origin) = request_id(&with_id(&["req-42.a_b:c"]));
        assert_eq!((id.to_str().unwrap(), origin), ("req-42.a_b:c", IdOrigin::Caller));
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        assert_eq!(request_id(&with_id(&[&longest])).1, IdOrigin::Caller);
        for unusable in
            [&["a".repeat(MAX_REQUEST_ID_LEN + 1)][..], &["".to_owned()], &["a b".to_owned()], &["<x>".to_owned()]]
        {
            let values: Vec<&str> = unusable.iter().map(String::as_str).collect();
            let (id, origin) = request_id(&with_id(&values));
            assert_eq!(origin, IdOrigin::Replaced, "{values:?}");
            assert!(usable(id.as_bytes()) && id.len() == 32, "{id:?}");
        }
        assert_eq!(request_id(&with_id(&["a", "b"])).1, IdOrigin::Replaced, "sent twice");
        let (first, origin) = request_id(&HeaderMap::new());
        assert_eq!(origin, IdOrigin::Generated);
        assert_ne!(first, request_id(&HeaderMap::new()).0, "each generated id is new");
    }
}

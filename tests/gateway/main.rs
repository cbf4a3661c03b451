//! The one integration test binary: the real server on loopback, the mock
//! upstreams over real HTTP.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

/// BigLedger: entries synthesized from adjustments and transfers, pushdown,
/// lookups by id, its error dialect.
mod bigledger;
/// The circuit breaker at every connector: opens, recovers, releases its trial.
mod breaker;
/// The upstream call budget: refused before any call, stopped while running,
/// shared by a batch, and fair shares of a source's limiter.
mod budget;
/// Business Central: OData pushdown, day-precision paging, enums, decimals, errors.
mod business_central;
/// The shared cache: ledger pages reused briefly, TTLs, errors never kept, metrics.
mod cache;
/// The binary itself: start-up refusals, `check-config`, the demo's settings.
mod cli;
/// Connections: header, body and keep-alive timeouts, the connection
/// bound, head limits, content codings and HEAD, over raw TCP.
mod connections;
/// CORS: preflights and answers for allowed origins, nothing for others, off by default.
mod cors;
/// Business Central's sign-in at Entra ID: token reuse, expiry, single
/// flight, refusals and a slow token endpoint.
mod entra;
/// Errors: cursor misuse, bad input, upstream failures, all with codes.
mod errors;
/// Upstream faults injected by the mock: retries, deadlines, rate limits,
/// circuit breaker, malformed answers, redirects, partial results, no leaks.
mod faults;
/// Apollo Federation: `_service { sdl }`, `_entities` by key, their errors and cost.
mod federation;
/// Field errors: a failed field is null at its path, non-null failures
/// null the nearest nullable parent.
mod field_errors;
/// Forwarded credentials: unusable headers are refused, never replaced by the service account.
mod forwarded;
/// GraphQL over HTTP: methods, media types, GraphiQL, health, schema drift.
mod http;
/// Caller isolation: identical queries of two callers, cold, warm, concurrent.
mod isolation;
/// Items and locations: batched loaders, bins, lookups by id, federation, failures.
mod items;
/// Paging the merged ledger: exactly once, newest first, every filter.
mod ledger_entries;
/// The binary's lifecycle: graceful shutdown, reload on SIGHUP and
/// `/admin/reload`, what a reload refuses.
mod lifecycle;
/// Hostile input: query limits, CSRF, production switches, panics.
mod limits;
/// The merged ledger across sources: exactly once, in order, counts.
mod merged;
/// Relay's `node` and `nodes`: every type, request order, errors, cost.
mod nodes;
/// Observability: request ids to the upstreams, one log line per request,
/// the `sources` field against `/ready`, the duration histograms.
mod observe;
/// Pennylane: dated then undated entries, amounts from lines, pushdown, errors, its mock's wire format.
mod pennylane;
/// Automatic persisted queries: POST and GET by hash, registration, hash
/// mismatches, the store's bounds, batches, metrics and the safelist.
mod persisted;
/// The configuration as documented: the example file, README's reference.
mod reference;
/// Repeated selections: identical ones run once; the fields an operation or
/// a batch runs are bounded.
mod repeated;
/// The response cache: identical queries of one caller answered with the
/// kept bytes; variables, callers, errors and TTLs that keep them apart.
mod response_cache;
/// A million-entry ledger: calls and memory per page stay bounded.
mod scale;
/// Settled history kept long and checked by change probes.
mod settled;
/// HTTP statuses: request errors are 4xx (or 200 as `application/json`)
/// without `data`, executed requests and batches 200.
mod statuses;
/// Traces: the OTLP export's span tree, `traceparent` continued and sent upstream.
mod traces;
/// The window walk: what pages cost in upstream calls.
mod walk;

//! The one integration test binary: the real server on loopback, the mock
//! upstreams over real HTTP.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

/// Errors: cursor misuse, bad input, upstream failures, all with codes.
mod errors;
/// Upstream faults injected by the mock: retries, deadlines, rate limits,
/// circuit breaker, malformed answers, redirects, partial results, no leaks.
mod faults;
/// GraphQL over HTTP: methods, media types, GraphiQL, health, schema drift.
mod http;
/// Paging the merged ledger: exactly once, newest first, every filter.
mod ledger_entries;
/// A million-entry ledger: calls and memory per page stay bounded.
mod scale;

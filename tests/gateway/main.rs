//! The one integration test binary: the real server on loopback, the mock
//! upstreams over real HTTP.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

/// The shared cache: ledger pages reused briefly, TTLs, errors never kept, metrics.
mod cache;
/// Errors: cursor misuse, bad input, upstream failures, all with codes.
mod errors;
/// GraphQL over HTTP: methods, media types, GraphiQL, health, schema drift.
mod http;
/// Caller isolation: identical queries of two callers, cold, warm, concurrent.
mod isolation;
/// Items and locations: batched loaders, bins, lookups by id, federation, failures.
mod items;
/// Paging the merged ledger: exactly once, newest first, every filter.
mod ledger_entries;

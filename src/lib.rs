//! ledger-gateway: one GraphQL endpoint over Trackstar, Business Central,
//! BigLedger and Pennylane ledgers.
//!
//! # Layout
//!
//! The folders follow the data flow of a request:
//!
//! - [`server`]: the accept loop (connection bound, header, body and idle
//!   timeouts) and HTTP routes (GraphQL over HTTP with its statuses,
//!   automatic persisted queries and the safelist, GraphiQL, health,
//!   metrics).
//! - [`schema`]: the GraphQL face: root fields, types, filter inputs,
//!   federation entities, error codes, field-error nulls, query limits and
//!   the upstream call estimate.
//! - [`ledger`]: pure planning, merging and cursors: which sources a filter
//!   reaches, what each pushes down, the k-way merge, keyset cursors.
//! - [`sources`]: one connector per upstream behind `trait Source`, plus the
//!   shared fan-out, the date-window walker for unordered upstreams, and
//!   item/location lookups over any source.
//! - [`upstream`]: shared HTTP mechanics: client, request deadline, retries
//!   and their budget, the per-request call budget, circuit breaker, outgoing rate limits, credentials,
//!   and the cache every request shares (keyed per caller).
//! - [`mock`]: the mock upstreams, speaking each API's wire format, with
//!   fault injection for all of them.
//! - [`clock`]: where "now" comes from (fixed in tests).
//! - [`model`]: the unified entry; [`config`], [`error`], [`cli`], [`telemetry`].

pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod graphiql;
pub mod ledger;
pub mod mock;
pub mod model;
pub mod schema;
pub mod server;
pub mod sources;
pub mod telemetry;
pub mod upstream;

use std::sync::Arc;

use axum::Router;

use config::{Config, ConfigError};
use sources::Registry;
use upstream::FingerprintKey;

/// The whole HTTP application for `config`.
pub fn app(config: &Config) -> Result<Router, ConfigError> {
    config.validate()?;
    server::init_metrics();
    let registry = Arc::new(Registry::from_config(config, FingerprintKey::random())?);
    let schema = schema::build_schema(registry.clone(), config);
    let persisted = server::persisted::PersistedQueries::new(&config.server.persisted_queries)?;
    Ok(server::router(schema, registry, persisted, config))
}

//! The GraphQL face: root fields, the `LedgerEntry` type, filter inputs,
//! federation entities, and error codes. `build_schema` wires them to the
//! registry; `sdl` is what `print-schema` prints and `schema.graphql` holds.

pub mod codes;
pub mod entry;
pub mod filter;
pub mod limits;
pub mod query;

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, SDLExportOptions, Schema};

use crate::config::{Config, LimitsConfig};
use crate::sources::Registry;

pub type LedgerSchema = Schema<query::Query, EmptyMutation, EmptySubscription>;

/// The executable schema over `registry`.
pub fn build_schema(registry: Arc<Registry>, config: &Config) -> LedgerSchema {
    let mut builder = Schema::build(query::Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .extension(codes::ErrorCodes)
        .extension(limits::QueryLimits::new(limits::Limits::new(config)))
        .limit_recursive_depth(limits::MAX_NESTING)
        .data(registry)
        .data(config.limits.clone());
    if !config.server.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The federation SDL, independent of any configuration.
pub fn sdl() -> String {
    Schema::build(query::Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .data(LimitsConfig::default())
        .finish()
        .sdl_with_options(SDLExportOptions::new().federation())
}

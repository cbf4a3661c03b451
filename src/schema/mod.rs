//! The GraphQL face: root fields, the `LedgerEntry`, `Item` and `Location`
//! types and their Relay `Node` interface, filter inputs, federation
//! entities, per-request loaders, and error codes. `build_schema` wires them to the registry; `for_caller` gives each
//! request its caller's credentials and loaders; `sdl` is what
//! `print-schema` prints and `schema.graphql` holds.

pub mod codes;
pub mod entry;
pub mod field_errors;
pub mod filter;
pub mod health;
pub mod inventory;
pub mod limits;
pub mod loaders;
pub mod node;
pub mod query;
pub mod stale;

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, Request, SDLExportOptions, Schema};

use crate::config::{Config, LimitsConfig};
use crate::sources::{Caller, Registry};
use loaders::Loaders;

pub type LedgerSchema = Schema<query::Query, EmptyMutation, EmptySubscription>;

/// The executable schema over `registry`.
pub fn build_schema(registry: Arc<Registry>, config: &Config) -> LedgerSchema {
    let mut builder = Schema::build(query::Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .extension(crate::telemetry::request::RecordOperation)
        .extension(codes::ErrorCodes)
        .extension(field_errors::FieldErrors)
        .extension(stale::StaleNotice)
        .extension(limits::QueryLimits::new(limits::Limits::new(config)))
        .extension(limits::budget::UpstreamBudget::new(config.limits.max_upstream_calls))
        .limit_recursive_depth(limits::MAX_NESTING)
        .data(registry)
        .data(config.limits.clone());
    if !config.server.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// `request` with its caller's credentials (resolved from the request's
/// headers) and fresh loaders bound to them: batching happens within one
/// request, never across callers; what requests share lives in the cache,
/// keyed per caller.
pub fn for_caller(registry: &Registry, caller: Caller, request: Request) -> Request {
    let loaders = Loaders::new(registry, &caller);
    request.data(loaders).data(caller).data(node::EntitySlots::default())
}

/// The federation SDL, independent of any configuration: byte for byte what
/// `{ _service { sdl } }` answers, so `schema.graphql` is what a federation
/// router composes.
pub fn sdl() -> String {
    Schema::build(query::Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .data(LimitsConfig::default())
        .finish()
        .sdl_with_options(service_sdl_options())
}

/// The export options async-graphql 7.2 uses for `_service { sdl }`
/// (`QueryRoot::resolve_field`). `compose_directive` appends the
/// `@composeDirective` links (none today, but it still ends the SDL with a
/// blank line); without it the printed schema drifts from the served one.
fn service_sdl_options() -> SDLExportOptions {
    SDLExportOptions::new().federation().compose_directive()
}

//! The one place errors become GraphQL errors: a stable SCREAMING_SNAKE
//! `extensions.code`, plus `extensions.source` when an upstream is involved.
//! Messages come from the error types, which never hold secrets, URLs or
//! upstream bodies; internals are logged where they happen, not returned.

use async_graphql::{ErrorExtensions, Pos, ServerError};

use crate::ledger::CursorError;
use crate::upstream::{UpstreamError, UpstreamFailure};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    BadUserInput(String),
    #[error(transparent)]
    Cursor(#[from] CursorError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl GatewayError {
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::BadUserInput(_) | GatewayError::Cursor(_) => "BAD_USER_INPUT",
            GatewayError::Upstream(e) => upstream_code(&e.failure),
        }
    }

    pub fn into_server_error(self, pos: Option<Pos>) -> ServerError {
        self.extend().into_server_error(pos.unwrap_or_default())
    }
}

/// The code a client sees for each kind of upstream failure.
pub fn upstream_code(failure: &UpstreamFailure) -> &'static str {
    match failure {
        UpstreamFailure::Unauthorized => "UPSTREAM_UNAUTHORIZED",
        UpstreamFailure::Forbidden => "UPSTREAM_FORBIDDEN",
        UpstreamFailure::Rejected => "UPSTREAM_REJECTED",
        UpstreamFailure::NotFound => "UPSTREAM_NOT_FOUND",
        UpstreamFailure::RateLimited { .. } => "UPSTREAM_RATE_LIMITED",
        UpstreamFailure::Timeout => "UPSTREAM_TIMEOUT",
        UpstreamFailure::Unavailable => "UPSTREAM_UNAVAILABLE",
        UpstreamFailure::BadResponse => "UPSTREAM_BAD_RESPONSE",
        UpstreamFailure::NotSupported => "UPSTREAM_NOT_SUPPORTED",
        UpstreamFailure::PageTokenInvalid => "UPSTREAM_PAGE_TOKEN_INVALID",
        UpstreamFailure::MissingCredentials => "UNAUTHENTICATED",
        UpstreamFailure::CircuitOpen { .. } => "CIRCUIT_OPEN",
    }
}

impl ErrorExtensions for GatewayError {
    fn extend(&self) -> async_graphql::Error {
        let code = self.code();
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", code);
            if let GatewayError::Upstream(upstream) = self {
                ext.set("source", upstream.source_name.as_str());
                if let Some(wait) = upstream.failure.retry_after() {
                    ext.set("retryAfterSeconds", wait.as_secs_f64().ceil() as u64);
                }
            }
        })
    }
}

/// Shorthand for resolver input errors.
pub fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    GatewayError::BadUserInput(message.into()).extend()
}

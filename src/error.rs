//! The one place errors become GraphQL errors: a stable SCREAMING_SNAKE
//! `extensions.code`, plus `extensions.source` when an upstream is involved.
//! Messages come from the error types, which never hold secrets, URLs or
//! upstream bodies; internals are logged where they happen, not returned.

use async_graphql::{ErrorExtensions, Pos, ServerError};

use axum::http::StatusCode;

use crate::ledger::CursorError;
use crate::schema::limits::LimitError;
use crate::server::persisted::PersistedQueryError;
use crate::server::request::RequestError;
use crate::upstream::{UpstreamError, UpstreamFailure};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    BadUserInput(String),
    #[error(transparent)]
    Cursor(#[from] CursorError),
    #[error("no object has id {0:?}")]
    NotFound(String),
    #[error("id {id:?} names more than one object ({kinds}): ask `ledgerEntry`, `item` or `location` for it")]
    AmbiguousId { id: String, kinds: String },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl GatewayError {
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::BadUserInput(_) | GatewayError::Cursor(_) => "BAD_USER_INPUT",
            GatewayError::NotFound(_) => "NOT_FOUND",
            GatewayError::AmbiguousId { .. } => "AMBIGUOUS_ID",
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
        UpstreamFailure::MissingCredentials | UpstreamFailure::UnusableCredentials => "UNAUTHENTICATED",
        UpstreamFailure::CircuitOpen { .. } => "CIRCUIT_OPEN",
        UpstreamFailure::BudgetExhausted { .. } => "UPSTREAM_BUDGET_EXCEEDED",
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

impl LimitError {
    /// Stable codes for each refused limit (README, "Error codes").
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::TooDeep { .. } => "QUERY_TOO_DEEP",
            LimitError::TooComplex { .. } => "QUERY_TOO_COMPLEX",
            LimitError::TooManyAliases { .. } => "TOO_MANY_ALIASES",
            LimitError::TooManyRootFields { .. } => "TOO_MANY_ROOT_FIELDS",
            LimitError::TooManyDirectives { .. } => "TOO_MANY_DIRECTIVES",
            LimitError::TooManyTokens { .. } => "TOO_MANY_TOKENS",
            LimitError::InputTooDeep { .. } => "INPUT_TOO_DEEP",
            LimitError::TooManyRepresentations { .. } => "TOO_MANY_REPRESENTATIONS",
            LimitError::TooManyNodeIds { .. } => "TOO_MANY_NODE_IDS",
            LimitError::IntrospectionDisabled { .. } => "INTROSPECTION_DISABLED",
            LimitError::FragmentCycle { .. } => "GRAPHQL_VALIDATION_FAILED",
            LimitError::TooManyFields { .. } | LimitError::BatchTooManyFields { .. } => "TOO_MANY_FIELDS",
            LimitError::UpstreamBudget { .. } => "UPSTREAM_BUDGET_EXCEEDED",
        }
    }

    pub fn into_server_error(self) -> ServerError {
        let mut error = ServerError::new(self.to_string(), None);
        error.extensions.get_or_insert_with(Default::default).set("code", self.code());
        error
    }
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            RequestError::UnsupportedContentEncoding => "UNSUPPORTED_CONTENT_ENCODING",
            RequestError::UriTooLong { .. } => "URI_TOO_LONG",
            RequestError::HeadersTooLarge { .. } | RequestError::TooManyHeaders { .. } => "HEADERS_TOO_LARGE",
            RequestError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            RequestError::BodyTimeout { .. } => "BODY_READ_TIMEOUT",
            RequestError::BodyRead
            | RequestError::MalformedBody
            | RequestError::MalformedQueryString
            | RequestError::EmptyBatch => "BAD_REQUEST",
            RequestError::BatchTooLarge { .. } => "BATCH_TOO_LARGE",
            RequestError::NotAQueryOverGet | RequestError::HeadNotAllowed => "METHOD_NOT_ALLOWED",
            RequestError::Limit(limit) => limit.code(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::UnsupportedMediaType | RequestError::UnsupportedContentEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            RequestError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            RequestError::HeadersTooLarge { .. } | RequestError::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            RequestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            RequestError::NotAQueryOverGet | RequestError::HeadNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl PersistedQueryError {
    pub fn code(&self) -> &'static str {
        match self {
            PersistedQueryError::NotFound => "PERSISTED_QUERY_NOT_FOUND",
            PersistedQueryError::HashMismatch => "PERSISTED_QUERY_HASH_MISMATCH",
            PersistedQueryError::UnsupportedVersion { .. } => "PERSISTED_QUERY_UNSUPPORTED_VERSION",
            PersistedQueryError::Malformed => "BAD_REQUEST",
            PersistedQueryError::NotInSafelist => "PERSISTED_QUERY_NOT_IN_SAFELIST",
        }
    }

    /// A miss is a 200 whatever the media type: it is the protocol's
    /// request to send the query along, and clients may give up on APQ for
    /// good on a 400 or 500 (apollo-link-persisted-queries, which Apollo
    /// Client's link grew from, does). The others are refusals.
    pub fn status(&self) -> StatusCode {
        match self {
            PersistedQueryError::NotFound => StatusCode::OK,
            PersistedQueryError::NotInSafelist => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn into_server_error(self) -> ServerError {
        let mut error = ServerError::new(self.to_string(), None);
        error.extensions.get_or_insert_with(Default::default).set("code", self.code());
        error
    }
}

/// Shorthand for resolver input errors.
pub fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    GatewayError::BadUserInput(message.into()).extend()
}

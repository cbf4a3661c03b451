//! What can go wrong talking to an upstream. `Clone` because dataloader and
//! cache results are shared between callers; never holds a URL, a header or a
//! response body, so it can be shown to a client as is.

use std::time::Duration;

use crate::model::SourceName;

/// A failed upstream call, tagged with the source it came from.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{source_name}: {failure}")]
pub struct UpstreamError {
    pub source_name: SourceName,
    pub failure: UpstreamFailure,
}

impl UpstreamError {
    pub fn new(source_name: &SourceName, failure: UpstreamFailure) -> Self {
        Self { source_name: source_name.clone(), failure }
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum UpstreamFailure {
    #[error("upstream rejected the credentials")]
    Unauthorized,
    #[error("upstream denied access to this resource")]
    Forbidden,
    #[error("upstream rejected the request as invalid")]
    Rejected,
    #[error("upstream has no such resource")]
    NotFound,
    #[error("upstream rate limit reached")]
    RateLimited { retry_after: Option<Duration> },
    #[error("upstream did not answer in time")]
    Timeout,
    #[error("upstream is unavailable")]
    Unavailable,
    #[error("upstream sent a response that could not be read")]
    BadResponse,
    #[error("upstream does not support this operation")]
    NotSupported,
    #[error("upstream page token expired or is invalid")]
    PageTokenInvalid,
    #[error("credentials for this source are missing")]
    MissingCredentials,
    #[error("this request has made its {limit} upstream calls")]
    BudgetExhausted { limit: usize },
    /// A forwarded credential header that is present but cannot be one.
    #[error("the forwarded credential for this source is blank, repeated or not visible ASCII")]
    UnusableCredentials,
    #[error("upstream is failing; calls are paused until it recovers")]
    CircuitOpen { retry_after: Duration },
}

impl UpstreamFailure {
    /// Worth another attempt for an idempotent call: the same request may
    /// succeed later, unlike an auth or validation failure. (An open circuit
    /// is not: it exists so that nobody tries again yet.)
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout | Self::Unavailable | Self::RateLimited { .. })
    }

    /// The source is down or overloaded, not refusing this caller: an
    /// expired answer may stand in (`cache.stale_if_error_secs`). Never
    /// for 401/403 or missing credentials, nor for answers that are final
    /// (404, 422, 501).
    pub fn allows_stale_answers(&self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::Unavailable | Self::RateLimited { .. } | Self::CircuitOpen { .. } | Self::BadResponse
        )
    }

    /// How long the client should wait before asking again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            Self::CircuitOpen { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

//! Shared HTTP mechanics for every connector: the client (timeouts, retries,
//! capped reads, no redirects), per-caller credentials and their
//! fingerprints, exact decimals from JSON, the shared cache, and the error
//! type connectors return.

pub mod auth;
pub mod cache;
pub mod client;
pub mod decimal;
pub mod error;

pub use auth::{sensitive_header, Credentials, Fingerprint, FingerprintKey};
pub use cache::{Resource, Scope, UpstreamCache};
pub use client::{Call, HttpPolicy, UpstreamClient};
pub use error::{UpstreamError, UpstreamFailure};

use url::Url;

/// `base` with `segments` appended, each percent-encoded as one path segment,
/// so no caller-supplied id can add a path level or change the host.
pub fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_encodes_each_segment() {
        let base = Url::parse("http://127.0.0.1:1/api/").unwrap();
        let url = endpoint(&base, &["wms", "inventory", "../../x?y=1#z"]);
        assert_eq!(url.as_str(), "http://127.0.0.1:1/api/wms/inventory/..%2F..%2Fx%3Fy=1%23z");
        assert_eq!(url.host_str(), Some("127.0.0.1"));
    }
}

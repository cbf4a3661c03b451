//! Shared HTTP mechanics for every connector: the client (timeouts, capped
//! reads, no redirects), the request deadline, retries with backoff and a
//! budget, the circuit breaker, outgoing rate limits, per-caller credentials
//! and their fingerprints, exact decimals from JSON, the shared cache, and
//! the error type connectors return, and each request's budget of calls.

pub mod auth;
pub mod breaker;
pub mod budget;
pub mod cache;
pub mod client;
pub mod deadline;
pub mod decimal;
pub mod error;
pub mod freshness;
pub mod health;
pub mod limiter;
pub mod retry;
pub mod settled;

pub use auth::{sensitive_header, AccessToken, Credentials, Fingerprint, FingerprintKey, TokenCache};
pub use breaker::BreakerPolicy;
pub use cache::{Fetched, Resource, Scope, UpstreamCache, Usage};
pub use client::{Call, HttpPolicy, UpstreamClient};
pub use error::{UpstreamError, UpstreamFailure};
pub use limiter::RateLimit;
pub use retry::Backoff;

use url::Url;

/// `base` with `segments` appended, each percent-encoded as one path segment,
/// so no caller-supplied id can add or remove a path level or change the host.
/// The URL standard drops `.` and `..` segments and an empty one would end the
/// path with a slash (often the list endpoint): those become a literal no
/// upstream uses as an id, so such a lookup finds nothing instead of
/// something else.
pub fn endpoint(base: &Url, segments: &[&str]) -> Url {
    const UNREPRESENTABLE: &str = "%00";
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        let safe = segments.iter().map(|s| if matches!(*s, "" | "." | "..") { UNREPRESENTABLE } else { s });
        path.pop_if_empty().extend(safe);
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

    /// Inputs a caller controls (ids, filter values) trying to escape.
    const HOSTILE: [&str; 13] = [
        "../..",
        "/",
        "//evil.example/x",
        "@evil.example",
        "evil.example:80",
        "?a=b",
        "#frag",
        "%2e%2e%2f",
        "\\evil\\x",
        "a\r\nHost: evil",
        "x&limit=1",
        "ids[in]=y",
        "é/ü",
    ];

    #[test]
    fn no_path_segment_can_change_the_host_or_the_path_above_it() {
        let base = Url::parse("https://api.example:8443/v2.0/tenant/").unwrap();
        for input in HOSTILE {
            let url = endpoint(&base, &["items", input]);
            assert_eq!(
                (url.scheme(), url.host_str(), url.port()),
                ("https", Some("api.example"), Some(8443)),
                "{input}"
            );
            assert_eq!((url.query(), url.fragment()), (None, None), "{input}");
            let segments: Vec<String> = url.path_segments().unwrap().map(percent_decode).collect();
            // The URL standard drops tabs and line breaks: no header injection.
            assert!(!url.as_str().contains(['\r', '\n']), "{input}");
            let sent = input.replace(['\r', '\n'], "");
            assert_eq!(segments, ["v2.0", "tenant", "items", sent.as_str()], "{input}");
        }
        for unrepresentable in ["", ".", ".."] {
            let url = endpoint(&base, &["items", unrepresentable, "lines"]);
            assert_eq!(url.path(), "/v2.0/tenant/items/%2500/lines", "{unrepresentable:?}");
        }
    }

    #[test]
    fn query_values_come_back_exactly_as_given() {
        let base = Url::parse("https://api.example/v1/").unwrap();
        for input in HOSTILE {
            let mut url = endpoint(&base, &["ledger"]);
            url.query_pairs_mut().append_pair("ids[in]", input).append_pair("limit", "10");
            assert_eq!((url.host_str(), url.path()), (Some("api.example"), "/v1/ledger"), "{input}");
            let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            assert_eq!(pairs, [("ids[in]".to_owned(), input.to_owned()), ("limit".into(), "10".into())], "{input}");
        }
    }

    fn percent_decode(segment: &str) -> String {
        let bytes = segment.as_bytes();
        let mut decoded = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match (bytes[i], hex) {
                (b'%', Some(byte)) => {
                    decoded.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    decoded.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8(decoded).unwrap()
    }
}

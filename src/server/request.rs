//! From HTTP to GraphQL requests, refusing hostile ones before they cost
//! anything: the request head is bounded, the body is read with its size
//! capped and a deadline while it streams in, JSON nesting is bounded
//! before serde_json builds values, and nothing a parser says about the
//! input is echoed back.

use std::time::Duration;

use async_graphql::{BatchRequest, Request, Variables};
use axum::body::Body;
use axum::http::{header, HeaderMap, Uri};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::config::ServerConfig;
use crate::schema::limits::{LimitError, Limits};

/// Why an HTTP request never became a GraphQL request. Codes and statuses
/// are in `crate::error`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("POST /graphql needs Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("request bodies are accepted without a content coding only (Content-Encoding: identity)")]
    UnsupportedContentEncoding,
    #[error("request target is longer than {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("request headers are larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("a request has at most {limit} headers")]
    TooManyHeaders { limit: usize },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body could not be read")]
    BodyRead,
    #[error("request body did not arrive within {limit_ms} ms")]
    BodyTimeout { limit_ms: u128 },
    #[error("request body is not a GraphQL JSON request")]
    MalformedBody,
    #[error("query string is not a GraphQL GET request (query, operationName, variables, extensions)")]
    MalformedQueryString,
    #[error("a batch holds at least one operation")]
    EmptyBatch,
    #[error("a batch holds at most {limit} operations")]
    BatchTooLarge { limit: usize },
    #[error("only query operations run over GET: send other operations with POST")]
    NotAQueryOverGet,
    #[error("HEAD would have to run the query to describe its answer: send GET or POST")]
    HeadNotAllowed,
    #[error(transparent)]
    Limit(#[from] LimitError),
}

/// The media types a POST body may have. Both are "non-simple": a browser
/// sends neither cross-site without a CORS preflight, which this server
/// never grants, so a POST that reaches the schema was not forged by a page.
const JSON_MEDIA_TYPES: [&str; 2] = ["application/json", "application/graphql-response+json"];

pub fn check_post_media_type(headers: &HeaderMap) -> Result<(), RequestError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if JSON_MEDIA_TYPES.contains(&media_type.as_str()) {
        Ok(())
    } else {
        Err(RequestError::UnsupportedMediaType)
    }
}

/// Refuses any content coding but `identity`: a body labelled `gzip` is
/// not read as if it were plain, and none is decompressed, so no
/// compressed body can expand past `max_body_bytes`.
pub fn check_content_encoding(headers: &HeaderMap) -> Result<(), RequestError> {
    let identity = |value: &axum::http::HeaderValue| {
        value.to_str().is_ok_and(|codings| {
            codings.split(',').map(str::trim).all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case("identity"))
        })
    };
    if headers.get_all(header::CONTENT_ENCODING).iter().all(identity) {
        Ok(())
    } else {
        Err(RequestError::UnsupportedContentEncoding)
    }
}

/// The request head within `[server]`'s limits. hyper's own parser is set
/// well above them (see `listen`), so heads in between are refused here,
/// with a JSON error, rather than by hyper with an empty one.
pub fn check_head(uri: &Uri, headers: &HeaderMap, config: &ServerConfig) -> Result<(), RequestError> {
    let target = uri.path_and_query().map_or(0, |target| target.as_str().len());
    if target > config.max_uri_bytes {
        return Err(RequestError::UriTooLong { limit: config.max_uri_bytes });
    }
    if headers.len() > config.max_headers {
        return Err(RequestError::TooManyHeaders { limit: config.max_headers });
    }
    // As on the wire: `name: value\r\n`.
    let size: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if size > config.max_header_bytes {
        return Err(RequestError::HeadersTooLarge { limit: config.max_header_bytes });
    }
    Ok(())
}

/// Reads at most `limit` bytes of `body` within `timeout`: a declared
/// length over the limit is refused unread, a chunked body as soon as it
/// crosses the limit, a body still arriving at the deadline with a 408
/// (whatever its pace: a trickle is as costly as a stall).
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, RequestError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(RequestError::PayloadTooLarge { limit });
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| RequestError::BodyRead)?;
            if bytes.len() + chunk.len() > limit {
                return Err(RequestError::PayloadTooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(RequestError::BodyTimeout { limit_ms: timeout.as_millis() }))
}

/// One operation of a POST body: async-graphql's `Request` without its
/// default for `query`, so a body that lacks one (`{"qeury": ...}`) is not
/// a GraphQL request rather than an empty document. Only an automatic
/// persisted query may leave it out (`server::persisted` finds it).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostedRequest {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Variables,
    #[serde(default)]
    extensions: async_graphql::Extensions,
}

impl PostedRequest {
    fn into_request(self) -> Result<Request, RequestError> {
        let query = query_or_persisted(self.query, &self.extensions).ok_or(RequestError::MalformedBody)?;
        let mut request = Request::new(query).variables(self.variables);
        request.operation_name = self.operation_name;
        request.extensions = self.extensions;
        Ok(request)
    }
}

/// The query of a request; empty for one that names a persisted query
/// instead, `None` when it has neither.
fn query_or_persisted(query: Option<String>, extensions: &async_graphql::Extensions) -> Option<String> {
    query.or_else(|| extensions.contains_key(super::persisted::EXTENSION).then(String::new))
}

/// A POST body as a single request or a batch of 1 to `max_batch`. A
/// batch's shared field allowance is checked once its persisted queries
/// are resolved (`Limits::check_batch`).
pub fn decode_body(body: &[u8], limits: &Limits) -> Result<BatchRequest, RequestError> {
    limits.check_json_body(body)?;
    // An object is one request, an array a batch; the first byte decides,
    // so no other JSON shape is coerced into a request. serde's messages
    // quote the input: they are never returned.
    let malformed = |_| RequestError::MalformedBody;
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {
            let request: PostedRequest = serde_json::from_slice(body).map_err(malformed)?;
            Ok(BatchRequest::Single(request.into_request()?))
        }
        Some(b'[') => {
            let requests: Vec<PostedRequest> = serde_json::from_slice(body).map_err(malformed)?;
            if requests.is_empty() {
                Err(RequestError::EmptyBatch)
            } else if requests.len() > limits.config.max_batch {
                Err(RequestError::BatchTooLarge { limit: limits.config.max_batch })
            } else {
                let requests = requests.into_iter().map(PostedRequest::into_request).collect::<Result<_, _>>()?;
                Ok(BatchRequest::Batch(requests))
            }
        }
        _ => Err(RequestError::MalformedBody),
    }
}

/// A GET query string (`query`, `operationName`, and `variables` and
/// `extensions` as JSON) as a request. Repeated parameters are refused
/// rather than guessed between.
pub fn decode_query_string(query_string: &str, limits: &Limits) -> Result<Request, RequestError> {
    let mut query = None;
    let mut operation_name = None;
    let mut variables = None;
    let mut extensions = None;
    for (key, value) in url::form_urlencoded::parse(query_string.as_bytes()) {
        let slot = match key.as_ref() {
            "query" => &mut query,
            "operationName" => &mut operation_name,
            "variables" => &mut variables,
            "extensions" => &mut extensions,
            _ => return Err(RequestError::MalformedQueryString),
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(RequestError::MalformedQueryString);
        }
    }
    let extensions: async_graphql::Extensions = json_parameter(extensions, limits)?.unwrap_or_default();
    let mut request = Request::new(query_or_persisted(query, &extensions).ok_or(RequestError::MalformedQueryString)?);
    request.operation_name = operation_name.filter(|name| !name.is_empty());
    request.variables = json_parameter::<Variables>(variables, limits)?.unwrap_or_default();
    request.extensions = extensions;
    Ok(request)
}

/// A JSON-valued query parameter; absent, empty or `null` is `None`.
fn json_parameter<T: DeserializeOwned>(text: Option<String>, limits: &Limits) -> Result<Option<T>, RequestError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else { return Ok(None) };
    limits.check_json_body(text.as_bytes())?;
    serde_json::from_str::<Option<T>>(&text).map_err(|_| RequestError::MalformedQueryString)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn limits() -> Limits {
        Limits::new(&Config::default())
    }

    #[test]
    fn query_strings_decode_like_graphql_over_http() {
        let request = decode_query_string(
            "query=query%20Q(%24n%3A%20Int)%20%7B%20a%20%7D&operationName=Q&variables=%7B%22n%22%3A1%7D",
            &limits(),
        )
        .unwrap();
        assert_eq!(request.query, "query Q($n: Int) { a }");
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(request.variables.get("n"), Some(&async_graphql::Value::from(1)));
        assert!(decode_query_string("query=%7Ba%7D&variables=null&operationName=", &limits()).is_ok());
    }

    #[test]
    fn malformed_or_ambiguous_query_strings_are_refused() {
        for text in ["", "variables=%7B%7D", "query=a&query=b", "query=a&debug=1", "query=a&variables=%5B1%5D"] {
            assert_eq!(decode_query_string(text, &limits()).unwrap_err(), RequestError::MalformedQueryString, "{text}");
        }
        let deep = format!("query=a&variables=%7B%22a%22%3A{}1{}%7D", "%5B".repeat(100), "%5D".repeat(100));
        assert_eq!(
            decode_query_string(&deep, &limits()).unwrap_err(),
            RequestError::Limit(LimitError::InputTooDeep { limit: 16 })
        );
    }

    #[test]
    fn bodies_decode_single_requests_and_bounded_batches() {
        assert!(matches!(decode_body(br#"{"query": "{a}"}"#, &limits()), Ok(BatchRequest::Single(_))));
        assert!(
            matches!(decode_body(br#" [{"query": "{a}"}]"#, &limits()), Ok(BatchRequest::Batch(r)) if r.len() == 1)
        );
        assert_eq!(decode_body(b"[]", &limits()).unwrap_err(), RequestError::EmptyBatch);
        for body in [&br#"["{a}"]"#[..], b"\"{a}\"", b"", b"{"] {
            assert_eq!(decode_body(body, &limits()).unwrap_err(), RequestError::MalformedBody);
        }
        let eleven = format!("[{}]", [r#"{"query": "{a}"}"#; 11].join(","));
        assert_eq!(decode_body(eleven.as_bytes(), &limits()).unwrap_err(), RequestError::BatchTooLarge { limit: 10 });
        for body in
            [&br#"{"query": 1}"#[..], br#"{"qeury": "{a}"}"#, br#"[{"query": "{a}"}, {}]"#, br#"{"query": null}"#]
        {
            assert_eq!(decode_body(body, &limits()).unwrap_err(), RequestError::MalformedBody);
        }
        let Ok(BatchRequest::Single(request)) =
            decode_body(br#"{"query": "query Q { a }", "operationName": "Q", "variables": {"n": 1}}"#, &limits())
        else {
            panic!("a full request decodes")
        };
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(request.variables.get("n"), Some(&async_graphql::Value::from(1)));
    }
}

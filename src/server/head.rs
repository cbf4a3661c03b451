//! Request heads as the connection guard (`server::guard`) checks them
//! before hyper reads them: everything hyper would refuse on its own, with
//! an empty body, is refused here with a `RequestError` instead, and each
//! accepted head says how its body is framed, so the guard knows where the
//! next request on the connection starts. Pure: no I/O, easy to fuzz.

use axum::http::Uri;

use super::request::RequestError;
use crate::config::{ServerConfig, HYPER_MAX_URI_BYTES};

/// What a head may hold, as a multiple of the configured limits: heads
/// between the limits and this backstop reach the router, which refuses
/// them with its own, more precise, JSON error.
const BACKSTOP: usize = 4;

/// Longest head accepted here, bytes (request line included).
pub fn max_head_bytes(config: &ServerConfig) -> usize {
    (BACKSTOP * (config.max_uri_bytes + config.max_header_bytes)).max(64 * 1024)
}

/// Most header lines accepted here.
pub fn max_head_headers(config: &ServerConfig) -> usize {
    BACKSTOP * config.max_headers
}

/// Longest chunk-size line (size and extensions) tracked; hyper allows
/// less, so a longer one fails the body there too.
const MAX_CHUNK_LINE: usize = 64 * 1024;

/// A complete, acceptable head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// Its length in bytes, leading empty lines included.
    pub len: usize,
    pub body: Body,
}

/// Where the start of `bytes` holds a complete head: `Ok(None)` while it
/// may still become one.
pub fn inspect(bytes: &[u8], config: &ServerConfig) -> Result<Option<Head>, RequestError> {
    let mut headers = vec![httparse::EMPTY_HEADER; max_head_headers(config)];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if bytes.len() > max_head_bytes(config) => return Err(too_large(bytes, config)),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders { limit: config.max_headers }),
        Err(_) => return Err(RequestError::MalformedHead),
    };
    if len > max_head_bytes(config) {
        return Err(too_large(bytes, config));
    }
    let target = request.path.unwrap_or_default();
    if target.len() > HYPER_MAX_URI_BYTES {
        return Err(RequestError::UriTooLong { limit: config.max_uri_bytes });
    }
    if Uri::try_from(target).is_err() {
        return Err(RequestError::MalformedHead);
    }
    let body = framing(&request)?;
    Ok(Some(Head { len, body }))
}

/// A head over the backstop: its target when the request line alone is
/// that long, its headers otherwise.
fn too_large(bytes: &[u8], config: &ServerConfig) -> RequestError {
    let start = bytes.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(bytes.len());
    if bytes[start..].contains(&b'\n') {
        RequestError::HeadersTooLarge { limit: config.max_header_bytes }
    } else {
        RequestError::UriTooLong { limit: config.max_uri_bytes }
    }
}

/// The body framing of a parsed head (RFC 9112 §6). Stricter than hyper in
/// one way: `Content-Length` together with `Transfer-Encoding` is refused
/// rather than resolved in favour of the latter, since that disagreement is
/// how requests are smuggled past proxies.
fn framing(request: &httparse::Request<'_, '_>) -> Result<Body, RequestError> {
    let mut length = None;
    let mut chunked = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = content_length(header.value).ok_or(RequestError::InvalidContentLength)?;
            if length.replace(value).is_some_and(|earlier| earlier != value) {
                return Err(RequestError::InvalidContentLength);
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if request.version == Some(0) {
                return Err(RequestError::UnsupportedTransferEncoding);
            }
            // As hyper reads it: the last coding of the last header decides.
            let last = std::str::from_utf8(header.value).ok().and_then(|v| v.rsplit(',').next());
            chunked = Some(last.is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked")));
        }
    }
    match (length, chunked) {
        (Some(_), Some(_)) => Err(RequestError::ConflictingFraming),
        (None, Some(false)) => Err(RequestError::UnsupportedTransferEncoding),
        (None, Some(true)) => Ok(Body::Chunked(Chunked::Size(Vec::new()))),
        (length, None) => Ok(Body::Length(length.unwrap_or(0))),
    }
}

/// One decimal number, nothing else (RFC 9110 §8.6: `1*DIGIT`).
fn content_length(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Where a body ends, tracked over its bytes as they pass.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunked),
    /// Framing this tracker could not follow (a malformed chunk): hyper's
    /// decoder fails the body too and closes the connection after its
    /// answer, so no further head is read from it.
    Unframed,
}

/// Where in a chunked body the bytes stand.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked {
    /// The chunk-size line read so far.
    Size(Vec<u8>),
    /// Data bytes left in the chunk.
    Data(u64),
    /// Bytes left of the CRLF after the data.
    DataEnd(u8),
    /// The trailer line read so far; an empty one ends the body.
    Trailer(Vec<u8>),
    Done,
}

impl Body {
    /// How many bytes at the start of `bytes` belong to this body, advancing
    /// past them.
    pub fn consume(&mut self, bytes: &[u8]) -> usize {
        match self {
            Body::Length(left) => {
                let taken = bytes.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= taken as u64;
                taken
            }
            Body::Unframed => bytes.len(),
            Body::Chunked(state) => {
                let mut taken = 0;
                while taken < bytes.len() && *state != Chunked::Done {
                    match state.consume(&bytes[taken..]) {
                        Some(n) => taken += n,
                        None => {
                            *self = Body::Unframed;
                            return bytes.len();
                        }
                    }
                }
                taken
            }
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Body::Length(0) | Body::Chunked(Chunked::Done))
    }
}

impl Chunked {
    /// Consumes at least one byte of `bytes` (not empty); `None` when the
    /// framing is broken.
    fn consume(&mut self, bytes: &[u8]) -> Option<usize> {
        match self {
            Chunked::Size(line) | Chunked::Trailer(line) => {
                let end = bytes.iter().position(|b| *b == b'\n');
                let taken = end.map_or(bytes.len(), |end| end + 1);
                line.extend_from_slice(&bytes[..taken]);
                if line.len() > MAX_CHUNK_LINE {
                    return None;
                }
                if end.is_some() {
                    *self = self.next_line()?;
                }
                Some(taken)
            }
            Chunked::Data(left) => {
                let taken = bytes.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= taken as u64;
                if *left == 0 {
                    *self = Chunked::DataEnd(2);
                }
                Some(taken)
            }
            Chunked::DataEnd(left) => {
                *left -= 1;
                if *left == 0 {
                    *self = Chunked::Size(Vec::new());
                }
                Some(1)
            }
            Chunked::Done => Some(0),
        }
    }

    /// The state after a complete line.
    fn next_line(&self) -> Option<Chunked> {
        match self {
            Chunked::Size(line) => match httparse::parse_chunk_size(line) {
                Ok(httparse::Status::Complete((_, 0))) => Some(Chunked::Trailer(Vec::new())),
                Ok(httparse::Status::Complete((_, size))) => Some(Chunked::Data(size)),
                _ => None,
            },
            Chunked::Trailer(line) if line == b"\r\n" || line == b"\n" => Some(Chunked::Done),
            Chunked::Trailer(_) => Some(Chunked::Trailer(Vec::new())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &str) -> Result<Option<Head>, RequestError> {
        inspect(head.as_bytes(), &ServerConfig::default())
    }

    fn body(head: &str) -> Body {
        check(head).unwrap().unwrap().body
    }

    #[test]
    fn valid_heads_say_how_their_body_is_framed() {
        assert_eq!(body("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Body::Length(0));
        assert_eq!(body("\r\nPOST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"), Body::Length(12));
        assert_eq!(body("POST / HTTP/1.1\r\ncontent-length: 5\r\nContent-Length:  5 \r\n\r\n"), Body::Length(5));
        assert_eq!(
            body("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"),
            Body::Chunked(Chunked::Size(Vec::new()))
        );
        assert_eq!(check("GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None, "incomplete");
        let head = "GET /x HTTP/1.1\r\n\r\nGET /y";
        assert_eq!(check(head).unwrap().unwrap().len, 19, "stops at the end of the head");
    }

    #[test]
    fn heads_hyper_would_refuse_with_an_empty_body_are_refused_with_a_code() {
        let cases = [
            ("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", RequestError::InvalidContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", RequestError::InvalidContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", RequestError::InvalidContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", RequestError::InvalidContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", RequestError::InvalidContentLength),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::ConflictingFraming,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                RequestError::ConflictingFraming,
            ),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", RequestError::UnsupportedTransferEncoding),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", RequestError::UnsupportedTransferEncoding),
            ("GET / HTTP/1.1\r\nno colon\r\n\r\n", RequestError::MalformedHead),
            ("hello\r\n\r\n", RequestError::MalformedHead),
            ("GET / HTTP/2.0\r\n\r\n", RequestError::MalformedHead),
            ("GET /\x7f HTTP/1.1\r\n\r\n", RequestError::MalformedHead),
        ];
        for (head, expected) in cases {
            assert_eq!(check(head).unwrap_err(), expected, "{head:?}");
        }
    }

    #[test]
    fn heads_over_the_backstop_are_refused_by_what_is_too_long() {
        let config = ServerConfig::default();
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(HYPER_MAX_URI_BYTES));
        assert_eq!(check(&long_target).unwrap_err(), RequestError::UriTooLong { limit: config.max_uri_bytes });
        let endless_line = format!("GET /{}", "a".repeat(max_head_bytes(&config)));
        assert_eq!(check(&endless_line).unwrap_err(), RequestError::UriTooLong { limit: config.max_uri_bytes });
        let big = format!("GET / HTTP/1.1\r\nx: {}\r\n", "a".repeat(max_head_bytes(&config)));
        assert_eq!(check(&big).unwrap_err(), RequestError::HeadersTooLarge { limit: config.max_header_bytes });
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "x: 1\r\n".repeat(max_head_headers(&config) + 1));
        assert_eq!(check(&many).unwrap_err(), RequestError::TooManyHeaders { limit: config.max_headers });
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
        let wire = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\nGET";
        // Whole, and one byte at a time.
        for step in [wire.len(), 1] {
            let mut tracker = Body::Chunked(Chunked::Size(Vec::new()));
            let mut at = 0;
            while !tracker.is_done() {
                at += tracker.consume(&wire[at..(at + step).min(wire.len())]);
            }
            assert_eq!(&wire[at..], b"GET", "step {step}");
        }
        let mut broken = Body::Chunked(Chunked::Size(Vec::new()));
        assert_eq!(broken.consume(b"zz\r\nrest"), 8);
        assert_eq!(broken, Body::Unframed);
        let mut sized = Body::Length(3);
        assert_eq!((sized.consume(b"abcdef"), sized.is_done()), (3, true));
    }
}

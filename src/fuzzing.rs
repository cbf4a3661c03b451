//! Fuzz targets as plain functions over bytes, shared by the cargo-fuzz
//! harness in `fuzz/` (nightly, coverage-guided) and the stable-Rust runner
//! `examples/fuzz.rs`. Each target panics on a broken invariant; reaching
//! the end means the input was handled. Not part of the public API.
//!
//! - [`cursor`]: `ledger::Cursor::decode` on arbitrary text and arbitrary
//!   JSON payloads (clients can forge cursors: they are not signed).
//! - [`filters`]: a filter built from the bytes, planned for every
//!   connector, translated into its dialect's query parameters and turned
//!   into a scan (window arithmetic included). Adding a connector: one line
//!   in [`DIALECTS`].
//! - [`request`]: raw HTTP-level request text (POST body, GET query string
//!   or bare query) through the pre-parse guards, parsing, the limits and
//!   execution against the real schema with no upstreams.
//! - [`http`]: the request parser on whole requests the bytes describe:
//!   head limits, media type, content coding, then body or query string
//!   decoding, with documents in the shapes attackers send (fragment
//!   spreads and aliases by the thousand, batches) and odd encodings; and
//!   raw request heads through the connection guard's check
//!   (`server::head`): bad or conflicting `Content-Length`,
//!   `Transfer-Encoding`, unparsable lines, targets over hyper's limit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use async_graphql::{BatchRequest, Request};
use chrono::{DateTime, TimeDelta, Utc};
use url::Url;

use crate::clock::Clock;
use crate::config::{Config, SourceConfig};
use crate::ledger::{plan, Cursor, Density, Hint, LedgerFilter, SourceFilter, TimeRange};
use crate::model::{EventType, SortKey, SourceKind, SourceName};
use crate::schema::{build_schema, limits::Limits, LedgerSchema};
use crate::server::request::{
    check_content_encoding, check_head, check_post_media_type, decode_body, decode_query_string, RequestError,
};
use crate::sources::window::Window;
use crate::sources::{bigledger, business_central, pennylane, trackstar, Registry, ScanRequest, Source};
use crate::upstream::{Credentials, FingerprintKey};

/// A fuzz target: panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name `fuzz/` and `scripts/fuzz` use.
pub const TARGETS: &[(&str, Target)] =
    &[("cursor", cursor), ("filters", filters), ("request", request), ("http", http)];

/// Reads typed values off fuzzer bytes. Past the end every read is zero or
/// empty, so every byte string is a valid input.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn byte(&mut self) -> u8 {
        let (first, rest) = self.data.split_first().map_or((0, &[][..]), |(b, rest)| (*b, rest));
        self.data = rest;
        first
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    pub fn below(&mut self, n: usize) -> usize {
        let raw = u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]) as usize;
        raw % n.max(1)
    }

    pub fn i64(&mut self) -> i64 {
        i64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }

    pub fn string(&mut self, max: usize) -> String {
        let len = self.below(max + 1).min(self.data.len());
        let (text, rest) = self.data.split_at(len);
        self.data = rest;
        String::from_utf8_lossy(text).into_owned()
    }

    pub fn option<T>(&mut self, read: impl FnOnce(&mut Self) -> T) -> Option<T> {
        self.bool().then(|| read(self))
    }

    pub fn list<T>(&mut self, max: usize, mut read: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let len = self.below(max + 1);
        (0..len).map(|_| read(self)).collect()
    }

    /// Instants anywhere chrono can represent, biased to the edges, which
    /// GraphQL's `DateTime` accepts (`+262142-12-31T23:59:59.999999999Z`).
    pub fn date(&mut self) -> DateTime<Utc> {
        let edges = [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::UNIX_EPOCH,
            DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(1),
            DateTime::<Utc>::MIN_UTC + TimeDelta::seconds(1),
        ];
        let pick = self.byte() as usize;
        if let Some(edge) = edges.get(pick % 16) {
            return *edge;
        }
        let (min, max) = (DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
        let seconds = if pick % 2 == 0 {
            // Near the present, where real data lives.
            1_750_000_000 + self.i64() % 100_000_000
        } else {
            min + (self.i64().unsigned_abs() % (max - min) as u64) as i64
        };
        let nanos = (self.i64().unsigned_abs() % 1_000_000_000) as u32;
        DateTime::from_timestamp(seconds, nanos).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    fn time_range(&mut self) -> TimeRange {
        TimeRange {
            gt: self.option(Self::date),
            gte: self.option(Self::date),
            lt: self.option(Self::date),
            lte: self.option(Self::date),
        }
    }
}

/// Cursor decoding: arbitrary text, or an arbitrary JSON payload wrapped the
/// way this gateway wraps cursors. A cursor that decodes re-encodes to one
/// that decodes to the same value.
pub fn cursor(data: &[u8]) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let Some((mode, rest)) = data.split_first() else { return };
    let text = match mode % 2 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        _ => format!("v2.{}", URL_SAFE_NO_PAD.encode(rest)),
    };
    let filter = LedgerFilter::default().digest();
    if let Ok(decoded) = Cursor::decode(&text, &filter) {
        assert_eq!(Cursor::decode(&decoded.encode(), &filter).as_ref(), Ok(&decoded), "cursor does not round-trip");
        let _ = decoded.position_for("trackstar");
    }
}

/// One case for a dialect's translation: the planned filter plus the
/// paging state a scan passes along.
#[derive(Debug)]
pub struct FilterCase {
    pub filter: SourceFilter,
    pub window: Window,
    pub page_token: Option<String>,
    pub limit: usize,
    /// Where the scan continues, from a cursor.
    pub position: Option<SortKey>,
}

/// A connector's filter translation, as the fuzz target drives it.
#[derive(Debug)]
pub struct Dialect {
    pub kind: SourceKind,
    pub ledger_params: fn(&FilterCase) -> Vec<(String, String)>,
}

/// Every connector's native query translation. One line per connector.
pub const DIALECTS: &[Dialect] = &[
    Dialect {
        kind: SourceKind::Trackstar,
        ledger_params: |case| {
            trackstar::query::ledger_params(&case.filter, case.window, case.page_token.as_deref(), case.limit)
        },
    },
    Dialect { kind: SourceKind::BusinessCentral, ledger_params: business_central_params },
    Dialect { kind: SourceKind::Bigledger, ledger_params: bigledger_params },
    Dialect { kind: SourceKind::Pennylane, ledger_params: pennylane_params },
];

/// The query of every ledger read Business Central is sent (one per
/// `$filter` chunk), as decoded from the URLs the connector builds.
fn business_central_params(case: &FilterCase) -> Vec<(String, String)> {
    static SOURCE: OnceLock<business_central::BusinessCentral> = OnceLock::new();
    let source = SOURCE.get_or_init(|| {
        let base_url = "https://api.businesscentral.dynamics.com/v2.0/tenant/production/api/v2.0/\
                        companies(00000000-0000-0000-0000-000000000000)/";
        let config = serde_json::json!({"kind": SourceKind::BusinessCentral, "base_url": base_url});
        let config: SourceConfig = serde_json::from_value(config).expect("a minimal source config");
        business_central::BusinessCentral::new(SourceName::new("business-central"), &config, Clock::System)
    });
    let query = source.ledger_query(&case.filter, case.position.as_ref());
    query
        .filters
        .iter()
        .flat_map(|filter| source.ledger_url(filter).query_pairs().into_owned().collect::<Vec<_>>())
        .collect()
}

/// The first page of each BigLedger list a window reads, keys prefixed by
/// the list; none when no entry can match or the window holds no day.
fn bigledger_params(case: &FilterCase) -> Vec<(String, String)> {
    use bigledger::query::{adjustment_params, day_range, ledger_query, transfer_params};
    let (Some(query), Some(days)) = (ledger_query(&case.filter), day_range(case.window)) else { return Vec::new() };
    let cursor = case.page_token.as_deref();
    let adjustments = query.adjustments.then(|| adjustment_params(&query, days, case.limit, cursor));
    let transfers = query.transfers.then(|| transfer_params(&query, days, case.limit, cursor));
    let mut params = prefixed("adjustments", adjustments.unwrap_or_default());
    params.extend(prefixed("transfers", transfers.unwrap_or_default()));
    params
}

/// The first page of each Pennylane ledger read a scan starts with (one
/// per id chunk), keys prefixed by the read's index.
fn pennylane_params(case: &FilterCase) -> Vec<(String, String)> {
    use pennylane::query::{list_params, NEWEST_FIRST};
    let request = ScanRequest {
        filter: case.filter.clone(),
        position: case.position.clone(),
        want: case.limit,
        residual: SourceFilter::default(),
        hint: None,
    };
    let reads = pennylane::first_reads(&request).into_iter().enumerate();
    reads
        .flat_map(|(read, conditions)| {
            let params = list_params(&conditions, Some(NEWEST_FIRST), case.limit, case.page_token.as_deref());
            prefixed(&read.to_string(), params)
        })
        .collect()
}

/// `params` with `prefix.` before each key, to tell several requests apart.
fn prefixed(prefix: &str, params: Vec<(String, String)>) -> Vec<(String, String)> {
    params.into_iter().map(|(key, value)| (format!("{prefix}.{key}"), value)).collect()
}

/// One source per dialect, named after its kind, pointing nowhere (the
/// target never awaits a call).
fn dialect_sources() -> &'static Vec<Arc<dyn Source>> {
    static SOURCES: OnceLock<Vec<Arc<dyn Source>>> = OnceLock::new();
    SOURCES.get_or_init(|| {
        let sources = DIALECTS
            .iter()
            .map(|dialect| {
                let kind = serde_json::to_value(dialect.kind).expect("kinds serialize");
                let name = kind.as_str().expect("kinds are strings").to_owned();
                let config: SourceConfig =
                    serde_json::from_value(serde_json::json!({"kind": kind, "base_url": "http://127.0.0.1:9/"}))
                        .expect("a minimal source config");
                (name, config)
            })
            .collect();
        let registry = Registry::from_config(&Config { sources, ..Config::default() }, FingerprintKey::random())
            .expect("every dialect has a connector");
        DIALECTS
            .iter()
            .map(|dialect| registry.sources().find(|s| s.kind() == dialect.kind).expect("built").clone())
            .collect()
    })
}

fn ledger_filter(input: &mut Input<'_>) -> LedgerFilter {
    let names = ["trackstar", "business-central", "bigledger", "pennylane", "nope"];
    // Long enough for a BC GUID (36) and a BigLedger entry id.
    let global_id = |input: &mut Input<'_>| format!("{}:{}", names[input.below(names.len())], input.string(40));
    let set = |values: Vec<String>| values.into_iter().collect::<BTreeSet<_>>();
    let event_types = <EventType as async_graphql::resolver_utils::EnumType>::items();
    LedgerFilter {
        sources: input.option(|i| set(i.list(3, |i| names[i.below(names.len())].to_owned()))),
        entry_date: input.time_range(),
        updated_at: input.time_range(),
        event_types: input
            .option(|i| i.list(4, |i| event_types[i.below(event_types.len())].value).into_iter().collect()),
        skus: input.option(|i| set(i.list(4, |i| i.string(16)))),
        item_ids: input.option(|i| set(i.list(4, global_id))),
        location_ids: input.option(|i| set(i.list(4, global_id))),
        ids: input.option(|i| set(i.list(150, global_id))),
    }
}

/// Filter planning, translation and scan setup for every dialect.
pub fn filters(data: &[u8]) {
    let mut input = Input::new(data);
    let filter = ledger_filter(&mut input);
    let window = Window { from: input.option(Input::date), to: input.option(Input::date) };
    let page_token = input.option(|i| i.string(32));
    let limit = 1 + input.below(1000);
    // Positions and hints come from cursors, which clients can forge.
    let position =
        input.option(|i| SortKey { entry_date: i.option(Input::date), source: i.string(8), native_id: i.string(8) });
    let hint = input.option(|i| {
        let mut figure = || i.i64() as f64;
        Hint { walks: vec![Density { records: figure(), seconds: figure(), matches: figure() }], ..Hint::default() }
    });
    let want = input.below(600);
    let key = FingerprintKey::random();
    for (dialect, source) in DIALECTS.iter().zip(dialect_sources()) {
        let Some(planned) = plan(source.name().as_str(), source.capabilities(), &filter) else { continue };
        let case = FilterCase {
            filter: planned.filter,
            window,
            page_token: page_token.clone(),
            limit,
            position: position.clone(),
        };
        let params = (dialect.ledger_params)(&case);
        assert_eq!(params, (dialect.ledger_params)(&case), "{:?}: translation is not deterministic", dialect.kind);
        assert_survives_a_url(&params);
        let credentials: BTreeMap<_, _> =
            source.credential_fields().iter().map(|f| ((*f).to_owned(), "fuzz".to_owned().into())).collect();
        let credentials = Credentials::new(&key, credentials);
        let residual = planned.residual.clone();
        let request = ScanRequest { filter: case.filter, position: case.position, want, residual, hint: hint.clone() };
        drop(source.scan(&credentials, request));
    }
}

/// Parameters come back from a URL exactly as they went in: no value can
/// inject another parameter.
fn assert_survives_a_url(params: &[(String, String)]) {
    let mut url = Url::parse("http://upstream.invalid/ledger").expect("a valid base");
    url.query_pairs_mut().extend_pairs(params);
    let parsed = Url::parse(url.as_str()).expect("the built URL parses");
    let back: Vec<(String, String)> = parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert_eq!(back, params, "parameters do not survive the URL");
}

/// The schema with every guard and extension, over no upstreams: resolvers
/// answer empty without I/O.
fn fuzz_schema() -> &'static (LedgerSchema, Limits) {
    static SCHEMA: OnceLock<(LedgerSchema, Limits)> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let config = Config::default();
        let registry = Arc::new(Registry::from_config(&config, FingerprintKey::random()).expect("empty registry"));
        (build_schema(registry.clone(), &config), Limits::new(&config))
    })
}

/// Request handling from raw text to response: the first byte picks a POST
/// body, a GET query string or a bare query document. Every error in every
/// response carries a code.
pub fn request(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else { return };
    let (_, limits) = fuzz_schema();
    let decoded = match mode % 3 {
        0 => decode_body(rest, limits),
        1 => decode_query_string(&String::from_utf8_lossy(rest), limits).map(BatchRequest::Single),
        _ => Ok(BatchRequest::Single(Request::new(String::from_utf8_lossy(rest)))),
    };
    execute_decoded(decoded);
}

/// A refusal has a code and a 4xx status; anything decoded is executed and
/// every error in every response carries a code.
fn execute_decoded(decoded: Result<BatchRequest, RequestError>) {
    let (schema, limits) = fuzz_schema();
    let requests = match decoded {
        Ok(BatchRequest::Single(request)) => vec![request],
        Ok(BatchRequest::Batch(requests)) => requests,
        Err(error) => {
            assert!(!error.code().is_empty() && error.status().is_client_error(), "{error:?}");
            return;
        }
    };
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    }
    for mut request in requests {
        let _ = limits.operation_type(&mut request);
        let request = request.data(crate::sources::Caller::default());
        let response = RUNTIME.with(|runtime| runtime.block_on(schema.execute(request)));
        for error in &response.errors {
            let code = error.extensions.as_ref().and_then(|e| e.get("code"));
            assert!(code.is_some(), "error without a code: {error:?}");
        }
        serde_json::to_vec(&response).expect("responses serialize");
    }
}

/// Values a header is seen with: the expected one, its odd spellings, ones
/// to refuse, and raw bytes.
fn header_value(input: &mut Input<'_>, choices: &[&str]) -> Option<axum::http::HeaderValue> {
    let pick = input.below(choices.len() + 2);
    let text = match choices.get(pick) {
        Some(choice) => (*choice).to_owned(),
        None if pick == choices.len() => return None,
        None => input.string(40),
    };
    axum::http::HeaderValue::from_str(&text).ok()
}

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "APPLICATION/JSON; charset=utf-8",
    "application/json;charset=\"utf-8\"",
    "application/graphql-response+json",
    "application/json, text/html",
    " application/json ",
    "application/jsonx",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
];

const CONTENT_CODINGS: &[&str] =
    &["identity", "IDENTITY", " identity , identity", "identity,", "", "gzip", "x-gzip", "deflate, identity", "br"];

/// A document in a shape hostile clients send, sized by the input.
fn hostile_document(input: &mut Input<'_>) -> String {
    let n = input.below(5_000);
    let field =
        ["__typename", "ledgerEntries(first: 500) { edges { node { id sku } } }", "_service { sdl }"][input.below(3)];
    match input.below(5) {
        // One fragment spread over and over.
        0 => format!("fragment F on Query {{ {field} }} query {{ {} }}", "...F ".repeat(n)),
        // Fragments each spreading the next twice: 2^depth spreads expanded.
        1 => {
            let depth = 1 + n % 40;
            let chain: String =
                (0..depth).map(|i| format!("fragment F{i} on Query {{ ...F{} ...F{} }} ", i + 1, i + 1)).collect();
            format!("{chain}fragment F{depth} on Query {{ {field} }} query {{ ...F0 }}")
        }
        // Aliases of one field.
        2 => format!("{{ {} }}", (0..n).map(|i| format!("a{i}: {field}")).collect::<Vec<_>>().join(" ")),
        // Inline fragments nested inside each other.
        3 => format!("{{ {}{field}{} }}", "... on Query { ".repeat(n % 200), " }".repeat(n % 200)),
        _ => input.string(200),
    }
}

/// `text` escaped for JSON in one of several legal (and one illegal) ways.
fn json_string(input: &mut Input<'_>, text: &str) -> String {
    match input.below(3) {
        0 => serde_json::to_string(text).expect("strings serialize"),
        // Every character as a \u escape, surrogate pairs included.
        1 => {
            let escaped: String = text.encode_utf16().map(|unit| format!("\\u{unit:04x}")).collect();
            format!("\"{escaped}\"")
        }
        _ => format!("\"{text}\""),
    }
}

/// `document` as a GET query string: form-encoded, every byte
/// percent-encoded, double-encoded, or raw.
fn query_string(input: &mut Input<'_>, document: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let value = match input.below(4) {
        0 => url::form_urlencoded::byte_serialize(document.as_bytes()).collect(),
        1 => utf8_percent_encode(document, NON_ALPHANUMERIC).to_string(),
        2 => utf8_percent_encode(&utf8_percent_encode(document, NON_ALPHANUMERIC).to_string(), NON_ALPHANUMERIC)
            .to_string(),
        _ => document.to_owned(),
    };
    let extra =
        ["", "&operationName=", "&variables=%7B%7D", "&variables=null", "&query=x", "&%zz=1", "&extensions=%5B"];
    format!("query={value}{}", extra[input.below(extra.len())])
}

/// A POST body of `document`: one request or a batch of copies, with a
/// byte-order mark or padding sometimes.
fn body(input: &mut Input<'_>, document: &str) -> Vec<u8> {
    let one = format!("{{\"query\": {}, \"variables\": {{}}}}", json_string(input, document));
    let text = match input.below(3) {
        0 => one,
        1 => format!("[{}]", vec![one; input.below(13)].join(",")),
        _ => format!("\u{feff}{one}{}", " ".repeat(input.below(64))),
    };
    text.into_bytes()
}

/// The request parser on a request the bytes describe (see the module
/// docs), in the order the server applies it; and the connection guard's
/// head check on a raw head the same bytes describe.
pub fn http(data: &[u8]) {
    if let Some(decoded) = parse_http(data) {
        execute_decoded(decoded);
    }
    raw_head(data);
}

/// Head lines hyper would refuse on its own, and benign neighbours.
const HEAD_LINES: &[&str] = &[
    "Host: gateway",
    "Content-Length: 5",
    "Content-Length: 6",
    "Content-Length: abc",
    "Content-Length: 5, 5",
    "Content-Length: 99999999999999999999",
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: gzip, chunked",
    "Transfer-Encoding: gzip",
    "no colon",
    "X-Padding:  a\tb ",
    "",
];

/// A raw head (request line, lines from `HEAD_LINES` or raw bytes, then a
/// body) through `server::head`: a refusal has a code and a 4xx status; an
/// accepted head ends inside the bytes, and its body tracker follows any
/// bytes without panicking.
fn raw_head(data: &[u8]) {
    use crate::server::head::inspect;
    let mut input = Input::new(data);
    let server = Config::default().server;
    let method = ["GET", "POST", "HEAD", "G T", ""][input.below(5)];
    let target = match input.below(3) {
        0 => "/graphql".to_owned(),
        1 => format!("/{}", "a".repeat(input.below(70_000))),
        _ => input.string(40),
    };
    let version = ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1\r"][input.below(4)];
    let mut head = format!("{method} {target} {version}\r\n");
    for _ in 0..input.below(8) {
        let line = match HEAD_LINES.get(input.below(HEAD_LINES.len() + 1)) {
            Some(line) => (*line).to_owned(),
            None => input.string(40),
        };
        head.push_str(&line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(input.string(200).as_bytes());
    match inspect(&bytes, &server) {
        Err(error) => assert!(!error.code().is_empty() && error.status().is_client_error(), "{error:?}"),
        Ok(None) => {}
        Ok(Some(mut head)) => {
            assert!(head.len <= bytes.len(), "a head past the bytes");
            let rest = &bytes[head.len..];
            assert!(head.body.consume(rest) <= rest.len(), "a body past the bytes");
        }
    }
}

/// What the parser makes of the request the bytes describe; `None` for a
/// request target hyper would not have parsed.
fn parse_http(data: &[u8]) -> Option<Result<BatchRequest, RequestError>> {
    let mut input = Input::new(data);
    let (_, limits) = fuzz_schema();
    let server = Config::default().server;
    let mut headers = axum::http::HeaderMap::new();
    if let Some(value) = header_value(&mut input, CONTENT_TYPES) {
        headers.insert(axum::http::header::CONTENT_TYPE, value);
    }
    for _ in 0..input.below(3) {
        if let Some(value) = header_value(&mut input, CONTENT_CODINGS) {
            headers.append(axum::http::header::CONTENT_ENCODING, value);
        }
    }
    for n in 0..input.below(2 * server.max_headers) {
        headers.insert(
            format!("x-{n}").parse::<axum::http::HeaderName>().expect("a header name"),
            "1".parse().expect("a value"),
        );
    }
    let padding = "a".repeat(input.below(2 * server.max_header_bytes));
    headers.insert("x-padding", padding.parse().expect("ASCII is a header value"));
    let document = hostile_document(&mut input);
    let post = input.bool();
    let target = if post { "/graphql".to_owned() } else { format!("/graphql?{}", query_string(&mut input, &document)) };
    let uri = target.parse::<axum::http::Uri>().ok()?;
    let decoded = check_head(&uri, &headers, &server).and_then(|()| {
        if post {
            check_post_media_type(&headers)?;
            check_content_encoding(&headers)?;
            decode_body(&body(&mut input, &document), limits)
        } else {
            decode_query_string(uri.query().unwrap_or_default(), limits).map(BatchRequest::Single)
        }
    });
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
        let seeds: Vec<Vec<u8>> =
            std::fs::read_dir(&dir).unwrap().map(|entry| std::fs::read(entry.unwrap().path()).unwrap()).collect();
        assert!(!seeds.is_empty(), "{}", dir.display());
        seeds
    }

    #[test]
    fn every_seed_runs_clean_through_its_target() {
        for (name, target) in TARGETS {
            for seed in seeds(name) {
                target(&seed);
            }
        }
    }

    #[test]
    fn the_cursor_seeds_reach_a_decoded_cursor() {
        let filter = LedgerFilter::default().digest();
        for seed in seeds("cursor").iter().filter(|seed| seed.first() == Some(&0)) {
            let text = String::from_utf8_lossy(&seed[1..]);
            assert!(Cursor::decode(&text, &filter).is_ok(), "{text}");
        }
    }

    /// The seeds reach every stage of the parser: each refusal, and
    /// requests that decode (then execute).
    #[test]
    fn the_http_seeds_reach_every_refusal_and_a_decoded_request() {
        let outcomes: BTreeSet<&str> = seeds("http")
            .iter()
            .filter_map(|seed| parse_http(seed))
            .map(|decoded| decoded.map_or_else(|error| error.code(), |_| "decoded"))
            .collect();
        for expected in [
            "decoded",
            "URI_TOO_LONG",
            "HEADERS_TOO_LARGE",
            "UNSUPPORTED_MEDIA_TYPE",
            "UNSUPPORTED_CONTENT_ENCODING",
            "BAD_REQUEST",
            "BATCH_TOO_LARGE",
        ] {
            assert!(outcomes.contains(expected), "{expected} not reached: {outcomes:?}");
        }
    }

    #[test]
    fn inputs_past_their_end_read_as_zero() {
        let mut input = Input::new(&[7]);
        assert_eq!((input.byte(), input.byte(), input.string(10), input.below(5)), (7, 0, String::new(), 0));
    }
}

//! Fault injection for every mock dialect, as one middleware in front of all
//! of them: `POST /__mock/faults` installs a list of rules (replacing any
//! earlier ones), `GET` lists them with how often each matched and fired,
//! `DELETE` (or `POST /__mock/reset`) removes them.
//!
//! A rule picks requests by upstream prefix, route, query parameter and
//! credential, then answers them with a status, a delay, a broken body,
//! extra headers or a redirect. Which matching requests it fires on is
//! deterministic (every n-th, or an exact fraction spread evenly), and
//! `times` retires it after that many firings, so a test can say "a 503,
//! then success" and count calls exactly. Rules are checked in order; the
//! first that fires wins.
//!
//! ```json
//! [{"upstream": "trackstar", "route": "/wms/inventory/ledger", "status": 503, "times": 1},
//!  {"upstream": "trackstar", "status": 429, "headers": {"retry-after": "2"}, "rate": {"every": 10}},
//!  {"upstream": "trackstar", "route": "/wms/*", "body": "truncated", "rate": 0.05}]
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::MockState;

/// One fault rule, as posted to `/__mock/faults`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// The upstream prefix it applies to (`trackstar`, `business-central`...).
    pub upstream: String,
    /// The path below the prefix (`/wms/inventory/ledger`); a trailing `*`
    /// makes it a prefix (`/wms/*`). Unset: every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Only requests that carry this query parameter (`page_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Only requests that carry this credential in a header (a token or a
    /// key, bare or after `Bearer `): one tenant fails, the others do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Answer with this status instead of the real one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Wait this long before answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Which matching requests it fires on; unset: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// `malformed_json`, `html`, `truncated`, `cut`, `oversized`,
    /// `wrong_types`, or any other text to send as the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Headers added to the answer (`retry-after`, `x-ratelimit-remaining`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Answer with a redirect (status 302 unless `status` says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_to: Option<String>,
    /// Fire this many times, then stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
}

/// Which of a rule's matching requests it fires on, deterministically.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Rate {
    /// This fraction of them, spread evenly: with 0.25, the 4th, 8th, 12th...
    Fraction(f64),
    /// Every n-th: the n-th, 2n-th...
    Every { every: u64 },
}

impl Rate {
    /// Whether the `n`-th matching request (1-based) fires.
    fn fires(self, n: u64) -> bool {
        match self {
            Rate::Fraction(p) => ((n as f64) * p).floor() > (((n - 1) as f64) * p).floor(),
            Rate::Every { every } => n % every == 0,
        }
    }
}

/// How a body is broken.
#[derive(Clone, Debug, PartialEq)]
enum BodyFault {
    MalformedJson,
    Html,
    /// The real body cut in half: a complete answer with broken JSON.
    Truncated,
    /// The real body's first half, then the connection drops before the
    /// announced length: what a network fault mid-transfer looks like.
    Cut,
    /// The real body padded past any sensible size cap.
    Oversized,
    /// The real body with every scalar's JSON type swapped.
    WrongTypes,
    Text(String),
}

impl BodyFault {
    fn parse(text: &str) -> Self {
        match text {
            "malformed_json" => BodyFault::MalformedJson,
            "html" => BodyFault::Html,
            "truncated" => BodyFault::Truncated,
            "cut" => BodyFault::Cut,
            "oversized" => BodyFault::Oversized,
            "wrong_types" => BodyFault::WrongTypes,
            other => BodyFault::Text(other.to_owned()),
        }
    }

    /// Whether it changes the real answer rather than replacing it.
    fn needs_real_body(&self) -> bool {
        matches!(self, BodyFault::Truncated | BodyFault::Cut | BodyFault::Oversized | BodyFault::WrongTypes)
    }
}

/// Padding of an `oversized` body: valid JSON whitespace, so only a size
/// cap can be what rejects it.
pub const OVERSIZED_PADDING: usize = 2 * 1024 * 1024;

/// A rule and what it has done so far.
#[derive(Debug, Clone, Serialize)]
pub struct RuleStatus {
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Requests it matched.
    pub matched: u64,
    /// Requests it fired on.
    pub fired: u64,
}

/// The installed rules.
#[derive(Debug, Default)]
pub struct Faults {
    // One lock over all rules: matching and counting are one step, so
    // concurrent requests fire exactly as often as the rules say.
    rules: Mutex<Vec<RuleStatus>>,
}

impl Faults {
    /// Replaces the rules, or says which one is invalid.
    pub fn set(&self, rules: Vec<FaultRule>) -> Result<(), String> {
        for (i, rule) in rules.iter().enumerate() {
            validate(rule).map_err(|message| format!("rule {i}: {message}"))?;
        }
        *self.lock() = rules.into_iter().map(|rule| RuleStatus { rule, matched: 0, fired: 0 }).collect();
        Ok(())
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn status(&self) -> Vec<RuleStatus> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RuleStatus>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rule that fires on this request, if any, counting as it goes.
    fn pick(&self, path: &str, query: &str, headers: &HeaderMap) -> Option<FaultRule> {
        let mut rules = self.lock();
        for status in rules.iter_mut() {
            if !matches(&status.rule, path, query, headers) {
                continue;
            }
            status.matched += 1;
            let spent = status.rule.times.is_some_and(|times| status.fired >= times);
            if !spent && status.rule.rate.is_none_or(|rate| rate.fires(status.matched)) {
                status.fired += 1;
                return Some(status.rule.clone());
            }
        }
        None
    }
}

fn validate(rule: &FaultRule) -> Result<(), String> {
    if let Some(status) = rule.status {
        StatusCode::from_u16(status).map_err(|_| format!("status {status} is not an HTTP status"))?;
    }
    match rule.rate {
        Some(Rate::Fraction(p)) if !(0.0..=1.0).contains(&p) => return Err(format!("rate {p} is not within 0..1")),
        Some(Rate::Every { every: 0 }) => return Err("rate.every must be at least 1".into()),
        _ => {}
    }
    if let Some(target) = &rule.redirect_to {
        HeaderValue::from_str(target).map_err(|_| "redirect_to is not a valid Location".to_owned())?;
    }
    for (name, value) in &rule.headers {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header {name:?} is not a header name"))?;
        HeaderValue::from_str(value).map_err(|_| format!("header {name}: value is not valid"))?;
    }
    Ok(())
}

fn matches(rule: &FaultRule, path: &str, query: &str, headers: &HeaderMap) -> bool {
    let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(rule.upstream.as_str())) else {
        return false;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return false;
    }
    let route = rule.route.as_deref().is_none_or(|route| match route.strip_suffix('*') {
        Some(prefix) => rest.starts_with(prefix),
        None => rest == route,
    });
    let param = rule
        .param
        .as_deref()
        .is_none_or(|param| url::form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == param));
    let credential = rule.credential.as_deref().is_none_or(|credential| {
        headers
            .values()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v == credential || v.strip_prefix("Bearer ") == Some(credential))
    });
    route && param && credential
}

/// The middleware: applies the first rule that fires, or passes through.
pub async fn inject(State(state): State<Arc<MockState>>, request: Request, next: Next) -> Response {
    let uri = request.uri();
    let Some(rule) = state.faults.pick(uri.path(), uri.query().unwrap_or_default(), request.headers()) else {
        return next.run(request).await;
    };
    if let Some(latency) = rule.latency_ms {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let status = rule.status.and_then(|s| StatusCode::from_u16(s).ok());
    let body = rule.body.as_deref().map(BodyFault::parse);
    let mut response = match (&rule.redirect_to, body) {
        (Some(target), _) => {
            let mut response = status.unwrap_or(StatusCode::FOUND).into_response();
            if let Ok(location) = HeaderValue::from_str(target) {
                response.headers_mut().insert(LOCATION, location);
            }
            response
        }
        (None, Some(fault)) if fault.needs_real_body() => {
            break_real_body(next.run(request).await, &fault, status).await
        }
        (None, Some(fault)) => fault_body(status.unwrap_or(StatusCode::OK), &fault),
        (None, None) => match status {
            Some(status) => (status, Json(json!({"error": "injected fault"}))).into_response(),
            None => next.run(request).await,
        },
    };
    for (name, value) in &rule.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn fault_body(status: StatusCode, fault: &BodyFault) -> Response {
    let (content_type, body) = match fault {
        BodyFault::MalformedJson => ("application/json", r#"{"data": [{"id": "led_1", "quantity": 3,, ]"#.to_owned()),
        BodyFault::Html => (
            "text/html; charset=utf-8",
            "<!DOCTYPE html><html><head><title>Service maintenance</title></head>\
             <body><h1>We'll be back soon</h1></body></html>"
                .to_owned(),
        ),
        BodyFault::Text(text) if serde_json::from_str::<Value>(text).is_ok() => ("application/json", text.clone()),
        BodyFault::Text(text) => ("text/plain; charset=utf-8", text.clone()),
        // Only reached without a real body to break.
        BodyFault::Truncated | BodyFault::Cut | BodyFault::Oversized | BodyFault::WrongTypes => {
            ("application/json", String::new())
        }
    };
    (status, [(CONTENT_TYPE, content_type)], body).into_response()
}

/// The real answer, broken as `fault` says (and with `status`, if given).
async fn break_real_body(response: Response, fault: &BodyFault, status: Option<StatusCode>) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    if let Some(status) = status {
        parts.status = status;
    }
    if *fault == BodyFault::Cut {
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        return Response::from_parts(parts, cut_off(bytes));
    }
    let broken: Bytes = match fault {
        BodyFault::Truncated => bytes.slice(..bytes.len() / 2),
        BodyFault::Oversized => {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len() + OVERSIZED_PADDING, b' ');
            padded.into()
        }
        BodyFault::WrongTypes => match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => serde_json::to_vec(&swap_types(value)).unwrap_or_default().into(),
            Err(_) => bytes,
        },
        _ => bytes,
    };
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(broken))
}

/// `body` announced whole but only half sent before the stream fails, so
/// the server drops the connection mid-body. The pause lets the headers and
/// the half go out first: failing at once would drop them unsent.
fn cut_off(body: Bytes) -> Body {
    let half = futures::stream::iter([Ok(body.slice(..body.len() / 2))]);
    let failure = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(std::io::Error::other("connection cut by a fault rule"))
    });
    Body::from_stream(half.chain(failure))
}

/// Every scalar in the wrong JSON type: strings become numbers, numbers and
/// booleans become strings. Arrays and objects keep their shape.
fn swap_types(value: Value) -> Value {
    match value {
        Value::String(text) => json!(text.len()),
        Value::Number(number) => Value::String(number.to_string()),
        Value::Bool(flag) => Value::String(flag.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(swap_types).collect()),
        Value::Object(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, swap_types(v))).collect()),
        Value::Null => Value::Null,
    }
}

pub async fn install(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let rules: Vec<FaultRule> = match serde_json::from_slice(&body) {
        Ok(rules) => rules,
        Err(error) => return (StatusCode::BAD_REQUEST, Json(json!({"error": error.to_string()}))).into_response(),
    };
    match state.faults.set(rules) {
        Ok(()) => Json(state.faults.status()).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response(),
    }
}

pub async fn list(State(state): State<Arc<MockState>>) -> Json<Vec<RuleStatus>> {
    Json(state.faults.status())
}

pub async fn clear(State(state): State<Arc<MockState>>) -> Json<Vec<RuleStatus>> {
    state.faults.clear();
    Json(state.faults.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: Value) -> FaultRule {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn rates_fire_deterministically() {
        let fired = |rate: Rate| (1..=12).filter(|n| rate.fires(*n)).collect::<Vec<u64>>();
        assert_eq!(fired(Rate::Every { every: 3 }), [3, 6, 9, 12]);
        assert_eq!(fired(Rate::Fraction(0.25)), [4, 8, 12]);
        assert_eq!(fired(Rate::Fraction(0.5)), [2, 4, 6, 8, 10, 12]);
        assert_eq!(fired(Rate::Fraction(1.0)).len(), 12);
        assert!(fired(Rate::Fraction(0.0)).is_empty());
        assert_eq!((1..=1000).filter(|n| Rate::Fraction(0.1).fires(*n)).count(), 100);
    }

    #[test]
    fn rules_match_by_upstream_route_param_and_credential() {
        let headers: HeaderMap =
            [(HeaderName::from_static("authorization"), HeaderValue::from_static("Bearer tok"))].into_iter().collect();
        let none = HeaderMap::new();
        let exact = rule(json!({"upstream": "trackstar", "route": "/wms/inventory"}));
        assert!(matches(&exact, "/trackstar/wms/inventory", "", &none));
        assert!(!matches(&exact, "/trackstar/wms/inventory/ledger", "", &none));
        assert!(!matches(&exact, "/trackstarx/wms/inventory", "", &none));
        let prefix = rule(json!({"upstream": "trackstar", "route": "/wms/*", "param": "page_token"}));
        assert!(matches(&prefix, "/trackstar/wms/inventory/ledger", "limit=5&page_token=abc", &none));
        assert!(!matches(&prefix, "/trackstar/wms/inventory/ledger", "limit=5", &none));
        let tenant = rule(json!({"upstream": "pennylane", "credential": "tok"}));
        assert!(matches(&tenant, "/pennylane/ledger_entries", "", &headers));
        assert!(!matches(&tenant, "/pennylane/ledger_entries", "", &none));
    }

    #[test]
    fn times_retire_a_rule_and_later_rules_still_apply() {
        let faults = Faults::default();
        faults
            .set(vec![
                rule(json!({"upstream": "t", "status": 503, "times": 2, "rate": {"every": 2}})),
                rule(json!({"upstream": "t", "status": 500})),
            ])
            .unwrap();
        let statuses: Vec<Option<u16>> =
            (0..6).map(|_| faults.pick("/t/x", "", &HeaderMap::new()).and_then(|r| r.status)).collect();
        assert_eq!(statuses, [Some(500), Some(503), Some(500), Some(503), Some(500), Some(500)]);
        let status = faults.status();
        assert_eq!((status[0].matched, status[0].fired), (6, 2));
        assert_eq!((status[1].matched, status[1].fired), (4, 4));
    }

    #[test]
    fn invalid_rules_are_refused_with_their_index() {
        let faults = Faults::default();
        for (bad, message) in [
            (json!({"upstream": "t", "status": 1000}), "rule 1: status 1000 is not an HTTP status"),
            (json!({"upstream": "t", "rate": 1.5}), "rule 1: rate 1.5 is not within 0..1"),
            (json!({"upstream": "t", "rate": {"every": 0}}), "rule 1: rate.every must be at least 1"),
            (
                json!({"upstream": "t", "headers": {"bad name": "x"}}),
                "rule 1: header \"bad name\" is not a header name",
            ),
        ] {
            let error = faults.set(vec![rule(json!({"upstream": "t"})), rule(bad)]).unwrap_err();
            assert_eq!(error, message);
        }
        assert!(faults.status().is_empty(), "nothing installed");
    }

    #[test]
    fn wrong_types_swaps_every_scalar() {
        let swapped = swap_types(json!({"id": "abc", "n": 5, "ok": true, "list": [1, "x"], "none": null}));
        assert_eq!(swapped, json!({"id": 3, "n": "5", "ok": "true", "list": ["1", 1], "none": null}));
    }
}

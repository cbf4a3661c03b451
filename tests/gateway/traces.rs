//! Traces: the binary exports its spans over OTLP/HTTP to a collector on
//! loopback (decoded here with the OTLP protobuf types), continues the
//! caller's `traceparent`, and sends one on every upstream call. The spans
//! are read after the process exits: what arrives was flushed on shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use ledger_gateway::mock::trackstar;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Attribute;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};

use crate::cli::{config_file, gateway, Running, WAIT};
use crate::helpers::spawn_app;
use crate::lifecycle::{config_for, start_mock};

/// Every export the collector received.
type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

async fn collector() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            post(|State(received): State<Received>, body: Bytes| async move {
                received.lock().unwrap().push(ExportTraceServiceRequest::decode(body).expect("OTLP protobuf"));
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<Value> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match value {
        Attribute::StringValue(s) => json!(s),
        Attribute::BoolValue(b) => json!(b),
        Attribute::IntValue(i) => json!(i),
        Attribute::DoubleValue(d) => json!(d),
        other => json!(format!("{other:?}")),
    })
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

// Several threads: the collector must answer while this one waits for the
// child to exit.
#[tokio::test(flavor = "multi_thread")]
async fn spans_are_exported_as_one_tree_under_the_callers_trace_and_upstreams_get_its_traceparent() {
    let (endpoint, received) = collector().await;
    let mock = start_mock().await;
    let otlp = format!("[telemetry.otlp]\nendpoint = \"{endpoint}\"\nservice_name = \"gateway-under-test\"");
    let file = config_file(
        "traces_export",
        &config_for(&mock, trackstar::API_KEY, "").replace("[sources", &format!("{otlp}\n[sources")),
    );
    let mut gateway = Running::start(gateway(&["serve", "--config", &file], &[]));
    let addr = gateway.listening_addr();
    let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let query = "query TracedEntries { ledgerEntries(first: 2) { nodes { id item { name } } } }";
    let body: Value = client
        .post(format!("http://{addr}/graphql"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({"query": query, "operationName": "TracedEntries"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["errors"].is_null(), "{body}");
    gateway.signal("TERM");
    let (code, log) = gateway.wait_exit();
    assert_eq!(code, Some(0), "{log:#?}");

    let exports = received.lock().unwrap().clone();
    assert!(!exports.is_empty(), "nothing exported:\n{}", log.join("\n"));
    let resource_spans: Vec<_> = exports.iter().flat_map(|e| &e.resource_spans).collect();
    let service = resource_spans[0].resource.as_ref().unwrap().attributes.iter().find(|kv| kv.key == "service.name");
    assert_eq!(
        service.and_then(|kv| kv.value.as_ref()?.value.clone()),
        Some(Attribute::StringValue("gateway-under-test".into()))
    );
    let spans: Vec<&Span> = resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
    assert!(spans.iter().all(|span| hex(&span.trace_id) == CALLER_TRACE), "one trace, the caller's");
    let by_id: HashMap<String, &Span> = spans.iter().map(|span| (hex(&span.span_id), *span)).collect();
    let named = |name: &str| spans.iter().copied().filter(|s| s.name == name).collect::<Vec<_>>();
    let parent = |span: &Span| by_id.get(&hex(&span.parent_span_id)).copied();

    let [request] = named("query TracedEntries")[..] else { panic!("one request span: {spans:#?}") };
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN, "the caller's span is the parent");
    assert_eq!(attribute(request, "graphql.operation.name"), Some(json!("TracedEntries")));
    assert_eq!(attribute(request, "graphql.operation.type"), Some(json!("query")));

    let [read] = named("source.read")[..] else { panic!("one source read: {spans:#?}") };
    assert_eq!(parent(read).map(|s| &s.name), Some(&request.name));
    assert_eq!((attribute(read, "source"), attribute(read, "read")), (Some(json!("wms")), Some(json!("ledger_page"))));

    let calls = named("ledger");
    assert!(!calls.is_empty(), "{spans:#?}");
    for call in &calls {
        assert_eq!(parent(call).map(|s| s.span_id.clone()), Some(read.span_id.clone()));
        assert_eq!(attribute(call, "source"), Some(json!("wms")));
        assert_eq!(attribute(call, "route"), Some(json!("ledger")));
        assert_eq!(attribute(call, "http.response.status_code"), Some(json!(200)));
        assert_eq!((attribute(call, "attempt"), attribute(call, "cache_hit")), (Some(json!(1)), Some(json!(false))));
    }
    let [batch] = named("entity.batch")[..] else { panic!("one item batch: {spans:#?}") };
    assert_eq!(parent(batch).map(|s| &s.name), Some(&request.name));
    assert_eq!(attribute(batch, "entity"), Some(json!("item")));
    let item_calls: Vec<_> = spans.iter().filter(|s| parent(s).is_some_and(|p| p.span_id == batch.span_id)).collect();
    assert!(!item_calls.is_empty(), "the batch's upstream calls hang under it: {spans:#?}");

    // Each upstream request carried the trace and its own call's span id.
    let requests = mock.state.requests();
    assert_eq!(requests.len(), calls.len() + item_calls.len(), "{requests:#?}");
    for recorded in requests {
        let traceparent = recorded.traceparent.unwrap_or_else(|| panic!("{} had no traceparent", recorded.path));
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!((parts[0], parts[1], parts[3]), ("00", CALLER_TRACE, "01"), "{traceparent}");
        let call = by_id.get(parts[2]).unwrap_or_else(|| panic!("{traceparent}: no such span"));
        assert_eq!(call.kind, opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client as i32);
    }
}

#[tokio::test]
async fn without_an_exporter_upstream_calls_carry_no_traceparent() {
    let app = spawn_app().await;
    let body = app
        .query_with_headers(
            "{ ledgerEntries(first: 2) { nodes { id } } }",
            json!({}),
            &[("traceparent", &format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))],
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let requests = app.mock.state.requests();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| r.traceparent.is_none()), "{requests:#?}");
}

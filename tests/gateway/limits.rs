//! Hostile input: every limit refuses with its code before any upstream
//! call, nothing internal leaks, and the server survives payloads built to
//! exhaust its stack.

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
use ledger_gateway::config::Config;
use ledger_gateway::server::persisted::PersistedQueries;
use ledger_gateway::sources::Registry;
use ledger_gateway::upstream::FingerprintKey;
use reqwest::header::{ACCEPT, ALLOW, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{error_codes, operation, small_data, spawn_app, spawn_app_with, TestApp};

/// Upstream requests of every kind since the last reset.
async fn upstream_calls(app: &TestApp) -> u64 {
    app.stats().await["total"].as_u64().unwrap()
}

/// Nothing in a response that only the server should know.
fn assert_no_leaks(text: &str) {
    let secrets = [ledger_gateway::mock::trackstar::API_KEY, ledger_gateway::mock::trackstar::ACCESS_TOKEN];
    let internals = ["127.0.0.1", "line 1 column", "panicked", "src/", "Did you mean", "recursion limit", "stack"];
    for needle in secrets.iter().chain(&internals) {
        assert!(!text.contains(needle), "response leaks {needle:?}: {}", &text[..text.len().min(2000)]);
    }
}

/// The one error code of a refused request, checking that nothing ran:
/// no data, no leak.
fn refused_with(body: &Value) -> String {
    let codes = error_codes(body);
    assert_eq!(codes.len(), 1, "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert_no_leaks(&body.to_string());
    codes[0].clone()
}

async fn post_raw(app: &TestApp, content_type: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.url))
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_no_leaks(&text);
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
}

async fn get_graphql(app: &TestApp, params: &[(&str, &str)]) -> reqwest::Response {
    app.client.get(format!("{}/graphql", app.url)).query(params).send().await.unwrap()
}

/// Proves the server still answers after a hostile request.
async fn assert_still_serving(app: &TestApp) {
    let body = app.query("{ __typename }", json!({})).await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

/// One page's selection: 18 per entry in complexity (edges 1 + cursor 1 +
/// node 1 + 12 fields, pageInfo 1 + 2).
const PAGE_FIELDS: &str = "edges { cursor node { id source nativeId entryDate updatedAt eventType rawEventType quantity sku itemId warehouseId locationId } } pageInfo { hasNextPage endCursor }";

#[tokio::test]
async fn fields_nested_deeper_than_max_depth_are_refused_before_any_upstream_call() {
    let app = spawn_app_with(small_data(), |config| config.limits.max_depth = 4).await;
    app.reset_stats().await;
    let five = "{ ledgerEntries(first: 1) { edges { node { amounts { cost } } } } }";
    assert_eq!(refused_with(&app.query(five, json!({})).await), "QUERY_TOO_DEEP");
    // Through fragments the depth is the same: they are expanded.
    let via_fragments = "{ ledgerEntries(first: 1) { ...E } }
        fragment E on LedgerEntryConnection { edges { node { ...N } } }
        fragment N on LedgerEntry { amounts { cost } }";
    assert_eq!(refused_with(&app.query(via_fragments, json!({})).await), "QUERY_TOO_DEEP");
    assert_eq!(upstream_calls(&app).await, 0);
    let four = "{ ledgerEntries(first: 1) { edges { node { id } } } }";
    assert!(app.query(four, json!({})).await["errors"].is_null());
}

#[tokio::test]
async fn selection_sets_nested_thousands_deep_are_refused_before_parsing() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let depth = 32 * 1024;
    let query = format!("{}a{}", "{a".repeat(depth), "}".repeat(depth));
    assert_eq!(refused_with(&app.query(&query, json!({})).await), "QUERY_TOO_DEEP");
    assert_eq!(upstream_calls(&app).await, 0);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn complexity_multiplies_children_by_first() {
    let app = spawn_app().await;
    app.reset_stats().await;
    // Three aliased pages of 500: 3 x (500 x 18 + 1), over the default 20 000.
    let query = format!(
        "query Q($n: Int) {{ a: ledgerEntries(first: $n) {{ {PAGE_FIELDS} }} b: ledgerEntries(first: $n) {{ {PAGE_FIELDS} }} c: ledgerEntries(first: $n) {{ {PAGE_FIELDS} }} }}"
    );
    let body = app.query(&query, json!({"n": 500})).await;
    assert_eq!(refused_with(&body), "QUERY_TOO_COMPLEX");
    assert_eq!(body["errors"][0]["message"], "query is too complex: complexity 27003, at most 20000");
    assert_eq!(upstream_calls(&app).await, 0);
    // The same document with small pages is cheap.
    let body = app.query(&query, json!({"n": 5})).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn nested_pages_cost_their_first_once_per_looked_up_id() {
    let app = spawn_app().await;
    app.reset_stats().await;
    // 3 ids x (500 x 18 + 1) for the items' own pages: over 20 000, refused
    // before the items are looked up; with one id the same page is allowed.
    for (field, ids) in [
        ("items", "[\"trackstar:a\", \"trackstar:b\", \"trackstar:c\"]"),
        ("locations", "[\"trackstar:w/a\", \"trackstar:w/b\", \"trackstar:w/c\"]"),
    ] {
        let query = format!("{{ {field}(ids: {ids}) {{ ledgerEntries(first: 500) {{ {PAGE_FIELDS} }} }} }}");
        let body = app.query(&query, json!({})).await;
        assert_eq!(refused_with(&body), "QUERY_TOO_COMPLEX", "{field}");
        assert_eq!(body["errors"][0]["message"], "query is too complex: complexity 27004, at most 20000", "{field}");
    }
    assert_eq!(upstream_calls(&app).await, 0);
    let body = app
        .query(
            &format!("{{ items(ids: [\"trackstar:a\"]) {{ ledgerEntries(first: 500) {{ {PAGE_FIELDS} }} }} }}"),
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn a_full_page_at_max_page_size_fits_the_default_complexity() {
    let app = spawn_app().await;
    let body = app.query(&operation("LedgerPage"), json!({"first": 500})).await;
    assert!(body["errors"].is_null(), "{}", &body.to_string()[..500]);
    // The demo's four sources hold more than 500 entries: the page is full.
    assert_eq!(body["data"]["ledgerEntries"]["edges"].as_array().unwrap().len(), 500);
}

#[tokio::test]
async fn aliases_beyond_the_limit_are_refused_counting_fragment_spreads() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let aliases: String = (0..31).map(|i| format!("a{i}: id ")).collect();
    let query = format!("{{ ledgerEntries(first: 1) {{ edges {{ node {{ {aliases} }} }} }} }}");
    assert_eq!(refused_with(&app.query(&query, json!({})).await), "TOO_MANY_ALIASES");
    // 16 aliases in a fragment spread twice are 32.
    let sixteen: String = (0..16).map(|i| format!("a{i}: id ")).collect();
    let query = format!(
        "{{ ledgerEntries(first: 1) {{ edges {{ node {{ ...A }} }} nodes {{ ...A }} }} }} fragment A on LedgerEntry {{ {sixteen} }}"
    );
    assert_eq!(refused_with(&app.query(&query, json!({})).await), "TOO_MANY_ALIASES");
    assert_eq!(upstream_calls(&app).await, 0);
}

#[tokio::test]
async fn root_fields_beyond_the_limit_are_refused() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let query = format!("{{ {} }}", "__typename ".repeat(11));
    assert_eq!(refused_with(&app.query(&query, json!({})).await), "TOO_MANY_ROOT_FIELDS");
    let spread = "{ ledgerEntries(first: 1) { nodes { id } } ...R ...R } fragment R on Query { __typename ledgerEntry(id: \"trackstar:x\") { id } a: __typename b: __typename c: __typename }";
    assert_eq!(refused_with(&app.query(spread, json!({})).await), "TOO_MANY_ROOT_FIELDS");
    assert_eq!(upstream_calls(&app).await, 0);
    let ten = format!("{{ {} }}", "__typename ".repeat(10));
    assert!(app.query(&ten, json!({})).await["errors"].is_null());
}

#[tokio::test]
async fn directives_beyond_the_limit_are_refused() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let ids = "id @include(if: true) ".repeat(51);
    let query = format!("{{ ledgerEntries(first: 1) {{ nodes {{ {ids} }} }} }}");
    assert_eq!(refused_with(&app.query(&query, json!({})).await), "TOO_MANY_DIRECTIVES");
    assert_eq!(upstream_calls(&app).await, 0);
}

#[tokio::test]
async fn documents_with_too_many_tokens_are_refused_before_parsing() {
    let app = spawn_app_with(small_data(), |config| config.limits.max_tokens = 100).await;
    app.reset_stats().await;
    let query = format!("{{ ledgerEntries(first: 1) {{ nodes {{ {} }} }} }}", "id ".repeat(100));
    let body = app.query(&query, json!({})).await;
    assert_eq!(refused_with(&body), "TOO_MANY_TOKENS");
    assert_eq!(upstream_calls(&app).await, 0);
    // Comments and strings are not tokens of structure: one each.
    let commented = format!("# {}\n{{ ledgerEntry(id: \"{}\") {{ id }} }}", "x ".repeat(500), "y ".repeat(500));
    assert_ne!(error_codes(&app.query(&commented, json!({})).await), ["TOO_MANY_TOKENS"]);
}

#[tokio::test]
async fn batches_beyond_the_configured_limit_are_refused() {
    let app = spawn_app_with(small_data(), |config| config.limits.max_batch = 2).await;
    app.reset_stats().await;
    let one = json!({"query": "{ ledgerEntries(first: 1) { nodes { id } } }"});
    let (status, body) = post_raw(&app, "application/json", json!([one, one, one]).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused_with(&body), "BATCH_TOO_LARGE");
    let (status, body) = post_raw(&app, "application/json", "[]").await;
    assert_eq!((status, refused_with(&body).as_str()), (StatusCode::BAD_REQUEST, "BAD_REQUEST"));
    assert_eq!(upstream_calls(&app).await, 0);
    let (status, body) = post_raw(&app, "application/json", json!([one, one]).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn entity_representations_beyond_the_limit_are_refused() {
    let app = spawn_app_with(small_data(), |config| config.limits.max_representations = 3).await;
    app.reset_stats().await;
    let representation = json!({"__typename": "LedgerEntry", "id": "trackstar:led_1"});
    let query = "query ($r: [_Any!]!) { _entities(representations: $r) { ... on LedgerEntry { id } } }";
    let body = app.query(query, json!({"r": vec![representation.clone(); 4]})).await;
    assert_eq!(refused_with(&body), "TOO_MANY_REPRESENTATIONS");
    let inline = format!(
        "{{ _entities(representations: [{}]) {{ __typename }} }}",
        ["{__typename: \"LedgerEntry\", id: \"trackstar:led_1\"}"; 4].join(", ")
    );
    assert_eq!(refused_with(&app.query(&inline, json!({})).await), "TOO_MANY_REPRESENTATIONS");
    // Aliases cannot split one request's representations across fields.
    let split = "query ($r: [_Any!]!) { a: _entities(representations: $r) { __typename } b: _entities(representations: $r) { __typename } }";
    let body = app.query(split, json!({"r": vec![representation.clone(); 2]})).await;
    assert_eq!(refused_with(&body), "TOO_MANY_REPRESENTATIONS");
    assert_eq!(upstream_calls(&app).await, 0);
    let body = app.query(query, json!({"r": vec![representation; 3]})).await;
    assert!(!error_codes(&body).contains(&"TOO_MANY_REPRESENTATIONS".to_owned()), "{body}");
}

/// Sends `head` and then `chunks` of a chunked body without ever ending it,
/// and returns the status line and body of the response.
async fn send_unfinished_request(app: &TestApp, head: &str, chunks: usize) -> (String, String) {
    let addr = app.url.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = head.to_owned();
    // Writes in the background: the server may answer (and close) mid-body.
    let writer_task = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = format!("400\r\n{}\r\n", "[".repeat(0x400));
        for _ in 0..chunks {
            writer.write_all(chunk.as_bytes()).await?;
        }
        // Never the final `0\r\n\r\n`: the body stays unfinished.
        writer.flush().await?;
        Ok::<_, std::io::Error>(writer)
    });
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    // The answer is complete once the JSON error object has closed; a
    // server that waits for the end of the body never sends it.
    let answered = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !String::from_utf8_lossy(&response).trim_end().ends_with("]}") {
            let read = reader.read(&mut buffer).await.unwrap();
            assert!(read > 0, "connection closed without an answer: {}", String::from_utf8_lossy(&response));
            response.extend_from_slice(&buffer[..read]);
        }
    })
    .await;
    assert!(answered.is_ok(), "no answer before the body ended");
    drop(writer_task);
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_while_they_stream_in() {
    let app = spawn_app_with(small_data(), |config| config.limits.max_body_bytes = 16 * 1024).await;
    app.reset_stats().await;
    // Chunked, no Content-Length, never finished: only a limit enforced
    // while reading can answer this.
    let head = "POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (status, body) = send_unfinished_request(&app, head, 64).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    assert!(body.contains("PAYLOAD_TOO_LARGE"), "{body}");
    assert_no_leaks(&body);
    // A declared length over the limit is refused before any of it is read.
    let head = "POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n";
    let (status, body) = send_unfinished_request(&app, head, 0).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    assert!(body.contains("PAYLOAD_TOO_LARGE"), "{body}");
    assert_eq!(upstream_calls(&app).await, 0);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn deeply_nested_argument_values_are_refused_before_parsing_and_the_server_survives() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let depth = 32 * 1024;
    let lists = format!(
        "{{ ledgerEntries(filter: {{skus: {}\"x\"{}}}) {{ nodes {{ id }} }} }}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let objects = format!(
        "{{ ledgerEntries(filter: {}{}) {{ nodes {{ id }} }} }}",
        "{a:".repeat(depth / 2),
        "}".repeat(depth / 2)
    );
    let list_type = format!("query ($v: {}Int{}) {{ __typename }}", "[".repeat(depth), "]".repeat(depth));
    for query in [lists, objects, list_type] {
        assert!(query.len() >= 64 * 1024);
        assert_eq!(refused_with(&app.query(&query, json!({})).await), "INPUT_TOO_DEEP");
    }
    // URLs stop at `server.max_uri_bytes` (16 KiB), so GET gets a shallower
    // (still fatal) nesting.
    let query = format!(
        "{{ ledgerEntries(filter: {{skus: {}\"x\"{}}}) {{ nodes {{ id }} }} }}",
        "[".repeat(2500),
        "]".repeat(2500)
    );
    let response = get_graphql(&app, &[("query", &query)]).await;
    assert_eq!(refused_with(&response.json().await.unwrap()), "INPUT_TOO_DEEP");
    assert_eq!(upstream_calls(&app).await, 0);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn deeply_nested_variables_are_refused_and_the_server_survives() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let query = "query ($f: LedgerEntryFilter) { ledgerEntries(filter: $f) { nodes { id } } }";
    let depth = 32 * 1024;
    let variables = format!("{{\"f\": {}1{}}}", "[".repeat(depth), "]".repeat(depth));
    let body = format!("{{\"query\": {}, \"variables\": {variables}}}", json!(query));
    let (status, response) = post_raw(&app, "application/json", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused_with(&response), "INPUT_TOO_DEEP");
    let shallower = format!("{{\"f\": {}1{}}}", "[".repeat(2500), "]".repeat(2500));
    let response = get_graphql(&app, &[("query", query), ("variables", &shallower)]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused_with(&response.json().await.unwrap()), "INPUT_TOO_DEEP");
    // Just past max_input_depth (16): `f` is 17 deep, the body 19, so the
    // body scan lets it through and the variables check refuses it.
    let mut lists = json!("x");
    for _ in 0..16 {
        lists = json!([lists]);
    }
    let response = app.query(query, json!({"f": {"skus": lists}})).await;
    assert_eq!(refused_with(&response), "INPUT_TOO_DEEP");
    assert_eq!(upstream_calls(&app).await, 0);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn get_never_runs_a_mutation() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let response = app
        .client
        .get(format!("{}/graphql", app.url))
        .query(&[("query", "mutation { deleteEverything }")])
        .header(CONTENT_TYPE, "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[ALLOW], "POST");
    assert_eq!(refused_with(&response.json().await.unwrap()), "METHOD_NOT_ALLOWED");
    // The operation that would run decides, not the first one.
    let document = "query Q { __typename } mutation M { deleteEverything }";
    let response = get_graphql(&app, &[("query", document), ("operationName", "M")]).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = get_graphql(&app, &[("query", "subscription { ticks }")]).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(upstream_calls(&app).await, 0);
    // Selecting the query is allowed over GET; the document as a whole is
    // then validated, and this schema has no mutations.
    let response = get_graphql(&app, &[("query", document), ("operationName", "Q")]).await;
    let body: Value = response.json().await.unwrap();
    assert!(body["data"].is_null(), "{body}");
    assert!(error_codes(&body).iter().all(|code| code == "GRAPHQL_VALIDATION_FAILED"), "{body}");
    assert_eq!(upstream_calls(&app).await, 0);
}

#[tokio::test]
async fn cross_site_requests_cannot_execute() {
    let app = spawn_app().await;
    app.reset_stats().await;
    // A page can POST these without a preflight; none of them executes.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let (status, body) = post_raw(&app, content_type, json!({"query": "{ __typename }"}).to_string()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}");
        assert_eq!(refused_with(&body), "UNSUPPORTED_MEDIA_TYPE");
    }
    // The preflight a JSON POST needs is never granted.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.url))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(!preflight.status().is_success());
    assert!(preflight.headers().get("access-control-allow-origin").is_none());
    assert_eq!(upstream_calls(&app).await, 0);
}

#[tokio::test]
async fn with_introspection_off_suggestions_do_not_leak_field_names() {
    let typo = "{ ledgerEntrie { nodes { id } } }";
    let open = spawn_app().await;
    let body = open.query(typo, json!({})).await;
    assert!(body.to_string().contains("Did you mean"), "suggestions are on by default: {body}");
    let closed = spawn_app_with(small_data(), |config| config.server.introspection = false).await;
    let body = closed.query(typo, json!({})).await;
    assert_eq!(refused_with(&body), "GRAPHQL_VALIDATION_FAILED");
    assert!(!body.to_string().contains("ledgerEntries"), "{body}");
}

#[tokio::test]
async fn with_introspection_off_the_schema_and_sdl_need_their_switch() {
    let app = spawn_app_with(small_data(), |config| config.server.introspection = false).await;
    app.reset_stats().await;
    for query in
        ["{ __schema { types { name } } }", "{ __type(name: \"LedgerEntry\") { name } }", "{ _service { sdl } }"]
    {
        let body = app.query(query, json!({})).await;
        assert_eq!(refused_with(&body), "INTROSPECTION_DISABLED", "{query}");
    }
    assert_eq!(upstream_calls(&app).await, 0);

    let router = spawn_app_with(small_data(), |config| {
        config.server.introspection = false;
        config.server.federation_sdl = true;
    })
    .await;
    let body = router.query("{ _service { sdl } }", json!({})).await;
    assert!(body["data"]["_service"]["sdl"].as_str().unwrap().contains("ledgerEntries"), "{body}");
    let body = router.query("{ __schema { types { name } } }", json!({})).await;
    assert_eq!(refused_with(&body), "INTROSPECTION_DISABLED");
}

#[tokio::test]
async fn graphiqls_introspection_query_fits_the_default_limits() {
    let app = spawn_app().await;
    let body = app.query(&operation("IntrospectionQuery"), json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(body["data"]["__schema"]["types"].as_array().unwrap().len() > 10);
}

#[tokio::test]
async fn malformed_requests_get_fixed_messages_that_echo_nothing() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let marker = "sekrit-marker";
    let bodies = [
        format!("{{\"query\": \"{{ __typename }}\", \"variables\": {{\"{marker}\": tru}}}}"),
        format!("{{\"query\": 5, \"operationName\": \"{marker}\"}}"),
        format!("[\"{marker}\"]"),
        format!("\"{marker}\""),
    ];
    for body in bodies {
        let (status, response) = post_raw(&app, "application/json", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(refused_with(&response), "BAD_REQUEST");
        assert_eq!(response["errors"][0]["message"], "request body is not a GraphQL JSON request");
        assert!(!response.to_string().contains(marker));
    }
    let response = get_graphql(&app, &[("query", "{ __typename }"), ("variables", &format!("{{\"{marker}\""))]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = response.text().await.unwrap();
    assert!(text.contains("BAD_REQUEST") && !text.contains(marker), "{text}");
    assert_no_leaks(&text);
    // A huge unparsable document: the reason and position, not the document.
    let query = format!("{{ ledgerEntry(id: \"{}\" {{ id }} }}", marker.repeat(5000));
    let body = app.query(&query, json!({})).await;
    assert_eq!(refused_with(&body), "GRAPHQL_PARSE_FAILED");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.len() < 300 && !message.contains(marker), "{message}");
    assert!(body["errors"][0]["locations"].is_array());
    assert_eq!(upstream_calls(&app).await, 0);
}

#[tokio::test]
async fn refusals_are_400_for_graphql_response_clients() {
    let app = spawn_app_with(small_data(), |config| config.limits.max_root_fields = 1).await;
    let response = app
        .client
        .post(format!("{}/graphql", app.url))
        .header(ACCEPT, "application/graphql-response+json")
        .json(&json!({"query": "{ a: __typename b: __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused_with(&response.json().await.unwrap()), "TOO_MANY_ROOT_FIELDS");
}

/// A schema whose resolver has a bug, mounted behind the gateway's real
/// HTTP handling (`server::router` takes any schema).
struct BuggyQuery;

#[Object]
impl BuggyQuery {
    /// A realistic bug: trusting an upstream body to hold a number.
    async fn boom(&self) -> i32 {
        let body = "upstream-body-secret";
        body.parse().unwrap_or_else(|_| panic!("resolver bug holding {body}"))
    }

    async fn fine(&self) -> i32 {
        1
    }
}

#[tokio::test]
async fn a_panicking_resolver_fails_only_its_own_request() {
    let mock = ledger_gateway::mock::Mock::start_on(([127, 0, 0, 1], 0).into(), small_data()).await.unwrap();
    let config = Config { sources: mock.sources_config(), ..Config::default() };
    let registry = Arc::new(Registry::from_config(&config, FingerprintKey::random()).unwrap());
    let schema = Schema::new(BuggyQuery, EmptyMutation, EmptySubscription);
    let persisted = PersistedQueries::new(&config.server.persisted_queries).unwrap();
    let app = ledger_gateway::server::router(schema, registry, persisted, &config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    let server_config = config.server.clone();
    let server = tokio::spawn(async move {
        ledger_gateway::server::listen::serve(listener, app, &server_config, std::future::pending()).await
    });
    let client = reqwest::Client::new();

    let response = client.post(&url).json(&json!({"query": "{ boom }"})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = response.text().await.unwrap();
    assert!(!text.contains("upstream-body-secret"), "{text}");
    assert_no_leaks(&text);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error_codes(&body), ["INTERNAL"]);

    // The same connection pool, the same server: everyone else is served.
    for _ in 0..3 {
        let body: Value =
            client.post(&url).json(&json!({"query": "{ fine }"})).send().await.unwrap().json().await.unwrap();
        assert_eq!(body["data"]["fine"], 1);
    }
    assert!(!server.is_finished());
    server.abort();
}

/// The last instant GraphQL's `DateTime` (and a cursor) can name.
const END_OF_TIME: &str = "+262142-12-31T23:59:59.999999999Z";

#[tokio::test]
async fn dates_beyond_four_digit_years_are_bad_input() {
    let app = spawn_app().await;
    app.reset_stats().await;
    for (field, bound) in [("entryDate", "lte"), ("entryDate", "gt"), ("updatedAt", "lt")] {
        let filter = json!({field: {bound: END_OF_TIME}});
        let body = app.query(&operation("LedgerPage"), json!({"first": 3, "filter": filter})).await;
        assert_eq!(refused_with(&body), "BAD_USER_INPUT", "{field}.{bound}");
    }
    assert_eq!(upstream_calls(&app).await, 0);
}

#[tokio::test]
async fn a_far_future_bound_costs_no_extra_upstream_calls() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let unbounded = app.query(&operation("LedgerPage"), json!({"first": 5})).await;
    let plain_calls = app.calls_to("trackstar").await;
    app.reset_stats().await;
    let filter = json!({"entryDate": {"lt": "9999-12-31T00:00:00Z"}});
    let bounded = app.query(&operation("LedgerPage"), json!({"first": 5, "filter": filter})).await;
    assert!(bounded["errors"].is_null(), "{bounded}");
    assert_eq!(app.calls_to("trackstar").await, plain_calls);
    let ids = |body: &Value| -> Vec<Value> {
        body["data"]["ledgerEntries"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].clone()).collect()
    };
    assert_eq!(ids(&bounded), ids(&unbounded));
}

#[tokio::test]
async fn bounds_at_the_ends_of_the_calendar_reach_no_upstream_as_five_digit_years() {
    // Each source widens bounds (Trackstar and BC to whole seconds, BigLedger
    // by a transfer's week of skew, Pennylane to whole days): widened past
    // year 9999 or before year 0, a bound is left to the gateway's own check.
    let app = spawn_app().await;
    app.reset_stats().await;
    let filters = [
        json!({"entryDate": {"lte": "9999-12-31T23:59:59.5Z"}, "updatedAt": {"lte": "9999-12-31T23:59:59.5Z"}}),
        json!({"entryDate": {"gte": "0000-01-01T00:00:00Z", "lt": "2000-01-01T00:00:00Z"}}),
        json!({"entryDate": {"gt": "9999-12-31T12:00:00Z"}}),
    ];
    for filter in filters {
        let body = app.query(&operation("LedgerPage"), json!({"first": 5, "filter": filter})).await;
        assert!(body["errors"].is_null(), "{filter}: {body}");
    }
    let requests = format!("{:?}", app.requests().await);
    assert!(!requests.contains("10000-") && !requests.contains("-0001-"), "{requests}");
    for source in ["trackstar", "business-central", "bigledger", "pennylane"] {
        assert!(app.calls_to(source).await > 0, "{source} was asked");
    }
}

#[tokio::test]
async fn a_forged_cursor_at_the_end_of_time_is_not_a_crash() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let app = spawn_app().await;
    let page = app.query(&operation("LedgerPage"), json!({"first": 1})).await;
    let cursor = page["data"]["ledgerEntries"]["pageInfo"]["endCursor"].as_str().unwrap();
    // Cursors are opaque, not secret: a client can rewrite one.
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&cursor[3..]).unwrap()).unwrap();
    payload["k"]["d"] = json!(END_OF_TIME);
    let forged = format!("v1.{}", URL_SAFE_NO_PAD.encode(payload.to_string()));
    let body = app.query(&operation("LedgerPage"), json!({"first": 3, "after": forged})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["ledgerEntries"]["edges"].as_array().unwrap().len(), 3);
}

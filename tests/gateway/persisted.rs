//! Automatic persisted queries over real HTTP, as Apollo Client's link and
//! urql's persisted exchange speak them (POST and GET, hash alone or with
//! its query), the store's bounds, batches, and the safelist.

use std::path::PathBuf;

use ledger_gateway::config::Config;
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{error_codes, operation, small_data, spawn_app, spawn_app_with, TestApp};

const MODERN: &str = "application/graphql-response+json";
const LEGACY: &str = "application/json";

fn sha256(query: &str) -> String {
    format!("{:x}", Sha256::digest(query.as_bytes()))
}

fn persisted_query(hash: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": hash}})
}

/// A request naming `query` by its hash, with the query text or without.
fn by_hash(query: &str, with_query: bool) -> Value {
    let mut body = json!({"extensions": persisted_query(&sha256(query))});
    if with_query {
        body["query"] = json!(query);
    }
    body
}

async fn post(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    post_as(app, MODERN, body).await
}

async fn post_as(app: &TestApp, accept: &str, body: &Value) -> (StatusCode, Value) {
    let response =
        app.client.post(format!("{}/graphql", app.url)).header(ACCEPT, accept).json(body).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// GET with `params`, JSON values encoded as text the way clients send them.
async fn get(app: &TestApp, params: &[(&str, Value)]) -> (StatusCode, Value) {
    let params: Vec<(&str, String)> = params
        .iter()
        .map(|(name, value)| (*name, value.as_str().map_or_else(|| value.to_string(), str::to_owned)))
        .collect();
    let request = app.client.get(format!("{}/graphql", app.url)).header(ACCEPT, MODERN).query(&params);
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// What Apollo Client's link and urql's exchange look for, exactly.
fn not_found() -> Value {
    json!({"errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]})
}

/// A refusal: `status`, the one error `code`, no `data` entry.
fn assert_refused((status, body): &(StatusCode, Value), expected: StatusCode, code: &str) {
    assert_eq!(*status, expected, "{body}");
    assert_eq!(error_codes(body), [code], "{body}");
    assert!(body.get("data").is_none(), "{body}");
}

fn typename(name: &str) -> String {
    format!("query {name} {{ __typename }}")
}

#[tokio::test]
async fn an_unknown_hash_alone_asks_for_the_query_with_a_200_and_calls_nothing() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let hash = sha256(&operation("RecentEntries"));
    for accept in [MODERN, LEGACY] {
        let (status, body) = post_as(&app, accept, &json!({"extensions": persisted_query(&hash)})).await;
        assert_eq!((status, &body), (StatusCode::OK, &not_found()), "{accept}");
    }
    let (status, body) = get(&app, &[("extensions", persisted_query(&hash))]).await;
    assert_eq!((status, body), (StatusCode::OK, not_found()));
    // An empty `query` is no query: some clients send one with the hash.
    let (status, body) = post(&app, &json!({"query": "", "extensions": persisted_query(&hash)})).await;
    assert_eq!((status, body), (StatusCode::OK, not_found()));
    assert_eq!(app.stats().await["total"], 0);
}

#[tokio::test]
async fn a_hash_that_is_not_the_sha256_of_its_query_is_refused_and_not_registered() {
    let app = spawn_app().await;
    let query = typename("Mismatch");
    let wrong = sha256("query Other { __typename }");
    let refused = post(&app, &json!({"query": query, "extensions": persisted_query(&wrong)})).await;
    assert_refused(&refused, StatusCode::BAD_REQUEST, "PERSISTED_QUERY_HASH_MISMATCH");
    let refused = get(&app, &[("query", json!(query)), ("extensions", persisted_query(&wrong))]).await;
    assert_refused(&refused, StatusCode::BAD_REQUEST, "PERSISTED_QUERY_HASH_MISMATCH");
    // An uppercase hash is another string: the protocol's hashes are lowercase hex.
    let upper = sha256(&query).to_uppercase();
    let refused = post(&app, &json!({"query": query, "extensions": persisted_query(&upper)})).await;
    assert_refused(&refused, StatusCode::BAD_REQUEST, "PERSISTED_QUERY_HASH_MISMATCH");
    assert_eq!(post(&app, &json!({"extensions": persisted_query(&wrong)})).await.1, not_found());
}

#[tokio::test]
async fn a_query_registered_over_post_runs_by_its_hash_alone_over_get() {
    let app = spawn_app().await;
    let query = operation("RecentEntries");
    let (status, registered) = post(&app, &by_hash(&query, true)).await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    assert!(registered["errors"].is_null() && registered["data"]["ledgerEntries"]["edges"].is_array(), "{registered}");

    let params = [("operationName", json!("RecentEntries")), ("extensions", persisted_query(&sha256(&query)))];
    let (status, body) = get(&app, &params).await;
    assert_eq!((status, &body), (StatusCode::OK, &registered));
    // Apollo Client sends the variables too, empty.
    let (status, body) = get(&app, &[("variables", json!({})), ("extensions", persisted_query(&sha256(&query)))]).await;
    assert_eq!((status, body), (StatusCode::OK, registered));
}

#[tokio::test]
async fn a_query_registered_over_get_runs_by_its_hash_alone_over_post() {
    let app = spawn_app().await;
    let query = operation("LedgerPage");
    let edges = |body: &Value| body["data"]["ledgerEntries"]["edges"].as_array().map(Vec::len);
    let extensions = persisted_query(&sha256(&query));
    let params = [("query", json!(query)), ("variables", json!({"first": 2})), ("extensions", extensions.clone())];
    let (status, registered) = get(&app, &params).await;
    assert_eq!((status, edges(&registered)), (StatusCode::OK, Some(2)), "{registered}");

    let mut request = json!({"variables": {"first": 2}, "extensions": extensions});
    assert_eq!(post(&app, &request).await, (StatusCode::OK, registered));
    // The document holds no variables: each request brings its own.
    request["variables"] = json!({"first": 3});
    let (status, other) = post(&app, &request).await;
    assert_eq!((status, edges(&other)), (StatusCode::OK, Some(3)), "{other}");
}

#[tokio::test]
async fn other_protocol_versions_and_malformed_extensions_are_refused() {
    let app = spawn_app().await;
    let query = typename("Versions");
    let hash = sha256(&query);
    for version in [json!(2), json!("1"), json!(null)] {
        let extensions = json!({"persistedQuery": {"version": version, "sha256Hash": hash}});
        let refused = post(&app, &json!({"query": query, "extensions": extensions})).await;
        assert_refused(&refused, StatusCode::BAD_REQUEST, "PERSISTED_QUERY_UNSUPPORTED_VERSION");
        let refused = get(&app, &[("extensions", extensions)]).await;
        assert_refused(&refused, StatusCode::BAD_REQUEST, "PERSISTED_QUERY_UNSUPPORTED_VERSION");
    }
    for extension in
        [json!({"version": 1}), json!({"sha256Hash": hash}), json!({"version": 1, "sha256Hash": 7}), json!(hash)]
    {
        let refused = post(&app, &json!({"query": query, "extensions": {"persistedQuery": extension}})).await;
        assert_refused(&refused, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    }
}

#[tokio::test]
async fn a_document_that_does_not_validate_is_not_registered() {
    let app = spawn_app().await;
    let query = "query Invalid { noSuchField }";
    let refused = post(&app, &by_hash(query, true)).await;
    assert_refused(&refused, StatusCode::BAD_REQUEST, "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(post(&app, &by_hash(query, false)).await, (StatusCode::OK, not_found()));
}

#[tokio::test]
async fn the_store_evicts_the_least_recently_used_past_its_entry_bound() {
    let app = spawn_app_with(small_data(), |config| config.server.persisted_queries.max_entries = 2).await;
    let [first, second, third] = ["First", "Second", "Third"].map(typename);
    for query in [&first, &second, &third] {
        let (status, body) = post(&app, &by_hash(query, true)).await;
        assert_eq!((status, &body["data"]["__typename"]), (StatusCode::OK, &json!("Query")), "{body}");
    }
    assert_eq!(post(&app, &by_hash(&first, false)).await, (StatusCode::OK, not_found()));
    for query in [&second, &third] {
        assert_eq!(post(&app, &by_hash(query, false)).await.1["data"]["__typename"], "Query", "{query}");
    }
}

#[tokio::test]
async fn the_store_evicts_past_its_byte_bound_and_never_keeps_a_larger_document() {
    let app = spawn_app_with(small_data(), |config| config.server.persisted_queries.max_bytes = 1024).await;
    // A long operation name is one token: the documents differ in size only.
    let sized = |name: &str, bytes: usize| typename(&format!("{name}{}", "x".repeat(bytes)));
    let (first, second, huge) = (sized("First", 500), sized("Second", 500), sized("Huge", 2000));
    for query in [&first, &second, &huge] {
        let (status, body) = post(&app, &by_hash(query, true)).await;
        assert_eq!((status, &body["data"]["__typename"]), (StatusCode::OK, &json!("Query")), "it runs: {body}");
    }
    assert_eq!(post(&app, &by_hash(&first, false)).await, (StatusCode::OK, not_found()), "evicted for the second");
    assert_eq!(post(&app, &by_hash(&huge, false)).await, (StatusCode::OK, not_found()), "larger than the store");
    assert_eq!(post(&app, &by_hash(&second, false)).await.1["data"]["__typename"], "Query");
}

#[tokio::test]
async fn each_operation_of_a_batch_resolves_on_its_own() {
    let app = spawn_app().await;
    let (known, unknown, fresh) = (typename("Known"), typename("Unknown"), typename("Fresh"));
    post(&app, &by_hash(&known, true)).await;
    let batch =
        json!([by_hash(&unknown, false), {"query": "{ __typename }"}, by_hash(&known, false), by_hash(&fresh, true)]);
    let (status, body) = post(&app, &batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = body.as_array().unwrap();
    assert_eq!(entries[0], not_found());
    for entry in &entries[1..] {
        assert_eq!(entry["data"]["__typename"], "Query", "{body}");
    }
    assert_eq!(post(&app, &by_hash(&fresh, false)).await.1["data"]["__typename"], "Query", "registered in a batch");
    let refused =
        post(&app, &json!([by_hash(&known, false), {"query": known, "extensions": persisted_query("0")}])).await;
    assert_eq!(refused.0, StatusCode::OK);
    assert_eq!(error_codes(&refused.1[1]), ["PERSISTED_QUERY_HASH_MISMATCH"]);
    assert_eq!(refused.1[0]["data"]["__typename"], "Query");
}

#[tokio::test]
async fn hits_misses_and_registrations_are_exported_as_metrics() {
    let app = spawn_app().await;
    let query = typename("Counted");
    post(&app, &by_hash(&query, false)).await;
    post(&app, &by_hash(&query, true)).await;
    post(&app, &by_hash(&query, false)).await;
    let text = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    for outcome in ["hit", "miss", "registered"] {
        let line = format!("graphql_persisted_queries_total{{outcome=\"{outcome}\"}}");
        assert!(text.lines().any(|l| l.starts_with(&line)), "{outcome}: {text}");
    }
}

/// An Apollo persisted query manifest named for the test that writes it.
fn manifest_file(name: &str, contents: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.json"));
    std::fs::write(&path, contents).unwrap();
    path
}

const LISTED: &str = "query Listed { __typename }";
const LISTED_BY_ID: &str = "query ListedById { __typename }";

/// The gateway with a safelist of two operations, one under a custom id.
async fn safelisted_app(name: &str) -> TestApp {
    let manifest = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": sha256(LISTED), "name": "Listed", "type": "query", "body": LISTED},
            {"id": "listed-by-id-v1", "name": "ListedById", "type": "query", "body": LISTED_BY_ID},
        ]
    });
    let path = manifest_file(name, &manifest.to_string());
    spawn_app_with(small_data(), |config| config.server.persisted_queries.safelist = Some(path)).await
}

fn typename_of((status, body): &(StatusCode, Value)) -> &Value {
    assert_eq!(*status, StatusCode::OK, "{body}");
    &body["data"]["__typename"]
}

#[tokio::test]
async fn a_safelist_runs_listed_operations_by_id() {
    let app = safelisted_app("safelist_by_id").await;
    assert_eq!(typename_of(&post(&app, &by_hash(LISTED, false)).await), "Query");
    assert_eq!(typename_of(&get(&app, &[("extensions", persisted_query(&sha256(LISTED)))]).await), "Query");
    assert_eq!(typename_of(&post(&app, &json!({"extensions": persisted_query("listed-by-id-v1")})).await), "Query");
    // An APQ client hashes the body: that finds an operation listed under another id too.
    assert_eq!(typename_of(&post(&app, &by_hash(LISTED_BY_ID, false)).await), "Query");
    assert_eq!(typename_of(&post(&app, &by_hash(LISTED_BY_ID, true)).await), "Query");
}

#[tokio::test]
async fn a_safelist_runs_listed_operations_by_exact_body() {
    let app = safelisted_app("safelist_by_body").await;
    for body in [LISTED, LISTED_BY_ID] {
        assert_eq!(typename_of(&post(&app, &json!({"query": body})).await), "Query", "{body}");
        assert_eq!(typename_of(&get(&app, &[("query", json!(body))]).await), "Query", "{body}");
    }
    let respaced = LISTED.replace(' ', "  ");
    let refused = post(&app, &json!({"query": respaced})).await;
    assert_refused(&refused, StatusCode::FORBIDDEN, "PERSISTED_QUERY_NOT_IN_SAFELIST");
}

#[tokio::test]
async fn a_safelist_refuses_everything_else_and_registers_nothing() {
    let app = safelisted_app("safelist_refusal").await;
    app.reset_stats().await;
    let unlisted = operation("RecentEntries");
    for accept in [MODERN, LEGACY] {
        let refused = post_as(&app, accept, &json!({"query": unlisted})).await;
        assert_refused(&refused, StatusCode::FORBIDDEN, "PERSISTED_QUERY_NOT_IN_SAFELIST");
    }
    assert_refused(
        &get(&app, &[("query", json!(unlisted))]).await,
        StatusCode::FORBIDDEN,
        "PERSISTED_QUERY_NOT_IN_SAFELIST",
    );
    // A correct APQ registration of an unlisted document neither runs nor
    // registers it: the hash alone stays refused, not "not found".
    for _ in 0..2 {
        let refused = post(&app, &by_hash(&unlisted, true)).await;
        assert_refused(&refused, StatusCode::FORBIDDEN, "PERSISTED_QUERY_NOT_IN_SAFELIST");
        let refused = post(&app, &by_hash(&unlisted, false)).await;
        assert_refused(&refused, StatusCode::FORBIDDEN, "PERSISTED_QUERY_NOT_IN_SAFELIST");
    }
    // A listed id does not lend its place to another document.
    let smuggled = json!({"query": unlisted, "extensions": persisted_query(&sha256(LISTED))});
    assert_refused(&post(&app, &smuggled).await, StatusCode::BAD_REQUEST, "PERSISTED_QUERY_HASH_MISMATCH");
    let batch = post(&app, &json!([{"query": unlisted}, {"query": LISTED}])).await;
    assert_eq!(error_codes(&batch.1[0]), ["PERSISTED_QUERY_NOT_IN_SAFELIST"], "{}", batch.1);
    assert_eq!(batch.1[1]["data"]["__typename"], "Query");
    assert_eq!(app.stats().await["total"], 0, "nothing unlisted ran");
}

#[tokio::test]
async fn an_unusable_safelist_fails_start_up_naming_the_key() {
    let operation = json!({"id": "a", "name": "A", "type": "query", "body": "{ __typename }"});
    let manifest = |format: &str, version: u64, operations: Value| {
        json!({"format": format, "version": version, "operations": operations}).to_string()
    };
    let format = "apollo-persisted-query-manifest";
    let cases = [
        ("safelist_not_json", "not json".to_owned(), "is not an Apollo persisted query manifest"),
        ("safelist_relay", manifest("relay", 1, json!([operation])), "format is \"relay\""),
        ("safelist_v2", manifest(format, 2, json!([operation])), "only version 1 is supported"),
        ("safelist_empty", manifest(format, 1, json!([])), "lists no operations"),
        (
            "safelist_no_body",
            manifest(format, 1, json!([{"id": "a", "name": "A", "type": "query"}])),
            "missing field `body`",
        ),
        (
            "safelist_bad_type",
            manifest(format, 1, json!([{"id": "a", "name": "A", "type": "fetch", "body": "{ a }"}])),
            "unknown variant",
        ),
        (
            "safelist_unparsable",
            manifest(format, 1, json!([{"id": "a", "name": "A", "type": "query", "body": "{"}])),
            "does not parse",
        ),
    ];
    let mut config = Config { sources: spawn_app().await.mock.sources_config(), ..Config::default() };
    for (name, contents, expected) in cases {
        config.server.persisted_queries.safelist = Some(manifest_file(name, &contents));
        let error = ledger_gateway::app(&config).err().unwrap_or_else(|| panic!("{name} starts")).to_string();
        assert!(
            error.starts_with("server.persisted_queries.safelist: ") && error.contains(expected),
            "{name}: {error}"
        );
    }
    config.server.persisted_queries.safelist =
        Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-manifest.json"));
    let error = ledger_gateway::app(&config).expect_err("a missing manifest is an error").to_string();
    assert!(error.contains("no-such-manifest.json: cannot be read"), "{error}");
}

//! GraphQL responses on the wire, per GraphQL over HTTP: the status a
//! response gets, and its body, where a request error has no `data` entry
//! at all (async-graphql always writes one, `null` when absent).

use std::collections::BTreeMap;

use async_graphql::{BatchResponse, Response, ServerError, Value};
use axum::http::StatusCode;
use serde::{Serialize, Serializer};

use crate::schema::codes::is_request_error;

/// The status of an executed batch: 200 for every response that executed,
/// even with `data: null`. A single request that never executed (a parse,
/// validation or limit error, an operation that cannot be picked) is a 400
/// in `application/graphql-response+json` (`modern`); in `application/json`
/// it stays a 200, which tells a client that no proxy wrote the body. A
/// batch is always a 200: its entries have no status of their own.
pub fn status(response: &BatchResponse, modern: bool) -> StatusCode {
    match response {
        BatchResponse::Single(response) if modern && is_request_error(response) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// The JSON body of `response`.
pub fn body(response: &BatchResponse) -> Vec<u8> {
    let written = match response {
        BatchResponse::Single(response) => return single_body(response),
        BatchResponse::Batch(responses) => serde_json::to_vec(&responses.iter().map(Wire).collect::<Vec<_>>()),
    };
    // GraphQL values have string keys only: serializing them cannot fail.
    written.unwrap_or_default()
}

/// The JSON body of one response.
pub fn single_body(response: &Response) -> Vec<u8> {
    serde_json::to_vec(&Wire(response)).unwrap_or_default()
}

/// One response as GraphQL over HTTP writes it.
struct Wire<'a>(&'a Response);

/// A response that never executed: no `data` entry, as the GraphQL spec
/// says of request errors.
#[derive(Serialize)]
struct RequestErrors<'a> {
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, Value>,
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let response = self.0;
        if is_request_error(response) {
            RequestErrors { errors: &response.errors, extensions: &response.extensions }.serialize(serializer)
        } else {
            response.serialize(serializer)
        }
    }
}

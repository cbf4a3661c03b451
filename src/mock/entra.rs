//! Microsoft Entra ID's token endpoint under `/entra/` (the authority), as
//! Business Central's service accounts use it: `POST
//! /entra/{tenant}/oauth2/v2.0/token` with the client credentials grant as a
//! form. It checks the form like Entra does and answers Entra's error
//! bodies (`invalid_client` with `AADSTS7000215`, …), and issues opaque
//! tokens that expire `expires_in` after the mock's clock said they were
//! issued; the Business Central mock accepts only those still live (plus
//! its fixed test tokens). Slow or failing sign-ins come from the fault
//! rules (`"upstream": "entra"`); [`EntraMock::revoke`] revokes an app.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::business_central::{TENANT, TOKEN};
use super::fixtures::MockOptions;
use super::MockState;

/// The demo's app registration in the demo tenant; its tokens read the
/// demo company's data (the data of [`TOKEN`]).
pub const CLIENT_ID: &str = "8d3f2a71-4c5e-4b9a-9f10-2e6c7d8b9a01";
pub const CLIENT_SECRET: &str = "demo-entra-client-secret";
pub const SCOPE: &str = "https://api.businesscentral.dynamics.com/.default";
/// Seconds an issued token lives, as Entra's usually do.
pub const EXPIRES_IN: i64 = 3599;

/// A token the mock issued: whose data it reads, and until when.
#[derive(Debug)]
struct Issued {
    client_id: String,
    data: &'static str,
    expires_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct EntraMock {
    options: MockOptions,
    tokens: Mutex<HashMap<String, Issued>>,
    revoked: Mutex<HashSet<String>>,
    serial: AtomicU64,
}

impl EntraMock {
    pub fn new(options: MockOptions) -> Self {
        Self { options, tokens: Mutex::default(), revoked: Mutex::default(), serial: AtomicU64::new(1) }
    }

    /// Revokes an app: its secret no longer signs in, and the tokens it
    /// holds are refused from now on.
    pub fn revoke(&self, client_id: &str) {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner()).insert(client_id.to_owned());
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, issued| issued.client_id != client_id);
    }

    /// Which data a live issued token reads; `None` for any other token.
    pub fn live(&self, token: &str) -> Option<&'static str> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.get(token).filter(|issued| self.options.clock.now() < issued.expires_at).map(|issued| issued.data)
    }

    fn issue(&self, client_id: &str) -> String {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        // Opaque like Entra's, unique within the mock.
        let token = format!("entra-{serial:06}-{:016x}", rand::random::<u64>());
        let expires_at = self.options.clock.now() + Duration::seconds(EXPIRES_IN);
        let issued = Issued { client_id: client_id.to_owned(), data: TOKEN, expires_at };
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(token.clone(), issued);
        token
    }

    fn is_revoked(&self, client_id: &str) -> bool {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner()).contains(client_id)
    }
}

pub fn router() -> Router<Arc<MockState>> {
    Router::new().route("/{tenant}/oauth2/v2.0/token", post(token))
}

/// Entra's error answer: the OAuth error, an `AADSTS` description and code.
fn refuse(status: StatusCode, error: &str, code: u64, description: &str) -> Response {
    let trace = "4457d068-2a03-42b2-97f2-d55325289d86";
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {trace}"),
        "error_codes": [code],
        "trace_id": trace,
    });
    (status, Json(body)).into_response()
}

async fn token(
    State(state): State<Arc<MockState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: HashMap<String, String> =
        if form_type { url::form_urlencoded::parse(&body).into_owned().collect() } else { HashMap::new() };
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let entra = &state.entra;
    let missing = ["grant_type", "client_id", "client_secret", "scope"].into_iter().find(|name| field(name).is_none());
    if let Some(name) = missing {
        let description = format!("The request body must contain the following parameter: '{name}'.");
        return refuse(StatusCode::BAD_REQUEST, "invalid_request", 900_144, &description);
    }
    if tenant != TENANT {
        let description = format!("Tenant '{tenant}' not found.");
        return refuse(StatusCode::BAD_REQUEST, "invalid_request", 90_002, &description);
    }
    if field("grant_type") != Some("client_credentials") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
            "The app requested an unsupported grant type.",
        );
    }
    let client_id = field("client_id").unwrap_or_default();
    if client_id != CLIENT_ID {
        let description = format!("Application with identifier '{client_id}' was not found in the directory.");
        return refuse(StatusCode::BAD_REQUEST, "unauthorized_client", 700_016, &description);
    }
    if field("client_secret") != Some(CLIENT_SECRET) || entra.is_revoked(client_id) {
        let description = format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.");
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client", 7_000_215, &description);
    }
    if field("scope") != Some(SCOPE) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70_011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    }
    let access_token = entra.issue(client_id);
    Json(json!({"token_type": "Bearer", "expires_in": EXPIRES_IN, "ext_expires_in": EXPIRES_IN, "access_token": access_token}))
        .into_response()
}

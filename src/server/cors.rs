//! CORS, when `[server.cors]` is configured: a request from an allowed
//! origin goes through tower-http's CORS layer with the configured rules;
//! any other request through one that allows nothing, which only adds
//! `Vary` (the answer depends on `Origin`, and shared caches must know).
//! So another origin gets no `Access-Control-*` header at all, not even on
//! its preflight. Preflights are answered by the layer, 204, without
//! reaching a route.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::{Config, CorsConfig};

/// The two layers a request can go through.
#[derive(Clone, Debug)]
pub struct Cors {
    /// `None` when any origin is allowed.
    origins: Option<Vec<HeaderValue>>,
    allowed: CorsLayer,
    others: CorsLayer,
}

impl Cors {
    /// The CORS rules of `config`, if it has any. `Config::validate` has
    /// checked every origin and header name, so none is dropped here.
    pub fn new(config: &Config) -> Option<Arc<Self>> {
        let cors = config.server.cors.as_ref()?;
        let origins = (cors.allow_origins != ["*"]).then(|| values(&cors.allow_origins));
        let allow_origin = origins.clone().map_or_else(AllowOrigin::any, AllowOrigin::list);
        let allowed = CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(allowed_headers(config, cors))
            .expose_headers(names(&cors.expose_headers))
            .max_age(Duration::from_secs(cors.max_age_secs))
            .allow_credentials(cors.allow_credentials);
        Some(Arc::new(Self { origins, allowed, others: CorsLayer::new() }))
    }

    fn allows(&self, origin: Option<&HeaderValue>) -> bool {
        match (origin, &self.origins) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(origin), Some(origins)) => origins.contains(origin),
        }
    }
}

/// `content-type` (a JSON POST needs it), `accept`, every source's
/// forwarded credential header, and the configured extras.
fn allowed_headers(config: &Config, cors: &CorsConfig) -> Vec<HeaderName> {
    let forwarded = config.sources.values().flat_map(|source| source.forward.values().cloned());
    let mut headers = names(["content-type".to_owned(), "accept".to_owned()].into_iter().chain(forwarded));
    for name in names(&cors.allow_headers) {
        if !headers.contains(&name) {
            headers.push(name);
        }
    }
    headers
}

fn names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Vec<HeaderName> {
    names.into_iter().filter_map(|name| HeaderName::from_bytes(name.as_ref().as_bytes()).ok()).collect()
}

fn values(values: &[String]) -> Vec<HeaderValue> {
    values.iter().filter_map(|value| HeaderValue::from_str(value).ok()).collect()
}

/// The middleware: picks the layer by `Origin`.
pub async fn apply(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    let layer = if cors.allows(request.headers().get(header::ORIGIN)) { &cors.allowed } else { &cors.others };
    // tower-http answers every OPTIONS itself, as a preflight.
    let preflight = request.method() == Method::OPTIONS;
    let mut response = match layer.layer(next).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    };
    if preflight {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

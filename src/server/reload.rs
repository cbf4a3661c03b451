//! Configuration reload (on SIGHUP, or `POST /admin/reload` with the admin
//! token): the new configuration is loaded and validated and a whole new
//! app built from it before anything changes; a configuration that does not
//! validate, or that changes a setting only start-up reads, is refused and
//! the running one keeps serving. Each request runs on the app that was
//! current when it arrived, to the end, so requests in flight during a
//! reload finish on the configuration they started with.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::ServiceExt;

use crate::config::{Config, ConfigError};

/// Loads the configuration afresh: the same file, environment and command
/// line overrides as at start-up.
pub type Loader = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("{keys}: cannot change on reload, restart to apply")]
    RestartRequired { keys: String },
}

/// A configuration and the app built from it.
struct Generation {
    config: Config,
    app: Router,
    /// SHA-256 of `server.admin_token`: compared in constant time, and of
    /// equal length whatever the caller sends.
    admin_token: Option<[u8; 32]>,
}

impl Generation {
    fn new(config: Config) -> Result<Self, ConfigError> {
        let app = crate::app(&config)?;
        let admin_token = config.server.admin_token.as_ref().map(|token| digest(token.expose_secret()));
        Ok(Self { config, app, admin_token })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The running gateway: the current generation, swapped whole on reload.
pub struct Gateway {
    current: ArcSwap<Generation>,
    load: Loader,
    /// One reload at a time: two racing would both compare against the
    /// same old configuration.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// Serves `config`; reloads call `load`.
    pub fn new(config: Config, load: Loader) -> Result<Arc<Self>, ConfigError> {
        let current = ArcSwap::from_pointee(Generation::new(config)?);
        Ok(Arc::new(Self { current, load, reloading: tokio::sync::Mutex::new(()) }))
    }

    /// The configuration serving new requests.
    pub fn config(&self) -> Config {
        self.current.load().config.clone()
    }

    /// Loads, validates and builds the new configuration, then swaps it in.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let config = (self.load)()?;
        let fixed = self.current.load().config.restart_only_changes(&config);
        if !fixed.is_empty() {
            return Err(ReloadError::RestartRequired { keys: fixed.join(", ") });
        }
        self.current.store(Arc::new(Generation::new(config)?));
        Ok(())
    }

    /// Reloads and logs the outcome.
    pub async fn reload_and_log(&self) -> Result<(), ReloadError> {
        let result = self.reload().await;
        match &result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(error) => tracing::error!(%error, "configuration reload refused: the running configuration stays"),
        }
        result
    }

    /// Every route: `/admin/reload`, and the current app for the rest.
    pub fn router(self: &Arc<Self>) -> Router {
        let gateway = self.clone();
        let current_app = tower::service_fn(move |request: Request| {
            // Cloned per request: the request keeps this generation alive
            // until it is done, whatever is swapped in meanwhile.
            let app = gateway.current.load().app.clone();
            app.oneshot(request)
        });
        Router::new().route("/admin/reload", any(admin_reload)).with_state(self.clone()).fallback_service(current_app)
    }
}

async fn admin_reload(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let current = gateway.current.load_full();
    // Without a token the route does not exist: the app's own 404.
    let Some(expected) = current.admin_token else {
        return current.app.clone().oneshot(request).await.into_response();
    };
    if request.method() != axum::http::Method::POST {
        let mut response = admin_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "use POST");
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let presented = bearer(request.headers()).map(digest);
    if !presented.is_some_and(|presented| bool::from(presented.ct_eq(&expected))) {
        let mut response =
            admin_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "a valid admin bearer token is required");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    match gateway.reload_and_log().await {
        Ok(()) => Json(json!({"reloaded": true})).into_response(),
        Err(error) => admin_error(StatusCode::UNPROCESSABLE_ENTITY, error.code(), &error.to_string()),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

fn admin_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"errors": [{"message": message, "extensions": {"code": code}}]}))).into_response()
}

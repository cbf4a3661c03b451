//! Signing in to Business Central as a service: the OAuth 2.0 client
//! credentials grant at Microsoft Entra ID. `POST
//! {authority}/{tenant_id}/oauth2/v2.0/token` with `grant_type`,
//! `client_id`, `client_secret` and `scope` as a form answers
//! `{"token_type": "Bearer", "expires_in": 3599, "access_token": "…"}`, or
//! `{"error": "invalid_client", "error_description": "AADSTS7000215: …",
//! "error_codes": [7000215], …}`. The token is shared by every request of
//! the source (`TokenCache`); the call goes through the source's own client
//! guards (deadline, timeout, call budget, metrics), under route `token`.

use reqwest::StatusCode;
use serde::Deserialize;
use tracing::warn;
use url::Url;

use crate::clock::Clock;
use crate::config::SourceConfig;
use crate::model::SourceName;
use crate::upstream::{
    endpoint, AccessToken, Call, Credentials, HttpPolicy, TokenCache, UpstreamClient, UpstreamError, UpstreamFailure,
};

pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const DEFAULT_SCOPE: &str = "https://api.businesscentral.dynamics.com/.default";

/// The Entra ID sign-in of one source.
#[derive(Debug)]
pub struct SignIn {
    authority: Url,
    scope: String,
    /// Its own client: the token endpoint is another host than BC, with
    /// its own health (breaker) and none of BC's request quota.
    client: UpstreamClient,
    tokens: TokenCache,
    clock: Clock,
}

impl SignIn {
    pub fn new(name: SourceName, config: &SourceConfig, policy: HttpPolicy, clock: Clock) -> Self {
        let authority =
            config.authority.clone().unwrap_or_else(|| Url::parse(DEFAULT_AUTHORITY).expect("static url parses"));
        Self {
            authority,
            scope: config.scope.clone().unwrap_or_else(|| DEFAULT_SCOPE.to_owned()),
            client: UpstreamClient::new(name, HttpPolicy { rate_limit: None, ..policy }, token_error, clock),
            tokens: TokenCache::default(),
            clock,
        }
    }

    /// A live token for the service account in `credentials`; a new one
    /// when `rejected` is the cached one.
    pub async fn token(
        &self,
        credentials: &Credentials,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, UpstreamError> {
        let source = self.client.source();
        self.tokens.get(source, credentials, self.clock, rejected, || self.fetch(credentials)).await.inspect_err(
            |error| {
                if error.failure == UpstreamFailure::Unauthorized {
                    warn!(%source, "entra id refused the client credentials");
                }
            },
        )
    }

    async fn fetch(&self, credentials: &Credentials) -> Result<AccessToken, UpstreamError> {
        let missing = || UpstreamError::new(self.client.source(), UpstreamFailure::MissingCredentials);
        let field = |name: &str| credentials.get(name).ok_or_else(missing);
        let url = endpoint(&self.authority, &[field("tenant_id")?, "oauth2", "v2.0", "token"]);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", field("client_id")?),
            ("client_secret", field("client_secret")?),
            ("scope", &self.scope),
        ];
        let call = Call::post_form("token", url, &form, credentials.fingerprint());
        // Measured before the call: the token lives at most that long from here.
        let now = self.clock.now();
        let answer: TokenAnswer = self.client.send_json(&call).await?;
        let expires_in = chrono::Duration::try_seconds(answer.expires_in).filter(|d| *d > chrono::Duration::zero());
        match expires_in {
            Some(expires_in) if answer.token_type.eq_ignore_ascii_case("bearer") && !answer.access_token.is_empty() => {
                Ok(AccessToken::new(answer.access_token.into(), now, expires_in))
            }
            _ => {
                warn!(source = %self.client.source(), "entra id answered a token that cannot be used");
                Err(UpstreamError::new(self.client.source(), UpstreamFailure::BadResponse))
            }
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token_type: String,
    expires_in: i64,
    access_token: String,
}

/// `{"error", "error_description", "error_codes"}`. The description may
/// quote the tenant or the app, so only the code and the AADSTS numbers
/// are logged; nothing of the body is returned.
#[derive(Deserialize)]
struct TokenErrorBody {
    error: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// Entra answers a refused sign-in (`invalid_client`, `unauthorized_client`,
/// `invalid_scope`, an unknown tenant…) with a 400 or 401: whatever the
/// reason, the gateway cannot call BC, `UPSTREAM_UNAUTHORIZED`.
/// `temporarily_unavailable`, 429 and 5xx keep the shared classification.
fn token_error(status: StatusCode, body: &[u8]) -> Option<UpstreamFailure> {
    let parsed = serde_json::from_slice::<TokenErrorBody>(body).ok();
    if let Some(body) = &parsed {
        warn!(status = status.as_u16(), error = %body.error, aadsts = ?body.error_codes, "entra id token request failed");
    }
    let unavailable = parsed.is_some_and(|body| body.error == "temporarily_unavailable");
    let refused = status.is_client_error() && !matches!(status.as_u16(), 408 | 429);
    (refused && !unavailable).then_some(UpstreamFailure::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_sign_ins_are_unauthorized_and_outages_keep_their_class() {
        let invalid_client = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
        assert_eq!(token_error(StatusCode::UNAUTHORIZED, invalid_client), Some(UpstreamFailure::Unauthorized));
        assert_eq!(token_error(StatusCode::BAD_REQUEST, b"<html>"), Some(UpstreamFailure::Unauthorized));
        let busy = br#"{"error":"temporarily_unavailable","error_codes":[50196]}"#;
        assert_eq!(token_error(StatusCode::BAD_REQUEST, busy), None);
        assert_eq!(token_error(StatusCode::TOO_MANY_REQUESTS, b""), None);
        assert_eq!(token_error(StatusCode::SERVICE_UNAVAILABLE, invalid_client), None);
    }
}

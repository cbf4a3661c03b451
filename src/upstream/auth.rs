//! Per-caller credentials. Each source's credential fields come from config
//! (a service account) or from the incoming request (a caller's own token);
//! every cache key carries a keyed hash of what was actually used, so one
//! caller's cached data can never answer another caller.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::deadline;
use super::error::{UpstreamError, UpstreamFailure};
use crate::clock::Clock;
use crate::model::SourceName;

/// A keyed hash of a credential set: safe to log and to put in cache keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(Arc<str>);

impl Fingerprint {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key for credential fingerprints. Random per process by default, so a
/// fingerprint seen in a log cannot be brute-forced offline into a token.
#[derive(Clone)]
pub struct FingerprintKey(Arc<[u8; 32]>);

impl FingerprintKey {
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Self(Arc::new(key))
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

/// The resolved credential fields one source call uses.
#[derive(Clone)]
pub struct Credentials {
    fields: Arc<BTreeMap<String, SecretString>>,
    fingerprint: Fingerprint,
}

impl Credentials {
    pub fn new(key: &FingerprintKey, fields: BTreeMap<String, SecretString>) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.0.as_slice()).expect("hmac takes any key length");
        for (name, value) in &fields {
            // Length-prefixed so that ("ab","c") and ("a","bc") hash apart.
            for part in [name.as_bytes(), value.expose_secret().as_bytes()] {
                mac.update(&(part.len() as u64).to_le_bytes());
                mac.update(part);
            }
        }
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Self { fields: Arc::new(fields), fingerprint: Fingerprint(Arc::from(hex)) }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(|v| v.expose_secret())
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// How long before it expires an issued token is replaced: one about to
/// expire could do so on its way to the upstream.
const REFRESH_MARGIN: Duration = Duration::minutes(5);

/// A bearer token an authorization server issued, and when to replace it.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<SecretString>,
    refresh_at: DateTime<Utc>,
}

impl AccessToken {
    /// Issued at `now` for `expires_in`; replaced [`REFRESH_MARGIN`] before
    /// it expires, or half-way for a token shorter-lived than twice that.
    pub fn new(value: SecretString, now: DateTime<Utc>, expires_in: Duration) -> Self {
        let margin = REFRESH_MARGIN.min(expires_in / 2);
        Self { value: Arc::new(value), refresh_at: now + expires_in - margin }
    }

    pub fn secret(&self) -> &str {
        self.value.expose_secret()
    }

    fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        now < self.refresh_at
    }

    /// The same issued token, not merely an equal string.
    fn is(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").field("refresh_at", &self.refresh_at).finish_non_exhaustive()
    }
}

/// A service account's issued token, shared by every request: fetched on
/// first use, reused until shortly before it expires, then fetched again
/// once for all the requests that need it.
#[derive(Debug, Default)]
pub struct TokenCache {
    // A tokio mutex held across the fetch (single flight): requests that
    // find the token missing or stale wait for the one fetch under way
    // instead of each making their own.
    slot: tokio::sync::Mutex<Option<(Fingerprint, AccessToken)>>,
}

impl TokenCache {
    /// A fresh token for `credentials`, from `fetch` when none is cached,
    /// the cached one is going stale, or it is `rejected` (the upstream
    /// refused it: revoked, or expired early). A token fetched by another
    /// request meanwhile is taken as it is. Waiting for that fetch is
    /// bounded by this request's deadline.
    pub async fn get<Fetch, Fetched>(
        &self,
        source: &SourceName,
        credentials: &Credentials,
        clock: Clock,
        rejected: Option<&AccessToken>,
        fetch: Fetch,
    ) -> Result<AccessToken, UpstreamError>
    where
        Fetch: FnOnce() -> Fetched,
        Fetched: Future<Output = Result<AccessToken, UpstreamError>>,
    {
        let timeout = || UpstreamError::new(source, UpstreamFailure::Timeout);
        let mut slot = deadline::bounded(self.slot.lock()).await.ok_or_else(timeout)?;
        if let Some((fingerprint, token)) = slot.as_ref() {
            let refused = rejected.is_some_and(|rejected| rejected.is(token));
            if fingerprint == credentials.fingerprint() && token.is_fresh(clock.now()) && !refused {
                return Ok(token.clone());
            }
        }
        let token = fetch().await?;
        *slot = Some((credentials.fingerprint().clone(), token.clone()));
        Ok(token)
    }
}

/// A header value marked sensitive, so it never shows in debug output;
/// `None` when `value` cannot be sent as a header.
pub fn sensitive_header(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(key: &FingerprintKey, pairs: &[(&str, &str)]) -> Credentials {
        let fields = pairs.iter().map(|(k, v)| ((*k).to_owned(), SecretString::from(*v))).collect();
        Credentials::new(key, fields)
    }

    #[test]
    fn different_secrets_have_different_fingerprints() {
        let key = FingerprintKey::random();
        let a = creds(&key, &[("access_token", "alice")]);
        let b = creds(&key, &[("access_token", "bob")]);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), creds(&key, &[("access_token", "alice")]).fingerprint());
    }

    #[test]
    fn field_boundaries_are_part_of_the_fingerprint() {
        let key = FingerprintKey::random();
        let a = creds(&key, &[("a", "bc")]);
        let b = creds(&key, &[("ab", "c")]);
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    mod tokens {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use chrono::TimeZone;

        use super::*;
        use crate::clock::ManualClock;

        struct Issuer {
            issued: AtomicUsize,
            clock: Clock,
        }

        impl Issuer {
            async fn issue(&self) -> Result<AccessToken, UpstreamError> {
                let n = self.issued.fetch_add(1, Ordering::SeqCst);
                // Other requests arrive while the fetch is under way.
                tokio::task::yield_now().await;
                Ok(AccessToken::new(format!("token-{n}").into(), self.clock.now(), Duration::seconds(3599)))
            }
        }

        fn setup() -> (&'static ManualClock, Issuer, Credentials) {
            let manual = ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 6, 30, 10, 30, 0).unwrap());
            let key = FingerprintKey::random();
            (manual, Issuer { issued: AtomicUsize::new(0), clock: manual.clock() }, creds(&key, &[("client_id", "a")]))
        }

        #[tokio::test]
        async fn concurrent_callers_share_one_fetch_and_reuse_the_token_until_shortly_before_it_expires() {
            let (manual, issuer, credentials) = setup();
            let (cache, source, clock) = (TokenCache::default(), SourceName::new("bc"), manual.clock());
            let get = || cache.get(&source, &credentials, clock, None, || issuer.issue());
            let tokens = futures::future::join_all((0..20).map(|_| get())).await;
            assert!(tokens.iter().all(|t| t.as_ref().unwrap().secret() == "token-0"));
            manual.advance(Duration::seconds(3599 - 301));
            assert_eq!(get().await.unwrap().secret(), "token-0");
            manual.advance(Duration::seconds(1));
            let refreshed = futures::future::join_all((0..20).map(|_| get())).await;
            assert!(refreshed.iter().all(|t| t.as_ref().unwrap().secret() == "token-1"));
            assert_eq!(issuer.issued.load(Ordering::SeqCst), 2);
        }

        #[tokio::test]
        async fn a_rejected_token_is_replaced_once_however_many_callers_saw_it_rejected() {
            let (manual, issuer, credentials) = setup();
            let (cache, source, clock) = (TokenCache::default(), SourceName::new("bc"), manual.clock());
            let first = cache.get(&source, &credentials, clock, None, || issuer.issue()).await.unwrap();
            let rejected = Some(&first);
            let fresh = futures::future::join_all(
                (0..5).map(|_| cache.get(&source, &credentials, clock, rejected, || issuer.issue())),
            )
            .await;
            assert!(fresh.iter().all(|t| t.as_ref().unwrap().secret() == "token-1"));
            assert_eq!(issuer.issued.load(Ordering::SeqCst), 2);
        }

        #[test]
        fn a_short_lived_token_is_replaced_half_way() {
            let now = Utc.with_ymd_and_hms(2026, 6, 30, 10, 30, 0).unwrap();
            let token = AccessToken::new("hunter2".to_owned().into(), now, Duration::seconds(60));
            assert!(token.is_fresh(now + Duration::seconds(29)));
            assert!(!token.is_fresh(now + Duration::seconds(30)));
            assert!(!format!("{token:?}").contains("hunter2"));
        }
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let key = FingerprintKey::random();
        let shown = format!("{:?}", creds(&key, &[("access_token", "hunter2")]));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!creds(&key, &[("x", "hunter2")]).fingerprint().as_str().contains("hunter2"));
    }
}

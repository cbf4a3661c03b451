//! Per-caller credentials. Each source's credential fields come from config
//! (a service account) or from the incoming request (a caller's own token);
//! every cache key carries a keyed hash of what was actually used, so one
//! caller's cached data can never answer another caller.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

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

    #[test]
    fn debug_output_never_shows_a_secret() {
        let key = FingerprintKey::random();
        let shown = format!("{:?}", creds(&key, &[("access_token", "hunter2")]));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!creds(&key, &[("x", "hunter2")]).fingerprint().as_str().contains("hunter2"));
    }
}

//! `sources`: each configured source's health, from what the gateway
//! already holds (the client's recorded outcomes, breaker, limiter and the
//! cache), so asking costs no upstream call.
//!
//! Everything is the caller's own: the state of the credentials this very
//! request would use for the source (a forwarded token's, else the
//! configured service account's, which is what `/ready` probes). Breakers,
//! limits, outcomes and cache entries are all kept per credential, so no
//! caller sees what another caller's calls met, and no credential is shown.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, Enum, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::model::{SourceKind, SourceName};
use crate::sources::{Caller, Registry};
use crate::upstream::breaker::Circuit;
use crate::upstream::health::Observed;

/// How a source is doing for the caller's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum SourceStatus {
    /// The circuit is closed and the latest attempt answered (or none was
    /// made yet).
    Ready,
    /// Calls are still sent, but the latest attempt failed (timeout, 5xx,
    /// 429, an unreadable answer), or the circuit is half-open and a trial
    /// call decides.
    Degraded,
    /// Calls fail without reaching the upstream: the circuit is open, the
    /// upstream rejected the credentials on the latest attempt
    /// (`UPSTREAM_UNAUTHORIZED`, `UPSTREAM_FORBIDDEN`), or the caller has no
    /// usable credentials for it (`UNAUTHENTICATED`).
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl From<Circuit> for CircuitState {
    fn from(circuit: Circuit) -> Self {
        match circuit {
            Circuit::Closed => CircuitState::Closed,
            Circuit::Open => CircuitState::Open,
            Circuit::HalfOpen => CircuitState::HalfOpen,
        }
    }
}

/// The gateway's own outgoing quota for the caller's credentials.
#[derive(Clone, Debug, SimpleObject)]
pub struct OutgoingRateLimit {
    /// Calls allowed per `perMs`.
    pub requests: u32,
    pub per_ms: u64,
    /// Calls that may start now without waiting (0 while the upstream asked
    /// to pause).
    pub remaining: u32,
}

/// One configured source's health for the caller.
#[derive(Clone, Debug, SimpleObject)]
pub struct SourceHealth {
    /// The configured name, the prefix of its ids.
    pub name: String,
    pub kind: SourceKind,
    pub status: SourceStatus,
    /// The latest attempt the upstream answered as designed (a 404 or 400
    /// included: those are the request's fault).
    pub last_success_at: Option<DateTime<Utc>>,
    /// The latest attempt that failed (timeout, 5xx, 429, 401, 403, an
    /// unreadable answer).
    pub last_failure_at: Option<DateTime<Utc>>,
    /// The `extensions.code` of that failure, or `UNAUTHENTICATED` when the
    /// caller has no usable credentials for the source.
    pub last_error_code: Option<String>,
    pub circuit: CircuitState,
    /// Null when the source has no outgoing limit or the caller no credentials.
    pub rate_limit: Option<OutgoingRateLimit>,
    /// Answers the cache holds for the caller from this source.
    pub cache_entries: u64,
    /// Their weight in bytes.
    pub cache_bytes: u64,
}

/// Every configured source's health for `caller`, in name order.
pub fn sources(ctx: &Context<'_>) -> Result<Vec<SourceHealth>> {
    let registry = ctx.data::<Arc<Registry>>()?;
    let caller = ctx.data::<Caller>()?;
    Ok(health(registry, caller))
}

fn health(registry: &Registry, caller: &Caller) -> Vec<SourceHealth> {
    let fingerprints: HashMap<&SourceName, _> = registry
        .sources()
        .filter_map(|source| Some((source.name(), caller.credentials(source.name()).ok()?.fingerprint().clone())))
        .collect();
    let mut cached: HashMap<SourceName, (u64, u64)> = HashMap::new();
    for ((source, _), usage) in registry.cache().usage(|source, fp| fingerprints.get(source) == Some(fp)) {
        let held = cached.entry(source).or_default();
        held.0 += usage.entries;
        held.1 += usage.bytes;
    }
    registry
        .sources()
        .map(|source| {
            let (cache_entries, cache_bytes) = cached.get(source.name()).copied().unwrap_or_default();
            let base = SourceHealth {
                name: source.name().to_string(),
                kind: source.kind(),
                status: SourceStatus::Down,
                last_success_at: None,
                last_failure_at: None,
                last_error_code: None,
                circuit: CircuitState::Closed,
                rate_limit: None,
                cache_entries,
                cache_bytes,
            };
            let Some(fingerprint) = fingerprints.get(source.name()) else {
                let code = caller.credentials(source.name()).err().map(|e| crate::error::upstream_code(&e.failure));
                return SourceHealth { last_error_code: code.map(str::to_owned), ..base };
            };
            let state = source.client().state(fingerprint);
            SourceHealth {
                status: status(state.circuit, &state.observed),
                last_success_at: state.observed.last_success_at,
                last_failure_at: state.observed.last_failure_at,
                last_error_code: state.observed.last_error_code.map(str::to_owned),
                circuit: state.circuit.into(),
                rate_limit: state.remaining.map(|left| OutgoingRateLimit {
                    requests: left.limit.requests,
                    per_ms: u64::try_from(left.limit.per.as_millis()).unwrap_or(u64::MAX),
                    remaining: left.requests,
                }),
                ..base
            }
        })
        .collect()
}

/// See [`SourceStatus`].
fn status(circuit: Circuit, observed: &Observed) -> SourceStatus {
    let rejected = matches!(observed.last_error_code, Some("UPSTREAM_UNAUTHORIZED" | "UPSTREAM_FORBIDDEN"));
    match circuit {
        Circuit::Open => SourceStatus::Down,
        _ if observed.failing && rejected => SourceStatus::Down,
        Circuit::HalfOpen => SourceStatus::Degraded,
        Circuit::Closed if observed.failing => SourceStatus::Degraded,
        Circuit::Closed => SourceStatus::Ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_circuit_and_the_latest_outcome() {
        let failing = |code| Observed { last_error_code: Some(code), failing: true, ..Observed::default() };
        let recovered = Observed { failing: false, ..failing("UPSTREAM_TIMEOUT") };
        assert_eq!(status(Circuit::Closed, &Observed::default()), SourceStatus::Ready);
        assert_eq!(status(Circuit::Closed, &recovered), SourceStatus::Ready);
        assert_eq!(status(Circuit::Closed, &failing("UPSTREAM_TIMEOUT")), SourceStatus::Degraded);
        assert_eq!(status(Circuit::HalfOpen, &recovered), SourceStatus::Degraded);
        assert_eq!(status(Circuit::Closed, &failing("UPSTREAM_UNAUTHORIZED")), SourceStatus::Down);
        assert_eq!(status(Circuit::Open, &recovered), SourceStatus::Down);
    }
}

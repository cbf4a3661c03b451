//! Settled history: ledger responses for date windows that ended long
//! enough ago (`settled_after_secs`) are kept for a long time-to-live
//! (`settled_ttl_secs`) instead of the ledger's few seconds, and kept
//! correct by a change probe. At most every `change_probe_secs`, per source
//! and caller, one upstream call asks what was created or modified since the
//! last probe; the kept windows those entries are dated in are dropped. A
//! back-dated entry therefore shows at most one probe interval late.
//!
//! A probe that fails drops every settled window of that caller and keeps
//! nothing as settled until a probe succeeds (then windows follow the
//! ordinary ledger time-to-live): a window that may be stale is never served
//! because the check could not run. The next probe, again at most one
//! interval later, asks from the last successful one, so nothing is missed.
//!
//! Times come from the injected [`Clock`]; the entries' cache lifetimes
//! themselves are moka's.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::auth::Fingerprint;
use super::error::UpstreamError;
use crate::clock::Clock;
use crate::config::CacheConfig;
use crate::model::SourceName;

/// The entry dates an upstream ledger response can hold: `[from, to]`, open
/// below when `from` is `None`. Set on a call by the connector that knows
/// the window it asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Covers {
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
}

impl Covers {
    fn holds(&self, at: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| from <= at) && at <= self.to
    }
}

/// What a change probe found.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// The entry dates of the records created or modified since the probe's time.
    pub entry_dates: Vec<DateTime<Utc>>,
    /// Every change is in `entry_dates` (the upstream had no further page);
    /// when not, every settled window is dropped.
    pub complete: bool,
}

/// One source's settings.
#[derive(Clone, Copy, Debug)]
struct Policy {
    after: chrono::Duration,
    ttl: Duration,
    probe_every: chrono::Duration,
}

/// One caller's probe of one source, and the settled windows it guards.
#[derive(Debug)]
struct Watch {
    /// Changes from this time on are not yet known.
    since: DateTime<Utc>,
    next_probe: DateTime<Utc>,
    /// The last probe failed: nothing counts as settled until one succeeds.
    failed: bool,
    /// The cache keys of the settled windows kept for this caller.
    windows: Vec<(Covers, Arc<str>)>,
}

type WatchKey = (Fingerprint, SourceName);

/// The settled-history bookkeeping of the shared cache.
#[derive(Debug)]
pub struct Settled {
    clock: Clock,
    policies: HashMap<String, Policy>,
    /// A plain mutex: never held across an await.
    watches: Mutex<HashMap<WatchKey, Watch>>,
}

impl Settled {
    pub fn new(config: &CacheConfig, clock: Clock) -> Self {
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
        let policies = config
            .sources
            .iter()
            .filter_map(|(name, o)| {
                let settled = o.settled()?;
                let policy = Policy {
                    after: secs(settled.after_secs),
                    ttl: Duration::from_secs(settled.ttl_secs),
                    probe_every: secs(settled.probe_secs),
                };
                Some((name.clone(), policy))
            })
            .collect();
        Self { clock, policies, watches: Mutex::default() }
    }

    pub fn enabled(&self, source: &SourceName) -> bool {
        self.policies.contains_key(source.as_str())
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, HashMap<WatchKey, Watch>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the change probe when one is due for this caller and source, and
    /// returns the cache keys to drop. The first read only starts the watch:
    /// nothing is kept yet that a change could have made stale.
    pub async fn probe<P, F>(&self, fingerprint: &Fingerprint, source: &SourceName, probe: P) -> Vec<Arc<str>>
    where
        P: FnOnce(DateTime<Utc>) -> F,
        F: Future<Output = Result<Option<Changes>, UpstreamError>>,
    {
        let Some(policy) = self.policies.get(source.as_str()) else { return Vec::new() };
        let now = self.clock.now();
        let key = (fingerprint.clone(), source.clone());
        let since = {
            let mut watches = self.watches();
            let watch = watches.entry(key.clone()).or_insert_with(|| Watch {
                since: now,
                next_probe: now + policy.probe_every,
                failed: false,
                windows: Vec::new(),
            });
            if now < watch.next_probe {
                return Vec::new();
            }
            // Claimed before the call, so concurrent reads do not probe too.
            watch.next_probe = now + policy.probe_every;
            watch.since
        };
        let outcome = probe(since).await;
        let mut watches = self.watches();
        let Some(watch) = watches.get_mut(&key) else { return Vec::new() };
        match outcome {
            Ok(Some(changes)) => {
                watch.failed = false;
                watch.since = now;
                let (dropped, kept) = std::mem::take(&mut watch.windows).into_iter().partition(|(covers, _)| {
                    !changes.complete || changes.entry_dates.iter().any(|at| covers.holds(*at))
                });
                watch.windows = kept;
                metrics::counter!("settled_probes_total", "source" => source.to_string(), "outcome" => "ok")
                    .increment(1);
                dropped.into_iter().map(|(_, key)| key).collect::<Vec<_>>()
            }
            // A source that cannot probe is refused by the configuration;
            // should one answer so anyway, nothing may count as settled.
            Ok(None) | Err(_) => {
                watch.failed = true;
                metrics::counter!("settled_probes_total", "source" => source.to_string(), "outcome" => "failed")
                    .increment(1);
                tracing::warn!(source = %source, "change probe failed: settled windows dropped until one succeeds");
                std::mem::take(&mut watch.windows).into_iter().map(|(_, key)| key).collect()
            }
        }
    }

    /// How long a response covering `covers` may be kept as settled history:
    /// `None` when it is not settled (recent, no window, the source not
    /// configured, or this caller's last probe failed or none started).
    pub fn keep_for(&self, fingerprint: &Fingerprint, source: &SourceName, covers: Option<Covers>) -> Option<Duration> {
        let policy = self.policies.get(source.as_str())?;
        if covers?.to > self.clock.now() - policy.after {
            return None;
        }
        let watches = self.watches();
        let watch = watches.get(&(fingerprint.clone(), source.clone()))?;
        (!watch.failed).then_some(policy.ttl)
    }

    /// Records a settled window kept under `key`, fetched from `started` on.
    /// False when a probe ran while it was fetched (its answer may predate a
    /// change the probe already reported) or failed since: then the caller
    /// drops it again.
    pub fn kept(
        &self,
        fingerprint: &Fingerprint,
        source: &SourceName,
        covers: Covers,
        key: Arc<str>,
        started: DateTime<Utc>,
    ) -> bool {
        let mut watches = self.watches();
        match watches.get_mut(&(fingerprint.clone(), source.clone())) {
            Some(watch) if !watch.failed && watch.since <= started => {
                watch.windows.push((covers, key));
                true
            }
            _ => false,
        }
    }

    /// How long until this caller's next change probe of `source` is due:
    /// `None` when the source has no probe. Nothing built from its ledger
    /// may be kept longer, or it would hide what that probe finds.
    pub fn until_probe(&self, fingerprint: &Fingerprint, source: &SourceName) -> Option<Duration> {
        let policy = self.policies.get(source.as_str())?;
        let next = self
            .watches()
            .get(&(fingerprint.clone(), source.clone()))
            .map_or(self.clock.now() + policy.probe_every, |watch| watch.next_probe);
        Some((next - self.clock.now()).to_std().unwrap_or(Duration::ZERO))
    }

    /// The time a fetch starts, for [`Settled::kept`].
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

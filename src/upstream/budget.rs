//! How many upstream calls one GraphQL operation may make, and its fair
//! share of each source's outgoing limiter. The schema sets a [`CallBudget`]
//! around each operation (`schema::limits::budget`); the client
//! charges it for every attempt it sends, so every connector, walk and
//! paging loop is covered without code of its own. Answers from the cache or
//! from a fetch shared with another request cost nothing: no attempt is sent.
//! A task-local for the reason the deadline is one (`deadline`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::auth::Fingerprint;
use super::error::UpstreamFailure;
use crate::model::SourceName;

/// The calls one operation may still make, and its limiter shares.
#[derive(Debug)]
pub struct CallBudget {
    limit: usize,
    used: AtomicUsize,
    /// Per source and credential: the permits this operation may hold at once
    /// of that limiter key (see [`share`]).
    shares: Mutex<HashMap<(SourceName, Fingerprint), Arc<Semaphore>>>,
}

impl CallBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, used: AtomicUsize::new(0), shares: Mutex::default() })
    }

    /// Calls made so far.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }

    /// Takes one call, or fails with `BudgetExhausted` when none is left.
    fn charge(&self) -> Result<(), UpstreamFailure> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| (used < self.limit).then_some(used + 1))
            .map(|_| ())
            .map_err(|_| UpstreamFailure::BudgetExhausted { limit: self.limit })
    }

    fn share(&self, source: &SourceName, fingerprint: &Fingerprint, permits: usize) -> Arc<Semaphore> {
        let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        shares.entry((source.clone(), fingerprint.clone())).or_insert_with(|| Arc::new(Semaphore::new(permits))).clone()
    }
}

tokio::task_local! {
    static BUDGET: Arc<CallBudget>;
}

/// Runs `work` charging `budget`.
pub async fn within<F: Future>(budget: Arc<CallBudget>, work: F) -> F::Output {
    BUDGET.scope(budget, work).await
}

/// The budget of the work in progress; `None` outside an operation
/// (readiness probes), which nothing bounds.
pub fn current() -> Option<Arc<CallBudget>> {
    BUDGET.try_with(Arc::clone).ok()
}

/// Fails with `BudgetExhausted` when the current budget has no call left.
pub fn check() -> Result<(), UpstreamFailure> {
    match current() {
        Some(budget) if budget.remaining() == 0 => Err(UpstreamFailure::BudgetExhausted { limit: budget.limit }),
        _ => Ok(()),
    }
}

/// Charges one upstream call to the current budget.
pub fn charge() -> Result<(), UpstreamFailure> {
    current().map_or(Ok(()), |budget| budget.charge())
}

/// Waits for one of the current operation's `permits` on the limiter key of
/// `source` and `fingerprint`, until `until`. Held for the whole attempt, it
/// caps what one request holds of that key (queued rate-limit slots and
/// calls in flight), so another request sharing the credentials finds its
/// turn after at most that many of this one's calls, not after all of them.
pub async fn share(
    source: &SourceName,
    fingerprint: &Fingerprint,
    permits: usize,
    until: Instant,
) -> Result<Option<OwnedSemaphorePermit>, UpstreamFailure> {
    let Some(budget) = current() else { return Ok(None) };
    let semaphore = budget.share(source, fingerprint, permits.max(1));
    match tokio::time::timeout_at(until, semaphore.acquire_owned()).await {
        // The semaphore is never closed, so acquiring cannot fail.
        Ok(permit) => Ok(permit.ok()),
        Err(_) => Err(UpstreamFailure::RateLimited { retry_after: None }),
    }
}

/// `tokio::spawn` that carries the current deadline, budget, freshness and
/// request context into the new task: the DataLoader spawner, whose batches run in
/// their own task.
pub fn spawn<F>(work: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let work = super::freshness::carry(crate::telemetry::request::carry(work));
    match current() {
        Some(budget) => super::deadline::spawn(BUDGET.scope(budget, work)),
        None => super::deadline::spawn(work),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::upstream::auth::{Credentials, FingerprintKey};

    #[tokio::test]
    async fn calls_are_charged_until_the_budget_is_spent() {
        assert_eq!(charge(), Ok(()), "no budget: no bound");
        let budget = CallBudget::new(2);
        let spent = within(budget.clone(), async {
            let first = [charge(), charge()];
            let spawned = spawn(async { charge() }).await.unwrap();
            (first, spawned)
        })
        .await;
        assert_eq!(spent, ([Ok(()), Ok(())], Err(UpstreamFailure::BudgetExhausted { limit: 2 })));
        assert_eq!((budget.used(), budget.remaining()), (2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_holds_at_most_its_share_of_a_key() {
        let fields = [("token".to_owned(), secrecy::SecretString::from("t"))].into();
        let fingerprint = Credentials::new(&FingerprintKey::random(), fields).fingerprint().clone();
        let source = SourceName::new("s");
        let until = || Instant::now() + Duration::from_secs(1);
        let (first, second) = within(CallBudget::new(10), async {
            let first = share(&source, &fingerprint, 1, until()).await.unwrap();
            let second = share(&source, &fingerprint, 1, until()).await;
            (first, second)
        })
        .await;
        assert!(first.is_some());
        assert_eq!(second.unwrap_err(), UpstreamFailure::RateLimited { retry_after: None });
        // Another operation has its own share of the same key.
        let other = within(CallBudget::new(10), share(&source, &fingerprint, 1, until())).await;
        assert!(other.unwrap().is_some());
    }
}

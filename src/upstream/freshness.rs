//! How long the answer of one GraphQL operation stays true: the shortest
//! time any upstream answer it was built from stays fresh. The server sets
//! a [`Freshness`] around an operation it may keep whole (the response
//! cache); the upstream cache reports into it on every hit and every fetch,
//! and anything it cannot bound (an uncached resource, a failed or stale
//! answer, live gateway state) makes the operation unkeepable. A task-local
//! for the reason the deadline is one (`deadline`); `budget::spawn` carries
//! it into the loader tasks.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What one operation's upstream answers allow.
#[derive(Debug, Default)]
pub struct Freshness(Mutex<Bound>);

#[derive(Debug, Default)]
struct Bound {
    /// The shortest freshness left of any answer used; `None`: none used yet.
    shortest: Option<Duration>,
    unkeepable: bool,
}

impl Freshness {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// How long the operation's answer may be kept: `None` when it may not
    /// (something unbounded was used, or no upstream answer at all, so
    /// nothing says how long it holds).
    pub fn keepable_for(&self) -> Option<Duration> {
        let bound = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bound.shortest.filter(|ttl| !bound.unkeepable && !ttl.is_zero())
    }

    fn used(&self, fresh_for: Duration) {
        let mut bound = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bound.shortest = Some(bound.shortest.map_or(fresh_for, |shortest| shortest.min(fresh_for)));
    }

    fn spoil(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).unkeepable = true;
    }
}

tokio::task_local! {
    static CURRENT: Arc<Freshness>;
}

/// Runs `work` reporting into `freshness`.
pub async fn within<F: Future>(freshness: Arc<Freshness>, work: F) -> F::Output {
    CURRENT.scope(freshness, work).await
}

/// `work` reporting where the current work does: for spawned tasks.
pub fn carry<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let current = CURRENT.try_with(Arc::clone).ok();
    async move {
        match current {
            Some(freshness) => CURRENT.scope(freshness, work).await,
            None => work.await,
        }
    }
}

/// An upstream answer that stays fresh `fresh_for` more was used; zero (an
/// uncached resource) makes the operation unkeepable.
pub fn used(fresh_for: Duration) {
    let _ =
        CURRENT.try_with(|freshness| if fresh_for.is_zero() { freshness.spoil() } else { freshness.used(fresh_for) });
}

/// Something no time-to-live bounds was used (a failure, an expired
/// stand-in, the gateway's own live state): the answer must not be kept.
pub fn unkeepable() {
    let _ = CURRENT.try_with(|freshness| freshness.spoil());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_shortest_freshness_bounds_and_anything_unbounded_spoils() {
        let freshness = Freshness::new();
        within(freshness.clone(), async {
            used(Duration::from_secs(300));
            let spawned = tokio::spawn(carry(async { used(Duration::from_secs(5)) }));
            spawned.await.unwrap();
        })
        .await;
        assert_eq!(freshness.keepable_for(), Some(Duration::from_secs(5)));
        within(freshness.clone(), async { used(Duration::ZERO) }).await;
        assert_eq!(freshness.keepable_for(), None, "an uncached resource was used");
        let spoiled = Freshness::new();
        within(spoiled.clone(), async {
            used(Duration::from_secs(5));
            unkeepable();
        })
        .await;
        assert_eq!(spoiled.keepable_for(), None);
        assert_eq!(Freshness::new().keepable_for(), None, "no upstream answer: nothing bounds it");
        used(Duration::from_secs(1));
        unkeepable();
    }
}

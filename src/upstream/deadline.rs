//! The deadline of the GraphQL request an upstream call serves. The server
//! sets it once per request; every upstream call reads it, so attempt
//! timeouts, backoff and rate-limit waits all fit in what is left instead of
//! each stacking its own timeout on top. A task-local rather than a parameter:
//! it has to reach the HTTP client through `trait Source` and the connectors
//! without every signature in between carrying it.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline`, or the current one when that is earlier
/// (an inner scope can shorten a deadline, never extend it).
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    let deadline = current().map_or(deadline, |outer| outer.min(deadline));
    DEADLINE.scope(deadline, work).await
}

/// The deadline of the work in progress, if any.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Time left before the current deadline; `None` when there is none.
pub fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// `work`, given up when the current deadline passes (`None`): for waiting
/// on work shared with other requests (a coalesced fetch), which runs under
/// the deadline of whichever request started it, not this one's.
pub async fn bounded<F: Future>(work: F) -> Option<F::Output> {
    match current() {
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
        None => Some(work.await),
    }
}

/// `tokio::spawn` that carries the current deadline into the new task
/// (task-locals do not cross `spawn` by themselves): for DataLoader
/// spawners and other fan-outs that run upstream calls in their own task.
pub fn spawn<F>(work: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // The span goes along too, so a loader batch's trace hangs under the
    // request that caused it.
    let work = tracing::Instrument::in_current_span(work);
    match current() {
        Some(deadline) => tokio::spawn(DEADLINE.scope(deadline, work)),
        None => tokio::spawn(work),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_inner_scope_can_shorten_but_not_extend_the_deadline() {
        assert_eq!(current(), None);
        let outer = Instant::now() + Duration::from_secs(5);
        within(outer, async {
            assert_eq!(current(), Some(outer));
            within(outer + Duration::from_secs(10), async { assert_eq!(current(), Some(outer)) }).await;
            let shorter = outer - Duration::from_secs(4);
            within(shorter, async { assert_eq!(remaining(), Some(Duration::from_secs(1))) }).await;
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_work_is_given_up_at_the_deadline() {
        let slow = tokio::time::sleep(Duration::from_secs(8));
        let deadline = Instant::now() + Duration::from_secs(2);
        assert_eq!(within(deadline, bounded(slow)).await, None);
        assert_eq!(Instant::now(), deadline);
        assert_eq!(bounded(async { 7 }).await, Some(7), "no deadline: no bound");
    }

    #[tokio::test(start_paused = true)]
    async fn spawned_work_keeps_the_deadline() {
        let deadline = Instant::now() + Duration::from_secs(3);
        let seen = within(deadline, async { spawn(async { current() }).await.unwrap() }).await;
        assert_eq!(seen, Some(deadline));
        assert_eq!(spawn(async { current() }).await.unwrap(), None);
    }
}

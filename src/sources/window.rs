//! Newest-first over an upstream that filters by date but promises no order
//! (Trackstar). The ledger is read in half-open date windows walking back in
//! time: a window is read completely, then its entries are final, because
//! everything older lies in later windows. The window span adapts: it shrinks
//! when a window overflows one upstream page and grows when windows come back
//! thin or empty. Memory stays at about one upstream page and the calls per
//! page at a handful, however large the ledger.

use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use tracing::debug;

use super::{Batch, LedgerScan, ScanRequest};
use crate::ledger::Watermark;
use crate::model::LedgerEntry;
use crate::upstream::{UpstreamError, UpstreamFailure};

/// The half-open interval `[from, to)`; `None` leaves that side open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One upstream page of a window.
#[derive(Debug, Default)]
pub struct WindowPage {
    pub entries: Vec<LedgerEntry>,
    pub next_page: Option<String>,
}

/// How a connector reads one window.
#[async_trait]
pub trait WindowFetch: Send + Sync {
    async fn fetch_window(&self, window: Window, page_token: Option<&str>) -> Result<WindowPage, UpstreamError>;
}

const MIN_SPAN: Duration = Duration::seconds(1);
/// Beyond this the window is simply left open below.
const MAX_SPAN: Duration = Duration::days(365 * 200);

/// A [`LedgerScan`] over a [`WindowFetch`].
#[derive(Debug)]
pub struct WindowScan<F> {
    fetch: F,
    /// Exclusive end of the next window; `None`: open (no upper bound yet).
    upper: Option<DateTime<Utc>>,
    /// Inclusive floor from the caller's filter.
    floor: Option<DateTime<Utc>>,
    span: Duration,
    want: usize,
    page_limit: usize,
    exhausted: bool,
}

impl<F: WindowFetch> WindowScan<F> {
    /// `page_limit` is the upstream's page size: a window that fills a page
    /// is too wide. `default_span` is used unless the cursor carries a hint.
    pub fn new(fetch: F, request: &ScanRequest, page_limit: usize, default_span: Duration) -> Self {
        let range = &request.filter.entry_date;
        let second = |d: DateTime<Utc>| d.duration_trunc(MIN_SPAN).unwrap_or(d);
        // A bound past the last representable second bounds nothing (and a
        // client can send one: GraphQL dates and cursors reach that far).
        let next_second = |d: DateTime<Utc>| second(d).checked_add_signed(MIN_SPAN);
        // Whole-second bounds, each widened so no entry inside is cut off;
        // the residual step re-applies the caller's exact bounds.
        let uppers = [
            range.lt.and_then(|d| if second(d) == d { Some(d) } else { next_second(d) }),
            range.lte.and_then(next_second),
            request.position.as_ref().and_then(|p| p.entry_date).and_then(next_second),
        ];
        let upper = uppers.into_iter().flatten().min();
        let floor = range.gt.into_iter().chain(range.gte).max().map(second);
        let span = request
            .hint
            .as_ref()
            .and_then(|h| h.get("span")?.as_i64())
            .and_then(Duration::try_seconds)
            .unwrap_or(default_span)
            .clamp(MIN_SPAN, MAX_SPAN);
        let exhausted = matches!((upper, floor), (Some(u), Some(f)) if u <= f);
        Self { fetch, upper, floor, span, want: request.want.max(1), page_limit, exhausted }
    }

    /// The next window and whether it reaches the bottom of the ledger.
    fn next_window(&self) -> (Window, bool) {
        // Walk down from now even below a far-future bound (`lt: 9999-…`):
        // the first window still reaches up to the bound, and no empty
        // windows between the bound and now cost upstream calls.
        let now = Utc::now().duration_trunc(MIN_SPAN).unwrap_or_else(|_| Utc::now());
        let top = self.upper.map_or(now, |upper| upper.min(now));
        let earliest = Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).single();
        let from = top.checked_sub_signed(self.span).filter(|from| Some(*from) > earliest);
        match (from, self.floor) {
            (Some(from), Some(floor)) if from <= floor => (Window { from: Some(floor), to: self.upper }, true),
            (None, floor) => (Window { from: floor, to: self.upper }, true),
            (Some(from), _) => (Window { from: Some(from), to: self.upper }, false),
        }
    }

    /// Reads every page of `window`. A page token the upstream no longer
    /// accepts restarts the window once from its first page: the window's
    /// bounds, not the token, are the position.
    async fn read_window(&self, window: Window, first: WindowPage) -> Result<Vec<LedgerEntry>, UpstreamError> {
        let mut restarted = false;
        let mut entries = first.entries;
        let mut next = first.next_page;
        while let Some(token) = next {
            match self.fetch.fetch_window(window, Some(&token)).await {
                Ok(page) => {
                    entries.extend(page.entries);
                    next = page.next_page;
                }
                Err(e) if e.failure == UpstreamFailure::PageTokenInvalid && !restarted => {
                    debug!(source = %e.source_name, "page token rejected; rereading the window");
                    restarted = true;
                    let page = self.fetch.fetch_window(window, None).await?;
                    entries = page.entries;
                    next = page.next_page;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(entries)
    }

    fn adapt_span(&mut self, found: usize) {
        let factor = match found {
            0 => 4.0,
            n if n < self.want => (2.0 * self.want as f64 / n as f64).clamp(2.0, 16.0),
            n if n > self.page_limit / 2 => 0.5,
            _ => 1.0,
        };
        let seconds = (self.span.num_seconds() as f64 * factor).round() as i64;
        self.span = Duration::try_seconds(seconds).unwrap_or(MAX_SPAN).clamp(MIN_SPAN, MAX_SPAN);
    }
}

#[async_trait]
impl<F: WindowFetch> LedgerScan for WindowScan<F> {
    async fn next_batch(&mut self) -> Result<Batch, UpstreamError> {
        if self.exhausted {
            return Ok(Batch { entries: Vec::new(), watermark: Watermark::Exhausted });
        }
        loop {
            let (window, reaches_bottom) = self.next_window();
            let first = self.fetch.fetch_window(window, None).await?;
            if first.next_page.is_some() && self.span > MIN_SPAN {
                // Too dense to read in one page: narrow and try again.
                self.span = (self.span / 8).max(MIN_SPAN);
                continue;
            }
            let entries = self.read_window(window, first).await?;
            self.adapt_span(entries.len());
            let watermark = match (reaches_bottom, window.from) {
                (false, Some(from)) => {
                    self.upper = Some(from);
                    Watermark::AtOrAfter(from)
                }
                _ => {
                    self.exhausted = true;
                    Watermark::Exhausted
                }
            };
            return Ok(Batch { entries, watermark });
        }
    }

    fn hint(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "span": self.span.num_seconds() }))
    }
}

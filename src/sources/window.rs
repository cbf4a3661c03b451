//! Newest-first over an upstream that filters by date but promises no order
//! (Trackstar, BigLedger). The ledger is read in half-open date windows
//! walking back in time: a window is read completely, then its entries are
//! final, because everything older lies in later windows. The window span
//! adapts: it shrinks when a window overflows one upstream page and grows
//! when windows come back thin or empty. Memory stays at about one upstream
//! page and the calls per page at a handful, however large the ledger.
//!
//! Windows are over the date the upstream filters on. Usually that is the
//! entry date itself; a [`DateAxis`] describes upstreams where it is not: a
//! filter that only tells days apart, or records (a stock transfer) filtered
//! by their own date while their entries carry others (shipped, delivered).
//! The walk then widens its bounds and holds its watermark back by that
//! spread, so an entry is still released only once nothing newer can come.

use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use tracing::debug;

use super::{Batch, LedgerScan, ScanRequest};
use crate::clock::Clock;
use crate::ledger::{nameable, Watermark};
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

/// How the date an upstream filters on relates to its entries' dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateAxis {
    /// The narrowest window the upstream's filter tells apart (a second for
    /// timestamps, a day for dates): a window this narrow that still fills
    /// a page is read page by page instead of being narrowed further.
    pub granularity: Duration,
    /// An entry may be dated up to this long before the filtered date...
    pub lead: Duration,
    /// ...and up to this long after it.
    pub lag: Duration,
}

impl Default for DateAxis {
    /// The upstream filters on the entry date itself, to the second.
    fn default() -> Self {
        Self { granularity: MIN_SPAN, lead: Duration::zero(), lag: Duration::zero() }
    }
}

/// How a connector reads one window.
#[async_trait]
pub trait WindowFetch: Send + Sync {
    /// Every entry of the records whose filtered date lies in `window`
    /// (for the default axis: the entries dated in `window`).
    async fn fetch_window(&self, window: Window, page_token: Option<&str>) -> Result<WindowPage, UpstreamError>;

    fn axis(&self) -> DateAxis {
        DateAxis::default()
    }
}

const MIN_SPAN: Duration = Duration::seconds(1);
const CLOCK_GRID: Duration = Duration::minutes(1);
/// Beyond this the window is simply left open below.
const MAX_SPAN: Duration = Duration::days(365 * 200);

/// A [`LedgerScan`] over a [`WindowFetch`].
#[derive(Debug)]
pub struct WindowScan<F> {
    fetch: F,
    axis: DateAxis,
    /// Exclusive end of the next window; `None`: open (no upper bound yet).
    upper: Option<DateTime<Utc>>,
    /// Inclusive floor from the caller's filter.
    floor: Option<DateTime<Utc>>,
    span: Duration,
    /// A point with more than a page of entries between it and `upper`:
    /// windows stay narrower than that, so growing after an empty window
    /// and shrinking after an overflow bisect instead of oscillating.
    dense_from: Option<DateTime<Utc>>,
    want: usize,
    page_limit: usize,
    exhausted: bool,
    /// Where an open top lies (see `top`).
    now: DateTime<Utc>,
}

impl<F: WindowFetch> WindowScan<F> {
    /// `page_limit` is the upstream's page size: a window that fills a page
    /// is too wide. `default_span` is used unless the cursor carries a hint.
    pub fn new(fetch: F, request: &ScanRequest, page_limit: usize, default_span: Duration, clock: Clock) -> Self {
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
        // Records dated up to `lead` after an entry can hold it; records
        // dated more than `lag` before one cannot.
        let axis = fetch.axis();
        let upper = uppers.into_iter().flatten().min().and_then(|u| nameable(u.checked_add_signed(axis.lead)?));
        let floor = range
            .gt
            .into_iter()
            .chain(range.gte)
            .max()
            .map(second)
            .and_then(|f| nameable(f.checked_sub_signed(axis.lag)?));
        let span = request
            .hint
            .as_ref()
            .and_then(|h| h.get("span")?.as_i64())
            .and_then(Duration::try_seconds)
            .unwrap_or(default_span)
            .clamp(axis.granularity, MAX_SPAN);
        let exhausted = matches!((upper, floor), (Some(u), Some(f)) if u <= f);
        let now = clock.now();
        let now = now.duration_trunc(CLOCK_GRID).unwrap_or(now);
        let want = request.want.max(1);
        Self { fetch, axis, upper, floor, span, dense_from: None, want, page_limit, exhausted, now }
    }

    /// The top of the next window. An open top is read from "now" (taken
    /// once per scan from the source's clock) on a one-minute grid, so that the
    /// same query asked again within the minute makes the same upstream
    /// calls, which the ledger cache can answer. The window is open above,
    /// so where its top lies never hides an entry.
    ///
    /// A far-future bound (`lt: 9999-…`) is walked down from now too: the
    /// first window still reaches up to the bound, and the empty years
    /// between the bound and now cost no upstream calls.
    fn top(&self) -> DateTime<Utc> {
        self.upper.map_or(self.now, |upper| upper.min(self.now))
    }

    /// Half the distance to the known dense point: the widest window worth trying.
    fn bisect(&self) -> Option<Duration> {
        self.dense_from.map(|dense| self.whole_seconds((self.top() - dense).num_seconds() / 2))
    }

    fn next_window(&self) -> (Window, bool) {
        let top = self.top();
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
        self.span = self.whole_seconds((self.span.num_seconds() as f64 * factor).round() as i64);
    }

    /// Windows start and end on whole seconds, the upstreams' date
    /// precision, and are never narrower than the filter can tell apart.
    fn whole_seconds(&self, seconds: i64) -> Duration {
        Duration::try_seconds(seconds).unwrap_or(MAX_SPAN).clamp(self.axis.granularity, MAX_SPAN)
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
            // A window clamped to the caller's floor is narrower than the span.
            let width = window.from.map_or(self.span, |from| self.top() - from);
            if first.next_page.is_some() && width > self.axis.granularity {
                // Too dense to read in one page: narrow and try again.
                self.dense_from = window.from;
                let narrower = self.whole_seconds(width.num_seconds() / 2);
                self.span = self.bisect().unwrap_or(narrower).min(narrower);
                continue;
            }
            let entries = self.read_window(window, first).await?;
            self.adapt_span(entries.len());
            if self.dense_from.is_some_and(|dense| window.from.is_none_or(|from| from <= dense)) {
                self.dense_from = None;
            }
            let watermark = match (reaches_bottom, window.from) {
                (false, Some(from)) => {
                    self.upper = Some(from);
                    if let Some(widest) = self.bisect() {
                        self.span = self.span.min(widest);
                    }
                    // Unread records are dated before `from`: their
                    // entries are dated before `from + lag`.
                    Watermark::AtOrAfter(from.checked_add_signed(self.axis.lag).unwrap_or(from))
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::ledger::{Collector, SourceFilter, TimeRange};
    use crate::model::{EventType, SortKey, SourceKind, SourceName};
    use crate::sources::drive;

    /// An in-memory upstream that filters by date but returns pages in an
    /// order unrelated to dates, with opaque offset tokens.
    struct Unordered {
        /// Sorted by date, for range lookups.
        entries: Vec<LedgerEntry>,
        page_limit: usize,
        calls: AtomicUsize,
        largest_page: AtomicUsize,
    }

    fn entry(id: String, at: DateTime<Utc>) -> LedgerEntry {
        LedgerEntry::new(SourceName::new("t"), SourceKind::Trackstar, id, Some(at), EventType::Other)
    }

    /// The instant the walks run at, where a test does not sweep many.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 30, 10, 30, 0).unwrap()
    }

    /// Ledgers are written up to the present: to the hour `now` lies in.
    fn end(now: DateTime<Utc>) -> DateTime<Utc> {
        now.duration_trunc(Duration::hours(1)).unwrap()
    }

    impl Unordered {
        /// `count` entries over `days` before `end(now())`, with same-second bursts.
        fn new(count: usize, days: i64, page_limit: usize) -> Arc<Self> {
            let mut rng = SmallRng::seed_from_u64(count as u64);
            let end = end(now());
            let mut at = end;
            let mut entries: Vec<LedgerEntry> = (0..count)
                .map(|n| {
                    if !rng.random_bool(0.1) {
                        at = end - Duration::seconds(rng.random_range(1..days * 86_400));
                    }
                    entry(format!("{:08x}", n.wrapping_mul(2_654_435_761) % 4_294_967_291), at)
                })
                .collect();
            entries.sort_by_key(|e| e.entry_date);
            Arc::new(Self { entries, page_limit, calls: AtomicUsize::new(0), largest_page: AtomicUsize::new(0) })
        }

        fn expected(&self) -> Vec<String> {
            let mut keys: Vec<SortKey> = self.entries.iter().map(LedgerEntry::sort_key).collect();
            keys.sort();
            keys.into_iter().map(|k| k.native_id).collect()
        }
    }

    #[async_trait]
    impl WindowFetch for Arc<Unordered> {
        async fn fetch_window(&self, window: Window, page_token: Option<&str>) -> Result<WindowPage, UpstreamError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let start = window.from.map_or(0, |from| self.entries.partition_point(|e| e.entry_date < Some(from)));
            let stop =
                window.to.map_or(self.entries.len(), |to| self.entries.partition_point(|e| e.entry_date < Some(to)));
            let mut matching: Vec<&LedgerEntry> = self.entries[start..stop.max(start)].iter().collect();
            // Upstream order: by id, which has nothing to do with dates.
            matching.sort_by(|a, b| a.native_id.cmp(&b.native_id));
            let offset: usize = page_token.map_or(0, |t| t.parse().unwrap());
            let page: Vec<LedgerEntry> =
                matching.iter().skip(offset).take(self.page_limit).map(|e| (*e).clone()).collect();
            self.largest_page.fetch_max(page.len(), Ordering::Relaxed);
            let next_page = (offset + page.len() < matching.len()).then(|| (offset + page.len()).to_string());
            Ok(WindowPage { entries: page, next_page })
        }
    }

    /// One page the way the registry asks for it.
    async fn page(
        upstream: &Arc<Unordered>,
        position: Option<SortKey>,
        want: usize,
        hint: Option<serde_json::Value>,
    ) -> (Vec<LedgerEntry>, bool, Option<serde_json::Value>) {
        let request = ScanRequest { filter: SourceFilter::default(), position: position.clone(), want, hint };
        let clock = Clock::Fixed(now());
        let scan = WindowScan::new(upstream.clone(), &request, upstream.page_limit, Duration::days(1), clock);
        let collector = Collector::new(position, SourceFilter::default(), want);
        drive(Box::new(scan), collector).await.unwrap()
    }

    #[tokio::test]
    async fn walking_an_unordered_upstream_yields_each_entry_once_in_order() {
        for (count, want, limit) in [(0, 5, 10), (1, 5, 10), (500, 7, 50), (2000, 100, 100), (300, 1, 20)] {
            let upstream = Unordered::new(count, 400, limit);
            let (mut position, mut hint, mut walked) = (None, None, Vec::new());
            loop {
                let (entries, more, next_hint) = page(&upstream, position.clone(), want, hint).await;
                walked.extend(entries.iter().map(|e| e.native_id.clone()));
                position = entries.last().map(LedgerEntry::sort_key);
                hint = next_hint;
                if !more {
                    break;
                }
                assert!(!entries.is_empty(), "a page claiming more must not be empty");
            }
            assert_eq!(walked, upstream.expected(), "count={count} want={want} limit={limit}");
            assert!(upstream.largest_page.load(Ordering::Relaxed) <= limit);
        }
    }

    #[tokio::test]
    async fn a_million_entry_ledger_costs_few_calls_and_one_page_of_memory_per_page() {
        let upstream = Unordered::new(1_000_000, 730, 1000);
        let all = upstream.expected();
        // Pages at the top, then from positions deep inside the ledger.
        for start in [0, 1, 250_000, 600_000, 999_000] {
            let position = (start > 0)
                .then(|| upstream.entries.iter().find(|e| e.native_id == all[start - 1]).unwrap().sort_key());
            let (mut position, mut hint) = (position, None);
            for n in 0..3 {
                let before = upstream.calls.load(Ordering::Relaxed);
                let (entries, _, next_hint) = page(&upstream, position.clone(), 100, hint).await;
                let calls = upstream.calls.load(Ordering::Relaxed) - before;
                let offset = start + n * 100;
                let wanted = &all[offset..(offset + 100).min(all.len())];
                assert_eq!(
                    entries.iter().map(|e| e.native_id.as_str()).collect::<Vec<_>>(),
                    wanted,
                    "start={start} page={n}"
                );
                // With the learned window carried in the hint, later pages are cheap.
                let bound = if n == 0 { 6 } else { 3 };
                assert!(calls <= bound, "start={start} page={n}: {calls} upstream calls");
                position = entries.last().map(LedgerEntry::sort_key);
                hint = next_hint;
            }
        }
        // Never more than one upstream page in memory at once.
        assert_eq!(upstream.largest_page.load(Ordering::Relaxed), 1000);
    }

    #[tokio::test]
    async fn a_dense_range_narrower_than_the_span_is_read_without_narrowing_in_vain() {
        for now in instants() {
            // 2500 entries in one second, asked for by a one-second range with a
            // day-wide span: the window is already as narrow as it can be.
            let at = end(now) - Duration::days(1);
            let entries: Vec<LedgerEntry> = (0..2500).map(|n| entry(format!("{n:05}"), at)).collect();
            let upstream = Arc::new(Unordered {
                entries,
                page_limit: 1000,
                calls: AtomicUsize::new(0),
                largest_page: AtomicUsize::new(0),
            });
            let range = TimeRange { gte: Some(at), lte: Some(at), ..Default::default() };
            let filter = SourceFilter { entry_date: range, ..Default::default() };
            let request = ScanRequest { filter: filter.clone(), position: None, want: 10, hint: None };
            let scan = WindowScan::new(upstream.clone(), &request, 1000, Duration::days(1), Clock::Fixed(now));
            let (first, _, _) = drive(Box::new(scan), Collector::new(None, filter, 10)).await.unwrap();
            assert_eq!(first.iter().map(|e| e.native_id.as_str()).collect::<Vec<_>>(), upstream.expected()[..10]);
            // The window's pages, nothing else.
            assert_eq!(upstream.calls.load(Ordering::Relaxed), 2500usize.div_ceil(1000), "at {now}");
        }
    }

    #[tokio::test]
    async fn a_ledger_that_went_quiet_long_ago_is_found_by_bisection() {
        // 200k entries over a year that ended a year ago: the first page has
        // to cross a year of nothing above a dense region.
        let mut entries = Unordered::new(200_000, 365, 1000).entries.clone();
        for e in &mut entries {
            e.entry_date = e.entry_date.map(|d| d - Duration::days(365));
        }
        let upstream = Arc::new(Unordered {
            entries,
            page_limit: 1000,
            calls: AtomicUsize::new(0),
            largest_page: AtomicUsize::new(0),
        });
        let (first, _, _) = page(&upstream, None, 20, None).await;
        assert_eq!(first.iter().map(|e| e.native_id.as_str()).collect::<Vec<_>>(), upstream.expected()[..20]);
        let calls = upstream.calls.load(Ordering::Relaxed);
        assert!(calls <= 20, "{calls} calls");
    }

    #[tokio::test]
    async fn a_window_denser_than_a_page_at_one_second_is_read_page_by_page() {
        // 2500 entries in the same second: no window can be narrower.
        let at = end(now()) - Duration::days(1);
        let mut entries: Vec<LedgerEntry> = (0..2500).map(|n| entry(format!("{n:05}"), at)).collect();
        entries.push(entry("older".into(), at - Duration::days(3)));
        entries.sort_by_key(|e| e.entry_date);
        let upstream = Arc::new(Unordered {
            entries,
            page_limit: 1000,
            calls: AtomicUsize::new(0),
            largest_page: AtomicUsize::new(0),
        });
        let (first, more, _) = page(&upstream, None, 10, None).await;
        assert!(more);
        assert_eq!(first.iter().map(|e| e.native_id.as_str()).collect::<Vec<_>>(), upstream.expected()[..10]);
    }

    /// An upstream of documents filtered by whole days, each holding
    /// entries dated up to `LEAD` before and `LAG` after its day (stock
    /// transfers, say), listed in an order unrelated to dates.
    struct DayDocuments {
        /// (day, entries), sorted by day.
        documents: Vec<(DateTime<Utc>, Vec<LedgerEntry>)>,
        page_limit: usize,
        calls: AtomicUsize,
    }

    const LEAD: Duration = Duration::days(3);
    const LAG: Duration = Duration::days(5);

    impl DayDocuments {
        /// `count` documents over the `days` up to `today`.
        fn new(count: usize, days: i64, page_limit: usize, today: DateTime<Utc>) -> Arc<Self> {
            let mut rng = SmallRng::seed_from_u64(count as u64 + 7);
            let mut documents: Vec<(DateTime<Utc>, Vec<LedgerEntry>)> = (0..count)
                .map(|n| {
                    let day = today - Duration::days(rng.random_range(0..days));
                    let entries = (0..rng.random_range(1..=3))
                        .map(|line| {
                            let offset = rng.random_range(-LEAD.num_seconds()..=LAG.num_seconds());
                            entry(format!("{n:05}:{line}"), day + Duration::seconds(offset))
                        })
                        .collect();
                    (day, entries)
                })
                .collect();
            documents.sort_by_key(|(day, _)| *day);
            Arc::new(Self { documents, page_limit, calls: AtomicUsize::new(0) })
        }

        fn expected(&self, range: &TimeRange) -> Vec<String> {
            let mut keys: Vec<SortKey> = self
                .documents
                .iter()
                .flat_map(|(_, entries)| entries)
                .filter(|e| range.contains(e.entry_date))
                .map(LedgerEntry::sort_key)
                .collect();
            keys.sort();
            keys.into_iter().map(|k| k.native_id).collect()
        }
    }

    #[async_trait]
    impl WindowFetch for Arc<DayDocuments> {
        async fn fetch_window(&self, window: Window, page_token: Option<&str>) -> Result<WindowPage, UpstreamError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            // Whole days only: a window selects the documents whose day starts in it.
            let mut matching: Vec<&(DateTime<Utc>, Vec<LedgerEntry>)> = self
                .documents
                .iter()
                .filter(|(day, _)| window.from.is_none_or(|f| *day >= f) && window.to.is_none_or(|t| *day < t))
                .collect();
            matching.sort_by(|a, b| b.1[0].native_id.cmp(&a.1[0].native_id));
            let offset: usize = page_token.map_or(0, |t| t.parse().unwrap());
            let page: Vec<LedgerEntry> =
                matching.iter().skip(offset).take(self.page_limit).flat_map(|(_, e)| e.clone()).collect();
            let read = (offset + self.page_limit).min(matching.len());
            let next_page = (read < matching.len()).then(|| read.to_string());
            Ok(WindowPage { entries: page, next_page })
        }

        fn axis(&self) -> DateAxis {
            DateAxis { granularity: Duration::days(1), lead: LEAD, lag: LAG }
        }
    }

    #[tokio::test]
    async fn entries_spread_around_their_documents_day_come_out_once_in_order() {
        let today = Clock::Fixed(now()).today();
        let ranges = [
            TimeRange::default(),
            TimeRange {
                gte: Some(today - Duration::days(40)),
                lt: Some(today - Duration::days(10)),
                ..Default::default()
            },
        ];
        for (count, want, limit) in [(300, 1, 10), (300, 7, 5), (600, 50, 20), (40, 500, 3)] {
            for range in &ranges {
                let upstream = DayDocuments::new(count, 120, limit, today);
                let filter = SourceFilter { entry_date: range.clone(), ..Default::default() };
                let (mut position, mut hint, mut walked) = (None, None, Vec::new());
                loop {
                    let request = ScanRequest { filter: filter.clone(), position: position.clone(), want, hint };
                    let scan =
                        WindowScan::new(upstream.clone(), &request, limit, Duration::days(2), Clock::Fixed(now()));
                    let collector = Collector::new(position, filter.clone(), want);
                    let (entries, more, next_hint) = drive(Box::new(scan), collector).await.unwrap();
                    walked.extend(entries.iter().map(|e| e.native_id.clone()));
                    position = entries.last().map(LedgerEntry::sort_key);
                    hint = next_hint;
                    if !more {
                        break;
                    }
                }
                assert_eq!(walked, upstream.expected(range), "count={count} want={want} limit={limit} {range:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_day_denser_than_a_page_is_read_page_by_page_without_narrowing_below_a_day() {
        // Every walk: two overflowing probes while narrowing (4 days, then 2)
        // stop at one day, the filter's granularity; that day's pages are
        // read; then empty windows below it until `want + 1` entries before
        // the bound are final. The window walk starts at "now" on its grid
        // and the documents lie on a midnight, so the time of day decides
        // how many: the second empty window ends 6 days below the top and
        // releases the entries dated from a day below the top (its start
        // plus the lag); if fewer than `want + 1` of them are before the
        // bound, a third is read.
        let (documents, page_limit, want): (usize, usize, usize) = (60, 10, 5);
        let read = 2 + documents.div_ceil(page_limit);
        for now in instants() {
            let clock = Clock::Fixed(now);
            let today = clock.today();
            let top = now.duration_trunc(CLOCK_GRID).unwrap();
            // All on one day, `documents / page_limit` pages: narrowing cannot help.
            let upstream = DayDocuments::new(documents, 1, page_limit, today);
            // Bounds above "now" once the lead is added, so the walk starts
            // at now: before yesterday (no entry is released by the second
            // empty window, whatever the hour), and before today.
            for bound in [today - Duration::days(1), today] {
                upstream.calls.store(0, Ordering::Relaxed);
                let range = TimeRange { lt: Some(bound), ..TimeRange::default() };
                let filter = SourceFilter { entry_date: range.clone(), ..SourceFilter::default() };
                let request = ScanRequest { filter: filter.clone(), position: None, want, hint: None };
                let scan = WindowScan::new(upstream.clone(), &request, page_limit, Duration::days(4), clock);
                let (entries, _, _) = drive(Box::new(scan), Collector::new(None, filter, want)).await.unwrap();
                let expected = upstream.expected(&range);
                assert_eq!(entries.iter().map(|e| e.native_id.clone()).collect::<Vec<_>>(), expected[..want]);
                let released = TimeRange { gte: Some(top - Duration::days(1)), ..range };
                let empty_windows = if upstream.expected(&released).len() > want { 2 } else { 3 };
                let calls = upstream.calls.load(Ordering::Relaxed);
                assert_eq!(calls, read + empty_windows, "at {now}, entries before {bound}");
            }
        }
    }

    /// The instants the walks with exact call counts run at: every hour (and
    /// the last second of it, for the minute grid) over several days, a leap
    /// day, a year end, and the hours around daylight-saving switches. The
    /// gateway reads and computes in UTC only, so a local switch changes
    /// nothing it sees; the sweep holds the UTC instants at which Berlin
    /// and New York switch, where a computation in local time would go wrong.
    fn instants() -> Vec<DateTime<Utc>> {
        let utc = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap();
        let hours = |from: DateTime<Utc>, count: i64| (0..count).map(move |h| from + Duration::hours(h));
        let switches = [
            utc(2026, 3, 8, 7),   // New York: 02:00 EST becomes 03:00 EDT
            utc(2026, 3, 29, 1),  // Berlin: 02:00 CET becomes 03:00 CEST
            utc(2026, 10, 25, 1), // Berlin: 03:00 CEST becomes 02:00 CET
            utc(2026, 11, 1, 6),  // New York: 02:00 EDT becomes 01:00 EST
        ];
        hours(utc(2026, 6, 28, 0), 3 * 24)
            .chain(hours(utc(2028, 2, 28, 12), 36))
            .chain(hours(utc(2026, 12, 31, 12), 24))
            .chain(switches.into_iter().flat_map(|at| hours(at - Duration::hours(3), 7)))
            .flat_map(|hour| [hour, hour + Duration::seconds(3599)])
            .collect()
    }
}

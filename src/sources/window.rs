//! Newest-first over an upstream that filters by date but promises no order
//! (Trackstar, BigLedger). The ledger is read in half-open date windows
//! walking back in time: a window is read completely, then its entries are
//! final, because everything older lies in later windows.
//!
//! Windows are sized from what the walk learned of the ledger (a
//! [`Density`]: records per second, and how many of them match the
//! caller's whole filter, including what only the gateway checks), so that a
//! window holds about the entries the page still needs: a filter that keeps
//! one record in a thousand widens the windows a thousandfold. A window may
//! span several upstream pages (up to [`MAX_PAGES`] planned), so a page of
//! `first` entries costs about `first / upstream page size` calls plus one
//! or two. A window denser than planned is abandoned after a page or two and
//! the next is at most half as wide; an empty one is followed by one probe
//! of everything below it (one record asked for): the end of a ledger costs
//! one call, not a walk down to 1900. The density is carried in the cursor,
//! so a deep page plans its first window as well as the page before it did.
//! Memory stays at about one upstream page plus the entries the page needs.
//!
//! Windows are over the date the upstream filters on. Usually that is the
//! entry date itself; a [`DateAxis`] describes upstreams where it is not: a
//! filter that only tells days apart, or records (a stock transfer) filtered
//! by their own date while their entries carry others (shipped, delivered).
//! The walk then widens its bounds and holds its watermark back by that
//! spread, so an entry is still released only once nothing newer can come.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use futures::future::try_join_all;
use tracing::debug;

use super::{Batch, LedgerScan, ScanRequest};
use crate::clock::Clock;
use crate::ledger::{nameable, Density, Hint, SourceFilter, Watermark};
use crate::model::{LedgerEntry, SortKey};
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
    /// Upstream records on the page, what the upstream's page size counts
    /// (ledger rows, or documents holding several entries).
    pub records: usize,
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

    /// Whether any record's filtered date lies in `window`, asked as cheaply
    /// as the upstream allows (a page of one record).
    async fn any_in(&self, window: Window) -> Result<bool, UpstreamError>;

    fn axis(&self) -> DateAxis {
        DateAxis::default()
    }
}

const MIN_SPAN: Duration = Duration::seconds(1);
const CLOCK_GRID: Duration = Duration::minutes(1);
/// Beyond this the window is simply left open below.
const MAX_SPAN: Duration = Duration::days(365 * 200);
/// The most upstream pages one window is planned to take: wider windows
/// cost fewer calls per entry, narrower ones read fewer entries in vain
/// when the density changes.
pub const MAX_PAGES: usize = 4;
/// After an empty window the next is at least this much wider: a quiet
/// stretch is crossed in a few calls.
const GROWTH: i64 = 16;

/// What the next window is sized for.
#[derive(Clone, Copy, Debug)]
struct Plan {
    width: Duration,
    /// Upstream pages it should take.
    pages: usize,
    /// Sized before any record was read: at most a bound from an abandoned
    /// window is known (or nothing, for the walk's first window).
    blind: bool,
}

/// How reading a window ended.
enum Read {
    /// Every page: the matching entries (the newest `want + 1` at most),
    /// how many matched and the records read.
    Complete { kept: Vec<LedgerEntry>, matched: usize, records: usize },
    /// Denser than planned: given up after `records` records.
    Abandoned { records: usize },
}

/// A [`LedgerScan`] over a [`WindowFetch`].
#[derive(Debug)]
pub struct WindowScan<F> {
    fetch: F,
    axis: DateAxis,
    /// Exclusive end of the next window; `None`: open (no upper bound yet).
    upper: Option<DateTime<Utc>>,
    /// Inclusive floor from the caller's filter.
    floor: Option<DateTime<Utc>>,
    /// What an entry must pass to count for the page.
    residual: SourceFilter,
    position: Option<SortKey>,
    want: usize,
    page_limit: usize,
    density: Density,
    /// The first window's width when no density is known.
    default_span: Duration,
    /// The dates of the newest `want + 1` matching entries found.
    found: BinaryHeap<Reverse<DateTime<Utc>>>,
    /// `[from, top)` holds at least this many records: learned from an
    /// abandoned window, it bounds the density from below until read.
    dense: Option<(DateTime<Utc>, f64)>,
    /// Width and records of the last window read.
    last: Option<(Duration, usize)>,
    /// The next window is at most this wide (half an abandoned one).
    cap: Option<Duration>,
    /// A probe found records below the empty windows since the last records.
    probed: bool,
    exhausted: bool,
    /// Where an open top lies (see `top`).
    now: DateTime<Utc>,
}

impl<F: WindowFetch> WindowScan<F> {
    /// `page_limit` is the upstream's page size. `default_span` is the first
    /// window's width unless the cursor's hint carries a density.
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
        let exhausted = matches!((upper, floor), (Some(u), Some(f)) if u <= f);
        let now = clock.now();
        let now = now.duration_trunc(CLOCK_GRID).unwrap_or(now);
        Self {
            fetch,
            axis,
            upper,
            floor,
            residual: request.residual.clone(),
            position: request.position.clone(),
            want: request.want.max(1),
            page_limit: page_limit.max(1),
            density: request.hint.as_ref().and_then(|h| h.walks.first().copied()).unwrap_or_default(),
            default_span: default_span.clamp(axis.granularity, MAX_SPAN),
            found: BinaryHeap::new(),
            dense: None,
            last: None,
            cap: None,
            probed: false,
            exhausted,
            now,
        }
    }

    /// What the walk learned so far, for the next page's hint.
    pub fn density(&self) -> Density {
        self.density
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

    /// Records per second: the learned density, or more where an abandoned
    /// window showed more lies just below.
    fn rate(&self) -> Option<f64> {
        let top = self.top();
        let dense = self.dense.and_then(|(from, records)| {
            let seconds = (top - from).num_seconds();
            (seconds > 0).then(|| records / seconds as f64)
        });
        match (self.density.rate(), dense) {
            (Some(learned), Some(dense)) => Some(learned.max(dense)),
            (learned, dense) => learned.or(dense),
        }
    }

    fn plan(&self) -> Plan {
        let limit = self.page_limit as f64;
        let rate = self.rate();
        let pages = |records: f64| ((records / limit).ceil() as usize).max(1);
        if let Some(Reverse(last)) = self.found.peek().filter(|_| self.found.len() > self.want) {
            // Enough entries found: the walk only has to carry its watermark
            // (a window's start plus the lag) past the last one needed.
            let reach = last.checked_sub_signed(self.axis.lag).unwrap_or(*last);
            let width = self.whole_seconds((self.top() - reach).num_seconds());
            let records = rate.map_or(limit, |r| r * width.num_seconds() as f64);
            return Plan { width, pages: pages(records), blind: self.density.rate().is_none() };
        }
        // Enough records for the matches still needed, with room for chance.
        let needed = (self.want + 1 - self.found.len()) as f64;
        let records = needed / self.density.share();
        let target = (records * 1.25 + 2.0 * records.sqrt() + 2.0).min(limit * MAX_PAGES as f64);
        let mut width = match (rate, self.last) {
            (Some(rate), _) => self.whole_seconds((target / rate).ceil() as i64),
            (None, Some((width, _))) => width,
            (None, None) => self.default_span,
        };
        if let Some((last, 0)) = self.last {
            // After an empty window: halfway to what is known to be dense,
            // or much wider than the empty one.
            let wider = match self.dense {
                Some((dense, _)) => (self.top() - dense).num_seconds() / 2,
                None => last.num_seconds().saturating_mul(GROWTH),
            };
            width = width.max(self.whole_seconds(wider));
        }
        if let Some(cap) = self.cap {
            width = width.min(cap);
        }
        Plan { width, pages: pages(target), blind: self.density.rate().is_none() }
    }

    fn next_window(&self, width: Duration) -> (Window, bool) {
        let top = self.top();
        let earliest = Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).single();
        let from = top.checked_sub_signed(width).filter(|from| Some(*from) > earliest);
        match (from, self.floor) {
            (Some(from), Some(floor)) if from <= floor => (Window { from: Some(floor), to: self.upper }, true),
            (None, floor) => (Window { from: floor, to: self.upper }, true),
            (Some(from), _) => (Window { from: Some(from), to: self.upper }, false),
        }
    }

    fn keeps(&self, entry: &LedgerEntry) -> bool {
        self.position.as_ref().is_none_or(|p| entry.is_after(p)) && self.residual.matches(entry)
    }

    /// Reads the pages of `window`, keeping the matching entries, up to
    /// the newest `want + 1`. A window wider than the filter can tell apart
    /// is given up once it takes more pages than planned, with some slack
    /// (none for a blind first window). A page token the upstream no longer
    /// accepts restarts the window once from its first page: the window's
    /// bounds, not the token, are the position.
    async fn read(&self, window: Window, plan: Plan, narrowable: bool) -> Result<Read, UpstreamError> {
        let most_pages = if plan.blind { 1 } else { plan.pages + plan.pages / 2 + 1 };
        let (mut kept, mut matched, mut records, mut pages) = (Vec::new(), 0, 0, 0);
        let (mut token, mut restarted) = (None::<String>, false);
        loop {
            let page = match self.fetch.fetch_window(window, token.as_deref()).await {
                Ok(page) => page,
                Err(e) if token.is_some() && e.failure == UpstreamFailure::PageTokenInvalid && !restarted => {
                    debug!(source = %e.source_name, "page token rejected; rereading the window");
                    (restarted, token) = (true, None);
                    (kept, matched, records, pages) = (Vec::new(), 0, 0, 0);
                    continue;
                }
                Err(e) => return Err(e),
            };
            pages += 1;
            records += page.records;
            let before = kept.len();
            kept.extend(page.entries.into_iter().filter(|e| self.keeps(e)));
            matched += kept.len() - before;
            if kept.len() > 2 * (self.want + 1) {
                kept.sort_by(LedgerEntry::cmp_order);
                kept.truncate(self.want + 1);
            }
            match page.next_page {
                None => return Ok(Read::Complete { kept, matched, records }),
                Some(_) if narrowable && pages >= most_pages => return Ok(Read::Abandoned { records }),
                Some(next) => token = Some(next),
            }
        }
    }

    /// Notes the dates of matching entries, keeping the newest `want + 1`.
    fn found(&mut self, kept: &[LedgerEntry]) {
        for date in kept.iter().filter_map(|e| e.entry_date) {
            self.found.push(Reverse(date));
            if self.found.len() > self.want + 1 {
                self.found.pop();
            }
        }
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
            let plan = self.plan();
            self.cap = None;
            let (window, reaches_bottom) = self.next_window(plan.width);
            let top = self.top();
            // A window clamped to the caller's floor is narrower than planned.
            let width = window.from.map_or(plan.width, |from| top - from);
            let (kept, matched, records) = match self.read(window, plan, width > self.axis.granularity).await? {
                Read::Complete { kept, matched, records } => (kept, matched, records),
                Read::Abandoned { records } => {
                    // Everything read is dropped; what it showed sizes the next try.
                    self.dense = top.checked_sub_signed(width).map(|from| (from, records as f64));
                    self.cap = Some(self.whole_seconds(width.num_seconds() / 2));
                    continue;
                }
            };
            // Far thinner than the density so far: the ledger may end here.
            let expected = self.density.rate().map_or(0.0, |rate| rate * width.num_seconds() as f64);
            let thin = records == 0 || (records as f64) * 4.0 < expected;
            self.density.learn(records, width.num_seconds() as f64, matched);
            self.found(&kept);
            self.dense = self
                .dense
                .filter(|(dense, _)| window.from.is_some_and(|from| from > *dense))
                .map(|(dense, known)| (dense, known - records as f64))
                .filter(|(_, known)| *known > 0.0);
            self.last = Some((width, records));
            let mut exhausted = reaches_bottom;
            if !thin {
                self.probed = false;
            } else if !reaches_bottom && self.dense.is_none() && !self.probed {
                // Little or nothing here: one record asked for over all that
                // is left tells whether the ledger ends here.
                let rest = Window { from: self.floor, to: window.from };
                self.probed = self.fetch.any_in(rest).await?;
                exhausted = !self.probed;
            }
            let watermark = match (exhausted, window.from) {
                (false, Some(from)) => {
                    self.upper = Some(from);
                    // Unread records are dated before `from`: their
                    // entries are dated before `from + lag`.
                    Watermark::AtOrAfter(from.checked_add_signed(self.axis.lag).unwrap_or(from))
                }
                _ => {
                    self.exhausted = true;
                    Watermark::Exhausted
                }
            };
            return Ok(Batch { entries: kept, watermark });
        }
    }

    fn hint(&self) -> Option<Hint> {
        Some(Hint { walks: vec![self.density], ..Hint::default() })
    }
}

/// Several walks of one source read as one scan: lists filtered on
/// different date axes (BigLedger's adjustments and transfers), each walked
/// with its own. Each batch reads, side by side, the walks least far along,
/// and carries the least complete watermark of all, so an entry is released
/// only once every walk has passed it.
pub struct Interleave<'a> {
    walks: Vec<(Box<dyn LedgerScan + 'a>, Option<Watermark>)>,
}

impl std::fmt::Debug for Interleave<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interleave")
            .field("watermarks", &self.walks.iter().map(|(_, m)| m).collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> Interleave<'a> {
    pub fn new(walks: Vec<Box<dyn LedgerScan + 'a>>) -> Self {
        Self { walks: walks.into_iter().map(|walk| (walk, None)).collect() }
    }
}

/// Orders watermarks by how little they promise: a walk not yet started
/// promises nothing, an exhausted one everything.
fn behind(watermark: &Option<Watermark>) -> (u8, Option<DateTime<Utc>>, u8) {
    match watermark {
        None => (2, None, 0),
        Some(Watermark::AtOrAfter(at)) => (1, Some(*at), 0),
        Some(Watermark::After(at)) => (1, Some(*at), 1),
        Some(Watermark::Exhausted) => (0, None, 0),
    }
}

#[async_trait]
impl LedgerScan for Interleave<'_> {
    async fn next_batch(&mut self) -> Result<Batch, UpstreamError> {
        let last = self.walks.iter().map(|(_, mark)| behind(mark)).max();
        let reads = self.walks.iter_mut().filter(|(_, mark)| Some(behind(mark)) == last).map(|(walk, mark)| async {
            let batch = walk.next_batch().await?;
            *mark = Some(batch.watermark);
            Ok::<_, UpstreamError>(batch.entries)
        });
        let entries = try_join_all(reads).await?.concat();
        let watermark = self.walks.iter().map(|(_, mark)| *mark).max_by_key(behind).flatten();
        Ok(Batch { entries, watermark: watermark.unwrap_or(Watermark::Exhausted) })
    }

    fn hint(&self) -> Option<Hint> {
        let walks = self.walks.iter().flat_map(|(walk, _)| walk.hint().map(|h| h.walks).unwrap_or_default()).collect();
        Some(Hint { walks, ..Hint::default() })
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
            Ok(WindowPage { records: page.len(), entries: page, next_page })
        }

        async fn any_in(&self, window: Window) -> Result<bool, UpstreamError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Ok(self.entries.iter().any(|e| e.entry_date.is_some_and(|at| within(window, at))))
        }
    }

    fn within(window: Window, at: DateTime<Utc>) -> bool {
        window.from.is_none_or(|f| at >= f) && window.to.is_none_or(|t| at < t)
    }

    /// One page the way the registry asks for it.
    async fn page(
        upstream: &Arc<Unordered>,
        position: Option<SortKey>,
        want: usize,
        hint: Option<Hint>,
    ) -> (Vec<LedgerEntry>, bool, Option<Hint>) {
        let request = ScanRequest {
            filter: SourceFilter::default(),
            position: position.clone(),
            want,
            residual: SourceFilter::default(),
            hint,
        };
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
            let request =
                ScanRequest { filter: filter.clone(), position: None, want: 10, residual: filter.clone(), hint: None };
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
            Ok(WindowPage { entries: page, records: read - offset.min(read), next_page })
        }

        async fn any_in(&self, window: Window) -> Result<bool, UpstreamError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Ok(self.documents.iter().any(|(day, _)| within(window, *day)))
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
                    let residual = filter.clone();
                    let request =
                        ScanRequest { filter: filter.clone(), position: position.clone(), want, residual, hint };
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
        // Every walk, whatever the hour: two windows given up after their
        // first page while narrowing (4 days, then 2) stop at one day, the
        // filter's granularity; that day's pages are read, holding more
        // than `want + 1` entries before the bound; one window then carries
        // the watermark (its start plus the lag) past the last of them, in
        // one step; it is empty, and one probe of everything below it finds
        // nothing: the walk is done.
        let (documents, page_limit, want): (usize, usize, usize) = (60, 10, 5);
        let read = 2 + documents.div_ceil(page_limit);
        for now in instants() {
            let clock = Clock::Fixed(now);
            let today = clock.today();
            // All on one day, `documents / page_limit` pages: narrowing cannot help.
            let upstream = DayDocuments::new(documents, 1, page_limit, today);
            // Bounds above "now" once the lead is added, so the walk starts
            // at now: before yesterday, and before today.
            for bound in [today - Duration::days(1), today] {
                upstream.calls.store(0, Ordering::Relaxed);
                let range = TimeRange { lt: Some(bound), ..TimeRange::default() };
                let filter = SourceFilter { entry_date: range.clone(), ..SourceFilter::default() };
                let residual = filter.clone();
                let request = ScanRequest { filter: filter.clone(), position: None, want, residual, hint: None };
                let scan = WindowScan::new(upstream.clone(), &request, page_limit, Duration::days(4), clock);
                let (entries, _, _) = drive(Box::new(scan), Collector::new(None, filter, want)).await.unwrap();
                let expected = upstream.expected(&range);
                assert_eq!(entries.iter().map(|e| e.native_id.clone()).collect::<Vec<_>>(), expected[..want]);
                assert!(expected.len() > want);
                let calls = upstream.calls.load(Ordering::Relaxed);
                assert_eq!(calls, read + 2, "at {now}, entries before {bound}");
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

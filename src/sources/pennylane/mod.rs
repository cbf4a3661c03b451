//! Pennylane accounting, API v2 with the 2026 behaviour (always opted in
//! with `X-Use-2026-API-Changes: true`): cursor pages of ledger entries
//! sorted `-date`, amounts summed from ledger entry lines.
//!
//! How the merged order (date desc, undated last, then id as a string) is
//! met by an API that sorts by day only:
//! - Dated walk: pages of `sort=-date`, bounded by `date lteq` the
//!   position's day (or the last possible day: any date condition keeps
//!   undated drafts out). Every day newer than the oldest day on a page is
//!   complete, so a batch's watermark is `After(that day)`; the oldest day may
//!   continue on the next page. The order inside a day is never relied on
//!   (numeric ids 9 and 10 sort "10" < "9" as strings): the collector sorts.
//! - Undated drafts sort after every dated entry and cannot be selected by a
//!   filter, so after the dated walk a held read goes through every page,
//!   keeps the undated entries after the position and releases them at the
//!   end (`Exhausted`). A cursor inside that region starts there directly.
//! - Entries by id (`id in`, 100 a call) come in no useful order either:
//!   a held read too.
//! - Amounts: one bulk line query per dated page, bounded by the page's days
//!   and journals (the line list has no entry filter); undated entries'
//!   lines have no date to bound them by, so those come per entry, only for
//!   the entries a page can use.

pub mod query;
mod records;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::StatusCode;
use url::Url;

use super::{Batch, LedgerScan, ScanRequest, Source, SourceInfo};
use crate::clock::Clock;
use crate::config::SourceConfig;
use crate::ledger::{Capabilities, Pushdown, SourceFilter, Support, Watermark};
use crate::model::{EventType, Item, LedgerEntry, Location, SortKey, SourceKind, SourceName};
use crate::upstream::client::JsonAnswer;
use crate::upstream::{endpoint, Call, Credentials, RateLimit, UpstreamClient, UpstreamError, UpstreamFailure};
use query::{Condition, DayRange, Params};
use records::{totals_by_entry, CursorPage, LedgerEntryRecord, LineRecord};

pub const CREDENTIAL_FIELDS: &[&str] = &["token"];
/// Pennylane's `limit` range is 1-100 for ledger entries and lines.
pub const MAX_PAGE_SIZE: usize = 100;
/// The dated walk's page: a call returns at most 100 lines, and 25 entries
/// of a few lines each fit in one, so a ledger page costs one lines call.
const DEFAULT_PAGE_SIZE: usize = 25;
/// Entries asked beyond what the page needs: the position's day is read
/// again (entries already delivered count against the limit) and the oldest
/// day of a page may continue on the next one.
const LIMIT_SLACK: usize = 10;
/// Undated entries' lines come one entry per call; this many at once.
const UNDATED_LINES_CONCURRENCY: usize = 4;
/// The opt-in header for the 2026 behaviour (cursor pages, drafts included).
const USE_2026_API_CHANGES: &str = "x-use-2026-api-changes";
/// 25 requests per 5 seconds per token.
const RATE_LIMIT: RateLimit = RateLimit::new(25, std::time::Duration::from_secs(5));

#[derive(Debug)]
pub struct Pennylane {
    info: SourceInfo,
    base_url: Url,
    client: UpstreamClient,
    page_size: usize,
}

impl Pennylane {
    pub fn new(name: SourceName, config: &SourceConfig, clock: Clock) -> Self {
        let capabilities = Capabilities {
            pushdown: Pushdown {
                // Days on the wire; the gateway re-checks.
                entry_date: Support::Coarse,
                // The 2026 changes removed created_at/updated_at filters.
                updated_at: Support::Gateway,
                // Every Pennylane entry is a JOURNAL: nothing to send.
                event_types: Support::Native,
                skus: Support::Unmatchable,
                item_ids: Support::Unmatchable,
                location_ids: Support::Unmatchable,
                ids: Support::Native,
                ids_override_other_filters: false,
            },
            event_types: &[EventType::Journal],
            max_page_size: MAX_PAGE_SIZE,
            // `id in` lists are read in chunks of a page.
            ids_per_read: MAX_PAGE_SIZE,
            items: None,
            locations: None,
        };
        Self {
            client: UpstreamClient::new(
                name.clone(),
                config.http.policy().with_default_rate_limit(RATE_LIMIT),
                error_dialect,
                clock,
            ),
            info: SourceInfo { name, kind: SourceKind::Pennylane, capabilities, credential_fields: CREDENTIAL_FIELDS },
            base_url: config.base_url.clone(),
            page_size: config.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE),
        }
    }

    fn headers(&self, credentials: &Credentials) -> Result<HeaderMap, UpstreamError> {
        let mut bearer = credentials
            .get("token")
            .and_then(|token| HeaderValue::from_str(&format!("Bearer {token}")).ok())
            .ok_or_else(|| UpstreamError::new(&self.info.name, UpstreamFailure::MissingCredentials))?;
        bearer.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, bearer);
        headers.insert(USE_2026_API_CHANGES, HeaderValue::from_static("true"));
        Ok(headers)
    }

    fn call(
        &self,
        credentials: &Credentials,
        route: &'static str,
        path: &[&str],
        params: &Params,
    ) -> Result<Call, UpstreamError> {
        let mut url = endpoint(&self.base_url, path);
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        Ok(Call::get(route, url, self.headers(credentials)?, credentials.fingerprint()))
    }

    async fn get<T: JsonAnswer>(
        &self,
        credentials: &Credentials,
        route: &'static str,
        path: &[&str],
        params: &Params,
    ) -> Result<T, UpstreamError> {
        self.client.get_json(&self.call(credentials, route, path, params)?).await
    }

    async fn ledger_page(
        &self,
        credentials: &Credentials,
        conditions: &[Condition],
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<CursorPage<LedgerEntryRecord>, UpstreamError> {
        let params = query::list_params(conditions, Some(query::NEWEST_FIRST), limit, cursor);
        self.get(credentials, "ledger_entries", &["ledger_entries"], &params).await
    }

    /// The cursor of the page after `page`; an error when the upstream says
    /// there is more but gives no way to get it.
    fn next_cursor<T>(&self, page: &mut CursorPage<T>) -> Result<Option<String>, UpstreamError> {
        match (page.has_more, page.next_cursor.take()) {
            (false, _) => Ok(None),
            (true, Some(cursor)) => Ok(Some(cursor)),
            (true, None) => Err(UpstreamError::new(&self.info.name, UpstreamFailure::BadResponse)),
        }
    }

    /// Every page of a line list. A page token the upstream no longer
    /// accepts restarts the list once from its first page.
    async fn all_lines(
        &self,
        credentials: &Credentials,
        route: &'static str,
        path: &[&str],
        conditions: &[Condition],
    ) -> Result<Vec<LineRecord>, UpstreamError> {
        let mut lines = Vec::new();
        let mut cursor: Option<String> = None;
        let mut restarted = false;
        loop {
            let params = query::list_params(conditions, None, MAX_PAGE_SIZE, cursor.as_deref());
            match self.get::<CursorPage<LineRecord>>(credentials, route, path, &params).await {
                Ok(mut page) => {
                    cursor = self.next_cursor(&mut page)?;
                    lines.append(&mut page.items);
                    if cursor.is_none() {
                        return Ok(lines);
                    }
                }
                Err(e) if may_restart(&e, cursor.is_some(), &mut restarted) => {
                    lines.clear();
                    cursor = None;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn lines_of_entry(&self, credentials: &Credentials, id: i64) -> Result<Vec<LineRecord>, UpstreamError> {
        let id = id.to_string();
        let path = ["ledger_entries", id.as_str(), "ledger_entry_lines"];
        match self.all_lines(credentials, "ledger_entry_lines_of_entry", &path, &[]).await {
            // Deleted since it was listed: it has no lines to show.
            Err(e) if e.failure == UpstreamFailure::NotFound => Ok(Vec::new()),
            other => other,
        }
    }

    /// `entries` with their amounts: the dated ones' lines in one bulk
    /// query, the undated ones' per entry.
    async fn price(
        &self,
        credentials: &Credentials,
        entries: Vec<Unpriced>,
    ) -> Result<Vec<LedgerEntry>, UpstreamError> {
        let (dated, undated): (Vec<&Unpriced>, Vec<&Unpriced>) =
            entries.iter().partition(|u| u.entry.entry_date.is_some());
        let mut lines = Vec::new();
        if !dated.is_empty() {
            let days: Vec<NaiveDate> =
                dated.iter().filter_map(|u| u.entry.entry_date).map(|d| d.date_naive()).collect();
            let range = DayRange { from: days.iter().min().copied(), to: days.iter().max().copied() };
            let journals: Option<BTreeSet<i64>> = dated.iter().map(|u| u.journal).collect();
            let conditions = query::lines_conditions(range, journals.as_ref());
            lines = self.all_lines(credentials, "ledger_entry_lines", &["ledger_entry_lines"], &conditions).await?;
        }
        let undated: Vec<i64> = undated.iter().map(|u| u.id).collect();
        let per_entry: Vec<Vec<LineRecord>> = futures::stream::iter(undated)
            .map(|id| self.lines_of_entry(credentials, id))
            .buffer_unordered(UNDATED_LINES_CONCURRENCY)
            .try_collect()
            .await?;
        let totals = totals_by_entry(lines.iter().chain(per_entry.iter().flatten()));
        Ok(entries
            .into_iter()
            .map(|u| {
                let mut entry = u.entry;
                // An entry without lines keeps unknown (null) amounts.
                if let Some(totals) = totals.get(&u.id) {
                    entry.amounts = totals.amounts();
                }
                entry
            })
            .collect())
    }
}

/// Whether a failed page read may start over from its first page: only for
/// a rejected page token, and once per scan, so a server that rejects every
/// token cannot loop us.
fn may_restart(error: &UpstreamError, had_cursor: bool, restarted: &mut bool) -> bool {
    let restart = error.failure == UpstreamFailure::PageTokenInvalid && had_cursor && !*restarted;
    *restarted |= restart;
    restart
}

/// Pennylane's error bodies: a cursor it does not accept (expired, or from
/// another query) comes back as a 400 or 422 naming the cursor. 429 bodies
/// are plain text and need nothing from here: the status and the
/// `retry-after`/`ratelimit-reset` headers say it all.
fn error_dialect(status: StatusCode, body: &[u8]) -> Option<UpstreamFailure> {
    if !matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY) {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    let names_cursor = body.pointer("/details/cursor").is_some()
        || body["message"].as_str().is_some_and(|m| m.to_ascii_lowercase().contains("cursor"));
    names_cursor.then_some(UpstreamFailure::PageTokenInvalid)
}

/// An entry whose amounts are not fetched yet.
#[derive(Debug)]
struct Unpriced {
    id: i64,
    journal: Option<i64>,
    entry: LedgerEntry,
}

impl Unpriced {
    fn new(record: LedgerEntryRecord, source: &SourceName) -> Self {
        Self { id: record.id, journal: record.journal_id(), entry: record.into_entry(source) }
    }
}

/// Which entries a scan hands out: after the position, passing the filter.
/// Checked before lines are fetched, so no lines are fetched for entries the
/// page drops anyway.
#[derive(Debug)]
struct Admission {
    position: Option<SortKey>,
    filter: SourceFilter,
}

impl Admission {
    fn admits(&self, entry: &LedgerEntry) -> bool {
        self.position.as_ref().is_none_or(|p| entry.sort_key() > *p) && self.filter.matches(entry)
    }
}

/// What every stage of a scan reads with.
struct Context<'a> {
    source: &'a Pennylane,
    credentials: &'a Credentials,
    admission: Admission,
    /// Ledger page size for the dated walk.
    limit: usize,
    /// Entries the page can use: the collector keeps no more.
    keep: usize,
    /// A rejected page token was already recovered from once.
    restarted: bool,
}

/// The dated part of the ledger, newest day first.
#[derive(Debug)]
struct DatedWalk {
    days: DayRange,
    cursor: Option<String>,
    /// The oldest day read so far and the ids read on it: a restart reads
    /// that day again and must not hand those out twice.
    oldest: Option<(NaiveDate, HashSet<i64>)>,
}

impl DatedWalk {
    /// Whether this is the first time the walk reads entry `id` of `day`.
    fn first_sight(&mut self, day: NaiveDate, id: i64) -> bool {
        match &mut self.oldest {
            Some((oldest, seen)) if day == *oldest => seen.insert(id),
            Some((oldest, _)) if day > *oldest => true,
            _ => {
                self.oldest = Some((day, HashSet::from([id])));
                true
            }
        }
    }

    /// Every day after the oldest one read is complete.
    fn watermark(&self) -> Watermark {
        Watermark::After(self.oldest.as_ref().map_or(DateTime::<Utc>::MAX_UTC, |(day, _)| midnight(*day)))
    }

    /// The next page's new entries, priced, and whether the walk is over.
    async fn next(&mut self, cx: &mut Context<'_>) -> Result<(Vec<LedgerEntry>, bool), UpstreamError> {
        let mut page = loop {
            let conditions = self.days.conditions();
            match cx.source.ledger_page(cx.credentials, &conditions, cx.limit, self.cursor.as_deref()).await {
                Ok(page) => break page,
                Err(e) if may_restart(&e, self.cursor.is_some(), &mut cx.restarted) => {
                    if let Some((day, _)) = &self.oldest {
                        self.days = self.days.up_to(*day);
                    }
                    self.cursor = None;
                }
                Err(e) => return Err(e),
            }
        };
        self.cursor = cx.source.next_cursor(&mut page)?;
        let mut fresh = Vec::new();
        for record in page.items {
            // Undated drafts sort after every dated entry: the held read
            // after this walk delivers them.
            let Some(day) = record.date else { continue };
            if self.first_sight(day, record.id) {
                let unpriced = Unpriced::new(record, cx.source.name());
                if cx.admission.admits(&unpriced.entry) {
                    fresh.push(unpriced);
                }
            }
        }
        let entries = cx.source.price(cx.credentials, fresh).await?;
        Ok((entries, self.cursor.is_none()))
    }
}

/// Reads every page of each query and hands out the best `keep` entries
/// at the end: for entries whose place in the order no page promises
/// (undated drafts, entries looked up by id).
#[derive(Debug)]
struct HeldRead {
    queries: VecDeque<Vec<Condition>>,
    cursor: Option<String>,
    /// Entries of the query being read; dropped if it restarts.
    current: Vec<Unpriced>,
    /// The best entries of the queries read completely.
    best: Vec<Unpriced>,
    undated_only: bool,
}

impl HeldRead {
    fn new(queries: impl IntoIterator<Item = Vec<Condition>>, undated_only: bool) -> Self {
        Self {
            queries: queries.into_iter().collect(),
            cursor: None,
            current: Vec::new(),
            best: Vec::new(),
            undated_only,
        }
    }

    /// Sorted, cut to `keep`: memory stays bounded by the page, not the ledger.
    fn trim(entries: &mut Vec<Unpriced>, keep: usize) {
        entries.sort_by_cached_key(|u| u.entry.sort_key());
        entries.truncate(keep);
    }

    /// Reads one page; the priced entries once every query is read.
    async fn next(&mut self, cx: &mut Context<'_>) -> Result<Option<Vec<LedgerEntry>>, UpstreamError> {
        if let Some(conditions) = self.queries.front() {
            // No lines per page here: the largest pages cost the fewest calls.
            match cx.source.ledger_page(cx.credentials, conditions, MAX_PAGE_SIZE, self.cursor.as_deref()).await {
                Ok(mut page) => {
                    self.cursor = cx.source.next_cursor(&mut page)?;
                    for record in page.items {
                        if self.undated_only && record.date.is_some() {
                            continue;
                        }
                        let unpriced = Unpriced::new(record, cx.source.name());
                        if cx.admission.admits(&unpriced.entry) {
                            self.current.push(unpriced);
                        }
                    }
                    if self.current.len() > 2 * cx.keep {
                        Self::trim(&mut self.current, cx.keep);
                    }
                    if self.cursor.is_none() {
                        self.queries.pop_front();
                        self.best.append(&mut self.current);
                        Self::trim(&mut self.best, cx.keep);
                    }
                }
                Err(e) if may_restart(&e, self.cursor.is_some(), &mut cx.restarted) => {
                    self.current.clear();
                    self.cursor = None;
                }
                Err(e) => return Err(e),
            }
        }
        if !self.queries.is_empty() {
            return Ok(None);
        }
        let best = std::mem::take(&mut self.best);
        cx.source.price(cx.credentials, best).await.map(Some)
    }
}

#[derive(Debug)]
enum Stage {
    Dated { walk: DatedWalk, then_undated: bool },
    Held(HeldRead),
    Done,
}

/// One scan of a caller's Pennylane ledger.
struct PennylaneScan<'a> {
    cx: Context<'a>,
    stage: Stage,
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// All undated entries: no filter can select them, so every page is read.
fn undated_read() -> Stage {
    Stage::Held(HeldRead::new([Vec::new()], true))
}

/// Where a scan starts: by ids, in the dated walk, or (for a position
/// among the undated drafts) in the undated read.
fn first_stage(request: &ScanRequest) -> Stage {
    let days = DayRange::of(&request.filter.entry_date);
    // A bounded date range cannot hold an undated entry.
    let undated_may_match = request.filter.entry_date.is_unbounded();
    if let Some(ids) = &request.filter.ids {
        let ids: Vec<i64> = ids.iter().filter_map(|id| query::native_id(id)).collect();
        if ids.is_empty() || days.is_empty() {
            return Stage::Done;
        }
        let queries = ids.chunks(MAX_PAGE_SIZE).map(|chunk| {
            let mut conditions = vec![query::ids_condition(chunk)];
            conditions.extend(days.conditions());
            conditions
        });
        return Stage::Held(HeldRead::new(queries, false));
    }
    if days.is_empty() {
        return Stage::Done;
    }
    // Always bounded: a date condition never matches a null date, so the
    // walk does not page through the drafts (which `-date` lists first).
    let walk = |days: DayRange| Stage::Dated {
        walk: DatedWalk { days: days.up_to(query::LAST_DAY), cursor: None, oldest: None },
        then_undated: undated_may_match,
    };
    match request.position.as_ref().map(|p| p.entry_date) {
        None => walk(days),
        Some(Some(at)) => walk(days.up_to(at.date_naive())),
        Some(None) if undated_may_match => undated_read(),
        Some(None) => Stage::Done,
    }
}

/// The conditions of the ledger reads a scan for `request` starts with,
/// one list per read (several: id chunks); none when it reads nothing.
pub fn first_reads(request: &ScanRequest) -> Vec<Vec<Condition>> {
    match first_stage(request) {
        Stage::Dated { walk, .. } => vec![walk.days.conditions()],
        Stage::Held(read) => read.queries.into(),
        Stage::Done => Vec::new(),
    }
}

#[async_trait]
impl LedgerScan for PennylaneScan<'_> {
    async fn next_batch(&mut self) -> Result<Batch, UpstreamError> {
        match &mut self.stage {
            Stage::Done => Ok(Batch { entries: Vec::new(), watermark: Watermark::Exhausted }),
            Stage::Dated { walk, then_undated } => {
                let (entries, finished) = walk.next(&mut self.cx).await?;
                let watermark = match (finished, *then_undated) {
                    (false, _) => walk.watermark(),
                    // Every dated entry is out; the undated ones follow.
                    (true, true) => Watermark::AtOrAfter(DateTime::<Utc>::MIN_UTC),
                    (true, false) => Watermark::Exhausted,
                };
                if finished {
                    self.stage = if *then_undated { undated_read() } else { Stage::Done };
                }
                Ok(Batch { entries, watermark })
            }
            Stage::Held(read) => match read.next(&mut self.cx).await? {
                // Nothing held is final until every page is read.
                None => Ok(Batch { entries: Vec::new(), watermark: Watermark::After(DateTime::<Utc>::MAX_UTC) }),
                Some(entries) => {
                    self.stage = Stage::Done;
                    Ok(Batch { entries, watermark: Watermark::Exhausted })
                }
            },
        }
    }
}

#[async_trait]
impl Source for Pennylane {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn client(&self) -> &UpstreamClient {
        &self.client
    }

    fn scan<'a>(&'a self, credentials: &'a Credentials, request: ScanRequest) -> Box<dyn LedgerScan + 'a> {
        let stage = first_stage(&request);
        let keep = request.want + 1;
        let cx = Context {
            source: self,
            credentials,
            limit: (keep + LIMIT_SLACK).min(self.page_size),
            keep,
            admission: Admission { position: request.position, filter: request.filter },
            restarted: false,
        };
        Box::new(PennylaneScan { cx, stage })
    }

    async fn entry(&self, credentials: &Credentials, native_id: &str) -> Result<Option<LedgerEntry>, UpstreamError> {
        // Not an int64 id: no such entry can exist, so no call is made.
        let Some(id) = query::native_id(native_id) else { return Ok(None) };
        let path = ["ledger_entries", &id.to_string()];
        let record: LedgerEntryRecord = match self.get(credentials, "ledger_entry", &path, &Params::new()).await {
            Ok(record) => record,
            Err(e) if e.failure == UpstreamFailure::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let lines = self.lines_of_entry(credentials, id).await?;
        let mut entry = record.into_entry(&self.info.name);
        if let Some(totals) = totals_by_entry(&lines).get(&id) {
            entry.amounts = totals.amounts();
        }
        Ok(Some(entry))
    }

    async fn count(&self, _credentials: &Credentials, _filter: &SourceFilter) -> Result<Option<u64>, UpstreamError> {
        // The 2026 cursor pages report `total_items: null`.
        Ok(None)
    }

    async fn items(
        &self,
        _credentials: &Credentials,
        _keys: &[String],
    ) -> Result<HashMap<String, Item>, UpstreamError> {
        // An accounting ledger has no items (`capabilities().items` is None).
        Ok(HashMap::new())
    }

    async fn locations(
        &self,
        _credentials: &Credentials,
        _keys: &[String],
    ) -> Result<HashMap<String, Location>, UpstreamError> {
        // Nor locations.
        Ok(HashMap::new())
    }

    async fn check_ready(&self, credentials: &Credentials) -> Result<(), UpstreamError> {
        self.ledger_page(credentials, &[], 1, None).await.map(|_| ())
    }
}

//! BigLedger's inventory API. It has no ledger: entries are synthesized from
//! the lines of posted stock adjustments and completed stock transfers
//! (`records.rs`). Neither list promises an order and both filter by whole
//! days, so the ledger is walked in date windows (`sources::window`) over
//! the documents' days; a transfer's entries are dated by shipment and
//! delivery, which the window walk allows for with the skew in `query.rs`.
//! Items and locations have no batch lookup: one GET per key, a few at once.

pub mod query;
mod records;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::Duration;
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use tracing::warn;
use url::Url;

use super::window::{DateAxis, Interleave, Window, WindowFetch, WindowPage, WindowScan};
use super::{Batch, LedgerScan, ScanRequest, Source, SourceInfo};
use crate::clock::Clock;
use crate::config::SourceConfig;
use crate::ledger::{BatchLimits, Capabilities, Hint, Pushdown, SourceFilter, Support, Watermark};
use crate::model::{EventType, Item, LedgerEntry, Location, NodeKind, SourceKind, SourceName};
use crate::upstream::client::JsonAnswer;
use crate::upstream::{
    endpoint, sensitive_header, Call, Credentials, RateLimit, UpstreamClient, UpstreamError, UpstreamFailure,
};
use query::{DayRange, LedgerQuery, Params};
use records::{
    midnight, AdjustmentRecord, EntryId, ErrorEnvelope, ItemRecord, ListEnvelope, LocationRecord, SingleEnvelope,
    TransferRecord,
};

pub const CREDENTIAL_FIELDS: &[&str] = &["api_key", "company_id"];
pub const MAX_PAGE_SIZE: usize = 200;
/// BigLedger has no batch lookup: items and locations cost one GET each,
/// and this many run at once.
const LOOKUP_CONCURRENCY: usize = 5;
/// The item search is fuzzy; past this many pages without the exact sku the
/// sku is left to the gateway instead of costing more calls.
const MAX_SEARCH_PAGES: usize = 3;
/// First window of a walk without a hint from the cursor.
const DEFAULT_WINDOW_DAYS: i64 = 7;
/// Undocumented; 10 a second per key is what its 429s suggest (assumed).
const RATE_LIMIT: RateLimit = RateLimit::new(10, std::time::Duration::from_secs(1));

#[derive(Debug)]
pub struct BigLedger {
    info: SourceInfo,
    base_url: Url,
    client: UpstreamClient,
    page_size: usize,
    initial_window: Duration,
}

/// Which of the two document lists a page comes from.
#[derive(Clone, Copy, Debug)]
enum Book {
    Adjustments,
    Transfers,
}

impl BigLedger {
    pub fn new(name: SourceName, config: &SourceConfig, clock: Clock) -> Self {
        let lookups = BatchLimits { max_keys: 1, concurrency: LOOKUP_CONCURRENCY };
        let capabilities = Capabilities {
            pushdown: Pushdown {
                // Whole days, and a transfer's days are not its entries' dates.
                entry_date: Support::Coarse,
                updated_at: Support::Gateway,
                // Each event type is its own list: choosing lists is exact.
                event_types: Support::Native,
                // One sku or item becomes `itemId`, which selects documents:
                // their other lines are filtered out in the gateway.
                skus: Support::Coarse,
                item_ids: Support::Coarse,
                // `locationId` for adjustments only.
                location_ids: Support::Coarse,
                // Ids name their document's day and list: only those are read.
                ids: Support::Coarse,
                ids_override_other_filters: false,
            },
            event_types: &[EventType::Adjustment, EventType::Transfer],
            max_page_size: MAX_PAGE_SIZE,
            // Ids only narrow the walk to their documents' days: a read is a
            // page of those days' documents, however many ids they hold.
            ids_per_read: MAX_PAGE_SIZE,
            items: Some(lookups),
            locations: Some(lookups),
        };
        Self {
            client: UpstreamClient::new(
                name.clone(),
                config.http.policy().with_default_rate_limit(RATE_LIMIT),
                error_dialect,
                clock,
            ),
            info: SourceInfo { name, kind: SourceKind::Bigledger, capabilities, credential_fields: CREDENTIAL_FIELDS },
            base_url: config.base_url.clone(),
            page_size: config.page_size.unwrap_or(MAX_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE),
            initial_window: config.initial_window().unwrap_or(Duration::days(DEFAULT_WINDOW_DAYS)),
        }
    }

    fn call(
        &self,
        credentials: &Credentials,
        route: &'static str,
        path: &[&str],
        params: &[(String, String)],
    ) -> Result<Call, UpstreamError> {
        let mut url = endpoint(&self.base_url, path);
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        Ok(Call::get(route, url, self.auth_headers(credentials)?, credentials.fingerprint()))
    }

    fn auth_headers(&self, credentials: &Credentials) -> Result<HeaderMap, UpstreamError> {
        let missing = || UpstreamError::new(&self.info.name, UpstreamFailure::MissingCredentials);
        let bearer = credentials.get("api_key").and_then(|key| sensitive_header(&format!("Bearer {key}")));
        let company = credentials.get("company_id").and_then(sensitive_header);
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, bearer.ok_or_else(missing)?);
        headers.insert("x-company-id", company.ok_or_else(missing)?);
        Ok(headers)
    }

    /// One page of a list endpoint and the cursor of the next.
    async fn list<T: JsonAnswer>(
        &self,
        credentials: &Credentials,
        route: &'static str,
        path: &[&str],
        params: &[(String, String)],
    ) -> Result<(Vec<T>, Option<String>), UpstreamError> {
        let page: ListEnvelope<T> = self.client.get_json(&self.call(credentials, route, path, params)?).await?;
        let next = match (page.pagination.has_more, page.pagination.next_cursor) {
            (false, _) => None,
            (true, Some(cursor)) => Some(cursor),
            // More pages but no way to them: stopping would lose them silently.
            (true, None) => {
                warn!(source = %self.info.name, route, "more pages announced without a cursor");
                return Err(UpstreamError::new(&self.info.name, UpstreamFailure::BadResponse));
            }
        };
        Ok((page.data, next))
    }

    /// One object by id; `None` when BigLedger has no such object.
    async fn get_one<T: JsonAnswer>(
        &self,
        credentials: &Credentials,
        route: &'static str,
        path: &[&str],
    ) -> Result<Option<T>, UpstreamError> {
        let call = self.call(credentials, route, path, &[])?;
        match self.client.get_json::<SingleEnvelope<T>>(&call).await {
            Ok(single) => Ok(Some(single.data)),
            Err(e) if e.failure == UpstreamFailure::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of `book` on `days`, as entries, `limit` documents at most.
    async fn book_page(
        &self,
        credentials: &Credentials,
        book: Book,
        query: &LedgerQuery,
        days: DayRange,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<WindowPage, UpstreamError> {
        let path = ["inventory", book.path()];
        let (entries, records, next_page) = match book {
            Book::Adjustments => {
                let params = query::adjustment_params(query, days, limit, cursor);
                let (records, next) = self.list::<AdjustmentRecord>(credentials, "adjustments", &path, &params).await?;
                let count = records.len();
                (records.into_iter().flat_map(|r| r.into_entries(&self.info.name)).collect(), count, next)
            }
            Book::Transfers => {
                let params = query::transfer_params(query, days, limit, cursor);
                let (records, next) = self.list::<TransferRecord>(credentials, "transfers", &path, &params).await?;
                let count = records.len();
                (records.into_iter().flat_map(|r| self.transfer_entries(r)).collect(), count, next)
            }
        };
        Ok(WindowPage { entries, records, next_page })
    }

    /// A transfer's entries, with a warning for any dated outside the skew
    /// the window walk allows for: such an entry may be skipped by a walk.
    fn transfer_entries(&self, record: TransferRecord) -> Vec<LedgerEntry> {
        let day = midnight(record.date);
        let axis = query::axis(Book::Transfers.skewed());
        let (transfer, entries) = (record.id.clone(), record.into_entries(&self.info.name));
        // Checked: an upstream date at the end of chrono's range is data, not a crash.
        let before = day.checked_sub_signed(axis.lead);
        let after = day.checked_add_signed(axis.lag);
        let outside = |at| before.is_some_and(|low| at < low) || after.is_some_and(|high| at > high);
        for entry in &entries {
            if entry.entry_date.is_some_and(outside) {
                warn!(source = %self.info.name, %transfer, entry = %entry.native_id, "transfer entry dated outside the assumed skew");
            }
        }
        entries
    }

    /// The item whose `itemCode` is exactly `sku`, through the fuzzy search.
    async fn resolve_sku(&self, credentials: &Credentials, sku: &str) -> Result<SkuMatch, UpstreamError> {
        let mut cursor = None;
        for _ in 0..MAX_SEARCH_PAGES {
            let params = query::item_search_params(sku, MAX_PAGE_SIZE, cursor.as_deref());
            let (items, next) = self.list::<ItemRecord>(credentials, "items", &["items"], &params).await?;
            // Item codes are unique: the exact match, if any, is the item.
            if let Some(item) = items.into_iter().find(|i| i.item_code.as_deref() == Some(sku)) {
                return Ok(SkuMatch::Item(item.id));
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(SkuMatch::None),
            }
        }
        Ok(SkuMatch::Unresolved)
    }

    /// Objects of `collection` by id, one GET each, `LOOKUP_CONCURRENCY` at
    /// once; ids BigLedger does not know are left out.
    async fn lookup_each<T: JsonAnswer>(
        &self,
        credentials: &Credentials,
        route: &'static str,
        collection: &'static str,
        keys: &[String],
    ) -> Result<HashMap<String, T>, UpstreamError> {
        // Owned keys: a closure over borrowed ones trips the `Send` check of
        // the trait's boxed future (rust-lang/rust#102211).
        stream::iter(keys.to_vec())
            .map(|key: String| async move {
                let found = self.get_one::<T>(credentials, route, &[collection, &key]).await?;
                Ok(found.map(|value| (key, value)))
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .try_filter_map(|found| async move { Ok(found) })
            .try_collect()
            .await
    }

    /// The entry `id` names, found among its document's day.
    async fn find_entry(&self, credentials: &Credentials, id: &EntryId) -> Result<Option<LedgerEntry>, UpstreamError> {
        let wanted = id.to_string();
        let book = match id {
            EntryId::Adjustment { .. } => Book::Adjustments,
            EntryId::Transfer { .. } => Book::Transfers,
        };
        let days = DayRange::single(id.date());
        let mut cursor = None;
        loop {
            let page = self
                .book_page(credentials, book, &LedgerQuery::default(), days, self.page_size, cursor.as_deref())
                .await?;
            if let Some(entry) = page.entries.into_iter().find(|e| e.native_id == wanted) {
                return Ok(Some(entry));
            }
            match page.next_page {
                Some(next) => cursor = Some(next),
                None => return Ok(None),
            }
        }
    }
}

impl Book {
    fn path(self) -> &'static str {
        match self {
            Book::Adjustments => "adjustments",
            Book::Transfers => "transfers",
        }
    }

    /// Only a transfer's entries are dated apart from the date it is filtered on.
    fn skewed(self) -> bool {
        matches!(self, Book::Transfers)
    }
}

/// What the fuzzy item search says about a sku.
#[derive(Debug, PartialEq, Eq)]
enum SkuMatch {
    Item(String),
    /// No item has this code: no entry can have it either.
    None,
    /// Not settled within the search budget: filter in the gateway.
    Unresolved,
}

/// `query` with the item a single sku resolved to; `None` when no entry
/// can match.
fn with_sku(mut query: LedgerQuery, found: SkuMatch) -> Option<LedgerQuery> {
    match found {
        SkuMatch::Unresolved => Some(query),
        SkuMatch::None => None,
        SkuMatch::Item(id) => {
            if query.item_refs.as_ref().is_some_and(|refs| !refs.contains(&id)) {
                return None;
            }
            query.item_id = Some(id);
            Some(query)
        }
    }
}

/// BigLedger documents no code for a cursor it no longer accepts; the mock
/// answers `400 VALIDATION_ERROR` with `details[].field = "cursor"`, and a
/// dedicated `INVALID_CURSOR` code is read the same way.
fn error_dialect(status: StatusCode, body: &[u8]) -> Option<UpstreamFailure> {
    if !matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY) {
        return None;
    }
    let body: ErrorEnvelope = serde_json::from_slice(body).ok()?;
    let on_cursor = body.error.details.iter().any(|d| d.field.as_deref() == Some("cursor"));
    (on_cursor || body.error.code.as_deref() == Some("INVALID_CURSOR")).then_some(UpstreamFailure::PageTokenInvalid)
}

/// One list a walk reads, bound to a caller's credentials. Each list is
/// walked on its own date axis: only transfers need the skew.
struct BookWindows<'a> {
    source: &'a BigLedger,
    credentials: &'a Credentials,
    query: LedgerQuery,
    book: Book,
}

#[async_trait]
impl WindowFetch for BookWindows<'_> {
    async fn fetch_window(&self, window: Window, page_token: Option<&str>) -> Result<WindowPage, UpstreamError> {
        let Some(days) = query::day_range(window) else { return Ok(WindowPage::default()) };
        let limit = self.source.page_size;
        self.source.book_page(self.credentials, self.book, &self.query, days, limit, page_token).await
    }

    async fn any_in(&self, window: Window) -> Result<bool, UpstreamError> {
        let Some(days) = query::day_range(window) else { return Ok(false) };
        let page = self.source.book_page(self.credentials, self.book, &self.query, days, 1, None).await?;
        Ok(page.records > 0)
    }

    fn axis(&self) -> DateAxis {
        query::axis(self.book.skewed())
    }
}

/// The ledger walk: resolves a sku first (it needs a call), then walks
/// each list it reads in windows over the documents' days, side by side.
struct Walk<'a> {
    source: &'a BigLedger,
    credentials: &'a Credentials,
    request: ScanRequest,
    /// Taken when the walk starts; `None` before that means nothing can match.
    query: Option<LedgerQuery>,
    windows: Option<Box<dyn LedgerScan + 'a>>,
}

impl<'a> Walk<'a> {
    async fn start(&mut self) -> Result<Option<Box<dyn LedgerScan + 'a>>, UpstreamError> {
        let Some(mut query) = self.query.take() else { return Ok(None) };
        if let Some(sku) = query.sku.clone() {
            let found = self.source.resolve_sku(self.credentials, &sku).await?;
            let Some(narrowed) = with_sku(query, found) else { return Ok(None) };
            query = narrowed;
        }
        // The walk's bounds include the days the ids filter names.
        let mut request = self.request.clone();
        request.filter = SourceFilter { entry_date: query.entry_date.clone(), ..request.filter };
        let books = [(Book::Adjustments, query.adjustments), (Book::Transfers, query.transfers)];
        let books = books.into_iter().filter(|(_, read)| *read).map(|(book, _)| book);
        // Each list's walk takes its own density from the hint, in list order.
        let learned = request.hint.take().map(|h| h.walks).unwrap_or_default();
        let (page_size, span, clock) = (self.source.page_size, self.source.initial_window, self.source.client.clock());
        let walks: Vec<Box<dyn LedgerScan + 'a>> = books
            .enumerate()
            .map(|(n, book)| {
                let fetch =
                    BookWindows { source: self.source, credentials: self.credentials, query: query.clone(), book };
                let mut request = request.clone();
                request.hint = learned.get(n).map(|d| Hint { walks: vec![*d], ..Hint::default() });
                Box::new(WindowScan::new(fetch, &request, page_size, span, clock)) as Box<dyn LedgerScan + 'a>
            })
            .collect();
        Ok(Some(Box::new(Interleave::new(walks))))
    }
}

#[async_trait]
impl LedgerScan for Walk<'_> {
    async fn next_batch(&mut self) -> Result<Batch, UpstreamError> {
        if self.windows.is_none() {
            self.windows = self.start().await?;
        }
        match &mut self.windows {
            Some(windows) => windows.next_batch().await,
            None => Ok(Batch { entries: Vec::new(), watermark: Watermark::Exhausted }),
        }
    }

    fn hint(&self) -> Option<Hint> {
        self.windows.as_ref().and_then(|w| w.hint()).or_else(|| self.request.hint.clone())
    }
}

#[async_trait]
impl Source for BigLedger {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Entry ids are the gateway's own (`adj:<day>:…`, `xfer:<day>:…`);
    /// BigLedger's item and location ids (`item_…`, `loc_…` in its docs)
    /// hold no `:`, so never parse as one, but may equal each other.
    fn node_kinds(&self, native_id: &str) -> Vec<NodeKind> {
        match EntryId::parse(native_id) {
            Some(_) => vec![NodeKind::Entry],
            None => vec![NodeKind::Item, NodeKind::Location],
        }
    }

    fn client(&self) -> &UpstreamClient {
        &self.client
    }

    fn scan<'a>(&'a self, credentials: &'a Credentials, request: ScanRequest) -> Box<dyn LedgerScan + 'a> {
        let query = query::ledger_query(&request.filter);
        Box::new(Walk { source: self, credentials, request, query, windows: None })
    }

    async fn entry(&self, credentials: &Credentials, native_id: &str) -> Result<Option<LedgerEntry>, UpstreamError> {
        match EntryId::parse(native_id) {
            Some(id) => self.find_entry(credentials, &id).await,
            None => Ok(None),
        }
    }

    async fn count(&self, _credentials: &Credentials, _filter: &SourceFilter) -> Result<Option<u64>, UpstreamError> {
        // `pagination.total` counts documents; entries are their lines (two
        // per transfer line), so no exact count exists without reading all.
        Ok(None)
    }

    async fn items(&self, credentials: &Credentials, keys: &[String]) -> Result<HashMap<String, Item>, UpstreamError> {
        let found = self.lookup_each::<ItemRecord>(credentials, "item", "items", keys).await?;
        Ok(found.into_iter().map(|(key, record)| (key, record.into_item(&self.info.name))).collect())
    }

    async fn locations(
        &self,
        credentials: &Credentials,
        keys: &[String],
    ) -> Result<HashMap<String, Location>, UpstreamError> {
        let found = self.lookup_each::<LocationRecord>(credentials, "location", "locations", keys).await?;
        Ok(found.into_iter().map(|(key, record)| (key, record.into_location(&self.info.name))).collect())
    }

    async fn check_ready(&self, credentials: &Credentials) -> Result<(), UpstreamError> {
        let params: Params = vec![("status".into(), "posted".into()), ("limit".into(), "1".into())];
        let path = ["inventory", Book::Adjustments.path()];
        self.list::<serde_json::Value>(credentials, "adjustments", &path, &params).await.map(|_| ())
    }
}

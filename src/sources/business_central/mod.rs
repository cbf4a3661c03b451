//! Microsoft Dynamics 365 Business Central, API v2.0. `base_url` is the
//! company root (`…/api/v2.0/companies(<guid>)/`). BC sorts and pages
//! server-side: the ledger is read `postingDate desc` following the opaque
//! `@odata.nextLink`, and since posting dates are whole days, a page is
//! complete only above its oldest day (`Watermark::After`). Item ledger
//! entries carry no location in v2.0, and items are keyed by item number.
//! A service account signs in with client credentials (`sign_in`); a
//! configured or forwarded token is sent as it is.

pub mod query;
mod records;
pub mod sign_in;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;
use serde::de::IgnoredAny;
use serde::Deserialize;
use tracing::{debug, warn};
use url::Url;

use super::{Batch, LedgerScan, ScanRequest, Source, SourceInfo};
use crate::clock::Clock;
use crate::config::SourceConfig;
use crate::ledger::{BatchLimits, Capabilities, Hint, Pushdown, SourceFilter, Support, Watermark};
use crate::model::{EventType, Item, LedgerEntry, Location, NodeKind, SortKey, SourceKind, SourceName};
use crate::upstream::client::JsonAnswer;
use crate::upstream::{
    endpoint, AccessToken, Call, Credentials, RateLimit, UpstreamClient, UpstreamError, UpstreamFailure,
};
use query::{AnyOf, Guid, MAX_URL_LEN, ORDER_BY};
use records::{Collection, ItemRecord, LedgerRecord, LocationRecord};
use sign_in::SignIn;

pub const CREDENTIAL_FIELDS: &[&str] = &["token"];
/// An Entra ID app registration's client credentials, signed in for a token.
pub const SIGN_IN_FIELDS: &[&str] = &["tenant_id", "client_id", "client_secret"];
/// BC's server-side cap on entities per page.
pub const MAX_PAGE_SIZE: usize = 20_000;
/// Default cap on the page size the connector asks for.
const DEFAULT_PAGE_SIZE: usize = 1_000;
/// Keys per item or location lookup; the URL length splits further.
const MAX_KEYS_PER_CALL: usize = 50;
/// 6,000 requests per sliding 5 minutes per user or service principal, 5 at
/// once (the rest queue at BC until 100, then 429).
const RATE_LIMIT: RateLimit = RateLimit::new(6_000, std::time::Duration::from_secs(300)).with_concurrency(5);

#[derive(Debug)]
pub struct BusinessCentral {
    info: SourceInfo,
    base_url: Url,
    client: UpstreamClient,
    sign_in: SignIn,
    /// Largest `odata.maxpagesize` asked for.
    page_size: usize,
}

/// The token one call sends.
enum Bearer<'a> {
    /// Configured or forwarded: sent as it is, never refreshed.
    Given(&'a str),
    Issued(AccessToken),
}

impl Bearer<'_> {
    fn secret(&self) -> &str {
        match self {
            Bearer::Given(token) => token,
            Bearer::Issued(token) => token.secret(),
        }
    }
}

impl BusinessCentral {
    pub fn new(name: SourceName, config: &SourceConfig, clock: Clock) -> Self {
        let capabilities = Capabilities {
            pushdown: Pushdown {
                // Exact on days, but a blank posting date (0001-01-01) passes
                // BC's upper bounds while the entry has no entryDate.
                entry_date: Support::Coarse,
                // Widened to whole seconds.
                updated_at: Support::Coarse,
                // By entry type only; document type and sign refine it.
                event_types: Support::Coarse,
                skus: Support::Native,
                // Item ids are item numbers.
                item_ids: Support::Native,
                // API v2.0 has no location on item ledger entries.
                location_ids: Support::Unmatchable,
                ids: Support::Native,
                ids_override_other_filters: false,
            },
            event_types: &[
                EventType::Receipt,
                EventType::Shipment,
                EventType::ReturnReceipt,
                EventType::SupplierReturn,
                EventType::Adjustment,
                EventType::Transfer,
                EventType::Consumption,
                EventType::ProductionOutput,
                EventType::Other,
            ],
            max_page_size: MAX_PAGE_SIZE,
            // Set below, from the URL length the company root leaves.
            ids_per_read: 1,
            // BC serves 5 concurrent requests per user before queueing.
            items: Some(BatchLimits { max_keys: MAX_KEYS_PER_CALL, concurrency: 2 }),
            locations: Some(BatchLimits { max_keys: MAX_KEYS_PER_CALL, concurrency: 2 }),
        };
        let mut source = Self {
            client: UpstreamClient::new(
                name.clone(),
                config.http.policy().with_default_rate_limit(RATE_LIMIT),
                error_dialect,
                clock,
            ),
            sign_in: SignIn::new(name.clone(), config, config.http.policy(), clock),
            info: SourceInfo {
                name,
                kind: SourceKind::BusinessCentral,
                capabilities,
                credential_fields: CREDENTIAL_FIELDS,
            },
            base_url: config.base_url.clone(),
            page_size: config.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE),
        };
        let fits = |filter: &str| source.ledger_url(filter).as_str().len() <= MAX_URL_LEN;
        source.info.capabilities.ids_per_read = query::ids_per_read(&fits);
        source
    }

    /// `segment` under the company root, with `params` percent-encoded.
    fn url(&self, segment: &str, params: &[(&str, String)]) -> Url {
        let mut url = endpoint(&self.base_url, &[segment]);
        let query = query::query_string(params);
        url.set_query(Some(query.as_str()).filter(|q| !q.is_empty()));
        url
    }

    /// The ordered ledger read for one `$filter`.
    pub fn ledger_url(&self, filter: &str) -> Url {
        let filter = Some(("$filter", filter.to_owned())).filter(|(_, f)| !f.is_empty());
        let params: Vec<(&str, String)> = filter.into_iter().chain([("$orderby", ORDER_BY.to_owned())]).collect();
        self.url("itemLedgerEntries", &params)
    }

    /// The token for a call with `credentials`: theirs, or the service
    /// account's issued one (a new one when `rejected` was refused).
    async fn bearer<'a>(
        &self,
        credentials: &'a Credentials,
        rejected: Option<&AccessToken>,
    ) -> Result<Bearer<'a>, UpstreamError> {
        match credentials.get("token") {
            Some(token) => Ok(Bearer::Given(bearer_token(token))),
            None => self.sign_in.token(credentials, rejected).await.map(Bearer::Issued),
        }
    }

    fn headers(&self, bearer: &Bearer<'_>, page_size: Option<usize>) -> Result<HeaderMap, UpstreamError> {
        let token = Some(bearer.secret()).filter(|t| !t.is_empty());
        let mut authorization = token
            .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok())
            .ok_or_else(|| UpstreamError::new(&self.info.name, UpstreamFailure::MissingCredentials))?;
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(prefer) = page_size.and_then(|size| HeaderValue::try_from(format!("odata.maxpagesize={size}")).ok())
        {
            headers.insert("prefer", prefer);
        }
        Ok(headers)
    }

    async fn get<T: JsonAnswer>(
        &self,
        credentials: &Credentials,
        route: &'static str,
        url: Url,
        page_size: Option<usize>,
    ) -> Result<T, UpstreamError> {
        let call = |bearer: &Bearer<'_>| {
            Ok::<_, UpstreamError>(Call::get(
                route,
                url.clone(),
                self.headers(bearer, page_size)?,
                credentials.fingerprint(),
            ))
        };
        let bearer = self.bearer(credentials, None).await?;
        match self.client.get_json(&call(&bearer)?).await {
            // An issued token may be revoked or expire early: one new token,
            // one more try.
            Err(error) if error.failure == UpstreamFailure::Unauthorized => match bearer {
                Bearer::Issued(rejected) => {
                    debug!(source = %self.info.name, route, "business central refused the issued token");
                    let fresh = self.bearer(credentials, Some(&rejected)).await?;
                    self.client.get_json(&call(&fresh)?).await
                }
                Bearer::Given(_) => Err(error),
            },
            result => result,
        }
    }

    /// One page of a collection and the URL of the next.
    async fn page<T: JsonAnswer>(
        &self,
        credentials: &Credentials,
        route: &'static str,
        url: Url,
        page_size: usize,
    ) -> Result<(Vec<T>, Option<Url>), UpstreamError> {
        let page: Collection<T> = self.get(credentials, route, url.clone(), Some(page_size)).await?;
        let next = page.next_link.map(|link| self.next_url(&url, &link)).transpose()?;
        Ok((page.value, next))
    }

    /// Every page of a collection.
    async fn read_all<T: JsonAnswer>(
        &self,
        credentials: &Credentials,
        route: &'static str,
        url: Url,
    ) -> Result<Vec<T>, UpstreamError> {
        let mut records = Vec::new();
        let mut next = Some(url);
        while let Some(url) = next {
            let (page, following) = self.page(credentials, route, url, self.page_size).await?;
            records.extend(page);
            next = following;
        }
        Ok(records)
    }

    /// Resolves a nextLink. The token goes wherever it points, so it must
    /// stay on the configured origin.
    fn next_url(&self, current: &Url, link: &str) -> Result<Url, UpstreamError> {
        let next = current.join(link).ok().filter(|next| next.origin() == self.base_url.origin());
        next.ok_or_else(|| {
            warn!(source = %self.info.name, "next link leaves the upstream's origin");
            UpstreamError::new(&self.info.name, UpstreamFailure::BadResponse)
        })
    }

    /// Entities of `entity_set` whose `field` is one of `keys`, in as few
    /// calls as keep each URL short enough.
    async fn by_keys<T: JsonAnswer>(
        &self,
        credentials: &Credentials,
        route: &'static str,
        entity_set: &str,
        field: &str,
        keys: &[String],
    ) -> Result<Vec<T>, UpstreamError> {
        let url = |filter: String| self.url(entity_set, &[("$filter", filter)]);
        let fits = |filter: &str| url(filter.to_owned()).as_str().len() <= MAX_URL_LEN;
        let literals: Vec<String> = keys.iter().map(|k| query::string_literal(k)).collect();
        let mut records = Vec::new();
        for chunk in literals.chunks(MAX_KEYS_PER_CALL) {
            for filter in query::chunked_any_of(&[], field, chunk, AnyOf::In, &fits) {
                records.extend(self.read_all(credentials, route, url(filter)).await?);
            }
        }
        Ok(records)
    }

    fn entries(&self, records: Vec<LedgerRecord>) -> Vec<LedgerEntry> {
        records.into_iter().map(|r| r.into_entry(&self.info.name)).collect()
    }

    /// The reads for `filter` after `position`, each URL short enough.
    pub fn ledger_query(&self, filter: &SourceFilter, position: Option<&SortKey>) -> query::LedgerQuery {
        let fits = |filter: &str| self.ledger_url(filter).as_str().len() <= MAX_URL_LEN;
        query::ledger_query(filter, position, &fits)
    }
}

/// A token as configured or forwarded: a caller's own `Authorization`
/// header already carries the scheme.
fn bearer_token(value: &str) -> &str {
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        // A scheme with no token is no credential.
        None if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    }
}

/// `{"error": {"code", "message"}}`; the message may quote data, so only
/// the code is logged, and never returned.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
}

/// BC's statuses say what went wrong (401 credentials, 400 query, 404
/// missing, 429 throttled, 408/504 timeouts), so the shared
/// classification decides; the dialect only logs BC's error code.
fn error_dialect(status: StatusCode, body: &[u8]) -> Option<UpstreamFailure> {
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(body) {
        debug!(status = status.as_u16(), code = %body.error.code, "business central error");
    }
    None
}

/// What a page with a successor proves, BC sorting by posting date: every
/// entry newer than its oldest day is here (the next page may hold more of
/// that day). Undated entries come last, so one of them on the page means
/// every dated entry is here; an empty page proves nothing.
fn continued_page_watermark(entries: &[LedgerEntry]) -> Watermark {
    if entries.iter().any(|e| e.entry_date.is_none()) {
        return Watermark::After(DateTime::<Utc>::MIN_UTC);
    }
    Watermark::After(entries.iter().filter_map(|e| e.entry_date).min().unwrap_or(DateTime::<Utc>::MAX_UTC))
}

/// The ledger newest first, one page per batch.
struct LedgerPages<'a> {
    source: &'a BusinessCentral,
    credentials: &'a Credentials,
    next: Option<Url>,
    /// Size of the next page asked for.
    page_size: usize,
    /// Size of the last page asked for: the hint for the caller's next page.
    asked: usize,
    local: SourceFilter,
}

#[async_trait]
impl LedgerScan for LedgerPages<'_> {
    async fn next_batch(&mut self) -> Result<Batch, UpstreamError> {
        let Some(url) = self.next.take() else {
            return Ok(Batch { entries: Vec::new(), watermark: Watermark::Exhausted });
        };
        self.asked = self.page_size;
        let (records, next) = self.source.page(self.credentials, "ledger", url, self.page_size).await?;
        let entries = self.source.entries(records);
        let watermark = if next.is_some() { continued_page_watermark(&entries) } else { Watermark::Exhausted };
        let entries = entries.into_iter().filter(|e| self.local.matches(e)).collect();
        if next.is_some() {
            // Asked for again, the page ended inside a day the caller still
            // needs: a bigger page gets past such days in fewer calls.
            self.page_size = (self.page_size * 2).min(self.source.page_size);
        }
        self.next = next;
        Ok(Batch { entries, watermark })
    }

    fn hint(&self) -> Option<Hint> {
        Some(Hint { page_size: Some(self.asked), ..Hint::default() })
    }
}

/// Several reads (chunks of a long id list), each to its end: complete in
/// one batch.
struct ChunkScan<'a> {
    source: &'a BusinessCentral,
    credentials: &'a Credentials,
    urls: Vec<Url>,
    local: SourceFilter,
}

#[async_trait]
impl LedgerScan for ChunkScan<'_> {
    async fn next_batch(&mut self) -> Result<Batch, UpstreamError> {
        let mut records = Vec::new();
        for url in std::mem::take(&mut self.urls) {
            records.extend(self.source.read_all::<LedgerRecord>(self.credentials, "ledger", url).await?);
        }
        let entries = self.source.entries(records).into_iter().filter(|e| self.local.matches(e)).collect();
        Ok(Batch { entries, watermark: Watermark::Exhausted })
    }
}

#[async_trait]
impl Source for BusinessCentral {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Entries are keyed by GUID; items by number and locations by code,
    /// both at most 20 characters, so never a GUID, but possibly equal.
    fn node_kinds(&self, native_id: &str) -> Vec<NodeKind> {
        match Guid::parse(native_id) {
            Some(_) => vec![NodeKind::Entry],
            None => vec![NodeKind::Item, NodeKind::Location],
        }
    }

    fn client(&self) -> &UpstreamClient {
        &self.client
    }

    fn scan<'a>(&'a self, credentials: &'a Credentials, request: ScanRequest) -> Box<dyn LedgerScan + 'a> {
        let query = self.ledger_query(&request.filter, request.position.as_ref());
        let local = query.local;
        match query.filters.as_slice() {
            [filter] => {
                // Enough for the page with room for a day's spill-over, or
                // what the previous page learned it needed.
                let learned = request.hint.as_ref().and_then(|h| h.page_size).unwrap_or(0);
                let wanted = (2 * (request.want + 1)).max(learned);
                Box::new(LedgerPages {
                    source: self,
                    credentials,
                    next: Some(self.ledger_url(filter)),
                    page_size: wanted.clamp(1, self.page_size),
                    asked: 0,
                    local,
                })
            }
            filters => {
                let urls = filters.iter().map(|f| self.ledger_url(f)).collect();
                Box::new(ChunkScan { source: self, credentials, urls, local })
            }
        }
    }

    async fn entry(&self, credentials: &Credentials, native_id: &str) -> Result<Option<LedgerEntry>, UpstreamError> {
        // Only a GUID can name a BC entry: anything else is not asked for.
        let Some(id) = Guid::parse(native_id) else { return Ok(None) };
        let url = endpoint(&self.base_url, &[&format!("itemLedgerEntries({id})")]);
        match self.get::<LedgerRecord>(credentials, "ledger_entry", url, None).await {
            Ok(record) => Ok(Some(record.into_entry(&self.info.name))),
            Err(e) if e.failure == UpstreamFailure::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn count(&self, credentials: &Credentials, filter: &SourceFilter) -> Result<Option<u64>, UpstreamError> {
        let query = self.ledger_query(filter, None);
        if query.local != SourceFilter::default() {
            // BC would count entries the connector then drops.
            return Ok(None);
        }
        let mut total = 0;
        for filter in query.filters {
            let filter = Some(("$filter", filter)).filter(|(_, f)| !f.is_empty());
            let counting = [("$count", "true"), ("$top", "1"), ("$select", "id")].map(|(k, v)| (k, v.to_owned()));
            let params: Vec<(&str, String)> = filter.into_iter().chain(counting).collect();
            let url = self.url("itemLedgerEntries", &params);
            let page: Collection<IgnoredAny> = self.get(credentials, "ledger_count", url, None).await?;
            total += page.count.ok_or_else(|| UpstreamError::new(&self.info.name, UpstreamFailure::BadResponse))?;
        }
        Ok(Some(total))
    }

    async fn items(&self, credentials: &Credentials, keys: &[String]) -> Result<HashMap<String, Item>, UpstreamError> {
        let records: Vec<ItemRecord> = self.by_keys(credentials, "items", "items", "number", keys).await?;
        Ok(records.into_iter().map(|r| (r.number.clone(), r.into_item(&self.info.name))).collect())
    }

    async fn locations(
        &self,
        credentials: &Credentials,
        keys: &[String],
    ) -> Result<HashMap<String, Location>, UpstreamError> {
        let records: Vec<LocationRecord> = self.by_keys(credentials, "locations", "locations", "code", keys).await?;
        Ok(records.into_iter().map(|r| (r.code.clone(), r.into_location(&self.info.name))).collect())
    }

    async fn check_ready(&self, credentials: &Credentials) -> Result<(), UpstreamError> {
        let url = self.url("itemLedgerEntries", &[("$top", "1".to_owned())]);
        self.get::<Collection<IgnoredAny>>(credentials, "ledger", url, None).await.map(|_| ())
    }
}

//! Trackstar's unified WMS API. The ledger comes in no documented order, so
//! it is walked in date windows (`sources::window`); `ids[in]` lookups are
//! chunked to Trackstar's 100-id limit. Locations are warehouses (looked up
//! by `ids[in]`) and bins inside them, which Trackstar only lists per
//! warehouse: a bin's native key is `<warehouse id>/<bin id>`.

// Public only for the fuzz targets (`crate::fuzzing`).
#[doc(hidden)]
pub mod query;
mod records;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use url::Url;

use super::window::{Window, WindowFetch, WindowPage, WindowScan};
use super::{Batch, LedgerScan, ScanRequest, Source, SourceInfo};
use crate::clock::Clock;
use crate::config::SourceConfig;
use crate::ledger::{BatchLimits, Capabilities, Pushdown, SourceFilter, Support, Watermark};
use crate::model::{EventType, Item, LedgerEntry, Location, SourceKind, SourceName, StockLevel};
use crate::upstream::client::JsonAnswer;
use crate::upstream::settled::{Changes, Covers};
use crate::upstream::{
    endpoint, sensitive_header, Call, Credentials, RateLimit, UpstreamClient, UpstreamError, UpstreamFailure,
};
use records::{split_bin_key, BinRecord, InventoryRecord, LedgerRecord, ListEnvelope, WarehouseRecord};

pub const CREDENTIAL_FIELDS: &[&str] = &["api_key", "access_token"];
/// Trackstar rejects `ids[in]` lists longer than this with a 422.
const MAX_IDS_PER_CALL: usize = 100;
/// Lookup calls in flight at once: Trackstar allows 10 GETs a second per
/// access token, and a page's ledger reads run beside them.
const LOOKUP_CONCURRENCY: usize = 4;
pub const MAX_PAGE_SIZE: usize = 1000;
/// Trackstar allows 10 GET requests a second per access token.
const RATE_LIMIT: RateLimit = RateLimit::new(10, std::time::Duration::from_secs(1));

#[derive(Debug)]
pub struct Trackstar {
    info: SourceInfo,
    base_url: Url,
    client: UpstreamClient,
    page_size: usize,
    initial_window: Duration,
}

impl Trackstar {
    pub fn new(name: SourceName, config: &SourceConfig, clock: Clock) -> Self {
        let capabilities = Capabilities {
            pushdown: Pushdown {
                // Whole-second granularity on the wire: re-checked.
                entry_date: Support::Coarse,
                updated_at: Support::Coarse,
                event_types: Support::Native,
                skus: Support::Gateway,
                item_ids: Support::Gateway,
                location_ids: Support::Gateway,
                ids: Support::Native,
                ids_override_other_filters: true,
            },
            event_types: &[
                EventType::Adjustment,
                EventType::ReturnReceipt,
                EventType::Receipt,
                EventType::Shipment,
                EventType::SupplierReturn,
                EventType::Transfer,
                EventType::Other,
            ],
            max_page_size: MAX_PAGE_SIZE,
            ids_per_read: MAX_IDS_PER_CALL,
            items: Some(BatchLimits { max_keys: MAX_IDS_PER_CALL, concurrency: LOOKUP_CONCURRENCY }),
            locations: Some(BatchLimits { max_keys: MAX_IDS_PER_CALL, concurrency: LOOKUP_CONCURRENCY }),
        };
        Self {
            client: UpstreamClient::new(
                name.clone(),
                config.http.policy().with_default_rate_limit(RATE_LIMIT),
                error_dialect,
                clock,
            ),
            info: SourceInfo { name, kind: SourceKind::Trackstar, capabilities, credential_fields: CREDENTIAL_FIELDS },
            base_url: config.base_url.clone(),
            page_size: config.page_size.unwrap_or(MAX_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE),
            initial_window: config.initial_window().unwrap_or(Duration::days(1)),
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
        url.query_pairs_mut().extend_pairs(params);
        Ok(Call::get(route, url, self.auth_headers(credentials)?, credentials.fingerprint()))
    }

    fn auth_headers(&self, credentials: &Credentials) -> Result<HeaderMap, UpstreamError> {
        let mut headers = HeaderMap::new();
        for (header, field) in [("x-trackstar-api-key", "api_key"), ("x-trackstar-access-token", "access_token")] {
            let value = credentials
                .get(field)
                .and_then(sensitive_header)
                .ok_or_else(|| UpstreamError::new(&self.info.name, UpstreamFailure::MissingCredentials))?;
            headers.insert(header, value);
        }
        Ok(headers)
    }

    /// One ledger page; `window` is the entry dates it asked for, so that a
    /// settled one can be kept long (see `upstream::settled`).
    async fn ledger_page(
        &self,
        credentials: &Credentials,
        params: &[(String, String)],
        window: Option<Window>,
    ) -> Result<ListEnvelope<LedgerRecord>, UpstreamError> {
        let mut call = self.call(credentials, "ledger", &["wms", "inventory", "ledger"], params)?;
        // `lte` of the end also returns entries dated at it: closed above.
        call.covers = window.and_then(|w| Some(Covers { from: w.from, to: w.to? }));
        self.client.get_json(&call).await
    }

    fn entries(&self, records: Vec<LedgerRecord>) -> Vec<LedgerEntry> {
        records.into_iter().map(|r| r.into_entry(&self.info.name)).collect()
    }

    async fn by_ids(&self, credentials: &Credentials, ids: &[String]) -> Result<Vec<LedgerEntry>, UpstreamError> {
        let records: Vec<LedgerRecord> =
            self.list_by_ids(credentials, "ledger", &["wms", "inventory", "ledger"], ids).await?;
        Ok(self.entries(records))
    }

    /// Any list endpoint filtered by `ids[in]`, in chunks Trackstar accepts.
    async fn list_by_ids<T: JsonAnswer>(
        &self,
        credentials: &Credentials,
        route: &'static str,
        path: &[&str],
        ids: &[String],
    ) -> Result<Vec<T>, UpstreamError> {
        // A comma would split one id into two in Trackstar's CSV lists; no
        // Trackstar id has one, so such an id cannot match.
        let ids: Vec<String> = ids.iter().filter(|id| !id.contains(',')).cloned().collect();
        let mut records = Vec::new();
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            let call = self.call(credentials, route, path, &query::ids_params(chunk))?;
            let page: ListEnvelope<T> = self.client.get_json(&call).await?;
            records.extend(page.data);
        }
        Ok(records)
    }

    /// Every record of a list endpoint, following `next_token`.
    async fn list_all<T: JsonAnswer>(
        &self,
        credentials: &Credentials,
        route: &'static str,
        path: &[&str],
    ) -> Result<Vec<T>, UpstreamError> {
        let mut records = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = vec![("limit".to_owned(), MAX_PAGE_SIZE.to_string())];
            params.extend(token.clone().map(|t| ("page_token".to_owned(), t)));
            let page: ListEnvelope<T> = self.client.get_json(&self.call(credentials, route, path, &params)?).await?;
            records.extend(page.data);
            match page.next_token {
                // A token that does not move would loop forever.
                Some(next) if token.as_ref() == Some(&next) => {
                    return Err(UpstreamError::new(&self.info.name, UpstreamFailure::BadResponse))
                }
                Some(next) => token = Some(next),
                None => return Ok(records),
            }
        }
    }

    /// Every bin of one warehouse (Trackstar has no bin lookup by id); none
    /// when Trackstar does not know the warehouse.
    async fn bins(&self, credentials: &Credentials, warehouse: &str) -> Result<Vec<Location>, UpstreamError> {
        let path = ["wms", "warehouses", warehouse, "locations"];
        let records: Vec<BinRecord> = match self.list_all(credentials, "warehouse_locations", &path).await {
            Err(error) if error.failure == UpstreamFailure::NotFound => Vec::new(),
            other => other?,
        };
        Ok(records.into_iter().map(|r| r.into_location(&self.info.name, warehouse)).collect())
    }
}

/// Trackstar reports a bad page token as a 422 on `page_token`.
fn error_dialect(status: StatusCode, body: &[u8]) -> Option<UpstreamFailure> {
    if status != StatusCode::UNPROCESSABLE_ENTITY {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    body.pointer("/detail/query/page_token").map(|_| UpstreamFailure::PageTokenInvalid)
}

/// One filtered ledger read, bound to a caller's credentials.
struct LedgerWindows<'a> {
    source: &'a Trackstar,
    credentials: &'a Credentials,
    filter: SourceFilter,
}

#[async_trait]
impl WindowFetch for LedgerWindows<'_> {
    async fn fetch_window(&self, window: Window, page_token: Option<&str>) -> Result<WindowPage, UpstreamError> {
        let params = query::ledger_params(&self.filter, window, page_token, self.source.page_size);
        let page = self.source.ledger_page(self.credentials, &params, Some(window)).await?;
        let records = page.data.len();
        // `lte` of the window's end (see `query::push_range`) also returns
        // the entries dated at it, which the window above has read.
        let mut entries = self.source.entries(page.data);
        entries.retain(|e| window.to.is_none_or(|to| e.entry_date.is_some_and(|at| at < to)));
        Ok(WindowPage { entries, records, next_page: page.next_token })
    }

    async fn any_in(&self, window: Window) -> Result<bool, UpstreamError> {
        let params = query::ledger_params(&self.filter, window, None, 1);
        Ok(!self.source.ledger_page(self.credentials, &params, Some(window)).await?.data.is_empty())
    }
}

/// Entries by id: one batch, complete.
struct IdsScan<'a> {
    source: &'a Trackstar,
    credentials: &'a Credentials,
    ids: Option<Vec<String>>,
}

#[async_trait]
impl LedgerScan for IdsScan<'_> {
    async fn next_batch(&mut self) -> Result<Batch, UpstreamError> {
        let entries = match self.ids.take() {
            Some(ids) => self.source.by_ids(self.credentials, &ids).await?,
            None => Vec::new(),
        };
        Ok(Batch { entries, watermark: Watermark::Exhausted })
    }
}

#[async_trait]
impl Source for Trackstar {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn client(&self) -> &UpstreamClient {
        &self.client
    }

    fn scan<'a>(&'a self, credentials: &'a Credentials, request: ScanRequest) -> Box<dyn LedgerScan + 'a> {
        if let Some(ids) = &request.filter.ids {
            return Box::new(IdsScan { source: self, credentials, ids: Some(ids.iter().cloned().collect()) });
        }
        let fetch = LedgerWindows { source: self, credentials, filter: request.filter.clone() };
        Box::new(WindowScan::new(fetch, &request, self.page_size, self.initial_window, self.client.clock()))
    }

    async fn entry(&self, credentials: &Credentials, native_id: &str) -> Result<Option<LedgerEntry>, UpstreamError> {
        let found = self.by_ids(credentials, &[native_id.to_owned()]).await?;
        Ok(found.into_iter().find(|e| e.native_id == native_id))
    }

    async fn count(&self, _credentials: &Credentials, _filter: &SourceFilter) -> Result<Option<u64>, UpstreamError> {
        // Trackstar's `total_count` counts the page, not the matches.
        Ok(None)
    }

    async fn items(&self, credentials: &Credentials, keys: &[String]) -> Result<HashMap<String, Item>, UpstreamError> {
        let records: Vec<InventoryRecord> =
            self.list_by_ids(credentials, "inventory", &["wms", "inventory"], keys).await?;
        Ok(records.into_iter().map(|r| (r.id.clone(), r.into_item(&self.info.name))).collect())
    }

    /// Warehouses in one `ids[in]` call; bins with one listing per distinct
    /// warehouse, which also returns (and so caches) that warehouse's other bins.
    async fn locations(
        &self,
        credentials: &Credentials,
        keys: &[String],
    ) -> Result<HashMap<String, Location>, UpstreamError> {
        let (bins, warehouses): (Vec<&String>, Vec<&String>) = keys.iter().partition(|k| split_bin_key(k).is_some());
        let mut found = HashMap::new();
        if !warehouses.is_empty() {
            let ids: Vec<String> = warehouses.into_iter().cloned().collect();
            let records: Vec<WarehouseRecord> =
                self.list_by_ids(credentials, "warehouses", &["wms", "warehouses"], &ids).await?;
            found.extend(records.into_iter().map(|r| (r.id.clone(), r.into_location(&self.info.name))));
        }
        let parents: BTreeSet<String> =
            bins.iter().filter_map(|k| split_bin_key(k)).map(|(w, _)| w.to_owned()).collect();
        let mut listings = futures::stream::iter(parents)
            .map(|warehouse: String| async move { self.bins(credentials, &warehouse).await })
            .buffer_unordered(LOOKUP_CONCURRENCY);
        while let Some(bins) = listings.next().await {
            found.extend(bins?.into_iter().map(|bin| (bin.native_id.clone(), bin)));
        }
        Ok(found)
    }

    /// Trackstar cannot filter its inventory by place: the whole inventory is
    /// listed (one call per 1000 items) and the levels at `location` kept.
    async fn location_stock(
        &self,
        credentials: &Credentials,
        location: &str,
    ) -> Result<Option<Vec<StockLevel>>, UpstreamError> {
        let records: Vec<InventoryRecord> = self.list_all(credentials, "inventory", &["wms", "inventory"]).await?;
        let here = |level: &StockLevel| {
            level.location_ref == location || split_bin_key(&level.location_ref).is_some_and(|(w, _)| w == location)
        };
        let levels = records.into_iter().flat_map(|r| r.into_item(&self.info.name).stock_levels).filter(here).collect();
        Ok(Some(levels))
    }

    async fn check_ready(&self, credentials: &Credentials) -> Result<(), UpstreamError> {
        self.ledger_page(credentials, &[("limit".into(), "1".into())], None).await.map(|_| ())
    }

    /// One page of the records Trackstar created or updated since `since`
    /// (`trackstar_updated_date`: Trackstar's own copy, so an entry a WMS
    /// reports late counts from when it arrived).
    async fn changed_since(
        &self,
        credentials: &Credentials,
        since: DateTime<Utc>,
    ) -> Result<Option<Changes>, UpstreamError> {
        let params = query::changed_since_params(since, MAX_PAGE_SIZE);
        let page = self.ledger_page(credentials, &params, None).await?;
        let more = page.next_token.is_some();
        let dates: Vec<_> = self.entries(page.data).into_iter().map(|e| e.entry_date).collect();
        // An undated change could lie in any window.
        let complete = !more && dates.iter().all(Option::is_some);
        Ok(Some(Changes { entry_dates: dates.into_iter().flatten().collect(), complete }))
    }
}

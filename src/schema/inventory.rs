//! The `Item`, `Location`, `StockLevel` and `Money` types. Related objects
//! (a stock level's location, a bin's warehouse) resolve through the
//! request's loaders; an item's or location's ledger entries through the
//! same resolver as `Query.ledgerEntries`, with the item or location added to
//! the filter.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Object, Result, SimpleObject, ID};
use rust_decimal::Decimal;

use super::filter::LedgerEntryFilter;
use super::loaders::Loaders;
use super::query::{ledger_connection, LedgerEntryConnection};
use crate::error::GatewayError;
use crate::model::{self, global_id, LocationKind, SourceKind, SourceName};
use crate::upstream::UpstreamError;

/// An upstream failure as a GraphQL error naming the source.
pub fn upstream_error(error: UpstreamError) -> async_graphql::Error {
    GatewayError::from(error).extend()
}

/// `ids` narrowed to `own`: only `own` when no list was given, nothing when a
/// given list leaves it out.
fn narrowed(ids: Option<Vec<ID>>, own: ID) -> Option<Vec<ID>> {
    Some(match ids {
        None => vec![own],
        Some(ids) => ids.into_iter().filter(|id| *id == own).collect(),
    })
}

/// An amount of money, exact.
#[derive(Clone, Debug, SimpleObject)]
pub struct Money {
    /// The amount, an exact decimal.
    pub amount: Decimal,
    /// ISO currency code; null when the source does not state one (Trackstar).
    pub currency: Option<String>,
}

impl From<&model::Money> for Money {
    fn from(money: &model::Money) -> Self {
        Self { amount: money.amount, currency: money.currency.clone() }
    }
}

/// A postal address, as far as the source knows it.
#[derive(Clone, Debug, SimpleObject)]
pub struct Address {
    /// First street line.
    pub line1: Option<String>,
    /// Second street line.
    pub line2: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State, province or region.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Country, as the source writes it.
    pub country: Option<String>,
}

impl From<&model::Address> for Address {
    fn from(a: &model::Address) -> Self {
        Self {
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            region: a.region.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        }
    }
}

/// A stock-keeping item of one source.
#[derive(Clone, Debug)]
pub struct Item(pub Arc<model::Item>);

/// A stock-keeping item of one source. Which fields each source fills is
/// listed in the README ("Items, locations and caching").
#[Object]
impl Item {
    /// `<source>:<native id>`, unique across sources.
    pub async fn id(&self) -> ID {
        ID(global_id(&self.0.source, &self.0.native_id))
    }

    /// The configured name of the source this item belongs to.
    async fn source(&self) -> &str {
        self.0.source.as_str()
    }

    /// Which kind of upstream the source is.
    async fn source_kind(&self) -> SourceKind {
        self.0.source_kind
    }

    /// The item's id in its source.
    async fn native_id(&self) -> &str {
        &self.0.native_id
    }

    /// The SKU (item number) as the source spells it.
    async fn sku(&self) -> Option<&str> {
        self.0.sku.as_deref()
    }

    /// Display name.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// Longer description, when the source has one.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// Barcode (GTIN, EAN...), when the source has one.
    async fn barcode(&self) -> Option<&str> {
        self.0.barcode.as_deref()
    }

    /// Unit of measure quantities are counted in.
    async fn unit(&self) -> Option<&str> {
        self.0.unit.as_deref()
    }

    /// Cost of one unit.
    async fn cost(&self) -> Option<Money> {
        self.0.cost.as_ref().map(Money::from)
    }

    /// Sales price of one unit.
    async fn price(&self) -> Option<Money> {
        self.0.price.as_ref().map(Money::from)
    }

    /// Whether the item is active (not blocked) in its source.
    async fn active(&self) -> Option<bool> {
        self.0.active
    }

    /// Units physically in stock, across every location. Exact decimal.
    async fn on_hand(&self) -> Option<Decimal> {
        self.0.on_hand
    }

    /// Units that can still be promised (on hand minus reserved).
    async fn available(&self) -> Option<Decimal> {
        self.0.available
    }

    /// Units committed to orders but not yet shipped.
    async fn reserved(&self) -> Option<Decimal> {
        self.0.reserved
    }

    /// Stock of this item per location, as the item lookup reports it (no
    /// extra upstream call; the levels' locations are one batched lookup).
    async fn stock_levels(&self, ctx: &Context<'_>) -> Result<Vec<StockLevel>> {
        stock_levels(ctx, &self.0.source, &self.0.stock_levels).await
    }

    /// Ledger entries about this item, newest first: `Query.ledgerEntries`
    /// with this item added to `filter` (a given `itemIds` list must contain
    /// it). Sources that cannot filter by item upstream (Trackstar) are
    /// filtered in the gateway, which reads more of their ledger.
    #[graphql(complexity = "super::limits::page_cost(first, child_complexity)")]
    async fn ledger_entries(
        &self,
        ctx: &Context<'_>,
        filter: Option<LedgerEntryFilter>,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<LedgerEntryConnection> {
        let mut filter = filter.unwrap_or_default();
        filter.item_ids = narrowed(filter.item_ids, ID(global_id(&self.0.source, &self.0.native_id)));
        ledger_connection(ctx, filter, after, first).await
    }
}

/// A place stock is kept: a warehouse, a store, or a bin inside a warehouse.
#[derive(Clone, Debug)]
pub struct Location(pub Arc<model::Location>);

/// A place stock is kept: a warehouse, a store, or a bin inside a
/// warehouse, of one source. Which fields each source fills is listed in the
/// README ("Items, locations and caching").
#[Object]
impl Location {
    /// `<source>:<native id>`, unique across sources. A Trackstar bin's
    /// native id is `<warehouse id>/<bin id>`.
    pub async fn id(&self) -> ID {
        ID(global_id(&self.0.source, &self.0.native_id))
    }

    /// The configured name of the source this location belongs to.
    async fn source(&self) -> &str {
        self.0.source.as_str()
    }

    /// Which kind of upstream the source is.
    async fn source_kind(&self) -> SourceKind {
        self.0.source_kind
    }

    /// The location's id in its source.
    async fn native_id(&self) -> &str {
        &self.0.native_id
    }

    /// Display name.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// Short code, when the source has one.
    async fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }

    /// Warehouse, store or bin.
    async fn kind(&self) -> LocationKind {
        self.0.kind
    }

    /// Postal address, where the source knows one (warehouses; never bins).
    async fn address(&self) -> Option<Address> {
        self.0.address.as_ref().map(Address::from)
    }

    /// The location this one is inside (a bin's warehouse); null for
    /// top-level locations.
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<Location>> {
        let Some(parent) = &self.0.parent_ref else { return Ok(None) };
        load_location(ctx, &self.0.source, parent).await
    }

    /// Stock at this location (for a warehouse, including its bins), or null
    /// when the source cannot list stock by location (see the README).
    /// Trackstar lists its whole inventory for it (one call per 1000 items,
    /// cached for the location time-to-live).
    async fn stock_levels(&self, ctx: &Context<'_>) -> Result<Option<Vec<StockLevel>>> {
        let loaders = ctx.data::<Loaders>()?;
        let levels = loaders.location_stock(self.0.source.as_str(), &self.0.native_id).await.map_err(upstream_error)?;
        match levels {
            Some(levels) => Ok(Some(stock_levels(ctx, &self.0.source, &levels).await?)),
            None => Ok(None),
        }
    }

    /// Ledger entries at this location, newest first: `Query.ledgerEntries`
    /// with this location added to `filter` (a given `locationIds` list must
    /// contain it). A warehouse matches entries in any of its bins too.
    #[graphql(complexity = "super::limits::page_cost(first, child_complexity)")]
    async fn ledger_entries(
        &self,
        ctx: &Context<'_>,
        filter: Option<LedgerEntryFilter>,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<LedgerEntryConnection> {
        let mut filter = filter.unwrap_or_default();
        filter.location_ids = narrowed(filter.location_ids, ID(global_id(&self.0.source, &self.0.native_id)));
        ledger_connection(ctx, filter, after, first).await
    }
}

/// Stock of one item at one location.
#[derive(Clone, Debug)]
pub struct StockLevel {
    source: SourceName,
    level: model::StockLevel,
}

/// Stock of one item at one location, exact decimals. Sources report
/// different parts: Trackstar gives only `onHand` per location.
#[Object]
impl StockLevel {
    /// The item's id (`<source>:<native id>`).
    async fn item_id(&self) -> ID {
        ID(global_id(&self.source, &self.level.item_ref))
    }

    /// The item, through the request's item loader.
    async fn item(&self, ctx: &Context<'_>) -> Result<Option<Item>> {
        load_item(ctx, &self.source, &self.level.item_ref).await
    }

    /// The location's id (`<source>:<native id>`).
    async fn location_id(&self) -> ID {
        ID(global_id(&self.source, &self.level.location_ref))
    }

    /// The location, through the request's location loader.
    async fn location(&self, ctx: &Context<'_>) -> Result<Option<Location>> {
        load_location(ctx, &self.source, &self.level.location_ref).await
    }

    /// Units physically here.
    async fn on_hand(&self) -> Option<Decimal> {
        self.level.on_hand
    }

    /// Units here that can still be promised.
    async fn available(&self) -> Option<Decimal> {
        self.level.available
    }

    /// Units here committed to orders.
    async fn reserved(&self) -> Option<Decimal> {
        self.level.reserved
    }
}

/// `levels` as GraphQL objects, with the items and locations the selection
/// asks for looked up in one batch.
async fn stock_levels(ctx: &Context<'_>, source: &SourceName, levels: &[model::StockLevel]) -> Result<Vec<StockLevel>> {
    let look = ctx.look_ahead();
    let (item, location) = (look.field("item").exists(), look.field("location").exists());
    if item || location {
        ctx.data::<Loaders>()?.prime_stock(source, levels, item, location).await;
    }
    Ok(levels.iter().map(|level| StockLevel { source: source.clone(), level: level.clone() }).collect())
}

/// One item of `source` through the request's loader.
pub async fn load_item(ctx: &Context<'_>, source: &SourceName, key: &str) -> Result<Option<Item>> {
    let loaders = ctx.data::<Loaders>()?;
    Ok(loaders.item(source.as_str(), key).await.map_err(upstream_error)?.map(Item))
}

/// One location of `source` through the request's loader.
pub async fn load_location(ctx: &Context<'_>, source: &SourceName, key: &str) -> Result<Option<Location>> {
    let loaders = ctx.data::<Loaders>()?;
    Ok(loaders.location(source.as_str(), key).await.map_err(upstream_error)?.map(Location))
}

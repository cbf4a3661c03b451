//! The `LedgerEntry` GraphQL type over the unified model; its `item`,
//! `location` and `warehouse` resolve through the request's loaders.

use async_graphql::{Context, Json, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::inventory::{load_item, load_location, Item, Location};
use crate::model::{self, EventType, SourceKind};

/// One stock or money movement from one source.
#[derive(Clone, Debug)]
pub struct LedgerEntry(pub model::LedgerEntry);

/// The object a movement originated from.
#[derive(Clone, Debug, SimpleObject)]
pub struct DocumentReference {
    /// The source's own name for the kind of object (`order`, `Sales Shipment`...).
    pub kind: Option<String>,
    /// The object's id or number in the source.
    pub number: Option<String>,
}

/// Money attached to an entry, exact. Which fields a source fills is listed
/// in the README (Trackstar reports none).
#[derive(Clone, Debug, SimpleObject)]
pub struct LedgerAmounts {
    /// Cost of the movement.
    pub cost: Option<Decimal>,
    /// Sales value of the movement.
    pub sales: Option<Decimal>,
    /// Sum of debits (accounting sources).
    pub debit: Option<Decimal>,
    /// Sum of credits (accounting sources).
    pub credit: Option<Decimal>,
    /// ISO currency code, when the source states one.
    pub currency: Option<String>,
}

/// One stock or money movement from one source.
#[Object]
impl LedgerEntry {
    /// `<source>:<native id>`, unique across sources.
    pub async fn id(&self) -> ID {
        ID(self.0.id())
    }

    /// The configured name of the source this entry came from.
    async fn source(&self) -> &str {
        self.0.source.as_str()
    }

    /// Which kind of upstream the source is.
    async fn source_kind(&self) -> SourceKind {
        self.0.source_kind
    }

    /// The entry's id in its source.
    async fn native_id(&self) -> &str {
        &self.0.native_id
    }

    /// When the movement happened. Sources with day precision (Business
    /// Central) give midnight UTC; null only for undated drafts.
    async fn entry_date(&self) -> Option<DateTime<Utc>> {
        self.0.entry_date
    }

    /// What happened, unified across sources.
    async fn event_type(&self) -> EventType {
        self.0.event_type
    }

    /// The source's own event name, verbatim.
    async fn raw_event_type(&self) -> Option<&str> {
        self.0.raw_event_type.as_deref()
    }

    /// Signed quantity: negative for stock leaving. Exact decimal; null for
    /// sources without quantities (accounting).
    async fn quantity(&self) -> Option<Decimal> {
        self.0.quantity
    }

    /// Money attached to the entry.
    async fn amounts(&self) -> LedgerAmounts {
        let a = &self.0.amounts;
        LedgerAmounts { cost: a.cost, sales: a.sales, debit: a.debit, credit: a.credit, currency: a.currency.clone() }
    }

    /// The item's SKU as the source spells it.
    async fn sku(&self) -> Option<&str> {
        self.0.sku.as_deref()
    }

    /// The item's id (`<source>:<native id>`), when the entry is about an item.
    async fn item_id(&self) -> Option<ID> {
        self.0.item_ref.as_ref().map(|r| ID(model::global_id(&self.0.source, r)))
    }

    /// Free text: the reason, description or label the source gives.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The order, shipment or document that caused the movement.
    async fn document(&self) -> Option<DocumentReference> {
        self.0.document.as_ref().map(|d| DocumentReference { kind: d.kind.clone(), number: d.number.clone() })
    }

    /// The warehouse's id (`<source>:<native id>`), when known.
    async fn warehouse_id(&self) -> Option<ID> {
        self.0.warehouse_id.as_ref().map(|w| ID(model::global_id(&self.0.source, w)))
    }

    /// The location's (bin's) id (`<source>:<native id>`), when known.
    /// Business Central's v2.0 API has no location on ledger entries: null there.
    async fn location_id(&self) -> Option<ID> {
        self.0.location_id.as_ref().map(|l| ID(model::global_id(&self.0.source, l)))
    }

    /// The item moved, looked up in the entry's own source (batched per
    /// page, cached per caller). Null when the entry has no item (Pennylane)
    /// or the source no longer knows it; an error naming the source when
    /// the lookup fails.
    async fn item(&self, ctx: &Context<'_>) -> Result<Option<Item>> {
        let Some(key) = &self.0.item_ref else { return Ok(None) };
        load_item(ctx, &self.0.source, key).await
    }

    /// Where the stock moved, as precisely as the source says: the bin
    /// (`locationId`) when the entry names one, else the warehouse
    /// (`warehouseId`). Null when the source has no location on entries
    /// (Business Central v2.0, Pennylane).
    async fn location(&self, ctx: &Context<'_>) -> Result<Option<Location>> {
        let Some(key) = self.0.location_id.as_ref().or(self.0.warehouse_id.as_ref()) else { return Ok(None) };
        load_location(ctx, &self.0.source, key).await
    }

    /// The warehouse (`warehouseId`), for sources that name the warehouse
    /// beside the bin (Trackstar); then `location` is the bin inside it.
    /// Null when the source names no warehouse.
    async fn warehouse(&self, ctx: &Context<'_>) -> Result<Option<Location>> {
        let Some(key) = &self.0.warehouse_id else { return Ok(None) };
        load_location(ctx, &self.0.source, key).await
    }

    /// When the source created the entry.
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        self.0.created_at
    }

    /// When the source last changed the entry.
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.updated_at
    }

    /// Source-specific fields, as the source sent them.
    async fn additional_fields(&self) -> Json<serde_json::Value> {
        Json(self.0.additional_fields.clone())
    }
}

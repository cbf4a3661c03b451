//! The unified ledger model every connector maps into and the GraphQL layer
//! reads from. Quantities and money are `Decimal`, never binary floats.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The configured name of a source (`trackstar`, `business-central`, ...).
/// Cheap to clone: it is copied into every entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceName(Arc<str>);

impl SourceName {
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which upstream API a source speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Trackstar's unified WMS API.
    Trackstar,
    /// Microsoft Dynamics 365 Business Central, API v2.0.
    BusinessCentral,
    /// BigLedger inventory.
    Bigledger,
    /// Pennylane accounting, API v2.
    Pennylane,
}

/// What happened to the stock (or money), unified across sources.
/// `LedgerEntry.rawEventType` keeps the source's own name verbatim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// Goods received from a supplier.
    Receipt,
    /// Goods shipped to a customer.
    Shipment,
    /// Goods returned by a customer.
    ReturnReceipt,
    /// Goods returned to a supplier.
    SupplierReturn,
    /// A stock count or correction.
    Adjustment,
    /// A move between locations.
    Transfer,
    /// Consumed by production or assembly.
    Consumption,
    /// Produced by production or assembly.
    ProductionOutput,
    /// An accounting journal entry (no stock movement).
    Journal,
    /// Anything the source does not classify.
    Other,
}

/// Position of an entry in the merged order: newest `entry_date` first, then
/// source name, then native id (both ascending). Entries without a date sort
/// after every dated entry. The order is total because ids are unique per
/// source, which is what makes keyset cursors lose and repeat nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SortKey {
    #[serde(rename = "d")]
    pub entry_date: Option<DateTime<Utc>>,
    #[serde(rename = "s")]
    pub source: String,
    #[serde(rename = "i")]
    pub native_id: String,
}

/// The merged order over borrowed parts, so hot paths compare entries
/// without building keys.
fn merged_order(a: (Option<DateTime<Utc>>, &str, &str), b: (Option<DateTime<Utc>>, &str, &str)) -> std::cmp::Ordering {
    // Descending date: a newer date sorts first; None (no date) sorts last.
    b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)).then_with(|| a.2.cmp(b.2))
}

impl SortKey {
    fn parts(&self) -> (Option<DateTime<Utc>>, &str, &str) {
        (self.entry_date, &self.source, &self.native_id)
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        merged_order(self.parts(), other.parts())
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The object a movement originated from (an order, a posted document...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentRef {
    /// The source's own name for the kind of object (`order`, `Sales Shipment`).
    pub kind: Option<String>,
    /// The object's id or number in the source.
    pub number: Option<String>,
}

/// Money attached to an entry, each exact and in `currency` when known.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Amounts {
    pub cost: Option<Decimal>,
    pub sales: Option<Decimal>,
    pub debit: Option<Decimal>,
    pub credit: Option<Decimal>,
    pub currency: Option<String>,
}

/// One ledger entry from any source, in the unified shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub source: SourceName,
    pub source_kind: SourceKind,
    pub native_id: String,
    pub entry_date: Option<DateTime<Utc>>,
    pub event_type: EventType,
    pub raw_event_type: Option<String>,
    pub quantity: Option<Decimal>,
    pub amounts: Amounts,
    pub sku: Option<String>,
    /// Native key of the item, as the source's item lookup expects it.
    pub item_ref: Option<String>,
    pub warehouse_id: Option<String>,
    pub location_id: Option<String>,
    pub document: Option<DocumentRef>,
    pub description: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub additional_fields: serde_json::Value,
}

impl LedgerEntry {
    /// An entry with only its identity, date and event type; every other
    /// field empty, for a connector to fill in.
    pub fn new(
        source: SourceName,
        source_kind: SourceKind,
        native_id: String,
        entry_date: Option<DateTime<Utc>>,
        event_type: EventType,
    ) -> Self {
        Self {
            source,
            source_kind,
            native_id,
            entry_date,
            event_type,
            raw_event_type: None,
            quantity: None,
            amounts: Amounts::default(),
            sku: None,
            item_ref: None,
            warehouse_id: None,
            location_id: None,
            document: None,
            description: None,
            created_at: None,
            updated_at: None,
            additional_fields: serde_json::Value::Null,
        }
    }

    /// `<source>:<native id>`: unique across sources.
    pub fn id(&self) -> String {
        global_id(&self.source, &self.native_id)
    }

    fn order_parts(&self) -> (Option<DateTime<Utc>>, &str, &str) {
        (self.entry_date, self.source.as_str(), &self.native_id)
    }

    /// This entry's place relative to `other` in the merged order.
    pub fn cmp_order(&self, other: &LedgerEntry) -> std::cmp::Ordering {
        merged_order(self.order_parts(), other.order_parts())
    }

    /// Whether this entry comes strictly after `key` in the merged order.
    pub fn is_after(&self, key: &SortKey) -> bool {
        merged_order(self.order_parts(), key.parts()).is_gt()
    }

    pub fn sort_key(&self) -> SortKey {
        SortKey {
            entry_date: self.entry_date,
            source: self.source.as_str().to_owned(),
            native_id: self.native_id.clone(),
        }
    }
}

/// An amount of money, exact, in `currency` when the source states one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Option<String>,
}

/// Stock of one item at one location.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StockLevel {
    /// Native id of the item.
    pub item_ref: String,
    /// Native id of the location (warehouse, store or bin).
    pub location_ref: String,
    pub on_hand: Option<Decimal>,
    pub available: Option<Decimal>,
    pub reserved: Option<Decimal>,
}

/// A stock-keeping item, in the unified shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub source: SourceName,
    pub source_kind: SourceKind,
    pub native_id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub barcode: Option<String>,
    pub unit: Option<String>,
    pub cost: Option<Money>,
    pub price: Option<Money>,
    pub active: Option<bool>,
    pub on_hand: Option<Decimal>,
    pub available: Option<Decimal>,
    pub reserved: Option<Decimal>,
    pub stock_levels: Vec<StockLevel>,
}

/// What kind of place a location is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LocationKind {
    /// A building holding stock.
    Warehouse,
    /// A shop or other selling point holding stock.
    Store,
    /// A bin or shelf inside a warehouse.
    Bin,
}

/// A postal address, as far as the source knows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

/// A place stock is kept, in the unified shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub source: SourceName,
    pub source_kind: SourceKind,
    pub native_id: String,
    pub name: Option<String>,
    pub code: Option<String>,
    pub kind: LocationKind,
    pub address: Option<Address>,
    /// Native id of the enclosing location (a bin's warehouse).
    pub parent_ref: Option<String>,
}

/// The kinds of object a public id can name. Ids are `<source>:<native id>`
/// for all three, so an item and a location (or an entry) of one source
/// may share an id; each source says which kinds a native id can be
/// (`Source::node_kinds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    Entry,
    Item,
    Location,
}

/// Builds the public id of anything a source owns.
pub fn global_id(source: &SourceName, native_id: &str) -> String {
    format!("{source}:{native_id}")
}

/// Splits a public id into source name and native id. The source name never
/// contains `:`, the native id may.
pub fn split_global_id(id: &str) -> Option<(&str, &str)> {
    let (source, native) = id.split_once(':')?;
    (!source.is_empty() && !native.is_empty()).then_some((source, native))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key(day: Option<u32>, source: &str, id: &str) -> SortKey {
        SortKey {
            entry_date: day.map(|d| Utc.with_ymd_and_hms(2025, 1, d, 0, 0, 0).unwrap()),
            source: source.into(),
            native_id: id.into(),
        }
    }

    #[test]
    fn newer_dates_sort_first_then_source_then_id() {
        let mut keys = vec![
            key(Some(1), "a", "2"),
            key(None, "a", "1"),
            key(Some(2), "b", "1"),
            key(Some(2), "a", "9"),
            key(Some(1), "a", "1"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                key(Some(2), "a", "9"),
                key(Some(2), "b", "1"),
                key(Some(1), "a", "1"),
                key(Some(1), "a", "2"),
                key(None, "a", "1"),
            ]
        );
    }

    #[test]
    fn global_ids_split_on_the_first_colon() {
        assert_eq!(split_global_id("bigledger:xferitem:1:out"), Some(("bigledger", "xferitem:1:out")));
        assert_eq!(split_global_id("nocolon"), None);
        assert_eq!(split_global_id(":x"), None);
        assert_eq!(split_global_id("x:"), None);
    }
}

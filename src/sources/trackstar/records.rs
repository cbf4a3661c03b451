//! Trackstar's wire types (as documented in the inventory ledger OpenAPI) and
//! their mapping into the unified model.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::{
    Address, Amounts, DocumentRef, EventType, Item, LedgerEntry, Location, LocationKind, Money, SourceKind, SourceName,
    StockLevel,
};
use crate::upstream::decimal::exact_opt;

/// The native key of a bin: its warehouse's id and its own. Trackstar lists
/// bins per warehouse (`/wms/warehouses/{id}/locations`), so a bin can only
/// be looked up, and its public id only resolved on its own, with both.
pub fn bin_key(warehouse: &str, bin: &str) -> String {
    format!("{warehouse}/{bin}")
}

/// `(warehouse, bin)` of a bin key; `None` for a warehouse id.
pub fn split_bin_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/').filter(|(warehouse, bin)| !warehouse.is_empty() && !bin.is_empty())
}

/// The key of the bin Trackstar names (`location_id`), with its warehouse
/// when Trackstar names that too.
fn bin_in(warehouse: Option<&str>, location: Option<&str>) -> Option<String> {
    match (warehouse, location) {
        (Some(warehouse), Some(bin)) => Some(bin_key(warehouse, bin)),
        (_, bin) => bin.map(str::to_owned),
    }
}

/// Where stock sits: the bin when Trackstar names one, else the warehouse.
fn place(warehouse: Option<&str>, location: Option<&str>) -> Option<String> {
    bin_in(warehouse, location).or_else(|| warehouse.map(str::to_owned))
}

/// Every list endpoint's envelope.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ListEnvelope<T> {
    pub data: Vec<T>,
    pub next_token: Option<String>,
    /// The number of items in this response (not a grand total).
    pub total_count: u64,
}

/// One inventory ledger entry. All keys are required; `Option`s come as null.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct LedgerRecord {
    pub id: String,
    pub created_date: DateTime<Utc>,
    pub updated_date: DateTime<Utc>,
    pub entry_date: DateTime<Utc>,
    pub inventory_item_id: String,
    pub sku: String,
    pub quantity: i64,
    pub raw_event_type: Option<String>,
    pub event_type: String,
    pub reason: Option<String>,
    pub object_id: Option<String>,
    pub object_type: Option<String>,
    pub warehouse_id: Option<String>,
    pub location_id: Option<String>,
    pub additional_fields: serde_json::Map<String, serde_json::Value>,
    pub trackstar_created_date: DateTime<Utc>,
    pub trackstar_updated_date: DateTime<Utc>,
}

/// Trackstar's `event_type` values and their unified names.
pub const EVENT_TYPES: [(&str, EventType); 7] = [
    ("adjustment", EventType::Adjustment),
    ("return_receipt", EventType::ReturnReceipt),
    ("inbound_receipt", EventType::Receipt),
    ("order_shipment", EventType::Shipment),
    ("supplier_return", EventType::SupplierReturn),
    ("movement", EventType::Transfer),
    ("other", EventType::Other),
];

pub fn unified_event_type(native: &str) -> EventType {
    EVENT_TYPES.iter().find(|(n, _)| *n == native).map_or(EventType::Other, |(_, e)| *e)
}

pub fn native_event_type(event: EventType) -> Option<&'static str> {
    EVENT_TYPES.iter().find(|(_, e)| *e == event).map(|(n, _)| *n)
}

impl LedgerRecord {
    pub fn into_entry(self, source: &SourceName) -> LedgerEntry {
        let document = (self.object_type.is_some() || self.object_id.is_some())
            .then_some(DocumentRef { kind: self.object_type, number: self.object_id });
        LedgerEntry {
            source: source.clone(),
            source_kind: SourceKind::Trackstar,
            event_type: unified_event_type(&self.event_type),
            raw_event_type: Some(self.raw_event_type.unwrap_or(self.event_type)),
            native_id: self.id,
            entry_date: Some(self.entry_date),
            quantity: Some(Decimal::from(self.quantity)),
            amounts: Amounts::default(),
            sku: Some(self.sku),
            item_ref: Some(self.inventory_item_id),
            location_id: bin_in(self.warehouse_id.as_deref(), self.location_id.as_deref()),
            warehouse_id: self.warehouse_id,
            document,
            description: self.reason,
            created_at: Some(self.created_date),
            updated_at: Some(self.updated_date),
            additional_fields: serde_json::Value::Object(self.additional_fields),
        }
    }
}

/// One inventory item (`GET /wms/inventory`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct InventoryRecord {
    pub id: String,
    pub sku: String,
    pub name: Option<String>,
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub unit_cost: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub onhand: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub committed: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub fulfillable: Option<Decimal>,
    #[serde(default)]
    pub locations: Vec<InventoryLocation>,
}

/// Where an item's stock sits: a bin (`location_id`) inside a warehouse, or
/// the warehouse as a whole.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct InventoryLocation {
    pub location_id: Option<String>,
    pub warehouse_id: Option<String>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub quantity: Option<Decimal>,
}

impl InventoryRecord {
    pub fn into_item(self, source: &SourceName) -> Item {
        let item_ref = self.id.clone();
        let stock_levels = self
            .locations
            .into_iter()
            .filter_map(|l| {
                Some(StockLevel {
                    item_ref: item_ref.clone(),
                    location_ref: place(l.warehouse_id.as_deref(), l.location_id.as_deref())?,
                    on_hand: l.quantity,
                    available: None,
                    reserved: None,
                })
            })
            .collect();
        Item {
            source: source.clone(),
            source_kind: SourceKind::Trackstar,
            native_id: self.id,
            sku: Some(self.sku),
            name: self.name,
            description: None,
            barcode: None,
            unit: None,
            cost: self.unit_cost.map(|amount| Money { amount, currency: None }),
            price: None,
            active: self.active,
            on_hand: self.onhand,
            available: self.fulfillable,
            reserved: self.committed,
            stock_levels,
        }
    }
}

/// One warehouse (`GET /wms/warehouses`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct WarehouseRecord {
    pub id: String,
    pub name: Option<String>,
    pub code: Option<String>,
    pub address: Option<WarehouseAddress>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct WarehouseAddress {
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

impl WarehouseRecord {
    pub fn into_location(self, source: &SourceName) -> Location {
        Location {
            source: source.clone(),
            source_kind: SourceKind::Trackstar,
            native_id: self.id,
            name: self.name,
            code: self.code,
            kind: LocationKind::Warehouse,
            address: self.address.map(|a| Address {
                line1: a.address1,
                line2: a.address2,
                city: a.city,
                region: a.state,
                postal_code: a.postal_code,
                country: a.country,
            }),
            parent_ref: None,
        }
    }
}

/// One bin (`GET /wms/warehouses/{id}/locations`). Trackstar does not
/// document this schema; only these fields are relied on.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct BinRecord {
    pub id: String,
    pub warehouse_id: Option<String>,
    pub name: Option<String>,
}

impl BinRecord {
    /// The bin as a location inside `warehouse` (the one it was listed under).
    pub fn into_location(self, source: &SourceName, warehouse: &str) -> Location {
        Location {
            source: source.clone(),
            source_kind: SourceKind::Trackstar,
            native_id: bin_key(warehouse, &self.id),
            name: self.name,
            code: None,
            kind: LocationKind::Bin,
            address: None,
            parent_ref: Some(warehouse.to_owned()),
        }
    }
}

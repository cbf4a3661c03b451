//! BigLedger's wire types (inventory API: adjustments, transfers, items, and
//! the assumed locations) and how ledger entries are synthesized from them.
//! BigLedger has no ledger: a posted adjustment's lines are adjustment
//! entries, a completed transfer's lines are two transfer entries each (out
//! of the source location, into the destination). Numbers are read as exact
//! decimals from their JSON text.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::model::{
    Address, Amounts, DocumentRef, EventType, Item, LedgerEntry, Location, LocationKind, Money, SourceKind, SourceName,
    StockLevel,
};
use crate::upstream::decimal::exact_opt;

/// Every list endpoint's envelope.
#[derive(Clone, Debug, Deserialize)]
pub struct ListEnvelope<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

/// `{hasMore, nextCursor, limit, total}`; `total` counts documents, not
/// the entries synthesized from them, so it is not read.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// Every single-object endpoint's envelope.
#[derive(Clone, Debug, Deserialize)]
pub struct SingleEnvelope<T> {
    pub data: T,
}

/// `{success:false, error:{code, message, details:[{field, message, code}]}}`.
#[derive(Clone, Debug, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ErrorBody {
    pub code: Option<String>,
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ErrorDetail {
    pub field: Option<String>,
}

/// An embedded `{id, name}` location.
#[derive(Clone, Debug, Deserialize)]
pub struct PlaceRef {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// A stock adjustment (`GET /inventory/adjustments`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentRecord {
    pub id: String,
    pub adjustment_number: Option<String>,
    pub date: NaiveDate,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub status: String,
    pub location_id: Option<String>,
    pub location: Option<PlaceRef>,
    pub reference: Option<String>,
    pub notes: Option<String>,
    /// Not in the documented object; used when present.
    pub currency: Option<String>,
    #[serde(default)]
    pub items: Vec<AdjustmentLine>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub posted_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentLine {
    pub id: String,
    pub item_id: Option<String>,
    pub item_code: Option<String>,
    pub item_name: Option<String>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub current_stock: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub adjusted_stock: Option<Decimal>,
    /// Signed: negative for stock removed.
    #[serde(default, deserialize_with = "exact_opt")]
    pub adjustment_quantity: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub unit_cost: Option<Decimal>,
    /// Signed like the quantity.
    #[serde(default, deserialize_with = "exact_opt")]
    pub total_cost: Option<Decimal>,
    pub reason: Option<String>,
    pub notes: Option<String>,
}

/// A stock transfer (`GET /inventory/transfers`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferRecord {
    pub id: String,
    pub transfer_number: Option<String>,
    pub date: NaiveDate,
    pub status: String,
    pub from_location_id: Option<String>,
    pub from_location: Option<PlaceRef>,
    pub to_location_id: Option<String>,
    pub to_location: Option<PlaceRef>,
    pub reference: Option<String>,
    pub notes: Option<String>,
    /// Not in the documented object; used when present.
    pub currency: Option<String>,
    #[serde(default)]
    pub items: Vec<TransferLine>,
    pub shipping: Option<Shipping>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferLine {
    pub id: String,
    pub item_id: Option<String>,
    pub item_code: Option<String>,
    pub item_name: Option<String>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub quantity_requested: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub quantity_shipped: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub quantity_received: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub unit_cost: Option<Decimal>,
    /// For the shipped quantity.
    #[serde(default, deserialize_with = "exact_opt")]
    pub total_cost: Option<Decimal>,
    pub notes: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipping {
    pub method: Option<String>,
    pub tracking_number: Option<String>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub actual_delivery: Option<DateTime<Utc>>,
}

/// Midnight UTC starting `day`: the instant of a date-only field.
pub fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// Which leg of a transfer line an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// Stock leaving the source location.
    Out,
    /// Stock arriving at the destination.
    In,
}

impl Leg {
    fn as_str(self) -> &'static str {
        match self {
            Leg::Out => "out",
            Leg::In => "in",
        }
    }
}

/// A synthesized entry's native id, naming the document line it comes from:
/// `adj:{date}:{adjustmentId}:{lineId}` or
/// `xfer:{date}:{transferId}:{lineId}:{out|in}`. The document's date is
/// part of it because BigLedger documents no read of one document by id:
/// finding an entry again means listing that day's documents. `%` and `:`
/// inside BigLedger ids are percent-encoded so the id splits back exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryId {
    Adjustment { date: NaiveDate, adjustment: String, line: String },
    Transfer { date: NaiveDate, transfer: String, line: String, leg: Leg },
}

fn escape(part: &str) -> String {
    part.replace('%', "%25").replace(':', "%3A")
}

fn unescape(part: &str) -> Option<String> {
    let unescaped = part.replace("%3A", ":").replace("%25", "%");
    // Only the canonical form parses, so each entry has exactly one id.
    (escape(&unescaped) == part && !unescaped.is_empty()).then_some(unescaped)
}

impl EntryId {
    pub fn parse(native_id: &str) -> Option<Self> {
        let parts: Vec<&str> = native_id.split(':').collect();
        let date = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().filter(|d| self::date(*d) == text);
        match parts.as_slice() {
            ["adj", day, adjustment, line] => {
                Some(EntryId::Adjustment { date: date(day)?, adjustment: unescape(adjustment)?, line: unescape(line)? })
            }
            ["xfer", day, transfer, line, leg] => Some(EntryId::Transfer {
                date: date(day)?,
                transfer: unescape(transfer)?,
                line: unescape(line)?,
                leg: match *leg {
                    "out" => Leg::Out,
                    "in" => Leg::In,
                    _ => return None,
                },
            }),
            _ => None,
        }
    }

    /// The day of the document the entry comes from.
    pub fn date(&self) -> NaiveDate {
        match self {
            EntryId::Adjustment { date, .. } | EntryId::Transfer { date, .. } => *date,
        }
    }
}

fn date(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryId::Adjustment { date: day, adjustment, line } => {
                write!(f, "adj:{}:{}:{}", date(*day), escape(adjustment), escape(line))
            }
            EntryId::Transfer { date: day, transfer, line, leg } => {
                write!(f, "xfer:{}:{}:{}:{}", date(*day), escape(transfer), escape(line), leg.as_str())
            }
        }
    }
}

/// Source-specific fields, without the ones the document leaves out.
fn fields(pairs: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(pairs.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))).collect::<Map<_, _>>())
}

fn text(value: &Option<String>) -> Option<Value> {
    value.clone().map(Value::String)
}

/// Decimals go out as strings: a JSON number would be read back as a float.
fn number(value: Option<Decimal>) -> Option<Value> {
    value.map(|d| Value::String(d.to_string()))
}

/// An entry with the fields every synthesized entry shares.
fn entry(source: &SourceName, id: &EntryId, event_type: EventType, raw_event_type: String) -> LedgerEntry {
    let entry = LedgerEntry::new(source.clone(), SourceKind::Bigledger, id.to_string(), None, event_type);
    LedgerEntry { raw_event_type: Some(raw_event_type), ..entry }
}

impl AdjustmentRecord {
    /// Only posted adjustments moved stock.
    pub fn is_posted(&self) -> bool {
        self.status.eq_ignore_ascii_case("posted")
    }

    /// One ADJUSTMENT entry per line, dated by the adjustment's `date` (its
    /// business date, at midnight UTC: the day BigLedger filters on);
    /// `postedAt` is when it was booked and becomes `updatedAt`.
    pub fn into_entries(self, source: &SourceName) -> Vec<LedgerEntry> {
        if !self.is_posted() {
            return Vec::new();
        }
        let location_id = self.location_id.clone().or_else(|| self.location.as_ref().and_then(|l| l.id.clone()));
        let location_name = self.location.as_ref().and_then(|l| l.name.clone());
        self.items
            .iter()
            .map(|line| {
                let id = EntryId::Adjustment { date: self.date, adjustment: self.id.clone(), line: line.id.clone() };
                let reason = line.reason.as_ref().or(self.reason.as_ref());
                let raw = reason.map_or_else(|| "adjustment".to_owned(), |r| format!("adjustment:{r}"));
                LedgerEntry {
                    entry_date: Some(midnight(self.date)),
                    quantity: line.adjustment_quantity,
                    amounts: Amounts { cost: line.total_cost, currency: self.currency.clone(), ..Amounts::default() },
                    sku: line.item_code.clone(),
                    item_ref: line.item_id.clone(),
                    location_id: location_id.clone(),
                    document: Some(DocumentRef {
                        kind: Some("adjustment".into()),
                        number: self.adjustment_number.clone().or_else(|| Some(self.id.clone())),
                    }),
                    description: line.notes.clone().or_else(|| line.item_name.clone()),
                    created_at: self.created_at,
                    updated_at: self.posted_at.or(self.updated_at),
                    additional_fields: fields(vec![
                        ("adjustmentId", Some(Value::String(self.id.clone()))),
                        ("lineId", Some(Value::String(line.id.clone()))),
                        ("reference", text(&self.reference)),
                        ("type", text(&self.kind)),
                        ("adjustmentReason", text(&self.reason)),
                        ("adjustmentNotes", text(&self.notes)),
                        ("itemName", text(&line.item_name)),
                        ("locationName", location_name.clone().map(Value::String)),
                        ("unitCost", number(line.unit_cost)),
                        ("currentStock", number(line.current_stock)),
                        ("adjustedStock", number(line.adjusted_stock)),
                    ]),
                    ..entry(source, &id, EventType::Adjustment, raw)
                }
            })
            .collect()
    }
}

impl TransferRecord {
    /// Only completed transfers have both moved and arrived.
    pub fn is_completed(&self) -> bool {
        self.status.eq_ignore_ascii_case("completed")
    }

    /// Two TRANSFER entries per line: `out` (minus the shipped quantity at
    /// the source, dated `shippedAt`) and `in` (plus the received quantity
    /// at the destination, dated `actualDelivery`); either date falls back
    /// to the transfer's `date` at midnight UTC when missing. Each leg's
    /// cost is the unit cost times its own quantity, signed like it
    /// (`totalCost` prices the shipped quantity only).
    pub fn into_entries(self, source: &SourceName) -> Vec<LedgerEntry> {
        if !self.is_completed() {
            return Vec::new();
        }
        let shipping = self.shipping.as_ref();
        let place = |id: &Option<String>, embedded: &Option<PlaceRef>| {
            id.clone().or_else(|| embedded.as_ref().and_then(|l| l.id.clone()))
        };
        let from = place(&self.from_location_id, &self.from_location);
        let to = place(&self.to_location_id, &self.to_location);
        let legs = [
            (Leg::Out, shipping.and_then(|s| s.shipped_at), from.clone()),
            (Leg::In, shipping.and_then(|s| s.actual_delivery), to.clone()),
        ];
        let mut entries = Vec::with_capacity(self.items.len() * 2);
        for line in &self.items {
            for (leg, dated, location_id) in &legs {
                let quantity = match leg {
                    Leg::Out => line.quantity_shipped.map(|q| -q),
                    Leg::In => line.quantity_received,
                };
                let id =
                    EntryId::Transfer { date: self.date, transfer: self.id.clone(), line: line.id.clone(), leg: *leg };
                entries.push(LedgerEntry {
                    entry_date: Some(dated.unwrap_or_else(|| midnight(self.date))),
                    quantity,
                    amounts: Amounts {
                        cost: line.unit_cost.zip(quantity).map(|(unit, q)| unit * q),
                        currency: self.currency.clone(),
                        ..Amounts::default()
                    },
                    sku: line.item_code.clone(),
                    item_ref: line.item_id.clone(),
                    location_id: location_id.clone(),
                    document: Some(DocumentRef {
                        kind: Some("transfer".into()),
                        number: self.transfer_number.clone().or_else(|| Some(self.id.clone())),
                    }),
                    description: line.notes.clone().or_else(|| line.item_name.clone()),
                    created_at: self.created_at,
                    updated_at: self.updated_at,
                    additional_fields: fields(vec![
                        ("transferId", Some(Value::String(self.id.clone()))),
                        ("lineId", Some(Value::String(line.id.clone()))),
                        ("leg", Some(Value::String(leg.as_str().to_owned()))),
                        ("reference", text(&self.reference)),
                        ("transferNotes", text(&self.notes)),
                        ("fromLocationId", text(&from)),
                        ("toLocationId", text(&to)),
                        ("itemName", text(&line.item_name)),
                        ("quantityRequested", number(line.quantity_requested)),
                        ("quantityShipped", number(line.quantity_shipped)),
                        ("quantityReceived", number(line.quantity_received)),
                        ("unitCost", number(line.unit_cost)),
                        ("totalCost", number(line.total_cost)),
                        ("shippingMethod", shipping.and_then(|s| text(&s.method))),
                        ("trackingNumber", shipping.and_then(|s| text(&s.tracking_number))),
                    ]),
                    ..entry(source, &id, EventType::Transfer, "transfer".to_owned())
                });
            }
        }
        entries
    }
}

/// An item (`GET /items/{itemId}`, and the rows of `GET /items`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemRecord {
    pub id: String,
    pub item_code: Option<String>,
    pub barcode: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub unit: Option<String>,
    pub pricing: Option<Pricing>,
    pub inventory: Option<InventoryLevels>,
    #[serde(default)]
    pub locations: Vec<ItemLocation>,
    pub is_active: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pricing {
    #[serde(default, deserialize_with = "exact_opt")]
    pub cost_price: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub selling_price: Option<Decimal>,
    pub currency: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryLevels {
    #[serde(default, deserialize_with = "exact_opt")]
    pub current_stock: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub available_stock: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub reserved_stock: Option<Decimal>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemLocation {
    pub location_id: Option<String>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub stock: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub available: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub reserved: Option<Decimal>,
}

impl ItemRecord {
    pub fn into_item(self, source: &SourceName) -> Item {
        let pricing = self.pricing.as_ref();
        let currency = pricing.and_then(|p| p.currency.clone());
        let money = |amount: Option<Decimal>| amount.map(|amount| Money { amount, currency: currency.clone() });
        let stock_levels = self
            .locations
            .iter()
            .filter_map(|l| {
                Some(StockLevel {
                    item_ref: self.id.clone(),
                    location_ref: l.location_id.clone()?,
                    on_hand: l.stock,
                    available: l.available,
                    reserved: l.reserved,
                })
            })
            .collect();
        let levels = self.inventory.as_ref();
        Item {
            source: source.clone(),
            source_kind: SourceKind::Bigledger,
            sku: self.item_code,
            name: self.name,
            description: self.description,
            barcode: self.barcode,
            unit: self.unit,
            cost: money(pricing.and_then(|p| p.cost_price)),
            price: money(pricing.and_then(|p| p.selling_price)),
            active: self.is_active,
            on_hand: levels.and_then(|l| l.current_stock),
            available: levels.and_then(|l| l.available_stock),
            reserved: levels.and_then(|l| l.reserved_stock),
            stock_levels,
            native_id: self.id,
        }
    }
}

/// A location (`GET /locations/{id}`). BigLedger documents no location
/// endpoint, only embedded `{id, name}` objects; this shape is assumed.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationRecord {
    pub id: String,
    pub name: Option<String>,
    pub code: Option<String>,
    /// `warehouse` or `store`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub address: Option<AddressRecord>,
    pub parent_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressRecord {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

impl LocationRecord {
    pub fn into_location(self, source: &SourceName) -> Location {
        let kind = match self.kind.as_deref() {
            Some(kind) if kind.eq_ignore_ascii_case("store") => LocationKind::Store,
            Some(kind) if kind.eq_ignore_ascii_case("bin") => LocationKind::Bin,
            _ => LocationKind::Warehouse,
        };
        Location {
            source: source.clone(),
            source_kind: SourceKind::Bigledger,
            native_id: self.id,
            name: self.name,
            code: self.code,
            kind,
            address: self.address.map(|a| Address {
                line1: a.line1,
                line2: a.line2,
                city: a.city,
                region: a.state,
                postal_code: a.postal_code,
                country: a.country,
            }),
            parent_ref: self.parent_id,
        }
    }
}

//! Business Central's wire types (API v2.0 `itemLedgerEntry`, `item`,
//! `location`) and their mapping into the unified model. Decimals arrive as
//! JSON numbers and are read from their text, enum members arrive
//! XmlConvert-escaped (`Positive_x0020_Adjmt_x002E_`), dates are day-precise
//! and `0001-01-01` means blank.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use crate::model::{
    Address, Amounts, DocumentRef, EventType, Item, LedgerEntry, Location, LocationKind, Money, SourceKind, SourceName,
};
use crate::upstream::decimal::exact_opt;

/// An OData collection response.
#[derive(Clone, Debug, Deserialize)]
pub struct Collection<T> {
    pub value: Vec<T>,
    /// The next page's URL, opaque; absent on the last page.
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    /// Matches in the whole collection, when `$count=true` was asked.
    #[serde(rename = "@odata.count")]
    pub count: Option<u64>,
}

/// One `itemLedgerEntry`. BC sends every key; strings are empty rather
/// than null, but null is tolerated.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LedgerRecord {
    pub id: String,
    pub entry_number: Option<i64>,
    pub item_number: Option<String>,
    pub posting_date: Option<NaiveDate>,
    pub entry_type: Option<String>,
    pub source_number: Option<String>,
    pub source_type: Option<String>,
    pub document_number: Option<String>,
    pub document_type: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub quantity: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub sales_amount_actual: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub cost_amount_actual: Option<Decimal>,
    pub last_modified_date_time: Option<DateTime<Utc>>,
}

/// Decodes an XmlConvert-escaped name: each `_xHHHH_` or `_xHHHHHHHH_` is
/// the character with that code point. Names already plain pass through.
pub fn decode_name(encoded: &str) -> String {
    let mut decoded = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find("_x") {
        decoded.push_str(&rest[..at]);
        let escape = &rest[at..];
        match escaped_char(escape) {
            Some((c, len)) => {
                decoded.push(c);
                rest = &escape[len..];
            }
            None => {
                decoded.push('_');
                rest = &escape[1..];
            }
        }
    }
    decoded.push_str(rest);
    decoded
}

/// The character an escape at the start of `text` stands for, and the
/// escape's length.
fn escaped_char(text: &str) -> Option<(char, usize)> {
    [4, 8].into_iter().find_map(|digits| {
        let hex = text.get(2..2 + digits)?;
        let closed = text.get(2 + digits..3 + digits)? == "_";
        let code =
            (closed && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| u32::from_str_radix(hex, 16))?.ok()?;
        Some((char::from_u32(code)?, digits + 3))
    })
}

/// An enum member's name as shown to people: decoded and trimmed; the
/// blank member (`_x0020_`) and empty text are `None`.
pub fn enum_name(encoded: Option<&str>) -> Option<String> {
    let decoded = decode_name(encoded?);
    let trimmed = decoded.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// BC's blank date and datetime are its lowest value, year 1.
fn is_blank_date(date: NaiveDate) -> bool {
    date.year() <= 1
}

/// A posting date as an instant: midnight UTC of that day.
pub fn posting_instant(date: Option<NaiveDate>) -> Option<DateTime<Utc>> {
    date.filter(|d| !is_blank_date(*d)).map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

fn non_blank(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}

/// `Item Ledger Entry Type` members (decoded) and every unified event type
/// each can map to once the document type and sign are known. The blank
/// member and members added by extensions map to `OTHER`.
pub const ENTRY_TYPES: [(&str, &[EventType]); 9] = [
    ("Purchase", &[EventType::Receipt, EventType::SupplierReturn]),
    ("Sale", &[EventType::Shipment, EventType::ReturnReceipt]),
    ("Positive Adjmt.", &[EventType::Adjustment]),
    ("Negative Adjmt.", &[EventType::Adjustment]),
    ("Transfer", &[EventType::Transfer]),
    ("Consumption", &[EventType::Consumption]),
    ("Output", &[EventType::ProductionOutput]),
    ("Assembly Consumption", &[EventType::Consumption]),
    ("Assembly Output", &[EventType::ProductionOutput]),
];

/// Document types that settle a purchase or sale's direction whatever the
/// quantity's sign (a corrected receipt is still a receipt).
const PURCHASE_RETURNS: [&str; 2] = ["Purchase Return Shipment", "Purchase Credit Memo"];
const PURCHASE_RECEIPTS: [&str; 2] = ["Purchase Receipt", "Purchase Invoice"];
const SALES_RETURNS: [&str; 3] = ["Sales Return Receipt", "Sales Credit Memo", "Service Credit Memo"];
const SALES_SHIPMENTS: [&str; 4] = ["Sales Shipment", "Sales Invoice", "Service Shipment", "Service Invoice"];

/// The unified event type of an entry from its decoded entry type,
/// document type and quantity. Purchases and sales are split by document
/// type; when the document type does not say (blank, or a type added by an
/// extension), by the direction the goods moved.
pub fn event_type(entry_type: Option<&str>, document_type: Option<&str>, quantity: Option<Decimal>) -> EventType {
    let document = document_type.unwrap_or_default();
    let sign = quantity.unwrap_or_default();
    match entry_type.unwrap_or_default() {
        "Purchase" if PURCHASE_RETURNS.contains(&document) => EventType::SupplierReturn,
        "Purchase" if PURCHASE_RECEIPTS.contains(&document) => EventType::Receipt,
        "Purchase" if sign < Decimal::ZERO => EventType::SupplierReturn,
        "Purchase" => EventType::Receipt,
        "Sale" if SALES_RETURNS.contains(&document) => EventType::ReturnReceipt,
        "Sale" if SALES_SHIPMENTS.contains(&document) => EventType::Shipment,
        "Sale" if sign > Decimal::ZERO => EventType::ReturnReceipt,
        "Sale" => EventType::Shipment,
        "Positive Adjmt." | "Negative Adjmt." => EventType::Adjustment,
        "Transfer" => EventType::Transfer,
        "Consumption" | "Assembly Consumption" => EventType::Consumption,
        "Output" | "Assembly Output" => EventType::ProductionOutput,
        _ => EventType::Other,
    }
}

impl LedgerRecord {
    pub fn into_entry(self, source: &SourceName) -> LedgerEntry {
        let entry_type = enum_name(self.entry_type.as_deref());
        let document_type = enum_name(self.document_type.as_deref());
        let document_number = non_blank(self.document_number);
        let event_type = event_type(entry_type.as_deref(), document_type.as_deref(), self.quantity);
        let document = (document_type.is_some() || document_number.is_some())
            .then_some(DocumentRef { kind: document_type, number: document_number });
        let item_number = non_blank(self.item_number);
        let additional_fields = json!({
            "entryNumber": self.entry_number,
            "sourceType": enum_name(self.source_type.as_deref()),
            "sourceNumber": non_blank(self.source_number),
        });
        LedgerEntry {
            source: source.clone(),
            source_kind: SourceKind::BusinessCentral,
            native_id: self.id.to_ascii_lowercase(),
            entry_date: posting_instant(self.posting_date),
            event_type,
            raw_event_type: entry_type,
            quantity: self.quantity,
            amounts: Amounts { cost: self.cost_amount_actual, sales: self.sales_amount_actual, ..Amounts::default() },
            sku: item_number.clone(),
            // Items are looked up by number: the ledger has no item id.
            item_ref: item_number,
            // API v2.0 has no location on item ledger entries.
            warehouse_id: None,
            location_id: None,
            document,
            description: non_blank(self.description),
            created_at: None,
            updated_at: self.last_modified_date_time.filter(|t| !is_blank_date(t.date_naive())),
            additional_fields,
        }
    }
}

/// One `item`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ItemRecord {
    pub id: String,
    pub number: String,
    pub display_name: Option<String>,
    pub blocked: Option<bool>,
    pub gtin: Option<String>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub inventory: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub unit_price: Option<Decimal>,
    #[serde(default, deserialize_with = "exact_opt")]
    pub unit_cost: Option<Decimal>,
    pub base_unit_of_measure_code: Option<String>,
}

impl ItemRecord {
    /// The item under its number, the key ledger entries carry.
    pub fn into_item(self, source: &SourceName) -> Item {
        // BC amounts are in the company's local currency, which the API
        // does not name.
        let money = |amount: Option<Decimal>| amount.map(|amount| Money { amount, currency: None });
        Item {
            source: source.clone(),
            source_kind: SourceKind::BusinessCentral,
            sku: Some(self.number.clone()),
            native_id: self.number,
            name: non_blank(self.display_name),
            description: None,
            barcode: non_blank(self.gtin),
            unit: non_blank(self.base_unit_of_measure_code),
            cost: money(self.unit_cost),
            price: money(self.unit_price),
            active: self.blocked.map(|blocked| !blocked),
            on_hand: self.inventory,
            available: None,
            reserved: None,
            stock_levels: Vec::new(),
        }
    }
}

/// One `location`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LocationRecord {
    pub id: String,
    pub code: String,
    pub display_name: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub postal_code: Option<String>,
}

impl LocationRecord {
    /// The location under its code, BC's key for locations elsewhere.
    pub fn into_location(self, source: &SourceName) -> Location {
        let address = Address {
            line1: non_blank(self.address_line1),
            line2: non_blank(self.address_line2),
            city: non_blank(self.city),
            region: non_blank(self.state),
            postal_code: non_blank(self.postal_code),
            country: non_blank(self.country),
        };
        Location {
            source: source.clone(),
            source_kind: SourceKind::BusinessCentral,
            name: non_blank(self.display_name),
            code: Some(self.code.clone()),
            native_id: self.code,
            kind: LocationKind::Warehouse,
            address: (address != Address::default()).then_some(address),
            parent_ref: None,
        }
    }
}

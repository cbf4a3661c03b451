//! Unit tests: synthesis of entries from documents, entry ids, query
//! translation and the error dialect. The HTTP behaviour is tested in
//! `tests/gateway/bigledger.rs` against the mock.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::json;
use url::Url;

use super::query::{self, DayRange, LedgerQuery};
use super::records::{AdjustmentRecord, EntryId, ItemRecord, Leg, LocationRecord, TransferRecord};
use super::{error_dialect, with_sku, BigLedger, SkuMatch};
use crate::clock::Clock;
use crate::ledger::{SourceFilter, TimeRange};
use crate::model::{EventType, LocationKind, Money, SourceKind, SourceName};
use crate::sources::window::Window;
use crate::upstream::{Credentials, FingerprintKey, UpstreamFailure};

fn source() -> SourceName {
    SourceName::new("bigledger")
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// The seed's adjustment object, verbatim in its numbers.
const SEED_ADJUSTMENT: &str = r#"{
  "id": "adj_789012345", "adjustmentNumber": "ADJ-2024-0001", "date": "2024-01-15",
  "type": "positive", "reason": "stock_count", "status": "posted",
  "locationId": "loc_warehouse1", "location": {"id": "loc_warehouse1", "name": "Main Warehouse"},
  "reference": "SC-2024-001", "notes": "Monthly stock count adjustments",
  "items": [
    {"id": "adjitem_111", "itemId": "item_123456789", "itemCode": "WDG-001", "itemName": "Premium Widget",
     "currentStock": 150, "adjustedStock": 148, "adjustmentQuantity": -2, "unitCost": 18.50,
     "totalCost": -37.00, "reason": "damaged", "notes": "Found 2 damaged units during inspection"},
    {"id": "adjitem_222", "itemId": "item_987654321", "itemCode": "WDG-002", "itemName": "Advanced Widget",
     "currentStock": 75, "adjustedStock": 80, "adjustmentQuantity": 5, "unitCost": 25.00,
     "totalCost": 125.00, "reason": "found"}
  ],
  "totalValue": 88.00, "createdBy": "user_456",
  "createdAt": "2024-01-15T10:30:00Z", "postedAt": "2024-01-15T10:35:00Z"
}"#;

/// The seed's transfer object.
const SEED_TRANSFER: &str = r#"{
  "id": "xfer_345678901", "transferNumber": "XFR-2024-0001", "date": "2024-01-15", "status": "completed",
  "fromLocationId": "loc_warehouse1", "fromLocation": {"id": "loc_warehouse1", "name": "Main Warehouse"},
  "toLocationId": "loc_store1", "toLocation": {"id": "loc_store1", "name": "Retail Store 1"},
  "reference": "RESTOCK-001", "notes": "Weekly restock for retail store",
  "items": [
    {"id": "xferitem_111", "itemId": "item_123456789", "itemCode": "WDG-001", "itemName": "Premium Widget",
     "quantityRequested": 50, "quantityShipped": 50, "quantityReceived": 48, "unitCost": 18.50,
     "totalCost": 925.00, "notes": "2 units damaged in transit"}
  ],
  "shipping": {"method": "internal_delivery", "trackingNumber": "INT-001-2024",
    "shippedAt": "2024-01-15T09:00:00Z", "estimatedDelivery": "2024-01-15T14:00:00Z",
    "actualDelivery": "2024-01-16T13:45:00Z"},
  "totalValue": 925.00, "createdBy": "user_456",
  "createdAt": "2024-01-15T08:00:00Z", "updatedAt": "2024-01-16T14:00:00Z"
}"#;

fn adjustment(json: &str) -> AdjustmentRecord {
    serde_json::from_str(json).unwrap()
}

fn transfer(json: &str) -> TransferRecord {
    serde_json::from_str(json).unwrap()
}

#[test]
fn a_posted_adjustment_becomes_one_entry_per_line() {
    let entries = adjustment(SEED_ADJUSTMENT).into_entries(&source());
    assert_eq!(entries.len(), 2);
    let (damaged, found) = (&entries[0], &entries[1]);
    assert_eq!(damaged.native_id, "adj:2024-01-15:adj_789012345:adjitem_111");
    assert_eq!(damaged.id(), "bigledger:adj:2024-01-15:adj_789012345:adjitem_111");
    assert_eq!(damaged.source_kind, SourceKind::Bigledger);
    assert_eq!(damaged.event_type, EventType::Adjustment);
    assert_eq!(damaged.raw_event_type.as_deref(), Some("adjustment:damaged"));
    // Dated by the adjustment's day, at midnight UTC; booked later.
    assert_eq!(damaged.entry_date, Some(at("2024-01-15T00:00:00Z")));
    assert_eq!(damaged.created_at, Some(at("2024-01-15T10:30:00Z")));
    assert_eq!(damaged.updated_at, Some(at("2024-01-15T10:35:00Z")));
    assert_eq!(damaged.quantity, Some(dec("-2")));
    assert_eq!(damaged.amounts.cost.unwrap().to_string(), "-37.00");
    assert_eq!(damaged.amounts.currency, None);
    assert_eq!(damaged.sku.as_deref(), Some("WDG-001"));
    assert_eq!(damaged.item_ref.as_deref(), Some("item_123456789"));
    assert_eq!(damaged.location_id.as_deref(), Some("loc_warehouse1"));
    assert_eq!(damaged.warehouse_id, None);
    let document = damaged.document.as_ref().unwrap();
    assert_eq!((document.kind.as_deref(), document.number.as_deref()), (Some("adjustment"), Some("ADJ-2024-0001")));
    assert_eq!(damaged.description.as_deref(), Some("Found 2 damaged units during inspection"));
    assert_eq!(damaged.additional_fields["reference"], "SC-2024-001");
    assert_eq!(damaged.additional_fields["unitCost"], "18.50");
    // No line notes: the item's name describes the entry.
    assert_eq!(found.description.as_deref(), Some("Advanced Widget"));
    assert_eq!(found.quantity, Some(dec("5")));
    assert_eq!(found.amounts.cost.unwrap().to_string(), "125.00");
    assert_eq!(found.raw_event_type.as_deref(), Some("adjustment:found"));
}

#[test]
fn a_line_without_its_own_reason_takes_the_adjustments() {
    let mut record = adjustment(SEED_ADJUSTMENT);
    record.items[0].reason = None;
    assert_eq!(record.into_entries(&source())[0].raw_event_type.as_deref(), Some("adjustment:stock_count"));
}

#[test]
fn a_completed_transfer_line_becomes_an_out_and_an_in_entry() {
    let entries = transfer(SEED_TRANSFER).into_entries(&source());
    assert_eq!(entries.len(), 2);
    let (out, arrived) = (&entries[0], &entries[1]);
    assert_eq!(out.native_id, "xfer:2024-01-15:xfer_345678901:xferitem_111:out");
    assert_eq!(arrived.native_id, "xfer:2024-01-15:xfer_345678901:xferitem_111:in");
    for entry in &entries {
        assert_eq!(entry.event_type, EventType::Transfer);
        assert_eq!(entry.raw_event_type.as_deref(), Some("transfer"));
        assert_eq!(entry.sku.as_deref(), Some("WDG-001"));
        assert_eq!(entry.item_ref.as_deref(), Some("item_123456789"));
        assert_eq!(entry.document.as_ref().unwrap().number.as_deref(), Some("XFR-2024-0001"));
        assert_eq!(entry.description.as_deref(), Some("2 units damaged in transit"));
        assert_eq!(entry.updated_at, Some(at("2024-01-16T14:00:00Z")));
    }
    // Shipped 50 out of the warehouse, received 48 at the store the next day.
    assert_eq!((out.quantity, out.location_id.as_deref()), (Some(dec("-50")), Some("loc_warehouse1")));
    assert_eq!(out.entry_date, Some(at("2024-01-15T09:00:00Z")));
    assert_eq!(out.amounts.cost.unwrap().to_string(), "-925.00");
    assert_eq!((arrived.quantity, arrived.location_id.as_deref()), (Some(dec("48")), Some("loc_store1")));
    assert_eq!(arrived.entry_date, Some(at("2024-01-16T13:45:00Z")));
    assert_eq!(arrived.amounts.cost.unwrap().to_string(), "888.00");
    assert_eq!(arrived.additional_fields["leg"], "in");
    assert_eq!(arrived.additional_fields["quantityShipped"], "50");
    assert_eq!(arrived.additional_fields["totalCost"], "925.00");
}

#[test]
fn missing_shipping_dates_fall_back_to_the_transfer_date() {
    let mut record = transfer(SEED_TRANSFER);
    record.shipping = None;
    let entries = record.into_entries(&source());
    assert!(entries.iter().all(|e| e.entry_date == Some(at("2024-01-15T00:00:00Z"))));
}

#[test]
fn drafts_and_unfinished_transfers_make_no_entries() {
    let mut draft = adjustment(SEED_ADJUSTMENT);
    draft.status = "draft".into();
    assert!(draft.into_entries(&source()).is_empty());
    for status in ["draft", "approved", "shipped", "in_transit", "cancelled"] {
        let mut record = transfer(SEED_TRANSFER);
        record.status = status.into();
        assert!(record.into_entries(&source()).is_empty(), "{status}");
    }
}

#[test]
fn quantities_and_costs_keep_every_digit() {
    let json = SEED_ADJUSTMENT
        .replace(r#""adjustmentQuantity": -2"#, r#""adjustmentQuantity": -1.250"#)
        .replace(r#""totalCost": -37.00"#, r#""totalCost": -12345678901234567.89"#);
    let entry = &adjustment(&json).into_entries(&source())[0];
    assert_eq!(entry.quantity.unwrap().to_string(), "-1.250");
    assert_eq!(entry.amounts.cost.unwrap().to_string(), "-12345678901234567.89");
    let json = SEED_TRANSFER.replace(r#""quantityReceived": 48"#, r#""quantityReceived": 47.5"#);
    let arrived = &transfer(&json).into_entries(&source())[1];
    assert_eq!(arrived.amounts.cost.unwrap().to_string(), "878.750");
}

#[test]
fn a_stated_currency_is_kept() {
    let json = SEED_ADJUSTMENT.replacen(r#""status": "posted","#, r#""status": "posted", "currency": "MYR","#, 1);
    assert_eq!(adjustment(&json).into_entries(&source())[0].amounts.currency.as_deref(), Some("MYR"));
}

#[test]
fn entry_ids_round_trip_and_only_the_canonical_form_parses() {
    let ids = [
        EntryId::Adjustment { date: day("2024-01-15"), adjustment: "adj_1".into(), line: "adjitem_1".into() },
        EntryId::Transfer { date: day("2024-01-15"), transfer: "x:1".into(), line: "50%:a".into(), leg: Leg::Out },
        EntryId::Transfer { date: day("2023-12-31"), transfer: "x".into(), line: "l".into(), leg: Leg::In },
    ];
    for id in &ids {
        assert_eq!(EntryId::parse(&id.to_string()).as_ref(), Some(id), "{id}");
    }
    assert_eq!(ids[1].to_string(), "xfer:2024-01-15:x%3A1:50%25%3Aa:out");
    for junk in [
        "",
        "adj",
        "adj:2024-01-15:a",
        "adj:2024-1-15:a:b",
        "adj:2024-02-30:a:b",
        "adj:2024-01-15::b",
        "adj:2024-01-15:a:b:c",
        "xfer:2024-01-15:a:b",
        "xfer:2024-01-15:a:b:sideways",
        "xfer:2024-01-15:a%3a1:b:out",
        "led_123",
    ] {
        assert_eq!(EntryId::parse(junk), None, "{junk:?}");
    }
}

fn set(values: &[&str]) -> Option<BTreeSet<String>> {
    Some(values.iter().map(|v| (*v).to_owned()).collect())
}

#[test]
fn event_types_choose_the_lists() {
    let only = |events: &[EventType]| SourceFilter {
        event_types: Some(events.iter().copied().collect()),
        ..Default::default()
    };
    let lists = |q: Option<LedgerQuery>| q.map(|q| (q.adjustments, q.transfers));
    assert_eq!(lists(query::ledger_query(&SourceFilter::default())), Some((true, true)));
    assert_eq!(lists(query::ledger_query(&only(&[EventType::Adjustment]))), Some((true, false)));
    assert_eq!(lists(query::ledger_query(&only(&[EventType::Transfer]))), Some((false, true)));
    assert_eq!(lists(query::ledger_query(&only(&[EventType::Adjustment, EventType::Transfer]))), Some((true, true)));
}

#[test]
fn one_item_location_or_sku_is_pushed_down_and_several_are_not() {
    let filter = SourceFilter {
        item_refs: set(&["item_1"]),
        location_ids: set(&["loc_1"]),
        skus: set(&["BL-0001"]),
        ..Default::default()
    };
    let q = query::ledger_query(&filter).unwrap();
    assert_eq!(
        (q.item_id.as_deref(), q.location_id.as_deref(), q.sku.as_deref()),
        (Some("item_1"), Some("loc_1"), Some("BL-0001"))
    );
    let filter = SourceFilter {
        item_refs: set(&["item_1", "item_2"]),
        location_ids: set(&["loc_1", "loc_2"]),
        skus: set(&["A", "B"]),
        ..Default::default()
    };
    let q = query::ledger_query(&filter).unwrap();
    assert_eq!((q.item_id, q.location_id, q.sku), (None, None, None));
}

#[test]
fn a_resolved_sku_narrows_to_its_item_or_rules_everything_out() {
    let base = LedgerQuery { adjustments: true, sku: Some("BL-0001".into()), ..Default::default() };
    assert_eq!(with_sku(base.clone(), SkuMatch::Item("item_1".into())).unwrap().item_id.as_deref(), Some("item_1"));
    assert_eq!(with_sku(base.clone(), SkuMatch::None), None);
    assert_eq!(with_sku(base.clone(), SkuMatch::Unresolved), Some(base.clone()));
    // With an item filter too: both must name the same item.
    let both = LedgerQuery { item_refs: set(&["item_1", "item_2"]), ..base };
    assert_eq!(with_sku(both.clone(), SkuMatch::Item("item_2".into())).unwrap().item_id.as_deref(), Some("item_2"));
    assert_eq!(with_sku(both, SkuMatch::Item("item_3".into())), None);
}

#[test]
fn ids_choose_lists_and_narrow_the_dates_read() {
    let adjustment = "adj:2024-03-10:adj_1:l1";
    let q = query::ledger_query(&SourceFilter { ids: set(&[adjustment]), ..Default::default() }).unwrap();
    assert_eq!((q.adjustments, q.transfers), (true, false));
    assert_eq!(q.entry_date.gte, Some(at("2024-03-10T00:00:00Z")));
    assert_eq!(q.entry_date.lte, Some(at("2024-03-10T00:00:00Z")));
    // A transfer's entries may lie around its day: the range allows the skew.
    let both = set(&[adjustment, "xfer:2024-03-20:x:l:in"]);
    let q = query::ledger_query(&SourceFilter { ids: both, ..Default::default() }).unwrap();
    assert_eq!((q.adjustments, q.transfers), (true, true));
    assert_eq!(q.entry_date.gte, Some(at("2024-03-10T00:00:00Z")));
    assert_eq!(q.entry_date.lte, Some(at("2024-03-20T00:00:00Z") + Duration::days(1) + query::TRANSFER_SKEW));
    // The caller's own tighter bound stays.
    let tight = TimeRange { lte: Some(at("2024-03-05T00:00:00Z")), ..Default::default() };
    let q = query::ledger_query(&SourceFilter { ids: set(&[adjustment]), entry_date: tight, ..Default::default() });
    assert_eq!(q.unwrap().entry_date.lte, Some(at("2024-03-05T00:00:00Z")));
}

#[test]
fn ids_that_are_not_bigledger_entry_ids_need_no_call() {
    let filter = SourceFilter { ids: set(&["led_123", "adj:nope"]), ..Default::default() };
    assert_eq!(query::ledger_query(&filter), None);
    let transfers_only = SourceFilter {
        ids: set(&["adj:2024-03-10:a:l"]),
        event_types: Some([EventType::Transfer].into()),
        ..Default::default()
    };
    assert_eq!(query::ledger_query(&transfers_only), None);
}

#[test]
fn a_window_reads_the_days_whose_midnight_it_holds() {
    let window = |from: Option<&str>, to: Option<&str>| Window { from: from.map(at), to: to.map(at) };
    let days = |from: Option<&str>, to: Option<&str>| DayRange { from: from.map(day), to: to.map(day) };
    assert_eq!(
        query::day_range(window(Some("2024-01-10T00:00:00Z"), Some("2024-01-12T00:00:00Z"))),
        Some(days(Some("2024-01-10"), Some("2024-01-11")))
    );
    assert_eq!(
        query::day_range(window(Some("2024-01-10T00:00:01Z"), Some("2024-01-12T00:00:01Z"))),
        Some(days(Some("2024-01-11"), Some("2024-01-12")))
    );
    assert_eq!(query::day_range(window(None, Some("2024-01-12T05:00:00Z"))), Some(days(None, Some("2024-01-12"))));
    assert_eq!(query::day_range(window(Some("2024-01-12T05:00:00Z"), None)), Some(days(Some("2024-01-13"), None)));
    assert_eq!(query::day_range(window(None, None)), Some(days(None, None)));
    // No midnight inside: nothing to read.
    assert_eq!(query::day_range(window(Some("2024-01-10T00:00:01Z"), Some("2024-01-10T23:59:59Z"))), None);
}

#[test]
fn list_parameters_carry_status_days_filters_and_paging() {
    let q = LedgerQuery { item_id: Some("item_1".into()), location_id: Some("loc_1".into()), ..Default::default() };
    let days = DayRange { from: Some(day("2024-01-10")), to: Some(day("2024-01-11")) };
    let pairs = |params: Vec<(String, String)>| params.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
    assert_eq!(
        pairs(query::adjustment_params(&q, days, 200, Some("c1"))),
        [
            "status=posted",
            "dateFrom=2024-01-10",
            "dateTo=2024-01-11",
            "itemId=item_1",
            "locationId=loc_1",
            "limit=200",
            "cursor=c1"
        ]
    );
    // Which end of a transfer `locationId` matches is undocumented: not sent.
    assert_eq!(
        pairs(query::transfer_params(&q, DayRange { from: None, to: Some(day("2024-01-11")) }, 50, None)),
        ["status=completed", "dateTo=2024-01-11", "itemId=item_1", "limit=50"]
    );
    assert_eq!(pairs(query::item_search_params("BL-1", 200, None)), ["search=BL-1", "limit=200"]);
}

fn connector() -> BigLedger {
    let config = crate::mock::bigledger::source_config(Url::parse("http://127.0.0.1:9/bigledger/").unwrap());
    BigLedger::new(source(), &config, Clock::Fixed("2026-06-30T10:30:00Z".parse().unwrap()))
}

fn credentials(key: &str) -> Credentials {
    let fields =
        [("api_key", key), ("company_id", "comp_1")].iter().map(|(k, v)| ((*k).to_owned(), (*v).into())).collect();
    Credentials::new(&FingerprintKey::random(), fields)
}

#[test]
fn user_text_reaches_bigledger_only_as_encoded_values() {
    let hostile = "BL-1&itemId=x&limit=1#frag";
    let call = connector()
        .call(&credentials("blg_k"), "items", &["items"], &query::item_search_params(hostile, 200, None))
        .unwrap();
    let pairs: Vec<(String, String)> = call.url.query_pairs().into_owned().collect();
    assert_eq!(pairs, [("search".to_owned(), hostile.to_owned()), ("limit".to_owned(), "200".to_owned())]);
    assert_eq!(call.url.fragment(), None);
    let call = connector().call(&credentials("blg_k"), "item", &["items", "../inventory?x=1"], &[]).unwrap();
    assert_eq!(call.url.path(), "/bigledger/v1/items/..%2Finventory%3Fx=1");
    assert_eq!(call.url.query(), None);
}

#[test]
fn credentials_travel_as_sensitive_bearer_and_company_headers() {
    let call = connector().call(&credentials("blg_secret"), "items", &["items"], &[]).unwrap();
    let auth = call.headers.get("authorization").unwrap();
    assert_eq!(auth, "Bearer blg_secret");
    assert!(auth.is_sensitive());
    let company = call.headers.get("x-company-id").unwrap();
    assert_eq!(company, "comp_1");
    assert!(company.is_sensitive());
    assert!(!format!("{:?}", call.headers).contains("blg_secret"));
    let missing = Credentials::new(&FingerprintKey::random(), Default::default());
    assert_eq!(
        connector().call(&missing, "items", &["items"], &[]).unwrap_err().failure,
        UpstreamFailure::MissingCredentials
    );
}

#[test]
fn a_rejected_cursor_reads_as_an_expired_page_token() {
    let body = |code: &str, field: &str| {
        json!({"success": false, "error": {"code": code, "message": "m", "details": [{"field": field, "message": "m", "code": "X"}]}})
            .to_string()
    };
    let cursor = body("VALIDATION_ERROR", "cursor");
    assert_eq!(error_dialect(StatusCode::BAD_REQUEST, cursor.as_bytes()), Some(UpstreamFailure::PageTokenInvalid));
    assert_eq!(
        error_dialect(StatusCode::UNPROCESSABLE_ENTITY, cursor.as_bytes()),
        Some(UpstreamFailure::PageTokenInvalid)
    );
    let coded = body("INVALID_CURSOR", "other");
    assert_eq!(error_dialect(StatusCode::BAD_REQUEST, coded.as_bytes()), Some(UpstreamFailure::PageTokenInvalid));
    // Anything else is left to the shared status classification.
    assert_eq!(error_dialect(StatusCode::BAD_REQUEST, body("VALIDATION_ERROR", "limit").as_bytes()), None);
    assert_eq!(error_dialect(StatusCode::UNAUTHORIZED, body("UNAUTHORIZED", "cursor").as_bytes()), None);
    assert_eq!(error_dialect(StatusCode::BAD_REQUEST, b"<html>"), None);
}

#[test]
fn items_map_prices_stock_and_levels_exactly() {
    let record: ItemRecord = serde_json::from_str(
        r#"{"id": "item_1", "itemCode": "WDG-001", "barcode": "123", "name": "Premium Widget", "unit": "pcs",
            "pricing": {"costPrice": 18.50, "sellingPrice": 25.00, "currency": "MYR"},
            "inventory": {"currentStock": 150, "availableStock": 125, "reservedStock": 25},
            "locations": [{"locationId": "loc_1", "stock": 100, "available": 85, "reserved": 15}, {"stock": 1}],
            "isActive": false}"#,
    )
    .unwrap();
    let item = record.into_item(&source());
    assert_eq!(item.native_id, "item_1");
    assert_eq!(item.sku.as_deref(), Some("WDG-001"));
    assert_eq!(item.cost, Some(Money { amount: dec("18.50"), currency: Some("MYR".into()) }));
    assert_eq!(item.cost.unwrap().amount.to_string(), "18.50");
    assert_eq!(item.price.unwrap().amount.to_string(), "25.00");
    assert_eq!((item.on_hand, item.available, item.reserved), (Some(dec("150")), Some(dec("125")), Some(dec("25"))));
    assert_eq!((item.active, item.unit.as_deref(), item.barcode.as_deref()), (Some(false), Some("pcs"), Some("123")));
    // A level without a location cannot be keyed: left out.
    assert_eq!(item.stock_levels.len(), 1);
    assert_eq!(item.stock_levels[0].location_ref, "loc_1");
    assert_eq!(item.stock_levels[0].reserved, Some(dec("15")));
}

#[test]
fn locations_map_kind_and_address() {
    let store: LocationRecord = serde_json::from_str(
        r#"{"id": "loc_1", "name": "Retail Store 1", "code": "S1", "type": "store",
            "address": {"line1": "1 Jalan", "city": "Kuala Lumpur", "state": "WP", "postalCode": "50000", "country": "MY"}}"#,
    )
    .unwrap();
    let location = store.into_location(&source());
    assert_eq!(location.kind, LocationKind::Store);
    assert_eq!(location.address.as_ref().unwrap().region.as_deref(), Some("WP"));
    let bare: LocationRecord = serde_json::from_str(r#"{"id": "loc_2"}"#).unwrap();
    assert_eq!(bare.into_location(&source()).kind, LocationKind::Warehouse);
}

#[test]
fn the_transfer_axis_allows_the_skew_on_both_sides_of_the_day() {
    let axis = query::axis(true);
    assert_eq!(axis.granularity, Duration::days(1));
    assert_eq!(axis.lead, query::TRANSFER_SKEW);
    assert_eq!(axis.lag, Duration::days(1) + query::TRANSFER_SKEW);
    let adjustments = query::axis(false);
    assert_eq!((adjustments.lead, adjustments.lag), (Duration::zero(), Duration::zero()));
}

#[test]
fn a_bigledger_source_needs_a_key_and_a_company() {
    use crate::config::Config;
    let mut source = crate::mock::bigledger::source_config(Url::parse("https://api.bigledger.com/").unwrap());
    source.credentials.remove("company_id");
    let config = Config { sources: [("books".to_owned(), source)].into(), ..Config::default() };
    let error = config.validate().unwrap_err().to_string();
    assert_eq!(error, "sources.books: credentials.company_id or forward.company_id is required");
}

#[test]
fn ids_at_the_ends_of_chronos_range_leave_that_side_of_the_range_open() {
    // Their days parse, but the skew around them is past what chrono holds.
    let ids = |ids: &[&str]| Some(ids.iter().map(|id| id.to_string()).collect::<BTreeSet<_>>());
    let filter = SourceFilter { ids: ids(&["xfer:+262142-12-31:a:b:in"]), ..Default::default() };
    let q = query::ledger_query(&filter).unwrap();
    assert_eq!((q.entry_date.gte, q.entry_date.lte), (Some(at("+262142-12-24T00:00:00Z")), None));
    let filter = SourceFilter { ids: ids(&["xfer:-262143-01-01:a:b:out", "adj:2025-03-10:a:b"]), ..Default::default() };
    let q = query::ledger_query(&filter).unwrap();
    assert_eq!((q.entry_date.gte, q.entry_date.lte), (None, Some(at("2025-03-10T00:00:00Z"))));
}

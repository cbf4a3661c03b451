use rust_decimal::Decimal;
use serde_json::json;

use super::records::{bin_key, split_bin_key, BinRecord, InventoryRecord, LedgerRecord};
use crate::model::{LocationKind, SourceName};

fn source() -> SourceName {
    SourceName::new("trackstar")
}

fn ledger_record(warehouse: Option<&str>, location: Option<&str>) -> LedgerRecord {
    serde_json::from_value(json!({
        "id": "led_1", "created_date": "2025-01-01T00:00:00Z", "updated_date": "2025-01-01T00:00:00Z",
        "entry_date": "2025-01-01T00:00:00Z", "inventory_item_id": "inv_1", "sku": "S", "quantity": 3,
        "raw_event_type": null, "event_type": "adjustment", "reason": null, "object_id": null, "object_type": null,
        "warehouse_id": warehouse, "location_id": location, "additional_fields": {},
        "trackstar_created_date": "2025-01-01T00:00:00Z", "trackstar_updated_date": "2025-01-01T00:00:00Z"
    }))
    .unwrap()
}

#[test]
fn an_entry_in_a_bin_carries_the_bins_key_with_its_warehouse() {
    let entry = ledger_record(Some("wh_1"), Some("loc_9")).into_entry(&source());
    assert_eq!(entry.warehouse_id.as_deref(), Some("wh_1"));
    assert_eq!(entry.location_id.as_deref(), Some("wh_1/loc_9"));
    assert_eq!(split_bin_key(entry.location_id.as_deref().unwrap()), Some(("wh_1", "loc_9")));

    let whole_warehouse = ledger_record(Some("wh_1"), None).into_entry(&source());
    assert_eq!(whole_warehouse.location_id, None);
    let bin_only = ledger_record(None, Some("loc_9")).into_entry(&source());
    assert_eq!(bin_only.location_id.as_deref(), Some("loc_9"));
}

#[test]
fn warehouse_ids_are_not_bin_keys() {
    assert_eq!(split_bin_key("wh_1"), None);
    assert_eq!(split_bin_key("/loc"), None);
    assert_eq!(split_bin_key("wh/"), None);
    assert_eq!(bin_key("wh", "loc"), "wh/loc");
}

#[test]
fn inventory_amounts_are_exact_and_stock_sits_in_bins_or_warehouses() {
    let body = r#"{"id": "inv_1", "sku": "SKU-1", "name": "Valve", "active": true,
        "unit_cost": 12.345678901234567891, "onhand": 10, "committed": 2, "fulfillable": 8,
        "locations": [
            {"location_id": "loc_1", "warehouse_id": "wh_1", "quantity": 4},
            {"location_id": null, "warehouse_id": "wh_2", "quantity": 6},
            {"location_id": null, "warehouse_id": null, "quantity": 1}
        ], "created_date": "2024-01-01T00:00:00Z"}"#;
    let record: InventoryRecord = serde_json::from_str(body).unwrap();
    let item = record.into_item(&source());
    assert_eq!(item.cost.unwrap().amount.to_string(), "12.345678901234567891");
    assert_eq!((item.on_hand, item.reserved, item.available), (Some(10.into()), Some(2.into()), Some(8.into())));
    let places: Vec<(&str, Option<Decimal>)> =
        item.stock_levels.iter().map(|l| (l.location_ref.as_str(), l.on_hand)).collect();
    assert_eq!(places, [("wh_1/loc_1", Some(4.into())), ("wh_2", Some(6.into()))]);
}

#[test]
fn a_bin_becomes_a_location_inside_the_warehouse_it_was_listed_under() {
    let record: BinRecord =
        serde_json::from_value(json!({"id": "loc_1", "warehouse_id": "wh_1", "name": "A-01", "zone": "x"})).unwrap();
    let bin = record.into_location(&source(), "wh_1");
    assert_eq!(bin.native_id, "wh_1/loc_1");
    assert_eq!(bin.kind, LocationKind::Bin);
    assert_eq!(bin.parent_ref.as_deref(), Some("wh_1"));
    assert_eq!(bin.name.as_deref(), Some("A-01"));
}

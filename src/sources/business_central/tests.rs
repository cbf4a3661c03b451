use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use url::Url;

use super::query::{self, Guid};
use super::records::{self, decode_name, enum_name, event_type, ItemRecord, LedgerRecord, LocationRecord};
use super::{bearer_token, continued_page_watermark, BusinessCentral};
use crate::clock::Clock;
use crate::ledger::{SourceFilter, TimeRange, Watermark};
use crate::mock::business_central as mock;
use crate::model::{EventType, LocationKind, SortKey, SourceName};
use crate::upstream::UpstreamFailure;

fn set(values: &[&str]) -> Option<BTreeSet<String>> {
    Some(values.iter().map(|v| (*v).to_owned()).collect())
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Every URL fits: the query alone is under test.
fn unlimited(_: &str) -> bool {
    true
}

fn only_filter(filter: &SourceFilter) -> String {
    let query = query::ledger_query(filter, None, &unlimited);
    assert_eq!(query.filters.len(), 1, "{query:?}");
    assert_eq!(query.local, SourceFilter::default());
    query.filters[0].clone()
}

const SEED_ENTRY: &str = r#"{
    "@odata.etag": "W/\"JzQ0O2ZyaTlPVmR6WUxDOEJyMExqOER1WXgxR0IvanErd0t4WXM0ckpzY20xSkU9MTswMDsn\"",
    "id": "44a76d24-52ff-eb11-bb76-000d3a220646",
    "entryNumber": 1,
    "itemNumber": "1100",
    "postingDate": "2022-06-01",
    "entryType": "Positive_x0020_Adjmt_x002E_",
    "sourceNumber": "",
    "sourceType": "_x0020_",
    "documentNumber": "START-MANF",
    "documentType": "_x0020_",
    "description": "",
    "quantity": 200,
    "salesAmountActual": 0,
    "costAmountActual": 25934.2,
    "lastModifiedDateTime": "2021-08-17T11:57:21.73Z"
}"#;

#[test]
fn the_documented_entry_maps_to_the_unified_model() {
    let record: LedgerRecord = serde_json::from_str(SEED_ENTRY).unwrap();
    let entry = record.into_entry(&SourceName::new("bc"));
    assert_eq!(entry.id(), "bc:44a76d24-52ff-eb11-bb76-000d3a220646");
    assert_eq!(entry.entry_date, Some(at("2022-06-01T00:00:00Z")));
    assert_eq!(entry.event_type, EventType::Adjustment);
    assert_eq!(entry.raw_event_type.as_deref(), Some("Positive Adjmt."));
    assert_eq!(entry.quantity, Some(dec("200")));
    assert_eq!(entry.amounts.cost, Some(dec("25934.2")));
    assert_eq!(entry.amounts.sales, Some(dec("0")));
    assert_eq!(entry.sku.as_deref(), Some("1100"));
    assert_eq!(entry.item_ref.as_deref(), Some("1100"));
    assert_eq!((entry.warehouse_id, entry.location_id), (None, None));
    let document = entry.document.unwrap();
    assert_eq!((document.kind, document.number.as_deref()), (None, Some("START-MANF")));
    assert_eq!(entry.description, None);
    assert_eq!(entry.updated_at, Some(at("2021-08-17T11:57:21.730Z")));
    assert_eq!(
        entry.additional_fields,
        serde_json::json!({"entryNumber": 1, "sourceType": null, "sourceNumber": null})
    );
}

#[test]
fn decimals_beyond_f64_arrive_exact() {
    let text = SEED_ENTRY
        .replace(r#""quantity": 200"#, r#""quantity": -3.0"#)
        .replace("25934.2", "12345678901234.123456789")
        .replace(r#""salesAmountActual": 0"#, r#""salesAmountActual": 0.30000000000000004441"#);
    let entry: LedgerRecord = serde_json::from_str(&text).unwrap();
    assert_eq!(entry.quantity.unwrap().to_string(), "-3.0");
    assert_eq!(entry.cost_amount_actual.unwrap().to_string(), "12345678901234.123456789");
    assert_eq!(entry.sales_amount_actual.unwrap().to_string(), "0.30000000000000004441");
    // The same text through f64 would not survive.
    assert_ne!("12345678901234.123456789".parse::<f64>().unwrap().to_string(), "12345678901234.123456789");
}

#[test]
fn blank_dates_and_timestamps_are_null() {
    let text =
        SEED_ENTRY.replace("2022-06-01", "0001-01-01").replace("2021-08-17T11:57:21.73Z", "0001-01-01T00:00:00Z");
    let entry = serde_json::from_str::<LedgerRecord>(&text).unwrap().into_entry(&SourceName::new("bc"));
    assert_eq!((entry.entry_date, entry.updated_at), (None, None));
}

#[test]
fn timestamps_with_any_number_of_fractional_digits_parse() {
    for stamp in ["2021-08-17T11:57:21Z", "2021-08-17T11:57:21.7Z", "2021-08-17T11:57:21.1234567Z"] {
        let text = SEED_ENTRY.replace("2021-08-17T11:57:21.73Z", stamp);
        let entry: LedgerRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(entry.last_modified_date_time, Some(at(stamp)), "{stamp}");
    }
}

#[test]
fn escaped_names_decode_in_both_escape_widths() {
    assert_eq!(decode_name("Positive_x0020_Adjmt_x002E_"), "Positive Adjmt.");
    assert_eq!(decode_name("caf_x00E9__x0001F600_"), "café😀");
    assert_eq!(decode_name("Non_x002D_Inventory"), "Non-Inventory");
    assert_eq!(decode_name("a_x005F_x0020_"), "a_x0020_");
    // Not escapes: left as they are.
    for plain in ["Purchase", "Positive Adjmt.", "snake_case", "_x12_", "_xZZZZ_", "_x0020", "x_"] {
        assert_eq!(decode_name(plain), plain);
    }
    assert_eq!(decode_name("_xD800_"), "_xD800_", "a lone surrogate is no character");
}

#[test]
fn blank_members_are_null_and_names_are_trimmed() {
    assert_eq!(enum_name(Some("_x0020_")), None);
    assert_eq!(enum_name(Some("")), None);
    assert_eq!(enum_name(None), None);
    assert_eq!(enum_name(Some("_x0020_Sale_x0020_")).as_deref(), Some("Sale"));
    assert_eq!(enum_name(Some("Sales Shipment")).as_deref(), Some("Sales Shipment"));
}

#[test]
fn every_member_encodes_as_bc_writes_it_and_decodes_back() {
    for (plain, encoded) in mock::ENTRY_TYPES.iter().chain(&mock::DOCUMENT_TYPES).chain(&mock::SOURCE_TYPES) {
        assert_eq!(query::encode_enum(plain), *encoded, "{plain:?}");
        assert_eq!(decode_name(encoded), *plain);
    }
    assert_eq!(query::encode_enum("a_x"), "a_x005F_x", "an underscore that would start an escape is escaped");
    assert_eq!(decode_name(&query::encode_enum("a_x0020_ é😀")), "a_x0020_ é😀");
}

#[test]
fn purchases_and_sales_split_by_document_type_then_by_sign() {
    let q = |s: &str| Some(dec(s));
    let cases = [
        ("Purchase", "Purchase Receipt", "5", EventType::Receipt),
        ("Purchase", "Purchase Receipt", "-5", EventType::Receipt),
        ("Purchase", "Purchase Invoice", "5", EventType::Receipt),
        ("Purchase", "Purchase Return Shipment", "-5", EventType::SupplierReturn),
        ("Purchase", "Purchase Credit Memo", "-5", EventType::SupplierReturn),
        ("Purchase", " ", "-5", EventType::SupplierReturn),
        ("Purchase", " ", "5", EventType::Receipt),
        ("Sale", "Sales Shipment", "-5", EventType::Shipment),
        ("Sale", "Sales Invoice", "-5", EventType::Shipment),
        ("Sale", "Service Shipment", "-5", EventType::Shipment),
        ("Sale", "Sales Return Receipt", "5", EventType::ReturnReceipt),
        ("Sale", "Sales Credit Memo", "5", EventType::ReturnReceipt),
        ("Sale", "Service Credit Memo", "5", EventType::ReturnReceipt),
        ("Sale", "Direct Transfer", "5", EventType::ReturnReceipt),
        ("Sale", " ", "-5", EventType::Shipment),
        ("Sale", " ", "0", EventType::Shipment),
        ("Positive Adjmt.", " ", "5", EventType::Adjustment),
        ("Negative Adjmt.", " ", "-5", EventType::Adjustment),
        ("Transfer", "Transfer Shipment", "-5", EventType::Transfer),
        ("Consumption", " ", "-5", EventType::Consumption),
        ("Assembly Consumption", "Posted Assembly", "-5", EventType::Consumption),
        ("Output", " ", "5", EventType::ProductionOutput),
        ("Assembly Output", "Posted Assembly", "5", EventType::ProductionOutput),
        (" ", " ", "5", EventType::Other),
        ("Added By An Extension", " ", "5", EventType::Other),
    ];
    for (entry_type, document_type, quantity, expected) in cases {
        let entry_type = enum_name(Some(entry_type));
        let document_type = enum_name(Some(document_type));
        assert_eq!(
            event_type(entry_type.as_deref(), document_type.as_deref(), q(quantity)),
            expected,
            "{entry_type:?} {document_type:?} {quantity}"
        );
    }
}

#[test]
fn event_type_pushdown_never_drops_an_entry_the_mapping_keeps() {
    let documents = mock::DOCUMENT_TYPES.map(|(plain, _)| plain);
    for (entry_type, _) in mock::ENTRY_TYPES {
        for document_type in documents {
            for quantity in ["-1", "0", "1"] {
                let entry_type = enum_name(Some(entry_type));
                let event =
                    event_type(entry_type.as_deref(), enum_name(Some(document_type)).as_deref(), Some(dec(quantity)));
                let Some(clause) = query::entry_type_clause(&BTreeSet::from([event])) else {
                    assert_eq!(event, EventType::Other);
                    continue;
                };
                let literal = query::string_literal(&query::encode_enum(entry_type.as_deref().unwrap_or(" ")));
                assert!(clause.contains(&literal), "{event:?} from {entry_type:?}/{document_type}: {clause}");
            }
        }
    }
}

#[test]
fn event_types_become_encoded_entry_types() {
    let events = BTreeSet::from([EventType::Adjustment, EventType::SupplierReturn]);
    assert_eq!(
        query::entry_type_clause(&events).as_deref(),
        Some("entryType in ('Purchase','Positive_x0020_Adjmt_x002E_','Negative_x0020_Adjmt_x002E_')")
    );
    let production = BTreeSet::from([EventType::ProductionOutput]);
    assert_eq!(
        query::entry_type_clause(&production).as_deref(),
        Some("entryType in ('Output','Assembly_x0020_Output')")
    );
    // OTHER also covers members no list can name.
    assert_eq!(query::entry_type_clause(&BTreeSet::from([EventType::Other, EventType::Transfer])), None);
}

/// Evaluates `postingDate <op> <date>` clauses the way BC would.
fn posting_date_holds(clauses: &[String], date: NaiveDate) -> bool {
    clauses.iter().all(|clause| {
        let parts: Vec<&str> = clause.split(' ').collect();
        let bound = NaiveDate::parse_from_str(parts[2], "%Y-%m-%d").unwrap();
        match parts[1] {
            "gt" => date > bound,
            "ge" => date >= bound,
            "lt" => date < bound,
            "le" => date <= bound,
            op => panic!("unexpected operator {op}"),
        }
    })
}

#[test]
fn posting_date_clauses_select_exactly_the_days_whose_midnight_is_in_range() {
    let midnight = Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap();
    let instants = [
        midnight,
        midnight + Duration::nanoseconds(1),
        midnight + Duration::hours(12),
        midnight - Duration::nanoseconds(1),
    ];
    for bound in instants {
        for field in ["gt", "gte", "lt", "lte"] {
            let range = match field {
                "gt" => TimeRange { gt: Some(bound), ..Default::default() },
                "gte" => TimeRange { gte: Some(bound), ..Default::default() },
                "lt" => TimeRange { lt: Some(bound), ..Default::default() },
                _ => TimeRange { lte: Some(bound), ..Default::default() },
            };
            let clauses = query::posting_date_clauses(&range);
            assert_eq!(clauses.len(), 1);
            for offset in -2..=2 {
                let date = day(2026, 3, 10) + Duration::days(offset);
                let entry_date = date.and_hms_opt(0, 0, 0).unwrap().and_utc();
                assert_eq!(
                    posting_date_holds(&clauses, date),
                    range.contains(Some(entry_date)),
                    "{field} {bound} {date}"
                );
            }
        }
    }
}

#[test]
fn a_date_range_pushes_down_as_bare_dates() {
    let filter = SourceFilter {
        entry_date: TimeRange {
            gte: Some(at("2024-06-01T00:00:00Z")),
            lt: Some(at("2024-07-01T00:00:00Z")),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(only_filter(&filter), "postingDate ge 2024-06-01 and postingDate lt 2024-07-01");
}

#[test]
fn modified_ranges_widen_to_whole_seconds() {
    let filter = SourceFilter {
        updated_at: TimeRange {
            gt: Some(at("2024-06-15T10:00:00.250Z")),
            lte: Some(at("2024-06-16T08:30:00Z")),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        only_filter(&filter),
        "lastModifiedDateTime ge 2024-06-15T10:00:00Z and lastModifiedDateTime lt 2024-06-16T08:30:01Z"
    );
}

#[test]
fn the_position_continues_from_its_own_day_and_undated_positions_from_blank() {
    let dated = SortKey { entry_date: Some(at("2026-03-10T00:00:00Z")), source: "bc".into(), native_id: "x".into() };
    assert_eq!(query::position_clause(&dated), "postingDate le 2026-03-10");
    let undated = SortKey { entry_date: None, ..dated };
    assert_eq!(query::position_clause(&undated), "postingDate le 0001-01-01");
}

#[test]
fn skus_and_item_ids_become_item_number_lists_with_quotes_doubled() {
    let filter =
        SourceFilter { skus: set(&["1896-S", "x' or 1 eq 1"]), item_refs: set(&["O'NEIL-7"]), ..Default::default() };
    assert_eq!(only_filter(&filter), "itemNumber in ('1896-S','x'' or 1 eq 1') and itemNumber in ('O''NEIL-7')");
    assert_eq!(query::string_literal("''"), "''''''");
}

#[test]
fn ids_become_one_field_or_clause_and_non_guids_are_dropped() {
    let filter = SourceFilter {
        ids: set(&["44A76D24-52FF-EB11-BB76-000D3A220646", "not-a-guid", "b2c3d4e5-f6a7-8901-bcde-f23456789012"]),
        event_types: Some(BTreeSet::from([EventType::Transfer])),
        ..Default::default()
    };
    assert_eq!(
        only_filter(&filter),
        "entryType in ('Transfer') and (id eq 44a76d24-52ff-eb11-bb76-000d3a220646 or id eq b2c3d4e5-f6a7-8901-bcde-f23456789012)"
    );
    let hopeless = SourceFilter { ids: set(&["1", "x' or 1 eq 1"]), ..Default::default() };
    assert_eq!(query::ledger_query(&hopeless, None, &unlimited).filters, Vec::<String>::new());
}

#[test]
fn ids_per_read_is_how_many_guids_one_read_of_a_long_list_holds() {
    let fits = |f: &str| f.len() <= 1500;
    let per_read = query::ids_per_read(&fits);
    let ids: Vec<String> = (0..500).map(|n| format!("00000000-0000-0000-0000-{n:012}")).collect();
    let filter = SourceFilter { ids: Some(ids.iter().cloned().collect()), ..Default::default() };
    let reads = query::ledger_query(&filter, None, &fits).filters;
    assert!(per_read > 1, "{per_read}");
    assert_eq!(reads[0].matches("id eq ").count(), per_read);
    assert_eq!(reads.len(), 500usize.div_ceil(per_read));
}

#[test]
fn long_id_lists_are_split_so_every_filter_fits() {
    let ids: Vec<String> = (0..500).map(|n| format!("00000000-0000-0000-0000-{n:012}")).collect();
    let filter =
        SourceFilter { ids: Some(ids.iter().cloned().collect()), skus: set(&["1896-S"]), ..Default::default() };
    let fits = |f: &str| f.len() <= 1500;
    let query = query::ledger_query(&filter, None, &fits);
    assert!(query.filters.len() > 1);
    let mut seen = Vec::new();
    for f in &query.filters {
        assert!(fits(f), "{f}");
        assert!(f.starts_with("itemNumber in ('1896-S') and "), "every chunk keeps the other clauses: {f}");
        seen.extend(f.match_indices("id eq ").map(|(i, _)| f[i + 6..i + 42].to_owned()));
    }
    assert_eq!(seen, ids);
}

#[test]
fn a_sku_list_too_long_for_a_url_is_checked_by_the_connector() {
    let skus: Vec<String> = (0..300).map(|n| format!("SKU-{n:016}")).collect();
    let filter = SourceFilter {
        skus: Some(skus.iter().cloned().collect()),
        event_types: Some(BTreeSet::from([EventType::Transfer])),
        ..Default::default()
    };
    let query = query::ledger_query(&filter, None, &|f: &str| f.len() <= 1500);
    assert_eq!(query.filters, ["entryType in ('Transfer')"]);
    assert_eq!(query.local.skus, filter.skus);
}

#[test]
fn a_key_too_long_to_ever_fit_is_left_out_of_lookups() {
    let literals: Vec<String> = ["A", &"B".repeat(100), "C"].iter().map(|k| query::string_literal(k)).collect();
    let filters = query::chunked_any_of(&[], "number", &literals, query::AnyOf::In, &|f: &str| f.len() <= 40);
    assert_eq!(filters, ["number in ('A','C')"]);
}

#[test]
fn query_values_encode_blanks_as_percent_20_and_every_delimiter() {
    let encoded = query::query_string(&[("$filter", "itemNumber in ('A&B+10 #2','O''N')".to_owned())]);
    assert_eq!(encoded, "$filter=itemNumber%20in%20%28%27A%26B%2B10%20%232%27%2C%27O%27%27N%27%29");
}

#[test]
fn guids_are_recognized_and_normalized() {
    assert_eq!(
        Guid::parse("44A76D24-52FF-EB11-BB76-000D3A220646").map(|g| g.to_string()).as_deref(),
        Some("44a76d24-52ff-eb11-bb76-000d3a220646")
    );
    for bad in [
        "",
        "44a76d24",
        "44a76d2452ffeb11bb76000d3a220646",
        "{44a76d24-52ff-eb11-bb76-000d3a220646}",
        "44a76d24-52ff-eb11-bb76-000d3a22064g",
        "44a76d24-52ff-eb11-bb76-000d3a220646-",
    ] {
        assert_eq!(Guid::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_token_goes_out_with_one_bearer_scheme_however_it_came_in() {
    assert_eq!(bearer_token("abc"), "abc");
    assert_eq!(bearer_token("Bearer abc"), "abc");
    assert_eq!(bearer_token("  bearer   abc "), "abc");
    assert_eq!(bearer_token("BEARER abc"), "abc");
    assert_eq!(bearer_token("Bearer "), "");
    assert_eq!(bearer_token(" "), "");
}

fn connector() -> BusinessCentral {
    let config = mock::source_config(Url::parse("http://127.0.0.1:9/business-central/").unwrap());
    BusinessCentral::new(SourceName::new("bc"), &config, Clock::Fixed("2026-06-30T10:30:00Z".parse().unwrap()))
}

#[test]
fn next_links_must_stay_on_the_configured_origin() {
    let bc = connector();
    let current = bc.ledger_url("");
    let next = bc.next_url(&current, "itemLedgerEntries?$skiptoken=abc").unwrap();
    assert_eq!(next.origin(), current.origin());
    let absolute = format!("{}?$skiptoken=x", current.as_str().split('?').next().unwrap());
    assert!(bc.next_url(&current, &absolute).is_ok());
    for elsewhere in ["https://127.0.0.1:9/x", "http://evil.example/x", "http://127.0.0.1:10/x", "//evil.example/x"] {
        let error = bc.next_url(&current, elsewhere).unwrap_err();
        assert_eq!(error.failure, UpstreamFailure::BadResponse, "{elsewhere}");
    }
}

#[test]
fn ledger_urls_are_built_under_the_company_root() {
    let url = connector().ledger_url("itemNumber in ('A')");
    assert_eq!(
        url.as_str(),
        format!(
            "http://127.0.0.1:9/business-central/v2.0/{}/production/api/v2.0/companies({})/itemLedgerEntries?$filter=itemNumber%20in%20%28%27A%27%29&$orderby=postingDate%20desc%2CentryNumber%20desc",
            mock::TENANT,
            mock::COMPANY_ID
        )
    );
}

#[test]
fn items_map_by_number() {
    let record: ItemRecord = serde_json::from_str(
        r#"{"@odata.etag":"W/\"x\"","id":"a1b2c3d4-e5f6-7890-abcd-ef1234567890","number":"1896-S","displayName":"ATHENS Desk",
            "type":"Inventory","itemCategoryCode":"TABLE","blocked":false,"gtin":"","inventory":12.5,"unitPrice":1000.8,
            "unitCost":780.70000000000000001,"baseUnitOfMeasureCode":"PCS","lastModifiedDateTime":"2024-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let item = record.into_item(&SourceName::new("bc"));
    assert_eq!((item.native_id.as_str(), item.sku.as_deref()), ("1896-S", Some("1896-S")));
    assert_eq!(item.name.as_deref(), Some("ATHENS Desk"));
    assert_eq!(item.cost.unwrap().amount.to_string(), "780.70000000000000001");
    assert_eq!(item.price.unwrap().amount, dec("1000.8"));
    assert_eq!(
        (item.on_hand, item.active, item.barcode, item.unit.as_deref()),
        (Some(dec("12.5")), Some(true), None, Some("PCS"))
    );
}

#[test]
fn locations_map_by_code_as_warehouses() {
    let record: LocationRecord = serde_json::from_str(
        r#"{"id":"a1b2c3d4-e5f6-7890-abcd-ef1234567890","code":"OUT. LOG.","displayName":"Outsourced Logistics",
            "addressLine1":"1 Way","addressLine2":"","city":"Dallas","state":"TX","country":"US","postalCode":"75001"}"#,
    )
    .unwrap();
    let location = record.into_location(&SourceName::new("bc"));
    assert_eq!((location.native_id.as_str(), location.code.as_deref()), ("OUT. LOG.", Some("OUT. LOG.")));
    assert_eq!(location.kind, LocationKind::Warehouse);
    let address = location.address.unwrap();
    assert_eq!((address.line1.as_deref(), address.line2, address.region.as_deref()), (Some("1 Way"), None, Some("TX")));
    assert_eq!(records::posting_instant(Some(day(1, 1, 1))), None);
}

#[test]
fn a_continued_page_is_complete_only_above_its_oldest_day() {
    let entry = |date: &str| {
        let text = SEED_ENTRY.replace("2022-06-01", date);
        serde_json::from_str::<LedgerRecord>(&text).unwrap().into_entry(&SourceName::new("bc"))
    };
    let page = [entry("2024-06-03"), entry("2024-06-01"), entry("2024-06-02")];
    assert_eq!(continued_page_watermark(&page), Watermark::After(at("2024-06-01T00:00:00Z")));
    let reaching_undated = [entry("2024-06-01"), entry("0001-01-01")];
    assert_eq!(continued_page_watermark(&reaching_undated), Watermark::After(DateTime::<Utc>::MIN_UTC));
    assert_eq!(continued_page_watermark(&[]), Watermark::After(DateTime::<Utc>::MAX_UTC));
}

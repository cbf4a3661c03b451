//! Unit tests: filter JSON and its escaping, day ranges, ids, mapping,
//! exact amounts, error bodies, headers, and where a scan starts.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::query::{self, DayRange};
use super::records::{totals_by_entry, CursorPage, LedgerEntryRecord, LineRecord};
use super::*;
use crate::ledger::TimeRange;
use crate::model::DocumentRef;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn decode(filter: &str) -> Vec<Value> {
    serde_json::from_str(filter).unwrap()
}

#[test]
fn a_hostile_value_stays_one_json_string() {
    let hostile = r#"1"},{"field":"date","operator":"gteq","value":"1900-01-01"#;
    let condition = query::Condition { field: "id", operator: "in", value: json!([hostile, "2"]) };
    let encoded = query::encode_filter(&[condition]).unwrap();
    let parsed = decode(&encoded);
    assert_eq!(parsed.len(), 1, "{encoded}");
    assert_eq!(parsed[0], json!({"field": "id", "operator": "in", "value": [hostile, "2"]}));
}

#[test]
fn list_parameters_carry_filter_sort_limit_and_cursor() {
    let conditions = DayRange { from: Some(day(2024, 1, 1)), to: Some(day(2024, 1, 31)) }.conditions();
    let params = query::list_params(&conditions, Some(query::NEWEST_FIRST), 25, Some("abc"));
    let keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["filter", "sort", "limit", "cursor"]);
    assert_eq!(
        decode(&params[0].1),
        [
            json!({"field": "date", "operator": "gteq", "value": "2024-01-01"}),
            json!({"field": "date", "operator": "lteq", "value": "2024-01-31"})
        ]
    );
    assert_eq!(params[1].1, "-date");
    assert_eq!(query::list_params(&[], None, 1, None), vec![("limit".to_owned(), "1".to_owned())]);
}

#[test]
fn ids_are_sent_as_json_strings_in_one_in_condition() {
    let condition = query::ids_condition(&[9, 10]);
    assert_eq!(
        serde_json::to_value(&condition).unwrap(),
        json!({"field": "id", "operator": "in", "value": ["9", "10"]})
    );
}

#[test]
fn instant_ranges_become_the_days_whose_midnight_they_hold() {
    let range = TimeRange {
        gte: Some(at("2024-03-01T00:00:00Z")),
        lte: Some(at("2024-03-10T23:00:00Z")),
        ..Default::default()
    };
    assert_eq!(DayRange::of(&range), DayRange { from: Some(day(2024, 3, 1)), to: Some(day(2024, 3, 10)) });
    // Midnight of March 1st is before 10:00: the first day inside is the 2nd.
    let range =
        TimeRange { gte: Some(at("2024-03-01T10:00:00Z")), lt: Some(at("2024-03-10T00:00:00Z")), ..Default::default() };
    assert_eq!(DayRange::of(&range), DayRange { from: Some(day(2024, 3, 2)), to: Some(day(2024, 3, 9)) });
    let range =
        TimeRange { gt: Some(at("2024-03-01T00:00:00Z")), lt: Some(at("2024-03-10T00:00:01Z")), ..Default::default() };
    assert_eq!(DayRange::of(&range), DayRange { from: Some(day(2024, 3, 2)), to: Some(day(2024, 3, 10)) });
    assert_eq!(DayRange::of(&TimeRange::default()), DayRange::default());
}

#[test]
fn a_range_holding_no_midnight_selects_no_day() {
    let range =
        TimeRange { gt: Some(at("2024-03-01T10:00:00Z")), lt: Some(at("2024-03-01T20:00:00Z")), ..Default::default() };
    assert!(DayRange::of(&range).is_empty());
    assert!(!DayRange { from: Some(day(2024, 3, 1)), to: Some(day(2024, 3, 1)) }.is_empty());
}

#[test]
fn a_single_day_is_an_eq_condition_and_up_to_keeps_the_earlier_end() {
    let one = DayRange { from: Some(day(2024, 3, 1)), to: Some(day(2024, 3, 1)) };
    assert_eq!(
        serde_json::to_value(one.conditions()).unwrap(),
        json!([{"field": "date", "operator": "eq", "value": "2024-03-01"}])
    );
    let open = DayRange::default();
    assert_eq!(open.up_to(day(2024, 3, 1)).to, Some(day(2024, 3, 1)));
    let bounded = DayRange { from: None, to: Some(day(2024, 2, 1)) };
    assert_eq!(bounded.up_to(day(2024, 3, 1)).to, Some(day(2024, 2, 1)));
}

#[test]
fn lines_are_bounded_by_days_and_journals() {
    let range = DayRange { from: Some(day(2024, 3, 1)), to: Some(day(2024, 3, 5)) };
    let journals = BTreeSet::from([12, 7]);
    let conditions = query::lines_conditions(range, Some(&journals));
    assert_eq!(
        serde_json::to_value(conditions).unwrap(),
        json!([
            {"field": "date", "operator": "gteq", "value": "2024-03-01"},
            {"field": "date", "operator": "lteq", "value": "2024-03-05"},
            {"field": "journal_id", "operator": "in", "value": ["7", "12"]},
        ])
    );
    assert_eq!(query::lines_conditions(range, None).len(), 2);
}

#[test]
fn only_canonical_int64_ids_name_an_entry() {
    assert_eq!(query::native_id("12345"), Some(12345));
    assert_eq!(query::native_id("0"), Some(0));
    for text in ["", "0012", "-1", "+1", "1.0", "12a", " 1", "1 OR 1=1", "99999999999999999999"] {
        assert_eq!(query::native_id(text), None, "{text:?}");
    }
}

fn record(value: Value) -> LedgerEntryRecord {
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_2026_entry_maps_into_the_unified_model() {
    let record = record(json!({
        "id": 12345, "label": "Facture Acme", "date": "2024-03-05",
        "journal": {"id": 7, "url": "https://app.pennylane.com/api/external/v2/journals/7"},
        "piece_number": "HA-2024-00012", "due_date": "2024-04-04", "invoice_number": "F-1",
        "status": "posted", "categories": [], "attachment": null,
        "created_at": "2024-03-05T10:08:08.146343Z", "updated_at": "2024-03-06T10:08:08.146343Z",
    }));
    let entry = record.into_entry(&SourceName::new("pennylane"));
    assert_eq!(entry.native_id, "12345");
    assert_eq!(entry.id(), "pennylane:12345");
    assert_eq!(entry.entry_date, Some(at("2024-03-05T00:00:00Z")));
    assert_eq!(entry.event_type, EventType::Journal);
    assert_eq!(entry.raw_event_type.as_deref(), Some("journal:7"));
    assert_eq!((entry.quantity, entry.sku.as_deref(), entry.item_ref.as_deref()), (None, None, None));
    assert_eq!((entry.warehouse_id.as_deref(), entry.location_id.as_deref()), (None, None));
    assert_eq!(entry.description.as_deref(), Some("Facture Acme"));
    assert_eq!(entry.document, Some(DocumentRef { kind: Some("piece".into()), number: Some("HA-2024-00012".into()) }));
    assert_eq!(entry.created_at, Some(at("2024-03-05T10:08:08.146343Z")));
    assert_eq!(entry.updated_at, Some(at("2024-03-06T10:08:08.146343Z")));
    assert_eq!(
        entry.additional_fields,
        json!({"journal": {"id": 7}, "invoice_number": "F-1", "status": "posted", "due_date": "2024-04-04"})
    );
    // Amounts come from lines, later.
    assert_eq!(entry.amounts, crate::model::Amounts::default());
}

#[test]
fn an_undated_draft_and_the_old_journal_id_spelling_map_too() {
    let record =
        record(json!({"id": 9, "label": null, "date": null, "journal_id": 12, "created_at": null, "updated_at": null}));
    assert_eq!(record.journal_id(), Some(12));
    let entry = record.into_entry(&SourceName::new("p"));
    assert_eq!(entry.entry_date, None);
    assert_eq!(entry.raw_event_type.as_deref(), Some("journal:12"));
    assert_eq!(entry.document, None);
}

#[test]
fn the_pre_2026_page_format_is_not_mistaken_for_a_last_page() {
    let seed = json!({"total_pages": 5, "current_page": 1, "total_items": 12, "per_page": 40, "items": []});
    assert!(serde_json::from_value::<CursorPage<LedgerEntryRecord>>(seed).is_err());
    let modern = json!({"items": [], "has_more": false, "next_cursor": null, "total_items": null});
    assert!(serde_json::from_value::<CursorPage<LedgerEntryRecord>>(modern).is_ok());
}

fn line(entry: i64, debit: &str, credit: &str) -> LineRecord {
    serde_json::from_value(
        json!({"id": 1, "debit": debit, "credit": credit, "ledger_entry": {"id": entry}, "label": "x"}),
    )
    .unwrap()
}

#[test]
fn line_amounts_sum_exactly_per_entry() {
    let lines = [line(1, "0.10", "0.00"), line(1, "0.20", "0.00"), line(1, "0.00", "0.30"), line(2, "100.00", "0.00")];
    let totals = totals_by_entry(&lines);
    let one = totals[&1].amounts();
    assert_eq!(one.debit, Some(Decimal::new(30, 2)));
    assert_eq!(one.credit, Some(Decimal::new(30, 2)));
    assert_eq!(one.debit.unwrap().to_string(), "0.30");
    assert_eq!(one.currency, None, "Pennylane lines state no currency");
    assert_eq!(totals[&2].amounts().debit.unwrap().to_string(), "100.00");
    assert_eq!(totals[&2].amounts().credit.unwrap().to_string(), "0.00");
    assert!(!totals.contains_key(&3));
}

#[test]
fn a_currency_is_kept_only_when_every_line_states_the_same() {
    let with = |currency: Option<&str>| {
        let mut line = line(1, "1.00", "0.00");
        line.currency = currency.map(str::to_owned);
        line
    };
    assert_eq!(totals_by_entry(&[with(Some("EUR")), with(Some("EUR"))])[&1].amounts().currency.as_deref(), Some("EUR"));
    assert_eq!(totals_by_entry(&[with(Some("EUR")), with(None)])[&1].amounts().currency, None);
    assert_eq!(totals_by_entry(&[with(Some("EUR")), with(Some("USD"))])[&1].amounts().currency, None);
}

#[test]
fn amounts_are_read_exactly_from_strings_and_numbers() {
    let parse = |debit: &str| {
        serde_json::from_str::<LineRecord>(&format!(
            r#"{{"id": 1, "debit": {debit}, "credit": "0", "ledger_entry": {{"id": 1}}}}"#
        ))
    };
    assert_eq!(parse(r#""12.345""#).unwrap().debit.to_string(), "12.345");
    assert_eq!(parse("12").unwrap().debit, Decimal::from(12));
    // Past f64's precision: a float would round this.
    assert_eq!(parse("12345678901234567.89").unwrap().debit.to_string(), "12345678901234567.89");
    assert!(parse(r#""ten""#).is_err());
    assert!(parse("null").is_err());
}

#[test]
fn a_rejected_cursor_is_a_page_token_failure_and_other_bodies_are_not() {
    let body = |value: Value| serde_json::to_vec(&value).unwrap();
    let cursor_422 = body(
        json!({"error": "unprocessable_entity", "message": "Invalid cursor", "details": {"cursor": ["is invalid"]}}),
    );
    assert_eq!(error_dialect(StatusCode::UNPROCESSABLE_ENTITY, &cursor_422), Some(UpstreamFailure::PageTokenInvalid));
    let cursor_400 = body(json!({"error": "bad_request", "message": "The cursor has expired"}));
    assert_eq!(error_dialect(StatusCode::BAD_REQUEST, &cursor_400), Some(UpstreamFailure::PageTokenInvalid));
    let filter_422 =
        body(json!({"error": "unprocessable_entity", "message": "bad filter", "details": {"filter": ["x"]}}));
    assert_eq!(error_dialect(StatusCode::UNPROCESSABLE_ENTITY, &filter_422), None);
    let plain_429 = b"Rate limit exceeded. Please retry in 3 seconds.";
    assert_eq!(error_dialect(StatusCode::TOO_MANY_REQUESTS, plain_429), None);
    assert_eq!(error_dialect(StatusCode::UNPROCESSABLE_ENTITY, b"not json"), None);
}

fn connector() -> Pennylane {
    let config = crate::mock::pennylane::source_config(Url::parse("http://127.0.0.1:9/pennylane/").unwrap());
    Pennylane::new(SourceName::new("pennylane"), &config, Clock::Fixed("2026-06-30T10:30:00Z".parse().unwrap()))
}

fn credentials(token: &str) -> Credentials {
    let fields = [("token".to_owned(), secrecy::SecretString::from(token))].into();
    Credentials::new(&crate::upstream::FingerprintKey::random(), fields)
}

#[test]
fn every_call_sends_a_bearer_token_and_opts_in_to_the_2026_behaviour() {
    let source = connector();
    let call =
        source.call(&credentials("secret-token"), "ledger_entries", &["ledger_entries"], &Params::new()).unwrap();
    assert_eq!(call.url.as_str(), "http://127.0.0.1:9/pennylane/api/external/v2/ledger_entries");
    let auth = &call.headers[AUTHORIZATION];
    assert_eq!(auth, "Bearer secret-token");
    assert!(auth.is_sensitive());
    assert_eq!(call.headers[USE_2026_API_CHANGES], "true");
    assert!(!format!("{:?}", call.headers).contains("secret-token"));
    let missing = Credentials::new(&crate::upstream::FingerprintKey::random(), Default::default());
    let error = source.call(&missing, "ledger_entries", &["ledger_entries"], &Params::new()).unwrap_err();
    assert_eq!(error.failure, UpstreamFailure::MissingCredentials);
}

#[test]
fn pennylane_declares_journals_only_and_no_items_or_locations() {
    let source = connector();
    let capabilities = source.capabilities();
    assert_eq!(capabilities.event_types, [EventType::Journal]);
    assert_eq!(capabilities.items, None);
    assert_eq!(capabilities.locations, None);
    assert_eq!(capabilities.pushdown.updated_at, Support::Gateway);
    assert_eq!(capabilities.pushdown.skus, Support::Unmatchable);
}

#[tokio::test]
async fn items_locations_and_counts_answer_without_a_call() {
    // The base URL points at a closed port: any call would fail.
    let source = connector();
    let creds = credentials("t");
    assert!(source.items(&creds, &["1".into()]).await.unwrap().is_empty());
    assert!(source.locations(&creds, &["1".into()]).await.unwrap().is_empty());
    assert_eq!(source.count(&creds, &SourceFilter::default()).await.unwrap(), None);
    assert_eq!(source.entry(&creds, "not-a-number").await.unwrap(), None);
}

fn request(filter: SourceFilter, position: Option<SortKey>) -> ScanRequest {
    ScanRequest { filter, position, want: 10, residual: SourceFilter::default(), hint: None }
}

fn key(date: Option<&str>, id: &str) -> SortKey {
    SortKey { entry_date: date.map(at), source: "pennylane".into(), native_id: id.into() }
}

#[test]
fn a_scan_starts_in_the_dated_walk_capped_at_the_positions_day() {
    let stage = first_stage(&request(SourceFilter::default(), None));
    // A date bound even without a filter: it keeps undated drafts out.
    let unbounded = DayRange { from: None, to: Some(query::LAST_DAY) };
    assert!(matches!(stage, Stage::Dated { walk: DatedWalk { days, .. }, then_undated: true } if days == unbounded));
    let stage = first_stage(&request(SourceFilter::default(), Some(key(Some("2024-03-05T00:00:00Z"), "10"))));
    assert!(
        matches!(stage, Stage::Dated { walk: DatedWalk { days: DayRange { to: Some(d), .. }, .. }, .. } if d == day(2024, 3, 5))
    );
}

#[test]
fn a_position_among_undated_drafts_continues_with_them_only_when_they_can_match() {
    let undated = Some(key(None, "42"));
    assert!(matches!(
        first_stage(&request(SourceFilter::default(), undated.clone())),
        Stage::Held(HeldRead { undated_only: true, .. })
    ));
    let dated_only = SourceFilter {
        entry_date: TimeRange { gte: Some(at("2024-01-01T00:00:00Z")), ..Default::default() },
        ..Default::default()
    };
    assert!(matches!(first_stage(&request(dated_only.clone(), undated)), Stage::Done));
    // A date filter also ends the dated walk without the undated read.
    assert!(matches!(first_stage(&request(dated_only, None)), Stage::Dated { then_undated: false, .. }));
}

#[test]
fn ids_are_read_in_chunks_and_impossible_ids_cost_nothing() {
    let ids = |list: &[&str]| SourceFilter {
        ids: Some(list.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    };
    assert!(matches!(first_stage(&request(ids(&["abc", "0012", "-1"]), None)), Stage::Done));
    let many: Vec<String> = (1..=250).map(|n| n.to_string()).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    match first_stage(&request(ids(&many), None)) {
        Stage::Held(read) => {
            assert_eq!(read.queries.len(), 3);
            assert!(!read.undated_only);
        }
        other => panic!("{other:?}"),
    }
    let empty_days = SourceFilter {
        entry_date: TimeRange {
            gt: Some(at("2024-03-01T10:00:00Z")),
            lt: Some(at("2024-03-01T11:00:00Z")),
            ..Default::default()
        },
        ..ids(&["1"])
    };
    assert!(matches!(first_stage(&request(empty_days, None)), Stage::Done));
}

#[test]
fn a_walk_reads_each_entry_once_and_marks_days_newer_than_the_oldest_complete() {
    let mut walk = DatedWalk { days: DayRange::default(), cursor: None, oldest: None };
    assert_eq!(walk.watermark(), Watermark::After(DateTime::<Utc>::MAX_UTC));
    assert!(walk.first_sight(day(2024, 3, 5), 9));
    assert!(walk.first_sight(day(2024, 3, 5), 10));
    assert!(walk.first_sight(day(2024, 3, 4), 11));
    assert_eq!(walk.watermark(), Watermark::After(Utc.with_ymd_and_hms(2024, 3, 4, 0, 0, 0).unwrap()));
    // After a restart the oldest day is read again: its entries are known.
    assert!(!walk.first_sight(day(2024, 3, 4), 11));
    assert!(walk.first_sight(day(2024, 3, 4), 12));
}

#[test]
fn a_rejected_token_restarts_once_per_scan() {
    let rejected = UpstreamError::new(&SourceName::new("p"), UpstreamFailure::PageTokenInvalid);
    let mut restarted = false;
    assert!(!may_restart(&rejected, false, &mut restarted), "no token was sent: nothing to restart");
    assert!(may_restart(&rejected, true, &mut restarted));
    assert!(!may_restart(&rejected, true, &mut restarted));
    let other = UpstreamError::new(&SourceName::new("p"), UpstreamFailure::Rejected);
    assert!(!may_restart(&other, true, &mut false));
}

#[test]
fn a_pennylane_source_is_configured_with_a_token() {
    let mut source = crate::mock::pennylane::source_config(Url::parse("http://127.0.0.1:9/pennylane/").unwrap());
    let config = |source: &crate::config::SourceConfig| crate::config::Config {
        sources: [("books".to_owned(), source.clone())].into(),
        ..Default::default()
    };
    assert!(config(&source).validate().is_ok());
    source.credentials.clear();
    source.forward.clear();
    let error = config(&source).validate().unwrap_err();
    assert_eq!(error.to_string(), "sources.books: credentials.token or forward.token is required");
}

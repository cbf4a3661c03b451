use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use ledger_gateway::mock::pennylane::{Entry, RateLimit, TenantData, TOKEN};
use ledger_gateway::mock::MockOptions;
use serde_json::{json, Value};

use crate::helpers::{anchor, error_codes, operation, small_data, spawn_app, spawn_app_with, TestApp};

const LEDGER: &str = "/pennylane/api/external/v2/ledger_entries";
const LINES: &str = "/pennylane/api/external/v2/ledger_entry_lines";

fn tenant(app: &TestApp) -> Arc<TenantData> {
    app.mock.state.pennylane.tenant(TOKEN)
}

/// The merged order for one source: newest day first, undated last, then
/// the id compared as text (so "10" comes before "9").
fn merged_order(a: &Entry, b: &Entry) -> Ordering {
    let by_date = match (a.date, b.date) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_date.then_with(|| a.id.to_string().cmp(&b.id.to_string()))
}

/// Global ids of the entries `keep` selects, in the merged order.
fn expected(app: &TestApp, keep: impl Fn(&Entry) -> bool) -> Vec<String> {
    let data = tenant(app);
    let mut entries: Vec<&Entry> = data.entries.iter().filter(|e| keep(e)).collect();
    entries.sort_by(|a, b| merged_order(a, b));
    entries.iter().map(|e| format!("pennylane:{}", e.id)).collect()
}

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes.iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect()
}

fn only_pennylane(mut filter: Value) -> Value {
    filter["sources"] = json!(["pennylane"]);
    filter
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// One request the mock received from the gateway.
#[derive(Debug)]
struct Sent {
    path: String,
    params: Vec<(String, String)>,
}

impl Sent {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The decoded `filter` JSON (empty when none was sent).
    fn filter(&self) -> Vec<Value> {
        self.param("filter").map_or_else(Vec::new, |f| serde_json::from_str(f).unwrap())
    }

    fn is_ledger_list(&self) -> bool {
        self.path == LEDGER
    }

    fn is_bulk_lines(&self) -> bool {
        self.path == LINES
    }

    fn is_entry_lines(&self) -> bool {
        self.path.starts_with(LEDGER) && self.path.ends_with("/ledger_entry_lines")
    }
}

async fn sent(app: &TestApp) -> Vec<Sent> {
    app.requests()
        .await
        .into_iter()
        .filter(|(path, _)| path.starts_with("/pennylane/"))
        .map(|(path, params)| Sent { path, params })
        .collect()
}

/// At most one bulk lines call per ledger page: each follows its page.
fn assert_one_lines_call_per_ledger_page(requests: &[Sent]) {
    for (i, _) in requests.iter().enumerate().filter(|(_, r)| r.is_bulk_lines()) {
        assert!(
            i > 0 && requests[i - 1].is_ledger_list(),
            "lines call #{i} does not follow a ledger page: {requests:#?}"
        );
    }
}

#[tokio::test]
async fn walking_pennylane_yields_each_entry_once_dated_then_undated() {
    let app = spawn_app().await;
    let all = expected(&app, |_| true);
    let data = tenant(&app);
    assert_eq!(all.len(), 400);
    let undated = data.entries.iter().filter(|e| e.date.is_none()).count();
    assert!(undated >= 5, "the mock has undated drafts: {undated}");
    for first in [1, 7, 50, 100] {
        app.reset_stats().await;
        let (nodes, pages) = app.walk(json!({"sources": ["pennylane"]}), first).await;
        let walked = ids(&nodes);
        assert_eq!(walked.len(), walked.iter().collect::<HashSet<_>>().len(), "first={first}: an entry repeats");
        assert_eq!(walked, all, "first={first}");
        assert_eq!(pages, all.len().div_ceil(first), "first={first}");
        let dates: Vec<Option<DateTime<Utc>>> =
            nodes.iter().map(|n| n["entryDate"].as_str().map(|d| d.parse().unwrap())).collect();
        let first_undated = dates.iter().position(Option::is_none).unwrap();
        assert!(dates[first_undated..].iter().all(Option::is_none), "first={first}: undated entries come last");
        assert!(dates[..first_undated].windows(2).all(|w| w[0] >= w[1]), "first={first}: not newest first");
        let requests = sent(&app).await;
        assert_one_lines_call_per_ledger_page(&requests);
        // No bulk lines call is made for undated entries: they have no date.
        let undated_lines = requests.iter().filter(|r| r.is_entry_lines()).count();
        assert!(undated_lines >= undated, "first={first}: {undated_lines} per-entry lines calls");
    }
}

#[tokio::test]
async fn ids_sharing_a_day_follow_text_order_across_upstream_pages() {
    // Two entries an upstream page: the day straddles upstream pages, which
    // list it in numeric id order (9, 10 | 11).
    let app = spawn_app_with(small_data(), |config| {
        config.sources.get_mut("pennylane").unwrap().page_size = Some(2);
    })
    .await;
    let data = tenant(&app);
    let day = data.entry(9).unwrap().date;
    assert!([10, 11].iter().all(|id| data.entry(*id).unwrap().date == day), "the mock puts 9, 10, 11 on one day");
    let at = midnight(day.unwrap());
    let that_day = only_pennylane(json!({"entryDate": {"gte": at.to_rfc3339(), "lte": at.to_rfc3339()}}));
    let up_to_it = only_pennylane(json!({"entryDate": {"lte": at.to_rfc3339()}}));
    for (filter, first, want) in [
        (that_day, 1, expected(&app, |e| e.date == day)),
        (up_to_it, 2, expected(&app, |e| e.date.is_some_and(|d| midnight(d) <= at))),
    ] {
        app.reset_stats().await;
        let (nodes, _) = app.walk(filter.clone(), first).await;
        let walked = ids(&nodes);
        assert_eq!(walked, want, "{filter}");
        let position = |id: &str| walked.iter().position(|w| w == id).unwrap();
        assert!(position("pennylane:10") < position("pennylane:11"), "{walked:?}");
        assert!(position("pennylane:11") < position("pennylane:9"), "{walked:?}");
        assert!(sent(&app).await.iter().any(|r| r.param("cursor").is_some()), "the day spans upstream pages");
    }
}

#[tokio::test]
async fn a_cursor_among_undated_drafts_continues_with_the_rest_of_them() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let all = expected(&app, |_| true);
    let dated = data.entries.iter().filter(|e| e.date.is_some()).count();
    // A page ending on the second undated draft.
    let body =
        app.query(&operation("LedgerPage"), json!({"filter": {"sources": ["pennylane"]}, "first": dated + 2})).await;
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().unwrap();
    assert!(edges.last().unwrap()["node"]["entryDate"].is_null());
    let cursor = edges.last().unwrap()["cursor"].clone();
    app.reset_stats().await;
    let body = app
        .query(&operation("LedgerPage"), json!({"filter": {"sources": ["pennylane"]}, "first": 3, "after": cursor}))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let nodes: Vec<Value> =
        body["data"]["ledgerEntries"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect();
    assert_eq!(ids(&nodes), all[dated + 2..dated + 5]);
    // Every page of the ledger is read once (no filter selects undated
    // entries), and the lines of the 3 + 1 entries the page can use are
    // read one entry at a time.
    let requests = sent(&app).await;
    let ledger: Vec<&Sent> = requests.iter().filter(|r| r.is_ledger_list()).collect();
    assert_eq!(ledger.len(), 400usize.div_ceil(100), "{requests:#?}");
    assert!(ledger.iter().all(|r| r.filter().is_empty() && r.param("limit") == Some("100")));
    assert_eq!(requests.iter().filter(|r| r.is_entry_lines()).count(), 4);
    assert_eq!(requests.iter().filter(|r| r.is_bulk_lines()).count(), 0);
    assert_eq!(requests.len(), 4 + 4);
}

#[tokio::test]
async fn each_page_costs_one_ledger_call_and_one_lines_call() {
    let app = spawn_app().await;
    let all = expected(&app, |_| true);
    let mut after = Value::Null;
    // 10 entries a page: the upstream page (10 + 1 + a slack of 10) also
    // holds the position's day read again and a last day that may go on.
    for page in 0..3 {
        app.reset_stats().await;
        let variables = json!({"filter": {"sources": ["pennylane"]}, "first": 10, "after": after});
        let body = app.query(&operation("JournalEntries"), variables).await;
        assert!(body["errors"].is_null(), "{body}");
        let edges = body["data"]["ledgerEntries"]["edges"].as_array().unwrap();
        let nodes: Vec<Value> = edges.iter().map(|e| e["node"].clone()).collect();
        assert_eq!(ids(&nodes), all[page * 10..page * 10 + 10], "page {page}");
        let requests = sent(&app).await;
        assert_eq!(requests.len(), 2, "page {page}: {requests:#?}");
        let (ledger, lines) = (&requests[0], &requests[1]);
        assert!(ledger.is_ledger_list() && lines.is_bulk_lines());
        assert_eq!(ledger.param("sort"), Some("-date"));
        assert_eq!(ledger.param("limit"), Some("21"));
        // The first page is bounded too, which keeps undated drafts out;
        // the next one starts at the day of the last entry seen.
        let bound = match page {
            0 => "9999-12-31".to_owned(),
            _ => after_day(&app, &all[page * 10 - 1]),
        };
        assert_eq!(ledger.filter(), [json!({"field": "date", "operator": "lteq", "value": bound})], "page {page}");
        after = edges.last().unwrap()["cursor"].clone();
    }
}

/// The day of entry `global_id`, as Pennylane writes it.
fn after_day(app: &TestApp, global_id: &str) -> String {
    let id: i64 = global_id.trim_start_matches("pennylane:").parse().unwrap();
    tenant(app).entry(id).unwrap().date.unwrap().format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn a_page_within_a_date_range_reads_its_lines_bounded_by_days_and_journals() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let (from, to) = (anchor() - chrono::Duration::days(40), anchor() - chrono::Duration::days(30));
    let in_range = |e: &Entry| e.date.is_some_and(|d| midnight(d) >= from && midnight(d) <= to);
    let want = expected(&app, in_range);
    assert!((5..=25).contains(&want.len()), "{}", want.len());
    app.reset_stats().await;
    let filter = only_pennylane(json!({"entryDate": {"gte": from.to_rfc3339(), "lte": to.to_rfc3339()}}));
    let body = app.query(&operation("JournalEntries"), json!({"filter": filter, "first": 50})).await;
    let nodes: Vec<Value> =
        body["data"]["ledgerEntries"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect();
    assert_eq!(ids(&nodes), want);
    let requests = sent(&app).await;
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let day = |d: DateTime<Utc>| d.format("%Y-%m-%d").to_string();
    assert_eq!(
        requests[0].filter(),
        [
            json!({"field": "date", "operator": "gteq", "value": day(from)}),
            json!({"field": "date", "operator": "lteq", "value": day(to)}),
        ]
    );
    let entries: Vec<&Entry> = data.entries.iter().filter(|e| in_range(e)).collect();
    let days: BTreeSet<NaiveDate> = entries.iter().filter_map(|e| e.date).collect();
    let journals: BTreeSet<i64> = entries.iter().map(|e| e.journal_id).collect();
    let journals: Vec<String> = journals.iter().map(i64::to_string).collect();
    let first_day = days.first().unwrap().format("%Y-%m-%d").to_string();
    let last_day = days.last().unwrap().format("%Y-%m-%d").to_string();
    assert_eq!(
        requests[1].filter(),
        [
            json!({"field": "date", "operator": "gteq", "value": first_day}),
            json!({"field": "date", "operator": "lteq", "value": last_day}),
            json!({"field": "journal_id", "operator": "in", "value": journals}),
        ]
    );
    for node in &nodes {
        let entry = data.entry(node["nativeId"].as_str().unwrap().parse().unwrap()).unwrap();
        let (debit, credit) = data.totals(entry);
        assert_eq!(
            node["amounts"],
            json!({"debit": debit.to_string(), "credit": credit.to_string(), "currency": null})
        );
    }
}

#[tokio::test]
async fn lines_beyond_one_call_are_followed_and_still_summed_exactly() {
    let app = spawn_app_with(small_data(), |config| {
        config.sources.get_mut("pennylane").unwrap().page_size = Some(100);
    })
    .await;
    let data = tenant(&app);
    let (from, to) = (anchor() - chrono::Duration::days(120), anchor() - chrono::Duration::days(60));
    let in_range = |e: &Entry| e.date.is_some_and(|d| midnight(d) >= from && midnight(d) <= to);
    let entries: Vec<&Entry> = data.entries.iter().filter(|e| in_range(e)).collect();
    let lines: usize = entries.iter().map(|e| data.lines_of(e).len()).sum();
    assert!(entries.len() <= 100 && lines > 100, "{} entries, {lines} lines", entries.len());
    app.reset_stats().await;
    let filter = only_pennylane(json!({"entryDate": {"gte": from.to_rfc3339(), "lte": to.to_rfc3339()}}));
    let body = app.query(&operation("JournalEntries"), json!({"filter": filter, "first": 100})).await;
    let nodes: Vec<Value> =
        body["data"]["ledgerEntries"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect();
    assert_eq!(ids(&nodes), expected(&app, in_range));
    let requests = sent(&app).await;
    assert_eq!(requests.iter().filter(|r| r.is_ledger_list()).count(), 1);
    let lines_calls: Vec<&Sent> = requests.iter().filter(|r| r.is_bulk_lines()).collect();
    assert_eq!(lines_calls.len(), lines.div_ceil(100));
    assert!(lines_calls[1..].iter().all(|r| r.param("cursor").is_some()));
    for node in &nodes {
        let entry = data.entry(node["nativeId"].as_str().unwrap().parse().unwrap()).unwrap();
        let (debit, credit) = data.totals(entry);
        assert_eq!(node["amounts"]["debit"], json!(debit.to_string()));
        assert_eq!(node["amounts"]["credit"], json!(credit.to_string()));
        assert_eq!(debit, credit, "an entry balances");
    }
}

#[tokio::test]
async fn ids_are_pushed_down_as_one_id_in_condition() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let draft = data.entries.iter().find(|e| e.date.is_none()).unwrap().id;
    let other = data.entries.iter().find(|e| e.id >= 100 && e.date.is_some()).unwrap().id;
    let picked = [9, 10, other, draft];
    let mut global: Vec<String> = picked.iter().map(|id| format!("pennylane:{id}")).collect();
    // Ids no Pennylane entry can have, and another source's.
    global.extend(["pennylane:0123".into(), "pennylane:x\"}]".into(), "trackstar:9".into()]);
    app.reset_stats().await;
    let (nodes, _) = app.walk(only_pennylane(json!({"ids": global})), 10).await;
    assert_eq!(ids(&nodes), expected(&app, |e| picked.contains(&e.id)));
    let requests = sent(&app).await;
    let ledger: Vec<&Sent> = requests.iter().filter(|r| r.is_ledger_list()).collect();
    assert_eq!(ledger.len(), 1, "{requests:#?}");
    let mut sent_ids: Vec<String> =
        ledger[0].filter()[0]["value"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    sent_ids.sort();
    let mut want: Vec<String> = picked.iter().map(i64::to_string).collect();
    want.sort();
    assert_eq!(ledger[0].filter()[0]["operator"], "in");
    assert_eq!(sent_ids, want);
    // The dated ones' lines in one bulk query over their days and journals
    // (a page of it per 100 lines), the undated one's by itself.
    let dated: Vec<&Entry> = picked.iter().filter_map(|id| data.entry(*id)).filter(|e| e.date.is_some()).collect();
    let (first_day, last_day) = (dated.iter().filter_map(|e| e.date).min(), dated.iter().filter_map(|e| e.date).max());
    let journals: BTreeSet<i64> = dated.iter().map(|e| e.journal_id).collect();
    let lines_in_bound = data
        .lines
        .iter()
        .filter(|l| l.date >= first_day && l.date <= last_day && l.date.is_some() && journals.contains(&l.journal_id))
        .count();
    let bulk = requests.iter().filter(|r| r.is_bulk_lines()).count();
    assert_eq!(bulk, lines_in_bound.div_ceil(100));
    assert_eq!(requests.iter().filter(|r| r.is_entry_lines()).count(), 1);
    assert_eq!(requests.len(), 1 + bulk + 1);

    app.reset_stats().await;
    let (nodes, _) = app.walk(only_pennylane(json!({"ids": ["pennylane:007", "pennylane:abc"]})), 10).await;
    assert!(nodes.is_empty());
    assert_eq!(app.calls_to("pennylane").await, 0);
}

#[tokio::test]
async fn updated_at_is_filtered_in_the_gateway_and_never_sent() {
    let app = spawn_app().await;
    let since = anchor() - chrono::Duration::days(60);
    app.reset_stats().await;
    let (nodes, _) = app.walk(only_pennylane(json!({"updatedAt": {"gt": since.to_rfc3339()}})), 40).await;
    assert_eq!(ids(&nodes), expected(&app, |e| e.updated_at > since));
    assert!(nodes.iter().any(|n| n["entryDate"].is_null()), "undated drafts are filtered too");
    let requests = sent(&app).await;
    assert!(!requests.is_empty());
    for request in &requests {
        let text = format!("{:?}", request.params);
        assert!(!text.contains("updated_at") && !text.contains("created_at"), "{text}");
    }
}

#[tokio::test]
async fn journal_is_the_only_event_type_and_item_filters_skip_pennylane() {
    let app = spawn_app().await;
    let (nodes, _) = app.walk(only_pennylane(json!({"eventTypes": ["JOURNAL", "RECEIPT"]})), 200).await;
    assert_eq!(ids(&nodes), expected(&app, |_| true));
    assert!(nodes.iter().all(|n| n["eventType"] == "JOURNAL"));
    for filter in [
        json!({"eventTypes": ["RECEIPT", "SHIPMENT"]}),
        json!({"skus": ["SKU-0001"]}),
        json!({"itemIds": ["pennylane:1"]}),
        json!({"locationIds": ["pennylane:1"]}),
    ] {
        app.reset_stats().await;
        app.walk(filter.clone(), 20).await;
        assert_eq!(app.calls_to("pennylane").await, 0, "{filter}");
    }
}

#[tokio::test]
async fn one_entry_is_found_by_id_with_its_amounts() {
    let app = spawn_app().await;
    let data = tenant(&app);
    let query = "query($id: ID!) { ledgerEntry(id: $id) { id entryDate eventType rawEventType quantity description \
                 document { kind number } amounts { debit credit currency } additionalFields } }";
    let dated = data.entries.iter().find(|e| e.id >= 100 && e.date.is_some()).unwrap();
    let draft = data.entries.iter().find(|e| e.date.is_none()).unwrap();
    for entry in [dated, draft] {
        app.reset_stats().await;
        let body = app.query(query, json!({"id": format!("pennylane:{}", entry.id)})).await;
        assert!(body["errors"].is_null(), "{body}");
        let node = &body["data"]["ledgerEntry"];
        let (debit, credit) = data.totals(entry);
        assert_eq!(
            node["amounts"],
            json!({"debit": debit.to_string(), "credit": credit.to_string(), "currency": null})
        );
        assert_eq!(node["entryDate"], json!(entry.date.map(|d| midnight(d).to_rfc3339())));
        assert_eq!(node["eventType"], "JOURNAL");
        assert_eq!(node["rawEventType"], json!(format!("journal:{}", entry.journal_id)));
        assert_eq!(node["quantity"], Value::Null);
        assert_eq!(node["description"], json!(entry.label));
        assert_eq!(node["document"], json!({"kind": "piece", "number": entry.piece_number}));
        assert_eq!(node["additionalFields"]["journal"], json!({"id": entry.journal_id}));
        assert_eq!(node["additionalFields"]["invoice_number"], json!(entry.invoice_number));
        // The entry, then its lines.
        assert_eq!(app.calls_to("pennylane").await, 2);
    }

    app.reset_stats().await;
    let body = app.query(query, json!({"id": "pennylane:987654"})).await;
    assert!(body["errors"].is_null() && body["data"]["ledgerEntry"].is_null(), "{body}");
    assert_eq!(app.calls_to("pennylane").await, 1);

    app.reset_stats().await;
    for id in ["pennylane:abc", "pennylane:0123", "pennylane:1 OR 1=1", "pennylane:-4"] {
        let body = app.query(query, json!({"id": id})).await;
        assert!(body["errors"].is_null() && body["data"]["ledgerEntry"].is_null(), "{id}: {body}");
    }
    assert_eq!(app.calls_to("pennylane").await, 0);
}

#[tokio::test]
async fn rejected_pennylane_credentials_name_the_source_and_keep_other_sources() {
    let app = spawn_app_with(small_data(), |config| {
        let source = config.sources.get_mut("pennylane").unwrap();
        source.credentials.insert("token".into(), secrecy::SecretString::from("wrong-token"));
    })
    .await;
    let variables = json!({"first": 5, "filter": {"sources": ["pennylane", "trackstar"]}});
    let body = app.query(&operation("LedgerPage"), variables).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_UNAUTHORIZED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], "pennylane");
    assert_eq!(body["errors"][0]["path"], json!(["ledgerEntries"]));
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 5);
    assert!(edges.iter().all(|e| e["node"]["source"] == "trackstar"));
    assert!(!body.to_string().contains("wrong-token") && !body.to_string().contains("127.0.0.1"));
    // 401 is not transient: one call, no retry.
    assert_eq!(app.calls_to("pennylane").await, 1);
}

#[tokio::test]
async fn a_pennylane_rate_limit_is_reported_with_its_retry_after() {
    let app = spawn_app().await;
    app.mock.state.pennylane.set_rate_limit(Some(RateLimit { requests: 1, window: Duration::from_secs(60) }));
    app.reset_stats().await;
    let body = app.query(&operation("LedgerPage"), json!({"first": 5, "filter": {"sources": ["pennylane"]}})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_RATE_LIMITED"], "{body}");
    let extensions = &body["errors"][0]["extensions"];
    assert_eq!(extensions["source"], "pennylane");
    let wait = extensions["retryAfterSeconds"].as_u64().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(!body.to_string().contains("Rate limit exceeded"), "no upstream body in the response: {body}");
    // The ledger page answers with `ratelimit-remaining: 0`: the lines call
    // would wait a minute for the reset, longer than a request may, so it
    // fails without being sent instead of earning a 429.
    assert_eq!(app.calls_to("pennylane").await, 1);
}

#[tokio::test]
async fn an_expired_upstream_cursor_is_recovered_once_from_the_oldest_day() {
    let app = spawn_app_with(small_data(), |config| {
        config.sources.get_mut("pennylane").unwrap().page_size = Some(5);
    })
    .await;
    let filter = json!({"sources": ["pennylane"]});
    app.mock.state.pennylane.reject_next_cursors(1);
    app.reset_stats().await;
    let body = app.query(&operation("LedgerPage"), json!({"filter": filter, "first": 20})).await;
    assert!(body["errors"].is_null(), "{body}");
    let nodes: Vec<Value> =
        body["data"]["ledgerEntries"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect();
    assert_eq!(ids(&nodes), expected(&app, |_| true)[..20]);
    let ledger: Vec<Sent> = sent(&app).await.into_iter().filter(Sent::is_ledger_list).collect();
    // Page 1, page 2 (cursor rejected), page 2 again from its oldest day.
    assert!(ledger[1].param("cursor").is_some());
    assert!(ledger[2].param("cursor").is_none());
    let restart_bound = ledger[2].filter()[0].clone();
    assert_eq!(restart_bound["operator"], "lteq");
    assert_ne!(restart_bound["value"], "9999-12-31");

    app.mock.state.pennylane.reject_next_cursors(2);
    let body = app.query(&operation("LedgerPage"), json!({"filter": filter, "first": 20})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_PAGE_TOKEN_INVALID"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], "pennylane");
}

#[tokio::test]
async fn a_callers_forwarded_token_reads_that_callers_company() {
    let app = spawn_app_with(MockOptions { entries: 60, ..small_data() }, |_| {}).await;
    let filter = json!({"sources": ["pennylane"]});
    let query = operation("JournalEntries");
    let mine = app
        .query_with_headers(&query, json!({"filter": filter, "first": 60}), &[("x-pennylane-token", "pl-alice")])
        .await;
    assert!(mine["errors"].is_null(), "{mine}");
    let alice = app.mock.state.pennylane.tenant("pl-alice");
    let nodes: Vec<Value> =
        mine["data"]["ledgerEntries"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect();
    let labels: Vec<&str> = nodes.iter().map(|n| n["description"].as_str().unwrap()).collect();
    let alices: Vec<&str> = nodes
        .iter()
        .map(|n| alice.entry(n["nativeId"].as_str().unwrap().parse().unwrap()).unwrap().label.as_str())
        .collect();
    assert_eq!(labels, alices);
    let demo = app.query(&query, json!({"filter": filter, "first": 60})).await;
    assert_ne!(mine["data"], demo["data"]);
}

/// The mock itself, spoken to directly: the wire format the connector relies on.
mod wire {
    use super::*;

    async fn get(app: &TestApp, path: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request =
            app.client.get(format!("http://{}/pennylane/api/external/v2{path}", app.mock.addr)).query(query);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    const BEARER: (&str, &str) = ("authorization", "Bearer demo-pennylane-token");

    #[tokio::test]
    async fn cursor_pages_by_default_and_the_seed_format_only_when_opted_out() {
        let app = spawn_app().await;
        let modern: Value = get(&app, "/ledger_entries", &[("limit", "5")], &[BEARER]).await.json().await.unwrap();
        assert_eq!(modern["has_more"], true);
        assert!(modern["next_cursor"].is_string());
        assert!(modern["total_items"].is_null() && modern["total_pages"].is_null());
        assert_eq!(modern["items"].as_array().unwrap().len(), 5);

        let seed: Value =
            get(&app, "/ledger_entries", &[("per_page", "5")], &[BEARER, ("x-use-2026-api-changes", "false")])
                .await
                .json()
                .await
                .unwrap();
        assert!(seed["total_items"].as_u64().unwrap() < 400, "no drafts before 2026");
        assert_eq!(seed["current_page"], 1);
        assert!(seed.get("has_more").is_none());
        let item = &seed["items"][0];
        assert!(item["id"].as_i64().unwrap() % 1000 == 3, "old ids carry the 3-digit suffix: {item}");
        assert!(item["journal_id"].is_i64());
    }

    #[tokio::test]
    async fn conflicting_2026_flags_are_a_400() {
        let app = spawn_app().await;
        let response = get(
            &app,
            "/ledger_entries",
            &[("use_2026_api_changes", "false")],
            &[BEARER, ("x-use-2026-api-changes", "true")],
        )
        .await;
        assert_eq!(response.status(), 400);
        let agreeing = get(
            &app,
            "/ledger_entries",
            &[("use_2026_api_changes", "true")],
            &[BEARER, ("x-use-2026-api-changes", "true")],
        )
        .await;
        assert_eq!(agreeing.status(), 200);
    }

    #[tokio::test]
    async fn removed_unknown_and_malformed_filters_are_422_with_the_documented_body() {
        let app = spawn_app().await;
        for (filter, sort) in [
            (r#"[{"field":"updated_at","operator":"gteq","value":"2024-01-01T00:00:00Z"}]"#, "-date"),
            (r#"[{"field":"created_at","operator":"gteq","value":"2024-01-01T00:00:00Z"}]"#, "-date"),
            (r#"[{"field":"label","operator":"eq","value":"x"}]"#, "-date"),
            (r#"[{"field":"date","operator":"in","value":["2024-01-01"]}]"#, "-date"),
            (r#"[{"field":"date","operator":"gteq","value":"01/01/2024"}]"#, "-date"),
            (r#"{"field":"id"}"#, "-date"),
            ("[]", "-updated_at"),
            ("[]", "-date,-id"),
        ] {
            let response = get(&app, "/ledger_entries", &[("filter", filter), ("sort", sort)], &[BEARER]).await;
            assert_eq!(response.status(), 422, "{filter} {sort}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "unprocessable_entity");
            assert!(body["message"].is_string() && !body["details"].is_null(), "{body}");
        }
    }

    #[tokio::test]
    async fn in_filters_take_a_json_array_or_csv() {
        let app = spawn_app().await;
        for filter in [
            r#"[{"field":"id","operator":"in","value":["9","10",11]}]"#,
            r#"[{"field":"id","operator":"in","value":"9,10,11"}]"#,
        ] {
            let body: Value = get(&app, "/ledger_entries", &[("filter", filter), ("sort", "id")], &[BEARER])
                .await
                .json()
                .await
                .unwrap();
            let ids: Vec<i64> = body["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
            assert_eq!(ids, [9, 10, 11], "{filter}");
        }
    }

    #[tokio::test]
    async fn errors_come_in_pennylanes_shapes() {
        let app = spawn_app().await;
        let response = get(&app, "/ledger_entries", &[], &[("authorization", "Bearer nope")]).await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
        let response = get(&app, "/ledger_entries/987654", &[], &[BEARER]).await;
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"status": 404, "error": "Couldn't find LedgerEntry with 'id'=987654"}));
        let response = get(&app, "/ledger_entries", &[("cursor", "bm9wZQ")], &[BEARER]).await;
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert!(body["details"]["cursor"].is_array(), "{body}");
    }

    #[tokio::test]
    async fn a_rate_limit_answers_429_in_plain_text_with_its_headers() {
        let app = spawn_app().await;
        let ok = get(&app, "/ledger_entries", &[("limit", "1")], &[BEARER]).await;
        for name in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
            assert!(ok.headers().contains_key(name), "{name}");
        }
        app.mock.state.pennylane.set_rate_limit(Some(RateLimit { requests: 1, window: Duration::from_secs(30) }));
        assert_eq!(get(&app, "/ledger_entries", &[("limit", "1")], &[BEARER]).await.status(), 200);
        let limited = get(&app, "/ledger_entries", &[("limit", "1")], &[BEARER]).await;
        assert_eq!(limited.status(), 429);
        assert!(limited.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry));
        assert_eq!(limited.headers()["ratelimit-remaining"], "0");
        assert_eq!(limited.text().await.unwrap(), format!("Rate limit exceeded. Please retry in {retry} seconds."));
    }

    #[tokio::test]
    async fn lines_balance_and_undated_drafts_come_first_under_minus_date() {
        let app = spawn_app().await;
        let data = tenant(&app);
        let body: Value =
            get(&app, "/ledger_entries", &[("sort", "-date"), ("limit", "100")], &[BEARER]).await.json().await.unwrap();
        assert!(body["items"][0]["date"].is_null());
        let entry = data.entry(123).unwrap();
        let body: Value =
            get(&app, "/ledger_entries/123/ledger_entry_lines", &[], &[BEARER]).await.json().await.unwrap();
        let lines = body["items"].as_array().unwrap();
        assert_eq!(lines.len(), data.lines_of(entry).len());
        let sum = |field: &str| {
            lines
                .iter()
                .map(|l| l[field].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap())
                .sum::<rust_decimal::Decimal>()
        };
        assert_eq!(sum("debit"), sum("credit"));
        assert!(lines.iter().all(|l| l["ledger_entry"]["id"] == 123));
    }
}

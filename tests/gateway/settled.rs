//! Settled history: ledger windows that ended `settled_after_secs` ago are
//! kept for `settled_ttl_secs`, guarded by one change probe per caller
//! every `change_probe_secs`; a failed probe keeps nothing as settled.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_gateway::clock::{Clock, ManualClock};
use ledger_gateway::config::{CacheTtlOverride, Config};
use ledger_gateway::mock::trackstar::ACCESS_TOKEN;
use ledger_gateway::mock::MockOptions;
use serde_json::{json, Value};

use crate::helpers::{error_codes, operation, spawn_app_with, TestApp};

const LEDGER: &str = "/trackstar/wms/inventory/ledger";
const PROBE_PARAM: &str = "trackstar_updated_date[gte]";
const PROBE_SECS: i64 = 60;
const TOKEN_HEADER: &str = "x-trackstar-access-token";

/// A gateway over Trackstar alone, ledger pages otherwise not cached
/// (`ledger_ttl_secs = 0`), history older than a week settled; the mock and
/// the gateway share a clock the test moves.
async fn spawn() -> (TestApp, &'static ManualClock) {
    spawn_with(|_| {}).await
}

async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> (TestApp, &'static ManualClock) {
    let clock = ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 6, 30, 10, 30, 0).unwrap());
    let options = MockOptions { entries: 400, seed: 7, ..MockOptions::at(clock.clock()) };
    let app = spawn_app_with(options, |config| {
        config.sources.retain(|name, _| name == "trackstar");
        let settled = CacheTtlOverride {
            settled_after_secs: Some(7 * 86_400),
            settled_ttl_secs: Some(86_400),
            change_probe_secs: Some(PROBE_SECS as u64),
            ..CacheTtlOverride::default()
        };
        config.cache.sources.insert("trackstar".into(), settled);
        tweak(config);
    })
    .await;
    (app, clock)
}

fn anchor(clock: &'static ManualClock) -> DateTime<Utc> {
    Clock::Manual(clock).today()
}

/// Every entry dated up to 30 days before the data's newest day: settled.
fn settled_filter(clock: &'static ManualClock) -> Value {
    json!({"entryDate": {"lte": (anchor(clock) - Duration::days(30)).to_rfc3339()}})
}

/// Walks every page as the caller `headers` says; the entries' ids.
async fn walk(app: &TestApp, filter: &Value, headers: &[(&str, &str)]) -> Vec<String> {
    let query = operation("LedgerPage");
    let mut after = Value::Null;
    let mut ids = Vec::new();
    for page in 1..1000 {
        let body =
            app.query_with_headers(&query, json!({"filter": filter, "first": 100, "after": after}), headers).await;
        assert!(body["errors"].is_null(), "page {page}: {body}");
        let connection = &body["data"]["ledgerEntries"];
        ids.extend(
            connection["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return ids;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    panic!("walk does not end")
}

/// The ledger requests since the last reset: (probes, window reads).
async fn ledger_requests(app: &TestApp) -> (Vec<Vec<(String, String)>>, Vec<Vec<(String, String)>>) {
    let ledger = app.requests().await.into_iter().filter(|(path, _)| path == LEDGER).map(|(_, query)| query);
    ledger.partition(|query| query.iter().any(|(key, _)| key == PROBE_PARAM))
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Whether a window read asked for entries dated `at` (its `lte` is inclusive).
fn asks_for(query: &[(String, String)], at: DateTime<Utc>) -> bool {
    let bound = |key| param(query, key).map(|v| v.parse::<DateTime<Utc>>().unwrap());
    bound("entry_date[gte]").is_none_or(|from| from <= at) && bound("entry_date[lte]").is_none_or(|to| at <= to)
}

#[tokio::test]
async fn a_repeated_walk_of_settled_history_costs_only_the_probes() {
    let (app, clock) = spawn().await;
    let filter = settled_filter(clock);
    app.reset_stats().await;
    let cold = walk(&app, &filter, &[]).await;
    assert!(!cold.is_empty());
    let (probes, reads) = ledger_requests(&app).await;
    assert_eq!(probes.len(), 0, "the first read only starts the watch");
    assert!(!reads.is_empty());

    app.reset_stats().await;
    assert_eq!(walk(&app, &filter, &[]).await, cold);
    assert_eq!(app.calls_to("trackstar").await, 0, "within the probe interval: nothing");

    clock.advance(Duration::seconds(PROBE_SECS));
    app.reset_stats().await;
    assert_eq!(walk(&app, &filter, &[]).await, cold);
    assert_eq!(app.calls_to("trackstar").await, 1, "one probe for the whole walk");
    let (probes, _) = ledger_requests(&app).await;
    assert_eq!(param(&probes[0], PROBE_PARAM), Some("2026-06-30T10:30:00Z"), "since the watch started");
}

#[tokio::test]
async fn a_back_dated_entry_appears_after_the_next_probe_and_not_before() {
    let (app, clock) = spawn().await;
    let filter = settled_filter(clock);
    app.reset_stats().await;
    let before = walk(&app, &filter, &[]).await;
    let (_, kept) = ledger_requests(&app).await;
    let dated = anchor(clock) - Duration::days(60) + Duration::seconds(17);
    clock.advance(Duration::seconds(5));
    let id = format!("trackstar:{}", app.mock.state.trackstar.add_entry(ACCESS_TOKEN, dated));

    app.reset_stats().await;
    assert_eq!(walk(&app, &filter, &[]).await, before, "stale for at most the probe interval");
    assert_eq!(app.calls_to("trackstar").await, 0);

    clock.advance(Duration::seconds(PROBE_SECS));
    app.reset_stats().await;
    let after = walk(&app, &filter, &[]).await;
    assert!(after.contains(&id), "{id} after the probe");
    assert_eq!(after.len(), before.len() + 1);
    let (probes, reads) = ledger_requests(&app).await;
    assert_eq!(probes.len(), 1);
    // The extra entry moves the walk's later windows (new reads); of the
    // kept ones only those holding the entry's date were dropped.
    let again: Vec<_> = reads.iter().filter(|query| kept.contains(query)).collect();
    assert!(!again.is_empty(), "the window holding the entry is read again");
    assert!(again.iter().all(|query| asks_for(query, dated)), "only windows holding {dated} are read again: {again:?}");

    app.reset_stats().await;
    assert_eq!(walk(&app, &filter, &[]).await, after);
    assert_eq!(app.calls_to("trackstar").await, 0, "kept again after it was read");
}

#[tokio::test]
async fn an_entry_in_recent_history_shows_at_once_and_costs_as_before() {
    let (app, clock) = spawn().await;
    let recent = json!({"entryDate": {"gte": (anchor(clock) - Duration::days(2)).to_rfc3339()}});
    app.reset_stats().await;
    let before = walk(&app, &recent, &[]).await;
    let cold = app.calls_to("trackstar").await;
    assert!(cold > 0);
    app.reset_stats().await;
    assert_eq!(walk(&app, &recent, &[]).await, before);
    assert_eq!(app.calls_to("trackstar").await, cold, "recent windows are not kept (ledger_ttl_secs = 0)");

    let id =
        format!("trackstar:{}", app.mock.state.trackstar.add_entry(ACCESS_TOKEN, anchor(clock) - Duration::hours(3)));
    let after = walk(&app, &recent, &[]).await;
    assert!(after.contains(&id), "no probe needed");
}

#[tokio::test]
async fn two_callers_probe_and_keep_settled_history_apart() {
    let (app, clock) = spawn().await;
    let filter = settled_filter(clock);
    let bob = [(TOKEN_HEADER, "bob-token")];
    let alice_entries = walk(&app, &filter, &[]).await;
    app.reset_stats().await;
    let bob_entries = walk(&app, &filter, &bob).await;
    assert_ne!(bob_entries, alice_entries, "another tenant's data");
    let bob_cold = app.calls_to("trackstar").await;
    assert!(bob_cold > 0, "alice's kept windows do not serve bob");

    clock.advance(Duration::seconds(PROBE_SECS));
    let dated = anchor(clock) - Duration::days(90);
    let added = format!("trackstar:{}", app.mock.state.trackstar.add_entry("bob-token", dated));
    app.reset_stats().await;
    assert_eq!(walk(&app, &filter, &[]).await, alice_entries);
    let (probes, reads) = ledger_requests(&app).await;
    assert_eq!((probes.len(), reads.len()), (1, 0), "alice's own probe finds nothing of hers");

    app.reset_stats().await;
    let bob_after = walk(&app, &filter, &bob).await;
    assert!(bob_after.contains(&added));
    let (probes, _) = ledger_requests(&app).await;
    assert_eq!(probes.len(), 1, "bob's probe is his own");
}

#[tokio::test]
async fn a_failed_probe_keeps_nothing_as_settled_until_one_succeeds() {
    let (app, clock) = spawn().await;
    let filter = settled_filter(clock);
    app.reset_stats().await;
    let entries = walk(&app, &filter, &[]).await;
    let cold = app.calls_to("trackstar").await;

    clock.advance(Duration::seconds(PROBE_SECS));
    // After the reset, which clears fault rules too.
    app.reset_stats().await;
    app.inject_faults(json!([{"upstream": "trackstar", "param": PROBE_PARAM, "status": 400}])).await;
    assert_eq!(walk(&app, &filter, &[]).await, entries, "the probe's failure is not the page's");
    assert_eq!(app.calls_to("trackstar").await, 1 + cold, "the failed probe, then every window read again");

    app.reset_stats().await;
    walk(&app, &filter, &[]).await;
    assert_eq!(app.calls_to("trackstar").await, cold, "not kept, and no probe before the interval");

    clock.advance(Duration::seconds(PROBE_SECS));
    app.clear_faults().await;
    app.reset_stats().await;
    walk(&app, &filter, &[]).await;
    let (probes, reads) = ledger_requests(&app).await;
    assert_eq!(param(&probes[0], PROBE_PARAM), Some("2026-06-30T10:30:00Z"), "from the last successful probe");
    assert_eq!((probes.len(), reads.len() as u64), (1, cold));
    app.reset_stats().await;
    walk(&app, &filter, &[]).await;
    assert_eq!(app.calls_to("trackstar").await, 0, "kept again once a probe succeeded");
}

#[tokio::test]
async fn the_probe_counts_against_the_request_budget() {
    let (unlimited, clock) = spawn_with(|_| {}).await;
    let page = json!({"filter": settled_filter(clock), "first": 10});
    unlimited.reset_stats().await;
    let expected = unlimited.query(&operation("LedgerPage"), page.clone()).await;
    let cold = unlimited.calls_to("trackstar").await;

    // Exactly what the page's reads cost: with the probe on top it is one too many.
    let budget = usize::try_from(cold).unwrap();
    let (app, clock) = spawn_with(|config| config.limits.max_upstream_calls = budget).await;
    assert_eq!(app.query(&operation("LedgerPage"), page.clone()).await, expected);
    clock.advance(Duration::seconds(PROBE_SECS));
    app.reset_stats().await;
    assert_eq!(app.query(&operation("LedgerPage"), page.clone()).await, expected, "only the probe: the page is kept");
    assert_eq!(app.calls_to("trackstar").await, 1);

    clock.advance(Duration::seconds(PROBE_SECS));
    app.reset_stats().await;
    app.inject_faults(json!([{"upstream": "trackstar", "param": PROBE_PARAM, "status": 400}])).await;
    let body = app.query(&operation("LedgerPage"), page).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_BUDGET_EXCEEDED"], "{body}");
    assert_eq!(app.calls_to("trackstar").await, cold, "the failed probe and all reads but the last");
}

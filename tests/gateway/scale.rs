use std::time::Instant;

use ledger_gateway::mock::trackstar::ACCESS_TOKEN;
use ledger_gateway::mock::MockOptions;
use serde_json::{json, Value};

use crate::helpers::{clock, operation, spawn_app_with};

/// A million Trackstar entries: paging costs a few upstream calls a page and
/// never more than one upstream page (1000 entries) in flight, wherever in
/// the ledger the page starts.
#[tokio::test]
async fn a_million_entry_ledger_pages_with_bounded_calls_and_memory() {
    let started = Instant::now();
    let app = spawn_app_with(MockOptions { entries: 1_000_000, seed: 11, ..MockOptions::at(clock()) }, |_| {}).await;
    let data = app.mock.state.trackstar.tenant(ACCESS_TOKEN);
    eprintln!("generated in {:?}", started.elapsed());
    // Expected merged order: entry_date desc, then id.
    let mut rows: Vec<_> = data.by_date.iter().collect();
    rows.sort_by(|a, b| b.entry_date.cmp(&a.entry_date).then_with(|| a.id.cmp(&b.id)));
    let middle = rows[500_000].entry_date;
    let query = operation("LedgerPage");

    for (label, filter, skip) in [
        // Trackstar alone: the other demo sources are not what this measures.
        // Bounded at the newest entry: an open top is "now", and how far now
        // lies above the data (the time of day) would change the calls.
        ("newest", json!({"sources": ["trackstar"], "entryDate": {"lte": rows[0].entry_date.to_rfc3339()}}), 0),
        (
            "from the middle",
            json!({"sources": ["trackstar"], "entryDate": {"lte": middle.to_rfc3339()}}),
            rows.iter().position(|r| r.entry_date <= middle).unwrap(),
        ),
    ] {
        let mut after = Value::Null;
        let mut walked = Vec::new();
        for page in 0..5 {
            app.reset_stats().await;
            let body = app.query(&query, json!({"filter": filter, "first": 100, "after": after})).await;
            assert!(body["errors"].is_null(), "{body}");
            let connection = &body["data"]["ledgerEntries"];
            walked.extend(
                connection["edges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["node"]["nativeId"].as_str().unwrap().to_owned()),
            );
            after = connection["pageInfo"]["endCursor"].clone();
            let requests = app.requests().await;
            eprintln!("{label} page {page}: {} calls", requests.len());
            assert!(requests.len() <= if page == 0 { 4 } else { 2 }, "{label} page {page}: {} calls", requests.len());
            for (_, params) in &requests {
                let limit: usize = params.iter().find(|(k, _)| k == "limit").unwrap().1.parse().unwrap();
                assert!(limit <= 1000);
            }
        }
        let expected: Vec<&str> = rows[skip..skip + 500].iter().map(|r| r.id.as_str()).collect();
        assert_eq!(walked, expected, "{label}");
    }
}

use std::collections::BTreeSet;

use ledger_gateway::mock::trackstar::TenantData;
use serde_json::{json, Value};

use crate::helpers::{anchor, operation, spawn_caching_app, TestApp};

const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";

async fn page_as(app: &TestApp, token: &str) -> Value {
    // A fixed upper bound: the same upstream calls on every repetition.
    let variables = json!({"first": 40, "bins": true, "filter": {"entryDate": {"lte": anchor().to_rfc3339()}}});
    app.query_with_headers(&operation("EntriesWithItems"), variables, &[("x-trackstar-access-token", token)]).await
}

/// Fails unless every entry, item, warehouse and bin in `body` is the
/// tenant's own, with the tenant's names.
fn assert_only_own_data(data: &TenantData, body: &Value) -> BTreeSet<String> {
    assert!(body["errors"].is_null(), "{body}");
    let edges = body["data"]["ledgerEntries"]["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 40);
    let mut ids = BTreeSet::new();
    for node in edges.iter().map(|e| &e["node"]) {
        let native = |field: &str| node[field].as_str().unwrap().trim_start_matches("trackstar:").to_owned();
        let entry = native("id");
        assert!(data.by_id.iter().any(|r| r.id == entry), "{entry} is another caller's entry");
        let item = data.items.iter().find(|i| i.id == native("itemId")).expect("own item");
        assert_eq!(node["item"]["name"], json!(item.name));
        let warehouse = data.warehouses.iter().find(|w| w.id == native("warehouseId")).expect("own warehouse");
        assert_eq!(node["warehouse"]["name"], json!(warehouse.name));
        if let Some((_, bin)) = node["locationId"].as_str().and_then(|l| l.split_once('/')) {
            let bin = warehouse.bins.iter().find(|b| b.id == bin).expect("own bin");
            assert_eq!(node["location"]["name"], json!(bin.name));
        }
        ids.insert(entry);
    }
    ids
}

#[tokio::test]
async fn two_callers_asking_at_once_each_see_only_their_own_data_cold_or_warm() {
    let app = spawn_caching_app().await;
    let (alice, bob) = (app.mock.state.trackstar.tenant(ALICE), app.mock.state.trackstar.tenant(BOB));
    let mut seen = None;
    // Round 0 is cold (ledger, items, locations); later rounds are answered
    // from the cache, which must still keep the two apart.
    for round in 0..3 {
        let (a, b) = tokio::join!(page_as(&app, ALICE), page_as(&app, BOB));
        let (a, b) = (assert_only_own_data(&alice, &a), assert_only_own_data(&bob, &b));
        assert!(a.is_disjoint(&b), "round {round}");
        if let Some(first) = &seen {
            assert_eq!(first, &(a.clone(), b.clone()), "round {round}: answers changed");
        }
        seen = Some((a, b));
        if round == 0 {
            app.reset_stats().await;
        }
    }
    assert_eq!(app.calls_to("trackstar").await, 0, "warm rounds are served from the cache");
}

#[tokio::test]
async fn a_warm_cache_never_answers_for_another_caller() {
    let app = spawn_caching_app().await;
    let alice = app.mock.state.trackstar.tenant(ALICE);
    let item = format!("trackstar:{}", alice.items[0].id);
    let query = "query($id: ID!) { item(id: $id) { name } }";
    let as_alice = [("x-trackstar-access-token", ALICE)];
    let as_bob = [("x-trackstar-access-token", BOB)];

    let body = app.query_with_headers(query, json!({"id": item}), &as_alice).await;
    assert_eq!(body["data"]["item"]["name"], json!(alice.items[0].name));
    app.reset_stats().await;
    let body = app.query_with_headers(query, json!({"id": item}), &as_bob).await;
    assert_eq!(body["data"]["item"], Value::Null, "bob's tenant has no such item: {body}");
    assert_eq!(app.calls_to("trackstar").await, 1, "bob's lookup went upstream with bob's token");

    // The same for cached ledger pages.
    let warm = page_as(&app, ALICE).await;
    app.reset_stats().await;
    let bob_page = page_as(&app, BOB).await;
    let bob_ids = assert_only_own_data(&app.mock.state.trackstar.tenant(BOB), &bob_page);
    assert!(app.calls_to("trackstar").await > 0);
    app.reset_stats().await;
    assert_eq!(page_as(&app, ALICE).await, warm);
    assert_eq!(app.calls_to("trackstar").await, 0);
    assert!(assert_only_own_data(&alice, &warm).is_disjoint(&bob_ids));
}

use std::collections::BTreeSet;
use std::sync::Arc;

use ledger_gateway::config::Config;
use ledger_gateway::mock::trackstar::{Item, Row, TenantData, Warehouse, ACCESS_TOKEN, API_KEY};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::helpers::{anchor, error_codes, operation, small_data, spawn_caching_app, spawn_caching_app_with, TestApp};

const INVENTORY: &str = "/trackstar/wms/inventory";
const WAREHOUSES: &str = "/trackstar/wms/warehouses";

fn tenant(app: &TestApp, token: &str) -> Arc<TenantData> {
    app.mock.state.trackstar.tenant(token)
}

fn nodes(body: &Value) -> Vec<&Value> {
    body["data"]["ledgerEntries"]["edges"].as_array().expect("edges").iter().map(|e| &e["node"]).collect()
}

/// The native id in a global id of source `trackstar` (or any source).
fn native(id: &Value) -> &str {
    id.as_str().expect("id").split_once(':').expect("global id").1
}

/// Query parameters of each upstream request to exactly `path`.
async fn requests_to(app: &TestApp, path: &str) -> Vec<Vec<(String, String)>> {
    app.requests().await.into_iter().filter(|(p, _)| p == path).map(|(_, query)| query).collect()
}

/// Paths of the bin listings requested (`/wms/warehouses/{id}/locations`).
async fn bin_listings(app: &TestApp) -> Vec<String> {
    let prefix = format!("{WAREHOUSES}/");
    app.requests().await.into_iter().map(|(p, _)| p).filter(|p| p.starts_with(&prefix)).collect()
}

/// The ids of an `ids[in]` request.
fn ids_in(query: &[(String, String)]) -> BTreeSet<String> {
    let csv = query.iter().find(|(k, _)| k == "ids[in]").map(|(_, v)| v.as_str()).unwrap_or_default();
    csv.split(',').map(str::to_owned).collect()
}

fn item_by_id<'a>(data: &'a TenantData, id: &str) -> &'a Item {
    data.items.iter().find(|i| i.id == id).unwrap_or_else(|| panic!("{id} is not this tenant's item"))
}

fn warehouse_by_id<'a>(data: &'a TenantData, id: &str) -> &'a Warehouse {
    data.warehouses.iter().find(|w| w.id == id).unwrap_or_else(|| panic!("{id} is not this tenant's warehouse"))
}

/// Ids of `rows` in the merged order: newest first, then by id.
fn merged(mut rows: Vec<&Row>) -> Vec<String> {
    rows.sort_by(|a, b| b.entry_date.cmp(&a.entry_date).then_with(|| a.id.cmp(&b.id)));
    rows.iter().map(|r| format!("trackstar:{}", r.id)).collect()
}

/// A filter with a fixed upper bound: its upstream calls do not depend on
/// the clock, so a repeated page makes exactly the same ones.
fn up_to_anchor() -> Value {
    json!({"entryDate": {"lte": anchor().to_rfc3339()}})
}

fn decimal(value: &Value) -> Decimal {
    value.as_str().expect("decimal string").parse().expect("decimal")
}

#[tokio::test]
async fn a_cold_page_costs_one_batched_call_per_entity_kind() {
    let app = spawn_caching_app().await;
    let data = tenant(&app, ACCESS_TOKEN);
    app.reset_stats().await;
    let body = app.query(&operation("EntriesWithItems"), json!({"first": 100})).await;
    assert!(body["errors"].is_null(), "{body}");
    let nodes = nodes(&body);
    assert_eq!(nodes.len(), 100);

    let items: BTreeSet<String> = nodes.iter().map(|n| native(&n["itemId"]).to_owned()).collect();
    let inventory = requests_to(&app, INVENTORY).await;
    assert_eq!(inventory.len(), 1, "{inventory:?}");
    assert_eq!(ids_in(&inventory[0]), items);
    let warehouses: BTreeSet<String> = nodes.iter().map(|n| native(&n["warehouseId"]).to_owned()).collect();
    let lookups = requests_to(&app, WAREHOUSES).await;
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert_eq!(ids_in(&lookups[0]), warehouses);

    for node in nodes {
        let item = item_by_id(&data, native(&node["itemId"]));
        assert_eq!(node["item"], json!({"id": node["itemId"], "sku": item.sku, "name": item.name}));
        let warehouse = warehouse_by_id(&data, native(&node["warehouseId"]));
        assert_eq!(node["warehouse"], json!({"id": node["warehouseId"], "name": warehouse.name, "kind": "WAREHOUSE"}));
    }
}

#[tokio::test]
async fn the_same_page_warm_costs_no_upstream_call_at_all() {
    let app = spawn_caching_app().await;
    let query = operation("EntriesWithItems");
    let variables = json!({"first": 100, "bins": true, "filter": up_to_anchor()});
    let cold = app.query(&query, variables.clone()).await;
    assert!(cold["errors"].is_null(), "{cold}");
    app.reset_stats().await;
    let warm = app.query(&query, variables).await;
    assert_eq!(warm, cold);
    assert_eq!(app.calls_to("trackstar").await, 0, "{}", app.stats().await);

    // Items and locations stay warm for other queries too.
    let node = nodes(&cold)[0];
    let lookup = "query($item: ID!, $place: ID!) { item(id: $item) { name } location(id: $place) { name } }";
    let body = app.query(lookup, json!({"item": node["itemId"], "place": node["warehouseId"]})).await;
    assert_eq!(body["data"]["item"]["name"], node["item"]["name"]);
    assert_eq!(app.calls_to("trackstar").await, 0);
}

#[tokio::test]
async fn entries_in_bins_resolve_the_bin_with_one_listing_per_warehouse() {
    let app = spawn_caching_app().await;
    let data = tenant(&app, ACCESS_TOKEN);
    app.reset_stats().await;
    let body = app.query(&operation("EntriesWithItems"), json!({"first": 100, "bins": true})).await;
    assert!(body["errors"].is_null(), "{body}");
    let nodes = nodes(&body);
    let mut binned_warehouses = BTreeSet::new();
    for node in &nodes {
        let warehouse = warehouse_by_id(&data, native(&node["warehouseId"]));
        match node["locationId"].as_str() {
            Some(_) => {
                let (parent, bin_id) = native(&node["locationId"]).split_once('/').expect("a bin key");
                assert_eq!(parent, warehouse.id);
                let bin = warehouse.bins.iter().find(|b| b.id == bin_id).expect("the warehouse's bin");
                assert_eq!(node["location"], json!({"id": node["locationId"], "name": bin.name, "kind": "BIN"}));
                binned_warehouses.insert(format!("{WAREHOUSES}/{}/locations", warehouse.id));
            }
            // No bin: the entry happened in the warehouse as a whole.
            None => assert_eq!(node["location"], node["warehouse"]),
        }
    }
    assert!(!binned_warehouses.is_empty() && nodes.iter().any(|n| n["locationId"].is_null()));
    let listings = bin_listings(&app).await;
    assert_eq!(listings.len(), binned_warehouses.len(), "one listing per warehouse: {listings:?}");
    assert_eq!(listings.into_iter().collect::<BTreeSet<_>>(), binned_warehouses);
    assert_eq!(requests_to(&app, WAREHOUSES).await.len(), 1, "warehouses of every entry, in one lookup");
    assert_eq!(requests_to(&app, INVENTORY).await.len(), 1);
}

#[tokio::test]
async fn lookups_beyond_the_batch_limit_split_into_calls_of_at_most_100() {
    let app = spawn_caching_app().await;
    let data = tenant(&app, ACCESS_TOKEN);
    let ids: Vec<String> = data.items.iter().take(150).map(|i| format!("trackstar:{}", i.id)).collect();
    app.reset_stats().await;
    let body = app.query("query($ids: [ID!]!) { items(ids: $ids) { id name } }", json!({"ids": ids})).await;
    assert!(body["errors"].is_null(), "{body}");
    let found: Vec<&Value> = body["data"]["items"].as_array().unwrap().iter().map(|i| &i["id"]).collect();
    assert_eq!(found, ids.iter().map(|id| json!(id)).collect::<Vec<_>>().iter().collect::<Vec<_>>());
    let calls = requests_to(&app, INVENTORY).await;
    let mut sizes: Vec<usize> = calls.iter().map(|q| ids_in(q).len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 100]);
    let asked: BTreeSet<String> = calls.iter().flat_map(|q| ids_in(q)).collect();
    assert_eq!(asked, ids.iter().map(|id| id["trackstar:".len()..].to_owned()).collect());
}

#[tokio::test]
async fn items_by_id_keep_their_order_with_null_for_unknown_ids() {
    let app = spawn_caching_app().await;
    let data = tenant(&app, ACCESS_TOKEN);
    let (a, b) = (&data.items[0], &data.items[1]);
    let ids =
        json!([format!("trackstar:{}", a.id), "trackstar:inv_nope", format!("trackstar:{}", b.id), "elsewhere:1"]);
    let query = "query($ids: [ID!]!) { items(ids: $ids) { sku } }";
    let body = app.query(query, json!({"ids": ids})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["items"], json!([{"sku": a.sku}, null, {"sku": b.sku}, null]));

    app.reset_stats().await;
    let body = app.query(query, json!({"ids": ["trackstar:x", "no-colon"]})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{body}");
    let too_many: Vec<String> = (0..501).map(|i| format!("trackstar:{i}")).collect();
    let body = app.query(query, json!({"ids": too_many})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(app.calls_to("trackstar").await, 0);
}

#[tokio::test]
async fn an_item_shows_exact_prices_stock_per_place_and_its_own_entries() {
    let app = spawn_caching_app().await;
    let data = tenant(&app, ACCESS_TOKEN);
    let index = data.by_date[10].item;
    let item = &data.items[index];
    let id = format!("trackstar:{}", item.id);
    let body = app.query(&operation("ItemDetails"), json!({"id": id, "first": 3})).await;
    assert!(body["errors"].is_null(), "{body}");
    let found = &body["data"]["item"];
    assert_eq!(
        (&found["id"], &found["source"], &found["sourceKind"]),
        (&json!(id), &json!("trackstar"), &json!("TRACKSTAR"))
    );
    assert_eq!((&found["sku"], &found["name"], &found["active"]), (&json!(item.sku), &json!(item.name), &json!(true)));
    assert_eq!(decimal(&found["cost"]["amount"]), Decimal::new(item.unit_cost_cents, 2));
    assert_eq!(found["cost"]["currency"], Value::Null, "Trackstar states no currency");
    assert_eq!(found["price"], Value::Null);
    assert_eq!(decimal(&found["onHand"]), Decimal::from(item.onhand));
    assert_eq!(decimal(&found["reserved"]), Decimal::from(item.committed));
    assert_eq!(decimal(&found["available"]), Decimal::from(item.onhand - item.committed));

    let levels = found["stockLevels"].as_array().unwrap();
    assert_eq!(levels.len(), item.stock.len());
    for (level, stock) in levels.iter().zip(&item.stock) {
        let warehouse = &data.warehouses[stock.warehouse];
        let expected = match stock.bin {
            Some(bin) => json!({
                "id": format!("trackstar:{}/{}", warehouse.id, warehouse.bins[bin].id),
                "name": warehouse.bins[bin].name, "kind": "BIN",
                "parent": {"id": format!("trackstar:{}", warehouse.id), "name": warehouse.name},
            }),
            None => {
                json!({"id": format!("trackstar:{}", warehouse.id), "name": warehouse.name, "kind": "WAREHOUSE", "parent": null})
            }
        };
        assert_eq!(level["location"], expected);
        assert_eq!(level["locationId"], expected["id"]);
        assert_eq!(decimal(&level["onHand"]), Decimal::from(stock.quantity));
    }

    let own: Vec<&Row> = data.by_date.iter().map(|r| r.as_ref()).filter(|r| r.item == index).collect();
    let mut want = merged(own);
    want.truncate(3);
    let got: Vec<&Value> =
        found["ledgerEntries"]["edges"].as_array().unwrap().iter().map(|e| &e["node"]["id"]).collect();
    assert_eq!(got, want.iter().map(|w| json!(w)).collect::<Vec<_>>().iter().collect::<Vec<_>>());
}

#[tokio::test]
async fn unknown_items_and_locations_are_null_and_malformed_ids_bad_input() {
    let app = spawn_caching_app().await;
    let query = "query($id: ID!) { item(id: $id) { id } location(id: $id) { id } }";
    for unknown in ["trackstar:inv_nope", "trackstar:wh_nope/loc_nope", "unconfigured:1"] {
        let body = app.query(query, json!({"id": unknown})).await;
        assert!(body["errors"].is_null(), "{unknown}: {body}");
        assert_eq!(body["data"], json!({"item": null, "location": null}), "{unknown}");
    }
    let body = app.query(query, json!({"id": "no-colon"})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT", "BAD_USER_INPUT"], "{body}");
}

#[tokio::test]
async fn a_bin_resolves_inside_its_warehouse() {
    let app = spawn_caching_app().await;
    let data = tenant(&app, ACCESS_TOKEN);
    let warehouse = &data.warehouses[2];
    let bin = &warehouse.bins[4];
    let query = "query($w: ID!, $b: ID!) {
        w: location(id: $w) { id name code kind address { city } parent { id } }
        b: location(id: $b) { id nativeId name kind address { city } parent { id name kind } } }";
    let variables =
        json!({"w": format!("trackstar:{}", warehouse.id), "b": format!("trackstar:{}/{}", warehouse.id, bin.id)});
    let body = app.query(query, variables.clone()).await;
    assert!(body["errors"].is_null(), "{body}");
    let city = warehouse.name.split_whitespace().next().unwrap();
    assert_eq!(body["data"]["w"]["name"], json!(warehouse.name));
    assert_eq!(body["data"]["w"]["kind"], "WAREHOUSE");
    assert_eq!(body["data"]["w"]["address"], json!({"city": city}));
    assert!(body["data"]["w"]["code"].is_string());
    assert_eq!(body["data"]["w"]["parent"], Value::Null);
    assert_eq!(
        body["data"]["b"],
        json!({
            "id": variables["b"], "nativeId": format!("{}/{}", warehouse.id, bin.id), "name": bin.name,
            "kind": "BIN", "address": null,
            "parent": {"id": variables["w"], "name": warehouse.name, "kind": "WAREHOUSE"},
        })
    );
}

#[tokio::test]
async fn a_locations_stock_lists_the_inventory_once_and_includes_its_bins() {
    let app = spawn_caching_app().await;
    let data = tenant(&app, ACCESS_TOKEN);
    let (index, warehouse) = (3, &data.warehouses[3]);
    let mut want: Vec<(String, String, Decimal)> = Vec::new();
    for item in &data.items {
        for stock in item.stock.iter().filter(|s| s.warehouse == index) {
            let place = match stock.bin {
                Some(bin) => format!("trackstar:{}/{}", warehouse.id, warehouse.bins[bin].id),
                None => format!("trackstar:{}", warehouse.id),
            };
            want.push((format!("trackstar:{}", item.id), place, Decimal::from(stock.quantity)));
        }
    }
    want.sort();
    assert!(!want.is_empty());
    let query = "query($id: ID!) { location(id: $id) { stockLevels { itemId locationId onHand item { sku } } } }";
    app.reset_stats().await;
    let body = app.query(query, json!({"id": format!("trackstar:{}", warehouse.id)})).await;
    assert!(body["errors"].is_null(), "{body}");
    let mut got: Vec<(String, String, Decimal)> = body["data"]["location"]["stockLevels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["itemId"].as_str().unwrap().to_owned(),
                l["locationId"].as_str().unwrap().to_owned(),
                decimal(&l["onHand"]),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    // One listing of the whole inventory (300 items < 1000 a page), then one
    // batched lookup of the levels' items, and the warehouse itself.
    let calls = requests_to(&app, INVENTORY).await;
    let (listings, lookups): (Vec<_>, Vec<_>) = calls.iter().partition(|q| ids_in(q).iter().all(String::is_empty));
    assert_eq!((listings.len(), lookups.len()), (1, 1), "{calls:?}");
    assert_eq!(ids_in(lookups[0]), want.iter().map(|(item, _, _)| item["trackstar:".len()..].to_owned()).collect());
    assert_eq!(requests_to(&app, WAREHOUSES).await.len(), 1);
    app.reset_stats().await;
    let again = app.query(query, json!({"id": format!("trackstar:{}", warehouse.id)})).await;
    assert_eq!(again, body);
    assert_eq!(app.calls_to("trackstar").await, 0);
}

#[tokio::test]
async fn item_and_location_entries_are_the_ledger_filtered_by_them() {
    let app = spawn_caching_app().await;
    let data = tenant(&app, ACCESS_TOKEN);
    let (index, warehouse) = (5, &data.warehouses[5]);
    let query = "query($id: ID!, $filter: LedgerEntryFilter) {
        location(id: $id) { ledgerEntries(first: 500, filter: $filter) { edges { node { id warehouseId } } } } }";
    let id = format!("trackstar:{}", warehouse.id);
    let body = app.query(query, json!({"id": id})).await;
    assert!(body["errors"].is_null(), "{body}");
    let got: Vec<&str> = body["data"]["location"]["ledgerEntries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, merged(data.by_date.iter().map(|r| r.as_ref()).filter(|r| r.warehouse == index).collect()));
    assert!(!got.is_empty());

    // A filter naming only other locations leaves nothing, without a call.
    app.reset_stats().await;
    let body = app.query(query, json!({"id": id, "filter": {"locationIds": ["trackstar:elsewhere"]}})).await;
    assert_eq!(body["data"]["location"]["ledgerEntries"]["edges"], json!([]), "{body}");
    assert_eq!(requests_to(&app, "/trackstar/wms/inventory/ledger").await.len(), 0);
}

#[tokio::test]
async fn federation_entities_batch_through_the_same_loaders() {
    let app = spawn_caching_app().await;
    let data = tenant(&app, ACCESS_TOKEN);
    let mut representations: Vec<Value> = data
        .items
        .iter()
        .take(50)
        .map(|i| json!({"__typename": "Item", "id": format!("trackstar:{}", i.id)}))
        .collect();
    representations.extend(
        data.warehouses.iter().take(3).map(|w| json!({"__typename": "Location", "id": format!("trackstar:{}", w.id)})),
    );
    let bin = format!("trackstar:{}/{}", data.warehouses[7].id, data.warehouses[7].bins[0].id);
    representations.push(json!({"__typename": "Location", "id": bin}));
    app.reset_stats().await;
    let query = "query($r: [_Any!]!) { _entities(representations: $r) {
        __typename ... on Item { id name } ... on Location { id name } } }";
    let body = app.query(query, json!({"r": representations})).await;
    assert!(body["errors"].is_null(), "{body}");
    let entities = body["data"]["_entities"].as_array().unwrap();
    assert_eq!(entities.len(), 54);
    assert_eq!(entities[0], json!({"__typename": "Item", "id": representations[0]["id"], "name": data.items[0].name}));
    assert_eq!(entities[50]["name"], json!(data.warehouses[0].name));
    assert_eq!(entities[53]["name"], json!(data.warehouses[7].bins[0].name));
    let inventory = requests_to(&app, INVENTORY).await;
    assert_eq!(inventory.len(), 1);
    assert_eq!(ids_in(&inventory[0]).len(), 50);
    assert_eq!(requests_to(&app, WAREHOUSES).await.len(), 1);
    assert_eq!(bin_listings(&app).await.len(), 1);
}

/// A second Trackstar source `trackstar-eu` on the same mock, as tenant
/// `token` with API key `key`.
fn with_eu_source(key: &'static str, token: &'static str) -> impl FnOnce(&mut Config) {
    move |config| {
        let mut eu = config.sources["trackstar"].clone();
        eu.credentials.insert("api_key".into(), key.into());
        eu.credentials.insert("access_token".into(), token.into());
        eu.forward.clear();
        config.sources.insert("trackstar-eu".into(), eu);
    }
}

#[tokio::test]
async fn each_source_gets_its_own_batched_lookup_for_a_page() {
    let app = spawn_caching_app_with(small_data(), with_eu_source(API_KEY, "eu-token")).await;
    let (home, eu) = (tenant(&app, ACCESS_TOKEN), tenant(&app, "eu-token"));
    app.reset_stats().await;
    let body = app.query(&operation("EntriesWithItems"), json!({"first": 100})).await;
    assert!(body["errors"].is_null(), "{body}");
    let nodes = nodes(&body);
    let sources: BTreeSet<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap().split(':').next().unwrap()).collect();
    assert_eq!(sources, BTreeSet::from(["trackstar", "trackstar-eu"]));
    for node in &nodes {
        let data = if node["id"].as_str().unwrap().starts_with("trackstar-eu:") { &eu } else { &home };
        assert_eq!(node["item"]["name"], json!(item_by_id(data, native(&node["itemId"])).name));
        assert_eq!(node["warehouse"]["name"], json!(warehouse_by_id(data, native(&node["warehouseId"])).name));
    }
    let inventory = requests_to(&app, INVENTORY).await;
    assert_eq!(inventory.len(), 2, "one item lookup per source");
    assert_eq!(requests_to(&app, WAREHOUSES).await.len(), 2, "one warehouse lookup per source");
}

#[tokio::test]
async fn a_failing_source_leaves_the_other_sources_items_resolved() {
    let app = spawn_caching_app_with(small_data(), with_eu_source("wrong-key", "eu-token")).await;
    let data = tenant(&app, ACCESS_TOKEN);
    let ids = json!([
        format!("trackstar:{}", data.items[0].id),
        "trackstar-eu:inv_x",
        format!("trackstar:{}", data.items[1].id)
    ]);
    let body = app.query("query($ids: [ID!]!) { items(ids: $ids) { name } }", json!({"ids": ids})).await;
    assert_eq!(body["data"]["items"], json!([{"name": data.items[0].name}, null, {"name": data.items[1].name}]));
    assert_eq!(error_codes(&body), ["UPSTREAM_UNAUTHORIZED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], "trackstar-eu");
    assert_eq!(body["errors"][0]["path"], json!(["items", 1]));
    assert!(!body.to_string().contains("wrong-key"));

    let body = app.query("{ item(id: \"trackstar-eu:inv_x\") { name } }", json!({})).await;
    assert_eq!(body["data"]["item"], Value::Null);
    assert_eq!(body["errors"][0]["extensions"]["source"], "trackstar-eu");
    assert_eq!(body["errors"][0]["path"], json!(["item"]));

    // A page: the failing source's entries are missing, the others' items resolve.
    let body = app.query(&operation("EntriesWithItems"), json!({"first": 20})).await;
    assert_eq!(error_codes(&body), ["UPSTREAM_UNAUTHORIZED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["source"], "trackstar-eu");
    assert_eq!(body["errors"][0]["path"], json!(["ledgerEntries"]));
    let nodes = nodes(&body);
    assert_eq!(nodes.len(), 20);
    assert!(nodes.iter().all(|n| n["item"]["name"] == json!(item_by_id(&data, native(&n["itemId"])).name)));
}

#[tokio::test]
async fn a_failing_item_lookup_names_its_source_and_each_entrys_path_and_is_not_cached() {
    let app = spawn_caching_app().await;
    let data = tenant(&app, ACCESS_TOKEN);
    app.mock.state.trackstar.fail("inventory", Some(StatusCode::FORBIDDEN));
    let body = app.query(&operation("EntriesWithItems"), json!({"first": 3})).await;
    let failed = nodes(&body);
    assert_eq!(failed.len(), 3, "{body}");
    assert!(failed.iter().all(|n| n["item"].is_null() && n["warehouse"]["name"].is_string()), "{body}");
    assert_eq!(error_codes(&body), ["UPSTREAM_FORBIDDEN"; 3], "{body}");
    let mut paths: Vec<Value> = body["errors"].as_array().unwrap().iter().map(|e| e["path"].clone()).collect();
    paths.sort_by_key(|p| p[2].as_u64());
    assert_eq!(paths, (0..3).map(|i| json!(["ledgerEntries", "edges", i, "node", "item"])).collect::<Vec<_>>());
    assert!(body["errors"].as_array().unwrap().iter().all(|e| e["extensions"]["source"] == "trackstar"));

    app.mock.state.trackstar.fail("inventory", None);
    app.reset_stats().await;
    let body = app.query(&operation("EntriesWithItems"), json!({"first": 3})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(nodes(&body).iter().all(|n| n["item"]["name"] == json!(item_by_id(&data, native(&n["itemId"])).name)));
    assert_eq!(requests_to(&app, INVENTORY).await.len(), 1, "the failure was not cached");
}

/// Every source's items resolve through the same loaders: Business Central
/// in batches of its declared limit, BigLedger (no batch lookup) one GET per
/// distinct item; warm, neither costs an item call.
#[tokio::test]
async fn each_sources_items_cost_one_call_per_batch_limit_cold_and_none_warm() {
    let app = crate::helpers::spawn_app().await;
    let query = "query($filter: LedgerEntryFilter) { ledgerEntries(first: 60, filter: $filter) { edges { node { itemId item { id name } } } } }";
    let is_bc_items = |path: &str| path.starts_with("/business-central/") && path.ends_with("/items");
    let is_bigledger_item = |path: &str| path.starts_with("/bigledger/") && path.contains("/items/");
    for (source, is_item_call, batch) in [
        ("business-central", &is_bc_items as &dyn Fn(&str) -> bool, 50),
        ("bigledger", &is_bigledger_item as &dyn Fn(&str) -> bool, 1),
    ] {
        app.reset_stats().await;
        let body = app.query(query, json!({"filter": {"sources": [source]}})).await;
        assert!(body["errors"].is_null(), "{source}: {body}");
        let nodes = nodes(&body);
        let distinct: BTreeSet<&str> = nodes.iter().filter_map(|n| n["itemId"].as_str()).collect();
        assert!(!distinct.is_empty(), "{source}: entries with items");
        for node in nodes.iter().filter(|n| n["itemId"].is_string()) {
            assert_eq!(node["item"]["id"], node["itemId"], "{source}");
            assert!(node["item"]["name"].is_string(), "{source}: {node}");
        }
        let cold = app.requests().await.into_iter().filter(|(p, _)| is_item_call(p)).count();
        assert_eq!(cold, distinct.len().div_ceil(batch), "{source}: cold item calls");
        app.reset_stats().await;
        let body = app.query(query, json!({"filter": {"sources": [source]}})).await;
        assert!(body["errors"].is_null(), "{source}: {body}");
        let warm = app.requests().await.into_iter().filter(|(p, _)| is_item_call(p)).count();
        assert_eq!(warm, 0, "{source}: warm item calls");
    }
}

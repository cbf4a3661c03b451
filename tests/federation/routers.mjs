// ledger-gateway behind a real federation router, next to a second subgraph
// (./planning.mjs) that extends `Item` and references `LedgerEntry` by key.
// `routerSuite` defines the same tests for every router: each router's test
// file starts its own ledger-gateway (cold caches), the planning subgraph
// over real ids read from it, the supergraph composed by @apollo/composition,
// and the router on that supergraph, all on 127.0.0.1. The mock upstreams'
// exact call counts (`/__mock/stats`) show which upstream calls the
// router's entity fetches cost.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';
import { STARTUP_TIMEOUT_MS, graphql, recentLog, startGateway, stopGateway } from '../support/gateway.mjs';
import { mockRequests, upstreamCalls } from '../support/mock.mjs';
import { PLANNING, PLANNING_SDL, plansFor, startPlanning } from './planning.mjs';

const LEDGER = 'ledger';

/** How many of each source's newest entries the plans are based on. */
const SAMPLE = { trackstar: 8, 'business-central': 4, bigledger: 4 };

const TRACKSTAR_LEDGER = 'GET /trackstar/wms/inventory/ledger';
const TRACKSTAR_ITEMS = 'GET /trackstar/wms/inventory';
const BC_LEDGER = 'GET /business-central/v2.0/{tenant}/{env}/api/v2.0/{company}/itemLedgerEntries';
const BC_ITEMS = 'GET /business-central/v2.0/{tenant}/{env}/api/v2.0/{company}/items';
const BIGLEDGER_ITEM = 'GET /bigledger/v1/items/{id}';

// Ledger responses and items uncached, so that each test's counts are the
// calls its own request needs, whatever ran before it.
const UNCACHED = { LEDGER_GATEWAY__CACHE__LEDGER_TTL_SECS: '0', LEDGER_GATEWAY__CACHE__ITEM_TTL_SECS: '0' };

const ENTRY_FIELDS = 'id source quantity entryDate sku';

function noErrors(body, what) {
  assert.equal(body.errors, undefined, `${what}: ${JSON.stringify(body.errors)}\n${recentLog()}`);
  return body.data;
}

/** The newest entries of each sampled source. */
async function sampleEntries(url) {
  const entries = [];
  for (const [source, first] of Object.entries(SAMPLE)) {
    const data = noErrors(
      await graphql(url, `query($s: [String!]) { ledgerEntries(first: ${first}, filter: { sources: $s }) { nodes { id source itemId } } }`, {
        s: [source],
      }),
      `sampling ${source}`,
    );
    assert.equal(data.ledgerEntries.nodes.length, first, `the demo serves ${first} ${source} entries`);
    entries.push(...data.ledgerEntries.nodes);
  }
  return entries;
}

function supergraph(ledgerUrl, ledgerSdl, planningUrl) {
  const result = composeServices([
    { name: LEDGER, url: `${ledgerUrl}/graphql`, typeDefs: parse(ledgerSdl) },
    { name: PLANNING, url: planningUrl, typeDefs: parse(PLANNING_SDL) },
  ]);
  const errors = (result.errors ?? []).map((e) => `${e.extensions?.code}: ${e.message}`);
  assert.deepEqual(errors, [], 'the ledger and planning subgraphs compose');
  return result.supergraphSdl;
}

function countBy(values) {
  const counts = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/**
 * The tests for one router. `startRouter(supergraphSdl)` resolves to
 * `{ url, stop }`, `url` answering GraphQL at `${url}/graphql`.
 */
export function routerSuite(routerName, startRouter) {
  let ledger; // the running ledger-gateway
  let planning; // the running planning subgraph
  let router; // the running router
  let plans;

  before(
    async () => {
      ledger = await startGateway({ env: UNCACHED });
      const sdl = noErrors(await graphql(ledger, '{ _service { sdl } }'), '_service')._service.sdl;
      plans = plansFor(await sampleEntries(ledger));
      planning = await startPlanning(plans);
      router = await startRouter(supergraph(ledger, sdl, planning.url));
    },
    { timeout: STARTUP_TIMEOUT_MS + 120_000 },
  );

  after(
    async () => {
      await router?.stop();
      await planning?.stop();
      await stopGateway();
    },
    { timeout: 30_000 },
  );

  test(`${routerName}: planned items join the ledger's item data, one batched item fetch per source`, async () => {
    const { result, stats } = await upstreamCalls(() =>
      graphql(router.url, '{ replenishmentPlans { id item { id sku name onHand reorderPoint reorderQuantity } } }'),
    );
    const routed = noErrors(result, 'through the router').replenishmentPlans;

    const bySource = countBy(plans.map((plan) => plan.itemId.split(':')[0]));
    // Trackstar and Business Central look items up in batches; BigLedger has no batch endpoint.
    const expected = {
      [TRACKSTAR_ITEMS]: 1,
      [BC_ITEMS]: 1,
      [BIGLEDGER_ITEM]: bySource.bigledger,
    };
    assert.deepEqual(stats.by_route, expected, `${plans.length} item representations from ${JSON.stringify(bySource)}`);

    const direct = noErrors(
      await graphql(ledger, 'query($ids: [ID!]!) { items(ids: $ids) { id sku name onHand } }', { ids: plans.map((p) => p.itemId) }),
      'items(ids:) from the ledger',
    ).items;
    assert.deepEqual(
      routed,
      plans.map((plan, i) => ({
        id: plan.id,
        item: { ...direct[i], reorderPoint: plan.reorderPoint, reorderQuantity: plan.reorderQuantity },
      })),
    );
    assert.ok(direct.every((item) => item?.name), 'every planned item is known to the ledger');
  });

  test(`${routerName}: the ledger entries plans point at cost what ledgerEntries(filter: { ids }) costs, one call per source`, async () => {
    const ids = plans.map((plan) => plan.entryId);
    const direct = await upstreamCalls(() =>
      graphql(ledger, `query($ids: [ID!]) { ledgerEntries(first: 100, filter: { ids: $ids }) { nodes { ${ENTRY_FIELDS} } } }`, { ids }),
    );
    const routed = await upstreamCalls(() => graphql(router.url, `{ replenishmentPlans { id basedOn { ${ENTRY_FIELDS} } } }`));
    const requests = await mockRequests();

    const entries = new Map(noErrors(direct.result, 'ledgerEntries(filter: { ids })').ledgerEntries.nodes.map((e) => [e.id, e]));
    assert.equal(entries.size, ids.length, 'the ledger finds every sampled entry by id');
    assert.deepEqual(
      noErrors(routed.result, 'through the router').replenishmentPlans,
      plans.map((plan) => ({ id: plan.id, basedOn: entries.get(plan.entryId) })),
    );

    // The target of batched entity fetches: N representations of one source
    // cost one upstream call for that source, as `ledgerEntries(filter: { ids })` does.
    const sources = Object.keys(countBy(ids.map((id) => id.split(':')[0])));
    assert.deepEqual(
      routed.stats.by_upstream,
      Object.fromEntries(sources.map((source) => [source, 1])),
      `${ids.length} LedgerEntry representations; calls by route: ${JSON.stringify(routed.stats.by_route)}; ledgerEntries(filter: { ids }): ${JSON.stringify(direct.stats.by_route)}`,
    );
    assert.deepEqual(routed.stats.by_route, direct.stats.by_route, 'the same calls as ledgerEntries(filter: { ids })');
    assert.equal(routed.stats.by_route[TRACKSTAR_LEDGER], 1);
    assert.equal(routed.stats.by_route[BC_LEDGER], 1);
    const trackstarIds = requests
      .filter((r) => r.path === '/trackstar/wms/inventory/ledger')
      .flatMap((r) => r.query.filter(([name]) => name === 'ids[in]').flatMap(([, value]) => value.split(',')));
    assert.deepEqual(
      trackstarIds.sort(),
      ids.filter((id) => id.startsWith('trackstar:')).map((id) => id.slice('trackstar:'.length)).sort(),
      'one Trackstar call asks for every Trackstar entry',
    );
  });

  test(`${routerName}: a ledger page gets the planning subgraph's fields on its items in one entity fetch`, async () => {
    const page = noErrors(
      await graphql(ledger, '{ ledgerEntries(first: 20) { nodes { id quantity item { id name } } } }'),
      'the page from the ledger',
    ).ledgerEntries.nodes;
    const before = planning.requests.length;
    const routed = noErrors(
      await graphql(router.url, '{ ledgerEntries(first: 20) { nodes { id quantity item { id name reorderPoint reorderQuantity } } } }'),
      'through the router',
    ).ledgerEntries.nodes;

    const byItem = new Map(plans.map((plan) => [plan.itemId, plan]));
    const expected = page.map((entry) => ({
      ...entry,
      item: entry.item && {
        ...entry.item,
        reorderPoint: byItem.get(entry.item.id)?.reorderPoint ?? null,
        reorderQuantity: byItem.get(entry.item.id)?.reorderQuantity ?? null,
      },
    }));
    assert.deepEqual(routed, expected);
    assert.ok(expected.some((e) => e.item?.reorderPoint != null), 'some items on the page are planned');
    assert.ok(expected.some((e) => e.item && e.item.reorderPoint == null), 'some items on the page are not');

    const fetches = planning.requests.slice(before).filter((r) => r.query.includes('_entities'));
    assert.equal(fetches.length, 1, `the router fetched planning entities ${fetches.length} times`);
    const asked = Object.values(fetches[0].variables).flat().map((rep) => rep.id);
    const onPage = [...new Set(page.filter((e) => e.item).map((e) => e.item.id))];
    assert.deepEqual([...new Set(asked)].sort(), onPage.sort(), 'the entity fetch names the page items');
  });
}

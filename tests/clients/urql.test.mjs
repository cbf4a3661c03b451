// urql (@urql/core with Graphcache, its normalized cache, and the persisted
// exchange) in Node against the real gateway binary (../support/gateway.mjs):
// the README's operations read back from the cache, paging through
// Graphcache's `relayPagination`, a failing item lookup as `item: null` plus
// its error, and Automatic Persisted Queries on the wire. Every behaviour
// test runs twice: with the fetch exchange alone, and with the persisted
// exchange in front of it (hashed queries sent as GET, urql's default).
//
// Run with tests/clients/run.sh, or: node --test tests/clients/*.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, fetchExchange, gql } from '@urql/core';
import { cacheExchange } from '@urql/exchange-graphcache';
import { relayPagination } from '@urql/exchange-graphcache/extras';
import { persistedExchange } from '@urql/exchange-persisted';
import { STARTUP_TIMEOUT_MS, graphql, recentLog, startGateway, stopGateway } from '../support/gateway.mjs';
import { installFaults, resetMock } from '../support/mock.mjs';
import {
  LEDGER_PAGE,
  answers,
  assertHashAloneRuns,
  assertMissThenRegister,
  directWalk,
  TRACKSTAR_ITEMS_DOWN,
  TWO_ITEMS,
  operations,
  recordingFetch,
  sampleIds,
  sha256,
  withoutTypename,
} from './operations.mjs';

// Items uncached, so that the failing lookup reaches its (faulted) source.
const UNCACHED_ITEMS = { LEDGER_GATEWAY__CACHE__ITEM_TTL_SECS: '0' };

// Types without an `id`: Graphcache keeps them inside their parent.
const EMBEDDED = [
  'Address',
  'DocumentReference',
  'LedgerAmounts',
  'LedgerEntryConnection',
  'LedgerEntryEdge',
  'Money',
  'PageInfo',
  'StockLevel',
  '__Schema',
  '__Type',
  '__Field',
  '__InputValue',
  '__EnumValue',
  '__Directive',
];

let url;
let ids;

before(
  async () => {
    url = await startGateway({ env: UNCACHED_ITEMS });
    ids = await sampleIds(url);
  },
  { timeout: STARTUP_TIMEOUT_MS + 30_000 },
);

after(stopGateway, { timeout: 15_000 });

function urql({ persisted }) {
  const recorder = recordingFetch();
  const cache = cacheExchange({
    keys: Object.fromEntries(EMBEDDED.map((type) => [type, () => null])),
    resolvers: { Query: { ledgerEntries: relayPagination() } },
  });
  const hashing = persisted ? [persistedExchange({ generateHash: async (query) => sha256(query) })] : [];
  const client = new Client({ url: `${url}/graphql`, exchanges: [cache, ...hashing, fetchExchange], fetch: recorder.fetch });
  return { client, exchanges: recorder.exchanges };
}

/**
 * `value` as plain JSON without `__typename`: Graphcache builds results on
 * null-prototype objects and leaves out some of the `__typename` fields it
 * added to the document (those the operation did not select).
 */
function plain(value) {
  return withoutTypename(JSON.parse(JSON.stringify(value)));
}

async function direct(document, variables) {
  const body = await graphql(url, document, variables);
  assert.equal(body.errors, undefined, `direct request: ${JSON.stringify(body.errors)}\n${recentLog()}`);
  return body.data;
}

for (const persisted of [false, true]) {
  const label = persisted ? 'urql, persisted queries' : 'urql';

  test(`${label}: the README's operations, read back from Graphcache`, async (t) => {
    for (const op of operations(ids)) {
      await t.test(op.name, async () => {
        const { client, exchanges } = urql({ persisted });
        const query = gql(op.document);
        const result = await client.query(query, op.variables).toPromise();
        assert.equal(result.error, undefined, `${result.error}`);
        const [received, ...more] = answers(exchanges);
        assert.deepEqual(more, [], 'one answer with data');
        assert.deepEqual(plain(result.data), plain(received), 'the result is what the gateway sent');
        const sent = exchanges.length;
        const cached = await client.query(query, op.variables, { requestPolicy: 'cache-only' }).toPromise();
        assert.deepEqual(cached.data, result.data, 'the normalized cache answers the operation alone');
        assert.equal(exchanges.length, sent, 'without a request');
      });
    }
  });

  test(`${label}: relayPagination pages the ledger into one connection, nothing lost or repeated`, async () => {
    const walked = await directWalk(url, 3, 4);

    const { client, exchanges } = urql({ persisted });
    const query = gql(LEDGER_PAGE);
    let merged;
    let after;
    for (let i = 0; i < 3; i++) {
      const result = await client.query(query, { first: 4, after }).toPromise();
      assert.equal(result.error, undefined, `${result.error}`);
      merged = plain(result.data.ledgerEntries);
      after = merged.pageInfo.endCursor;
    }
    const pages = answers(exchanges).map((data) => plain(data.ledgerEntries));
    assert.equal(pages.length, 3);
    assert.deepEqual(merged.edges, pages.flatMap((page) => page.edges), 'every page\'s edges, in order');
    assert.deepEqual(merged.pageInfo, pages.at(-1).pageInfo);
    assert.deepEqual(merged.edges.map((e) => e.node.id), walked, 'the entries of a direct walk, none lost or repeated');
  });

  test(`${label}: a failing item lookup is item: null with its error`, async () => {
    const { client } = urql({ persisted });
    const query = gql(TWO_ITEMS);
    const variables = { failing: ids.trackstarItem, working: ids.bcItem };
    const working = (await direct('query($id: ID!) { item(id: $id) { id sku name } }', { id: ids.bcItem })).item;

    await installFaults(TRACKSTAR_ITEMS_DOWN);
    let result;
    try {
      result = await client.query(query, variables).toPromise();
    } finally {
      await resetMock();
    }

    assert.ok(Object.hasOwn(result.data, 'failing'), 'the failed field is in the data');
    assert.deepEqual(withoutTypename(result.data), { failing: null, working });
    assert.deepEqual(
      result.error?.graphQLErrors.map((e) => ({ path: e.path, code: e.extensions?.code, source: e.extensions?.source })),
      [{ path: ['failing'], code: 'UPSTREAM_UNAVAILABLE', source: 'trackstar' }],
    );
  });
}

test('urql, persisted queries: an unknown hash is PersistedQueryNotFound, the query registers it, then the hash alone runs it', async () => {
  const document = 'query UrqlPersistedProbe { ledgerEntries(first: 2) { nodes { id sku } } }';
  const expected = withoutTypename(await direct(document, {}));

  const first = urql({ persisted: true });
  const result = await first.client.query(gql(document), {}).toPromise();
  assert.equal(result.error, undefined, `${result.error}`);
  assert.deepEqual(withoutTypename(result.data), expected);
  const hash = assertMissThenRegister(first.exchanges);

  const second = urql({ persisted: true });
  const again = await second.client.query(gql(document), {}).toPromise();
  assert.deepEqual(withoutTypename(again.data), expected);
  assertHashAloneRuns(second.exchanges, hash);
});

// Apollo Client (InMemoryCache, HttpLink, and the persisted queries link) in
// Node against the real gateway binary (../support/gateway.mjs): the
// README's operations read back from the normalized cache, paging with
// `fetchMore` and `relayStylePagination`, a failing item lookup as
// `item: null` plus its error, and Automatic Persisted Queries on the wire.
// Every behaviour test runs twice: with a plain HttpLink, and with the
// persisted queries link in front of it (hashed queries sent as GET).
//
// Run with tests/clients/run.sh, or: node --test tests/clients/*.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApolloClient, CombinedGraphQLErrors, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { relayStylePagination } from '@apollo/client/utilities';
import { filter, firstValueFrom } from 'rxjs';
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

function apollo({ persisted }) {
  const recorder = recordingFetch();
  const http = new HttpLink({ uri: `${url}/graphql`, fetch: recorder.fetch });
  const link = persisted ? new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(http) : http;
  const cache = new InMemoryCache({
    typePolicies: { Query: { fields: { ledgerEntries: relayStylePagination(['filter']) } } },
  });
  return { client: new ApolloClient({ link, cache }), cache, exchanges: recorder.exchanges };
}

async function direct(document, variables) {
  const body = await graphql(url, document, variables);
  assert.equal(body.errors, undefined, `direct request: ${JSON.stringify(body.errors)}\n${recentLog()}`);
  return body.data;
}

for (const persisted of [false, true]) {
  const label = persisted ? 'Apollo Client, persisted queries' : 'Apollo Client';

  test(`${label}: the README's operations, read back from the normalized cache`, async (t) => {
    for (const op of operations(ids)) {
      await t.test(op.name, async () => {
        const { client, exchanges } = apollo({ persisted });
        const query = gql(op.document);
        const result = await client.query({ query, variables: op.variables });
        assert.equal(result.error, undefined, `${result.error}`);
        const [received, ...more] = answers(exchanges);
        assert.deepEqual(more, [], 'one answer with data');
        assert.deepEqual(result.data, received, 'the result is what the gateway sent');
        const cached = await client.query({ query, variables: op.variables, fetchPolicy: 'cache-only' });
        assert.deepEqual(cached.data, result.data, 'the normalized cache answers the operation alone');
      });
    }
  });

  test(`${label}: fetchMore pages the ledger into one connection, nothing lost or repeated`, async () => {
    const walked = await directWalk(url, 3, 4);

    const { client, exchanges } = apollo({ persisted });
    const watched = client.watchQuery({ query: gql(LEDGER_PAGE), variables: { first: 4 } });
    let current = await firstValueFrom(watched.pipe(filter((r) => r.dataState === 'complete' || r.error)));
    assert.equal(current.error, undefined, `${current.error}`);
    for (let i = 1; i < 3; i++) {
      await watched.fetchMore({ variables: { after: current.data.ledgerEntries.pageInfo.endCursor } });
      current = watched.getCurrentResult();
    }
    const merged = current.data.ledgerEntries;
    const pages = answers(exchanges).map((data) => data.ledgerEntries);
    assert.equal(pages.length, 3);
    assert.deepEqual(merged.edges, pages.flatMap((page) => page.edges), 'every page\'s edges, in order');
    assert.deepEqual(merged.pageInfo, pages.at(-1).pageInfo);
    assert.deepEqual(merged.edges.map((e) => e.node.id), walked, 'the entries of a direct walk, none lost or repeated');
  });

  test(`${label}: a failing item lookup is item: null in the cache, with its error in the result`, async () => {
    const { client, cache } = apollo({ persisted });
    const query = gql(TWO_ITEMS);
    const variables = { failing: ids.trackstarItem, working: ids.bcItem };
    const working = (await direct('query($id: ID!) { item(id: $id) { id sku name } }', { id: ids.bcItem })).item;

    await installFaults(TRACKSTAR_ITEMS_DOWN);
    let result;
    try {
      result = await client.query({ query, variables, errorPolicy: 'all' });
    } finally {
      await resetMock();
    }

    assert.deepEqual(withoutTypename(result.data), { failing: null, working });
    assert.ok(CombinedGraphQLErrors.is(result.error), `a GraphQL error, not ${result.error}`);
    assert.deepEqual(
      result.error.errors.map((e) => ({ path: e.path, code: e.extensions?.code, source: e.extensions?.source })),
      [{ path: ['failing'], code: 'UPSTREAM_UNAVAILABLE', source: 'trackstar' }],
    );

    const root = cache.extract().ROOT_QUERY;
    const failingKey = `item(${JSON.stringify({ id: ids.trackstarItem })})`;
    assert.ok(Object.hasOwn(root, failingKey), `the cache holds ${failingKey}: ${JSON.stringify(Object.keys(root))}`);
    assert.equal(root[failingKey], null);
    assert.deepEqual(root[`item(${JSON.stringify({ id: ids.bcItem })})`], { __ref: `Item:${ids.bcItem}` });
    // A missing field would make this read incomplete (null); a null field is data.
    assert.deepEqual(client.readQuery({ query, variables }), result.data);
  });
}

test('Apollo Client, persisted queries: an unknown hash is PERSISTED_QUERY_NOT_FOUND, the query registers it, then the hash alone runs it', async () => {
  const document = 'query ApolloPersistedProbe { ledgerEntries(first: 2) { nodes { id sku } } }';
  const expected = withoutTypename(await direct(document, {}));

  const first = apollo({ persisted: true });
  const result = await first.client.query({ query: gql(document) });
  assert.deepEqual(withoutTypename(result.data), expected);
  const hash = assertMissThenRegister(first.exchanges);

  // Another client (another cache) finds the query registered: one GET, hash only.
  const second = apollo({ persisted: true });
  const again = await second.client.query({ query: gql(document) });
  assert.deepEqual(withoutTypename(again.data), expected);
  assertHashAloneRuns(second.exchanges, hash);
});

// What the client suites share: the operations a user of the README runs
// (the README's "Example" query and every operation in tests/queries/, with
// variables naming real ids of the running demo), a fetch that records what
// a client sends and gets, and sha256 for the persisted-query protocol.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, graphql } from '../support/gateway.mjs';

const QUERIES_DIR = path.join(REPO_ROOT, 'tests', 'queries');

/** Hex sha256 of a document, as Apollo's persisted-query protocol hashes it. */
export function sha256(text) {
  return createHash('sha256').update(text).digest('hex');
}

/** The first ```graphql block of the README's "## Example" section. */
export function readmeExample() {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Example\n'));
  assert.ok(section, 'README.md has an "## Example" section');
  const block = /```graphql\n([\s\S]*?)```/.exec(section);
  assert.ok(block, 'the README\'s Example section has a graphql block');
  return block[1];
}

function noErrors(body, what) {
  assert.equal(body.errors, undefined, `${what}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** Real ids of the running demo, read directly from the gateway. */
export async function sampleIds(url) {
  const data = noErrors(
    await graphql(
      url,
      `{
        trackstar: ledgerEntries(first: 2, filter: { sources: ["trackstar"] }) { nodes { id itemId } }
        bc: ledgerEntries(first: 2, filter: { sources: ["business-central"] }) { nodes { id itemId } }
        pennylane: ledgerEntries(first: 1, filter: { sources: ["pennylane"] }) { nodes { id } }
      }`,
    ),
    'sampling ids',
  );
  return {
    trackstarItem: data.trackstar.nodes[0].itemId,
    bcItem: data.bc.nodes[0].itemId,
    entries: [...data.trackstar.nodes, ...data.bc.nodes, ...data.pennylane.nodes].map((n) => n.id),
  };
}

/** Variables for each operation of tests/queries/, by operation name. */
function variablesFor(ids) {
  return {
    EntriesWithItems: { first: 5, bins: true },
    EntryDetails: { first: 5 },
    IntrospectionQuery: {},
    ItemDetails: { id: ids.trackstarItem, first: 3 },
    JournalEntries: { first: 5, filter: { sources: ['pennylane'] } },
    LedgerEntities: { representations: ids.entries.map((id) => ({ __typename: 'LedgerEntry', id })) },
    LedgerPage: { first: 5 },
    RecentEntries: {},
  };
}

/**
 * `[{ name, document, variables }]`: the README's example, then every
 * tests/queries/*.graphql (a file without variables here fails the suite,
 * so a new example cannot go untested).
 */
export function operations(ids) {
  const variables = variablesFor(ids);
  const files = readdirSync(QUERIES_DIR).filter((f) => f.endsWith('.graphql')).sort();
  const found = files.map((file) => {
    const name = file.replace(/\.graphql$/, '');
    assert.ok(name in variables, `tests/clients/operations.mjs has no variables for tests/queries/${file}`);
    return { name, document: readFileSync(path.join(QUERIES_DIR, file), 'utf8'), variables: variables[name] };
  });
  return [{ name: 'README Example', document: readmeExample(), variables: {} }, ...found];
}

/** The paged operation of the fetchMore tests. */
export const LEDGER_PAGE = readFileSync(path.join(QUERIES_DIR, 'LedgerPage.graphql'), 'utf8');

/** The entry ids of the first `count` pages of `first`, walked directly. */
export async function directWalk(url, count, first) {
  const ids = [];
  let after;
  for (let i = 0; i < count; i++) {
    const page = noErrors(await graphql(url, LEDGER_PAGE, { first, after }), `page ${i + 1}`).ledgerEntries;
    ids.push(...page.edges.map((e) => e.node.id));
    after = page.pageInfo.endCursor;
  }
  assert.equal(new Set(ids).size, count * first, `${count} pages of ${first} distinct entries`);
  return ids;
}

/** One item that fails (its source answers 503) beside one that does not. */
export const TWO_ITEMS = `
query TwoItems($failing: ID!, $working: ID!) {
  failing: item(id: $failing) { id sku name }
  working: item(id: $working) { id sku name }
}`;

/** Makes every Trackstar item lookup fail with a 503 (retries included). */
export const TRACKSTAR_ITEMS_DOWN = [{ upstream: 'trackstar', route: '/wms/inventory', status: 503 }];

/** `value` without `__typename` fields, which the clients add to every selection. */
export function withoutTypename(value) {
  if (Array.isArray(value)) return value.map(withoutTypename);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).filter(([k]) => k !== '__typename').map(([k, v]) => [k, withoutTypename(v)]));
}

/**
 * A `fetch` that records every exchange: `{ method, url, body (parsed JSON or
 * null), status, response (parsed JSON) }`.
 */
export function recordingFetch() {
  const exchanges = [];
  async function recorded(input, init = {}) {
    const request = new Request(input, init);
    const sent = request.method === 'POST' ? await request.clone().text() : null;
    const response = await fetch(request);
    const text = await response.clone().text();
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
    exchanges.push({ method: request.method, url: new URL(request.url), body: sent && JSON.parse(sent), status: response.status, response: parsed });
    return response;
  }
  return { fetch: recorded, exchanges };
}

/**
 * The `data` of every answer that carried some, oldest first (a persisted
 * query's miss carries none); none may carry errors.
 */
export function answers(exchanges) {
  const answered = exchanges.filter((e) => e.response?.data !== undefined);
  for (const e of answered) assert.equal(e.response.errors, undefined, `${e.method} ${e.url}: ${JSON.stringify(e.response.errors)}`);
  return answered.map((e) => e.response.data);
}

/** What one exchange sent: `{ query, extensions }`, from the body of a POST or the URL of a GET. */
export function sentRequest(exchange) {
  if (exchange.method === 'POST') return exchange.body;
  const params = exchange.url.searchParams;
  const extensions = params.get('extensions');
  return { query: params.get('query') ?? undefined, extensions: extensions ? JSON.parse(extensions) : undefined };
}

/**
 * Checks the exchanges of a first persisted-query run: a GET with the hash
 * alone answered 200 `PersistedQueryNotFound` (urql recognises the miss by
 * the message alone, Apollo by it or the code), then the hash with the query
 * it is the sha256 of, answered without errors. Returns the hash.
 */
export function assertMissThenRegister(exchanges) {
  const [miss, register, ...rest] = exchanges.map((e) => ({ ...e, sent: sentRequest(e) }));
  assert.deepEqual(rest, [], 'two requests: the hash, then the hash with its query');
  const hash = miss.sent.extensions?.persistedQuery?.sha256Hash;
  assert.equal(miss.method, 'GET');
  assert.equal(miss.sent.query, undefined, 'the first request carries only the hash');
  assert.equal(miss.status, 200);
  assert.deepEqual(
    miss.response.errors?.map((e) => ({ message: e.message, code: e.extensions?.code })),
    [{ message: 'PersistedQueryNotFound', code: 'PERSISTED_QUERY_NOT_FOUND' }],
  );
  assert.equal(register.sent.extensions.persistedQuery.sha256Hash, hash);
  assert.equal(sha256(register.sent.query), hash, 'the hash is the sha256 of the query sent');
  assert.equal(register.response.errors, undefined);
  return hash;
}

/** Checks a later client's one exchange: a GET with the hash alone, answered. */
export function assertHashAloneRuns(exchanges, hash) {
  assert.equal(exchanges.length, 1);
  const [hit] = exchanges;
  assert.equal(hit.method, 'GET');
  const sent = sentRequest(hit);
  assert.equal(sent.query, undefined, 'the hash alone');
  assert.deepEqual(sent.extensions.persistedQuery, { version: 1, sha256Hash: hash });
  assert.equal(hit.response.errors, undefined);
}

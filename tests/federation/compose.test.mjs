// ledger-gateway as an Apollo Federation v2 subgraph, checked with Apollo's
// own composition (@apollo/composition, what rover and GraphOS run).
//
// Starts the real gateway binary (see ../support/gateway.mjs), reads its
// `_service { sdl }`, checks it is the committed schema.graphql and a valid
// Federation 2 subgraph, composes it with a hand-written "catalog" subgraph
// that references every entity of the ledger SDL by key (so the test grows
// with the schema), and resolves `_entities` the way a router would.
//
// Run with tests/federation/run.sh, or: node --test tests/federation/*.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { composeServices } from '@apollo/composition';
import { buildSubgraph } from '@apollo/federation-internals';
import { Kind, parse, print } from 'graphql';
import { REPO_ROOT, STARTUP_TIMEOUT_MS, graphql, recentLog, startGateway, stopGateway } from '../support/gateway.mjs';

const LEDGER = 'ledger';
const CATALOG = 'catalog';

let url; // the running gateway, `http://127.0.0.1:PORT`
let sdl; // what it serves as `_service { sdl }`

before(async () => {
  url = await startGateway();
  const body = await graphql(url, '{ _service { sdl } }');
  assert.equal(body.errors, undefined, `_service failed: ${JSON.stringify(body.errors)}\n${recentLog()}`);
  sdl = body.data._service.sdl;
  assert.equal(typeof sdl, 'string');
}, { timeout: STARTUP_TIMEOUT_MS + 40_000 });

after(stopGateway, { timeout: 15_000 });

/** Every object type with `@key` in `doc`: name, key field names, their field definitions. */
function entities(doc) {
  const found = [];
  for (const def of doc.definitions) {
    if (def.kind !== Kind.OBJECT_TYPE_DEFINITION && def.kind !== Kind.OBJECT_TYPE_EXTENSION) continue;
    for (const key of (def.directives ?? []).filter((d) => d.name.value === 'key')) {
      const fieldsArg = key.arguments.find((a) => a.name.value === 'fields');
      const fields = fieldsArg.value.value.trim();
      // Nested keys (`fields: "a { b }"`) would need their sub-selection copied too.
      assert.doesNotMatch(fields, /[{}]/, `${def.name.value}: nested @key fields are not handled by this test`);
      const names = fields.split(/[\s,]+/);
      const fieldDefs = names.map((name) => {
        const field = def.fields.find((f) => f.name.value === name);
        assert.ok(field, `${def.name.value} @key(fields: "${fields}") names a missing field ${name}`);
        return field;
      });
      found.push({ name: def.name.value, fields, fieldDefs });
    }
  }
  return found;
}

function typeDefinition(doc, name) {
  return doc.definitions.find((d) => d.kind === Kind.OBJECT_TYPE_DEFINITION && d.name.value === name);
}

function lowerFirst(name) {
  return name[0].toLowerCase() + name.slice(1);
}

/**
 * A second subgraph as another team would write it: products that point at
 * every ledger entity by key without resolving it (`resolvable: false`), and
 * a Relay connection with its own `PageInfo` (so composition checks the
 * ledger's connection types are shareable).
 */
function catalogSubgraph(ledgerDoc) {
  const refs = entities(ledgerDoc);
  const stubs = refs.map(
    ({ name, fields, fieldDefs }) =>
      `type ${name} @key(fields: "${fields}", resolvable: false) {\n` +
      fieldDefs.map((f) => `  ${f.name.value}: ${print(f.type)}\n`).join('') +
      '}',
  );
  const pageInfo = typeDefinition(ledgerDoc, 'PageInfo');
  assert.ok(pageInfo, 'the ledger SDL has a PageInfo type');
  return `
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@shareable"])

type Query {
  products(first: Int, after: String): ProductConnection!
}

type ProductConnection {
  pageInfo: PageInfo!
  nodes: [Product!]!
}

type PageInfo @shareable {
${pageInfo.fields.map((f) => `  ${f.name.value}: ${print(f.type)}`).join('\n')}
}

type Product @key(fields: "sku") {
  sku: String!
${refs.map(({ name }) => `  ${lowerFirst(name)}: ${name}`).join('\n')}
}

${stubs.join('\n\n')}
`;
}

/** The graphs (`LEDGER`, `CATALOG`) that declare `typeName` in the supergraph, with their join__type arguments. */
function joinTypes(supergraphDoc, typeName) {
  const def = typeDefinition(supergraphDoc, typeName);
  assert.ok(def, `supergraph has type ${typeName}`);
  return def.directives
    .filter((d) => d.name.value === 'join__type')
    .map((d) => Object.fromEntries(d.arguments.map((a) => [a.name.value, a.value.value])));
}

test('the served SDL is the committed schema.graphql', () => {
  const committed = readFileSync(path.join(REPO_ROOT, 'schema.graphql'), 'utf8');
  assert.ok(
    sdl === committed,
    'schema.graphql differs from `_service { sdl }`: run `cargo run -q -- print-schema > schema.graphql`',
  );
});

test('the served SDL is a valid Federation 2 subgraph with LedgerEntry keyed by id', () => {
  assert.match(sdl, /extend schema @link\(\s*url: "https:\/\/specs\.apollo\.dev\/federation\/v2\.\d+"/);
  const subgraph = buildSubgraph(LEDGER, `${url}/graphql`, sdl);
  assert.ok(subgraph.isFed2Subgraph(), 'Apollo reads it as a Federation 1 subgraph');
  subgraph.validate(); // throws with Apollo's own error codes when invalid
  const keyed = entities(parse(sdl));
  assert.ok(keyed.some((e) => e.name === 'LedgerEntry'), `entities: ${keyed.map((e) => e.name)}`);
  for (const entity of keyed) assert.equal(entity.fields, 'id', `${entity.name} is keyed by id (DESIGN.md)`);
});

test('composes with a subgraph that references every ledger entity by key', (t) => {
  const ledgerDoc = parse(sdl);
  const catalog = catalogSubgraph(ledgerDoc);
  const result = composeServices([
    { name: LEDGER, url: `${url}/graphql`, typeDefs: ledgerDoc },
    { name: CATALOG, url: 'http://127.0.0.1:1/graphql', typeDefs: parse(catalog) },
  ]);
  const errors = (result.errors ?? []).map((e) => `${e.extensions?.code}: ${e.message}`);
  assert.deepEqual(errors, [], `composition failed; catalog subgraph was:\n${catalog}`);
  for (const hint of result.hints) t.diagnostic(`composition hint: ${hint}`);

  const supergraph = parse(result.supergraphSdl);
  const keyed = entities(ledgerDoc);
  for (const { name } of keyed) {
    assert.deepEqual(
      joinTypes(supergraph, name).sort((a, b) => a.graph.localeCompare(b.graph)),
      [
        { graph: 'CATALOG', key: 'id', resolvable: false },
        { graph: 'LEDGER', key: 'id' },
      ],
      `${name} is an entity of both graphs, resolvable only by the ledger`,
    );
  }
  const query = typeDefinition(supergraph, 'Query').fields.map((f) => f.name.value);
  assert.ok(query.includes('ledgerEntries') && query.includes('products'), `Query fields: ${query}`);
  t.diagnostic(`entities composed: ${keyed.map((e) => e.name).join(', ')}`);
});

/** Up to `first` real ledger entries, with every `<entity>Id` field LedgerEntry has. */
async function sampleEntries(idFields, first) {
  const body = await graphql(url, `{ ledgerEntries(first: ${first}) { nodes { id ${idFields.join(' ')} } } }`);
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data.ledgerEntries.nodes;
}

async function entitiesQuery(typeName, representations) {
  return graphql(
    url,
    `query Entities($representations: [_Any!]!) {
      _entities(representations: $representations) { __typename ... on ${typeName} { id } }
    }`,
    { representations },
  );
}

test('_entities resolves real ids of every entity, and an unknown id to null with its error', async (t) => {
  const ledgerDoc = parse(sdl);
  const entry = typeDefinition(ledgerDoc, 'LedgerEntry');
  const entryFields = new Set(entry.fields.map((f) => f.name.value));
  const keyed = entities(ledgerDoc);
  // Real ids of other entities come from the entries pointing at them (`itemId` -> Item).
  const idField = (name) => (name === 'LedgerEntry' ? 'id' : `${lowerFirst(name)}Id`);
  const idFields = keyed.map((e) => idField(e.name)).filter((f) => f !== 'id' && entryFields.has(f));
  const entries = await sampleEntries(idFields, 3);
  assert.equal(entries.length, 3, 'the demo serves at least 3 entries');

  for (const { name } of keyed) {
    await t.test(name, async (st) => {
      const field = idField(name);
      if (!entryFields.has(field)) {
        st.skip(`no LedgerEntry.${field} to find real ${name} ids with`);
        return;
      }
      const ids = [...new Set(entries.map((e) => e[field]).filter((id) => id != null))];
      assert.ok(ids.length > 0, `the sampled entries have no ${field}`);
      const source = ids[0].split(':')[0];
      const unknown = `${source}:no-such-${lowerFirst(name)}`;
      const representations = [...ids, unknown].map((id) => ({ __typename: name, id }));
      const body = await entitiesQuery(name, representations);
      const errors = (body.errors ?? []).map((e) => ({ path: e.path, code: e.extensions?.code }));
      assert.deepEqual(errors, [{ path: ['_entities', ids.length], code: 'NOT_FOUND' }], JSON.stringify(body.errors));
      const expected = [...ids.map((id) => ({ __typename: name, id })), null];
      assert.deepEqual(body.data._entities, expected);
    });
  }
});

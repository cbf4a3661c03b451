// A second subgraph, as a planning team would write it next to the ledger:
// replenishment data that extends the ledger's `Item` by its key
// (`reorderPoint`, `reorderQuantity`) and points at the `LedgerEntry` (a stock
// count) each plan was based on, by key, without resolving it. Built with
// Apollo's own `@apollo/subgraph` and served by `@apollo/server` on loopback.

import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';

export const PLANNING = 'planning';

export const PLANNING_SDL = `
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])

type Query {
  "Every replenishment plan, in the order they were made."
  replenishmentPlans: [ReplenishmentPlan!]!
}

type ReplenishmentPlan {
  id: ID!
  item: Item!
  "The stock movement the reorder point was computed from."
  basedOn: LedgerEntry!
}

type Item @key(fields: "id") {
  id: ID!
  "Reorder when on hand falls to this; null for an item without a plan."
  reorderPoint: Int
  reorderQuantity: Int
}

type LedgerEntry @key(fields: "id", resolvable: false) {
  id: ID!
}
`;

/**
 * One plan per entry (`{ id, itemId }`, from the running ledger), an item
 * planned once (its first entry): reorder points are made up but fixed by
 * position, so a test can recompute them.
 */
export function plansFor(entries) {
  const plans = [];
  const seen = new Set();
  for (const entry of entries) {
    if (entry.itemId == null || seen.has(entry.itemId)) continue;
    seen.add(entry.itemId);
    const reorderPoint = 10 + 5 * plans.length;
    plans.push({ id: `plan-${plans.length + 1}`, itemId: entry.itemId, entryId: entry.id, reorderPoint, reorderQuantity: 2 * reorderPoint });
  }
  return plans;
}

/**
 * Serves the planning subgraph over `plans`; resolves to `{ url, requests, stop }`,
 * `requests` being every operation it received (`{ query, variables }`).
 */
export async function startPlanning(plans) {
  const byItem = new Map(plans.map((plan) => [plan.itemId, plan]));
  const resolvers = {
    Query: {
      replenishmentPlans: () =>
        plans.map((plan) => ({ id: plan.id, item: { id: plan.itemId }, basedOn: { __typename: 'LedgerEntry', id: plan.entryId } })),
    },
    Item: {
      __resolveReference: (reference) => ({ id: reference.id }),
      reorderPoint: (item) => byItem.get(item.id)?.reorderPoint ?? null,
      reorderQuantity: (item) => byItem.get(item.id)?.reorderQuantity ?? null,
    },
  };
  const requests = [];
  const server = new ApolloServer({
    schema: buildSubgraphSchema({ typeDefs: parse(PLANNING_SDL), resolvers }),
    plugins: [
      ApolloServerPluginInlineTraceDisabled(),
      {
        async requestDidStart({ request }) {
          requests.push({ query: request.query, variables: request.variables ?? {} });
        },
      },
    ],
  });
  const { url } = await startStandaloneServer(server, { listen: { host: '127.0.0.1', port: 0 } });
  return { url, requests, stop: () => server.stop() };
}

// ledger-gateway behind Apollo's Node router: @apollo/gateway on the
// composed supergraph, served by @apollo/server. The tests are in ./routers.mjs.
//
// Run with tests/federation/run.sh, or: node --test tests/federation/*.test.mjs

import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { routerSuite } from './routers.mjs';

routerSuite('@apollo/gateway', async (supergraphSdl) => {
  const server = new ApolloServer({ gateway: new ApolloGateway({ supergraphSdl }) });
  const { url } = await startStandaloneServer(server, { listen: { host: '127.0.0.1', port: 0 } });
  return { url: url.replace(/\/$/, ''), stop: () => server.stop() };
});

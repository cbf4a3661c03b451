// GraphQL over HTTP conformance, checked with graphql-http's own server
// audits (the suite behind the spec's implementation reports) against the
// real gateway binary serving the demo on a loopback port.
//
// Every MUST and SHOULD audit must pass; a MAY audit that does not is
// reported as a diagnostic. There is no deliberate exception: one would be
// listed here and in the README's "HTTP" section, with its reason.
//
// Run with tests/http-audits/run.sh, or: node --test tests/http-audits/*.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAudits } from 'graphql-http';
import { STARTUP_TIMEOUT_MS, recentLog, startGateway, stopGateway } from '../support/gateway.mjs';

// graphql-http 1.23.1 has 61 server audits: a different count means the
// pinned version changed (or the import broke), and the list needs a look.
const AUDIT_COUNT = 61;
const AUDIT_TIMEOUT_MS = 30_000;

let url; // the running gateway's GraphQL endpoint

before(async () => {
  url = `${await startGateway()}/graphql`;
}, { timeout: STARTUP_TIMEOUT_MS + 10_000 });

after(stopGateway, { timeout: 15_000 });

/** What the server answered, for a failure message. */
async function answer(response) {
  if (!response) return '(no response)';
  let body = '';
  try {
    body = await response.clone().text();
  } catch {
    body = '(body already read)';
  }
  const type = response.headers.get('content-type');
  return `${response.status} ${type}: ${body.slice(0, 500)}`;
}

test('graphql-http server audits', async (t) => {
  const audits = serverAudits({ url: () => url });
  assert.equal(audits.length, AUDIT_COUNT, 'the audit list of the pinned graphql-http');
  for (const audit of audits) {
    const required = audit.name.startsWith('MUST') || audit.name.startsWith('SHOULD');
    await t.test(`${audit.id} ${audit.name}`, { timeout: AUDIT_TIMEOUT_MS }, async (st) => {
      const result = await audit.fn();
      if (result.status === 'ok') return;
      const detail = `${result.status}: ${result.reason}\n${await answer(result.response)}`;
      if (!required) {
        st.diagnostic(`MAY audit not met: ${detail}`);
        return;
      }
      assert.fail(`${detail}\n--- gateway output ---\n${recentLog()}`);
    });
  }
});

// The demo's mock upstreams seen from a JS suite: their exact call counts
// (`/__mock/stats`), the requests they received (`/__mock/requests`) and
// fault injection (`/__mock/faults`), as the README's "Mock upstreams"
// describes them. Node built-ins only.

import { mockUrl } from './gateway.mjs';

const REQUEST_TIMEOUT_MS = 30_000;

async function call(method, path, body) {
  const response = await fetch(`${mockUrl()}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} -> ${response.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

/** Clears the counts, the recorded requests and the installed faults. */
export function resetMock() {
  return call('POST', '/__mock/reset');
}

/** `{ total, by_route: { "GET /trackstar/wms/inventory": n, ... }, by_upstream }` since the last reset. */
export function mockStats() {
  return call('GET', '/__mock/stats');
}

/** The requests since the last reset, oldest first: `{ method, path, query: [[name, value], ...] }`. */
export function mockRequests() {
  return call('GET', '/__mock/requests');
}

/** Replaces the installed fault rules (see src/mock/faults.rs). */
export function installFaults(rules) {
  return call('POST', '/__mock/faults', rules);
}

/** The calls a request made: runs `send` between a reset and a read of the counts. */
export async function upstreamCalls(send) {
  await resetMock();
  const result = await send();
  return { result, stats: await mockStats() };
}

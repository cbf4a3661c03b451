// Real-browser test of CORS: a page served from another loopback origin
// fetches ledger entries from the gateway and shows them; a page from an
// origin the gateway does not list is refused by the browser itself.
//
// Two tiny page servers listen on 127.0.0.1 (other ports than the
// gateway's, so other origins); the gateway runs the demo with a
// [server.cors] that allows the first one only.
//
// Run with tests/browser/run.sh, or: node --test tests/browser/*.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { STARTUP_TIMEOUT_MS, recentLog, startGateway, stopGateway, withTimeout } from '../support/gateway.mjs';
import { launchChromium } from './chromium.mjs';

const STEP_TIMEOUT_MS = 30_000;

// The page: POSTs a query as JSON with a forwarded credential header (so
// the browser must preflight, and the preflight must allow it), then
// lists the entries, or the error the fetch failed with.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>ledger entries</title></head>
<body data-state="loading">
<ul id="entries"></ul><p id="error"></p>
<script type="module">
const gateway = new URLSearchParams(location.search).get('gateway');
try {
  const response = await fetch(gateway + '/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-trackstar-access-token': 'demo-trackstar-token' },
    body: JSON.stringify({ query: '{ ledgerEntries(first: 3) { nodes { id sku } } }' }),
  });
  const body = await response.json();
  for (const entry of body.data.ledgerEntries.nodes) {
    const item = document.createElement('li');
    item.textContent = entry.id + ' ' + entry.sku;
    document.getElementById('entries').append(item);
  }
  document.body.dataset.state = 'shown';
} catch (error) {
  document.getElementById('error').textContent = error.name + ': ' + error.message;
  document.body.dataset.state = 'failed';
}
</script></body></html>`;

let gateway; // "http://127.0.0.1:PORT"
let allowed; // the listed origin
let other; // an origin that is not listed
let browser;
let configDir;
const pageServers = [];

/** A page server on 127.0.0.1; resolves to its origin. */
function servePage() {
  const server = createServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(PAGE);
  });
  pageServers.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
}

before(async () => {
  allowed = await servePage();
  other = await servePage();
  configDir = mkdtempSync(path.join(tmpdir(), 'ledger-gateway-cors-'));
  const config = path.join(configDir, 'cors.toml');
  writeFileSync(config, `[server.cors]\nallow_origins = ["${allowed}"]\n`);
  gateway = await startGateway({ args: ['--config', config] });
  browser = await launchChromium();
}, { timeout: 2 * STARTUP_TIMEOUT_MS + 10_000 });

after(async () => {
  try {
    if (browser) await withTimeout(browser.close(), 10_000, 'browser.close()').catch(() => {});
  } finally {
    browser = undefined;
    await stopGateway();
    for (const server of pageServers) server.close();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  }
}, { timeout: 30_000 });

/** Opens the page from `origin`; resolves once its fetch settled. */
async function openPage(origin) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  await page.goto(`${origin}/?gateway=${encodeURIComponent(gateway)}`, { waitUntil: 'load' });
  await page.locator('body:not([data-state="loading"])').waitFor();
  const result = {
    state: await page.evaluate(() => document.body.dataset.state),
    entries: await page.locator('#entries li').allTextContents(),
    error: await page.locator('#error').textContent(),
    consoleErrors,
  };
  await withTimeout(context.close(), 10_000, 'context.close()').catch(() => {});
  return result;
}

const diagnostics = (result) => `\n${JSON.stringify(result, null, 2)}\n--- gateway output ---\n${recentLog()}`;

test('a page on an allowed origin fetches entries across origins and shows them', { timeout: 120_000 }, async () => {
  const result = await openPage(allowed);
  assert.equal(result.state, 'shown', diagnostics(result));
  assert.equal(result.entries.length, 3, diagnostics(result));
  for (const entry of result.entries) assert.match(entry, /^[a-z-]+:\S+ /, diagnostics(result));
});

test('a page on another origin is refused by the browser', { timeout: 120_000 }, async () => {
  const result = await openPage(other);
  assert.equal(result.state, 'failed', diagnostics(result));
  assert.deepEqual(result.entries, [], diagnostics(result));
  assert.match(result.error, /^TypeError: Failed to fetch/, diagnostics(result));
  assert.ok(
    result.consoleErrors.some((m) => m.includes('blocked by CORS policy')),
    `the browser names CORS as the reason${diagnostics(result)}`,
  );
});

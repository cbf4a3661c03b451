// Real-browser test of the self-hosted GraphiQL page.
//
// Starts the gateway binary (LEDGER_GATEWAY_BIN, default
// target/debug/ledger-gateway under the repo root), opens its root page in
// Debian's chromium (CHROMIUM_PATH, default /usr/bin/chromium) through
// playwright-core, checks GraphiQL renders with no request leaving the
// gateway's origin, runs the default query and checks demo entries come back.
//
// Run with tests/browser/run.sh, or: node --test tests/browser/*.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { STARTUP_TIMEOUT_MS, recentLog, startGateway, stopGateway, withTimeout } from '../support/gateway.mjs';
import { launchChromium } from './chromium.mjs';

const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');
const STEP_TIMEOUT_MS = 30_000;

let addr; // "127.0.0.1:PORT"
let browser;

before(async () => {
  addr = new URL(await startGateway()).host;
  browser = await launchChromium();
}, { timeout: 2 * STARTUP_TIMEOUT_MS + 10_000 });

after(async () => {
  try {
    if (browser) await withTimeout(browser.close(), 10_000, 'browser.close()').catch(() => {});
  } finally {
    browser = undefined;
    await stopGateway();
  }
}, { timeout: 30_000 });

/** Full text of the GraphiQL result pane (CodeMirror 5 only renders visible lines). */
async function resultText(page) {
  return page.evaluate(() => {
    const el = document.querySelector('.graphiql-response .CodeMirror');
    if (el && el.CodeMirror) return el.CodeMirror.getValue();
    const pane = document.querySelector('.graphiql-response');
    return pane ? pane.innerText : '';
  });
}

test('GraphiQL is served offline and runs the default query', { timeout: 180_000 }, async () => {
  const origin = `http://${addr}`;
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);

  const requests = [];
  const foreign = [];
  const pageErrors = [];
  const consoleErrors = [];
  context.on('request', (req) => {
    const url = req.url();
    requests.push(`${req.method()} ${url}`);
    const { protocol, host } = new URL(url);
    if (protocol !== 'data:' && protocol !== 'blob:' && host !== addr) foreign.push(url);
  });
  // Never let a stray request actually leave the machine; it is recorded above.
  await context.route(
    (url) => url.protocol.startsWith('http') && url.host !== addr,
    (route) => route.abort('blockedbyclient'),
  );
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });

  const diagnostics = () =>
    `\n--- requests ---\n${requests.join('\n')}` +
    `\n--- page errors ---\n${pageErrors.join('\n')}` +
    `\n--- console errors ---\n${consoleErrors.join('\n')}` +
    `\n--- gateway output ---\n${recentLog()}`;

  try {
    const response = await page.goto(`${origin}/`, { waitUntil: 'load' });
    assert.ok(response, 'no response for /');
    assert.equal(response.status(), 200, `GET / -> ${response.status()}${diagnostics()}`);
    assert.match(response.headers()['content-type'] ?? '', /text\/html/);

    await page.locator('.graphiql-container').waitFor({ state: 'visible' });
    await page.locator('.graphiql-query-editor .CodeMirror').first().waitFor({ state: 'visible' });
    assert.equal(await page.title(), 'ledger-gateway');

    const execute = page.locator('.graphiql-execute-button');
    await execute.waitFor({ state: 'visible' });
    await execute.click();

    let text = '';
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    const wanted = (t) =>
      t.includes('"ledgerEntries"') && t.includes('"edges"') && /"id"\s*:\s*"trackstar:/.test(t);
    while (!wanted(text)) {
      if (Date.now() > deadline) {
        assert.fail(`result pane never showed ledgerEntries/edges/trackstar: ids; it shows:\n${text}${diagnostics()}`);
      }
      await page.waitForTimeout(250);
      text = await resultText(page);
    }

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql.png'), timeout: STEP_TIMEOUT_MS });

    assert.deepEqual(foreign, [], `requests left the gateway (${addr})${diagnostics()}`);
    assert.deepEqual(pageErrors, [], `uncaught errors in the page${diagnostics()}`);
    const cspViolations = consoleErrors.filter((m) => /Content Security Policy/i.test(m));
    assert.deepEqual(cspViolations, [], `CSP violations${diagnostics()}`);
  } catch (err) {
    mkdirSync(ARTIFACTS, { recursive: true });
    await page
      .screenshot({ path: path.join(ARTIFACTS, 'graphiql-failure.png'), timeout: 10_000 })
      .catch(() => {});
    throw err;
  } finally {
    await withTimeout(context.close(), 10_000, 'context.close()').catch(() => {});
  }
});

// The real gateway binary as a child process, for the JS test suites
// (tests/browser, tests/federation) that need it served over HTTP: start
// `serve --demo --listen 127.0.0.1:0` (the mock upstreams run in-process),
// read the bound address from the tracing line `listening ... addr=IP:PORT`,
// and always kill the process, with every wait bounded. Node built-ins only,
// so it needs no package of its own.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const GATEWAY_BIN = path.resolve(REPO_ROOT, process.env.LEDGER_GATEWAY_BIN || 'target/debug/ledger-gateway');

export const STARTUP_TIMEOUT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 5_000;
// The demo also logs the mock's `addr=`; only the `listening` line is ours.
const LISTENING_RE = /listening.*addr=(\S+)/;
const MOCK_STARTED_RE = /mock upstreams started.*addr=(\S+)/;

let child; // ChildProcess of the running gateway, if any
let mockBase; // base URL of the demo's in-process mock upstreams, once logged
let log = []; // recent output lines, for failure messages

export function recentLog() {
  return log.slice(-40).join('\n');
}

/** Base URL (`http://127.0.0.1:PORT`) of the running demo's mock upstreams (`/__mock/stats`...). */
export function mockUrl() {
  if (!mockBase) throw new Error(`the gateway has not logged its mock upstreams' address\n${recentLog()}`);
  return mockBase;
}

/** An `addr=` field value without the quotes or comma a log format may add. */
function address(value) {
  return value.replace(/^["']|["',]+$/g, '');
}

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts the gateway; resolves to its base URL (`http://127.0.0.1:PORT`).
 * `args` go after the demo's own (say `--config FILE` for [server]
 * settings); `env` adds settings (`LEDGER_GATEWAY__SECTION__KEY`), which the
 * demo honours.
 */
export function startGateway({ args = [], env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(GATEWAY_BIN, ['serve', '--demo', '--listen', '127.0.0.1:0', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env, RUST_LOG: 'info', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let settled = false;
    const timer = setTimeout(
      () => fail(new Error(`gateway did not log "listening ... addr=" within ${STARTUP_TIMEOUT_MS} ms`)),
      STARTUP_TIMEOUT_MS,
    );
    function fail(err) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${err.message}\n--- gateway output ---\n${recentLog()}`));
    }
    function onLine(line) {
      log.push(line);
      if (log.length > 500) log = log.slice(-200);
      const mock = MOCK_STARTED_RE.exec(line);
      if (mock) mockBase = `http://${address(mock[1])}`;
      const m = LISTENING_RE.exec(line);
      if (m && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve(`http://${address(m[1])}`);
      }
    }
    createInterface({ input: proc.stdout }).on('line', onLine);
    createInterface({ input: proc.stderr }).on('line', onLine);
    proc.on('error', (err) => fail(new Error(`cannot start ${GATEWAY_BIN}: ${err.message}`)));
    proc.on('exit', (code, signal) => fail(new Error(`gateway exited early (code ${code}, signal ${signal})`)));
  });
}

/** Stops the gateway: SIGTERM, then SIGKILL if it does not exit in time. */
export async function stopGateway() {
  const proc = child;
  child = undefined;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  try {
    await withTimeout(exited, EXIT_TIMEOUT_MS, 'gateway exit after SIGTERM');
  } catch {
    proc.kill('SIGKILL');
    await withTimeout(exited, EXIT_TIMEOUT_MS, 'gateway exit after SIGKILL').catch(() => {});
  }
}

// Last resort if the runner dies before an `after` hook runs.
process.on('exit', () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
});

/** POSTs a GraphQL request to `${url}/graphql`; returns the JSON body. */
export async function graphql(url, query, variables = {}) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`POST /graphql -> ${response.status}, not JSON: ${text.slice(0, 500)}`);
  }
}

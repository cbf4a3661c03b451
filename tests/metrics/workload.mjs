// Runs a workload against the real gateway binary (the demo, with
// tests/metrics/gateway.toml) that makes every metric appear, then checks
// `/metrics` with `promtool check metrics` and compares its metric names
// with the ones README.md documents (its "### Metrics" table). Node built-ins only.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = path.resolve(root, process.env.LEDGER_GATEWAY_BIN || 'target/debug/ledger-gateway');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function start() {
  const args = ['serve', '--demo', '--config', 'tests/metrics/gateway.toml', '--listen', '127.0.0.1:0', '--mock-listen', '127.0.0.1:0'];
  const proc = spawn(bin, args, { cwd: root, env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const found = {};
    const timer = setTimeout(() => reject(new Error('gateway did not start within 60 s')), 60_000);
    const onLine = (line) => {
      const addr = /addr=(\S+)/.exec(line)?.[1];
      if (!addr) return;
      if (line.includes('demo mode')) found.mock = `http://${addr}`;
      else if (line.includes('listening')) found.gateway = `http://${addr}`;
      if (found.mock && found.gateway) {
        clearTimeout(timer);
        resolve({ proc, ...found });
      }
    };
    createInterface({ input: proc.stdout }).on('line', onLine);
    createInterface({ input: proc.stderr }).on('line', onLine);
    proc.on('exit', (code) => reject(new Error(`gateway exited early (${code})`)));
  });
}

async function post(url, body) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return response.json();
}

const { proc, gateway, mock } = await start();
try {
  const query = (q) => post(`${gateway}/graphql`, { query: q });
  const faults = (rules) => post(`${mock}/__mock/faults`, rules);
  const item = '{ item(id: "trackstar:inv_metrics") { name } }';

  await query('query RecentEntries { ledgerEntries(first: 5) { nodes { id } } }');
  // Asked twice (under two aliases, so that the response cache does not
  // answer the second whole): the second answer comes from the cache.
  for (let i = 0; i < 2; i++) await query(`{ l${i}: location(id: "trackstar:wh_metrics") { name } }`);
  // Two callers of the same missing item while it is slow: one call, one wait.
  await faults([{ upstream: 'trackstar', route: '/wms/inventory', latency_ms: 800 }]);
  await Promise.all([query(item), query(`${item} `)]);
  // Expired, then the source fails: retried, then the expired answer stands in.
  await sleep(1200);
  await faults([{ upstream: 'trackstar', route: '/wms/inventory', status: 503 }]);
  await query(item);
  // BigLedger broken: its circuit opens, and the next call is refused unsent.
  await faults([{ upstream: 'bigledger', status: 503 }]);
  for (let i = 0; i < 4; i++) await query('{ ledgerEntries(first: 2) { nodes { id } } }');
  // A connection that never sends its headers is dropped.
  await new Promise((resolve) => {
    const socket = net.connect(new URL(gateway).port, '127.0.0.1');
    socket.on('close', resolve);
    socket.on('error', resolve);
  });

  const text = await (await fetch(`${gateway}/metrics`)).text();
  const file = path.join(fs.mkdtempSync(path.join(process.env.TMPDIR || '/tmp', 'metrics-')), 'metrics.txt');
  fs.writeFileSync(file, text);
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (promtool.status !== 0) {
    throw new Error(`promtool check metrics failed (${promtool.status}):\n${promtool.stdout}${promtool.stderr}\n(${file})`);
  }
  const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.split('\n### Metrics\n')[1]?.split(/\n#{2,3} /)[0] ?? '';
  const documented = new Set([...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]));
  const missing = [...documented].filter((name) => !exported.has(name));
  const undocumented = [...exported].filter((name) => !documented.has(name));
  if (documented.size === 0 || missing.length || undocumented.length) {
    throw new Error(`README documents but /metrics lacks: ${missing}; /metrics has undocumented: ${undocumented} (${file})`);
  }
  console.log(`metrics: promtool clean, ${documented.size} documented metrics all exported`);
} finally {
  proc.kill('SIGTERM');
}

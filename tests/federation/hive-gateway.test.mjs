// ledger-gateway behind Hive Gateway, run as its own CLI
// (`hive-gateway supergraph FILE`) on the composed supergraph. The tests are
// in ./routers.mjs.
//
// Run with tests/federation/run.sh, or: node --test tests/federation/*.test.mjs

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { withTimeout } from '../support/gateway.mjs';
import { routerSuite } from './routers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(HERE, 'node_modules', '@graphql-hive', 'gateway', 'dist', 'bin.js');
const READY_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 5_000;

/** A loopback port that was free a moment ago (the CLI takes a port, not a listener). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls the CLI's readiness endpoint until it answers 200 or the process exits. */
async function ready(url, proc, log) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`hive-gateway exited with ${proc.exitCode}:\n${log.join('\n')}`);
    try {
      const response = await fetch(`${url}/readiness`, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`hive-gateway not ready in ${READY_TIMEOUT_MS} ms:\n${log.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

routerSuite('Hive Gateway', async (supergraphSdl) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ledger-hive-'));
  const file = path.join(dir, 'supergraph.graphql');
  await writeFile(file, supergraphSdl);
  const port = await freePort();
  const proc = spawn(process.execPath, [CLI, 'supergraph', file, '--host', '127.0.0.1', '--port', String(port)], {
    cwd: dir,
    env: { ...process.env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = [];
  createInterface({ input: proc.stdout }).on('line', (line) => log.push(line));
  createInterface({ input: proc.stderr }).on('line', (line) => log.push(line));
  process.on('exit', () => proc.exitCode === null && proc.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  await ready(url, proc, log);
  return {
    url,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((resolve) => proc.once('exit', resolve));
        proc.kill('SIGTERM');
        await withTimeout(exited, EXIT_TIMEOUT_MS, 'hive-gateway exit').catch(() => proc.kill('SIGKILL'));
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
});

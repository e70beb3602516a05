// Builds and runs a real `parley serve` for the browser tests.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Builds ./cmd/parley once (or uses $PARLEY_BIN), starts it on a free
 * loopback port with a fresh data directory and waits for /readyz. args
 * are more flags for `parley serve` (e.g. the VAPID keys).
 */
export async function startServer({ args = [] } = {}) {
  if (process.env.PARLEY_E2E_BASE_URL) {
    // An already-running server (for example one started under a debugger).
    return { base: process.env.PARLEY_E2E_BASE_URL.replace(/\/$/, ''), logs: [], async stop() {} };
  }
  const tmp = await mkdtemp(join(tmpdir(), 'parley-e2e-'));
  let bin = process.env.PARLEY_BIN;
  if (!bin) {
    bin = join(tmp, 'parley');
    try {
      await run('go', ['build', '-o', bin, './cmd/parley'], { cwd: repo, maxBuffer: 16 << 20 });
    } catch (err) {
      throw new Error(`go build ./cmd/parley failed:\n${err.stderr || err.message}`);
    }
  }
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const logs = [];
  let proc = null, exited = null, exit = null;

  // Starts the process on the port and data dir, and waits for /readyz.
  const launch = async () => {
    exited = null;
    proc = spawn(bin, ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', join(tmp, 'data'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PARLEY_ADDR: '', PARLEY_DATA_DIR: '' },
    });
    proc.stdout.on('data', (d) => logs.push(String(d)));
    proc.stderr.on('data', (d) => logs.push(String(d)));
    const p = proc;
    exit = new Promise((r) => p.once('exit', (code, sig) => { exited = { code, sig }; r(); }));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited) throw new Error(`parley exited early (${JSON.stringify(exited)}):\n${logs.join('')}`);
      try {
        const res = await fetch(base + '/readyz');
        if (res.status === 200) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`parley not ready after 60 s:\n${logs.join('')}`);
      }
      await sleep(200);
    }
  };
  const halt = async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(t);
    }
  };
  await launch();

  return {
    base,
    logs,
    /** Stops the server (SIGTERM, as a deploy does), keeps it down for
     * downMs and starts it again on the same port and data. */
    async restart({ downMs = 3000 } = {}) {
      await halt();
      await sleep(downMs);
      await launch();
    },
    async stop() {
      await halt();
      if (process.env.PARLEY_E2E_KEEP_LOGS) await writeFile(process.env.PARLEY_E2E_KEEP_LOGS, logs.join(''));
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/** A REST helper for seeding data, signed in through dev auth. */
export async function apiUser(base, userId, name = '') {
  const res = await fetch(base + '/v1/auth/dev', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user_id: userId, name }),
  });
  if (res.status !== 200) throw new Error(`dev sign-in for ${userId}: ${res.status} ${await res.text()}`);
  const { token } = await res.json();
  const call = async (method, path, body) => {
    let r;
    for (let attempt = 0; ; attempt++) {
      r = await fetch(base + path, {
        method,
        headers: { Authorization: 'Bearer ' + token, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      // Sends are rate limited; seeding many messages waits as asked.
      if (r.status !== 429 || attempt >= 20) break;
      await r.text();
      await new Promise((ok) => setTimeout(ok, 1000 * (Number(r.headers.get('Retry-After')) || 1)));
    }
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return {
    token,
    call,
    createGroup: (title, members) => call('POST', '/v1/conversations', { kind: 'group', title, members }),
    send: (cid, text, clientId) => call('POST', `/v1/conversations/${encodeURIComponent(cid)}/messages`, { text, client_id: clientId }),
  };
}

// The daemon's sockets and observability end to end, in a namespace that stands for the host:
// 30 half-sent requests on the management socket and 30 on a plugin socket are closed within the
// timeouts while the CLI keeps getting answers; /health and /metrics on the socket (read with
// curl), /metrics alone on --metrics-addr; a store locked by another process makes /health 503.
import net from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { adoptNs, makeNs, uniqueName } from '../helpers/netns.js';
import { CLI, TestDaemon } from '../helpers/daemon.js';
import { run } from '../helpers/exec.js';

const REQUEST_TIMEOUT_MS = 10_000;
const METRICS_PORT = 19323;
let daemon: TestDaemon;

/** curl over the management socket; returns status and body. */
async function curlSocket(url: string): Promise<{ status: number; body: string }> {
  const r = await run(['curl', '-s', '--max-time', '10', '-w', '\n%{http_code}', '--unix-socket', daemon.socket, `http://cnmkit${url}`]);
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
}

/** curl inside the daemon's namespace (for --metrics-addr). */
async function curlTcp(url: string): Promise<{ status: number; body: string }> {
  const r = await daemon.host.exec(['curl', '-s', '--max-time', '10', '-w', '\n%{http_code}', `http://127.0.0.1:${METRICS_PORT}${url}`]);
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
}

function sample(text: string, metric: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${metric} `));
  return line === undefined ? undefined : Number(line.slice(metric.length + 1));
}

/** A connection that sends part of a request; resolves with what came back and when it was closed. */
function halfSent(sock: string, text: string): Promise<{ ms: number; reply: string }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const s = net.connect(sock, () => text && s.write(text));
    let reply = '';
    s.on('data', (d) => (reply += d.toString()));
    s.on('error', () => undefined);
    s.on('close', () => resolve({ ms: Date.now() - started, reply }));
  });
}

describeRoot('daemon sockets, health and metrics', () => {
  beforeEach(async () => {
    daemon = new TestDaemon(await makeNs('host'), ['--metrics-addr', `127.0.0.1:${METRICS_PORT}`]);
    await daemon.start();
  });
  afterEach(async () => {
    await daemon.cleanup();
  });

  it('closes 30 half-sent requests per socket within the timeouts while the CLI gets its answers', async () => {
    const plugin = path.join(daemon.dir, 'plugins', 'cnmkit-bridge.sock');
    const partial = ['', 'GET /v1/networks HTTP/1.1\r\nHost: x\r\nContent-Le', 'POST /v1/networks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"na'];
    const pluginPartial = ['', 'POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\n', 'POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{"Net'];
    const closed = [
      ...Array.from({ length: 30 }, (_, i) => halfSent(daemon.socket, partial[i % 3]!)),
      ...Array.from({ length: 30 }, (_, i) => halfSent(plugin, pluginPartial[i % 3]!)),
    ];
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 3; i += 1) {
      const started = Date.now();
      const ls = await daemon.cmd(['network', 'ls', '-q']);
      expect(ls.code).toBe(0);
      expect(Date.now() - started).toBeLessThan(3000);
    }
    const results = await Promise.all(closed);
    for (const { ms, reply } of results) {
      expect(ms).toBeLessThan(REQUEST_TIMEOUT_MS + 2500);
      expect(reply).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    }
    const health = await curlSocket('/health');
    expect(health.status).toBe(200);
  });

  it('reports health, and 503 naming the store while another process holds its lock', async () => {
    const ok = await curlSocket('/health');
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ status: 'ok', checks: { store: { status: 'ok' }, firewall: { status: 'ok' }, kernel: { status: 'ok' } } });
    const db = path.join(daemon.stateDir, 'state.db');
    expect(fs.existsSync(db)).toBe(true);
    // sqlite3's own CLI holds an exclusive lock on the daemon's database. It waits for the lock
    // (.timeout: the daemon may hold it a moment, and sqlite3 would otherwise fail at once and hold
    // nothing) and says 'held' once it has it (-bail: nothing is said if BEGIN failed).
    const locker = spawn('sqlite3', ['-bail', db], { stdio: ['pipe', 'pipe', 'inherit'] });
    let said = '';
    locker.stdout!.on('data', (d: Buffer) => (said += d.toString()));
    locker.stdin!.write(".timeout 10000\nBEGIN EXCLUSIVE;\nSELECT 'held';\n");
    for (const deadline = Date.now() + 10_000; !said.includes('held') && locker.exitCode === null && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(said).toContain('held');
    // Asked until the answer is 503 (10 s at most), which it is while sqlite3 holds the lock.
    let failed = await curlSocket('/health');
    for (const deadline = Date.now() + 10_000; failed.status !== 503 && Date.now() < deadline; failed = await curlSocket('/health')) {
      await new Promise((r) => setTimeout(r, 50));
    }
    locker.stdin!.end('ROLLBACK;\n');
    await new Promise((r) => locker.on('close', r));
    expect(failed.status).toBe(503);
    const body = JSON.parse(failed.body);
    expect(body).toMatchObject({ status: 'unavailable', code: 'ERR_UNHEALTHY', checks: { store: { status: 'failed' }, firewall: { status: 'ok' }, kernel: { status: 'ok' } } });
    expect(body.error).toMatch(/^unhealthy: store \(.*locked/);
    expect((await curlSocket('/health')).status).toBe(200);
  });

  it('serves metrics that follow what was done, on the socket and on --metrics-addr (which serves nothing else)', async () => {
    expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.40.0/24', 'mnet'])).code).toBe(0);
    expect((await daemon.cmd(['network', 'create', '-d', 'nope', 'bad'])).code).toBe(1);
    const name = uniqueName('m');
    adoptNs(name);
    expect((await daemon.cmd(['sandbox', 'create', '--name', name])).code).toBe(0);
    expect((await daemon.cmd(['connect', 'mnet', name, '-p', '8080-8083:80-83'])).code).toBe(0);
    const viaSocket = await curlSocket('/metrics');
    expect(viaSocket.status).toBe(200);
    const t = viaSocket.body;
    expect(sample(t, 'cnmkit_operations_total{operation="network_create",driver="bridge",result="ok"}')).toBe(1);
    expect(sample(t, 'cnmkit_operations_total{operation="network_create",driver="unknown",result="error"}')).toBe(1);
    expect(sample(t, 'cnmkit_operations_total{operation="connect",driver="bridge",result="ok"}')).toBe(1);
    expect(sample(t, 'cnmkit_api_errors_total{api="management",class="bad-request",code="ERR_INVALID_ARGUMENT"}')).toBe(1);
    const sbs = JSON.parse((await daemon.cmd(['sandbox', 'ls', '--format', 'json'])).stdout) as unknown[];
    expect(sample(t, 'cnmkit_objects{kind="sandbox"}')).toBe(sbs.length);
    expect(sample(t, 'cnmkit_published_ports{proto="tcp"}')).toBe(4);
    expect(sample(t, 'cnmkit_firewall_apply_duration_seconds_count{backend="nftables",operation="add_ports",result="ok"}') ??
      sample(t, 'cnmkit_firewall_apply_duration_seconds_count{backend="iptables",operation="add_ports",result="ok"}')).toBeGreaterThanOrEqual(1);
    expect(sample(t, 'cnmkit_store_transaction_duration_seconds_count')).toBeGreaterThan(0);
    const viaTcp = await curlTcp('/metrics');
    expect(viaTcp.status).toBe(200);
    expect(sample(viaTcp.body, 'cnmkit_operations_total{operation="connect",driver="bridge",result="ok"}')).toBe(1);
    const other = await curlTcp('/v1/networks');
    expect(other.status).toBe(404);
    expect(JSON.parse(other.body)).toEqual({ error: expect.any(String), code: 'ERR_NOT_FOUND' });
    expect(daemon.log).toMatch(/"msg":"firewall tools"/);
    expect(daemon.log).toMatch(/"nft":"\/usr\/sbin\/nft"/);
    expect(fs.statSync(daemon.socket).mode & 0o777).toBe(0o660);
    expect(fs.statSync(path.join(daemon.dir, 'plugins', 'cnmkit-ipam.sock')).mode & 0o777).toBe(0o660);
    expect((await daemon.cmd(['sandbox', 'rm', name])).code).toBe(0);
  });

  it('refuses a malformed --metrics-addr before touching anything', async () => {
    const r = await run([process.execPath, CLI, 'daemon', '--metrics-addr', 'localhost', '--socket', path.join(daemon.dir, 'other.sock')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--metrics-addr: expected IP:PORT/);
    expect(fs.existsSync(path.join(daemon.dir, 'other.sock'))).toBe(false);
  });
});

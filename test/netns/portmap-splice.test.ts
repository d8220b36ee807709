// The proxy's zero-copy TCP path: native spliceRelay on its own, then through the userland proxy —
// bulk both ways checked by SHA-256, unpublish mid-transfer, no fd or thread left behind, and the
// stream fallback when the addon has no relay.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs } from '../helpers/netns.js';
import { Background, nodeFixture, ProxyProcess } from './fixtures/portmap-harness.js';
import { proxyTopology, waitListening, type ProxyTopology } from './fixtures/portmap-topology.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BULK = path.join(here, 'fixtures/portmap-bulk.ts');
const CHECKS = path.join(here, 'fixtures/splice-relay-checks.ts');
const NO_SPLICE = path.join(here, 'fixtures/no-splice.mjs');
const MiB = 1024 * 1024;

const started: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
});

interface Exchange {
  sent: number;
  sentSha: string;
  received: number;
  receivedSha: string;
  error: string | null;
}

/** A background process whose stdout JSON lines are collected as they come. */
class JsonLines {
  readonly lines: Record<string, unknown>[] = [];
  private text = '';

  constructor(readonly proc: Background) {
    proc.child.stdout!.on('data', (d: Buffer) => {
      this.text += d.toString();
      const parts = this.text.split('\n');
      this.text = parts.pop() ?? '';
      for (const line of parts) if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
    });
  }

  static spawn(ns: string, args: string[]): JsonLines {
    const proc = Background.spawn(ns, nodeFixture(BULK, args));
    started.push(proc);
    return new JsonLines(proc);
  }

  /** The first line with key, waiting at most timeoutMs. */
  async find<T>(key: string, timeoutMs = 20_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find((l) => key in l);
      if (hit) return hit as T;
      if (Date.now() > until) throw new Error(`no ${key} line within ${timeoutMs} ms; stderr: ${this.proc.stderr}`);
      await sleep(20);
    }
  }
}

async function proxyIn(topo: ProxyTopology, env: Record<string, string> = {}): Promise<ProxyProcess> {
  const proxy = await ProxyProcess.start(topo.host.name, env);
  started.push(proxy);
  // Waiting for "ready" paused its stderr; flowing again, proxy.proc.stderr collects the log.
  proxy.proc.child.stderr!.resume();
  return proxy;
}

async function publish(proxy: ProxyProcess, topo: ProxyTopology, owner: string, hostPort: number, containerPort: number): Promise<void> {
  await proxy.call('publish', { owner, mappings: [{ proto: 'tcp', hostPort, containerIP: topo.containerIP, containerPort }] });
}

/** Bulk server in the container: every connection sends `bytes` (0 = without end) and reads to EOF. */
async function bulkServer(topo: ProxyTopology, port: number, bytes: number): Promise<JsonLines> {
  const server = JsonLines.spawn(topo.container.name, ['serve', String(port), String(bytes)]);
  await server.find('listening');
  return server;
}

/** The last JSON line a fixture printed (the send mode prints {"flowing":true} first). */
const lastJson = <T>(out: string): T => JSON.parse(out.trim().split('\n').pop() as string) as T;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const threads = (pid: number): number => fs.readdirSync(`/proc/${pid}/task`).length;
const fds = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;

/** Polls until count() equals want (sockets and relay threads end a little after the peers see it). */
async function settlesAt(count: () => number, want: number, timeoutMs = 5_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  while (count() !== want && Date.now() < until) await sleep(50);
  return count();
}

/** Both byte streams of one connection arrived whole: what each end sent, the other received. */
function expectIntact(client: Exchange, server: Exchange, bytes: number): void {
  expect({ ...client, sentSha: '', receivedSha: '' }).toEqual({ sent: bytes, sentSha: '', received: bytes, receivedSha: '', error: null });
  expect(server.received).toBe(bytes);
  expect(server.receivedSha).toBe(client.sentSha);
  expect(client.receivedSha).toBe(server.sentSha);
}

describeRoot('native spliceRelay', () => {
  it('throws like Node on bad arguments, half-closes each way, reports a reset and a cancel, never closes the fds', async () => {
    const ns = await makeNs('splice');
    const report = JSON.parse(await ns.sh(nodeFixture(CHECKS), { timeoutMs: 30_000 })) as Record<string, any>;
    expect(report.hasRelay).toBe(true);
    expect(report.argumentErrors).toMatchObject({
      noCallback: { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' },
      negative: { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' },
      badFd: { code: 'EBADF', errno: -9, syscall: 'getsockopt' },
      notSocket: { code: 'ENOTSOCK', errno: -88, syscall: 'getsockopt' },
    });
    expect(report.halfClose).toEqual({
      sameFd: expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
      serverGot: 'ping from the client\n',
      clientGot: 'pong from the server, after its EOF\n',
      err: null,
      stats: { aToB: 21, bToA: 36, cancelled: false, timedOut: false },
      fdsOpen: true,
    });
    expect(report.reset.err).toMatchObject({ code: 'ECONNRESET', errno: -104, syscall: expect.stringMatching(/^(splice|epoll_wait)$/) });
    expect(report.reset.stats.cancelled).toBe(false);
    expect(report.cancel).toEqual({
      wrongThis: expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_THIS' }),
      serverGot: 'before the cancel\n',
      err: null,
      stats: { aToB: 18, bToA: 0, cancelled: true, timedOut: false },
      fdsOpen: true,
    });
  });
});

describeRoot('userland proxy over the splice relay', () => {
  it('carries 64 MiB each way at the same time, both streams intact', async () => {
    const topo = await proxyTopology();
    const server = await bulkServer(topo, 7000, 64 * MiB);
    const proxy = await proxyIn(topo);
    await publish(proxy, topo, 'bulk', 8070, 7000);
    const client = lastJson<Exchange>(await topo.client.sh(nodeFixture(BULK, ['send', topo.hostIP, '8070', String(64 * MiB)]), { timeoutMs: 60_000 }));
    expectIntact(client, await server.find<Exchange>('sentSha'), 64 * MiB);
    expect(proxy.proc.stderr).not.toMatch(/splice relay unavailable/);
  });

  it('unpublish mid-transfer closes both sides at once and leaves no relay thread, fd or socket behind', async () => {
    const topo = await proxyTopology();
    const server = await bulkServer(topo, 7001, 0);
    const proxy = await proxyIn(topo);
    await publish(proxy, topo, 'endless', 8071, 7001);
    // A first short connection (to an echo) starts the relay's threads: a fixed pool, one per CPU up to 4.
    const echo = Background.spawn(topo.container.name, ['socat', 'TCP4-LISTEN:5000,fork,reuseaddr', 'PIPE']);
    started.push(echo);
    await waitListening(topo.container, 'tcp', 5000);
    await publish(proxy, topo, 'warm', 8075, 5000);
    const idle = fds(proxy.pid);
    expect(await topo.client.sh(['socat', '-t', '1', '-', `TCP4:${topo.hostIP}:8075`], { input: 'warm\n' })).toBe('warm\n');
    const before = { threads: threads(proxy.pid), fds: await settlesAt(() => fds(proxy.pid), idle) };
    const client = JsonLines.spawn(topo.client.name, ['send', topo.hostIP, '8071', '0']);
    await Promise.all([client.find('flowing'), server.find('flowing')]);
    // The pool's threads carry the connection, no new thread; JS holds its two sockets…
    expect(threads(proxy.pid)).toBe(before.threads);
    // …and the relay a pipe per busy direction (two fds each).
    expect(fds(proxy.pid)).toBe(before.fds + 2 + 4);

    expect(await proxy.call('unpublish', { owner: 'endless' })).toBe(1);
    const [atClient, atServer] = await Promise.all([client.find<Exchange>('sentSha', 5_000), server.find<Exchange>('sentSha', 5_000)]);
    expect(atClient.received).toBeGreaterThan(0);
    expect(atServer.received).toBeGreaterThan(0);
    expect(await client.proc.exit(5_000)).toBe(0);
    expect(await topo.host.sh(['ss', '-tnH', 'state', 'established'])).toBe('');
    expect(await settlesAt(() => threads(proxy.pid), before.threads)).toBe(before.threads);
    // The listener is gone too.
    expect(await settlesAt(() => fds(proxy.pid), before.fds - 1)).toBe(before.fds - 1);
  });

  it('200 short connections leave the proxy with the fds and threads it had', async () => {
    const topo = await proxyTopology();
    const echo = Background.spawn(topo.container.name, ['socat', 'TCP4-LISTEN:5000,fork,reuseaddr', 'PIPE']);
    started.push(echo);
    await waitListening(topo.container, 'tcp', 5000);
    const proxy = await proxyIn(topo);
    await publish(proxy, topo, 'short', 8072, 5000);
    const run = async (count: number): Promise<unknown> =>
      JSON.parse(await topo.client.sh(nodeFixture(BULK, ['echo', topo.hostIP, '8072', String(count)]), { timeoutMs: 60_000 }));
    expect(await run(5)).toEqual({ ok: 5, failed: 0 });
    await sleep(500);
    const before = { threads: threads(proxy.pid), fds: fds(proxy.pid) };

    expect(await run(200)).toEqual({ ok: 200, failed: 0 });
    expect({ threads: await settlesAt(() => threads(proxy.pid), before.threads), fds: await settlesAt(() => fds(proxy.pid), before.fds) }).toEqual(before);
  });

  it.each([
    ['the addon has no relay', 'absent'],
    ['every relay fails to start', 'fails'],
  ])('falls back to Node streams when %s: half-close, 16 MiB each way, unpublish, one warning', async (_, mode) => {
    const topo = await proxyTopology();
    const echo = Background.spawn(topo.container.name, ['socat', 'TCP4-LISTEN:5000,fork,reuseaddr', 'PIPE']);
    started.push(echo);
    await waitListening(topo.container, 'tcp', 5000);
    const server = await bulkServer(topo, 7002, 16 * MiB);
    const proxy = await proxyIn(topo, { NODE_OPTIONS: `--import ${NO_SPLICE}`, CNMKIT_TEST_SPLICE: mode as string });
    await publish(proxy, topo, 'echo', 8073, 5000);
    await publish(proxy, topo, 'bulk', 8074, 7002);
    const base = threads(proxy.pid);

    expect(await topo.client.sh(['socat', '-t', '5', '-', `TCP4:${topo.hostIP}:8073`], { input: 'half-closed\n' })).toBe('half-closed\n');
    const client = lastJson<Exchange>(await topo.client.sh(nodeFixture(BULK, ['send', topo.hostIP, '8074', String(16 * MiB)]), { timeoutMs: 60_000 }));
    expectIntact(client, await server.find<Exchange>('sentSha'), 16 * MiB);
    expect(threads(proxy.pid)).toBe(base);
    expect(proxy.proc.stderr.match(/splice relay unavailable/g)).toHaveLength(1);

    const live = Background.spawn(topo.client.name, ['socat', '-', `TCP4:${topo.hostIP}:8073`]);
    started.push(live);
    live.child.stdin!.write('still here\n');
    await live.waitFor(/^still here$/);
    expect(await proxy.call('unpublish', { owner: 'echo' })).toBe(1);
    expect(await live.exit(5_000)).toBe(0);
  });
});

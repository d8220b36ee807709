// `connect --ip` on an address another host holds only as a spare (issue 11), on two simulated
// hosts with a real etcd: host A's stock (src/cluster/spares.ts) gives the address up when host B
// asks for it (src/cluster/wanted.ts), B's endpoint gets it and reaches A's sandbox; a spare A
// handed to a connect that already answered is not given up (B is refused naming A's endpoint,
// which keeps its address); a frozen A (SIGSTOP) does not answer, and B is refused within the
// bound naming the spare's host. No request key is left in any case. Host A reaches etcd through
// a relay in this process, so that its transactions (the publish of a connect) can be dropped for
// a moment while its reads and watches pass. Checked with the CLI's JSON, etcd's keys and pings.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { StoreClient } from '../../src/cluster/client.js';
import { describeRoot } from '../helpers/root.js';
import { GLOBAL_POOL, SimCluster, simCli, waitFor, type SimHost } from '../helpers/cluster.js';
import { TestDaemon } from '../helpers/daemon.js';
import { HoldingRelay } from '../helpers/etcd-relay.js';

interface Ep { id: string; ipv4: string }
interface Held { ip: string; value: { owner: string; kind: string; host: string }; modRevision: number }

const POOL = '/cnmkit/v1/ipam/addresses/198.19.52.0_24/';
const WANTED = '/cnmkit/v1/ipam/wanted/';

let sim: SimCluster;
let h1: SimHost;
let h2: SimHost;
/** Host A: h1's namespace, its daemon reaching etcd through the relay. */
let a: SimHost;
let relay: HoldingRelay;
let etcd: StoreClient;
let aId: string;
let bId: string;
/** Sandboxes a test made, removed after it. */
const made: { h: SimHost; sb: string }[] = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-spareask-'));

const hostIdOf = (h: SimHost): string => (JSON.parse(fs.readFileSync(path.join(h.daemon.stateDir, 'cluster.json'), 'utf8')) as { hostId: string }).hostId;

/** The pool's address keys, by address. */
async function addresses(): Promise<Map<string, Held>> {
  const res = await etcd.range(POOL);
  return new Map(res.kvs.map((kv) => {
    const ip = kv.key.slice(POOL.length);
    return [ip, { ip, value: JSON.parse(kv.value.toString()) as Held['value'], modRevision: kv.modRevision }];
  }));
}

/** A's spare addresses as etcd holds them now (none of them handed to a connect: the test makes none meanwhile). */
async function sparesOfA(): Promise<string[]> {
  return [...(await addresses()).values()].filter((h) => h.value.kind === 'spare' && h.value.host === aId).map((h) => h.ip);
}

async function wantedKeys(): Promise<string[]> {
  return (await etcd.range(WANTED)).kvs.map((kv) => kv.key);
}

async function connect(h: SimHost, sb: string, extra: string[] = []): Promise<{ code: number; stderr: string; ep?: Ep }> {
  const r = await h.daemon.cmd(['connect', 'ovask', sb, ...extra, '--format', 'json']);
  return { code: r.code, stderr: r.stderr, ...(r.code === 0 ? { ep: JSON.parse(r.stdout) as Ep } : {}) };
}

async function sandbox(h: SimHost): Promise<string> {
  const sb = await h.daemon.sandbox();
  made.push({ h, sb });
  return sb;
}

/** A connects a sandbox (without --ip): once its publish landed, A holds a stock. Its address. */
async function stockOnA(): Promise<string> {
  const ip = (await connect(a, await sandbox(a))).ep!.ipv4.split('/')[0]!;
  await waitFor('A\'s endpoint published and A holds spares', async () => {
    return (await addresses()).get(ip)?.value.kind === 'endpoint' && (await sparesOfA()).length >= 3 ? true : undefined;
  }, 5000);
  return ip;
}

async function endpointIps(h: SimHost): Promise<string[]> {
  const [net] = JSON.parse(await simCli(h, ['network', 'inspect', 'ovask', '--format', 'json'])) as { endpoints: { ipv4?: string }[] }[];
  return net!.endpoints.map((e) => e.ipv4!.split('/')[0]!).sort();
}

describeRoot('overlay: --ip on an address another host holds as a spare', () => {
  beforeAll(async () => {
    sim = await SimCluster.create({ hosts: 2, leaseTtl: 20 });
    [h1, h2] = sim.hosts as [SimHost, SimHost];
    relay = new HoldingRelay(path.join(dir, 'relay.sock'), sim.etcd.socketUrl.slice('unix://'.length));
    await relay.listen();
    a = {
      ...h1, daemon: new TestDaemon(h1.ns, [
        '--cluster-store', `unix://${relay.socket}`, '--advertise-addr', 'eth0', '--cluster-lease-ttl', '20',
        '--default-global-address-pool', GLOBAL_POOL, '--firewall-backend', 'none',
      ]),
    };
    await Promise.all([a.daemon.start(), h2.daemon.start()]);
    etcd = sim.etcd.client();
    await simCli(a, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.52.0/24', 'ovask']);
    aId = hostIdOf(a);
    bId = hostIdOf(h2);
  }, 60_000);

  afterEach(async () => {
    for (const { h, sb } of made.splice(0)) await simCli(h, ['sandbox', 'rm', sb]);
  });

  afterAll(async () => {
    if (a?.daemon.proc?.pid) process.kill(a.daemon.proc.pid, 'SIGCONT');
    etcd?.close();
    await a?.daemon.cleanup();
    await h2?.daemon.cleanup();
    await relay?.close();
    await sim?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('B asks for one of A\'s spares: A gives it up, B\'s endpoint has it (B\'s key in etcd) and reaches A\'s sandbox; no request key is left', async () => {
    const aIp = await stockOnA();
    const [ip] = (await sparesOfA()).sort().reverse();
    const sb = await sandbox(h2);
    const started = Date.now();
    const r = await connect(h2, sb, ['--ip', ip!]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.ep!.ipv4).toBe(`${ip}/24`);
    expect(Date.now() - started).toBeLessThan(2000);
    expect((await addresses()).get(ip!)?.value).toEqual({ owner: `endpoint:${r.ep!.id}`, kind: 'endpoint', host: bId });
    expect(await sparesOfA()).not.toContain(ip);
    expect(await wantedKeys()).toEqual([]);
    await waitFor('B\'s sandbox pings A\'s', async () => {
      await h2.ns.sh(['ip', 'netns', 'exec', sb, 'ping', '-c', '1', '-W', '1', aIp]);
      return true;
    }, 5000);
    expect(await endpointIps(h2)).toEqual([ip]);
    expect(await endpointIps(a)).toEqual([aIp]);
  });

  it('a spare A handed to a connect that answered is not given up: B is refused naming A\'s endpoint, which keeps the address', async () => {
    await stockOnA();
    // A's transactions are dropped: its next connect answers from its stock, its publish waits.
    relay.dropWhen = (chunk) => chunk.includes('/v3/kv/txn');
    let aEp: Ep;
    let refused: Awaited<ReturnType<typeof connect>>;
    try {
      const sbA = await sandbox(a);
      aEp = (await connect(a, sbA)).ep!;
      const ip = aEp.ipv4.split('/')[0]!;
      expect((await addresses()).get(ip)?.value.kind).toBe('spare');
      const sbB = await sandbox(h2);
      const asking = connect(h2, sbB, ['--ip', ip]);
      // B has asked (its request key is in etcd) while A's publish is still held: then A's publish may land.
      await waitFor('B asks A for the address', async () => ((await wantedKeys()).length > 0 ? true : undefined), 5000);
      expect((await addresses()).get(ip)?.value.kind).toBe('spare');
      relay.dropWhen = undefined;
      refused = await asking;
    } finally {
      relay.dropWhen = undefined;
    }
    const ip = aEp.ipv4.split('/')[0]!;
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`address ${ip} is in use by endpoint ${aEp.id.slice(0, 12)} on host ${os.hostname()} (${a.ip}, id ${aId})`);
    expect((await addresses()).get(ip)?.value).toEqual({ owner: `endpoint:${aEp.id}`, kind: 'endpoint', host: aId });
    expect(await wantedKeys()).toEqual([]);
    // No duplicate: the address is on A's endpoint only.
    expect(await endpointIps(a)).toContain(ip);
    expect(await endpointIps(h2)).not.toContain(ip);
  });

  it('a frozen A does not give its spare up: B is refused within the bound naming A, A\'s spare is untouched, no request key is left', async () => {
    await stockOnA();
    const [ip] = (await sparesOfA()).sort();
    const before = (await addresses()).get(ip!)!;
    const pid = a.daemon.proc!.pid!;
    const sb = await sandbox(h2);
    process.kill(pid, 'SIGSTOP');
    let r: Awaited<ReturnType<typeof connect>>;
    const started = Date.now();
    try {
      r = await connect(h2, sb, ['--ip', ip!]);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const took = Date.now() - started;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`address ${ip} is in use by a spare address of host ${os.hostname()} (${a.ip}, id ${aId}), which did not give it up within 2000 ms`);
    expect(took).toBeGreaterThanOrEqual(2000);
    expect(took).toBeLessThan(5000);
    expect(await wantedKeys()).toEqual([]);
    expect((await addresses()).get(ip!)).toEqual(before);
    expect(await endpointIps(h2)).not.toContain(ip);
  });
});

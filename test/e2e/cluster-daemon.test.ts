// Cluster mode of the real daemon on simulated hosts (namespaces on an underlay, one real etcd):
// flag validation, registration under a lease, `cnmkit cluster hosts`, lease expiry after a
// SIGKILL, restarts that keep the host id (and the lease, within the TTL), a start with etcd down,
// and global pools that avoid a daemon's local networks. Checked against etcd read directly.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { SimCluster, UNDERLAY_IP, waitFor, type SimHost } from '../helpers/cluster.js';
import { CLI } from '../helpers/daemon.js';
import { run } from '../helpers/exec.js';
import type { StoreClient } from '../../src/cluster/client.js';
import type { ClusterStatus, HostInfo } from '../../src/cluster/types.js';

async function hostsOf(h: SimHost): Promise<HostInfo[]> {
  const r = await h.daemon.cmd(['cluster', 'hosts', '--format', 'json']);
  if (r.code !== 0) throw new Error(`cluster hosts: ${r.stderr}`);
  return JSON.parse(r.stdout) as HostInfo[];
}

async function statusOf(h: SimHost): Promise<ClusterStatus> {
  const r = await h.daemon.cmd(['cluster', 'status', '--format', 'json']);
  if (r.code !== 0) throw new Error(`cluster status: ${r.stderr}`);
  return JSON.parse(r.stdout) as ClusterStatus;
}

describeRoot('cluster mode of the daemon', () => {
  let sim: SimCluster;
  let direct: StoreClient;
  let h1: SimHost;
  let h2: SimHost;

  beforeAll(async () => {
    sim = await SimCluster.create({ hosts: 2, leaseTtl: 3 });
    direct = sim.etcd.client();
    [h1, h2] = sim.hosts as [SimHost, SimHost];
  });
  afterAll(async () => {
    direct?.close();
    await sim?.destroy();
  });

  it('refuses bad cluster flags with exit 2 naming the flag (an advertise interface without an address: exit 1), before touching anything', async () => {
    await h1.ns.sh(['ip', 'link', 'add', 'nov4', 'type', 'veth', 'peer', 'name', 'nov4p']);
    await h1.ns.sh(['ip', 'addr', 'add', 'fd00:c6:13::1/64', 'dev', 'nov4', 'nodad']);
    await h1.ns.sh(['ip', 'link', 'set', 'nov4', 'up']);
    await h1.ns.sh(['ip', 'link', 'set', 'nov4p', 'up']);
    const stateDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-flags-')), 'state');
    const store = `etcd://${UNDERLAY_IP}:2379`;
    const cases: [string[], string][] = [
      [['--cluster-store', 'http://198.19.255.254:2379', '--advertise-addr', 'eth0'], '--cluster-store: expected etcd://HOST:PORT[,HOST:PORT…], got "http://198.19.255.254:2379"'],
      [['--cluster-store', 'etcd://198.19.255.254', '--advertise-addr', 'eth0'], '--cluster-store: expected HOST:PORT, got "198.19.255.254"'],
      [['--cluster-store', store], '--advertise-addr: is required with --cluster-store'],
      [['--advertise-addr', 'eth0'], '--advertise-addr: needs --cluster-store'],
      [['--cluster-store', store, '--advertise-addr', 'eth0', '--cluster-store-opt', 'cacert=/nonexistent/ca.pem'], '--cluster-store-opt cacert: cannot read /nonexistent/ca.pem (ENOENT)'],
      [['--cluster-store', store, '--advertise-addr', 'eth0', '--cluster-lease-ttl', '1'], '--cluster-lease-ttl: expected whole seconds from 2 to 3600, got "1"'],
      [['--cluster-store', store, '--advertise-addr', 'eth0', '--default-global-address-pool', 'base=198.19.0.0/17'], '--default-global-address-pool: size: is required'],
    ];
    // An interface without an IPv4 address, with no earlier run of this host to take its address
    // from: the host's state, not the flag, is wrong (exit 1); nothing is touched either.
    const noAddress = (iface: string) => `--advertise-addr: interface ${iface} is missing, down or has no IPv4 address in this network namespace, and no earlier run of this host saved one`;
    const states: [string[], string][] = [
      [['--cluster-store', store, '--advertise-addr', 'nov4'], noAddress('nov4')],
      [['--cluster-store', store, '--advertise-addr', 'nosuch0'], noAddress('nosuch0')],
    ];
    for (const [code, list] of [[2, cases], [1, states]] as const) {
      for (const [flags, message] of list) {
        const r = await run(['nsenter', `--net=${h1.ns.path}`, '--', process.execPath, CLI, 'daemon', '--state-dir', stateDir, '--socket', path.join(stateDir, 's.sock'), ...flags]);
        expect({ flags, code: r.code, stderr: r.stderr.trim() }).toEqual({ flags, code, stderr: expect.stringContaining(message) });
      }
    }
    expect(fs.existsSync(stateDir)).toBe(false);
    await h1.ns.sh(['ip', 'link', 'del', 'nov4']);
    fs.rmSync(path.dirname(stateDir), { recursive: true, force: true });
  });

  it('registers each host under a lease with its VTEP; cluster hosts lists them, as etcd has them', async () => {
    await Promise.all([h1.daemon.start(), h2.daemon.start()]);
    const s1 = await statusOf(h1);
    expect(s1).toMatchObject({ state: 'connected', vtep: '198.19.255.1', lease: { ttl: 3 } });
    const list = await hostsOf(h1);
    expect(list.map((h) => [h.vtep, h.state, h.self])).toEqual(expect.arrayContaining([['198.19.255.1', 'alive', true], ['198.19.255.2', 'alive', false]]));
    expect(list).toHaveLength(2);
    const kv = (await direct.get(`/cnmkit/v1/hosts/${s1.hostId}`)).kv!;
    expect(kv.lease).toBe(s1.lease!.id);
    expect(JSON.parse(kv.value.toString())).toMatchObject({ id: s1.hostId, vtep: '198.19.255.1', pid: expect.any(Number), localSubnets: [{ network: 'bridge', subnet: '198.18.0.0/24' }] });
    const { ttl, grantedTtl } = await direct.leaseTtl(kv.lease);
    expect(grantedTtl).toBe(3);
    expect(ttl).toBeGreaterThanOrEqual(1);
    const table = await h2.daemon.cmd(['cluster', 'hosts']);
    expect(table.stdout).toMatch(/^ID\s+HOSTNAME\s+VTEP\s+STATE\s+LEASE EXPIRES IN\s+PID\s+STARTED\n/);
    expect(table.stdout).toContain(`${(await statusOf(h2)).hostId} *`);
  });

  it('a SIGKILLed daemon\'s host record stays until its lease expires, then vanishes; restarted it keeps its id (and, within the TTL, its lease)', async () => {
    const id2 = (await statusOf(h2)).hostId;
    await h2.daemon.stop('SIGKILL');
    const killed = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    expect((await hostsOf(h1)).map((h) => h.id)).toContain(id2);
    await waitFor('host 2 gone', async () => ((await hostsOf(h1)).some((h) => h.id === id2) ? undefined : true), 6000);
    expect(Date.now() - killed).toBeGreaterThan(1500);
    expect(Date.now() - killed).toBeLessThan(3000 + 2500);
    // From here a 15 s lease: a daemon takes a few seconds to start on this machine, more than 3 s.
    const args = h2.daemon.extraArgs;
    args[args.indexOf('--cluster-lease-ttl') + 1] = '15';
    await h2.daemon.start();
    const again = await statusOf(h2);
    expect(again.hostId).toBe(id2);
    expect((await hostsOf(h1)).map((h) => h.id)).toContain(id2);
    // Killed and restarted within the TTL: the same lease is adopted, the record was never deleted.
    const before = (await direct.get(`/cnmkit/v1/hosts/${id2}`)).kv!;
    await h2.daemon.stop('SIGKILL');
    await h2.daemon.start();
    const after = (await direct.get(`/cnmkit/v1/hosts/${id2}`)).kv!;
    expect(again.lease!.ttl).toBe(15);
    expect((await statusOf(h2)).lease!.id).toBe(again.lease!.id);
    expect(after.lease).toBe(before.lease);
    expect(after.createRevision).toBe(before.createRevision);
    expect(JSON.parse(after.value.toString()).pid).not.toBe(JSON.parse(before.value.toString()).pid);
  });

  it('starts with etcd down: local networks work, cluster calls fail fast as unavailable, and it registers once etcd is back', async () => {
    await h1.daemon.stop('SIGTERM');
    await sim.etcd.stop();
    await h1.daemon.start();
    expect((await h1.daemon.cmd(['network', 'create', '--subnet', '198.18.40.0/24', 'localnet'])).code).toBe(0);
    const s = await statusOf(h1);
    expect(s.state).toBe('unavailable');
    expect(s.error).toMatch(/etcd|unavailable|no answer/i);
    const t0 = Date.now();
    const r = await h1.daemon.cmd(['cluster', 'hosts']);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: cluster store unavailable: /);
    await sim.etcd.start();
    await waitFor('host 1 registered', async () => ((await statusOf(h1)).state === 'connected' ? true : undefined), 4000);
    const hosts = await hostsOf(h1);
    expect(hosts.find((h) => h.self)?.localSubnets).toEqual(expect.arrayContaining([{ network: 'localnet', subnet: '198.18.40.0/24' }]));
  });

  it('global pools avoid the local networks of every registered daemon, and refuse a given subnet that overlaps one', async () => {
    expect((await h1.daemon.cmd(['network', 'create', '--subnet', '198.19.0.0/24', 'lan1'])).code).toBe(0);
    const id1 = (await statusOf(h1)).hostId;
    // The daemon republishes its local subnets within TTL/3.
    await waitFor('lan1 published', async () => {
      const kv = (await direct.get(`/cnmkit/v1/hosts/${id1}`)).kv;
      return kv && (JSON.parse(kv.value.toString()) as { localSubnets: { subnet: string }[] }).localSubnets.some((l) => l.subnet === '198.19.0.0/24') ? true : undefined;
    }, 3000);
    const other = await sim.inProcessHost(9);
    const net = await other.ensureNetwork({ name: 'g1', driver: 'overlay', internal: false, enableIPv6: false, options: {}, ipv4: [], ipv6: [] });
    expect(net.ipv4[0]!.subnet).toBe('198.19.1.0/24');
    await expect(other.ensureNetwork({ name: 'g2', driver: 'overlay', internal: false, enableIPv6: false, options: {}, ipv4: [{ subnet: '198.19.0.0/24' }], ipv6: [] }))
      .rejects.toThrow(`subnet 198.19.0.0/24 cannot be a global pool: it overlaps the local network lan1 (198.19.0.0/24) on host ${os.hostname()} (${h1.ip}, id ${id1})`);
  });
});

describeRoot('cluster mode over TLS', () => {
  let sim: SimCluster;
  afterAll(async () => {
    await sim?.destroy();
  });

  it('reaches an etcd that requires client certificates with --cluster-store-opt cacert, cert and key', async () => {
    sim = await SimCluster.create({ hosts: 1, leaseTtl: 3, tls: true });
    const h = sim.hosts[0]!;
    const tls = sim.etcd.tls!.client;
    // etcd itself refuses a client without a certificate, and answers one with it (curl, not cnmkit).
    const health = ['curl', '-sS', '--max-time', '5', '--cacert', tls.cacert, `https://${UNDERLAY_IP}:2379/health`];
    expect((await run(['ip', 'netns', 'exec', h.ns.name, ...health])).code).not.toBe(0);
    expect(await h.ns.sh([...health, '--cert', tls.cert, '--key', tls.key])).toContain('"health":"true"');
    await h.daemon.start();
    const s = await statusOf(h);
    expect(s.state).toBe('connected');
    expect((await hostsOf(h)).map((x) => x.vtep)).toEqual(['198.19.255.1']);
  });
});

// A daemon SIGKILLed after a connect answered and before its peer was published: the connect took
// a spare address (no round trip) and its publish waits in the queue. The daemon reaches etcd
// through a relay in this process that drops its requests from just before the connect, so the
// publish can never land before the kill. After the restart (within the lease TTL, so no expiry
// helps): the peer is in etcd on the host's lease, the address key names the endpoint, the other
// host pings the sandbox, and no spare key of the killed run is left.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { StoreClient } from '../../src/cluster/client.js';
import { describeRoot } from '../helpers/root.js';
import { GLOBAL_POOL, SimCluster, simCli, storedPeers, waitFor, type SimHost } from '../helpers/cluster.js';
import { TestDaemon } from '../helpers/daemon.js';
import { HoldingRelay } from '../helpers/etcd-relay.js';

let sim: SimCluster;
let h1: SimHost;
let h2: SimHost;
let daemon: TestDaemon<SimHost['ns']>;
let relay: HoldingRelay;
let etcd: StoreClient;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-crashpub-'));

interface Held { key: string; value: { owner: string; kind: string; host: string }; lease: string; createRevision: number }

/** The address keys of the pool, with their values, lease and creation revision. */
async function addresses(): Promise<Held[]> {
  const res = await etcd.range('/cnmkit/v1/ipam/addresses/198.19.41.0_24/');
  return res.kvs.map((kv) => ({ key: kv.key, value: JSON.parse(kv.value.toString()) as Held['value'], lease: kv.lease, createRevision: kv.createRevision }));
}

describeRoot('overlay: a daemon killed after a connect answered, before its peer was published', () => {
  beforeAll(async () => {
    sim = await SimCluster.create({ hosts: 2, leaseTtl: 20 });
    [h1, h2] = sim.hosts as [SimHost, SimHost];
    relay = new HoldingRelay(path.join(dir, 'relay.sock'), sim.etcd.socketUrl.slice('unix://'.length));
    await relay.listen();
    daemon = new TestDaemon(h1.ns, [
      '--cluster-store', `unix://${relay.socket}`, '--advertise-addr', 'eth0', '--cluster-lease-ttl', '20',
      '--default-global-address-pool', GLOBAL_POOL, '--firewall-backend', 'none',
    ]);
    await Promise.all([daemon.start(), h2.daemon.start()]);
    etcd = sim.etcd.client();
  }, 60_000);

  afterAll(async () => {
    etcd?.close();
    await daemon?.cleanup();
    await h2?.daemon.cleanup();
    await relay?.close();
    await sim?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('after the restart: the peer is in etcd and programmed on the other host; the address is the endpoint\'s; no spare of the killed run is left', async () => {
    const cli = (args: string[]) => simCli({ ...h1, daemon }, args);
    await cli(['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.41.0/24', 'ovq']);
    // h1's spares (h2 holds some ahead too for 2 s, the network having just appeared there).
    const hostId = (JSON.parse(await cli(['cluster', 'status', '--format', 'json'])) as { hostId: string }).hostId;
    await waitFor('h1 holds spares', async () => ((await addresses()).filter((a) => a.value.kind === 'spare' && a.value.host === hostId).length >= 4 ? true : undefined), 5000);
    const probe = await h2.daemon.sandbox();
    await simCli(h2, ['connect', 'ovq', probe]);
    const sb = await daemon.sandbox();

    // From here on, nothing the daemon sends reaches etcd: the connect answers from its stock.
    relay.requestsHeld = true;
    const ep = JSON.parse(await cli(['connect', 'ovq', sb, '--format', 'json'])) as { id: string; ipv4: string };
    await daemon.stop('SIGKILL');
    const ip = ep.ipv4.split('/')[0]!;
    // The window was hit: no peer key, and the address is still the host's spare.
    expect(await storedPeers(etcd, 'ovq', { host: hostId })).toEqual([]);
    expect((await addresses()).find((a) => a.key.endsWith(`/${ip}`))?.value).toEqual({ owner: `spare:${hostId}`, kind: 'spare', host: hostId });
    const before = (await etcd.get('/none')).revision;

    relay.requestsHeld = false;
    await daemon.start();
    const lease = await waitFor('the peer published again', async () => (await storedPeers(etcd, 'ovq', { host: hostId, endpointId: ep.id }))[0]?.lease, 5000);
    expect(lease).not.toBe('0');
    const held = (await addresses()).find((a) => a.key.endsWith(`/${ip}`))!;
    expect(held.value).toEqual({ owner: `endpoint:${ep.id}`, kind: 'endpoint', host: hostId });
    expect(held.lease).toBe(lease);
    // Programmed on the other host: its sandbox reaches the one connected before the kill.
    await waitFor('h2 pings the sandbox on h1', async () => {
      await h2.ns.sh(['ip', 'netns', 'exec', probe, 'ping', '-c', '1', '-W', '1', ip]);
      return true;
    }, 5000);
    // The restarted run swept the killed run's spares (a few seconds after it registered): what is left is its own.
    await waitFor('spares of the killed run deleted', async () => {
      const spares = (await addresses()).filter((a) => a.value.kind === 'spare' && a.value.host === hostId);
      return spares.every((s) => s.createRevision > before) ? true : undefined;
    }, 10_000);
    expect((await addresses()).filter((a) => a.value.kind === 'endpoint' && a.value.host === hostId).map((a) => a.value.owner)).toEqual([`endpoint:${ep.id}`]);

    await cli(['sandbox', 'rm', sb]);
    await simCli(h2, ['sandbox', 'rm', probe]);
    await cli(['network', 'rm', 'ovq']);
  });
});

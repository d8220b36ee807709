// A daemon SIGKILLed inside an overlay connect, after the cluster transaction (addresses and peer)
// committed and before the endpoint was ready. The daemon reaches etcd through a relay in this
// process that holds back etcd's answers once the peer key appears (seen by this test's own watch);
// the kill follows once the endpoint's veth is there (it is made while the transaction is in flight),
// so it lands in that window every time. After the restart, at once (well within the lease
// TTL, so that no expiry does the cleaning): no peer key or address claim of that endpoint in etcd,
// no interface in the host or the sandbox; and the sandbox connects again normally. The connect
// gives its address (--ip): such a connect claims it in etcd before it answers (one without takes
// a spare and publishes after answering: overlay-crash-publish.test.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { keyRange, type StoreClient } from '../../src/cluster/client.js';
import { describeRoot } from '../helpers/root.js';
import { GLOBAL_POOL, SimCluster, simCli, storedPeers, waitFor, type SimHost } from '../helpers/cluster.js';
import { TestDaemon } from '../helpers/daemon.js';
import { HoldingRelay } from '../helpers/etcd-relay.js';

let sim: SimCluster;
let h: SimHost;
let daemon: TestDaemon<SimHost['ns']>;
let relay: HoldingRelay;
let etcd: StoreClient;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-crashjoin-'));

/** Keys under the cluster's prefix whose path holds part, with their values. */
async function keys(part: string): Promise<Record<string, string>> {
  const { kvs } = await etcd.range('/cnmkit/');
  return Object.fromEntries(kvs.filter((kv) => kv.key.includes(part)).map((kv) => [kv.key, kv.value.toString()]));
}

describeRoot('overlay: a daemon killed between the cluster transaction of a connect and the endpoint being ready', () => {
  beforeAll(async () => {
    sim = await SimCluster.create({ hosts: 1, leaseTtl: 20 });
    h = sim.hosts[0]!;
    relay = new HoldingRelay(path.join(dir, 'relay.sock'), sim.etcd.socketUrl.slice('unix://'.length));
    await relay.listen();
    daemon = new TestDaemon(h.ns, [
      '--cluster-store', `unix://${relay.socket}`, '--advertise-addr', 'eth0', '--cluster-lease-ttl', '20',
      '--default-global-address-pool', GLOBAL_POOL, '--firewall-backend', 'none',
    ]);
    await daemon.start();
    etcd = sim.etcd.client();
  }, 60_000);

  afterAll(async () => {
    etcd?.close();
    await daemon?.cleanup();
    await relay?.close();
    await sim?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('after the restart: no peer key, no address claim, no interface of that endpoint; the sandbox connects again', async () => {
    const cli = (args: string[]) => simCli({ ...h, daemon }, args);
    await cli(['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.40.0/24', 'ovk']);
    const sb = await daemon.sandbox();
    // The moment the peer key is written, etcd's answers stop reaching the daemon, which is then killed.
    let resolveKilled: (key: string) => void;
    const killed = new Promise<string>((resolve) => { resolveKilled = resolve; });
    const watcher = await etcd.stream('/v3/watch', { create_request: keyRange('/cnmkit/', true) }, {
      onResult: (res) => {
        const events = (res.events ?? []) as { type?: string; kv: { key: string } }[];
        for (const ev of events) {
          const key = Buffer.from(ev.kv.key, 'base64').toString();
          if (ev.type === 'DELETE' || !key.includes('/peers/ovk/')) continue;
          // The answer is held back; the veth, made while the transaction was in flight, may still
          // be coming: the kill waits for it, so that it lands after the kernel work every time.
          relay.held = true;
          const ifname = `ov${key.split('/').pop()!.slice(0, 10)}`;
          void waitFor('the veth of the connect', async () => ((await h.ns.sh(['ip', '-br', 'link', 'show'])).includes(ifname) ? true : undefined), 5000)
            .then(() => daemon.stop('SIGKILL'))
            .then(() => resolveKilled(key));
          return;
        }
      },
      onEnd: () => undefined,
    });
    relay.delayMs = 200;
    const connect = daemon.cmd(['connect', 'ovk', sb, '--ip', '198.19.40.50']);
    const peerKey = await killed;
    watcher.close();
    const endpointId = peerKey.split('/').pop()!;
    expect((await connect).code).not.toBe(0);
    // The window was hit: the peer and the claimed address are in etcd, the veth pair in the kernel.
    expect((await storedPeers(etcd, 'ovk')).map((p) => p.key)).toEqual([peerKey]);
    const claims = Object.entries(await keys('/ipam/addresses/')).filter(([, v]) => v.includes(`endpoint:${endpointId}`));
    expect(claims).toHaveLength(1);
    expect(await h.ns.sh(['ip', '-br', 'link', 'show'])).toContain(`ov${endpointId.slice(0, 10)}`);

    relay.held = false;
    relay.delayMs = 0;
    const t0 = Date.now();
    await daemon.start();
    // Checked at once: the lease (20 s) has not expired, so only the restart can have cleaned up.
    expect(await storedPeers(etcd, 'ovk')).toEqual([]);
    expect(Object.entries(await keys('/ipam/addresses/')).filter(([, v]) => v.includes(`endpoint:${endpointId}`))).toEqual([]);
    expect(await h.ns.sh(['ip', '-br', 'link', 'show'])).not.toContain(`ov${endpointId.slice(0, 10)}`);
    expect(await h.ns.sh(['ip', '-n', sb, '-br', 'link', 'show'])).not.toMatch(/^eth/m);
    expect(Date.now() - t0).toBeLessThan(15_000);

    // The sandbox is usable again: one endpoint, its key and claim in etcd under the host's lease.
    const ep = JSON.parse(await cli(['connect', 'ovk', sb, '--format', 'json'])) as { id: string; ipv4: string };
    const again = await storedPeers(etcd, 'ovk');
    expect(again.map((p) => p.key.split('/').pop())).toEqual([ep.id]);
    await waitFor('the interface in the sandbox', async () => ((await h.ns.sh(['ip', '-n', sb, '-br', 'addr', 'show'])).includes(ep.ipv4) ? true : undefined), 2000);
    await cli(['sandbox', 'rm', sb]);
    await cli(['network', 'rm', 'ovk']);
  });
});

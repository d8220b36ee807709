// The macvlan driver's view of the Docker engine's endpoints: goneEndpoints reports an endpoint
// only once its link vanished (its namespace destroyed), whatever the mode (passthru too) and
// whether the link is up or down; the start-up sweep keeps what an endpoint's record says its
// detached creation made, even when the record names a sandbox. The engine's move is done as the
// engine does it (`ip link set … netns`); kernel state read with iproute2.
import { randomBytes } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import type { Driver } from '../../src/contract/driver.js';
import type { EndpointRecord, NetworkRecord } from '../../src/core/model.js';
import { check } from '../helpers/exec.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { describeRoot } from '../helpers/root.js';
import { fixture } from './fixtures/macvlan.js';
import { bench, createNetwork, records, type Bench } from './harness.js';

const newId = (): string => randomBytes(32).toString('hex');

interface Setup {
  host: TestNs;
  b: Bench;
  d: Driver;
  net: NetworkRecord;
}

/** The engine's CreateEndpoint: a detached endpoint (its link left in the daemon's namespace), n its address's last byte. */
async function detached(s: Setup, n: number, extra: Partial<EndpointRecord> = {}): Promise<EndpointRecord> {
  const id = newId();
  const ep: EndpointRecord = {
    id, dockerId: id, networkId: s.net.id, name: `ep-${id.slice(0, 12)}`, ports: [], driverData: {}, state: 'ready', created: new Date().toISOString(),
    ipv4: `198.18.241.${n}/24`, ...extra,
  };
  const created = await s.d.createEndpoint(s.net, s.net.config, ep, { kind: 'detached' });
  ep.driverData = created.driverData;
  if (created.macAddress) ep.macAddress = created.macAddress;
  return ep;
}

/** What the engine does at Join: moves the endpoint's link into the container's namespace as eth0 and brings it up. */
async function moveAsEngine(s: Setup, ep: EndpointRecord, into: TestNs): Promise<void> {
  const name = (ep.driverData as { hostIfname: string }).hostIfname;
  await check(['ip', '-n', s.host.name, 'link', 'set', 'dev', name, 'netns', into.name, 'name', 'eth0']);
  await check(['ip', '-n', into.name, 'link', 'set', 'dev', 'eth0', 'up']);
}

/** goneEndpoints, asked again until it names something (the kernel destroys a namespace a moment after its last reference) or 10 s pass. */
async function goneAfterDeath(s: Setup, eps: EndpointRecord[]): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  let gone: string[] = [];
  while (Date.now() < deadline && (gone = await s.d.goneEndpoints!(s.net, s.net.config, eps)).length === 0) await new Promise((r) => setTimeout(r, 100));
  return gone;
}

describeRoot('macvlan: the Docker engine\'s endpoints, gone or kept', () => {
  let s: Setup | undefined;
  afterEach(() => s?.b.close());

  const setUp = async (mode: string): Promise<Setup> => {
    const host = await makeNs('mvgh');
    const b = await bench(host);
    const d = fixture.make(b.ctx);
    const withMode = { ...fixture, network: { ...fixture.network, input: { ...fixture.network.input, options: { macvlan_mode: mode } } } };
    const { net } = records(withMode, undefined, 'gone');
    await createNetwork(d, withMode, net);
    s = { host, b, d, net };
    return s;
  };

  it('a moved macvlan set down inside its container is not gone; it is once its namespace is destroyed', async () => {
    const t = await setUp('bridge');
    const [c1, c2] = [await makeNs('mvgc1'), await makeNs('mvgc2')];
    const [e1, e2] = [await detached(t, 11), await detached(t, 12)];
    await moveAsEngine(t, e1, c1);
    await moveAsEngine(t, e2, c2);
    expect(await t.d.goneEndpoints!(t.net, t.net.config, [e1, e2])).toEqual([]);
    await check(['ip', '-n', c1.name, 'link', 'set', 'dev', 'eth0', 'down']);
    expect(await c1.linkNames(), 'the link is still there, down').toContain('eth0');
    expect(await t.d.goneEndpoints!(t.net, t.net.config, [e1, e2]), 'a link set down is not gone').toEqual([]);
    await c2.delete();
    expect(await goneAfterDeath(t, [e1, e2])).toEqual([e2.id]);
    await c1.delete();
    await t.d.deleteNetwork(t.net, t.net.config);
  });

  it('passthru: an endpoint is reported gone once its namespace is destroyed, not before', async () => {
    const t = await setUp('passthru');
    const c = await makeNs('mvgpt');
    const ep = await detached(t, 13);
    expect(await t.d.goneEndpoints!(t.net, t.net.config, [ep]), 'not moved yet').toEqual([]);
    await moveAsEngine(t, ep, c);
    expect(await t.d.goneEndpoints!(t.net, t.net.config, [ep]), 'moved and up').toEqual([]);
    await check(['ip', '-n', c.name, 'link', 'set', 'dev', 'eth0', 'down']);
    expect(await t.d.goneEndpoints!(t.net, t.net.config, [ep]), 'moved and down').toEqual([]);
    await c.delete();
    expect(await goneAfterDeath(t, [ep])).toEqual([ep.id]);
    await t.d.deleteNetwork(t.net, t.net.config);
  });

  it('the start-up sweep keeps the unmoved link a detached creation recorded, even when the record names a sandbox; it deletes one no record made', async () => {
    const t = await setUp('bridge');
    const kept = await detached(t, 14, { sandboxId: newId() });
    const orphan = await detached(t, 15);
    const names = (ep: EndpointRecord): string => (ep.driverData as { hostIfname: string }).hostIfname;
    expect(await t.host.linkNames()).toEqual(expect.arrayContaining([names(kept), names(orphan)]));
    const swept = await t.d.sweep!([t.net], [kept]);
    expect(swept).toEqual([expect.stringContaining(names(orphan))]);
    const left = await t.host.linkNames();
    expect(left, 'the recorded link stays').toContain(names(kept));
    expect(left, 'the link no record owns is gone').not.toContain(names(orphan));
    await t.d.deleteEndpoint(t.net, t.net.config, kept);
    await t.d.deleteNetwork(t.net, t.net.config);
    expect(await t.host.linkNames()).toEqual(['lo']);
  });
});

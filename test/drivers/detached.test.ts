// The Docker engine's flow for every driver that serves a Docker plugin: the endpoint's interface
// is made detached in the daemon's namespace, then moved into a sandbox — here by the controller's
// applier, as the engine would — where it must carry its address and routes and pass packets.
// Also: deleteEndpoint goes by what creation recorded, goneEndpoints finds the endpoints whose
// namespace died, and the applier moves a link back into the daemon's namespace on failure, not
// into the process's. Checked with iproute2 and ping in throwaway namespaces.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Driver } from '../../src/contract/driver.js';
import { applyJoinInfo } from '../../src/controller/apply.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/core/model.js';
import { check, run } from '../helpers/exec.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { describeRoot } from '../helpers/root.js';
import type { DriverFixture } from './fixture.js';
import { fixture as bridge } from './fixtures/bridge.js';
import { fixture as macvlan } from './fixtures/macvlan.js';
import { bench, createNetwork, kernelState, records, type Bench } from './harness.js';

const newId = (): string => randomBytes(32).toString('hex');

/** The fixture's endpoint address with its last IPv4 byte (or IPv6 group) set to n. */
function address(cidr: string | undefined, n: number): string | undefined {
  if (!cidr) return undefined;
  const [ip, len] = cidr.split('/');
  return ip!.includes(':') ? `${ip!.replace(/[0-9a-f]+$/, n.toString(16))}/${len}` : `${ip!.replace(/\d+$/, String(n))}/${len}`;
}

/** A detached endpoint record as the Docker engine's CreateEndpoint leaves it (no sandbox). */
function dockerEndpoint(fixture: DriverFixture, net: NetworkRecord, n: number): EndpointRecord {
  const id = newId();
  const ipv4 = address(fixture.endpoint.ipv4, n);
  const ipv6 = address(fixture.endpoint.ipv6, n);
  return {
    id, dockerId: id, networkId: net.id, name: `ep-${id.slice(0, 12)}`, ports: [], driverData: {}, state: 'ready', created: new Date().toISOString(),
    ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}),
  };
}

const sandboxOf = (ns: TestNs): SandboxRecord => ({ id: newId(), name: ns.name, kind: 'path', netnsPath: ns.path, labels: {}, state: 'ready', created: new Date().toISOString() });

const linkNames = (ns: TestNs): Promise<string[]> => ns.linkNames();

interface Moved {
  ep: EndpointRecord;
  sb: SandboxRecord;
  /** The interface's name in the daemon's namespace before the move. */
  bornAs: string;
}

/** Creates a detached endpoint, joins it detached, and applies its JoinInfo into ns (moved there, as eth0). */
async function createAndMove(d: Driver, b: Bench, host: TestNs, net: NetworkRecord, ep: EndpointRecord, ns: TestNs): Promise<Moved> {
  const created = await d.createEndpoint(net, net.config, ep, { kind: 'detached' });
  if (created.driverData !== undefined) ep.driverData = created.driverData;
  if (created.macAddress) ep.macAddress = created.macAddress;
  const joined = await d.join(net, net.config, ep, { kind: 'detached' });
  expect(joined.info?.src.where, 'a detached join describes a link in the daemon\'s namespace').toBe('host');
  const bornAs = joined.info!.src.name;
  expect(await linkNames(host)).toContain(bornAs);
  const sb = sandboxOf(ns);
  ep.ifname = await applyJoinInfo(b.ctx.netlink, sb, joined.info!, { fresh: true });
  return { ep, sb, bornAs };
}

function detachedFlow(fixture: DriverFixture): void {
  let host: TestNs;
  let b: Bench;
  let d: Driver;

  const setUp = async (): Promise<NetworkRecord> => {
    host = await makeNs(`hd${fixture.name}`.slice(0, 8));
    b = await bench(host);
    d = fixture.make(b.ctx);
    expect(d.docker?.pluginName, `the ${fixture.name} driver serves a Docker plugin`).toBeDefined();
    const { net } = records(fixture, undefined, 'det');
    await createNetwork(d, fixture, net);
    return net;
  };

  afterEach(() => b?.close());

  it('moves a detached interface into the sandbox with its MAC, addresses and default route; it passes packets; teardown leaves nothing', async () => {
    const [s1, s2] = [await makeNs('dets1'), await makeNs('dets2')];
    const before = await Promise.all([s1, s2].map((s) => kernelState(s, false)));
    const net = await setUp();
    const eps = [dockerEndpoint(fixture, net, 11), dockerEndpoint(fixture, net, 12)];
    const moved = [await createAndMove(d, b, host, net, eps[0]!, s1), await createAndMove(d, b, host, net, eps[1]!, s2)];
    const gateway = net.ipv4[0]!.gateway!.split('/')[0]!;
    for (const [i, s] of [s1, s2].entries()) {
      const { ep, bornAs } = moved[i]!;
      expect(ep.ifname).toBe('eth0');
      expect(await linkNames(host), 'the interface left the daemon\'s namespace').not.toContain(bornAs);
      const [link] = await s.ipJson<{ address: string; flags: string[] }[]>(['link', 'show', 'dev', 'eth0']);
      expect(link!.address).toBe(ep.macAddress);
      expect(link!.flags).toContain('UP');
      const [addrs] = await s.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(['addr', 'show', 'dev', 'eth0']);
      expect(addrs!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(expect.arrayContaining([ep.ipv4, ep.ipv6].filter((a) => a !== undefined)));
      expect(await s.ipJson(['-4', 'route', 'show', 'default'])).toEqual([expect.objectContaining({ dst: 'default', gateway, dev: 'eth0' })]);
    }
    const ip = (ep: EndpointRecord): string => ep.ipv4!.split('/')[0]!;
    expect((await s1.exec(['ping', '-c', '1', '-W', '2', ip(eps[1]!)])).code, 'sandbox 1 reaches sandbox 2').toBe(0);
    expect((await s2.exec(['ping', '-c', '1', '-W', '2', ip(eps[0]!)])).code, 'sandbox 2 reaches sandbox 1').toBe(0);
    if (fixture.kernel?.networkAddress) expect((await s1.exec(['ping', '-c', '1', '-W', '2', gateway])).code, 'sandbox 1 reaches the gateway on the network\'s device').toBe(0);
    for (const { ep, sb } of moved) {
      await d.leave(net, net.config, ep, sb);
      await d.deleteEndpoint(net, net.config, ep);
    }
    await d.deleteNetwork(net, net.config);
    expect(await Promise.all([s1, s2].map((s) => kernelState(s, false))), 'the sandboxes are as they were').toEqual(before);
    expect(await linkNames(host)).toEqual(['lo']);
  });

  it('deleteEndpoint removes what a detached creation made, by what it recorded, even when the record names a sandbox (whose record is gone: no leave)', async () => {
    const net = await setUp();
    const before = await kernelState(host, true);
    const ep = { ...dockerEndpoint(fixture, net, 13), sandboxId: newId() };
    const created = await d.createEndpoint(net, net.config, ep, { kind: 'detached' });
    ep.driverData = created.driverData;
    expect(await kernelState(host, true)).not.toEqual(before);
    await d.deleteEndpoint(net, net.config, ep);
    expect(await kernelState(host, true), 'the detached endpoint\'s links are gone').toEqual(before);
    await d.deleteNetwork(net, net.config);
  });

  it('goneEndpoints names exactly the moved endpoints whose namespace was destroyed (not one still unmoved, not one alive)', async () => {
    const [s1, s2] = [await makeNs('detg1'), await makeNs('detg2')];
    const net = await setUp();
    expect(d.goneEndpoints, `the ${fixture.name} driver serves the Docker engine, whose crashes leave endpoints it forgot: it needs goneEndpoints`).toBeDefined();
    const alive = (await createAndMove(d, b, host, net, dockerEndpoint(fixture, net, 21), s1)).ep;
    const dying = (await createAndMove(d, b, host, net, dockerEndpoint(fixture, net, 22), s2)).ep;
    const unmoved = dockerEndpoint(fixture, net, 23);
    unmoved.driverData = (await d.createEndpoint(net, net.config, unmoved, { kind: 'detached' })).driverData;
    const all = [alive, dying, unmoved];
    expect(await d.goneEndpoints!(net, net.config, all)).toEqual([]);
    // The engine's sandbox dies; the handle the applier opened there (standing in for the engine's move) would pin it.
    b.ctx.netlink.release(s2.path);
    await s2.delete();
    // The kernel destroys a namespace (and its devices) in a worker, a moment after its last reference.
    const deadline = Date.now() + 10_000;
    let gone: string[] = [];
    while (Date.now() < deadline && (gone = await d.goneEndpoints!(net, net.config, all)).length === 0) await new Promise((r) => setTimeout(r, 100));
    expect(gone).toEqual([dying.id]);
    await d.leave(net, net.config, alive, sandboxOf(s1));
    for (const ep of all) await d.deleteEndpoint(net, net.config, ep);
    await d.deleteNetwork(net, net.config);
    expect(await linkNames(host)).toEqual(['lo']);
  });
}

describeRoot('endpoints born in the daemon\'s namespace (the Docker engine\'s flow), moved by the applier', () => {
  for (const fixture of [bridge, macvlan]) describe(`driver ${fixture.name}`, () => detachedFlow(fixture));

  it('on failure, moves the link back into the daemon\'s namespace, which is not the process\'s own', async () => {
    const [proc, daemon, sandbox] = [await makeNs('rbproc'), await makeNs('rbdmn'), await makeNs('rbsb')];
    await check(['ip', '-n', daemon.name, 'link', 'add', 'rbk0', 'type', 'veth', 'peer', 'name', 'rbk1']);
    const child = path.join(import.meta.dirname, 'apply-rollback-child.ts');
    const r = await run(['nsenter', `--net=${proc.path}`, '--', process.execPath, '--import', 'tsx', child, daemon.path, sandbox.path, 'rbk1'], { timeoutMs: 60_000 });
    expect(r.stdout, r.stderr).toMatch(/^failed: /);
    expect(r.code).toBe(0);
    expect(await daemon.linkNames(), 'the link is back where it was born, with its name').toEqual(['lo', 'rbk0', 'rbk1']);
    expect(await sandbox.linkNames()).toEqual(['lo']);
    expect(await proc.linkNames(), 'nothing landed in the process\'s own namespace').toEqual(['lo']);
  });
});

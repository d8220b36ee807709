// The conformance tests for drivers that make kernel objects (fixture.kernel): sweep removes only
// its own orphans, restore recreates a deleted network device, and check reports a deleted
// device, a flushed address and a flushed firewall rule. Damage is done with iproute2 and nft.
import { expect, it } from 'vitest';
import type { CheckItem, Driver } from '../../src/contract/driver.js';
import { check as sh } from '../helpers/exec.js';
import type { TestNs } from '../helpers/netns.js';
import type { DriverFixture } from './fixture.js';
import { connect, createNetwork, deleteOneRule, disconnect, records, type Bench } from './harness.js';

interface Live {
  host: TestNs;
  sandbox: TestNs | undefined;
  b: Bench;
  d: Driver;
}

function wellFormed(items: CheckItem[]): void {
  for (const i of items) for (const k of ['object', 'what', 'expected', 'found'] as const) expect(i[k], `check item ${JSON.stringify(i)}: ${k}`).toMatch(/\S/);
}

export function kernelTests(fixture: DriverFixture, live: () => Live, everything: () => Promise<string[]>): void {
  const kernel = fixture.kernel!;

  it(kernel.sweeps ? 'sweeps its own orphans and nothing else (a foreign bridge and veth survive)' : 'declares no sweep, and has none', async () => {
    const { host, sandbox, d, b } = live();
    if (!kernel.sweeps) {
      expect(d.sweep, `fixtures/${fixture.name}.ts says kernel.sweeps: false but the driver has sweep(): set it true`).toBeUndefined();
      return;
    }
    expect(d.sweep, `the ${fixture.name} driver makes kernel objects but has no sweep(): a crash between the kernel change and the store leaves orphans nothing removes. Implement Driver.sweep (or set kernel.sweeps: false in its fixture and say why)`).toBeDefined();
    await sh(['ip', '-n', host.name, 'link', 'add', 'foreignbr', 'type', 'bridge']);
    await sh(['ip', '-n', host.name, 'link', 'add', 'foreignv0', 'type', 'veth', 'peer', 'name', 'foreignv1']);
    await sh(['ip', '-n', host.name, 'link', 'set', 'foreignv0', 'master', 'foreignbr']);
    const before = await everything();
    const { net, sb, ep } = records(fixture, sandbox);
    await createNetwork(d, fixture, net);
    await connect(d, b.ctx, net, ep, sb);
    // The store lost both records (a crash before they were written): everything of theirs is an orphan.
    const removed = await d.sweep!([], []);
    expect(removed.length).toBeGreaterThan(0);
    const links = (await host.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname);
    expect(links).toEqual(expect.arrayContaining(['foreignbr', 'foreignv0', 'foreignv1']));
    for (const dev of kernel.networkDevices(net, net.config)) expect(links).not.toContain(dev);
    // What a sweep does not own (firewall rules: the firewall's own reconcile) goes with a normal teardown.
    await disconnect(d, net, ep, sb);
    await d.deleteNetwork(net, net.config);
    expect(await everything()).toEqual(before);
  });

  it(kernel.restores ? 'restores a deleted network device, with its address' : 'declares no restore, and has none', async () => {
    const { host, sandbox, d } = live();
    if (!kernel.restores) {
      expect(d.restore, `fixtures/${fixture.name}.ts says kernel.restores: false but the driver has restore(): set it true`).toBeUndefined();
      return;
    }
    expect(d.restore, `the ${fixture.name} driver makes network devices but has no restore(): after a restart a deleted device stays gone. Implement Driver.restore (or set kernel.restores: false in its fixture and say why)`).toBeDefined();
    const { net } = records(fixture, sandbox);
    await createNetwork(d, fixture, net);
    const made = await everything();
    for (const dev of kernel.networkDevices(net, net.config)) await sh(['ip', '-n', host.name, 'link', 'del', dev]);
    expect((await d.check(net, net.config, [])).length, 'check after deleting the network device').toBeGreaterThan(0);
    await d.restore!(net, net.config);
    expect(await everything()).toEqual(made);
    expect(await d.check(net, net.config, [])).toEqual([]);
    await d.deleteNetwork(net, net.config);
  });

  it('check finds a flushed address, a flushed firewall rule and deleted devices', async () => {
    const { host, sandbox, d, b } = live();
    const { net, sb, ep } = records(fixture, sandbox);
    await createNetwork(d, fixture, net);
    await connect(d, b.ctx, net, ep, sb);
    const found = (): Promise<CheckItem[]> => d.check(net, net.config, [{ ep, sb }]);
    expect(await found()).toEqual([]);
    const netAddr = kernel.networkAddress?.(net, net.config);
    if (netAddr) {
      await sh(['ip', '-n', host.name, 'addr', 'del', netAddr.cidr, 'dev', netAddr.dev]);
      expect(await found()).toContainEqual(expect.objectContaining({ object: `network ${net.name}`, what: 'address', expected: `${netAddr.cidr} on ${netAddr.dev}` }));
    }
    if (sandbox && ep.ifname && (ep.ipv4 || ep.ipv6)) {
      await sh(['ip', '-n', sandbox.name, 'addr', 'flush', 'dev', ep.ifname]);
      const items = await found();
      for (const cidr of [ep.ipv4, ep.ipv6].filter((c): c is string => !!c))
        expect(items).toContainEqual(expect.objectContaining({ object: expect.stringContaining(`endpoint ${ep.name}`), what: 'address', expected: `${cidr} on ${ep.ifname}` }));
    }
    if (kernel.firewall) {
      expect(await deleteOneRule(host, net.id), 'no nft rule tagged with the network id').toBe(true);
      expect(await found()).toContainEqual(expect.objectContaining({ object: `network ${net.name}`, what: 'firewall rules' }));
    }
    if (sandbox && ep.ifname) {
      await sh(['ip', '-n', sandbox.name, 'link', 'del', ep.ifname]);
      expect(await found()).toContainEqual(expect.objectContaining({ object: expect.stringContaining(`endpoint ${ep.name}`), what: 'device', found: 'missing' }));
    }
    for (const dev of kernel.networkDevices(net, net.config)) await sh(['ip', '-n', host.name, 'link', 'del', dev]);
    const last = await found();
    wellFormed(last);
    for (const dev of kernel.networkDevices(net, net.config)) expect(last).toContainEqual(expect.objectContaining({ object: `network ${net.name}`, what: 'device', found: 'missing', expected: expect.stringContaining(dev) }));
    await disconnect(d, net, ep, sb);
    await d.deleteNetwork(net, net.config);
  });
}

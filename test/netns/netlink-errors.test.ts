// Bad input and kernel refusals: a clear error naming the field (or the kernel's errno and its
// own words), and nothing created — a refused veth leaves neither end in either namespace.
import { expect, it } from 'vitest';
import { addBridge, addRoute, addVeth, addVxlan, NetlinkHandle } from '../../src/netlink/index.js';
import { InvalidArgumentError, KernelError, NotFoundError } from '../../src/errors.js';
import { describeRoot } from '../helpers/root.js';
import { makeNs } from '../helpers/netns.js';
import { handleOn } from './netlink-helpers.js';

describeRoot('netlink errors', () => {
  it.each([
    ['a name longer than 15 characters', { name: 'veth-much-too-long' }, /^name: .*longer than 15/],
    ['a slash in the name', { name: 've/th0' }, /^name: .*may hold only/],
    ['a space in the name', { name: 've th0' }, /^name: .*may hold only/],
    ['a bad peer name', { peer: { name: 'x'.repeat(16) } }, /^peer\.name: /],
    ['an MTU below the minimum', { mtu: 40 }, /^mtu: 40 must be an integer from 68/],
    ['a malformed MAC', { peer: { name: 'p0', mac: '02:00:00:00:00' } }, /^peer\.mac: /],
    ['a relative namespace path', { peer: { name: 'p0', nsPath: 'sandbox1' } }, /^peer\.nsPath: /],
  ])('refuses %s before any kernel call and creates nothing', async (_what, bad, why) => {
    const [a, b] = await Promise.all([makeNs('ea'), makeNs('eb')]);
    const h = handleOn(a);
    const spec = { name: 'good0', ...bad, peer: { name: 'peer0', nsPath: b.path, ...(bad as { peer?: object }).peer } };
    const err = await addVeth(h, spec as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(why);
    expect(await a.linkNames()).toEqual(['lo']);
    expect(await b.linkNames()).toEqual(['lo']);
  });

  it('a missing namespace is NotFoundError, for a handle and for a veth peer', async () => {
    const a = await makeNs('miss');
    expect(() => NetlinkHandle.open('/run/netns/cnmkit-no-such-ns')).toThrow(NotFoundError);
    const h = handleOn(a);
    await expect(addVeth(h, { name: 'v0', peer: { name: 'p0', nsPath: '/run/netns/cnmkit-no-such-ns' } })).rejects.toThrow(NotFoundError);
    expect(await a.linkNames()).toEqual(['lo']);
  });

  it('a duplicate peer name in the target namespace leaves neither end behind', async () => {
    const [a, b] = await Promise.all([makeNs('dpa'), makeNs('dpb')]);
    await b.sh(['ip', 'link', 'add', 'eth0', 'type', 'bridge']);
    const h = handleOn(a);
    const err = await addVeth(h, { name: 'host0', up: true, peer: { name: 'eth0', nsPath: b.path } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect(err).toMatchObject({ errnoCode: 'EEXIST', errorClass: 'conflict' });
    expect(await a.linkNames()).toEqual(['lo']);
    expect(await b.linkNames()).toEqual(['eth0', 'lo']);
    const [eth0] = await b.ipJson<{ linkinfo?: { info_kind: string } }[]>(['-d', 'link', 'show', 'eth0']);
    expect(eth0?.linkinfo?.info_kind).toBe('bridge');
  });

  it('a duplicate host-side name leaves no peer in the other namespace', async () => {
    const [a, b] = await Promise.all([makeNs('dha'), makeNs('dhb')]);
    await a.sh(['ip', 'link', 'add', 'taken0', 'type', 'bridge']);
    const h = handleOn(a);
    await expect(addVeth(h, { name: 'taken0', peer: { name: 'eth0', nsPath: b.path } })).rejects.toMatchObject({ errnoCode: 'EEXIST' });
    await expect(addBridge(h, { name: 'taken0' })).rejects.toThrow(/^link add taken0 type bridge: EEXIST/);
    expect(await a.linkNames()).toEqual(['lo', 'taken0']);
    expect(await b.linkNames()).toEqual(['lo']);
  });

  it("carries the kernel's extended-ACK text in the error", async () => {
    const ns = await makeNs('ext');
    const h = handleOn(ns);
    await addVxlan(h, { name: 'vx0', vni: 77, local: '198.18.1.1' });
    const dup = await addVxlan(h, { name: 'vx1', vni: 77, local: '198.18.1.1' }).catch((e: unknown) => e);
    expect(dup).toMatchObject({ name: 'KernelError', errnoCode: 'EEXIST', extack: expect.stringMatching(/VNI already exists/) });
    expect(await ns.linkNames()).toEqual(['lo', 'vx0']);
    const route = await addRoute(h, { dst: 'default', gateway: '198.18.9.9' }).catch((e: unknown) => e);
    expect(route).toMatchObject({ errnoCode: 'ENETUNREACH', extack: expect.stringMatching(/gateway/i) });
    expect((route as Error).message).toMatch(/^route add default via 198\.18\.9\.9: ENETUNREACH \(/);
  });
});

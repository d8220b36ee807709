// Addresses, routes, neighbours and FDB entries: each added, listed and deleted through the
// handle, and each step checked with `ip -j` / `bridge -j` in the throwaway namespace.
import { expect, it } from 'vitest';
import {
  addAddress, addBridge, addFdb, addNeighbor, addRoute, addVeth, addVxlan, appendFdb, deleteAddress, deleteFdb,
  deleteNeighbor, deleteRoute, getLink, listAddresses, listFdb, listNeighbors, listRoutes, replaceFdb, setLinkUp, setNeighSolicit,
} from '../../src/netlink/index.js';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { fdbRows, neighRows } from '../helpers/entries.js';
import { handleOn } from './netlink-helpers.js';

async function vethUp(ns: TestNs): Promise<ReturnType<typeof handleOn>> {
  const h = handleOn(ns);
  await addVeth(h, { name: 'v0', up: true, peer: { name: 'v1' } });
  await setLinkUp(h, 'v1');
  return h;
}

interface IpAddr { ifname: string; addr_info: { local: string; prefixlen: number; family: string; nodad?: boolean }[] }

describeRoot('netlink addresses, routes, neighbours, FDB', () => {
  it('adds, lists and deletes IPv4 and IPv6 addresses (nodad)', async () => {
    const ns = await makeNs('adr');
    const h = await vethUp(ns);
    await addAddress(h, 'v0', '10.210.0.1/24');
    await addAddress(h, 'v0', 'fd00:210::1/64', { nodad: true });
    const [ip] = await ns.ipJson<IpAddr[]>(['addr', 'show', 'dev', 'v0']);
    const got = ip!.addr_info.filter((a) => !a.local.startsWith('fe80'));
    expect(got).toEqual([
      expect.objectContaining({ family: 'inet', local: '10.210.0.1', prefixlen: 24 }),
      expect.objectContaining({ family: 'inet6', local: 'fd00:210::1', prefixlen: 64, nodad: true }),
    ]);
    const listed = (await listAddresses(h, { dev: 'v0' })).filter((a) => a.scope !== 'link');
    expect(listed.map((a) => [a.cidr, a.family, a.nodad])).toEqual([['10.210.0.1/24', 4, false], ['fd00:210::1/64', 6, true]]);
    const v4 = (await listAddresses(h, { family: 4 })).map((a) => a.cidr);
    expect(v4).toContain('10.210.0.1/24');
    expect(v4.filter((c) => c.includes(':'))).toEqual([]);
    await expect(addAddress(h, 'v0', '10.210.0.1/24')).rejects.toMatchObject({ errnoCode: 'EEXIST' });
    await addAddress(h, 'v0', '10.210.0.1/24', { replace: true });
    expect(await deleteAddress(h, 'v0', '10.210.0.1/24')).toBe(true);
    expect(await deleteAddress(h, 'v0', '10.210.0.1/24', { ifExists: true })).toBe(false);
    expect(await deleteAddress(h, 'v0', 'fd00:210::1/64')).toBe(true);
    const [left] = await ns.ipJson<IpAddr[]>(['addr', 'show', 'dev', 'v0']);
    expect(left!.addr_info.filter((a) => !a.local.startsWith('fe80'))).toEqual([]);
  });

  it('adds, lists and deletes default, gateway and device routes, in main and another table', async () => {
    const ns = await makeNs('rte');
    const h = await vethUp(ns);
    await addAddress(h, 'v0', '10.211.0.1/24');
    await addAddress(h, 'v0', 'fd00:211::1/64', { nodad: true });
    await addRoute(h, { dst: 'default', gateway: '10.211.0.254' });
    await addRoute(h, { dst: '10.99.0.0/16', dev: 'v1', metric: 50 });
    await addRoute(h, { dst: '10.98.0.0/16', gateway: '10.211.0.9', table: 100 });
    await addRoute(h, { dst: 'default', gateway: 'fd00:211::fe' });
    const main = await ns.ipJson<{ dst: string; gateway?: string; dev: string; scope?: string; metric?: number; protocol?: string }[]>(['route', 'show']);
    expect(main).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: 'default', gateway: '10.211.0.254', dev: 'v0' }),
      expect.objectContaining({ dst: '10.99.0.0/16', dev: 'v1', scope: 'link', metric: 50 }),
    ]));
    expect(await ns.ipJson(['route', 'show', 'table', '100'])).toEqual([expect.objectContaining({ dst: '10.98.0.0/16', gateway: '10.211.0.9' })]);
    expect(await ns.ipJson(['-6', 'route', 'show', 'default'])).toEqual([expect.objectContaining({ gateway: 'fd00:211::fe', dev: 'v0' })]);
    const v1 = await getLink(h, 'v1');
    const listed = await listRoutes(h, { family: 4 });
    expect(listed).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: 'default', gateway: '10.211.0.254', table: 254, protocol: 'boot', type: 'unicast' }),
      expect.objectContaining({ dst: '10.99.0.0/16', dev: v1.index, scope: 'link', metric: 50 }),
    ]));
    expect(await listRoutes(h, { table: 100 })).toEqual([expect.objectContaining({ dst: '10.98.0.0/16', gateway: '10.211.0.9', table: 100 })]);
    expect(await deleteRoute(h, { dst: 'default', gateway: '10.211.0.254' })).toBe(true);
    expect(await deleteRoute(h, { dst: 'default', gateway: '10.211.0.254' }, { ifExists: true })).toBe(false);
    expect(await deleteRoute(h, { dst: '10.98.0.0/16', gateway: '10.211.0.9', table: 100 })).toBe(true);
    expect(await deleteRoute(h, { dst: 'default', gateway: 'fd00:211::fe' })).toBe(true);
    expect(await ns.ipJson(['route', 'show', 'default'])).toEqual([]);
    expect(await ns.ipJson(['route', 'show', 'table', '100'])).toEqual([]);
    await expect(addRoute(h, { dst: '10.97.0.1/16', dev: 'v0' })).rejects.toThrow(/^dst: .*host bits/);
  });

  it('sets an interface\'s neighbour solicitation (interval and count) for IPv4 and IPv6, that interface only', async () => {
    const ns = await makeNs('ntb');
    const h = await vethUp(ns);
    const sysctl = async (family: string, dev: string, key: string) => (await ns.sh(['cat', `/proc/sys/net/${family}/neigh/${dev}/${key}`])).trim();
    const before = await sysctl('ipv4', 'v1', 'retrans_time_ms');
    const index = (await getLink(h, 'v0')).index;
    await setNeighSolicit(h, index, 4, { intervalMs: 20, probes: 15 });
    await setNeighSolicit(h, index, 6, { intervalMs: 40, probes: 7 });
    expect([await sysctl('ipv4', 'v0', 'retrans_time_ms'), await sysctl('ipv4', 'v0', 'mcast_solicit')]).toEqual(['20', '15']);
    expect([await sysctl('ipv6', 'v0', 'retrans_time_ms'), await sysctl('ipv6', 'v0', 'mcast_solicit')]).toEqual(['40', '7']);
    expect(await sysctl('ipv4', 'v1', 'retrans_time_ms')).toBe(before);
    await expect(setNeighSolicit(h, 999_999, 4, { intervalMs: 20, probes: 15 })).rejects.toMatchObject({ errnoCode: 'ENOENT' });
  });

  it('adds, lists and deletes permanent neighbours', async () => {
    const ns = await makeNs('nei');
    const h = await vethUp(ns);
    await addNeighbor(h, { dev: 'v0', ip: '10.212.0.7', mac: '02:00:00:00:07:07' });
    await addNeighbor(h, { dev: 'v0', ip: 'fd00:212::7', mac: '02:00:00:00:07:08' });
    const shown = await neighRows(ns, 'v0', 'permanent');
    expect(shown).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: '10.212.0.7', lladdr: '02:00:00:00:07:07', state: ['PERMANENT'] }),
      expect.objectContaining({ dst: 'fd00:212::7', lladdr: '02:00:00:00:07:08', state: ['PERMANENT'] }),
    ]));
    const listed = (await listNeighbors(h, { dev: 'v0' })).filter((n) => n.state.includes('permanent'));
    expect(listed.map((n) => [n.ip, n.mac, n.family])).toEqual(expect.arrayContaining([['10.212.0.7', '02:00:00:00:07:07', 4], ['fd00:212::7', '02:00:00:00:07:08', 6]]));
    await expect(addNeighbor(h, { dev: 'v0', ip: '10.212.0.7', mac: '02:00:00:00:07:09' })).rejects.toMatchObject({ errnoCode: 'EEXIST' });
    await addNeighbor(h, { dev: 'v0', ip: '10.212.0.7', mac: '02:00:00:00:07:09' }, { replace: true });
    expect(await ns.ipJson(['neigh', 'show', '10.212.0.7', 'dev', 'v0'])).toEqual([expect.objectContaining({ lladdr: '02:00:00:00:07:09' })]);
    expect(await deleteNeighbor(h, { dev: 'v0', ip: '10.212.0.7' })).toBe(true);
    expect(await deleteNeighbor(h, { dev: 'v0', ip: '10.212.0.7' }, { ifExists: true })).toBe(false);
    expect(await deleteNeighbor(h, { dev: 'v0', ip: 'fd00:212::7' })).toBe(true);
    expect(await neighRows(ns, 'v0', 'permanent')).toEqual([]);
  });

  it('appends VXLAN flooding remotes, replaces and deletes unicast entries, per remote', async () => {
    const ns = await makeNs('fdx');
    const h = handleOn(ns);
    await addVxlan(h, { name: 'vx0', vni: 300, local: '198.18.3.1' });
    await appendFdb(h, { dev: 'vx0', mac: '00:00:00:00:00:00', dst: '198.18.3.2' });
    await appendFdb(h, { dev: 'vx0', mac: '00:00:00:00:00:00', dst: '198.18.3.3' });
    await addFdb(h, { dev: 'vx0', mac: '02:00:00:00:03:02', dst: '198.18.3.2', vni: 301, port: 4790 });
    const shown = await fdbRows(ns, 'vx0');
    const flood = shown.filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst).sort();
    expect(flood).toEqual(['198.18.3.2', '198.18.3.3']);
    expect(shown).toEqual(expect.arrayContaining([expect.objectContaining({ mac: '02:00:00:00:03:02', dst: '198.18.3.2', vni: 301, port: 4790, state: 'permanent' })]));
    const listed = await listFdb(h, { dev: 'vx0' });
    expect(listed.map((e) => [e.mac, e.dst, e.vni, e.port, e.self]).sort()).toEqual([
      ['00:00:00:00:00:00', '198.18.3.2', undefined, undefined, true],
      ['00:00:00:00:00:00', '198.18.3.3', undefined, undefined, true],
      ['02:00:00:00:03:02', '198.18.3.2', 301, 4790, true],
    ]);
    await replaceFdb(h, { dev: 'vx0', mac: '02:00:00:00:03:02', dst: '198.18.3.3' });
    expect((await fdbRows(ns, 'vx0')).filter((e) => e.mac === '02:00:00:00:03:02').map((e) => e.dst)).toEqual(['198.18.3.3']);
    expect(await deleteFdb(h, { dev: 'vx0', mac: '00:00:00:00:00:00', dst: '198.18.3.2' })).toBe(true);
    expect((await fdbRows(ns, 'vx0')).filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst)).toEqual(['198.18.3.3']);
    expect(await deleteFdb(h, { dev: 'vx0', mac: '02:00:00:00:03:02' })).toBe(true);
    expect(await deleteFdb(h, { dev: 'vx0', mac: '02:00:00:00:03:02' }, { ifExists: true })).toBe(false);
    await expect(deleteFdb(h, { dev: 'vx0', mac: '02:00:00:00:03:02' })).rejects.toMatchObject({ errnoCode: 'ENOENT' });
    expect((await fdbRows(ns, 'vx0')).map((e) => e.mac)).toEqual(['00:00:00:00:00:00']);
  });

  it('adds, lists and deletes static entries in a bridge FDB through its port', async () => {
    const ns = await makeNs('fdb');
    const h = handleOn(ns);
    await addBridge(h, { name: 'br0', up: true });
    await addVeth(h, { name: 'p0', master: 'br0', up: true, peer: { name: 'p1' } });
    await addFdb(h, { dev: 'p0', mac: '02:00:00:00:04:01', target: 'master', state: 'static' });
    const shown = (await fdbRows(ns, 'p0')).filter((e) => e.mac === '02:00:00:00:04:01');
    expect(shown).toEqual([expect.objectContaining({ master: 'br0', state: 'static' })]);
    const br = await getLink(h, 'br0');
    const listed = (await listFdb(h, { bridge: 'br0' })).filter((e) => e.mac === '02:00:00:00:04:01');
    expect(listed).toEqual([expect.objectContaining({ master: br.index, self: false, state: expect.arrayContaining(['noarp']) })]);
    expect(await deleteFdb(h, { dev: 'p0', mac: '02:00:00:00:04:01', target: 'master' })).toBe(true);
    expect(await deleteFdb(h, { dev: 'p0', mac: '02:00:00:00:04:01', target: 'master' }, { ifExists: true })).toBe(false);
    expect((await fdbRows(ns, 'p0')).filter((e) => e.mac === '02:00:00:00:04:01')).toEqual([]);
  });
});

// Links made through NetlinkHandle in throwaway namespaces, checked with iproute2 and with real
// packets: veth pairs across namespaces, a bridge joining three, a VXLAN over an underlay.
import { expect, it } from 'vitest';
import {
  addAddress, addBridge, addMacvlan, addNeighbor, addVeth, addVxlan, appendFdb, addFdb, deleteLink,
  deleteLinksByGroup, findLink, getLink, listLinks, moveLink, peekLink, setLink, setLinkUp, setMaster,
} from '../../src/netlink/index.js';
import { NotFoundError } from '../../src/errors.js';
import { describeRoot } from '../helpers/root.js';
import { ifname, makeNs } from '../helpers/netns.js';
import { handleOn, ipLinks, pings } from './netlink-helpers.js';

describeRoot('netlink links', () => {
  it('a veth pair born across two namespaces carries pings', async () => {
    const [a, b] = await Promise.all([makeNs('va'), makeNs('vb')]);
    const ha = handleOn(a);
    const hb = handleOn(b);
    const [ea, eb] = [ifname('va'), ifname('vb')];
    await addVeth(ha, { name: ea, mtu: 1400, mac: '02:00:00:00:0a:01', up: true, peer: { name: eb, nsPath: b.path, mtu: 1300, mac: '02:00:00:00:0b:01' } });
    const [la] = await ipLinks(a, ea);
    const [lb] = await ipLinks(b, eb);
    expect(la).toMatchObject({ mtu: 1400, address: '02:00:00:00:0a:01', linkinfo: { info_kind: 'veth' } });
    expect(la?.flags).toContain('UP');
    expect(lb).toMatchObject({ mtu: 1300, address: '02:00:00:00:0b:01' });
    expect(lb?.flags).not.toContain('UP');
    await setLink(hb, eb, { up: true, mtu: 1400 });
    await addAddress(ha, ea, '10.200.0.1/24');
    await addAddress(hb, eb, '10.200.0.2/24');
    expect(await pings(a, '10.200.0.2')).toBe(true);
    expect(await pings(b, '10.200.0.1')).toBe(true);
    const typed = await getLink(ha, ea);
    expect(typed).toMatchObject({ kind: 'veth', name: ea, mtu: 1400, mac: '02:00:00:00:0a:01', up: true, index: la?.ifindex, peerIndex: lb?.ifindex });
    expect(typed.netnsId).toBeTypeOf('number');
  });

  it('a bridge joins three namespaces: every pair pings, each endpoint made in one request', async () => {
    const host = await makeNs('brh');
    const sandboxes = await Promise.all([makeNs('bs1'), makeNs('bs2'), makeNs('bs3')]);
    const h = handleOn(host);
    await addBridge(h, { name: 'br0', up: true });
    for (const [i, sb] of sandboxes.entries()) {
      await addVeth(h, { name: `vh${i}`, master: 'br0', up: true, mtu: 1500, peer: { name: 'eth0', nsPath: sb.path, mac: `02:00:00:00:01:0${i + 1}` } });
      const hs = handleOn(sb);
      await setLinkUp(hs, 'eth0');
      await addAddress(hs, 'eth0', `10.201.0.${i + 1}/24`);
    }
    const ports = await host.ipJson<{ ifname: string }[]>(['link', 'show', 'master', 'br0']);
    expect(ports.map((p) => p.ifname).sort()).toEqual(['vh0', 'vh1', 'vh2']);
    for (const [i, from] of sandboxes.entries())
      for (let j = 0; j < 3; j++) if (j !== i) expect(await pings(from, `10.201.0.${j + 1}`), `${i + 1} -> ${j + 1}`).toBe(true);
    const bridge = await getLink(h, 'br0');
    expect((await listLinks(h, { master: bridge.index })).map((l) => l.name).sort()).toEqual(['vh0', 'vh1', 'vh2']);
  });

  it('a vxlan across an underlay veth carries pings with static FDB and neighbours, learning off', async () => {
    const [a, b] = await Promise.all([makeNs('xa'), makeNs('xb')]);
    const ha = handleOn(a);
    const hb = handleOn(b);
    await addVeth(ha, { name: 'ul0', up: true, peer: { name: 'ul0', nsPath: b.path } });
    await setLinkUp(hb, 'ul0');
    const side = [
      { ns: a, h: ha, under: '198.18.0.1', over: '10.202.0.1', mac: '02:00:00:00:aa:01' },
      { ns: b, h: hb, under: '198.18.0.2', over: '10.202.0.2', mac: '02:00:00:00:bb:01' },
    ] as const;
    for (const s of side) {
      await addAddress(s.h, 'ul0', `${s.under}/24`);
      await addVxlan(s.h, { name: 'vx0', vni: 4242, local: s.under, underlay: 'ul0', port: 4789, learning: false, mac: s.mac, mtu: 1450, up: true });
      await addAddress(s.h, 'vx0', `${s.over}/24`);
    }
    const pairs = [[side[0], side[1]], [side[1], side[0]]] as const;
    for (const [me, peer] of pairs) await addNeighbor(me.h, { dev: 'vx0', ip: peer.over, mac: peer.mac });
    // Learning off and no FDB entry yet: the tunnel has nowhere to send.
    expect(await pings(a, '10.202.0.2')).toBe(false);
    for (const [me, peer] of pairs) {
      await addFdb(me.h, { dev: 'vx0', mac: peer.mac, dst: peer.under });
      await appendFdb(me.h, { dev: 'vx0', mac: '00:00:00:00:00:00', dst: peer.under });
    }
    const [vx] = await ipLinks(a, 'vx0');
    expect(vx?.linkinfo).toMatchObject({ info_kind: 'vxlan', info_data: { id: 4242, learning: false, port: 4789, local: '198.18.0.1', link: 'ul0' } });
    expect(await pings(a, '10.202.0.2')).toBe(true);
    expect(await pings(b, '10.202.0.1')).toBe(true);
    expect(await getLink(ha, 'vx0')).toMatchObject({ kind: 'vxlan', vni: 4242, learning: false, proxy: false, port: 4789, local: '198.18.0.1', mtu: 1450 });
    // Its ifindex and MTU alone, by name or index, as iproute2 shows them; a missing link: none.
    expect(await peekLink(ha, 'vx0')).toEqual({ index: vx!.ifindex, mtu: 1450 });
    expect(await peekLink(ha, vx!.ifindex)).toEqual({ index: vx!.ifindex, mtu: 1450 });
    expect(await peekLink(ha, 'vx9')).toBeUndefined();
  });

  it('macvlan on a parent with a mode; set master/nomaster, MTU, MAC, name, up/down', async () => {
    const ns = await makeNs('set');
    const h = handleOn(ns);
    await addBridge(h, { name: 'br0' });
    await addBridge(h, { name: 'par0', up: true });
    await addMacvlan(h, { name: 'mv0', parent: 'par0', mode: 'private', up: true });
    const [mv] = await ipLinks(ns, 'mv0');
    expect(mv?.linkinfo).toMatchObject({ info_kind: 'macvlan', info_data: { mode: 'private' } });
    expect(await getLink(h, 'mv0')).toMatchObject({ kind: 'macvlan', mode: 'private', parentIndex: (await getLink(h, 'par0')).index });
    await addVeth(h, { name: 'v0', peer: { name: 'v1' } });
    await setMaster(h, 'v0', 'br0');
    expect((await ipLinks(ns, 'v0'))[0]?.master).toBe('br0');
    await setLink(h, 'v0', { master: null, mtu: 9000, mac: '02:00:00:00:0c:01', name: 'renamed0', up: true });
    const [after] = await ipLinks(ns, 'renamed0');
    expect(after).toMatchObject({ mtu: 9000, address: '02:00:00:00:0c:01' });
    expect(after?.master).toBeUndefined();
    expect(after?.flags).toContain('UP');
    await setLink(h, 'renamed0', { up: false });
    expect((await ipLinks(ns, 'renamed0'))[0]?.flags).not.toContain('UP');
    expect(await findLink(h, 'v0')).toBeUndefined();
    await expect(getLink(h, 'v0')).rejects.toBeInstanceOf(NotFoundError);
    expect((await getLink(h, after!.ifindex)).name).toBe('renamed0');
    expect((await listLinks(h, { kind: 'bridge' })).map((l) => l.name).sort()).toEqual(['br0', 'par0']);
  });

  it("addrgenmode none: a veth end that gets its carrier after it has no IPv6 address; a bad mode names the field and changes nothing", async () => {
    const ns = await makeNs('agm');
    const h = handleOn(ns);
    await addVeth(h, { name: 'a0', up: true, peer: { name: 'b0' } });
    await setLink(h, 'a0', { addrGenMode: 'none' });
    await setLink(h, 'b0', { up: true });
    expect((await ns.sh(['cat', '/proc/sys/net/ipv6/conf/a0/addr_gen_mode'])).trim()).toBe('1');
    expect((await ns.sh(['cat', '/proc/sys/net/ipv6/conf/a0/disable_ipv6'])).trim()).toBe('0');
    expect((await ipLinks(ns, 'a0'))[0]?.flags).toContain('LOWER_UP');
    expect(JSON.parse(await ns.sh(['ip', '-6', '-j', 'addr', 'show', 'dev', 'a0']))).toEqual([]);
    // The other end, left at the default, made its link-local address.
    expect(await ns.sh(['ip', '-6', 'addr', 'show', 'dev', 'b0'])).toMatch(/fe80::/);
    await expect(setLink(h, 'b0', { addrGenMode: 'off' as never, mtu: 1300 })).rejects.toThrow(/^addrGenMode: "off" must be one of eui64, none, stable-privacy, random/);
    expect((await ipLinks(ns, 'b0'))[0]?.mtu).toBe(1500);
  });

  it('moves a link into another namespace, renaming it on the way', async () => {
    const [a, b] = await Promise.all([makeNs('mva'), makeNs('mvb')]);
    const ha = handleOn(a);
    await addVeth(ha, { name: 'm0', peer: { name: 'm1' } });
    await moveLink(ha, 'm1', b.path, 'eth5');
    expect(await a.linkNames()).toEqual(['lo', 'm0']);
    expect(await b.linkNames()).toEqual(['eth5', 'lo']);
    await moveLink(ha, 'm0', b.path);
    expect(await b.linkNames()).toEqual(['eth5', 'lo', 'm0']);
  });

  it('deletes idempotently on request, and a whole group in one request', async () => {
    const ns = await makeNs('del');
    const h = handleOn(ns);
    for (const n of ['g0', 'g1', 'g2']) await addVeth(h, { name: n, group: 9, peer: { name: `${n}p` } });
    await addBridge(h, { name: 'keep0' });
    expect((await ipLinks(ns, 'g1'))[0]?.group).toBe('9');
    expect(await deleteLinksByGroup(h, 9)).toBe(true);
    expect(await ns.linkNames()).toEqual(['keep0', 'lo']);
    expect(await deleteLinksByGroup(h, 9)).toBe(false);
    expect(await deleteLink(h, 'keep0')).toBe(true);
    expect(await deleteLink(h, 'keep0', { ifExists: true })).toBe(false);
    await expect(deleteLink(h, 'keep0')).rejects.toMatchObject({ name: 'KernelError', errnoCode: 'ENODEV' });
    await expect(deleteLinksByGroup(h, 0)).rejects.toThrow(/group: /);
  });
});

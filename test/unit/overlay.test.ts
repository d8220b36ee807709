// The overlay driver's pure parts: the parse step (Docker's options, the refusals naming the
// option: empty values, an MTU below IPv6's minimum) and the wanted static entries computed from peer records (remote peers only, one
// flood entry per remote VTEP, IPv6 neighbours too), and the same kept up change by change; the kernel's own neighbour entries told from peers';
// the bookkeeping of peers kept for a grace after their host's lease ended (until it runs out, the same endpoint is published again, or another takes an address).
import { describe, expect, it } from 'vitest';
import { parseOverlayConfig } from '../../drivers/overlay/config.js';
import { count, counted, FLOOD_MAC, kernelOwnNeighbor, plain, wanted } from '../../drivers/overlay/program.js';
import { clashes, Lingering, PEER_GRACE_MS } from '../../drivers/overlay/linger.js';
import type { Peer } from '../../src/cluster/types.js';

const input = (options: Record<string, string>) => ({ name: 'ov', options, internal: false, enableIPv6: false });

describe('overlay parse step', () => {
  it('takes the VXLAN id, the MTU and the UDP port; defaults to 4789 and no MTU (derived at each host)', () => {
    expect(parseOverlayConfig(input({}))).toEqual({ port: 4789, internal: false, enableIPv6: false });
    expect(parseOverlayConfig(input({ 'com.docker.network.driver.overlay.vxlanid_list': '5000', 'com.docker.network.driver.mtu': '1400', 'cnmkit.overlay.port': '4790' })))
      .toEqual({ vni: 5000, mtu: 1400, port: 4790, internal: false, enableIPv6: false });
  });

  it.each([
    [{ encrypted: '' }, /^encrypted: encrypted overlays are not supported: this kernel has no IPsec ESP/],
    [{ encrypted: 'true' }, /^encrypted: /],
    [{ 'com.docker.network.driver.overlay.vxlanid_list': '5000,5001' }, /one VXLAN id per network/],
    [{ 'com.docker.network.driver.overlay.vxlanid_list': '0' }, /expected a VXLAN id between 1 and 16777215, got "0"/],
    [{ 'cnmkit.overlay.port': '70000' }, /^cnmkit\.overlay\.port: expected a UDP port between 1 and 65535/],
    [{ 'com.docker.network.driver.mtu': '60' }, /^com\.docker\.network\.driver\.mtu: expected an MTU between 68/],
    [{ 'com.docker.network.bridge.name': 'x' }, /^options\.com\.docker\.network\.bridge\.name: unknown overlay option/],
    [{ 'com.docker.network.driver.overlay.vxlanid_list': '' }, /^com\.docker\.network\.driver\.overlay\.vxlanid_list: expected a VXLAN id between 1 and 16777215, got ""/],
    [{ 'cnmkit.overlay.port': '' }, /^cnmkit\.overlay\.port: expected a UDP port between 1 and 65535, got ""/],
    [{ 'com.docker.network.driver.mtu': '' }, /^com\.docker\.network\.driver\.mtu: expected an MTU between 68 and 65535, got ""/],
  ])('refuses %j naming the option', (options, why) => {
    expect(() => parseOverlayConfig(input(options))).toThrow(why);
  });

  it('refuses an MTU below 1280 on a network with IPv6, naming the option and why; takes 1280, and 1000 without IPv6', () => {
    const mtu = (v: string) => ({ 'com.docker.network.driver.mtu': v });
    expect(() => parseOverlayConfig({ ...input(mtu('1000')), enableIPv6: true }))
      .toThrow(/^com\.docker\.network\.driver\.mtu: 1000 is too small for a network with IPv6, which needs an MTU of at least 1280$/);
    expect(parseOverlayConfig({ ...input(mtu('1280')), enableIPv6: true }).mtu).toBe(1280);
    expect(parseOverlayConfig(input(mtu('1000'))).mtu).toBe(1000);
  });
});

describe('overlay static entries from peers', () => {
  const peer = (host: string, n: number, vtep: string, ipv6?: string): Peer =>
    ({ network: 'ov', host, endpointId: `e${n}`, ip: `198.19.200.${n}`, mac: `02:42:c6:13:c8:0${n}`, vtep, ...(ipv6 ? { ipv6 } : {}) });

  it('programs remote peers only: FDB per endpoint, one flood entry per remote VTEP, neighbours for IPv4 and IPv6', () => {
    const peers = [peer('self', 1, '198.19.255.1'), peer('b', 2, '198.19.255.2', 'fd00::2'), peer('b', 3, '198.19.255.2'), peer('c', 4, '198.19.255.3')];
    const w = wanted(peers, 'self', '198.19.255.1');
    expect([...w.fdb.keys()].sort()).toEqual([
      `${FLOOD_MAC}>198.19.255.2`, `${FLOOD_MAC}>198.19.255.3`,
      '02:42:c6:13:c8:02>198.19.255.2', '02:42:c6:13:c8:03>198.19.255.2', '02:42:c6:13:c8:04>198.19.255.3',
    ].sort());
    expect(Object.fromEntries(w.neigh)).toEqual({
      '198.19.200.2': '02:42:c6:13:c8:02', 'fd00::2': '02:42:c6:13:c8:02', '198.19.200.3': '02:42:c6:13:c8:03', '198.19.200.4': '02:42:c6:13:c8:04',
    });
  });

  it('kept up change by change, it wants what a recount wants: a flood entry stays while a peer on its VTEP does; an IP given two MACs falls back to the earlier when the later goes', () => {
    const self = ['self', '198.19.255.1'] as const;
    const b2 = peer('b', 2, '198.19.255.2', 'fd00::2');
    const b3 = peer('b', 3, '198.19.255.2');
    const c4 = peer('c', 4, '198.19.255.3');
    // A made-up peer on another host giving b3's IP another MAC (as a test's fake host does).
    const d3 = { ...peer('d', 3, '198.19.255.4'), endpointId: 'd3', mac: '02:43:00:00:00:03' };
    const c = counted([peer('self', 1, '198.19.255.1'), b2], ...self);
    const steps: [Peer, 1 | -1][] = [[b3, 1], [c4, 1], [d3, 1], [b2, -1]];
    const live = new Set<Peer>([b2]);
    for (const [p, by] of steps) {
      count(c, p, by, ...self);
      if (by > 0) live.add(p);
      else live.delete(p);
    }
    expect(plain(c)).toEqual(wanted(live, ...self));
    expect(plain(c).fdb.has(`${FLOOD_MAC}>198.19.255.2`)).toBe(true);
    expect(plain(c).neigh.get('198.19.200.3')).toBe('02:43:00:00:00:03');
    count(c, d3, -1, ...self);
    count(c, b3, -1, ...self);
    live.delete(d3);
    live.delete(b3);
    expect(plain(c).neigh.get('198.19.200.3')).toBeUndefined();
    expect(plain(c).fdb.has(`${FLOOD_MAC}>198.19.255.2`)).toBe(false);
    expect(plain(c)).toEqual(wanted(live, ...self));
    // The case of the compaction test: the earlier MAC of an IP comes back when the later's peer goes.
    count(c, b3, 1, ...self);
    count(c, d3, 1, ...self);
    count(c, d3, -1, ...self);
    expect(plain(c).neigh.get('198.19.200.3')).toBe('02:42:c6:13:c8:03');
    expect(plain(c).fdb.has('02:43:00:00:00:03>198.19.255.4')).toBe(false);
  });

  it('wants nothing when every peer is this host\'s', () => {
    const w = wanted([peer('self', 1, '198.19.255.1')], 'self', '198.19.255.1');
    expect(w.fdb.size + w.neigh.size).toBe(0);
  });
});

describe('overlay neighbour entries the kernel makes itself', () => {
  it.each([
    [{ ip: 'ff02::16', state: ['noarp'] }, true],
    [{ ip: '224.0.0.22', state: ['noarp'] }, true],
    [{ ip: 'ff02::1', state: ['permanent'] }, true],
    [{ ip: '198.19.200.9', state: ['noarp'] }, true],
    [{ ip: 'fd00::2', state: ['permanent'] }, false],
    [{ ip: '198.19.200.2', state: ['permanent'] }, false],
    [{ ip: '198.19.200.3', state: ['reachable'] }, false],
  ])('%j is the kernel\'s own: %s', (n, own) => {
    expect(kernelOwnNeighbor(n)).toBe(own);
  });
});

describe('overlay peers kept for a grace after their lease ended', () => {
  const peer = (host: string, n: number, o: Partial<Peer> = {}): Peer =>
    ({ network: 'ov', host, endpointId: `e${n}`, ip: `198.19.200.${n}`, mac: `02:42:c6:13:c8:0${n}`, vtep: `198.19.255.${n}`, ...o });

  it('keeps a peer until its grace runs out, then ends it once', () => {
    const l = new Lingering();
    const b2 = peer('b', 2);
    l.keep(b2, 1000);
    expect(l.peers()).toEqual([b2]);
    expect(l.next()).toBe(1000 + PEER_GRACE_MS);
    expect(l.due(1000 + PEER_GRACE_MS - 1)).toEqual([]);
    expect(l.due(1000 + PEER_GRACE_MS)).toEqual([b2]);
    expect(l.size).toBe(0);
    expect(l.next()).toBeUndefined();
    expect(l.due(99_999)).toEqual([]);
  });

  it('ends a kept peer when its host publishes the same endpoint again (changed or not), and leaves the others kept', () => {
    const l = new Lingering(500);
    const [b2, b3, c4] = [peer('b', 2), peer('b', 3), peer('c', 4)];
    for (const p of [b2, b3, c4]) l.keep(p, 0);
    expect(l.endFor(b2)).toEqual([b2]);
    expect(l.endFor({ ...b3, vtep: '198.19.255.9' })).toEqual([b3]);
    expect(l.endFor(peer('d', 5))).toEqual([]);
    expect(l.peers()).toEqual([c4]);
    expect(l.due(500)).toEqual([c4]);
  });

  it('ends a kept peer at once when another endpoint takes its IPv4, its IPv6 or its MAC; not for another endpoint\'s own addresses', () => {
    const l = new Lingering();
    const b2 = peer('b', 2, { ipv6: 'fd00::2' });
    const b3 = peer('b', 3);
    const b4 = peer('b', 4);
    for (const p of [b2, b3, b4]) l.keep(p, 0);
    expect(l.endFor(peer('c', 9, { ip: b3.ip }))).toEqual([b3]);
    expect(l.endFor(peer('c', 8, { mac: b4.mac }))).toEqual([b4]);
    expect(l.endFor(peer('c', 7, { ipv6: 'fd00::2' }))).toEqual([b2]);
    expect(l.size).toBe(0);
    // Ended peers leave the address index: a later holder of the address ends nothing.
    expect(l.endFor(peer('c', 6, { ip: b3.ip }))).toEqual([]);
  });

  it('a peer kept again under its id replaces the earlier one (its grace restarts, its old addresses free)', () => {
    const l = new Lingering(100);
    const b2 = peer('b', 2);
    const moved = { ...b2, ip: '198.19.200.99' };
    l.keep(b2, 0);
    l.keep(moved, 50);
    expect(l.peers()).toEqual([moved]);
    expect(l.endFor(peer('c', 9, { ip: b2.ip }))).toEqual([]);
    expect(l.due(100)).toEqual([]);
    expect(l.due(150)).toEqual([moved]);
  });

  it('clashes: another endpoint with one of the addresses, never the peer itself', () => {
    const b2 = peer('b', 2, { ipv6: 'fd00::2' });
    expect(clashes(b2, [b2, peer('c', 3)])).toBe(false);
    expect(clashes(b2, [peer('c', 3, { ipv6: 'fd00::2' })])).toBe(true);
    expect(clashes(b2, [peer('c', 3, { mac: b2.mac })])).toBe(true);
    expect(clashes(b2, [{ ...b2, vtep: '198.19.255.9' }])).toBe(false);
  });
});

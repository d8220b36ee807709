// Rule rendering and parsing of the firewall backends, without root: the iptables-restore and
// nft lines for networks and port mappings, init/flush plans, tags and input validation.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { InvalidArgumentError } from '../../src/errors.js';
import { createFirewall, type FirewallNetwork, type PortMapping } from '../../src/firewall/index.js';
import * as ipt from '../../src/firewall/iptables-rules.js';
import { flushLines, initLines } from '../../src/firewall/iptables.js';
import * as nft from '../../src/firewall/nftables-rules.js';
import { parseTag, portTag, validateCidr, validateMapping, validateNetwork } from '../../src/firewall/validate.js';

const NET: FirewallNetwork = { id: 'n1', bridge: 'br1', subnets4: ['198.18.10.0/24'], subnets6: ['fd00:10::/64'], icc: false, masquerade: true, internal: false };
const MAP: PortMapping = {
  id: 'ep1',
  proto: 'tcp',
  hostPort: 8080,
  hostPortEnd: 8080,
  containerIP: '198.18.10.2',
  containerPort: 80,
  containerPortEnd: 80,
  bridge: 'br1',
  userlandProxy: true,
};

const texts = (lines: ipt.RuleLine[], family: 4 | 6, table: ipt.Table): string[] => lines.filter((l) => l.family === family && l.table === table).map((l) => l.text);

describe('iptables rendering', () => {
  it('a network: isolation, conntrack, ports jump, outbound accept, icc, masquerade per subnet and family', () => {
    const lines = ipt.renderNetwork(NET);
    const c = '-m comment --comment "cnmkit:n1"';
    expect(texts(lines, 4, 'filter')).toEqual([
      `-A CNMKIT-ISOLATION-1 -i br1 ! -o br1 ${c} -j CNMKIT-ISOLATION-2`,
      `-A CNMKIT-ISOLATION-2 -o br1 ${c} -j DROP`,
      `-A CNMKIT-FORWARD -o br1 -m conntrack --ctstate RELATED,ESTABLISHED ${c} -j ACCEPT`,
      `-A CNMKIT-FORWARD -o br1 ${c} -j CNMKIT`,
      `-A CNMKIT-FORWARD -i br1 ! -o br1 ${c} -j ACCEPT`,
      `-A CNMKIT-FORWARD -i br1 -o br1 ${c} -j DROP`,
    ]);
    expect(texts(lines, 6, 'filter')).toEqual(texts(lines, 4, 'filter'));
    expect(texts(lines, 4, 'nat')).toEqual([`-A CNMKIT-POSTROUTING -s 198.18.10.0/24 ! -o br1 ${c} -j MASQUERADE`]);
    expect(texts(lines, 6, 'nat')).toEqual([`-A CNMKIT-POSTROUTING -s fd00:10::/64 ! -o br1 ${c} -j MASQUERADE`]);
  });

  it('SNAT to hostIPv4; internal networks drop in and out and get no NAT; no IPv6 rules without IPv6 subnets', () => {
    expect(texts(ipt.renderNetwork({ ...NET, hostIPv4: '198.19.0.1' }), 4, 'nat')[0]).toMatch(/-j SNAT --to-source 198\.19\.0\.1$/);
    const internal = ipt.renderNetwork({ ...NET, internal: true, subnets6: [] });
    expect(internal.filter((l) => l.table === 'nat' || l.family === 6)).toEqual([]);
    expect(texts(internal, 4, 'filter').filter((t) => t.startsWith('-A CNMKIT-ISOLATION-1'))).toHaveLength(2);
    expect(texts(internal, 4, 'filter').every((t) => !t.includes('ACCEPT') || t.includes('-i br1 -o br1'))).toBe(true);
  });

  it('a port: DNAT (loopback and bridge excluded with the proxy), accept of DNATed traffic, hairpin masquerade', () => {
    const tag = '-m comment --comment "cnmkit:ep1/tcp/0.0.0.0/8080"';
    const lines = ipt.renderMapping(MAP);
    expect(texts(lines, 4, 'nat')).toEqual([
      `-A CNMKIT ! -d 127.0.0.0/8 ! -i br1 -p tcp -m tcp --dport 8080 ${tag} -j DNAT --to-destination 198.18.10.2:80`,
      `-A CNMKIT-POSTROUTING -s 198.18.10.2 -d 198.18.10.2 -p tcp -m tcp --dport 80 ${tag} -j MASQUERADE`,
    ]);
    expect(texts(lines, 4, 'filter')).toEqual([`-A CNMKIT -d 198.18.10.2 -o br1 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT ${tag} -j ACCEPT`]);
  });

  it('without the proxy: loopback is DNATed and masqueraded toward the bridge', () => {
    const nat = texts(ipt.renderMapping({ ...MAP, userlandProxy: false }), 4, 'nat');
    expect(nat[0]).toMatch(/^-A CNMKIT -p tcp -m tcp --dport 8080 /);
    expect(nat).toContain('-A CNMKIT-POSTROUTING -s 127.0.0.0/8 -o br1 -m comment --comment "cnmkit:ep1/tcp/0.0.0.0/8080" -j MASQUERADE');
  });

  it('a range is one DNAT rule that keeps each offset; many-to-one; IPv6 in brackets; loopback-only with proxy needs nothing', () => {
    const range = ipt.renderMapping({ ...MAP, hostPort: 30000, hostPortEnd: 30999, containerPort: 40000, containerPortEnd: 40999 });
    const dnat = range.filter((l) => l.text.includes('-j DNAT'));
    expect(dnat).toHaveLength(1);
    expect(dnat[0]?.text).toMatch(/--dport 30000:30999 .*--to-destination 198\.18\.10\.2:40000-40999\/30000$/);
    const many = ipt.renderMapping({ ...MAP, hostPort: 30000, hostPortEnd: 30009 });
    expect(many.find((l) => l.text.includes('-j DNAT'))?.text).toMatch(/--to-destination 198\.18\.10\.2:80$/);
    const v6 = ipt.renderMapping({ ...MAP, containerIP: 'fd00:10::2', hostIP: 'fd19::1' });
    expect(v6.every((l) => l.family === 6)).toBe(true);
    expect(v6[0]?.text).toMatch(/^-A CNMKIT -d fd19::1 ! -i br1 .*--to-destination \[fd00:10::2\]:80$/);
    expect(ipt.renderMapping({ ...MAP, hostIP: '127.0.0.1' })).toEqual([]);
  });

  it('reads iptables-save: chains, rules, comments quoted or not; inverts lines', () => {
    const saved = ipt.parseSave(
      ['*filter', ':FORWARD ACCEPT [0:0]', ':CNMKIT-USER - [0:0]', '-A FORWARD -m comment --comment cnmkit -j CNMKIT-USER', '-A FORWARD -s 1.2.3.4/32 -m comment --comment "cnmkit:x/tcp/0.0.0.0/1" -j DROP', 'COMMIT'].join('\n'),
    );
    const filter = saved.get('filter');
    expect([...(filter?.chains ?? [])]).toEqual(['FORWARD', 'CNMKIT-USER']);
    expect(filter?.rules.map((r) => r.comment)).toEqual(['cnmkit', 'cnmkit:x/tcp/0.0.0.0/1']);
    const line: ipt.RuleLine = { family: 4, table: 'filter', text: '-A CNMKIT -j ACCEPT' };
    expect(ipt.inverse(line).text).toBe('-D CNMKIT -j ACCEPT');
    expect(ipt.inverse({ ...line, text: '-I FORWARD 1 -j X' }).text).toBe('-D FORWARD -j X');
    expect(ipt.inverse({ ...line, text: '-N X' }).text).toBe('-X X');
  });

  it('init creates what is missing and puts the jumps first; nothing when in place; flush keeps the user chain', () => {
    const fresh = initLines(4, new Map());
    expect(fresh.filter((l) => l.text.startsWith('-N')).map((l) => `${l.table} ${l.text}`)).toEqual([
      ...ipt.CHAINS.filter.map((c) => `filter -N ${c}`),
      ...ipt.CHAINS.nat.map((c) => `nat -N ${c}`),
    ]);
    expect(fresh.find((l) => l.text.startsWith('-I FORWARD 1'))?.text).toBe('-I FORWARD 1 -m comment --comment "cnmkit" -j CNMKIT-USER');
    const inPlace = ipt.parseSave(savedAfterInit());
    expect(initLines(4, inPlace)).toEqual([]);
    const moved = ipt.parseSave(savedAfterInit().replace('*filter\n', '*filter\n-A FORWARD -s 1.1.1.1/32 -j DROP\n'));
    const fix = initLines(4, moved).map((l) => l.text);
    expect(fix.filter((t) => t.startsWith('-D FORWARD'))).toHaveLength(3);
    expect(fix.filter((t) => t.startsWith('-I FORWARD'))).toHaveLength(3);
    const flush = flushLines(inPlace.get('filter'));
    expect(flush).toContain('-X CNMKIT-FORWARD');
    expect(flush.some((t) => t.includes(ipt.USER_CHAIN) && !t.startsWith('-D FORWARD'))).toBe(false);
  });
});

function savedAfterInit(): string {
  const chains = (t: ipt.Table): string => ipt.CHAINS[t].map((c) => `:${c} - [0:0]`).join('\n');
  const heads = (t: ipt.Table): string =>
    ipt.HEADS.filter((h) => h.table === t)
      .flatMap((h) => h.rules.map((r) => `-A ${h.chain} ${ipt.tagged(r, 'cnmkit')}`))
      .join('\n');
  return `*filter\n:FORWARD ACCEPT [0:0]\n${chains('filter')}\n${heads('filter')}\nCOMMIT\n*nat\n${chains('nat')}\n${heads('nat')}\nCOMMIT\n`;
}

describe('nftables rendering', () => {
  it('a network in the inet table, masquerade per family', () => {
    const lines = nft.renderNetwork(NET);
    expect(lines).toContain('add rule inet cnmkit CNMKIT-ISOLATION-2 oifname "br1" drop comment "cnmkit:n1"');
    expect(lines).toContain('add rule inet cnmkit CNMKIT-FORWARD iifname "br1" oifname "br1" drop comment "cnmkit:n1"');
    expect(lines).toContain('add rule inet cnmkit CNMKIT-POSTROUTING ip saddr 198.18.10.0/24 oifname != "br1" masquerade comment "cnmkit:n1"');
    expect(lines).toContain('add rule inet cnmkit CNMKIT-POSTROUTING ip6 saddr fd00:10::/64 oifname != "br1" masquerade comment "cnmkit:n1"');
    expect(nft.renderNetwork({ ...NET, internal: true }).some((l) => l.includes('POSTROUTING'))).toBe(false);
  });

  it('ports: one rule per range, kept ports without a map, shifted ports through one map', () => {
    const same = nft.renderMapping({ ...MAP, hostPort: 20000, hostPortEnd: 20999, containerPort: 20000, containerPortEnd: 20999 });
    expect(same[0]).toBe('add rule inet cnmkit CNMKIT-DNAT ip daddr != 127.0.0.0/8 iifname != "br1" tcp dport 20000-20999 dnat ip to 198.18.10.2 comment "cnmkit:ep1/tcp/0.0.0.0/20000-20999"');
    const shifted = nft.renderMapping({ ...MAP, hostPort: 30000, hostPortEnd: 30999, containerPort: 40000, containerPortEnd: 40999 });
    expect(shifted.filter((l) => l.includes(' dnat ip to '))).toHaveLength(1);
    expect(shifted[0]).toMatch(/dnat ip to 198\.18\.10\.2 : tcp dport map \{ 30000 : 40000, .* 30999 : 40999 \}/);
    const noProxy = nft.renderMapping({ ...MAP, userlandProxy: false });
    expect(noProxy[0]).toMatch(/CNMKIT-DNAT meta nfproto ipv4 tcp dport 8080 dnat ip to 198\.18\.10\.2:80 /);
    expect(noProxy).toContain('add rule inet cnmkit CNMKIT-POSTROUTING ip saddr 127.0.0.0/8 oifname "br1" masquerade comment "cnmkit:ep1/tcp/0.0.0.0/8080"');
    expect(nft.renderMapping({ ...MAP, containerIP: 'fd00:10::2' })[0]).toMatch(/ip6 daddr != ::1 .* dnat ip6 to \[fd00:10::2\]:80 /);
  });

  it('init rebuilds only base chains whose jumps are off; flush deletes all chains but the user one', () => {
    const listing: nft.Listing = {
      chains: new Set([...nft.REGULAR_CHAINS, ...nft.BASE_CHAINS.map((b) => b.name)]),
      rules: nft.BASE_CHAINS.flatMap((b) => b.jumps.map((j, i) => ({ chain: b.name, handle: i + 1, comment: 'cnmkit', jump: /jump (\S+)/.exec(j)?.[1] as string }))),
    };
    expect(nft.renderInit(listing).some((l) => l.startsWith('flush') || l.startsWith('add rule'))).toBe(false);
    const broken = { ...listing, rules: listing.rules.filter((r) => r.chain !== 'postrouting') };
    expect(nft.renderInit(broken).filter((l) => l.startsWith('add rule'))).toEqual(['add rule inet cnmkit postrouting jump CNMKIT-POSTROUTING comment "cnmkit"']);
    const flush = nft.renderFlush(listing);
    expect(flush.some((l) => l.includes(nft.USER_CHAIN))).toBe(false);
    expect(flush.indexOf('delete chain inet cnmkit forward')).toBeGreaterThan(flush.indexOf('flush chain inet cnmkit CNMKIT-FORWARD'));
  });

  it('reads nft -j listings: chains, handles, comments, jumps', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: {} },
        { chain: { family: 'inet', table: 'cnmkit', name: 'forward', handle: 1 } },
        { rule: { family: 'inet', table: 'cnmkit', chain: 'forward', handle: 7, comment: 'cnmkit', expr: [{ jump: { target: 'CNMKIT-USER' } }] } },
        { rule: { family: 'inet', table: 'cnmkit', chain: 'forward', handle: 8, expr: [{ accept: null }] } },
      ],
    });
    expect(nft.parseListing(json)).toEqual({
      chains: new Set(['forward']),
      rules: [
        { chain: 'forward', handle: 7, comment: 'cnmkit', jump: 'CNMKIT-USER' },
        { chain: 'forward', handle: 8 },
      ],
    });
    expect(nft.deleteRule({ chain: 'forward', handle: 7 })).toBe('delete rule inet cnmkit forward handle 7');
  });
});

describe('firewall input', () => {
  it('tags: networks by id, ports by id and published port; parsed back', () => {
    expect(portTag({ ...MAP, hostPortEnd: 8090, containerPortEnd: 90 })).toBe('cnmkit:ep1/tcp/0.0.0.0/8080-8090');
    expect(portTag({ ...MAP, containerIP: 'fd00::2', hostIP: 'fd19::1' })).toBe('cnmkit:ep1/tcp/fd19::1/8080');
    expect(parseTag('cnmkit:ep1/tcp/0.0.0.0/8080')).toEqual({ owner: 'ep1', port: true });
    expect(parseTag('cnmkit:n1')).toEqual({ owner: 'n1', port: false });
    expect(parseTag('cnmkit')).toBeUndefined();
    expect(parseTag('someone-else')).toBeUndefined();
  });

  it('subnets must be in CIDR form without host bits, IPv4 and IPv6', () => {
    expect(validateCidr('198.18.0.0/15', 4, 'f')).toBe('198.18.0.0/15');
    expect(validateCidr('fd00:10::/64', 6, 'f')).toBe('fd00:10::/64');
    expect(validateCidr('::ffff:198.18.0.0/120', 6, 'f')).toBe('::ffff:198.18.0.0/120');
    for (const [bad, fam] of [['198.18.0.1/15', 4], ['198.18.0.0/33', 4], ['198.18.0.0', 4], ['fd00:10::1/64', 6], ['fd00::/64', 4]] as const) {
      expect(() => validateCidr(bad, fam, 'subnets')).toThrow(InvalidArgumentError);
    }
  });

  it('mappings and networks: the field and the reason', () => {
    const fieldOf = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (err) {
        return (err as InvalidArgumentError).field;
      }
      return undefined;
    };
    expect(fieldOf(() => validateMapping({ ...MAP, proto: 'icmp' }, 'm'))).toBe('m.proto');
    expect(fieldOf(() => validateMapping({ ...MAP, hostPort: 1.5 }, 'm'))).toBe('m.hostPort');
    expect(fieldOf(() => validateMapping({ ...MAP, containerIP: 'fd00::2', hostIP: '::1', userlandProxy: false }, 'm'))).toBe('m.hostIP');
    expect(fieldOf(() => validateMapping({ ...MAP, hostIP: '::' }, 'm'))).toBe('m.hostIP');
    expect(validateMapping({ ...MAP, hostIP: '0.0.0.0' }, 'm').hostIP).toBeUndefined();
    expect(fieldOf(() => validateNetwork({ ...NET, icc: 'yes' }))).toBe('icc');
    expect(fieldOf(() => validateNetwork({ ...NET, hostIPv4: 'fd00::1' }))).toBe('hostIPv4');
    expect(fieldOf(() => validateNetwork({ ...NET, subnets6: 'fd00::/64' }))).toBe('subnets6');
  });

  it('createFirewall: refuses unknown backends and relative namespace paths; none takes a pino logger and does nothing', async () => {
    const logger = pino({ enabled: false });
    await expect(createFirewall({ backend: 'ufw' as 'none', logger })).rejects.toThrow(InvalidArgumentError);
    await expect(createFirewall({ backend: 'none', netnsPath: 'run/netns/x', logger })).rejects.toThrow(/netnsPath/);
    const none = await createFirewall({ backend: 'none', logger });
    await none.init();
    await none.addNetwork(NET);
    await none.addPorts([MAP]);
    expect(await none.reconcile(new Set())).toEqual([]);
    await expect(none.addPorts([{ ...MAP, hostPort: 0 }])).rejects.toThrow(/hostPort/);
  });
});

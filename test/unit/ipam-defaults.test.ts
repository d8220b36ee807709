import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { Ipam, parseDefaultAddressPool, parseProcRoute, parseResolvConf, type IpamEnvironment, type IpamOptions } from '../../src/ipam/index.js';
import { ConflictError, InvalidArgumentError } from '../../src/errors.js';

const DOCKER_31 = [
  '172.17.0.0/16',
  '172.18.0.0/16',
  '172.19.0.0/16',
  '172.20.0.0/16',
  '172.21.0.0/16',
  '172.22.0.0/16',
  '172.23.0.0/16',
  '172.24.0.0/16',
  '172.25.0.0/16',
  '172.26.0.0/16',
  '172.27.0.0/16',
  '172.28.0.0/16',
  '172.29.0.0/16',
  '172.30.0.0/16',
  '172.31.0.0/16',
  ...Array.from({ length: 16 }, (_, i) => `192.168.${i * 16}.0/20`),
];

function env(routes: string[] = [], nameservers: string[] = []): IpamEnvironment {
  return { linkRoutes: async () => routes, nameservers: () => nameservers };
}

describe('IPAM default pools', () => {
  let store: Store;
  beforeEach(() => {
    store = openStore(':memory:');
  });
  afterEach(() => store.close());

  const ipam = (options: IpamOptions = {}) => new Ipam(store, { environment: env(), ...options });
  const local = (i: Ipam) => i.requestPool({ addressSpace: 'LocalDefault' });

  it("hands out Docker's 31 local default pools in Docker's order, then reports exhaustion", async () => {
    const i = ipam();
    const got: string[] = [];
    for (let n = 0; n < 31; n++) got.push((await local(i)).pool);
    expect(got).toEqual(DOCKER_31);
    await expect(local(i)).rejects.toThrow(ConflictError);
  });

  it('lists every candidate and why it was skipped when nothing is left', async () => {
    const i = ipam({ environment: env(['172.18.0.0/16', '192.168.0.0/16'], ['172.19.0.10']) });
    for (let n = 0; n < 13; n++) await local(i);
    const err = await local(i).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ConflictError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/could not find an available, non-overlapping IPv4 address pool in LocalDefault among the 31 default candidate/);
    expect(msg).toContain('172.17.0.0/16: in use by pool LocalDefault/172.17.0.0/16');
    expect(msg).toContain('172.18.0.0/16: overlaps the host route 172.18.0.0/16 (scope link)');
    expect(msg).toContain("172.19.0.0/16: contains the host's nameserver 172.19.0.10");
    expect(msg).toContain('172.31.0.0/16: in use by pool LocalDefault/172.31.0.0/16');
    expect(msg).toContain('192.168.0.0/20 … 192.168.240.0/20 (16 subnets): overlaps the host route 192.168.0.0/16 (scope link)');
    for (const candidate of DOCKER_31.slice(0, 15)) expect(msg).toContain(`  ${candidate}: `);
  });

  it('skips a candidate overlapping a link route, even one inside it', async () => {
    const i = ipam({ environment: env(['172.17.5.0/24']) });
    expect((await local(i)).pool).toBe('172.18.0.0/16');
  });

  it('skips a candidate holding a nameserver', async () => {
    const i = ipam({ environment: env([], ['172.17.0.53', '8.8.8.8']) });
    expect((await local(i)).pool).toBe('172.18.0.0/16');
  });

  it('ignores what the host reports that is not an address, and reads host bits and bare addresses as networks', async () => {
    const i = ipam({ environment: env(['default', '172.17.0.0/16', '172.18.3.4/16', '172.19.0.9'], ['not-an-ip']) });
    expect((await local(i)).pool).toBe('172.20.0.0/16');
  });

  it('never hands out a pool in use, even one the caller still holds after a host overlap', async () => {
    const i = ipam();
    const explicit = await i.requestPool({ addressSpace: 'LocalDefault', pool: '172.18.128.0/24' });
    const first = await local(i);
    const second = await local(i);
    expect([first.pool, second.pool]).toEqual(['172.17.0.0/16', '172.19.0.0/16']);
    expect(new Set([explicit.poolId, first.poolId, second.poolId]).size).toBe(3);
    i.releasePool(first.poolId);
    expect((await local(i)).pool).toBe('172.17.0.0/16');
  });

  it('uses the configured default address pools instead of Docker’s', async () => {
    const i = ipam({ defaultPools: [parseDefaultAddressPool('base=10.10.0.0/16,size=24'), { base: '10.20.0.0/23', size: 24 }] });
    const got: string[] = [];
    for (let n = 0; n < 3; n++) got.push((await local(i)).pool);
    expect(got).toEqual(['10.10.0.0/24', '10.10.1.0/24', '10.10.2.0/24']);
    const j = ipam({ defaultPools: [{ base: '10.20.0.0/23', size: 24 }] });
    expect([(await local(j)).pool, (await local(j)).pool]).toEqual(['10.20.0.0/24', '10.20.1.0/24']);
    await expect(local(j)).rejects.toThrow(/among the 2 default candidate/);
  });

  it('draws global pools lazily from 10.0.0.0/8 in /24s, without checking the host', async () => {
    const i = ipam({ environment: env(['10.0.0.0/24']) });
    expect(i.defaultAddressSpaces()).toEqual({ local: 'LocalDefault', global: 'GlobalDefault' });
    const global = () => i.requestPool({ addressSpace: i.defaultAddressSpaces().global });
    expect((await global()).pool).toBe('10.0.0.0/24');
    expect((await global()).pool).toBe('10.0.1.0/24');
    await expect(i.requestPool({ addressSpace: 'GlobalDefault', pool: '10.0.0.0/9' })).rejects.toThrow(/^subnet: 10\.0\.0\.0\/9 overlaps 10\.0\.0\.0\/24, in use by pool GlobalDefault\/10\.0\.0\.0\/24$/);
    await i.requestPool({ addressSpace: 'GlobalDefault', pool: '10.64.0.0/10' });
    await i.requestPool({ addressSpace: 'GlobalDefault', pool: '10.0.2.0/23' });
    await i.requestPool({ addressSpace: 'GlobalDefault', pool: '10.0.4.0/22' });
    await i.requestPool({ addressSpace: 'GlobalDefault', pool: '10.0.8.0/21' });
    expect((await global()).pool).toBe('10.0.16.0/24');
    expect((await local(i)).pool).toBe('172.17.0.0/16');
  });

  it('summarises a long global exhaustion by ranges of candidates', async () => {
    const i = ipam();
    await i.requestPool({ addressSpace: 'GlobalDefault', pool: '10.0.0.0/9' });
    await i.requestPool({ addressSpace: 'GlobalDefault', pool: '10.128.0.0/9' });
    const err = await i.requestPool({ addressSpace: 'GlobalDefault' }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/among the 65536 default candidate\(s\):\n {2}10\.0\.0\.0\/24 … 10\.127\.255\.0\/24 \(32768 subnets\): in use by pool GlobalDefault\/10\.0\.0\.0\/9\n {2}10\.128\.0\.0\/24 … 10\.255\.255\.0\/24 \(32768 subnets\): in use by pool GlobalDefault\/10\.128\.0\.0\/9$/);
  });

  it('gives an IPv6 request a random unique local /64, never the same twice', async () => {
    const i = ipam();
    const a = await i.requestPool({ addressSpace: 'LocalDefault', v6: true });
    const b = await i.requestPool({ addressSpace: 'LocalDefault', v6: true });
    for (const p of [a.pool, b.pool]) expect(p).toMatch(/^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/64$/);
    expect(a.pool).not.toBe(b.pool);
    expect(i.getPool(a.poolId)).toMatchObject({ family: 6, addressSpace: 'LocalDefault' });
  });

  it('uses configured IPv6 default pools for IPv6 requests', async () => {
    const i = ipam({ defaultPools: [{ base: 'fd00:1::/48', size: 64 }, { base: '10.1.0.0/16', size: 24 }] });
    expect((await i.requestPool({ addressSpace: 'LocalDefault', v6: true })).pool).toBe('fd00:1::/64');
    expect((await i.requestPool({ addressSpace: 'LocalDefault', v6: true })).pool).toBe('fd00:1:0:1::/64');
    expect((await local(i)).pool).toBe('10.1.0.0/24');
  });

  it('refuses a bad default pool list when the IPAM is made', () => {
    expect(() => ipam({ defaultPools: [{ base: '10.0.0.0/16', size: 8 }] })).toThrow(/^size: 8 must be a prefix length between the base's \/16 and \/32/);
    expect(() => ipam({ globalPools: [{ base: '10.0.0.1/8', size: 24 }] })).toThrow(/^base: 10\.0\.0\.1\/8 has host bits set: did you mean 10\.0\.0\.0\/8\?/);
  });
});

describe('parseDefaultAddressPool', () => {
  it('parses base and size in either order', () => {
    expect(parseDefaultAddressPool('base=172.30.0.0/16,size=24')).toEqual({ base: '172.30.0.0/16', size: 24 });
    expect(parseDefaultAddressPool('size=64, base=fd00:ab::/56')).toEqual({ base: 'fd00:ab::/56', size: 64 });
  });

  it.each([
    ['size=24', 'base', /is required/],
    ['base=10.0.0.0/8', 'size', /is required/],
    ['base=10.0.0.0/8,size=x', 'size', /"x" is not a prefix length/],
    ['base=10.0.0.0/8,size=33', 'size', /33 must be a prefix length between the base's \/8 and \/32/],
    ['base=10.0.0.0/16,size=8', 'size', /between the base's \/16/],
    ['base=10.0.0.0,size=24', 'base', /not in CIDR notation/],
    ['base=10.0.0.300/8,size=24', 'base', /is not an IP address/],
    ['base=10.1.0.0/8,size=24', 'base', /did you mean 10\.0\.0\.0\/8/],
    ['base=10.0.0.0/8,size=24,base=11.0.0.0/8', 'base', /given twice/],
    ['base=10.0.0.0/8,size=24,mask=8', 'default-address-pool', /unknown key "mask"/],
    ['base', 'base', /needs a value/],
  ])('refuses %j naming the field %s', (spec, field, why) => {
    const err = (() => {
      try {
        parseDefaultAddressPool(spec);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe(field);
    expect((err as Error).message).toMatch(why);
  });
});

describe('host environment parsing', () => {
  it('reads nameservers from resolv.conf', () => {
    const text = '# generated\nsearch lab\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n  nameserver   10.0.0.2  \n;nameserver 1.1.1.1\noptions ndots:1\n';
    expect(parseResolvConf(text)).toEqual(['192.0.2.53', 'fe80::1', '10.0.0.2']);
  });

  it('reads directly connected routes from /proc/net/route', () => {
    const le = (a: number, b: number, c: number, d: number) => [d, c, b, a].map((x) => x.toString(16).padStart(2, '0')).join('').toUpperCase();
    const text = [
      'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
      `eth0\t00000000\t${le(192, 0, 2, 1)}\t0003\t0\t0\t0\t00000000\t0\t0\t0`,
      `eth0\t${le(192, 0, 2, 0)}\t00000000\t0001\t0\t0\t0\t${le(255, 255, 255, 0)}\t0\t0\t0`,
      `br0\t${le(172, 18, 0, 0)}\t00000000\t0001\t0\t0\t0\t${le(255, 255, 0, 0)}\t0\t0\t0`,
      `eth0\t${le(10, 9, 0, 0)}\t${le(192, 0, 2, 7)}\t0003\t0\t0\t0\t${le(255, 255, 0, 0)}\t0\t0\t0`,
      `lo\t${le(10, 66, 0, 0)}\t00000000\t0201\t0\t0\t0\t${le(255, 255, 0, 0)}\t0\t0\t0`,
      `down0\t${le(10, 67, 0, 0)}\t00000000\t0000\t0\t0\t0\t${le(255, 255, 0, 0)}\t0\t0\t0`,
    ].join('\n');
    expect(parseProcRoute(text)).toEqual(['192.0.2.0/24', '172.18.0.0/16']);
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { Ipam, type AddressKind } from '../../src/ipam/index.js';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../src/errors.js';

/** The error fn throws (sync or async), for checks on its class, field and message. */
async function failure(fn: () => unknown): Promise<Error & { field?: string }> {
  try {
    await fn();
  } catch (err) {
    return err as Error & { field?: string };
  }
  throw new Error('expected a failure');
}

describe('IPAM addresses', () => {
  let store: Store;
  let ipam: Ipam;
  beforeEach(() => {
    store = openStore(':memory:');
    ipam = new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } });
  });
  afterEach(() => store.close());

  const pool = async (subnet: string, ipRange?: string) =>
    (await ipam.requestPool({ addressSpace: 'LocalDefault', pool: subnet, ...(ipRange ? { subPool: ipRange } : {}) })).poolId;
  const take = (poolId: string, owner: string, address?: string, kind: AddressKind = 'endpoint') =>
    ipam.requestAddress(poolId, { kind, owner, ...(address === undefined ? {} : { address }) });

  it('sets up a user subnet with ip-range, gateway and named aux addresses', async () => {
    const rec = await ipam.allocateSubnet({ subnet: '10.50.0.0/16', ipRange: '10.50.8.0/24', gateway: '10.50.0.254', auxAddresses: { router: '10.50.8.1', dns: '10.50.0.53' }, owner: 'net1' });
    expect(rec).toEqual({
      poolId: 'LocalDefault/10.50.0.0/16/10.50.8.0/24',
      subnet: '10.50.0.0/16',
      ipRange: '10.50.8.0/24',
      gateway: '10.50.0.254/16',
      auxAddresses: { router: '10.50.8.1/16', dns: '10.50.0.53/16' },
    });
    expect(take(rec.poolId, 'ep1')).toBe('10.50.8.0/16');
    expect(take(rec.poolId, 'ep2')).toBe('10.50.8.2/16');
    expect(ipam.listAddresses(rec.poolId)).toEqual([
      { address: '10.50.0.53/16', kind: 'aux', owner: 'dns' },
      { address: '10.50.8.1/16', kind: 'aux', owner: 'router' },
      { address: '10.50.8.0/16', kind: 'endpoint', owner: 'ep1' },
      { address: '10.50.8.2/16', kind: 'endpoint', owner: 'ep2' },
      { address: '10.50.0.254/16', kind: 'gateway', owner: 'net1' },
    ]);
  });

  it('gives a gateway the first free address, after any aux address', async () => {
    const rec = await ipam.allocateSubnet({ subnet: '10.51.0.0/24', auxAddresses: { r: '10.51.0.1' }, owner: 'net1' });
    expect(rec.gateway).toBe('10.51.0.2/24');
    const ranged = await ipam.allocateSubnet({ subnet: '10.52.0.0/24', ipRange: '10.52.0.128/25', owner: 'net2' });
    expect(ranged.gateway).toBe('10.52.0.128/24');
  });

  it('allocates like Docker: next free after the last one, never network or broadcast, wrapping at the end', async () => {
    const id = await pool('10.9.0.0/29');
    expect(take(id, 'gw', undefined, 'gateway')).toBe('10.9.0.1/29');
    expect([take(id, 'a'), take(id, 'b'), take(id, 'c')]).toEqual(['10.9.0.2/29', '10.9.0.3/29', '10.9.0.4/29']);
    ipam.releaseAddress(id, '10.9.0.3');
    expect(take(id, 'd')).toBe('10.9.0.5/29');
    expect(take(id, 'e')).toBe('10.9.0.6/29');
    expect(take(id, 'f')).toBe('10.9.0.3/29');
    const full = await failure(() => take(id, 'g'));
    expect(full).toBeInstanceOf(ConflictError);
    expect(full.message).toBe('no available IPv4 address in 10.9.0.0/29 (pool LocalDefault/10.9.0.0/29): every address of 10.9.0.1–10.9.0.6 is allocated');
    ipam.releaseAddress(id, '10.9.0.5/29');
    ipam.releaseAddress(id, '10.9.0.2');
    expect([take(id, 'h'), take(id, 'i')]).toEqual(['10.9.0.5/29', '10.9.0.2/29']);
  });

  it('keeps automatic allocation inside the ip-range, and explicit addresses anywhere in the subnet', async () => {
    const id = await pool('10.60.0.0/24', '10.60.0.8/30');
    expect([take(id, 'a'), take(id, 'b'), take(id, 'c'), take(id, 'd')]).toEqual(['10.60.0.8/24', '10.60.0.9/24', '10.60.0.10/24', '10.60.0.11/24']);
    await expect(failure(() => take(id, 'e'))).resolves.toBeInstanceOf(ConflictError);
    expect(take(id, 'static', '10.60.0.200')).toBe('10.60.0.200/24');
  });

  it('uses every address of /31 and /32 subnets', async () => {
    const p31 = await pool('10.70.0.0/31');
    expect([take(p31, 'a'), take(p31, 'b')]).toEqual(['10.70.0.0/31', '10.70.0.1/31']);
    const p32 = await pool('10.70.0.9/32');
    expect(take(p32, 'a')).toBe('10.70.0.9/32');
  });

  it('hands out an explicit address, refuses it to anyone else naming the holder, and replays it to the holder', async () => {
    const id = await pool('172.30.0.0/16');
    expect(take(id, 'gw-net', '172.30.0.1', 'gateway')).toBe('172.30.0.1/16');
    expect(take(id, 'ep1', '172.30.5.5')).toBe('172.30.5.5/16');
    const taken = await failure(() => take(id, 'ep2', '172.30.5.5'));
    expect(taken).toBeInstanceOf(ConflictError);
    expect(taken.message).toBe('ip: 172.30.5.5 is already allocated to endpoint ep1');
    expect(taken.field).toBe('ip');
    expect((await failure(() => take(id, 'ep3', '172.30.0.1'))).message).toMatch(/^ip: 172\.30\.0\.1 is already allocated to the gateway of gw-net/);
    expect(take(id, 'ep1', '172.30.5.5/16')).toBe('172.30.5.5/16');
    expect(take(id, 'ep4')).toBe('172.30.0.2/16');
    expect(take(id, 'ep5', '')).toBe('172.30.0.3/16');
  });

  it('refuses the gateway on an aux address, naming the aux address', async () => {
    const err = await failure(() => ipam.allocateSubnet({ subnet: '10.80.0.0/24', gateway: '10.80.0.9', auxAddresses: { printer: '10.80.0.9' }, owner: 'n' }));
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.message).toMatch(/^gateway: 10\.80\.0\.9 is already allocated to the auxiliary address "printer"/);
    expect(ipam.listPools()).toEqual([]);
  });

  it.each([
    [{ subnet: '10.1.0.0/33' }, 'subnet', /prefix length \/33 is longer than 32 bits/],
    [{ subnet: '10.1.2.3/16' }, 'subnet', /has host bits set: did you mean 10\.1\.0\.0\/16\?/],
    [{ subnet: 'banana' }, 'subnet', /not in CIDR notation/],
    [{ subnet: '10.1.0.0/16', v6: true }, 'subnet', /is an IPv4 subnet, but an IPv6 pool was requested/],
    [{ ipRange: '10.1.0.0/24' }, 'ip-range', /needs an explicit --subnet/],
    [{ subnet: '10.1.0.0/16', ipRange: '10.2.0.0/24' }, 'ip-range', /10\.2\.0\.0\/24 is not inside the subnet 10\.1\.0\.0\/16/],
    [{ subnet: '10.1.0.0/16', ipRange: '10.1.0.0/8' }, 'ip-range', /has host bits set/],
    [{ subnet: '10.1.0.0/16', gateway: '10.2.0.1' }, 'gateway', /10\.2\.0\.1 is not inside the subnet 10\.1\.0\.0\/16/],
    [{ subnet: '10.1.0.0/16', gateway: '10.1.0.0' }, 'gateway', /is the network address of 10\.1\.0\.0\/16/],
    [{ subnet: '10.1.0.0/16', gateway: '10.1.255.255' }, 'gateway', /is the broadcast address of 10\.1\.0\.0\/16/],
    [{ subnet: '10.1.0.0/16', gateway: '10.1.0.1/24' }, 'gateway', /has prefix length \/24, but the subnet 10\.1\.0\.0\/16 is \/16/],
    [{ subnet: '10.1.0.0/16', gateway: 'fd00::1' }, 'gateway', /is not inside the subnet/],
    [{ gateway: '10.1.0.1' }, 'gateway', /needs an explicit --subnet/],
    [{ subnet: '10.1.0.0/16', auxAddresses: { r: '10.9.0.1' } }, 'aux-address', /is not inside the subnet/],
    [{ subnet: '10.1.0.0/16', auxAddresses: { '': '10.1.0.5' } }, 'aux-address', /needs a name/],
    [{ subnet: '10.1.0.0/16', auxAddresses: { r: '10.1.0.300' } }, 'aux-address', /is not an IP address/],
    [{ subnet: 'fd00:1::/64', gateway: 'fd00:1::' }, 'gateway', /is the subnet-router anycast address of fd00:1::\/64/],
    [{ subnet: 'fe80::1%eth0/64' }, 'subnet', /is not an IP address/],
    [{ subnet: '::ffff:10.0.0.0/104' }, 'subnet', /embeds an IPv4 address/],
    [{ addressSpace: 'Elsewhere' as never }, 'address-space', /must be LocalDefault or GlobalDefault/],
    [{ subnet: '10.1.0.0/16', options: { mtu: 1500 } as never }, 'options', /object of string values/],
  ])('refuses %j naming the field %s, and allocates nothing', async (spec, field, why) => {
    const err = await failure(() => ipam.allocateSubnet({ owner: 'net', ...spec }));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.field).toBe(field);
    expect(err.message).toMatch(why);
    expect(err.message.startsWith(`${field}: `)).toBe(true);
    expect(ipam.listPools()).toEqual([]);
    expect(store.ipam.addressesOfSubnet('LocalDefault', '10.1.0.0/16')).toEqual([]);
  });

  it('refuses bad address requests naming the field, and changes nothing', async () => {
    const id = await pool('10.3.0.0/24');
    const before = ipam.listAddresses(id);
    expect((await failure(() => take(id, 'x', '10.4.0.1'))).field).toBe('ip');
    expect((await failure(() => take(id, 'x', '10.4.0.7', 'aux'))).field).toBe('aux-address');
    expect((await failure(() => take(id, 'x', '10.3.0.0', 'gateway'))).field).toBe('gateway');
    expect((await failure(() => take(id, 'x', '10.3.0.255'))).message).toMatch(/^ip: 10\.3\.0\.255 is the broadcast address/);
    expect((await failure(() => take(id, ''))).field).toBe('owner');
    expect((await failure(() => ipam.requestAddress(id, { kind: 'router' as never, owner: 'x' }))).field).toBe('kind');
    expect((await failure(() => ipam.releaseAddress(id, 'nope'))).field).toBe('ip');
    expect((await failure(() => take('LocalDefault/10.99.0.0/24', 'x'))).constructor).toBe(NotFoundError);
    expect(ipam.listAddresses(id)).toEqual(before);
    expect(take(id, 'first')).toBe('10.3.0.1/24');
  });

  it('rolls IPAM back with the caller’s transaction, and hands the address out again', async () => {
    const id = await pool('10.4.0.0/24');
    expect(() =>
      store.tx(() => {
        expect(take(id, 'ep1')).toBe('10.4.0.1/24');
        store.networks.put({ id: 'n', name: 'n', driver: 'bridge', scope: 'local', internal: false, enableIPv6: false, options: {}, labels: {}, config: {}, ipv4: [], ipv6: [], state: 'creating', created: 'now' });
        throw new Error('kernel step failed');
      }),
    ).toThrow('kernel step failed');
    expect(store.networks.list()).toEqual([]);
    expect(ipam.listAddresses(id)).toEqual([]);
    expect(take(id, 'ep2')).toBe('10.4.0.1/24');
  });

  it('returns the same pool id for the same subnet and ip-range, and refuses an overlapping subnet', async () => {
    const a = await ipam.requestPool({ addressSpace: 'LocalDefault', pool: '10.20.0.0/16', subPool: '10.20.1.0/24' });
    const again = await ipam.requestPool({ addressSpace: 'LocalDefault', pool: '10.20.0.0/16', subPool: '10.20.1.0/24', options: { x: 'y' } });
    expect(again).toEqual(a);
    expect(ipam.listPools()).toHaveLength(1);
    const other = await failure(() => ipam.requestPool({ addressSpace: 'LocalDefault', pool: '10.20.128.0/17' }));
    expect(other).toBeInstanceOf(ConflictError);
    expect(other.message).toBe('subnet: 10.20.128.0/17 overlaps 10.20.0.0/16, in use by pool LocalDefault/10.20.0.0/16/10.20.1.0/24');
    const global = await ipam.requestPool({ addressSpace: 'GlobalDefault', pool: '10.20.0.0/16' });
    expect(global.poolId).toBe('GlobalDefault/10.20.0.0/16');
  });

  it('gives a new network a subnet no other network holds, not even through another ip-range (two bridges, one route)', async () => {
    const a = await ipam.allocateSubnet({ subnet: '10.23.0.0/16', owner: 'network:a' });
    const dup = await failure(() => ipam.allocateSubnet({ subnet: '10.23.0.0/16', owner: 'network:b' }));
    expect(dup).toBeInstanceOf(ConflictError);
    expect(dup.message).toBe(`subnet: 10.23.0.0/16 is already in use by pool ${a.poolId}`);
    const range = await failure(() => ipam.allocateSubnet({ subnet: '10.23.0.0/16', ipRange: '10.23.9.0/24', owner: 'network:b' }));
    expect(range.message).toBe(`subnet: 10.23.0.0/16 overlaps 10.23.0.0/16, in use by pool ${a.poolId}`);
    expect(ipam.listPools().map((p) => [p.poolId, p.owner])).toEqual([[a.poolId, 'network:a']]);
    expect(ipam.listAddresses(a.poolId)).toEqual([{ address: '10.23.0.1/16', kind: 'gateway', owner: 'network:a' }]);
  });

  it('lets pools of one subnet with different ip-ranges share its addresses', async () => {
    const a = await pool('10.21.0.0/16', '10.21.1.0/24');
    const b = await pool('10.21.0.0/16', '10.21.2.0/24');
    expect(a).not.toBe(b);
    expect(take(a, 'ep-a', '10.21.2.0')).toBe('10.21.2.0/16');
    expect(take(b, 'ep-b')).toBe('10.21.2.1/16');
    expect((await failure(() => take(b, 'ep-c', '10.21.2.0'))).message).toMatch(/allocated to endpoint ep-a/);
    ipam.releasePool(a);
    expect(take(b, 'ep-c', '10.21.2.0')).toBe('10.21.2.0/16');
    expect(take(b, 'ep-d')).toBe('10.21.2.2/16');
  });

  it('releases pools and addresses idempotently', async () => {
    const id = await pool('10.22.0.0/24');
    take(id, 'ep1');
    ipam.releaseAddress(id, '10.22.0.1');
    ipam.releaseAddress(id, '10.22.0.1');
    ipam.releaseAddress(id, '10.22.0.77');
    take(id, 'ep2');
    ipam.releasePool(id);
    ipam.releasePool(id);
    ipam.releaseAddress(id, '10.22.0.2');
    expect(ipam.getPool(id)).toBeUndefined();
    expect(store.ipam.addressesOfSubnet('LocalDefault', '10.22.0.0/24')).toEqual([]);
    expect((await failure(() => take(id, 'ep3'))).message).toBe(`pool "${id}" not found`);
    expect(take(await pool('10.22.0.0/24'), 'ep4')).toBe('10.22.0.1/24');
  });

  it('allocates IPv6 in a generated ULA /64 with canonical addresses', async () => {
    const rec = await ipam.allocateSubnet({ v6: true, owner: 'net6' });
    const base = rec.subnet.replace('::/64', '');
    expect(rec.gateway).toBe(`${base}::1/64`);
    expect(take(rec.poolId, 'ep1')).toBe(`${base}::2/64`);
    const explicit = `${base}:0:0:0:0:abcd`;
    expect(take(rec.poolId, 'ep2', explicit)).toBe(`${base}::abcd/64`);
    expect((await failure(() => take(rec.poolId, 'ep3', `${base}::ABCD`))).message).toMatch(/already allocated to endpoint ep2/);
    expect((await failure(() => take(rec.poolId, 'ep3', '10.0.0.1'))).field).toBe('ip');
  });

  it('allocates in a large IPv6 subnet across chunk boundaries and far offsets', async () => {
    const id = await pool('2001:db8::/32', '2001:db8:0:1::/64');
    expect(take(id, 'far', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff')).toBe('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/32');
    expect(take(id, 'a')).toBe('2001:db8:0:1::/32');
    for (let i = 0; i < 3; i++) take(id, `b${i}`);
    expect(take(id, 'c')).toBe('2001:db8:0:1::4/32');
    expect(take(id, 'd', '2001:db8:0:1:0:0:1:0')).toBe('2001:db8:0:1::1:0/32');
  });
});

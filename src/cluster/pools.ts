// Choosing a subnet for a global network: a given one must overlap no global pool and no local
// network of any registered host; a default one is the first candidate of the global default
// pools that overlaps neither, and the error lists every skipped candidate with its reason, in
// the local IPAM's words. Pure: callers pass what they read from etcd.
import { ConflictError, InvalidArgumentError } from '../errors.js';
import { covers, overlaps, parseAddress, parseAddressOrCidr, parsePrefix, contains, formatAddress, type Prefix } from '../ip/index.js';
import { candidates, randomUlaPrefix, type ParsedDefaultPool } from '../ipam/defaults.js';
import { pickFirst } from '../ipam/pools.js';
import type { HostRecord } from './hosts.js';
import type { GlobalPool } from './types.js';

export interface Occupied {
  prefix: Prefix;
  reason: string;
}

/** Every subnet a global pool must not overlap, with the reason a candidate would be skipped. */
export function occupied(pools: GlobalPool[], hosts: HostRecord[]): Occupied[] {
  const out: Occupied[] = pools.map((p) => ({ prefix: parsePrefix('pool', p.subnet), reason: `in use by global network ${p.owner}` }));
  for (const h of hosts) {
    for (const l of h.localSubnets) {
      out.push({ prefix: parsePrefix('subnet', l.subnet), reason: `overlaps the local network ${l.network} (${l.subnet}) on host ${h.hostname} (${h.vtep}, id ${h.id})` });
    }
  }
  return out;
}

function reasonFor(prefix: Prefix, taken: Occupied[]): string | undefined {
  return taken.find((t) => overlaps(t.prefix, prefix))?.reason;
}

/** The given subnet, checked, or the first free default one of the family. */
export function chooseSubnet(req: { subnet?: string; v6: boolean }, taken: Occupied[], defaults: ParsedDefaultPool[]): Prefix {
  if (req.subnet !== undefined) {
    const prefix = parsePrefix('subnet', req.subnet);
    if (prefix.family !== (req.v6 ? 6 : 4)) throw new ConflictError(`subnet ${prefix.text} is not an IPv${req.v6 ? 6 : 4} subnet`, { field: 'subnet' });
    const reason = reasonFor(prefix, taken);
    if (reason) throw new ConflictError(`subnet ${prefix.text} cannot be a global pool: it ${reason.replace(/^in use/, 'is in use')}`, { field: 'subnet' });
    return prefix;
  }
  const family = req.v6 ? 6 : 4;
  if (family === 6 && !defaults.some((d) => d.base.family === 6)) {
    for (let i = 0; i < 8; i++) {
      const ula = randomUlaPrefix();
      if (!reasonFor(ula, taken)) return ula;
    }
  }
  return pickFirst(candidates(defaults, family), (c) => reasonFor(c, taken), `global IPv${family} subnet`);
}

/** The ip-range (inside the subnet) and the gateway (given, or the first address of the range). */
export function subnetLayout(prefix: Prefix, ipRange: string | undefined, gateway: string | undefined): { range: Prefix; gateway: string } {
  let range = prefix;
  if (ipRange !== undefined) {
    range = parsePrefix('ip-range', ipRange);
    if (!covers(prefix, range)) throw new ConflictError(`ip-range ${range.text} is not inside subnet ${prefix.text}`, { field: 'ip-range' });
  }
  if (gateway !== undefined) {
    const address = parseAddress('gateway', gateway.split('/')[0]);
    if (!contains(prefix, address)) throw new ConflictError(`gateway ${gateway} is not inside subnet ${prefix.text}`, { field: 'gateway' });
    return { range, gateway: formatAddress(address.family, address.value) };
  }
  const { first, last } = hostSpan(prefix, range);
  if (first > last) throw new ConflictError(`subnet ${prefix.text} has no address for a gateway`, { field: 'subnet' });
  return { range, gateway: formatAddress(prefix.family, first) };
}

/**
 * The addresses of a range that can be handed out: inside the subnet, but, as the local IPAM
 * reserves them, not the IPv4 network and broadcast addresses of a subnet shorter than /31, nor
 * the IPv6 network address (the Subnet-Router anycast address) of one shorter than /127; so the
 * default gateway is the first address after the network's in both families (empty when first > last).
 */
export function hostSpan(subnet: Prefix, range: Prefix = subnet): { first: bigint; last: bigint } {
  const edges = subnet.family === 4 && subnet.bits < 31;
  const first = edges || (subnet.family === 6 && subnet.bits < 127) ? subnet.start + 1n : subnet.start;
  const last = edges ? subnet.end - 1n : subnet.end;
  return { first: range.start > first ? range.start : first, last: range.end < last ? range.end : last };
}

/** "ADDR" or "ADDR/LEN" inside the subnet (LEN, when given, must be the subnet's) → canonical "ADDR". */
export function addressIn(subnet: Prefix, text: string): string {
  const a = parseAddressOrCidr('ip', text);
  if (a.bits !== undefined && a.bits !== subnet.bits) throw new InvalidArgumentError('ip', `${text}: the prefix length must be the pool's /${subnet.bits}`);
  if (a.family !== subnet.family || a.value < subnet.start || a.value > subnet.end) throw new InvalidArgumentError('ip', `${text} is not inside pool ${subnet.text}`);
  // The network and broadcast addresses of an IPv4 subnet, as the local IPAM refuses them.
  const { first, last } = hostSpan(subnet);
  const plain = formatAddress(a.family, a.value);
  if (a.value < first) throw new InvalidArgumentError('ip', `${plain} is the network address of ${subnet.text}`);
  if (a.value > last) throw new InvalidArgumentError('ip', `${plain} is the broadcast address of ${subnet.text}`);
  return plain;
}

// Global networks by name: the first host to ask creates the record, its VNI and its pools in one
// transaction (create-if-absent on the name and the VNI, no new pool since the read); every later
// ask with the same settings gets that record, one with other settings is refused naming them.
// Each host that has the network holds a member key; the last one to leave deletes it all.
import { randomBytes } from 'node:crypto';
import { ConflictError, InvalidArgumentError } from '../errors.js';
import { contentionPause, parseJson, type Compare, type Op, type StoreClient } from './client.js';
import type { EtcdIpam, PoolRecord } from './ipam.js';
import type { HostRecord } from './hosts.js';
import type { Keys } from './keys.js';
import type { GlobalNetwork, GlobalNetworkSpec, GlobalSubnet, MemberValue, NetworkRemoval, SubnetRequest } from './types.js';

export const FIRST_VNI = 4096;
export const MAX_VNI = 16_777_215;
/** Creates race on the pool range: each round at least one of the racers wins. */
const ATTEMPTS = 24;

export interface NetworkDeps {
  client: StoreClient;
  keys: Keys;
  hostId: string;
  ipam: EtcdIpam;
}

/** What differs between a create request and the network the cluster has, in words. */
export function differences(spec: GlobalNetworkSpec, have: GlobalNetwork): string[] {
  const out: string[] = [];
  const show = (v: unknown) => (v === undefined ? 'unset' : JSON.stringify(v));
  const field = (name: string, here: unknown, there: unknown) => {
    if (here !== there) out.push(`${name}: ${show(here)} here, ${show(there)} in the cluster`);
  };
  field('driver', spec.driver, have.driver);
  field('internal', spec.internal, have.internal);
  field('ipv6', spec.enableIPv6, have.enableIPv6);
  if (spec.vni !== undefined) field('vni', spec.vni, have.vni);
  for (const key of [...new Set([...Object.keys(spec.options), ...Object.keys(have.options)])].sort()) field(`options.${key}`, spec.options[key], have.options[key]);
  const labels = spec.labels ?? {};
  if (Object.keys(labels).length > 0) {
    const theirs = have.labels ?? {};
    for (const key of [...new Set([...Object.keys(labels), ...Object.keys(theirs)])].sort()) field(`labels.${key}`, labels[key], theirs[key]);
  }
  for (const family of ['ipv4', 'ipv6'] as const) {
    spec[family].forEach((want, i) => {
      const got = have[family][i];
      for (const k of ['subnet', 'ipRange', 'gateway'] as const) {
        const w = want[k];
        if (w === undefined) continue;
        const g = k === 'gateway' ? got?.gateway.split('/')[0] : got?.[k];
        field(`${family}[${i}].${k}`, w, g);
      }
    });
  }
  return out;
}

function checkSpec(spec: GlobalNetworkSpec): void {
  if (typeof spec.driver !== 'string' || spec.driver === '') throw new InvalidArgumentError('driver', 'is required');
  if (spec.vni !== undefined && (!Number.isInteger(spec.vni) || spec.vni < 1 || spec.vni > MAX_VNI)) {
    throw new InvalidArgumentError('vni', `${spec.vni} is not a VXLAN id (1 to ${MAX_VNI})`);
  }
  if (!spec.enableIPv6 && spec.ipv6.length > 0) throw new InvalidArgumentError('ipv6', 'IPv6 subnets need IPv6 enabled');
}

/** The first VNI from 4096 up that no network holds. */
export function freeVni(used: Set<number>): number {
  for (let v = FIRST_VNI; v <= MAX_VNI; v++) if (!used.has(v)) return v;
  throw new ConflictError('no VXLAN id left', { field: 'vni' });
}

/**
 * A local network of the name on another host (its host record's localSubnets) is refused naming
 * that host and network: the global network would stay hidden behind it there. Limits: a host
 * whose record is not in etcd (not running, or its lease gone) cannot be known, nor a local
 * network without a subnet (none is published), nor one made on a host since its record was last
 * written (every TTL/3).
 */
function refuseLocalName(name: string, hosts: HostRecord[], self: string): void {
  const found = hosts.filter((h) => h.id !== self).flatMap((h) => {
    const subnets = h.localSubnets.filter((l) => l.network === name).map((l) => l.subnet);
    return subnets.length > 0 ? [`the local network ${name} (${subnets.join(', ')}) on host ${h.hostname} (${h.vtep})`] : [];
  });
  if (found.length > 0) throw new ConflictError(`network with name ${name} already exists: ${found.join(', ')}`, { field: 'name' });
}

export class Networks {
  constructor(private readonly d: NetworkDeps) {}

  async ensure(spec: GlobalNetworkSpec): Promise<GlobalNetwork> {
    checkSpec(spec);
    const key = this.d.keys.network(spec.name);
    for (let i = 0; i < ATTEMPTS; i++) {
      const view = await this.d.ipam.readView([{ get: key }, { get: this.d.keys.vnis(), prefix: true }]);
      const [[existing] = [], vnis = []] = view.extra;
      refuseLocalName(spec.name, view.hosts, this.d.hostId);
      if (existing) return this.adopt(spec, parseJson<GlobalNetwork>(existing));
      const used = new Map(vnis.map((kv) => [Number(kv.key.slice(this.d.keys.vnis().length)), parseJson<{ network: string }>(kv).network]));
      if (spec.vni !== undefined && used.has(spec.vni)) throw new ConflictError(`vxlanid ${spec.vni} is in use by global network ${used.get(spec.vni)}`, { field: 'vni' });
      const vni = spec.vni ?? freeVni(new Set(used.keys()));
      const planned: PoolRecord[] = [];
      const ops: Op[] = [];
      const plan = (req: SubnetRequest, v6: boolean) => {
        // A pool the name already holds (asked for by the Docker engine's IPAM before its CreateNetwork) is the network's.
        const held = view.pools.find((p) => p.owner === spec.name && p.family === (v6 ? 6 : 4) && !planned.includes(p));
        if (held && (req.subnet === undefined || held.subnet === req.subnet)) return void planned.push(held);
        const p = this.d.ipam.planPool(view, { ...req, v6, owner: spec.name }, planned);
        planned.push(p.record);
        ops.push(...p.ops);
      };
      (spec.ipv4.length > 0 ? spec.ipv4 : [{}]).forEach((r) => plan(r, false));
      if (spec.enableIPv6) (spec.ipv6.length > 0 ? spec.ipv6 : [{}]).forEach((r) => plan(r, true));
      const net: GlobalNetwork = {
        name: spec.name, id: randomBytes(32).toString('hex'), driver: spec.driver, vni, internal: spec.internal, enableIPv6: spec.enableIPv6,
        options: { ...spec.options }, labels: { ...spec.labels }, ipv4: planned.filter((p) => p.family === 4).map(subnetOf), ipv6: planned.filter((p) => p.family === 6).map(subnetOf),
        createdBy: this.d.hostId, created: new Date().toISOString(),
      };
      const compare: Compare[] = [
        { key, target: 'version', op: '=', value: 0 },
        { key: this.d.keys.vni(vni), target: 'version', op: '=', value: 0 },
        this.d.ipam.poolGuard(view),
      ];
      // Lost, the answer carries the name's record: when hosts create the same network at once
      // (a lab's), the others join it at once instead of pausing and reading again.
      const res = await this.d.client.txn(`create global network ${spec.name}`, compare, [
        { put: key, value: net }, { put: this.d.keys.vni(vni), value: { network: spec.name } }, ...ops, this.memberOp(spec.name, spec.dockerNetwork),
      ], [{ get: key }]);
      if (res.succeeded) {
        // The pools made here: their views are known (the gateway is their one address), no read at the first connect.
        for (const p of planned) if (ops.some((op) => 'put' in op && op.put === this.d.keys.pool(p.poolId))) this.d.ipam.madePool(p, res.revision);
        return net;
      }
      const [made] = res.reads[0] ?? [];
      if (made) return this.adopt(spec, parseJson<GlobalNetwork>(made));
      await contentionPause(i);
    }
    throw new ConflictError(`global network ${spec.name}: gave up after ${ATTEMPTS} attempts (other hosts kept creating networks)`, { field: 'name' });
  }

  /** The network exists: the same settings join it, others are refused. */
  private async adopt(spec: GlobalNetworkSpec, have: GlobalNetwork): Promise<GlobalNetwork> {
    const diff = differences(spec, have);
    if (diff.length > 0) throw new ConflictError(`network ${spec.name} exists in the cluster with other settings: ${diff.join('; ')}`, { field: 'name' });
    await this.d.client.txn('join a global network', [], [this.memberOp(spec.name, spec.dockerNetwork)]);
    return have;
  }

  private memberOp(name: string, dockerNetwork?: string): Op {
    const value: MemberValue = { since: new Date().toISOString(), ...(dockerNetwork ? { dockerNetwork } : {}) };
    return { put: this.d.keys.member(name, this.d.hostId), value };
  }

  async get(name: string): Promise<GlobalNetwork | undefined> {
    const { kv } = await this.d.client.get(this.d.keys.network(name));
    return kv && parseJson<GlobalNetwork>(kv);
  }

  async list(): Promise<GlobalNetwork[]> {
    return (await this.d.client.range(this.d.keys.networks())).kvs.map((kv) => parseJson<GlobalNetwork>(kv));
  }

  /**
   * Removes this host's member key; when no member, no peer and no endpoint address is left,
   * deletes the network, its VNI, pools and their addresses — unless one appeared meanwhile.
   */
  async leave(name: string): Promise<{ deleted: boolean }> {
    await this.d.client.txn(`leave global network ${name}`, [], [{ del: this.d.keys.member(name, this.d.hostId) }]);
    const { deleted } = await this.deleteUnused(name, false);
    return { deleted };
  }

  /**
   * `network rm` of the cluster's network (of that id, when given) from any host: deleted with
   * every member key when no host has an endpoint on it (no peer, no endpoint address) and no live
   * host's Docker engine has a network mapped to it; else the ids of the hosts that have
   * endpoints, and those engines' networks (a host no longer registered does not hold it: its
   * engine finds it gone).
   */
  async remove(name: string, id?: string): Promise<NetworkRemoval> {
    return this.deleteUnused(name, true, id);
  }

  /** id: only the network of that id (another of the name is kept, with no holders). */
  private async deleteUnused(name: string, anyMembers: boolean, id?: string): Promise<NetworkRemoval> {
    const k = this.d.keys;
    const kept = (holders: string[], engines: NetworkRemoval['engines'] = []): NetworkRemoval => ({ deleted: false, holders, engines });
    for (let i = 0; i < ATTEMPTS; i++) {
      const read = await this.d.client.txn('read a global network', [], [
        { get: k.network(name) }, { get: k.members(name), prefix: true }, { get: k.peers(name), prefix: true, keysOnly: true },
        { get: k.hosts(), prefix: true, keysOnly: true },
      ]);
      const [[netKv] = [], members = [], peers = [], hosts = []] = read.reads;
      if (!netKv) return kept([]);
      const net = parseJson<GlobalNetwork>(netKv);
      if (id !== undefined && net.id !== id) return kept([]);
      const pools = [...net.ipv4, ...net.ipv6].map((s) => s.poolId);
      const addrs = (await Promise.all(pools.map((p) => this.d.ipam.listAddresses(p)))).flat().filter((a) => a.kind === 'endpoint');
      const holders = [...new Set([...peers.map((kv) => k.split(k.peers(name), kv.key)?.[0] ?? '?'), ...addrs.map((a) => a.host)])].sort();
      const alive = new Set(hosts.map((kv) => kv.key.slice(k.hosts().length)));
      const engines = members.map((kv) => ({ host: kv.key.slice(k.members(name).length), dockerNetwork: parseJson<MemberValue>(kv).dockerNetwork }))
        .filter((m): m is NetworkRemoval['engines'][number] => m.dockerNetwork !== undefined && alive.has(m.host))
        .sort((a, b) => a.host.localeCompare(b.host));
      if (holders.length > 0 || engines.length > 0 || (!anyMembers && members.length > 0)) return kept(holders, engines);
      const since = (prefix: string): Compare => ({ key: prefix, prefix: true, target: 'mod', op: '<', value: read.revision + 1 });
      // A member, endpoint or peer that came after the read keeps the network (then read again).
      const res = await this.d.client.txn(`delete global network ${name}`, [
        { key: netKv.key, target: 'mod', op: '=', value: netKv.modRevision }, since(k.members(name)), since(k.peers(name)), ...pools.map((p) => since(k.addresses(p))),
      ], [
        { del: netKv.key }, { del: k.vni(net.vni) }, ...(anyMembers ? [{ del: k.members(name), prefix: true }] : []),
        ...pools.flatMap((p): Op[] => [{ del: k.pool(p) }, { del: k.addresses(p), prefix: true }]),
      ]);
      if (res.succeeded) return { deleted: true, holders: [], engines: [] };
      await contentionPause(i);
    }
    if (anyMembers) throw new ConflictError(`global network ${name}: not removed after ${ATTEMPTS} attempts (other hosts kept changing it)`, { field: 'name' });
    return kept([]);
  }
}

function subnetOf(p: PoolRecord): GlobalSubnet {
  return { poolId: p.poolId, subnet: p.subnet, ...(p.ipRange ? { ipRange: p.ipRange } : {}), gateway: p.gateway! };
}

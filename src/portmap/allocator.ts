// Host port allocation per (host IP, protocol), in memory: ephemeral ports "next free after the
// last allocated" like Docker, explicit ports and ranges. Holds no socket; the proxy does that.
import fs from 'node:fs';
import { ConflictError, InvalidArgumentError } from '../errors.js';
import { canonicalIP, hostIPsOverlap, parseProto, picksFromHostRange, validatePortSpec, type PortSpec, type Proto } from './spec.js';

export interface PortRange {
  start: number;
  end: number;
}

/** Docker's range when ip_local_port_range cannot be read. */
export const FALLBACK_EPHEMERAL_RANGE: Readonly<PortRange> = { start: 49153, end: 65535 };
export const EPHEMERAL_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range';

/** Host ports [hostPort, hostPortEnd] of one protocol on one host IP (unset = all), held by owner. */
export interface PortLease {
  owner: string;
  proto: Proto;
  hostIP?: string;
  hostPort: number;
  hostPortEnd: number;
}

export interface LeaseChange {
  op: 'allocate' | 'release';
  leases: PortLease[];
}

export interface PortAllocatorOptions {
  /** Ephemeral range; read from `rangeFile` when unset. */
  ephemeralRange?: PortRange;
  rangeFile?: string;
  /** Persistence hook, called before a change is kept; throwing undoes the change. */
  onChange?: (change: LeaseChange) => void;
  /** Names a lease's owner in conflicts (sandbox "web" on network "mynet"); the owner id when it cannot. */
  describeOwner?: (owner: string) => string | undefined;
}

/**
 * Reads the ephemeral range of the network namespace the calling process is in (the sysctl is
 * per namespace); falls back to 49153-65535 when the file is missing or malformed.
 */
export function readEphemeralRange(file = EPHEMERAL_RANGE_FILE): PortRange {
  try {
    const [start, end] = fs.readFileSync(file, 'utf8').trim().split(/\s+/).map(Number);
    if (start !== undefined && end !== undefined && Number.isInteger(start) && Number.isInteger(end) && start >= 1 && start <= end && end <= 65535)
      return { start, end };
  } catch {
    // unreadable: the fallback below applies
  }
  return { ...FALLBACK_EPHEMERAL_RANGE };
}

function ipLabel(hostIP: string | undefined): string {
  return hostIP ?? 'all addresses';
}

function checkOwner(owner: unknown): string {
  if (typeof owner !== 'string' || owner === '') throw new InvalidArgumentError('owner', 'an owner id is required');
  return owner;
}

export class PortAllocator {
  readonly ephemeral: PortRange;
  private readonly onChange?: (change: LeaseChange) => void;
  private readonly describeOwner?: (owner: string) => string | undefined;
  /** proto + port → leases covering that port (usually one). */
  private readonly byPort = new Map<string, PortLease[]>();
  private readonly byOwner = new Map<string, PortLease[]>();
  /** Last port handed out, per (proto, host IP, range). */
  private readonly cursors = new Map<string, number>();

  constructor(options: PortAllocatorOptions = {}) {
    this.ephemeral = options.ephemeralRange ? { ...options.ephemeralRange } : readEphemeralRange(options.rangeFile);
    const { start, end } = this.ephemeral;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 1 || end > 65535 || end < start)
      throw new InvalidArgumentError('ephemeralRange', `${start}-${end} is not a port range within 1-65535`);
    if (options.onChange) this.onChange = options.onChange;
    if (options.describeOwner) this.describeOwner = options.describeOwner;
  }

  /** Owner of the lease that keeps (proto, hostIP, port) from being allocated, if any. */
  holder(proto: Proto, hostIP: string | undefined, port: number): string | undefined {
    return this.blocking(proto, hostIP, port)?.owner;
  }

  /**
   * Allocates the host ports of spec for owner and returns the resolved specs (host ports set,
   * host and container ranges of equal size). All or nothing: on failure nothing is held.
   * A port already held is refused with a ConflictError that names its holder.
   */
  allocate(owner: string, spec: PortSpec): PortSpec[] {
    checkOwner(owner);
    const s = validatePortSpec(spec);
    const taken: PortLease[] = [];
    const cursors = new Map(this.cursors);
    try {
      if (s.hostPort === 0) {
        for (let port = s.containerPort; port <= s.containerPortEnd; port += 1) {
          const hostPort = this.findFree(s, this.ephemeral);
          taken.push(this.hold({ owner, proto: s.proto, ...ip(s), hostPort, hostPortEnd: hostPort }));
        }
      } else if (picksFromHostRange(s)) {
        const hostPort = this.findFree(s, { start: s.hostPort, end: s.hostPortEnd });
        taken.push(this.hold({ owner, proto: s.proto, ...ip(s), hostPort, hostPortEnd: hostPort }));
      } else {
        this.assertFree(s.proto, s.hostIP, s.hostPort, s.hostPortEnd);
        taken.push(this.hold({ owner, proto: s.proto, ...ip(s), hostPort: s.hostPort, hostPortEnd: s.hostPortEnd }));
      }
      this.onChange?.({ op: 'allocate', leases: taken.map((l) => ({ ...l })) });
    } catch (err) {
      this.drop(taken);
      this.cursors.clear();
      for (const [k, v] of cursors) this.cursors.set(k, v);
      throw err;
    }
    return resolved(s, taken);
  }

  /** Frees every lease of owner; idempotent. Returns what was freed. */
  release(owner: string): PortLease[] {
    checkOwner(owner);
    const leases = this.byOwner.get(owner);
    if (!leases || leases.length === 0) return [];
    const copy = leases.map((l) => ({ ...l }));
    this.onChange?.({ op: 'release', leases: copy });
    this.drop(leases);
    return copy;
  }

  /** Rebuilds leases from the store at start. All or nothing; the persistence hook is not called. */
  restore(leases: readonly PortLease[]): void {
    const checked = leases.map((l, i) => checkLease(l, `leases[${i}]`));
    const added: PortLease[] = [];
    try {
      for (const lease of checked) {
        this.assertFree(lease.proto, lease.hostIP, lease.hostPort, lease.hostPortEnd);
        added.push(this.hold(lease));
      }
    } catch (err) {
      this.drop(added);
      throw err;
    }
  }

  /** Copies of the current leases, of one owner or of all. */
  leases(owner?: string): PortLease[] {
    const lists = owner === undefined ? [...this.byOwner.values()] : [this.byOwner.get(owner) ?? []];
    return lists.flat().map((l) => ({ ...l }));
  }

  private blocking(proto: Proto, hostIP: string | undefined, port: number): PortLease | undefined {
    return this.byPort.get(`${proto}/${port}`)?.find((l) => hostIPsOverlap(l.hostIP, hostIP));
  }

  private assertFree(proto: Proto, hostIP: string | undefined, start: number, end: number): void {
    for (let port = start; port <= end; port += 1) {
      const lease = this.blocking(proto, hostIP, port);
      if (lease)
        throw new ConflictError(
          `port ${port}/${proto} on ${ipLabel(hostIP)} is already allocated to ${this.describeOwner?.(lease.owner) ?? JSON.stringify(lease.owner)}` +
            ` (its lease: ${ipLabel(lease.hostIP)} ${lease.hostPort}-${lease.hostPortEnd})`,
          { field: 'hostPort' },
        );
    }
  }

  /** Next free port after the last one handed out in range, wrapping once around it. */
  private findFree(spec: PortSpec, range: PortRange): number {
    const key = `${spec.proto}/${spec.hostIP ?? '*'}/${range.start}-${range.end}`;
    let port = this.cursors.get(key) ?? range.end;
    for (let i = range.start; i <= range.end; i += 1) {
      port = port >= range.end || port < range.start ? range.start : port + 1;
      if (!this.blocking(spec.proto, spec.hostIP, port)) {
        this.cursors.set(key, port);
        return port;
      }
    }
    throw new ConflictError(`no free ${spec.proto} port in ${range.start}-${range.end} on ${ipLabel(spec.hostIP)}`, { field: 'hostPort' });
  }

  private hold(lease: PortLease): PortLease {
    for (let port = lease.hostPort; port <= lease.hostPortEnd; port += 1) {
      const key = `${lease.proto}/${port}`;
      const list = this.byPort.get(key);
      if (list) list.push(lease);
      else this.byPort.set(key, [lease]);
    }
    const owned = this.byOwner.get(lease.owner);
    if (owned) owned.push(lease);
    else this.byOwner.set(lease.owner, [lease]);
    return lease;
  }

  /** Forgets leases (any owners), in one pass over each owner's list. */
  private drop(leases: readonly PortLease[]): void {
    const gone = new Set(leases);
    for (const lease of gone) {
      for (let port = lease.hostPort; port <= lease.hostPortEnd; port += 1) {
        const key = `${lease.proto}/${port}`;
        const rest = (this.byPort.get(key) ?? []).filter((l) => l !== lease);
        if (rest.length > 0) this.byPort.set(key, rest);
        else this.byPort.delete(key);
      }
    }
    for (const owner of new Set(leases.map((l) => l.owner))) {
      const rest = (this.byOwner.get(owner) ?? []).filter((l) => !gone.has(l));
      if (rest.length > 0) this.byOwner.set(owner, rest);
      else this.byOwner.delete(owner);
    }
  }
}

function ip(spec: PortSpec): { hostIP?: string } {
  return spec.hostIP === undefined ? {} : { hostIP: spec.hostIP };
}

/** The specs that leases give spec: one per lease, container ports in order. */
function resolved(spec: PortSpec, leases: PortLease[]): PortSpec[] {
  if (spec.hostPort === 0)
    return leases.map((l, i) => ({ ...spec, hostPort: l.hostPort, hostPortEnd: l.hostPort, containerPort: spec.containerPort + i, containerPortEnd: spec.containerPort + i }));
  const lease = leases[0] as PortLease;
  return [{ ...spec, hostPort: lease.hostPort, hostPortEnd: lease.hostPortEnd }];
}

function checkLease(value: PortLease, field: string): PortLease {
  if (typeof value !== 'object' || value === null) throw new InvalidArgumentError(field, 'a lease object is required');
  if (typeof value.owner !== 'string' || value.owner === '') throw new InvalidArgumentError(`${field}.owner`, 'an owner id is required');
  const proto = parseProto(String(value.proto), `${field}.proto`);
  for (const key of ['hostPort', 'hostPortEnd'] as const) {
    const port = value[key];
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`${field}.${key}`, `${JSON.stringify(port)} is not a port in 1-65535`);
  }
  if (value.hostPortEnd < value.hostPort) throw new InvalidArgumentError(`${field}.hostPortEnd`, `${value.hostPortEnd} is below hostPort ${value.hostPort}`);
  const lease: PortLease = { owner: value.owner, proto, hostPort: value.hostPort, hostPortEnd: value.hostPortEnd };
  if (value.hostIP !== undefined) lease.hostIP = canonicalIP(value.hostIP, `${field}.hostIP`);
  return lease;
}

// Host identity and the host records: the host id is generated once and kept in the state dir
// with the last lease id; the record (VTEP, hostname, pid, local subnets) sits on the host's
// lease, so it vanishes when the host stops keeping the lease alive. Errors name a host as
// `cluster hosts` shows it (describeHost; owned.ts's holderOf).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConflictError } from '../errors.js';
import { VERSION } from '../version.js';
import { processStartTime } from '../netns/pids.js';
import { parseJson, type StoreClient } from './client.js';
import type { Keys } from './keys.js';
import type { HostInfo, LocalSubnet } from './types.js';

export const IDENTITY_FILE = 'cluster.json';

export interface Identity {
  hostId: string;
  leaseId?: string;
  /** The VTEP address of the last registration (a restart whose --advertise-addr interface has no address yet takes it). */
  vtep?: string;
}

export type HostRecord = Omit<HostInfo, 'leaseId' | 'state' | 'ttl' | 'grantedTtl' | 'self'>;

/** Reads the identity file, creating a host id on first use. */
export function loadIdentity(stateDir: string): Identity {
  const file = path.join(stateDir, IDENTITY_FILE);
  try {
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as Identity;
    if (typeof data.hostId === 'string' && /^[0-9a-f]{16}$/.test(data.hostId)) return data;
    throw new Error(`${file}: no valid hostId`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const identity = { hostId: randomBytes(8).toString('hex') };
  saveIdentity(stateDir, identity);
  return identity;
}

/** The VTEP address saved by an earlier run in the state dir; undefined when none (no file, an older one, unreadable). */
export function savedVtep(stateDir: string): string | undefined {
  try {
    const { vtep } = JSON.parse(fs.readFileSync(path.join(stateDir, IDENTITY_FILE), 'utf8')) as Identity;
    return typeof vtep === 'string' ? vtep : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the identity file atomically (a crash leaves the old or the new one). */
export function saveIdentity(stateDir: string, identity: Identity): void {
  const file = path.join(stateDir, IDENTITY_FILE);
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(identity)}\n`, { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

export function hostRecord(hostId: string, vtep: string, localSubnets: LocalSubnet[], started: string): HostRecord {
  const pidStart = processStartTime(process.pid);
  return { id: hostId, hostname: os.hostname(), vtep, pid: process.pid, ...(pidStart ? { pidStart } : {}), started, version: VERSION, localSubnets };
}

/**
 * Puts the record on the lease: created if absent; else replaced when the record there is this
 * daemon's own or an ended earlier run's on this machine, whichever lease it sits on (a restart
 * adopts its saved lease, or not). A record of a live other process is another daemon with the
 * same host id, as a copied state dir makes, even on this very lease: refused, the record left as it is.
 */
export async function putHostRecord(client: StoreClient, keys: Keys, record: HostRecord, lease: string): Promise<void> {
  const key = keys.host(record.id);
  const put = { put: key, value: record, lease };
  const first = await client.txn('register this host', [{ key, target: 'version', op: '=', value: 0 }], [put], [{ get: key }]);
  if (first.succeeded) return;
  const other = first.reads[0]?.[0];
  if (!other) return putHostRecord(client, keys, record, lease);
  const o = parseJson<HostRecord>(other);
  if (!isOwnOrDead(o, record)) {
    throw new ConflictError(`host id ${record.id} is registered by another live daemon (pid ${o.pid} on ${o.hostname}, VTEP ${o.vtep}): do two daemons share a state dir, or was it copied? A copy must not keep ${IDENTITY_FILE}: without it, a daemon registers as a new host`);
  }
  const what = other.lease === lease ? 'update this host' : 'take over this host\'s record';
  const take = await client.txn(what, [{ key, target: 'mod', op: '=', value: other.modRevision }], [put]);
  return take.succeeded ? undefined : putHostRecord(client, keys, record, lease);
}

/**
 * Whether the record found is this daemon's own (same pid: this process, or an earlier one that had
 * this pid and so has ended) or an earlier run's on this machine whose process is gone, or whose
 * pid another process took since (its start time is not the record's; a record without one, from
 * an older version, is taken for the process that has its pid).
 */
function isOwnOrDead(found: HostRecord, mine: HostRecord): boolean {
  if (found.hostname !== mine.hostname) return false;
  if (found.pid === mine.pid) return true;
  const start = processStartTime(found.pid);
  return start === undefined || (found.pidStart !== undefined && start !== found.pidStart);
}

/**
 * A host as `cluster hosts` shows it, for an error that names it: `host NAME (VTEP, id ID)` when
 * it is registered, `host id ID (not registered)` when not; `host id ID` when its record cannot be
 * read (one read, on an error path only).
 */
export async function describeHost(client: StoreClient, keys: Keys, hostId: string): Promise<string> {
  try {
    const { kv } = await client.get(keys.host(hostId));
    if (!kv) return `host id ${hostId} (not registered)`;
    const r = parseJson<HostRecord>(kv);
    return `host ${r.hostname} (${r.vtep}, id ${hostId})`;
  } catch {
    return `host id ${hostId}`;
  }
}

/** describeHost over one client: for the functions that name hosts (holderOf, keptError). */
export function describer(client: StoreClient, keys: Keys): (hostId: string) => Promise<string> {
  return (hostId) => describeHost(client, keys, hostId);
}

/** Every registered host, with its lease's remaining TTL. */
export async function listHosts(client: StoreClient, keys: Keys, selfId: string): Promise<HostInfo[]> {
  const { kvs } = await client.range(keys.hosts());
  return Promise.all(kvs.map(async (kv) => {
    const record = parseJson<HostRecord>(kv);
    const { ttl, grantedTtl } = await client.leaseTtl(kv.lease);
    // Keep-alives come every TTL/3: a lease below a third of its TTL has missed two.
    const state: HostInfo['state'] = ttl * 3 < grantedTtl ? 'expiring' : 'alive';
    return { ...record, leaseId: kv.lease, state, ttl, grantedTtl, self: record.id === selfId };
  }));
}

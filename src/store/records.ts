// The three CNM record kinds mapped to their tables: object-ish fields as JSON columns, optional
// fields as NULL. An endpoint must name an existing network (and sandbox, when joined); a network
// or sandbox that endpoints still use cannot be deleted.
import type Database from 'better-sqlite3';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import type { EndpointRecord, NetworkRecord, SandboxKind, SandboxRecord } from '../core/model.js';
import { fromJson, optional, optionalText, RecordTable, requireRecord, requireText, toJson, type Row, type TableSpec, type TxRunner } from './tables.js';

const SANDBOX_KINDS: readonly SandboxKind[] = ['named', 'path', 'host'];

function countOf(stmt: Database.Statement, id: string): number {
  return (stmt.get(id) as { n: number }).n;
}

export function networkTable(db: Database.Database, tx: TxRunner): RecordTable<NetworkRecord> {
  const endpoints = db.prepare('SELECT count(*) AS n FROM endpoints WHERE network_id = ?');
  const spec: TableSpec<NetworkRecord> = {
    kind: 'network',
    table: 'networks',
    columns: ['id', 'name', 'driver', 'scope', 'internal', 'enable_ipv6', 'options', 'labels', 'config', 'ipv4', 'ipv6', 'docker_id', 'state', 'created'],
    nameColumns: ['name'],
    toRow: (n) => ({
      id: n.id,
      name: n.name,
      driver: n.driver,
      scope: n.scope,
      internal: n.internal ? 1 : 0,
      enable_ipv6: n.enableIPv6 ? 1 : 0,
      options: toJson(n.options),
      labels: toJson(n.labels),
      config: toJson(n.config),
      ipv4: toJson(n.ipv4),
      ipv6: toJson(n.ipv6),
      docker_id: n.dockerId ?? null,
      state: n.state,
      created: n.created,
    }),
    fromRow: (r: Row) => ({
      id: String(r.id),
      name: String(r.name),
      driver: String(r.driver),
      scope: r.scope as NetworkRecord['scope'],
      internal: r.internal === 1,
      enableIPv6: r.enable_ipv6 === 1,
      options: fromJson(r.options),
      labels: fromJson(r.labels),
      config: fromJson(r.config),
      ipv4: fromJson(r.ipv4),
      ipv6: fromJson(r.ipv6),
      ...optional('dockerId', r.docker_id),
      state: r.state as NetworkRecord['state'],
      created: String(r.created),
    }),
    check: (n) => {
      requireText('driver', n.driver);
      if (n.scope !== 'local' && n.scope !== 'global') throw new InvalidArgumentError('scope', `must be local or global, not ${JSON.stringify(n.scope)}`);
      requireRecord('options', n.options);
      requireRecord('labels', n.labels);
      if (!Array.isArray(n.ipv4)) throw new InvalidArgumentError('ipv4', 'must be a list of subnets');
      if (!Array.isArray(n.ipv6)) throw new InvalidArgumentError('ipv6', 'must be a list of subnets');
      optionalText('dockerId', n.dockerId);
    },
    blocksDelete: (id) => {
      const n = countOf(endpoints, id);
      return n > 0 ? `it still has ${n} endpoint(s)` : undefined;
    },
  };
  return new RecordTable(db, spec, tx);
}

export function sandboxTable(db: Database.Database, tx: TxRunner): RecordTable<SandboxRecord> {
  const endpoints = db.prepare('SELECT count(*) AS n FROM endpoints WHERE sandbox_id = ?');
  const spec: TableSpec<SandboxRecord> = {
    kind: 'sandbox',
    table: 'sandboxes',
    columns: ['id', 'name', 'kind', 'netns_path', 'labels', 'state', 'created'],
    nameColumns: ['name'],
    toRow: (s) => ({ id: s.id, name: s.name, kind: s.kind, netns_path: s.netnsPath, labels: toJson(s.labels), state: s.state, created: s.created }),
    fromRow: (r: Row) => ({
      id: String(r.id),
      name: String(r.name),
      kind: r.kind as SandboxKind,
      netnsPath: String(r.netns_path),
      labels: fromJson(r.labels),
      state: r.state as SandboxRecord['state'],
      created: String(r.created),
    }),
    check: (s) => {
      if (!SANDBOX_KINDS.includes(s.kind)) throw new InvalidArgumentError('kind', `must be one of ${SANDBOX_KINDS.join(', ')}, not ${JSON.stringify(s.kind)}`);
      if (typeof s.netnsPath !== 'string') throw new InvalidArgumentError('netnsPath', 'must be a string');
      requireRecord('labels', s.labels);
    },
    blocksDelete: (id) => {
      const n = countOf(endpoints, id);
      return n > 0 ? `${n} endpoint(s) are still joined to it` : undefined;
    },
  };
  return new RecordTable(db, spec, tx);
}

export function endpointTable(db: Database.Database, tx: TxRunner): RecordTable<EndpointRecord> {
  const network = db.prepare('SELECT 1 FROM networks WHERE id = ?');
  const sandbox = db.prepare('SELECT 1 FROM sandboxes WHERE id = ?');
  const spec: TableSpec<EndpointRecord> = {
    kind: 'endpoint',
    table: 'endpoints',
    columns: ['id', 'network_id', 'sandbox_id', 'name', 'ifname', 'mac_address', 'ipv4', 'ipv6', 'ports', 'driver_data', 'docker_id', 'state', 'created'],
    nameColumns: ['network_id', 'name'],
    toRow: (e) => ({
      id: e.id,
      network_id: e.networkId,
      sandbox_id: e.sandboxId ?? null,
      name: e.name,
      ifname: e.ifname ?? null,
      mac_address: e.macAddress ?? null,
      ipv4: e.ipv4 ?? null,
      ipv6: e.ipv6 ?? null,
      ports: toJson(e.ports),
      driver_data: toJson(e.driverData),
      docker_id: e.dockerId ?? null,
      state: e.state,
      created: e.created,
    }),
    fromRow: (r: Row) => ({
      id: String(r.id),
      networkId: String(r.network_id),
      ...optional('sandboxId', r.sandbox_id),
      name: String(r.name),
      ...optional('ifname', r.ifname),
      ...optional('macAddress', r.mac_address),
      ...optional('ipv4', r.ipv4),
      ...optional('ipv6', r.ipv6),
      ports: fromJson(r.ports),
      driverData: fromJson(r.driver_data),
      ...optional('dockerId', r.docker_id),
      state: r.state as EndpointRecord['state'],
      created: String(r.created),
    }),
    check: (e) => {
      requireText('networkId', e.networkId);
      for (const field of ['sandboxId', 'ifname', 'macAddress', 'ipv4', 'ipv6', 'dockerId'] as const) optionalText(field, e[field]);
      if (!Array.isArray(e.ports)) throw new InvalidArgumentError('ports', 'must be a list');
      if (!network.get(e.networkId)) throw new NotFoundError('network', e.networkId, { field: 'networkId' });
      if (e.sandboxId !== undefined && !sandbox.get(e.sandboxId)) throw new NotFoundError('sandbox', e.sandboxId, { field: 'sandboxId' });
    },
  };
  return new RecordTable(db, spec, tx);
}

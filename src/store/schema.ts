// The state database's schema as an ordered list of migration steps; `PRAGMA user_version`
// records how many have run. Each step runs in its own transaction. Steps are never edited once
// released: a change to the schema is a new step at the end. There is no downgrade.
import type Database from 'better-sqlite3';
import { CnmkitError } from '../errors.js';
import { LINK_TABLE } from './links.js';

export interface Migration {
  /** The schema version the database has once this step has run (1, 2, …, in order). */
  version: number;
  description: string;
  up(db: Database.Database): void;
}

const RECORD_TABLES = `
CREATE TABLE networks (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  driver      TEXT NOT NULL,
  scope       TEXT NOT NULL CHECK (scope IN ('local', 'global')),
  internal    INTEGER NOT NULL CHECK (internal IN (0, 1)),
  enable_ipv6 INTEGER NOT NULL CHECK (enable_ipv6 IN (0, 1)),
  options     TEXT NOT NULL,
  labels      TEXT NOT NULL,
  config      TEXT NOT NULL,
  ipv4        TEXT NOT NULL,
  ipv6        TEXT NOT NULL,
  docker_id   TEXT,
  state       TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
  created     TEXT NOT NULL
) STRICT;
CREATE INDEX networks_docker_id ON networks (docker_id);
CREATE INDEX networks_state ON networks (state);

CREATE TABLE sandboxes (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  kind       TEXT NOT NULL CHECK (kind IN ('named', 'path', 'host')),
  netns_path TEXT NOT NULL,
  labels     TEXT NOT NULL,
  state      TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
  created    TEXT NOT NULL
) STRICT;
CREATE INDEX sandboxes_state ON sandboxes (state);

CREATE TABLE endpoints (
  id          TEXT PRIMARY KEY,
  network_id  TEXT NOT NULL REFERENCES networks (id),
  sandbox_id  TEXT REFERENCES sandboxes (id),
  name        TEXT NOT NULL,
  ifname      TEXT,
  mac_address TEXT,
  ipv4        TEXT,
  ipv6        TEXT,
  ports       TEXT NOT NULL,
  driver_data TEXT NOT NULL,
  docker_id   TEXT,
  state       TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
  created     TEXT NOT NULL,
  UNIQUE (network_id, name)
) STRICT;
CREATE INDEX endpoints_sandbox ON endpoints (sandbox_id);
CREATE INDEX endpoints_docker_id ON endpoints (docker_id);
CREATE INDEX endpoints_state ON endpoints (state);
`;

// Addresses are unique per (address space, subnet), not per pool: pools that share a subnet
// with different ip-ranges (Docker's sub-pools) draw from one set of addresses. There is no index
// on pool_id: it would add a page write to every allocation (a third of the throughput), and a
// pool's addresses are found through the primary key's (address_space, subnet) prefix instead;
// only releasing a pool pays a scan, for the cascade.
const IPAM_TABLES = `
CREATE TABLE ipam_pools (
  id            TEXT PRIMARY KEY,
  address_space TEXT NOT NULL CHECK (address_space IN ('LocalDefault', 'GlobalDefault')),
  subnet        TEXT NOT NULL,
  ip_range      TEXT,
  family        INTEGER NOT NULL CHECK (family IN (4, 6)),
  options       TEXT NOT NULL,
  data          TEXT NOT NULL,
  cursor        TEXT NOT NULL,
  created       TEXT NOT NULL
) STRICT;
CREATE INDEX ipam_pools_subnet ON ipam_pools (address_space, subnet);

CREATE TABLE ipam_addresses (
  address_space TEXT NOT NULL,
  subnet        TEXT NOT NULL,
  address       TEXT NOT NULL,
  pool_id       TEXT NOT NULL REFERENCES ipam_pools (id) ON DELETE CASCADE,
  kind          TEXT NOT NULL CHECK (kind IN ('gateway', 'aux', 'endpoint')),
  owner         TEXT NOT NULL,
  PRIMARY KEY (address_space, subnet, address)
) STRICT, WITHOUT ROWID;
`;

// Who holds each pool: "network:ID" for a network's own pool, "docker:pool" for one requested
// through the Docker IPAM plugin. Pools from before knew their network only by their gateway's owner.
const POOL_OWNERS = `
ALTER TABLE ipam_pools ADD COLUMN owner TEXT NOT NULL DEFAULT '';
UPDATE ipam_pools SET owner = COALESCE(
  (SELECT a.owner FROM ipam_addresses AS a
    WHERE a.address_space = ipam_pools.address_space AND a.subnet = ipam_pools.subnet AND a.pool_id = ipam_pools.id
      AND a.kind = 'gateway' AND a.owner LIKE 'network:%' LIMIT 1),
  'docker:pool');
CREATE INDEX ipam_pools_owner ON ipam_pools (owner);
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'networks, sandboxes and endpoints', up: (db) => db.exec(RECORD_TABLES) },
  { version: 2, description: 'IPAM pools and allocated addresses', up: (db) => db.exec(IPAM_TABLES) },
  { version: 3, description: 'the owner of each IPAM pool', up: (db) => db.exec(POOL_OWNERS) },
  { version: 4, description: 'point-to-point links between sandboxes', up: (db) => db.exec(LINK_TABLE) },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Brings the database up to the last of `steps`, one transaction per step, so that a failing
 * step leaves the database at the version before it. Refuses a database newer than `steps`.
 */
export function migrate(db: Database.Database, steps: readonly Migration[] = MIGRATIONS): number {
  checkNumbering(steps);
  const current = schemaVersion(db);
  const latest = steps.length;
  if (current > latest) {
    throw new CnmkitError(
      'ERR_SCHEMA_TOO_NEW',
      'unavailable',
      `state database is at schema version ${current}, newer than this cnmkit understands (${latest}); use a newer cnmkit or another state directory`,
    );
  }
  for (const step of steps.slice(current)) {
    db.transaction(() => {
      step.up(db);
      db.pragma(`user_version = ${step.version}`);
    }).immediate();
  }
  return schemaVersion(db);
}

/** The steps must be numbered 1, 2, … so that user_version indexes them. */
function checkNumbering(steps: readonly Migration[]): void {
  steps.forEach((step, i) => {
    if (step.version !== i + 1) throw new Error(`migration ${step.description} has version ${step.version}, expected ${i + 1}`);
  });
}

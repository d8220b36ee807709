import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DB_FILE, MIGRATIONS, SCHEMA_VERSION, migrate, openStore, type Migration } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';

const noHost = { linkRoutes: () => [], nameservers: () => [] };

describe('store schema migrations', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-migrate-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function rawV1(): Database.Database {
    const db = new Database(path.join(dir, DB_FILE));
    expect(migrate(db, MIGRATIONS.slice(0, 1))).toBe(1);
    return db;
  }

  it('upgrades a v1 database to the latest version and keeps its data', async () => {
    const db = rawV1();
    db.prepare(
      `INSERT INTO networks (id, name, driver, scope, internal, enable_ipv6, options, labels, config, ipv4, ipv6, docker_id, state, created)
       VALUES ('n1', 'front', 'bridge', 'local', 0, 0, '{}', '{"a":"b"}', '{"mtu":1500}', '[]', '[]', NULL, 'ready', '2024-01-01')`,
    ).run();
    db.prepare(`INSERT INTO sandboxes (id, name, kind, netns_path, labels, state, created) VALUES ('s1', 'web', 'named', '/run/netns/web', '{}', 'creating', '2024-01-01')`).run();
    expect(() => db.prepare('SELECT * FROM ipam_pools').all()).toThrow(/no such table/);
    db.close();

    const store = openStore(dir);
    expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBeGreaterThan(1);
    expect(store.networks.get('n1')).toMatchObject({ name: 'front', labels: { a: 'b' }, config: { mtu: 1500 } });
    expect(store.listByState('creating').sandboxes.map((s) => s.id)).toEqual(['s1']);
    const ipam = new Ipam(store, { environment: noHost });
    expect((await ipam.requestPool({ addressSpace: 'LocalDefault' })).pool).toBe('172.17.0.0/16');
    store.close();
  });

  it("gives every pool of a v2 database its owner: its network's (found by its gateway), else the Docker IPAM plugin's", () => {
    const db = new Database(path.join(dir, DB_FILE));
    expect(migrate(db, MIGRATIONS.slice(0, 2))).toBe(2);
    const pool = db.prepare(`INSERT INTO ipam_pools (id, address_space, subnet, ip_range, family, options, data, cursor, created)
      VALUES (?, 'LocalDefault', ?, NULL, 4, '{}', '{}', '0', '2024-01-01')`);
    const address = db.prepare(`INSERT INTO ipam_addresses (address_space, subnet, address, pool_id, kind, owner) VALUES ('LocalDefault', ?, ?, ?, ?, ?)`);
    pool.run('LocalDefault/10.1.0.0/24', '10.1.0.0/24');
    address.run('10.1.0.0/24', '10.1.0.1', 'LocalDefault/10.1.0.0/24', 'gateway', 'network:n1');
    address.run('10.1.0.0/24', '10.1.0.2', 'LocalDefault/10.1.0.0/24', 'endpoint', 'endpoint:e1');
    pool.run('LocalDefault/10.2.0.0/24', '10.2.0.0/24');
    address.run('10.2.0.0/24', '10.2.0.1', 'LocalDefault/10.2.0.0/24', 'gateway', 'docker:LocalDefault/10.2.0.0/24');
    pool.run('LocalDefault/10.3.0.0/24', '10.3.0.0/24');
    db.close();
    const store = openStore(dir);
    expect(store.ipam.listPools().map((p) => [p.subnet, p.owner])).toEqual([['10.1.0.0/24', 'network:n1'], ['10.2.0.0/24', 'docker:pool'], ['10.3.0.0/24', 'docker:pool']]);
    expect(store.ipam.listPoolsOf('network:n1').map((p) => p.id)).toEqual(['LocalDefault/10.1.0.0/24']);
    store.close();
  });

  it('runs each step once: reopening a current database changes nothing', () => {
    const store = openStore(dir);
    store.close();
    const seen: number[] = [];
    const steps: Migration[] = MIGRATIONS.map((m) => ({ ...m, up: (db) => (seen.push(m.version), m.up(db)) }));
    const db = new Database(path.join(dir, DB_FILE));
    expect(migrate(db, steps)).toBe(SCHEMA_VERSION);
    expect(seen).toEqual([]);
    db.close();
  });

  it('rolls a failing step back whole and stays at the version before it', () => {
    const db = rawV1();
    const broken: Migration = {
      version: 2,
      description: 'half-done',
      up: (d) => {
        d.exec('CREATE TABLE half_done (x INTEGER)');
        throw new Error('step failed');
      },
    };
    expect(() => migrate(db, [MIGRATIONS[0]!, broken])).toThrow('step failed');
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'half_done'").get()).toEqual({ n: 0 });
    db.close();
  });

  it('refuses a database written by a newer cnmkit', () => {
    const db = new Database(path.join(dir, DB_FILE));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const why = `schema version ${SCHEMA_VERSION + 1}, newer than this cnmkit understands (${SCHEMA_VERSION})`;
    expect(() => openStore(dir)).toThrow(why);
  });

  it('refuses a step list that is not numbered 1, 2, …', () => {
    const db = new Database(':memory:');
    expect(() => migrate(db, [{ ...MIGRATIONS[0]!, version: 2 }])).toThrow(/expected 1/);
    db.close();
  });
});

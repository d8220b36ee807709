// The embedded state store: one SQLite file (better-sqlite3) in the state directory, in WAL mode,
// with typed tables for the CNM records and for IPAM. `tx` makes one CNM operation one
// transaction. One daemon owns a state directory; other processes may read and write it safely
// (SQLite locks), but nothing here is shared across hosts.
//
// synchronous=NORMAL: in WAL mode a commit is durable against a crash of the process (the SIGKILL
// test proves it) and the database cannot be corrupted by a power loss; only the last commits
// before an OS crash or power loss may roll back. Those commits describe kernel objects (links,
// namespaces, rules) that a reboot removes anyway, and Docker re-requests its pools and addresses
// at start (RequiresRequestReplay), so FULL's fsync on every commit would buy nothing users keep.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { CnmkitError, NotFoundError } from '../errors.js';
import type { EndpointRecord, NetworkRecord, ObjectState, SandboxRecord } from '../core/model.js';
import { endpointTable, networkTable, sandboxTable } from './records.js';
import { IpamTables } from './ipam-tables.js';
import { LinkTable } from './links.js';
import { migrate, schemaVersion } from './schema.js';
import { requireState, type RecordKind, type RecordTable } from './tables.js';

export type { RecordKind, RecordTable } from './tables.js';
export type { AddressKind, AddressSpace, StoredAddress, StoredPool, IpamTables } from './ipam-tables.js';
export { MIGRATIONS, SCHEMA_VERSION, migrate, type Migration } from './schema.js';

export const DB_FILE = 'state.db';
const BUSY_TIMEOUT_MS = 5000;

export interface PendingRecords {
  networks: NetworkRecord[];
  endpoints: EndpointRecord[];
  sandboxes: SandboxRecord[];
}

export class Store {
  readonly networks: RecordTable<NetworkRecord>;
  readonly endpoints: RecordTable<EndpointRecord>;
  readonly sandboxes: RecordTable<SandboxRecord>;
  readonly ipam: IpamTables;
  readonly links: LinkTable;
  /** Undo actions registered by each open transaction level, innermost last. */
  private readonly frames: (() => void)[][] = [];
  private readonly immediate: (fn: () => unknown) => unknown;
  private readonly dataVersionStmt: Database.Statement;
  /** Told how long each outermost transaction took, in seconds (the daemon's metrics). */
  onTxTimed?: (seconds: number) => void;

  constructor(
    private readonly db: Database.Database,
    /** The database file, or ':memory:'. */
    readonly file: string,
  ) {
    this.networks = networkTable(db, (fn) => this.tx(fn));
    this.endpoints = endpointTable(db, (fn) => this.tx(fn));
    this.sandboxes = sandboxTable(db, (fn) => this.tx(fn));
    this.ipam = new IpamTables(db);
    this.links = new LinkTable(db);
    this.immediate = db.transaction((fn: () => unknown) => fn()).immediate;
    this.dataVersionStmt = db.prepare('PRAGMA data_version').pluck();
  }

  /**
   * Runs fn in one transaction (BEGIN IMMEDIATE, so the write lock is taken up front), or in a
   * savepoint of the enclosing one. fn must be synchronous. Throwing rolls everything back.
   */
  tx<T>(fn: (store: Store) => T): T {
    const frame: (() => void)[] = [];
    const started = this.frames.length === 0 && this.onTxTimed ? process.hrtime.bigint() : undefined;
    this.frames.push(frame);
    let result: T;
    try {
      result = this.immediate(() => fn(this)) as T;
    } catch (err) {
      this.frames.pop();
      for (const undo of frame.reverse()) undo();
      throw err;
    } finally {
      if (started !== undefined) this.onTxTimed?.(Number(process.hrtime.bigint() - started) / 1e9);
    }
    this.frames.pop();
    this.frames.at(-1)?.push(...frame);
    return result;
  }

  /** Registers fn to run if the current transaction rolls back (to undo an in-memory mirror). */
  onRollback(fn: () => void): void {
    const frame = this.frames.at(-1);
    if (!frame) throw new Error('store.onRollback called outside a transaction');
    frame.push(fn);
  }

  setState(kind: RecordKind, id: string, state: ObjectState): void {
    requireState(state);
    if (!this.table(kind).setState(id, state)) throw new NotFoundError(kind, id);
  }

  /** The records a crash left half-done, for reconcile to finish or undo. */
  listByState(state: 'creating' | 'deleting'): PendingRecords {
    requireState(state);
    return this.tx(() => ({
      networks: this.networks.listByState(state),
      endpoints: this.endpoints.listByState(state),
      sandboxes: this.sandboxes.listByState(state),
    }));
  }

  /**
   * Proves the database takes writes: a write in a transaction that is rolled back, so nothing
   * changes. Waits at most waitMs for another process's lock (it blocks the thread meanwhile).
   */
  probeWrite(waitMs = 1000): void {
    const previous = this.db.pragma('busy_timeout', { simple: true }) as number;
    this.db.pragma(`busy_timeout = ${Math.floor(waitMs)}`);
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        this.db.exec('CREATE TABLE health_probe (x); INSERT INTO health_probe VALUES (1)');
      } finally {
        this.db.exec('ROLLBACK');
      }
    } finally {
      this.db.pragma(`busy_timeout = ${previous}`);
    }
  }

  /** Changes whenever another connection (process) commits; lets in-memory mirrors notice. */
  dataVersion(): number {
    return this.dataVersionStmt.get() as number;
  }

  schemaVersion(): number {
    return schemaVersion(this.db);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private table(kind: RecordKind): RecordTable<NetworkRecord> | RecordTable<EndpointRecord> | RecordTable<SandboxRecord> {
    return kind === 'network' ? this.networks : kind === 'endpoint' ? this.endpoints : this.sandboxes;
  }
}

/**
 * Opens (creating if needed) the store in stateDir, or an in-memory one for ':memory:', and
 * brings its schema up to date.
 */
export function openStore(stateDir: string): Store {
  let file = ':memory:';
  if (stateDir !== ':memory:') {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    file = path.join(stateDir, DB_FILE);
  }
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new CnmkitError('ERR_STORE_OPEN', 'unavailable', `cannot open state database ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    // synchronous first: the switch of a new file to WAL is then written without an fsync (tens of
    // ms when etcd or other daemons sync the same disk). A power loss during that switch can cost only a
    // store with nothing in it yet; an existing WAL store's switch is a no-op.
    db.pragma('synchronous = OFF');
    if (file !== ':memory:') db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrate(db);
  } catch (err) {
    db.close();
    throw err;
  }
  return new Store(db, file);
}

// A generic typed table of CNM records: upsert by id, get, list, idempotent delete, lookup by
// Docker id and by name (unique per scope), with checks run before the write so that a refused
// record leaves the table as it was. Writes run in the transaction runner Store hands in.
import type Database from 'better-sqlite3';
import { ConflictError, InvalidArgumentError } from '../errors.js';
import type { ObjectState } from '../core/model.js';

export type RecordKind = 'network' | 'endpoint' | 'sandbox';
export type SqlValue = string | number | null;
export type Row = Record<string, SqlValue>;
/** Runs fn in a transaction (or a savepoint of the enclosing one). */
export type TxRunner = <T>(fn: () => T) => T;

export const STATES: readonly ObjectState[] = ['creating', 'ready', 'deleting'];

export interface TableSpec<R> {
  kind: RecordKind;
  table: string;
  /** Column names; the first is the primary key `id`. */
  columns: readonly string[];
  /** Columns that together make a record's name unique (e.g. ['network_id', 'name']). */
  nameColumns: readonly string[];
  toRow(record: R): Row;
  fromRow(row: Row): R;
  /** Extra checks before a write (field types, referenced records); throws to refuse. */
  check(record: R): void;
  /** Why the record cannot be deleted yet (e.g. endpoints still attached), or undefined. */
  blocksDelete?(id: string): string | undefined;
}

export class RecordTable<R extends { id: string; name: string; state: ObjectState }> {
  private readonly upsert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly byName: Database.Statement;
  private readonly byDockerId: Database.Statement | undefined;
  private readonly all: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly stateOf: Database.Statement;
  private readonly byState: Database.Statement;
  private readonly byPrefix: Database.Statement;
  private readonly byColumn = new Map<string, Database.Statement>();
  private readonly anyByColumn = new Map<string, Database.Statement>();

  constructor(
    db: Database.Database,
    private readonly spec: TableSpec<R>,
    private readonly tx: TxRunner,
  ) {
    const { table, columns, nameColumns } = spec;
    const updates = columns.slice(1).map((c) => `${c} = excluded.${c}`).join(', ');
    this.upsert = db.prepare(
      `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')}) ON CONFLICT (id) DO UPDATE SET ${updates}`,
    );
    this.byId = db.prepare(`SELECT * FROM ${table} WHERE id = ?`);
    this.byName = db.prepare(`SELECT * FROM ${table} WHERE ${nameColumns.map((c) => `${c} = ?`).join(' AND ')}`);
    this.byDockerId = columns.includes('docker_id') ? db.prepare(`SELECT * FROM ${table} WHERE docker_id = ?`) : undefined;
    this.all = db.prepare(`SELECT * FROM ${table} ORDER BY created, rowid`);
    this.remove = db.prepare(`DELETE FROM ${table} WHERE id = ?`);
    this.stateOf = db.prepare(`UPDATE ${table} SET state = ? WHERE id = ?`);
    this.byState = db.prepare(`SELECT * FROM ${table} WHERE state = ? ORDER BY created, rowid`);
    this.byPrefix = db.prepare(`SELECT * FROM ${table} WHERE id >= ? AND id < ? ORDER BY id LIMIT 2`);
    for (const c of columns) {
      this.byColumn.set(c, db.prepare(`SELECT * FROM ${table} WHERE ${c} = ? ORDER BY created, rowid`));
      this.anyByColumn.set(c, db.prepare(`SELECT 1 FROM ${table} WHERE ${c} = ? LIMIT 1`).pluck());
    }
  }

  /** Inserts the record, or replaces the one with the same id. Refuses a name already in use. */
  put(record: R): void {
    this.tx(() => {
      checkCommon(record);
      this.spec.check(record);
      const row = this.spec.toRow(record);
      const holder = this.byName.get(...this.spec.nameColumns.map((c) => row[c])) as Row | undefined;
      if (holder && holder.id !== record.id) {
        throw new ConflictError(`${this.spec.kind} name ${JSON.stringify(record.name)} is already used by ${this.spec.kind} ${String(holder.id)}`, {
          field: 'name',
        });
      }
      this.upsert.run(row);
    });
  }

  get(id: string): R | undefined {
    const row = this.byId.get(id) as Row | undefined;
    return row && this.spec.fromRow(row);
  }

  /** Looks a record up by its unique name: the values of the name columns in order (an endpoint: network id, name). */
  getByName(...key: string[]): R | undefined {
    const row = this.byName.get(...key) as Row | undefined;
    return row && this.spec.fromRow(row);
  }

  getByDockerId(dockerId: string): R | undefined {
    const row = this.byDockerId?.get(dockerId) as Row | undefined;
    return row && this.spec.fromRow(row);
  }

  list(): R[] {
    return (this.all.all() as Row[]).map((row) => this.spec.fromRow(row));
  }

  /** The records whose column equals value (an indexed lookup for the columns that have one). */
  listWhere(column: string, value: string): R[] {
    const stmt = this.byColumn.get(column);
    if (!stmt) throw new Error(`${this.spec.table} has no column ${column}`);
    return (stmt.all(value) as Row[]).map((row) => this.spec.fromRow(row));
  }

  /** Whether any record's column equals value (no record is read). */
  anyWhere(column: string, value: string): boolean {
    const stmt = this.anyByColumn.get(column);
    if (!stmt) throw new Error(`${this.spec.table} has no column ${column}`);
    return stmt.get(value) !== undefined;
  }

  /** At most two records whose id starts with prefix (two means the prefix is ambiguous). */
  findByIdPrefix(prefix: string): R[] {
    return (this.byPrefix.all(prefix, `${prefix}\uffff`) as Row[]).map((row) => this.spec.fromRow(row));
  }

  listByState(state: ObjectState): R[] {
    return (this.byState.all(state) as Row[]).map((row) => this.spec.fromRow(row));
  }

  /** Deletes the record; deleting one that is not there succeeds. Returns whether a row went. */
  delete(id: string): boolean {
    return this.tx(() => {
      const why = this.spec.blocksDelete?.(id);
      if (why) throw new ConflictError(`${this.spec.kind} ${id} cannot be deleted: ${why}`);
      return this.remove.run(id).changes > 0;
    });
  }

  /** Sets the state; returns false when there is no such record. */
  setState(id: string, state: ObjectState): boolean {
    requireState(state);
    return this.stateOf.run(state, id).changes > 0;
  }
}

function checkCommon(record: { id: unknown; name: unknown; state: unknown; created?: unknown }): void {
  requireText('id', record.id);
  requireText('name', record.name);
  requireState(record.state);
  requireText('created', record.created);
}

export function requireState(state: unknown): asserts state is ObjectState {
  if (!STATES.includes(state as ObjectState)) {
    throw new InvalidArgumentError('state', `must be one of ${STATES.join(', ')}, not ${JSON.stringify(state)}`);
  }
}

export function requireText(field: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidArgumentError(field, 'must be a non-empty string');
}

export function optionalText(field: string, value: unknown): void {
  if (value !== undefined) requireText(field, value);
}

export function requireRecord(field: string, value: unknown): void {
  const ok = value !== null && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
  if (!ok) throw new InvalidArgumentError(field, 'must be an object of string values');
}

/** JSON for a column; `undefined` is stored as null so that every row holds valid JSON. */
export function toJson(value: unknown): string {
  return JSON.stringify(value ?? null);
}

export function fromJson<T>(text: SqlValue | undefined): T {
  return JSON.parse(String(text)) as T;
}

/** Copies the optional column into the record only when it holds a value. */
export function optional<K extends string>(key: K, value: SqlValue | undefined): { [P in K]?: string } {
  return value === null || value === undefined ? {} : ({ [key]: String(value) } as { [P in K]?: string });
}

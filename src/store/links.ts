// The links table: point-to-point links (src/links) with their ends and shaping as one JSON
// column; names are unique per daemon.
import type Database from 'better-sqlite3';
import type { LinkRecord } from '../core/model.js';
import { fromJson, requireState, requireText, toJson, type Row } from './tables.js';

export const LINK_TABLE = `
CREATE TABLE links (
  id      TEXT PRIMARY KEY,
  name    TEXT NOT NULL UNIQUE,
  data    TEXT NOT NULL,
  state   TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
  created TEXT NOT NULL
) STRICT;
`;

type LinkData = Pick<LinkRecord, 'ends' | 'mtu' | 'shaping' | 'labels'>;

export class LinkTable {
  private readonly upsert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly byName: Database.Statement;
  private readonly all: Database.Statement;
  private readonly remove: Database.Statement;

  constructor(db: Database.Database) {
    this.upsert = db.prepare(
      'INSERT INTO links (id, name, data, state, created) VALUES (@id, @name, @data, @state, @created) ON CONFLICT (id) DO UPDATE SET name = excluded.name, data = excluded.data, state = excluded.state',
    );
    this.byId = db.prepare('SELECT * FROM links WHERE id = ?');
    this.byName = db.prepare('SELECT * FROM links WHERE name = ?');
    this.all = db.prepare('SELECT * FROM links ORDER BY created, id');
    this.remove = db.prepare('DELETE FROM links WHERE id = ?');
  }

  private static fromRow(r: Row): LinkRecord {
    const data = fromJson<LinkData>(r.data);
    return { id: String(r.id), name: String(r.name), ...data, state: r.state as LinkRecord['state'], created: String(r.created) };
  }

  put(l: LinkRecord): void {
    requireText('id', l.id);
    requireText('name', l.name);
    requireState(l.state);
    const data: LinkData = { ends: l.ends, shaping: l.shaping, labels: l.labels, ...(l.mtu !== undefined ? { mtu: l.mtu } : {}) };
    this.upsert.run({ id: l.id, name: l.name, data: toJson(data), state: l.state, created: l.created });
  }

  get(id: string): LinkRecord | undefined {
    const row = this.byId.get(id) as Row | undefined;
    return row && LinkTable.fromRow(row);
  }

  getByName(name: string): LinkRecord | undefined {
    const row = this.byName.get(name) as Row | undefined;
    return row && LinkTable.fromRow(row);
  }

  list(): LinkRecord[] {
    return (this.all.all() as Row[]).map((r) => LinkTable.fromRow(r));
  }

  /** Idempotent. */
  delete(id: string): boolean {
    return this.remove.run(id).changes > 0;
  }
}

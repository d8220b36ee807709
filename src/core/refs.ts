// Identifiers and references: 64-hex ids like Docker's, object names, and lookup of an object by
// name, full id or unique id prefix (the way `docker network inspect` resolves its argument).
import { randomBytes } from 'node:crypto';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';

/** Random bytes drawn 4 KiB at a time: one draw per 128 ids instead of one per id. */
const ID_POOL_BYTES = 4096;
let idPool = Buffer.alloc(0);
let idOffset = 0;

export function newId(): string {
  if (idOffset + 32 > idPool.length) {
    idPool = randomBytes(ID_POOL_BYTES);
    idOffset = 0;
  }
  idOffset += 32;
  return idPool.toString('hex', idOffset - 32, idOffset);
}

/** An id as Docker shows it: its first 12 hex digits. */
export function shortId(id: string): string {
  return id.slice(0, 12);
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Network and sandbox names: Docker's rule, at most 64 characters. */
export function validateObjectName(name: unknown, field: string): string {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError(field, 'a name is required');
  if (name.length > 64) throw new InvalidArgumentError(field, `name ${JSON.stringify(name)} is longer than 64 characters`);
  if (!NAME_RE.test(name))
    throw new InvalidArgumentError(field, `name ${JSON.stringify(name)} may hold only letters, digits, '_', '.' and '-', and must start with a letter or digit`);
  return name;
}

/** The lookups resolveRef needs: the store's tables provide them with indexed queries. */
export interface RefLookup<T> {
  getByName(name: string): T | undefined;
  get(id: string): T | undefined;
  findByIdPrefix(prefix: string): T[];
}

/** Finds one object by exact name, exact id, or unique id prefix; NotFound or ambiguous Conflict. */
export function resolveRef<T extends { id: string; name: string }>(what: string, ref: string, table: RefLookup<T>): T {
  const found = table.getByName(ref) ?? table.get(ref);
  if (found) return found;
  if (/^[0-9a-f]+$/.test(ref)) {
    const matches = table.findByIdPrefix(ref);
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) throw new ConflictError(`${what} ${JSON.stringify(ref)} is ambiguous: more than one id starts with it`);
  }
  throw new NotFoundError(what, ref);
}

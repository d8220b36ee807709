// What changed between two views of a key range (before and after a re-list): added, updated
// and removed entries, in key order. Pure, so the watch's resync can be tested without etcd.

export type Change<T> =
  | { kind: 'added'; key: string; value: T }
  | { kind: 'updated'; key: string; value: T; previous: T }
  | { kind: 'removed'; key: string; value: T };

export function diffMaps<T>(before: ReadonlyMap<string, T>, after: ReadonlyMap<string, T>, equal: (a: T, b: T) => boolean): Change<T>[] {
  const changes: Change<T>[] = [];
  for (const [key, value] of before) if (!after.has(key)) changes.push({ kind: 'removed', key, value });
  for (const [key, value] of after) {
    const previous = before.get(key);
    if (previous === undefined) changes.push({ kind: 'added', key, value });
    else if (!equal(previous, value)) changes.push({ kind: 'updated', key, value, previous });
  }
  return changes.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Structural equality of JSON-like values (records decoded from etcd). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

// What changed between two views of a key range (before and after a re-list): added, updated
// and removed entries, in key order; and the net effect of two lists of changes made one after
// the other (a watch's backlog, coalesced). Pure, so the watch can be tested without etcd.

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

/**
 * The changes of `first` then `second` as one list: per key, from its state before `first` to
 * its state after `second` (added then removed is nothing; removed then added back unchanged is
 * nothing). In key order.
 */
export function mergeChanges<T>(first: Change<T>[], second: Change<T>[], equal: (a: T, b: T) => boolean): Change<T>[] {
  const before = new Map<string, T | undefined>();
  const after = new Map<string, T | undefined>();
  for (const c of [...first, ...second]) {
    if (!before.has(c.key)) before.set(c.key, c.kind === 'added' ? undefined : c.kind === 'updated' ? c.previous : c.value);
    after.set(c.key, c.kind === 'removed' ? undefined : c.value);
  }
  const out: Change<T>[] = [];
  for (const [key, was] of before) {
    const now = after.get(key);
    if (was === undefined && now !== undefined) out.push({ kind: 'added', key, value: now });
    else if (was !== undefined && now === undefined) out.push({ kind: 'removed', key, value: was });
    else if (was !== undefined && now !== undefined && !equal(was, now)) out.push({ kind: 'updated', key, value: now, previous: was });
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
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

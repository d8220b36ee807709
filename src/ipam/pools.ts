// Choosing a default pool: the first candidate that overlaps no allocated pool of its address
// space, no host route of scope link and no nameserver. When none is left, the error lists every
// candidate with the reason it was skipped (runs with the same reason are written as one range),
// naming the holder of each pool in the way.
import { ConflictError } from '../errors.js';
import type { StoredPool } from '../store/index.js';
import { contains, formatAddress, overlaps, type Address, type Prefix } from '../ip/index.js';
import { Namer } from './names.js';

/** What the host is using; absent for the global address space, as in Docker. */
export interface HostView {
  routes: Prefix[];
  nameservers: Address[];
}

export interface Allocated {
  prefix: Prefix;
  pool: StoredPool;
}

/** The allocated subnets of one address space and family, sorted, for overlap look-ups in O(log n). */
export class Occupancy {
  private readonly sorted: Allocated[];

  /** The subnets of one address space never overlap each other (requestPool refuses that). */
  constructor(allocated: Allocated[]) {
    this.sorted = [...allocated].sort((a, b) => (a.prefix.start < b.prefix.start ? -1 : a.prefix.start > b.prefix.start ? 1 : 0));
  }

  /** The pool overlapping the prefix, if any: the last one starting at or before its end. */
  holder(prefix: Prefix): Allocated | undefined {
    let lo = 0;
    let hi = this.sorted.length - 1;
    let last: Allocated | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const entry = this.sorted[mid]!;
      if (entry.prefix.start <= prefix.end) {
        last = entry;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return last && overlaps(last.prefix, prefix) ? last : undefined;
  }
}

/** Why a candidate is skipped: a key that runs compare, and the words (a pool's holder is named only for the error). */
export interface SkipReason {
  key: string;
  text(names: Namer): string;
}

export function skipReason(candidate: Prefix, taken: Occupancy, host: HostView | undefined): SkipReason | undefined {
  const holder = taken.holder(candidate);
  if (holder) return { key: `pool ${holder.pool.id}`, text: (names) => `in use by ${names.pool(holder.pool)}` };
  const route = host?.routes.find((r) => overlaps(r, candidate));
  if (route) return { key: `route ${route.text}`, text: () => `overlaps the host route ${route.text} (scope link)` };
  const ns = host?.nameservers.find((a) => contains(candidate, a));
  if (ns) return { key: `nameserver ${ns.value}`, text: () => `contains the host's nameserver ${formatAddress(ns.family, ns.value)}` };
  return undefined;
}

interface Skipped {
  first: string;
  last: string;
  count: number;
  reason: SkipReason;
}

/** The first usable candidate; throws a ConflictError listing every candidate otherwise. */
export function pickPool(candidates: Iterable<Prefix>, taken: Occupancy, host: HostView | undefined, what: string, names: Namer): Prefix {
  return pickFirst(candidates, (c) => skipReason(c, taken, host), what, names);
}

/**
 * The first candidate with no reason to skip it (the global pools pass their own reasons, as
 * words); throws a ConflictError listing every candidate otherwise.
 */
export function pickFirst(
  candidates: Iterable<Prefix>, reasonToSkip: (candidate: Prefix) => SkipReason | string | undefined, what: string, names: Namer = new Namer(undefined),
): Prefix {
  const skipped: Skipped[] = [];
  let total = 0;
  for (const candidate of candidates) {
    const found = reasonToSkip(candidate);
    if (found === undefined) return candidate;
    const reason = typeof found === 'string' ? { key: found, text: () => found } : found;
    total++;
    const run = skipped.at(-1);
    if (run && run.reason.key === reason.key) {
      run.last = candidate.text;
      run.count++;
    } else {
      skipped.push({ first: candidate.text, last: candidate.text, count: 1, reason });
    }
  }
  const once = names.once();
  const lines = skipped.map((s) => `  ${s.count === 1 ? s.first : `${s.first} … ${s.last} (${s.count} subnets)`}: ${s.reason.text(once)}`);
  throw new ConflictError(
    `could not find an available, non-overlapping ${what} among the ${total} default candidate(s)` +
      (lines.length > 0 ? `:\n${lines.join('\n')}` : ' (the default pool list is empty)'),
    { field: 'subnet' },
  );
}

// The cluster's global network records as a watch of networks/ keeps them: a lookup by name costs
// no round trip while the watch is live, and says "not live" (ask etcd) while it lists again
// after a compaction or a lost stream, or backs off while etcd is away.
// Limits: it lags etcd by one watch event; use it only where a stale answer is caught later (a
// connect's address claim is guarded by the pool, which goes with its network). Followers hear
// which names went or changed, to drop records a host keeps of networks the cluster no longer has;
// the owner hears of each network that appears (not those of the first list), to warm up for it.
import type { Logger } from 'pino';
import type { StoreClient } from './client.js';
import { sameJson } from './diff.js';
import type { Keys } from './keys.js';
import type { GlobalNetwork, NetworkFollower } from './types.js';
import { RangeWatch } from './watch.js';

export class NetworkCache {
  private byName = new Map<string, GlobalNetwork>();
  private readonly watch: RangeWatch<GlobalNetwork>;
  private readonly followers: NetworkFollower[] = [];
  private listed = false;

  /** appeared: called with each network that appears after the first list. */
  constructor(client: StoreClient, keys: Keys, logger: Logger, appeared: (net: GlobalNetwork) => void = () => undefined) {
    const prefix = keys.networks();
    this.watch = new RangeWatch<GlobalNetwork>({
      client, prefix, logger, equal: sameJson,
      decode: (key, value) => {
        try {
          const net = JSON.parse(value.toString()) as GlobalNetwork;
          return keys.split(prefix, key)?.[0] === net.name ? net : undefined;
        } catch {
          return undefined;
        }
      },
      deliver: (batch) => {
        this.byName = new Map([...batch.current.values()].map((n) => [n.name, n]));
        const first = !this.listed;
        this.listed = true;
        if (!first) for (const c of batch.changes) if (c.kind === 'added') appeared(c.value);
        // The first list says nothing of what went while this host was away: every name is in doubt.
        const names = first ? 'all' : [...new Set(batch.changes.filter((c) => c.kind !== 'added').map((c) => (c.kind === 'updated' ? c.previous : c.value).name))];
        if (names === 'all' || names.length > 0) for (const f of this.followers) f(names);
      },
    });
  }

  /** While the watch is live: the network (null: the cluster has none of that name). Else undefined. */
  get(name: string): GlobalNetwork | null | undefined {
    if (this.watch.stats().state !== 'watching') return undefined;
    return this.byName.get(name) ?? null;
  }

  /** Calls follower with the names whose record went or changed (every name: 'all', once the first list is in). */
  follow(follower: NetworkFollower): void {
    this.followers.push(follower);
    if (this.listed) queueMicrotask(() => follower('all'));
  }

  close(): Promise<void> {
    return this.watch.close();
  }
}

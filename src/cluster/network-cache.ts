// The cluster's global network records as a watch of networks/ keeps them: a lookup by name costs
// no round trip while the watch is live, and says "not live" (ask etcd) while it lists again
// after a compaction or a lost stream, or backs off while etcd is away.
// Limits: it lags etcd by one watch event; use it only where a stale answer is caught later (a
// connect's address claim is guarded by the pool, which goes with its network).
import type { Logger } from 'pino';
import type { StoreClient } from './client.js';
import { sameJson } from './diff.js';
import type { Keys } from './keys.js';
import type { GlobalNetwork } from './types.js';
import { RangeWatch } from './watch.js';

export class NetworkCache {
  private byName = new Map<string, GlobalNetwork>();
  private readonly watch: RangeWatch<GlobalNetwork>;

  constructor(client: StoreClient, keys: Keys, logger: Logger) {
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
      },
    });
  }

  /** While the watch is live: the network (null: the cluster has none of that name). Else undefined. */
  get(name: string): GlobalNetwork | null | undefined {
    if (this.watch.stats().state !== 'watching') return undefined;
    return this.byName.get(name) ?? null;
  }

  close(): Promise<void> {
    return this.watch.close();
  }
}

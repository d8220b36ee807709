// This host's etcd lease: adopted from the previous run when still alive (so a daemon restarted
// within the TTL keeps every key it had), else granted anew; kept alive by one POST
// /v3/lease/keepalive per tick (etcd's gateway answers it with one result, within the client's
// fail-fast budget). Says when etcd reports the lease gone, so the owner re-publishes.
import type { StoreClient } from './client.js';

export type KeepAliveResult = { ok: true; ttl: number } | { ok: false; lost: true };

export class LeaseKeeper {
  id: string | undefined;
  lastKeepAlive: number | undefined;

  constructor(
    private readonly client: StoreClient,
    readonly ttl: number,
  ) {}

  /**
   * The saved lease if etcd still has it with the same TTL (keep-alives are paced by the TTL),
   * else a new one. Throws ClusterUnavailableError when etcd does not answer.
   */
  async acquire(saved: string | undefined): Promise<{ id: string; adopted: boolean }> {
    if (saved !== undefined && saved !== '') {
      // Asked together (one round trip, not two): a lease kept alive here and then not adopted just expires.
      const [{ ttl, grantedTtl }, kept] = await Promise.all([this.client.leaseTtl(saved), this.keepAlive(saved)]);
      if (ttl > 0 && grantedTtl === this.ttl && kept.ok) return this.use(saved, true);
    }
    return this.use(await this.client.leaseGrant(this.ttl), false);
  }

  private use(id: string, adopted: boolean): { id: string; adopted: boolean } {
    this.id = id;
    this.lastKeepAlive = Date.now();
    return { id, adopted };
  }

  /** One keep-alive of the current (or given) lease: its new TTL, or lost when etcd no longer has it. */
  async keepAlive(id = this.id): Promise<KeepAliveResult> {
    if (id === undefined) return { ok: false, lost: true };
    const res = await this.client.call(`keep lease ${id} alive`, () => this.client.post<{ TTL?: string }>('/v3/lease/keepalive', { ID: id }));
    // A lease etcd no longer has comes back without a TTL (0 left out of the JSON).
    const ttl = Number(res.TTL ?? 0);
    if (ttl <= 0) {
      if (id === this.id) this.id = undefined;
      return { ok: false, lost: true };
    }
    if (id === this.id) this.lastKeepAlive = Date.now();
    return { ok: true, ttl };
  }

  /** Lets the lease run out by itself (no revoke): a restart within the TTL adopts it. */
  forget(): void {
    this.id = undefined;
  }
}

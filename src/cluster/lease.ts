// This host's etcd lease: adopted from the previous run when still alive (so a daemon restarted
// within the TTL keeps every key it had), else granted anew; kept alive by one request on a short
// keep-alive stream per tick. Says when etcd reports the lease gone, so the owner re-publishes.
import { ClusterUnavailableError } from '../errors.js';
import type { StoreClient } from './client.js';

/** The gRPC duplex stream behind etcd3's IDuplexStream. */
type KeepAliveStream = {
  write(req: { ID: string }): void;
  end(): void;
  on(event: 'data', fn: (res: { TTL: string }) => void): KeepAliveStream;
  on(event: 'error', fn: (err: Error) => void): KeepAliveStream;
  removeAllListeners(event: string): KeepAliveStream;
};

export type KeepAliveResult = { ok: true; ttl: number } | { ok: false; lost: true };

export class LeaseKeeper {
  id: string | undefined;
  lastKeepAlive: number | undefined;

  constructor(
    private readonly client: StoreClient,
    readonly ttl: number,
    private readonly failFastMs = 1500,
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
    const res = await this.client.call(`keep lease ${id} alive`, () => this.keepAliveOnce(id));
    const ttl = Number(res.TTL);
    if (ttl <= 0) {
      if (id === this.id) this.id = undefined;
      return { ok: false, lost: true };
    }
    if (id === this.id) this.lastKeepAlive = Date.now();
    return { ok: true, ttl };
  }

  /** Opens a keep-alive stream, sends one request, and ends the stream at the first answer or failure. */
  private async keepAliveOnce(id: string): Promise<{ TTL: string }> {
    const stream = (await this.client.etcd.leaseClient.leaseKeepAlive()) as unknown as KeepAliveStream;
    return new Promise((resolve, reject) => {
      const done = (fn: () => void) => {
        clearTimeout(timer);
        stream.removeAllListeners('data');
        stream.on('error', () => undefined);
        stream.end();
        fn();
      };
      const timer = setTimeout(() => done(() => reject(new ClusterUnavailableError(`keep-alive of lease ${id}: no answer within ${this.failFastMs} ms`))), this.failFastMs);
      stream.on('data', (res: { TTL: string }) => done(() => resolve(res)));
      stream.on('error', (err: Error) => done(() => reject(err)));
      stream.write({ ID: id });
    });
  }

  /** Lets the lease run out by itself (no revoke): a restart within the TTL adopts it. */
  forget(): void {
    this.id = undefined;
  }
}

// This host's watches of networks' peers: the ones handed to drivers (watchPeers), and the ones
// started ahead of them, at start for the networks a restore will watch, at a first join here
// (while its address is chosen), and when a network appears in the cluster (with its pools' views
// read and a stock of spares claimed, so that a first connect soon after makes no round trip).
// A watch started ahead learns the addresses other hosts' endpoints hold (into the pools' views)
// and is taken over by the first watchPeers of its network, or closed when none came in time.
// Limits: memory only; what a watch ahead learnt stays in the views after it is closed.
import type { Logger } from 'pino';
import type { EtcdIpam } from './ipam.js';
import type { Peers } from './peers.js';
import type { Spares } from './spares.js';
import type { GlobalNetwork, PeerBatch, PeerHandler, PeerWatch, WatchOptions } from './types.js';

/** How long a peer watch started ahead (at start, at a first join here) waits to be taken; then it is closed. */
const AHEAD_KEEP_MS = 10_000;
/** The same for one started when a network appeared (as long as its pool's view is kept: EtcdIpam.warm). */
const APPEARED_KEEP_MS = 2000;

export interface PeerWatchesDeps {
  hostId: string;
  peers: Peers;
  ipam: EtcdIpam;
  spares: Spares;
  logger: Logger;
  /** Whether work ahead is wanted now: the cluster is not closed (and, for an appeared network, registered). */
  open(): boolean;
  connected(): boolean;
}

export class PeerWatches {
  /** Peer watches handed out (watch()), with their network. */
  private readonly watches = new Map<PeerWatch, string>();
  /** Peer watches started ahead (their peers only learnt as taken addresses), by network: each taken by the first watch() of its network. */
  private readonly ahead = new Map<string, ReturnType<Peers['watch']>>();

  constructor(private readonly d: PeerWatchesDeps) {}

  /**
   * Starts watching the network's peers now, in memory only but for the addresses they hold (at
   * start the lists go out with the registration's first requests): the first watch() of it
   * takes the watch over, with every peer known by then; closed after keepMs unless taken. Not
   * when this host watches the network already (a connect here came before its appearance did).
   */
  prefetch(name: string, keepMs = AHEAD_KEEP_MS): void {
    if (this.ahead.has(name) || !this.d.open() || [...this.watches.values()].includes(name)) return;
    // Learning already: a first connect here chooses its address knowing the endpoints made meanwhile.
    const watch = this.d.peers.watch(name, (batch) => this.learn(batch));
    this.ahead.set(name, watch);
    setTimeout(() => {
      if (this.ahead.get(name) !== watch) return;
      this.ahead.delete(name);
      void watch.close();
    }, keepMs).unref();
  }

  /**
   * A network that appeared in the cluster: this host's view of its pools is read ahead, a stock
   * of spares claimed in each, and its peers watched, so that a first connect here soon after
   * answers with no round trip (no device made; the view, the spares and the watch go again if no
   * connect comes within APPEARED_KEEP_MS, see EtcdIpam.warm and Spares.holdAhead).
   */
  appeared(net: GlobalNetwork): void {
    // The host that made it knows its pools already (and its event may come before its own create's answer).
    if (!this.d.open() || !this.d.connected() || net.createdBy === this.d.hostId) return;
    for (const s of [...net.ipv4, ...net.ipv6]) {
      this.d.ipam.warm(s.poolId).catch((err: Error) => this.d.logger.debug({ pool: s.poolId, err: err.message }, 'cluster: pool not read ahead'));
      this.d.spares.holdAhead(s.poolId, APPEARED_KEEP_MS);
    }
    this.prefetch(net.name, APPEARED_KEEP_MS);
  }

  /** The network's peers to handler: the watch started ahead when there is one, else a new one. */
  watch(network: string, handler: PeerHandler, options: WatchOptions = {}): PeerWatch {
    const ahead = options.afterList ? undefined : this.ahead.get(network);
    if (ahead) this.ahead.delete(network);
    const learning: PeerHandler = (batch) => {
      this.learn(batch);
      return handler(batch);
    };
    const inner = ahead ?? this.d.peers.watch(network, learning, options.afterList);
    ahead?.take(learning);
    const watch: PeerWatch = {
      stats: () => inner.stats(),
      close: async () => {
        this.watches.delete(watch);
        await inner.close();
      },
    };
    this.watches.set(watch, network);
    return watch;
  }

  /** Every watch closed, those handed out and those ahead. */
  async close(): Promise<void> {
    const ahead = [...this.ahead.values()];
    this.ahead.clear();
    await Promise.all([...this.watches.keys(), ...ahead].map((w) => w.close()));
  }

  /** Other hosts' endpoints' addresses go into this host's views of their pools (fewer raced claims). */
  private learn(batch: PeerBatch): void {
    for (const c of batch.changes) {
      if (c.kind === 'removed' || c.peer.host === this.d.hostId) continue;
      this.d.ipam.learnTaken(c.peer.ip);
      if (c.peer.ipv6 !== undefined) this.d.ipam.learnTaken(c.peer.ipv6);
    }
  }
}

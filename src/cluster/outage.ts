// What this host tells a user about the cluster store while it does not answer: which store (as
// --cluster-store names it), since when and for how long, the transport's reason (never the key a
// call was about: that is another object's internal detail), and what still works; in one wording
// for `cluster status` and `check` (report()'s outage), and for errors (reason(), as the store
// client's ClusterUnavailableError says it). Pure but for the clock it is given.

/** The store's endpoints (the gateway URLs options.ts made) as --cluster-store spells them: etcd://HOST:PORT[,HOST:PORT…] or unix:///PATH. */
export function storeName(endpoints: string[]): string {
  if (endpoints.length === 1 && endpoints[0]!.startsWith('unix://')) return endpoints[0]!;
  return `etcd://${endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(',')}`;
}

/** A duration in whole seconds, or minutes and seconds past a minute: "4 s", "2 min 5 s". */
export function seconds(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
}

/** The store as this host sees it: the outage under way (its start and the last failure's reason), if any. */
export class Outage {
  private since: number | undefined;
  private cause = '';

  constructor(readonly store: string) {}

  /** A call's outcome: cause, the store was unavailable (the outage starts now unless it has already); undefined, it answered (the outage is over). */
  set(cause: string | undefined, now = Date.now()): void {
    this.since = cause === undefined ? undefined : (this.since ?? now);
    this.cause = cause ?? '';
  }

  /**
   * The status fields: the store, and while it is away since when, for how long, and the sentence a
   * user reads (error: the outage, then what still works; outage: the outage alone, as check says it).
   */
  report(now = Date.now()): { store: string; unavailableSince?: string; unavailableFor?: number; error?: string; outage?: string } {
    if (this.since === undefined) return { store: this.store };
    const since = new Date(this.since).toISOString();
    const outage = `cluster store unavailable since ${since} (${seconds(now - this.since)}): ${this.reason()}`;
    return {
      store: this.store, unavailableSince: since, unavailableFor: Math.max(0, Math.floor((now - this.since) / 1000)), outage,
      error: `${outage}. `
        + 'Existing endpoints keep forwarding (their FDB and neighbour entries are static) and local networks keep working; '
        + 'creating or connecting to overlay networks fails until it answers, and disconnects made meanwhile are written then',
    };
  }

  /** The reason a call failed, for errors that name no call: the last failure's. */
  reason(): string | undefined {
    return this.since === undefined ? undefined : `${this.store} does not answer (${this.cause})`;
  }
}

// The daemon's health: the store takes a write (rolled back), the firewall backend answers a read,
// the kernel answers a netlink request. Each check has a deadline; the report names what failed.
// Limit: the store check blocks the thread while another process holds the database's lock (≤ 1 s).

export type CheckStatus = { status: 'ok'; ms: number } | { status: 'failed'; ms: number; error: string };

export interface HealthReport {
  status: 'ok' | 'unavailable';
  checks: Record<string, CheckStatus>;
}

export interface HealthDeps {
  store: { probeWrite(waitMs?: number): void };
  firewall: { listOwners(): Promise<unknown> };
  /** A cheap netlink request in the daemon's own namespace. */
  kernel(): Promise<unknown>;
  /** Deadline of each check (default 5 s). */
  timeoutMs?: number;
}

async function runCheck(fn: () => unknown, timeoutMs: number): Promise<CheckStatus> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([Promise.resolve().then(fn), deadline]);
    return { status: 'ok', ms: Math.round(performance.now() - started) };
  } catch (err) {
    return { status: 'failed', ms: Math.round(performance.now() - started), error: (err as Error)?.message ?? String(err) };
  } finally {
    clearTimeout(timer);
  }
}

/** A function that runs every check (concurrently) and reports. */
export function healthChecker(deps: HealthDeps): () => Promise<HealthReport> {
  const timeoutMs = deps.timeoutMs ?? 5_000;
  return async () => {
    const [store, firewall, kernel] = await Promise.all([
      runCheck(() => deps.store.probeWrite(Math.min(1_000, timeoutMs)), timeoutMs),
      runCheck(() => deps.firewall.listOwners(), timeoutMs),
      runCheck(() => deps.kernel(), timeoutMs),
    ]);
    const checks = { store: store!, firewall: firewall!, kernel: kernel! };
    return { status: Object.values(checks).every((c) => c.status === 'ok') ? 'ok' : 'unavailable', checks };
  };
}

/** The names and errors of the failed checks, for the 503 reply's message. */
export function failedChecks(report: HealthReport): string {
  return Object.entries(report.checks)
    .flatMap(([name, c]) => (c.status === 'failed' ? [`${name} (${c.error})`] : []))
    .join(', ');
}

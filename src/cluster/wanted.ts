// Asking another host for one of its spare addresses (see KEYS.md, "Spares"). A connect given an
// address (--ip, or the Docker engine's RequestAddress with one) that another host holds only as a
// spare cannot just take it: that host may have handed it to a connect that already answered (its
// publish rewrites the spare as the endpoint's a moment later), and only that host knows. So the asker writes ipam/wanted/<subnet>/<ip> = {by, at}
// on its lease and reads the address key until the holder deleted it (then the asker claims it as
// usual) or rewrote it (its endpoint now), for at most ASK_MS; it deletes its request in every
// outcome. Every host watches ipam/wanted/ (one watch for all pools; rare events) and gives up a
// requested address that is in its ready stock (Spares.yieldTo).
// Limits: a holder that is frozen, cut off or slow keeps its spare (the asker is refused) until its
// lease expires; a request is served by the stock as it is when the request arrives (or when the
// watch lists again), not by one refilled later; a spare left by an earlier run of the holder (killed)
// is not given up on request but deleted by the holder's sweep a few seconds after its start.
import type { Logger } from 'pino';
import { ConflictError } from '../errors.js';
import type { StoreClient } from './client.js';
import { sameJson } from './diff.js';
import { decodeCidr, type Keys } from './keys.js';
import { holderOf, type AddressValue } from './owned.js';
import { RangeWatch } from './watch.js';

export interface WantDeps {
  client: StoreClient;
  keys: Keys;
  hostId: string;
  lease(): string;
  logger: Logger;
}

/** A request for an address, as the watch decodes it. */
export interface Wanted {
  poolId: string;
  ip: string;
  by: string;
}

/** What the IPAM asks of this host's stock of spares (Spares). */
export interface SpareHooks {
  /** An endpoint of this host takes one of this host's spares (false: a connect holds it). */
  claimOwn(poolId: string, ip: string): boolean;
  /** Asks the host holding `ip` as a spare (its key written at heldAt) to give it up: askForSpare(). */
  ask(poolId: string, ip: string, heldAt: number): Promise<AskOutcome>;
}

/** What came of a request: the spare was deleted (claim it), its key changed (read it again), or its holder kept it. */
export type AskOutcome = 'freed' | 'changed' | 'kept';

/** How long a host waits for another to give up a spare it asks for. */
export const ASK_MS = 2000;
/** Pauses between reads of the asked address's key (the last one repeats). */
const POLL_MS = [10, 20, 40, 80, 100];
/** A request whose delete failed (etcd away) is deleted again after these pauses. */
const WITHDRAW_MS = [1000, 2000, 4000, 8000];

/**
 * Asks the host holding the spare `ip` of the pool (its key written at revision heldAt) to give
 * it up, and waits up to ms. Throws ClusterUnavailableError when etcd does not answer (the request
 * is then deleted in the background, once etcd is back).
 */
export async function askForSpare(d: WantDeps, poolId: string, ip: string, heldAt: number, ms = ASK_MS): Promise<AskOutcome> {
  const want = d.keys.wantedAddress(poolId, ip);
  await d.client.txn('ask for a spare address', [], [{ put: want, value: { by: d.hostId, at: new Date().toISOString() }, lease: d.lease() }]);
  let outcome: AskOutcome;
  try {
    outcome = await awaitChange(d, d.keys.address(poolId, ip), heldAt, Date.now() + ms);
  } catch (err) {
    // etcd away: the connect fails now, the request goes when etcd is back.
    void withdraw(d, want, 0);
    throw err;
  }
  await withdraw(d, want, 0);
  return outcome;
}

/** Reads the key until it is gone or changed from revision heldAt, or the time is up. */
async function awaitChange(d: WantDeps, key: string, heldAt: number, until: number): Promise<AskOutcome> {
  for (let i = 0; ; i++) {
    const { kv } = await d.client.get(key);
    if (!kv) return 'freed';
    if (kv.modRevision !== heldAt) return 'changed';
    const left = until - Date.now();
    if (left <= 0) return 'kept';
    await new Promise((resolve) => setTimeout(resolve, Math.min(left, POLL_MS[Math.min(i, POLL_MS.length - 1)]!)));
  }
}

/** Whether an address key's value is a spare of another host than self: one to ask its holder for. */
export function othersSpare(held: AddressValue | undefined, self: string): held is AddressValue {
  return held?.kind === 'spare' && held.host !== self;
}

/** The refusal when the holder kept its spare past ASK_MS, naming its host with describe (describeHost). */
export async function keptError(ip: string, holder: AddressValue, describe: (hostId: string) => Promise<string>): Promise<ConflictError> {
  return new ConflictError(`address ${ip} is in use by ${await holderOf(holder, describe)}, which did not give it up within ${ASK_MS} ms (it is freed when that host's lease expires)`, { field: 'ip' });
}

/** Deletes a request; when etcd does not take it, again after a pause (WITHDRAW_MS), in the background. */
async function withdraw(d: WantDeps, key: string, attempt: number): Promise<void> {
  try {
    await d.client.txn('withdraw a request for a spare address', [], [{ del: key }]);
  } catch (err) {
    const pause = WITHDRAW_MS[attempt];
    d.logger.debug({ key, err: (err as Error).message, retry: pause !== undefined }, 'cluster: request for a spare address not deleted now');
    if (pause !== undefined) setTimeout(() => void withdraw(d, key, attempt + 1), pause).unref();
  }
}

/** Watches every request (ipam/wanted/): serve(poolId, ip) for each one of another host that appears, and for each found at a (re-)list. */
export function watchWanted(d: WantDeps, serve: (poolId: string, ip: string) => void): RangeWatch<Wanted> {
  const prefix = d.keys.wanted();
  return new RangeWatch<Wanted>({
    client: d.client, prefix, logger: d.logger, equal: sameJson,
    decode: (key, value) => {
      const [pool, ip, ...rest] = d.keys.split(prefix, key) ?? [];
      let by: unknown;
      try {
        by = (JSON.parse(value.toString()) as { by?: unknown }).by;
      } catch {
        by = undefined;
      }
      return pool && ip && rest.length === 0 && typeof by === 'string' ? { poolId: decodeCidr(pool), ip, by } : undefined;
    },
    deliver: (batch) => {
      for (const c of batch.changes) if (c.kind !== 'removed' && c.value.by !== d.hostId) serve(c.value.poolId, c.value.ip);
    },
  });
}

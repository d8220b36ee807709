// What every driver's parse step shares: an option the driver does not know is refused naming it
// and listing the known ones, and Docker's MTU option is read the same way everywhere.
import { InvalidArgumentError } from '../errors.js';

/** Docker's generic MTU option (`-o com.docker.network.driver.mtu=N`). */
export const MTU_OPTION = 'com.docker.network.driver.mtu';

/** Throws on the first option not in `known`, naming it (field `options.KEY`); `shown` lists what the error names. */
export function refuseUnknownOptions(options: Record<string, string>, known: readonly string[], driver: string, shown: readonly string[] = known): void {
  const set = new Set(known);
  for (const key of Object.keys(options)) {
    if (!set.has(key)) throw new InvalidArgumentError(`options.${key}`, `unknown ${driver} option (known: ${shown.join(', ')})`);
  }
}

/** IPv6 needs every link to carry packets of 1280 bytes (RFC 8200). */
export const IPV6_MIN_MTU = 1280;

/**
 * The MTU asked with MTU_OPTION (68–65535, at least 1280 on a network with IPv6), or undefined when
 * not given (or given as 0, Docker's "default"). An empty value is refused.
 */
export function mtuOption(options: Record<string, string>, enableIPv6 = false): number | undefined {
  const v = options[MTU_OPTION];
  if (v === undefined || v === '0') return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 68 || n > 65535) throw new InvalidArgumentError(MTU_OPTION, `expected an MTU between 68 and 65535, got ${JSON.stringify(v)}`);
  if (enableIPv6 && n < IPV6_MIN_MTU) throw new InvalidArgumentError(MTU_OPTION, `${n} is too small for a network with IPv6, which needs an MTU of at least ${IPV6_MIN_MTU}`);
  return n;
}

// Address families as the kernel numbers them; the addresses themselves are src/ip's.
import type { Family } from '../ip/index.js';

export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

export function afOf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

export function familyOfAf(af: number | undefined): Family | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

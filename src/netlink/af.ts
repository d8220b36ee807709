// Address families as the kernel numbers them, and a link's per-family settings (IFLA_AF_SPEC);
// the addresses themselves are src/ip's.
import { ifla } from 'netlink';
import type { Family } from '../ip/index.js';
import { flatten } from './encode.js';

export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

export function afOf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

export function familyOfAf(af: number | undefined): Family | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

/** How the kernel makes a link's IPv6 link-local address (IFLA_INET6_ADDR_GEN_MODE), in its order. */
export const ADDR_GEN_MODES = ['eui64', 'none', 'stable-privacy', 'random'] as const;
export type AddrGenMode = (typeof ADDR_GEN_MODES)[number];

/** The IFLA_AF_SPEC attribute that sets a link's IPv6 address generation mode. */
export function inet6AddrGenMode(mode: AddrGenMode): Map<number, Buffer> {
  return new Map([[AF_INET6, flatten(ifla.formatLinkProtocolInfoInet6({ addrGenMode: ADDR_GEN_MODES.indexOf(mode) }))]]);
}

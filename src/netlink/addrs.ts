// IPv4 and IPv6 addresses on links: add, delete, list. Addresses are strings at the API
// (`10.0.0.2/24`, `fd00::2/64`). Limits: no peer (point-to-point) addresses, no lifetimes.
import { FlagsNew, rt } from 'netlink';
import { KernelError } from '../errors.js';
import { body } from './encode.js';
import type { NetlinkHandle } from './handle.js';
import { afOf, familyOfAf } from './af.js';
import { formatIp, parseCidr, type Family } from '../ip/index.js';
import { linkIndex } from './links.js';
import { validateBoolean, validateLinkRef, type LinkRef } from './validate.js';

export type AddressScope = 'universe' | 'site' | 'link' | 'host' | 'nowhere';

export interface Address {
  /** ifindex of the link holding the address. */
  index: number;
  family: Family;
  address: string;
  prefixLen: number;
  /** `address/prefixLen`. */
  cidr: string;
  scope: AddressScope | number;
  label?: string;
  /** IFA_F_* flags that callers care about. */
  nodad: boolean;
  permanent: boolean;
  tentative: boolean;
  dadFailed: boolean;
  secondary: boolean;
}

export interface AddAddressOptions {
  /** IPv6 only: skip duplicate address detection, usable at once. */
  nodad?: boolean;
  /** Replace an existing address instead of failing with EEXIST. */
  replace?: boolean;
}

const SCOPES: Record<number, AddressScope> = { 0: 'universe', 200: 'site', 253: 'link', 254: 'host', 255: 'nowhere' };

function addressBody(index: number, cidr: ReturnType<typeof parseCidr>, nodad: boolean): Uint8Array[] {
  const data: rt.Address = { family: afOf(cidr.family), prefixlen: cidr.prefixLen, index };
  if (nodad) data.flags = { nodad: true };
  const attrs: rt.AddressAttrs = { local: cidr.bytes, address: cidr.bytes };
  if (nodad) attrs.flags = { nodad: true };
  return body(rt.formatAddressMessage, { kind: 'address', data, attrs });
}

/**
 * Adds an address to a link.
 * Equivalent to: `ip addr add CIDR dev DEV [nodad]` (`ip addr replace` with replace)
 */
export async function addAddress(h: NetlinkHandle, dev: LinkRef, cidr: string, opts: AddAddressOptions = {}): Promise<void> {
  validateLinkRef(dev, 'dev');
  const parsed = parseCidr(cidr, 'address');
  const nodad = validateBoolean(opts.nodad, 'nodad') ?? false;
  const replace = validateBoolean(opts.replace, 'replace') ?? false;
  const index = await linkIndex(h, dev, 'dev');
  const flags = FlagsNew.CREATE | (replace ? FlagsNew.REPLACE : FlagsNew.EXCL);
  await h.request(`addr add ${parsed.cidr} dev ${dev}`, rt.MessageType.NEWADDR, addressBody(index, parsed, nodad), flags);
}

/**
 * Deletes an address from a link; with ifExists, a missing address is not an error.
 * Resolves true when something was deleted.
 * Equivalent to: `ip addr del CIDR dev DEV`
 */
export async function deleteAddress(h: NetlinkHandle, dev: LinkRef, cidr: string, opts: { ifExists?: boolean } = {}): Promise<boolean> {
  validateLinkRef(dev, 'dev');
  const parsed = parseCidr(cidr, 'address');
  const index = await linkIndex(h, dev, 'dev');
  try {
    await h.request(`addr del ${parsed.cidr} dev ${dev}`, rt.MessageType.DELADDR, addressBody(index, parsed, false));
    return true;
  } catch (err) {
    if (opts.ifExists && err instanceof KernelError && err.errnoCode === 'EADDRNOTAVAIL') return false;
    throw err;
  }
}

/** The typed Address of a parsed address message; undefined for families other than IP. */
export function parseAddress(msg: rt.AddressMessage): Address | undefined {
  const family = familyOfAf(msg.data.family);
  const bytes = msg.attrs.local ?? msg.attrs.address;
  if (family === undefined || bytes === undefined) return undefined;
  const flags = { ...msg.data.flags, ...msg.attrs.flags };
  const address = formatIp(bytes);
  const prefixLen = msg.data.prefixlen ?? 0;
  const scope = msg.data.scope ?? 0;
  const out: Address = {
    index: msg.data.index ?? 0,
    family,
    address,
    prefixLen,
    cidr: `${address}/${prefixLen}`,
    scope: SCOPES[scope] ?? scope,
    nodad: flags.nodad === true,
    permanent: flags.permanent === true,
    tentative: flags.tentative === true,
    dadFailed: flags.dadfailed === true,
    secondary: flags.secondary === true,
  };
  if (msg.attrs.label !== undefined) out.label = msg.attrs.label;
  return out;
}

/**
 * Equivalent to: `ip [-4|-6] addr show [dev DEV]`. With dev, the kernel sends that link's
 * addresses only (a filtered dump), not every address of the namespace.
 */
export async function listAddresses(h: NetlinkHandle, filter: { dev?: LinkRef; family?: Family } = {}): Promise<Address[]> {
  const index = filter.dev === undefined ? undefined : await linkIndex(h, filter.dev, 'dev');
  const family = filter.family === undefined ? 0 : afOf(filter.family);
  const request = body(rt.formatAddressMessage, { kind: 'address', data: { family, ...(index !== undefined ? { index } : {}) }, attrs: {} });
  const msgs = index === undefined ? await h.dump('addr show', rt.MessageType.GETADDR, request) : await h.dumpFiltered(`addr show dev ${filter.dev}`, rt.MessageType.GETADDR, request);
  return msgs
    .flatMap((m) => (m.kind === 'address' ? [parseAddress(m)] : []))
    .filter((a): a is Address => a !== undefined && (index === undefined || a.index === index))
    .filter((a) => family === 0 || afOf(a.family) === family);
}

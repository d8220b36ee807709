// Unicast routes: default routes, routes via a gateway, device (scope link) routes, in any
// table; add, delete, list. Limits: no multipath, no metrics other than the priority.
import { FlagsNew, rt } from 'netlink';
import { InvalidArgumentError, KernelError } from '../errors.js';
import { body } from './encode.js';
import type { NetlinkHandle } from './handle.js';
import { afOf, familyOfAf } from './af.js';
import { formatIp, parseCidr, parseIp, type Cidr, type Family, type IpAddress } from '../ip/index.js';
import { linkIndex } from './links.js';
import { validateBoolean, validateEnum, validateLinkRef, validateTable, validateUint, type LinkRef } from './validate.js';

export const RT_TABLE_MAIN = 254;
const RTNH_F_ONLINK = 4;
const SCOPE_NUM = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 } as const;
type Scope = keyof typeof SCOPE_NUM;

/** The package parses rtmsg enums to their upper-case names when it knows them. */
function enumName(value: string | number | undefined): string | number {
  return typeof value === 'string' ? value.toLowerCase() : (value ?? 0);
}

export interface RouteSpec {
  /** 'default' or a network in CIDR form (host bits zero). */
  dst: string;
  gateway?: string;
  dev?: LinkRef;
  /** Default 254 (main). */
  table?: number;
  /** Route priority (`metric` in iproute2). */
  metric?: number;
  /** Preferred source address. */
  src?: string;
  /** Default: 'link' for a device route without gateway, else 'universe'. */
  scope?: Scope;
  /** Trust the gateway to be on the link even without a matching prefix. */
  onlink?: boolean;
  /** Family of a 'default' route given with a device only (default 4). */
  family?: Family;
}

export interface Route {
  family: Family;
  /** 'default' or CIDR. */
  dst: string;
  gateway?: string;
  /** ifindex of the output device. */
  dev?: number;
  table: number;
  scope: Scope | number;
  protocol: string | number;
  type: string | number;
  metric?: number;
  src?: string;
}

interface CheckedRoute {
  dst: Cidr;
  gateway?: IpAddress;
  src?: IpAddress;
  dev?: LinkRef;
  table: number;
  metric?: number;
  scope?: Scope;
  onlink: boolean;
}

function checkRoute(spec: RouteSpec): CheckedRoute {
  const gateway = spec.gateway === undefined ? undefined : parseIp(spec.gateway, 'gateway');
  const src = spec.src === undefined ? undefined : parseIp(spec.src, 'src');
  if (spec.family !== undefined && spec.family !== 4 && spec.family !== 6) throw new InvalidArgumentError('family', 'must be 4 or 6');
  const family = spec.family ?? gateway?.family ?? src?.family ?? 4;
  const dst = spec.dst === 'default' ? parseCidr(family === 4 ? '0.0.0.0/0' : '::/0', 'dst') : parseCidr(spec.dst, 'dst', { network: true });
  for (const [field, ip] of [['gateway', gateway], ['src', src]] as const)
    if (ip && ip.family !== dst.family) throw new InvalidArgumentError(field, `${ip.address} is IPv${ip.family} but the destination is IPv${dst.family}`);
  const out: CheckedRoute = { dst, table: spec.table === undefined ? RT_TABLE_MAIN : validateTable(spec.table), onlink: validateBoolean(spec.onlink, 'onlink') ?? false };
  if (gateway) out.gateway = gateway;
  if (src) out.src = src;
  if (spec.dev !== undefined) out.dev = validateLinkRef(spec.dev, 'dev');
  if (spec.metric !== undefined) out.metric = validateUint(spec.metric, 'metric', 0, 0xffffffff);
  if (spec.scope !== undefined) out.scope = validateEnum(spec.scope, 'scope', Object.keys(SCOPE_NUM) as Scope[]);
  if (!gateway && spec.dev === undefined) throw new InvalidArgumentError('gateway', 'a route needs a gateway, a device, or both');
  return out;
}

async function routeBody(h: NetlinkHandle, r: CheckedRoute, forDelete: boolean): Promise<Uint8Array[]> {
  const data: rt.Route = {
    family: afOf(r.dst.family),
    dstLen: r.dst.prefixLen,
    table: r.table < 256 ? r.table : 0,
    scope: forDelete && r.scope === undefined ? SCOPE_NUM.nowhere : SCOPE_NUM[r.scope ?? (r.gateway ? 'universe' : 'link')],
    type: forDelete ? 0 : 1,
  };
  if (!forDelete) data.protocol = rt.RouteProtocol.BOOT;
  if (r.onlink) data.flags = { __unknown: RTNH_F_ONLINK };
  const attrs: rt.RouteAttrs = { table: r.table };
  if (r.dst.prefixLen > 0) attrs.dst = r.dst.bytes;
  if (r.gateway) attrs.gateway = r.gateway.bytes;
  if (r.src) attrs.prefsrc = r.src.bytes;
  if (r.metric !== undefined) attrs.priority = r.metric;
  if (r.dev !== undefined) attrs.oif = await linkIndex(h, r.dev, 'dev');
  return body(rt.formatRouteMessage, { kind: 'route', data, attrs });
}

function label(r: CheckedRoute): string {
  const dst = r.dst.prefixLen === 0 ? 'default' : r.dst.cidr;
  return `${dst}${r.gateway ? ` via ${r.gateway.address}` : ''}${r.dev !== undefined ? ` dev ${r.dev}` : ''}${r.table !== RT_TABLE_MAIN ? ` table ${r.table}` : ''}`;
}

/**
 * Equivalent to: `ip route add DST [via GW] [dev DEV] [table T] [metric M] [src S] [scope S] [onlink]`
 * (`ip route replace` with replace)
 */
export async function addRoute(h: NetlinkHandle, spec: RouteSpec, opts: { replace?: boolean } = {}): Promise<void> {
  const r = checkRoute(spec);
  const flags = FlagsNew.CREATE | (validateBoolean(opts.replace, 'replace') ? FlagsNew.REPLACE : FlagsNew.EXCL);
  await h.request(`route add ${label(r)}`, rt.MessageType.NEWROUTE, await routeBody(h, r, false), flags);
}

/**
 * Deletes the route matching spec; with ifExists, a missing route is not an error. Resolves
 * true when something was deleted.
 * Equivalent to: `ip route del DST [via GW] [dev DEV] [table T]`
 */
export async function deleteRoute(h: NetlinkHandle, spec: RouteSpec, opts: { ifExists?: boolean } = {}): Promise<boolean> {
  const r = checkRoute(spec);
  try {
    await h.request(`route del ${label(r)}`, rt.MessageType.DELROUTE, await routeBody(h, r, true));
    return true;
  } catch (err) {
    if (opts.ifExists && err instanceof KernelError && (err.errnoCode === 'ESRCH' || err.errnoCode === 'ENOENT')) return false;
    throw err;
  }
}

/** The typed Route of a parsed route message; undefined for families other than IP. */
export function parseRoute(msg: rt.RouteMessage): Route | undefined {
  const family = familyOfAf(msg.data.family);
  if (family === undefined) return undefined;
  const { attrs, data } = msg;
  const dstLen = data.dstLen ?? 0;
  const out: Route = {
    family,
    dst: dstLen === 0 || !attrs.dst ? 'default' : `${formatIp(attrs.dst)}/${dstLen}`,
    table: attrs.table ?? Number(data.table ?? 0),
    scope: enumName(data.scope) as Scope | number,
    protocol: enumName(data.protocol),
    type: enumName(data.type),
  };
  if (attrs.gateway) out.gateway = formatIp(attrs.gateway);
  if (attrs.oif !== undefined) out.dev = attrs.oif;
  if (attrs.priority !== undefined) out.metric = attrs.priority;
  if (attrs.prefsrc) out.src = formatIp(attrs.prefsrc);
  return out;
}

/** Equivalent to: `ip [-4|-6] route show [table T|all]` (main table by default) */
export async function listRoutes(h: NetlinkHandle, filter: { family?: Family; table?: number | 'all' } = {}): Promise<Route[]> {
  const table = filter.table === undefined ? RT_TABLE_MAIN : filter.table === 'all' ? 'all' : validateTable(filter.table);
  const family = filter.family === undefined ? 0 : afOf(filter.family);
  const msgs = await h.dump('route show', rt.MessageType.GETROUTE, body(rt.formatRouteMessage, { kind: 'route', data: { family }, attrs: {} }));
  return msgs
    .flatMap((m) => (m.kind === 'route' ? [parseRoute(m)] : []))
    .filter((r): r is Route => r !== undefined && (table === 'all' || r.table === table) && (family === 0 || afOf(r.family) === family));
}

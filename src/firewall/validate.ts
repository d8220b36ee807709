// Checks firewall input before anything reaches the kernel, and the owner tags carried by
// every rule. Errors name the field and the reason; addresses are checked, not canonicalised.
import { isIPv4, isIPv6 } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { parsePrefix, type Prefix } from '../ip/index.js';
import { validateIfname } from '../netns/names.js';
import type { FirewallNetwork, PortMapping, PortProto } from './types.js';

/** Comment on the project's structural rules (jumps, chain heads). */
export const STRUCT_TAG = 'cnmkit';
const TAG_PREFIX = 'cnmkit:';
const OWNER_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const PROTOS: readonly PortProto[] = ['tcp', 'udp', 'sctp'];

export function validateOwner(owner: unknown, field = 'id'): string {
  if (typeof owner !== 'string' || !OWNER_RE.test(owner))
    throw new InvalidArgumentError(field, `owner ${JSON.stringify(owner)} must be 1-128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit`);
  return owner;
}

/** The tag of a network's rules. */
export function networkTag(id: string): string {
  return `${TAG_PREFIX}${id}`;
}

/** The tag of one mapping's rules: owner, then what identifies the published port. */
export function portTag(m: PortMapping): string {
  const host = m.hostIP ?? (isIPv6(m.containerIP) ? '::' : '0.0.0.0');
  const ports = m.hostPort === m.hostPortEnd ? `${m.hostPort}` : `${m.hostPort}-${m.hostPortEnd}`;
  return `${TAG_PREFIX}${m.id}/${m.proto}/${host}/${ports}`;
}

export interface ParsedTag {
  owner: string;
  /** True for a published port's rule, false for a network's. */
  port: boolean;
}

/** Reads a rule comment; undefined for anything that is not an owner tag. */
export function parseTag(comment: string): ParsedTag | undefined {
  if (!comment.startsWith(TAG_PREFIX)) return undefined;
  const rest = comment.slice(TAG_PREFIX.length);
  const slash = rest.indexOf('/');
  const owner = slash < 0 ? rest : rest.slice(0, slash);
  return OWNER_RE.test(owner) ? { owner, port: slash >= 0 } : undefined;
}

/** An IPv`family` subnet in CIDR form without host bits (an IPv4 tail in IPv6 text is accepted); returned as given. */
export function validateCidr(value: unknown, family: 4 | 6, field: string): string {
  const text = typeof value === 'string' ? value : '';
  let prefix: Prefix;
  try {
    prefix = parsePrefix(field, text, { embeddedV4: true });
  } catch (err) {
    if (/host bits/.test((err as Error).message)) throw new InvalidArgumentError(field, `${text} has host bits set; give the network address`);
    throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not an IPv${family} subnet in CIDR form`);
  }
  if (prefix.family !== family) throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not an IPv${family} subnet in CIDR form`);
  return text;
}

function validateAddr(value: unknown, field: string, family?: 4 | 6): string {
  const ok = typeof value === 'string' && (family === 4 ? isIPv4(value) : family === 6 ? isIPv6(value) : isIPv4(value) || isIPv6(value));
  if (!ok) throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not an IP${family ? `v${family}` : ''} address`);
  return value as string;
}

function validateBool(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw new InvalidArgumentError(field, 'must be true or false');
  return value;
}

function validateList(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw new InvalidArgumentError(field, 'must be an array');
  return value;
}

export function validateNetwork(net: unknown): FirewallNetwork {
  if (!net || typeof net !== 'object') throw new InvalidArgumentError('network', 'must be an object');
  const n = net as Record<string, unknown>;
  const out: FirewallNetwork = {
    id: validateOwner(n.id, 'id'),
    bridge: validateIfname(n.bridge, 'bridge'),
    subnets4: validateList(n.subnets4, 'subnets4').map((s, i) => validateCidr(s, 4, `subnets4[${i}]`)),
    subnets6: validateList(n.subnets6, 'subnets6').map((s, i) => validateCidr(s, 6, `subnets6[${i}]`)),
    icc: validateBool(n.icc, 'icc'),
    masquerade: validateBool(n.masquerade, 'masquerade'),
    internal: validateBool(n.internal, 'internal'),
  };
  if (n.hostIPv4 !== undefined) out.hostIPv4 = validateAddr(n.hostIPv4, 'hostIPv4', 4);
  return out;
}

function validatePort(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535)
    throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not a port number (1-65535)`);
  return value;
}

function validateRange(m: Record<string, unknown>, at: string, what: 'host' | 'container'): [number, number] {
  const start = validatePort(m[`${what}Port`], `${at}.${what}Port`);
  const end = validatePort(m[`${what}PortEnd`], `${at}.${what}PortEnd`);
  if (end < start) throw new InvalidArgumentError(`${at}.${what}PortEnd`, `${end} is below ${what}Port ${start}`);
  return [start, end];
}

export function validateMapping(value: unknown, at: string): PortMapping {
  if (!value || typeof value !== 'object') throw new InvalidArgumentError(at, 'must be an object');
  const m = value as Record<string, unknown>;
  const id = validateOwner(m.id, `${at}.id`);
  if (!PROTOS.includes(m.proto as PortProto)) throw new InvalidArgumentError(`${at}.proto`, `${JSON.stringify(m.proto)} is not one of tcp, udp, sctp`);
  const [hostPort, hostPortEnd] = validateRange(m, at, 'host');
  const [containerPort, containerPortEnd] = validateRange(m, at, 'container');
  if (containerPortEnd !== containerPort && containerPortEnd - containerPort !== hostPortEnd - hostPort)
    throw new InvalidArgumentError(`${at}.containerPortEnd`, 'the container range must be one port or as long as the host range');
  const containerIP = validateAddr(m.containerIP, `${at}.containerIP`);
  const family = isIPv4(containerIP) ? 4 : 6;
  const out: PortMapping = {
    id,
    proto: m.proto as PortProto,
    hostPort,
    hostPortEnd,
    containerIP,
    containerPort,
    containerPortEnd,
    bridge: validateIfname(m.bridge, `${at}.bridge`),
    userlandProxy: validateBool(m.userlandProxy, `${at}.userlandProxy`),
  };
  if (m.hostIP !== undefined && m.hostIP !== '0.0.0.0' && m.hostIP !== '::') out.hostIP = validateAddr(m.hostIP, `${at}.hostIP`, family);
  else if (m.hostIP !== undefined && (m.hostIP === '::') !== (family === 6))
    throw new InvalidArgumentError(`${at}.hostIP`, `${String(m.hostIP)} is not of the same family as containerIP ${containerIP}`);
  if (family === 6 && out.hostIP === '::1' && !out.userlandProxy)
    throw new InvalidArgumentError(`${at}.hostIP`, '::1 can only be served by the userland proxy (IPv6 has no route_localnet)');
  return out;
}

export function validateMappings(value: unknown): PortMapping[] {
  return validateList(value, 'mappings').map((m, i) => validateMapping(m, `mappings[${i}]`));
}

export function validateOwners(value: unknown, field: string): string[] {
  return validateList(value, field).map((o, i) => validateOwner(o, `${field}[${i}]`));
}

// Checks of the numbers and references that reach the kernel: MTU, VNI, port, group, table,
// link references and namespace paths. Each throws InvalidArgumentError naming the field.
import { InvalidArgumentError } from '../errors.js';
import { validateIfname } from '../netns/index.js';

/** A link by name (validated as an interface name) or by ifindex. */
export type LinkRef = string | number;

/** The Ethernet range the kernel accepts on the devices cnmkit makes (ETH_MIN_MTU..IP_MAX_MTU). */
export const MTU_MIN = 68;
export const MTU_MAX = 65535;
export const VNI_MAX = 0xffffff;
const U32_MAX = 0xffffffff;

export function validateUint(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw new InvalidArgumentError(field, `${JSON.stringify(value)} must be an integer from ${min} to ${max}`);
  return value;
}

export function validateMtu(value: unknown, field = 'mtu'): number {
  return validateUint(value, field, MTU_MIN, MTU_MAX);
}

export function validateVni(value: unknown, field = 'vni'): number {
  return validateUint(value, field, 0, VNI_MAX);
}

export function validatePort(value: unknown, field = 'port'): number {
  return validateUint(value, field, 1, 65535);
}

/** Link groups: 0 is the default group every device starts in. */
export function validateGroup(value: unknown, field = 'group'): number {
  return validateUint(value, field, 0, U32_MAX);
}

/** Routing tables: 1..2^32-1 (0 is "unspecified"); 254 is main. */
export function validateTable(value: unknown, field = 'table'): number {
  return validateUint(value, field, 1, U32_MAX);
}

export function validateLinkRef(value: unknown, field: string): LinkRef {
  if (typeof value === 'number') return validateUint(value, field, 1, 0x7fffffff);
  if (typeof value === 'string') return validateIfname(value, field);
  throw new InvalidArgumentError(field, 'a link name or a positive ifindex is required');
}

/** An absolute path to a namespace file (/run/netns/NAME, /proc/PID/ns/net, …). */
export function validateNetnsPath(value: unknown, field: string): string {
  if (typeof value !== 'string' || !value.startsWith('/') || value.includes('\0'))
    throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not an absolute path to a network namespace`);
  return value;
}

export function validateBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw new InvalidArgumentError(field, 'must be true or false');
}

/** Fails when value is not one of the allowed words. */
export function validateEnum<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new InvalidArgumentError(field, `${JSON.stringify(value)} must be one of ${allowed.join(', ')}`);
}

// Validation of names that reach the kernel or a command line: interfaces (IFNAMSIZ) and
// namespaces. Validation happens before any side effect; errors name the field and the reason.
import { InvalidArgumentError } from '../errors.js';

/** Linux IFNAMSIZ is 16 bytes including the NUL: at most 15 characters. */
export const IFNAME_MAX = 15;
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.@-]*$/;
const NSNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function validateIfname(name: unknown, field = 'name'): string {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError(field, 'an interface name is required');
  if (Buffer.byteLength(name) > IFNAME_MAX)
    throw new InvalidArgumentError(field, `interface name ${JSON.stringify(name)} is longer than ${IFNAME_MAX} characters`);
  if (!IFNAME_RE.test(name) || name === '.' || name === '..')
    throw new InvalidArgumentError(field, `interface name ${JSON.stringify(name)} may hold only letters, digits, '_', '.', '@' and '-', and must not start with a symbol`);
  return name;
}

export function validateNetnsName(name: unknown, field = 'name'): string {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError(field, 'a namespace name is required');
  if (name.length > 64) throw new InvalidArgumentError(field, `namespace name ${JSON.stringify(name)} is longer than 64 characters`);
  if (!NSNAME_RE.test(name))
    throw new InvalidArgumentError(field, `namespace name ${JSON.stringify(name)} may hold only letters, digits, '_', '.' and '-', and must not start with a symbol`);
  return name;
}

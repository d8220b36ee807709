// Docker's default address pools and the `--default-address-pool base=CIDR,size=N` setting that
// replaces them; candidates are generated lazily (10.0.0.0/8 in /24s is 65 536 of them), and an
// IPv6 request with no configured pool gets a random ULA /64 (RFC 4193).
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import { BITS, makePrefix, parsePrefix, type Family, type Prefix } from '../ip/index.js';

/** One entry of the default pool list: split `base` into subnets of prefix length `size`. */
export interface DefaultPool {
  base: string;
  size: number;
}

/** Docker's local defaults, in Docker's order: 31 subnets. */
export const DOCKER_LOCAL_POOLS: readonly DefaultPool[] = [
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/16', size: 16 },
  { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/14', size: 16 },
  { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];

/** Docker's global (overlay) defaults. */
export const DOCKER_GLOBAL_POOLS: readonly DefaultPool[] = [{ base: '10.0.0.0/8', size: 24 }];

export interface ParsedDefaultPool {
  base: Prefix;
  size: number;
}

/** Parses the value of `--default-address-pool`, e.g. "base=172.30.0.0/16,size=24". */
export function parseDefaultAddressPool(spec: string): DefaultPool {
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part.trim() : part.slice(0, eq).trim();
    if (key !== 'base' && key !== 'size') {
      throw new InvalidArgumentError('default-address-pool', `unknown key ${JSON.stringify(key)} in ${JSON.stringify(spec)}: expected base=CIDR,size=N`);
    }
    if (eq < 0) throw new InvalidArgumentError(key, 'needs a value (base=CIDR,size=N)');
    if (fields.has(key)) throw new InvalidArgumentError(key, 'is given twice');
    fields.set(key, part.slice(eq + 1).trim());
  }
  const base = fields.get('base');
  const size = fields.get('size');
  if (base === undefined) throw new InvalidArgumentError('base', 'is required (base=CIDR,size=N)');
  if (size === undefined) throw new InvalidArgumentError('size', 'is required (base=CIDR,size=N)');
  if (!/^[0-9]{1,3}$/.test(size)) throw new InvalidArgumentError('size', `${JSON.stringify(size)} is not a prefix length`);
  const parsed = checkDefaultPool({ base, size: Number(size) });
  return { base: parsed.base.text, size: parsed.size };
}

/** Validates one pool spec: base is a network prefix, and size lies between its length and the family's width. */
export function checkDefaultPool(spec: DefaultPool): ParsedDefaultPool {
  const base = parsePrefix('base', spec.base);
  const width = BITS[base.family];
  if (!Number.isInteger(spec.size) || spec.size < base.bits || spec.size > width) {
    throw new InvalidArgumentError('size', `${spec.size} must be a prefix length between the base's /${base.bits} and /${width}`);
  }
  return { base, size: spec.size };
}

/** The candidate subnets of a pool list for one family, in order, generated one at a time. */
export function* candidates(specs: readonly ParsedDefaultPool[], family: Family): Generator<Prefix> {
  for (const { base, size } of specs) {
    if (base.family !== family) continue;
    const step = 1n << BigInt(BITS[family] - size);
    for (let start = base.start; start <= base.end; start += step) yield makePrefix(family, start, size);
  }
}

/** A unique local /64: the first subnet of fdXX:XXXX:XXXX::/48 with a random 40-bit global id. */
export function randomUlaPrefix(): Prefix {
  const globalId = BigInt(`0x${randomBytes(5).toString('hex')}`);
  return makePrefix(6, ((0xfdn << 40n) | globalId) << 80n, 64);
}

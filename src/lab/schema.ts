// Validates a parsed topology file against the JSON Schema shipped beside this file (cnmkit's own
// layout, or containerlab's `topology:` layout; validators from schema-validators.ts); every
// problem names its line and field.
// Limits: the schema checks shapes only; references and addresses are checked in validate.ts.
import type { ErrorObject } from 'ajv';
import { LabFileError, type LabFileProblem } from '../errors.js';
import type { FieldPath, LabSource } from './source.js';
import { validatorFor, type LabFormat } from './schema-validators.js';

export type { LabFormat };

/** containerlab's files have a `topology:` section; cnmkit's have nodes at the top. */
export function detectFormat(data: unknown): LabFormat {
  return data && typeof data === 'object' && 'topology' in data ? 'containerlab' : 'cnmkit';
}

const PATTERNS: Record<string, string> = {
  '^[A-Za-z][A-Za-z0-9_-]{0,15}$': 'must start with a letter and hold only letters, digits, \'_\' and \'-\', at most 16 characters',
  '^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$': 'must hold only letters, digits, \'_\' and \'-\' (not first), at most 24 characters',
  '^[0-9a-fA-F:.]+/[0-9]+$': 'must be a prefix in CIDR notation, e.g. 198.19.1.0/24',
  '^[0-9.]+/[0-9]+$': 'must be an IPv4 prefix in CIDR notation, e.g. 198.18.10.0/24',
  '^[0-9a-fA-F:.]+$': 'must be an IP address',
  '^[0-9.]+$': 'must be an IPv4 address',
  '^(default|[0-9a-fA-F:.]+/[0-9]+)$': 'must be "default" or a prefix in CIDR notation',
  '^etcd://[^/\\s]+:[0-9]+$': 'must be etcd://ADDRESS:PORT',
  '^[0-9]+(\\.[0-9]+)?([kmgt]?bit|[kmgt]?bps)$': 'must be a rate such as 100mbit, 1gbit or 500kbps',
  '^[0-9]+(\\.[0-9]+)?(us|ms|s)$': 'must be a time such as 10ms',
  '^[0-9]+(\\.[0-9]+)?%$': 'must be a percentage such as 1%',
  '^[A-Za-z0-9][A-Za-z0-9_-]{0,23}:[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$': 'must be NODE:INTERFACE, e.g. r1:eth1 (an interface name has at most 15 characters)',
  '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$': 'must be an interface name (at most 15 characters)',
};

function pathOf(instancePath: string): (string | number)[] {
  if (!instancePath) return [];
  return instancePath.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function knownFields(parentSchema: unknown): string {
  const props = (parentSchema as { properties?: Record<string, unknown> }).properties;
  return props ? Object.keys(props).join(', ') : '';
}

function reasonOf(e: ErrorObject, format: LabFormat): { path: FieldPath; reason: string; key?: boolean } {
  const p = pathOf(e.instancePath);
  // A key that fails propertyNames: its own pattern error, placed at the key.
  if (e.propertyName !== undefined) {
    const pattern = String((e.params as { pattern?: string }).pattern);
    return { path: [...p, e.propertyName], key: true, reason: `name ${JSON.stringify(e.propertyName)} ${PATTERNS[pattern] ?? 'is not allowed'}` };
  }
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const known = knownFields(e.parentSchema);
      const what = format === 'containerlab' ? 'not supported by cnmkit lab' : 'unknown field';
      return { path: [...p, String(params.additionalProperty)], key: true, reason: `${what}${known ? ` (supported here: ${known})` : ''}` };
    }
    case 'required':
      return { path: p, reason: `"${String(params.missingProperty)}" is required` };
    case 'enum':
      return { path: p, reason: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'pattern':
      return { path: p, reason: PATTERNS[String(params.pattern)] ?? `must match ${String(params.pattern)}` };
    case 'oneOf':
    case 'anyOf':
      return { path: p, reason: p.includes('networks') ? 'must be a network name or {NETWORK: {ip: ADDRESS}}' : 'must be a CIDR or null' };
    default:
      return { path: p, reason: e.message ?? e.keyword };
  }
}

/**
 * Where a value fails every branch of a oneOf/anyOf, ajv reports each branch's failure too. Keep
 * the errors found inside the value (a bad address in {NET: {ip: …}}) when there are some, else
 * the one oneOf/anyOf error with its own wording; drop the branches' errors at the value itself.
 */
function alternatives(errors: ErrorObject[]): ErrorObject[] {
  const alt = new Set(errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf').map((e) => e.instancePath));
  const parent = (p: string): string => p.slice(0, p.lastIndexOf('/'));
  // A wrong type just inside the value ({name: lan1, ip: …} read as two networks "name" and "ip"
  // that are not objects) says the value has the wrong shape, not what is wrong inside it.
  const shapeOnly = (e: ErrorObject): boolean => e.keyword === 'type' && alt.has(parent(e.instancePath));
  const inner = errors.filter((e) => !shapeOnly(e));
  const deeper = (p: string): boolean => inner.some((e) => e.instancePath.startsWith(`${p}/`));
  return inner.filter((e) => {
    if (!alt.has(e.instancePath)) return true;
    if (deeper(e.instancePath)) return false;
    return e.keyword === 'oneOf' || e.keyword === 'anyOf';
  });
}

/** For a node's network given as {name: NET, ip: ADDRESS} (the form other tools use): the same in this file's form. */
function attachmentHint(value: unknown): string {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return '';
  const v = value as Record<string, unknown>;
  if (typeof v.name !== 'string') return '';
  const addrs = ['ip', 'ipv6'].filter((k) => typeof v[k] === 'string').map((k) => `${k}: ${String(v[k])}`);
  return `; write {${v.name}: ${addrs.length > 0 ? `{${addrs.join(', ')}}` : 'null'}} or just ${v.name}`;
}

/** Checks data against the schema of its format; throws a LabFileError listing every problem. */
export function validateShape(src: LabSource, format: LabFormat = detectFormat(src.data)): void {
  const v = validatorFor(format);
  if (v(src.data)) return;
  const errors = alternatives(v.errors ?? []);
  const problems: LabFileProblem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword === 'propertyNames') continue;
    const r = reasonOf(e, format);
    if (e.keyword === 'oneOf' && r.path.includes('networks')) r.reason += attachmentHint(e.data);
    const problem = src.problem(r.path, r.reason, { key: r.key ?? false });
    const id = `${problem.line}|${problem.field}|${problem.reason}`;
    if (seen.has(id)) continue;
    seen.add(id);
    problems.push(problem);
  }
  problems.sort((a, b) => a.line - b.line);
  throw new LabFileError(problems);
}

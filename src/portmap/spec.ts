// Published-port specs: `-p [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]` and Docker's
// PortBinding JSON, both parsed into one PortSpec. Validation only: no port is taken here.
import net from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { formatAddress, isUnspecified, isV4Mapped, parseAddress } from '../ip/index.js';

export type Proto = 'tcp' | 'udp' | 'sctp';

export const PROTOS: readonly Proto[] = ['tcp', 'udp', 'sctp'];

/** IP protocol numbers, as Docker's PortBinding carries them. */
export const PROTO_NUMBERS: Readonly<Record<Proto, number>> = { tcp: 6, udp: 17, sctp: 132 };

/**
 * One published port or range. hostIP unset = every address of both families.
 * - hostPort 0 (and hostPortEnd 0): each container port gets an ephemeral host port;
 * - host range with a single container port: one free host port is picked from the range;
 * - otherwise the host range and the container range have the same size and map one to one.
 */
export interface PortSpec {
  proto: Proto;
  hostIP?: string;
  hostPort: number;
  hostPortEnd: number;
  containerPort: number;
  containerPortEnd: number;
}

/** Docker's PortBinding, as the engine sends it in `com.docker.network.portmap`. */
export interface DockerPortBinding {
  Proto: number;
  IP?: string;
  Port: number;
  HostIP?: string;
  HostPort?: number;
  HostPortEnd?: number;
}

const MAX_PORT = 65535;

/** Canonical text of an IP address (IPv6 compressed, lower case); field names the input. */
export function canonicalIP(value: string, field: string): string {
  if (value.includes('%')) throw new InvalidArgumentError(field, `${JSON.stringify(value)}: zone indexes are not supported`);
  if (net.isIP(value) === 0) throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not an IPv4 or IPv6 address`);
  const a = parseAddress(field, value, { embeddedV4: true });
  if (isV4Mapped(a)) throw new InvalidArgumentError(field, `${JSON.stringify(value)} is an IPv4-mapped address: give the IPv4 form`);
  return formatAddress(a.family, a.value);
}

/** True for 0.0.0.0 and ::, the wildcard addresses of one family. */
export const isUnspecifiedIP = isUnspecified;

/**
 * Whether two host IPs (unset = every address) cannot hold the same port: either is unset,
 * they are equal, or they share a family and one is that family's wildcard.
 */
export function hostIPsOverlap(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || a === b) return true;
  return net.isIP(a) === net.isIP(b) && (isUnspecifiedIP(a) || isUnspecifiedIP(b));
}

export function parseProto(value: string, field: string): Proto {
  const proto = value.toLowerCase();
  if (!(PROTOS as readonly string[]).includes(proto))
    throw new InvalidArgumentError(field, `protocol ${JSON.stringify(value)} is not one of ${PROTOS.join(', ')}`);
  return proto as Proto;
}

function parsePortNumber(text: string, what: string, field: string, raw: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new InvalidArgumentError(field, `${what} ${JSON.stringify(text)} is not a port number in ${JSON.stringify(raw)}`);
  const port = Number(text);
  if (port < 1 || port > MAX_PORT) throw new InvalidArgumentError(field, `${what} ${port} is out of range 1-${MAX_PORT} in ${JSON.stringify(raw)}`);
  return port;
}

/** "80" or "80-90" → [start, end]; end before start is refused. */
function parsePortRange(text: string, what: string, field: string, raw: string): [number, number] {
  const dash = text.indexOf('-');
  if (dash < 0) {
    const port = parsePortNumber(text, what, field, raw);
    return [port, port];
  }
  const start = parsePortNumber(text.slice(0, dash), what, field, raw);
  const end = parsePortNumber(text.slice(dash + 1), `${what} range end`, field, raw);
  if (end < start) throw new InvalidArgumentError(field, `${what} range ${text} ends before it starts in ${JSON.stringify(raw)}`);
  return [start, end];
}

/** Splits "[ip:][host:]container" into its parts; IPv6 host addresses must be in brackets. */
function splitAddress(body: string, field: string, raw: string): { ip: string; host?: string; container: string } {
  if (body.startsWith('[')) {
    const close = body.indexOf(']');
    if (close < 0) throw new InvalidArgumentError(field, `unclosed "[" around the host IP in ${JSON.stringify(raw)}`);
    const rest = body.slice(close + 1);
    const parts = rest.split(':');
    if (parts.length !== 3 || parts[0] !== '')
      throw new InvalidArgumentError(field, `expected [HOST_IP]:[HOST_PORT]:CONTAINER_PORT in ${JSON.stringify(raw)}`);
    return { ip: body.slice(1, close), host: parts[1] as string, container: parts[2] as string };
  }
  const parts = body.split(':');
  if (parts.length === 1) return { ip: '', container: parts[0] as string };
  if (parts.length === 2) return { ip: '', host: parts[0] as string, container: parts[1] as string };
  if (parts.length === 3) return { ip: parts[0] as string, host: parts[1] as string, container: parts[2] as string };
  throw new InvalidArgumentError(field, `too many ":" in ${JSON.stringify(raw)} (an IPv6 host IP goes in brackets: [::1]:8080:80)`);
}

/** Checks how the host and container ranges combine, following Docker's rules. */
function checkRanges(spec: PortSpec, field: string, raw: string): PortSpec {
  const hostSize = spec.hostPortEnd - spec.hostPort;
  const containerSize = spec.containerPortEnd - spec.containerPort;
  if (spec.hostPort !== 0 && containerSize !== 0 && hostSize !== containerSize)
    throw new InvalidArgumentError(
      field,
      `host range ${spec.hostPort}-${spec.hostPortEnd} and container range ${spec.containerPort}-${spec.containerPortEnd} differ in size in ${JSON.stringify(raw)}`,
    );
  return spec;
}

/** A host range for one container port (`8000-8010:80`): one free port of the range is chosen. */
export function picksFromHostRange(s: PortSpec): boolean {
  return s.hostPortEnd > s.hostPort && s.containerPortEnd === s.containerPort;
}

/**
 * Parses one `-p` value. Examples: `80`, `8080:80`, `127.0.0.1:8080:80/udp`, `127.0.0.1::80`,
 * `[::1]:8080:80`, `8000-8010:80` (one free port of the range), `8000-8010:80-90`.
 * A host port of 0 (or none) asks for an ephemeral port.
 */
export function parsePublish(raw: string, field = 'publish'): PortSpec {
  if (typeof raw !== 'string' || raw.trim() === '') throw new InvalidArgumentError(field, 'a port spec is required');
  const slash = raw.lastIndexOf('/');
  const body = slash < 0 ? raw : raw.slice(0, slash);
  const proto = slash < 0 ? 'tcp' : parseProto(raw.slice(slash + 1), field);
  const { ip, host, container } = splitAddress(body, field, raw);
  const [containerPort, containerPortEnd] = parsePortRange(container, 'container port', field, raw);
  let hostPort = 0;
  let hostPortEnd = 0;
  if (host !== undefined && host !== '' && host !== '0') [hostPort, hostPortEnd] = parsePortRange(host, 'host port', field, raw);
  const spec: PortSpec = { proto, hostPort, hostPortEnd, containerPort, containerPortEnd };
  if (ip !== '') spec.hostIP = canonicalIP(ip, field);
  return checkRanges(spec, field, raw);
}

function intField(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not an integer`);
  if (value < min || value > MAX_PORT) throw new InvalidArgumentError(field, `${value} is out of range ${min}-${MAX_PORT}`);
  return value;
}

function protoFromNumber(value: unknown, field: string): Proto {
  const found = PROTOS.find((p) => PROTO_NUMBERS[p] === value);
  if (!found) throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not a known protocol number (6 tcp, 17 udp, 132 sctp)`);
  return found;
}

function optionalIP(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not a string`);
  return canonicalIP(value, field);
}

/**
 * Parses one Docker PortBinding. `prefix` is put before each field name in errors (for lists).
 * The container address (IP) is checked but not kept: the endpoint already knows it.
 */
export function parsePortBinding(value: unknown, prefix = ''): PortSpec {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidArgumentError(prefix.replace(/\.$/, '') || 'PortBinding', 'a PortBinding object is required');
  const b = value as Record<string, unknown>;
  const proto = protoFromNumber(b.Proto, `${prefix}Proto`);
  optionalIP(b.IP, `${prefix}IP`);
  const containerPort = intField(b.Port, `${prefix}Port`, 1);
  const hostIP = optionalIP(b.HostIP, `${prefix}HostIP`);
  const hostPort = intField(b.HostPort ?? 0, `${prefix}HostPort`, 0);
  const endRaw = b.HostPortEnd === undefined || b.HostPortEnd === 0 ? hostPort : b.HostPortEnd;
  const hostPortEnd = intField(endRaw, `${prefix}HostPortEnd`, 0);
  if (hostPort === 0 && hostPortEnd !== 0)
    throw new InvalidArgumentError(`${prefix}HostPortEnd`, `${hostPortEnd} is set while HostPort is 0 (ephemeral)`);
  if (hostPortEnd < hostPort) throw new InvalidArgumentError(`${prefix}HostPortEnd`, `${hostPortEnd} is below HostPort ${hostPort}`);
  const spec: PortSpec = { proto, hostPort, hostPortEnd, containerPort, containerPortEnd: containerPort };
  if (hostIP !== undefined) spec.hostIP = hostIP;
  return spec;
}

/** Parses the engine's `com.docker.network.portmap` list; errors name `portmap[i].Field`. */
export function parsePortBindings(value: unknown, field = 'portmap'): PortSpec[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidArgumentError(field, 'a list of PortBinding objects is required');
  return value.map((b, i) => parsePortBinding(b, `${field}[${i}].`));
}

/**
 * Checks a PortSpec that arrives as data (from the store or another module) and returns a
 * clean copy; the rules are those of parsePublish.
 */
export function validatePortSpec(value: unknown, field = 'spec'): PortSpec {
  if (typeof value !== 'object' || value === null) throw new InvalidArgumentError(field, 'a port spec object is required');
  const v = value as Record<string, unknown>;
  const proto = parseProto(String(v.proto), `${field}.proto`);
  const hostPort = intField(v.hostPort, `${field}.hostPort`, 0);
  const hostPortEnd = intField(v.hostPortEnd, `${field}.hostPortEnd`, 0);
  const containerPort = intField(v.containerPort, `${field}.containerPort`, 1);
  const containerPortEnd = intField(v.containerPortEnd, `${field}.containerPortEnd`, 1);
  if (hostPort === 0 && hostPortEnd !== 0) throw new InvalidArgumentError(`${field}.hostPortEnd`, 'must be 0 when hostPort is 0 (ephemeral)');
  if (hostPortEnd < hostPort) throw new InvalidArgumentError(`${field}.hostPortEnd`, `${hostPortEnd} is below hostPort ${hostPort}`);
  if (containerPortEnd < containerPort)
    throw new InvalidArgumentError(`${field}.containerPortEnd`, `${containerPortEnd} is below containerPort ${containerPort}`);
  const spec: PortSpec = { proto, hostPort, hostPortEnd, containerPort, containerPortEnd };
  const hostIP = optionalIP(v.hostIP, `${field}.hostIP`);
  if (hostIP !== undefined) spec.hostIP = hostIP;
  return checkRanges(spec, field, formatPortSpec(spec));
}

function formatRange(start: number, end: number): string {
  return start === end ? String(start) : `${start}-${end}`;
}

/** The `-p` form of a spec, protocol always shown: `127.0.0.1:8080:80/tcp`, `[::1]::80/udp`. */
export function formatPortSpec(spec: PortSpec): string {
  const container = formatRange(spec.containerPort, spec.containerPortEnd);
  const host = spec.hostPort === 0 ? '' : formatRange(spec.hostPort, spec.hostPortEnd);
  const ip = spec.hostIP === undefined ? '' : net.isIPv6(spec.hostIP) ? `[${spec.hostIP}]` : spec.hostIP;
  if (ip === '' && host === '') return `${container}/${spec.proto}`;
  return `${ip === '' ? '' : `${ip}:`}${host}:${container}/${spec.proto}`;
}

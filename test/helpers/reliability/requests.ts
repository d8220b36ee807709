// fast-check arbitraries of requests to the daemon's sockets: bodies derived from the schemas (the
// management API's /openapi.json, the plugin protocol's documents in plugin-spec/) — valid ones with
// random values, and wrong types, missing fields, unknown fields, huge strings, unicode, nested junk
// — random methods and paths, and malformed HTTP. No test-runner imports (scripts/soak uses it).
// Limits: every address or subnet a valid value may carry is inside 198.18.0.0/15, and namespace
// paths are only the campaign's own (so that no request can reach a real namespace).
import fc from 'fast-check';
import { callDefinitions, SPEC, type SchemaNode } from '../../../plugin-spec/index.js';
import { requestBytes } from './http.js';

/** Which socket a request goes to, and what its error replies look like there. */
export type Target = 'management' | 'bridge' | 'ipam';

export interface FuzzRequest {
  target: Target;
  label: string;
  bytes: Buffer;
  /** Truncated on purpose: the client half-closes, and a close without an answer is fine. */
  halfClose: boolean;
}

export interface Vocabulary {
  /** Object names the valid values draw from (networks, sandboxes, links). */
  names: string[];
  /** Namespace paths a path sandbox may be given: the campaign's own, plus a FIFO, a file, a folder, a missing path. */
  netnsPaths: string[];
}

type Schema = SchemaNode & { minLength?: number; maxLength?: number; minimum?: number; maximum?: number; minItems?: number; maxItems?: number };

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const octet = fc.integer({ min: 0, max: 255 });
const subnetIn = fc.tuple(fc.integer({ min: 0, max: 127 }), fc.constantFrom(16, 20, 24, 25, 28, 30, 31)).map(([b, len]) => `198.18.${b}.0/${len}`);
const addrIn = fc.tuple(fc.integer({ min: 0, max: 127 }), octet).map(([b, h]) => `198.18.${b}.${h}`);
const v6 = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(48, 64, 120)).map(([s, len]) => `fd00:198:18:${s.toString(16)}::/${len}`);
const badAddr = fc.constantFrom('198.18.300.0/24', '198.18.0.0/33', '198.18.0.1/24', '::/0', '0.0.0.0/0', '198.18.0.0/', '/24', '198.18..0/24', 'fd00::/129', '198.18.0.0/15');
const portSpec = fc.oneof(
  fc.tuple(fc.integer({ min: 20000, max: 20063 }), fc.integer({ min: 1, max: 65535 })).map(([h, c]) => `${h}:${c}`),
  fc.integer({ min: 1, max: 65535 }).map(String),
  fc.tuple(fc.integer({ min: 20000, max: 20063 }), fc.constantFrom('tcp', 'udp', 'sctp', 'icmp')).map(([p, proto]) => `${p}:${p}/${proto}`),
  fc.constantFrom('0:0', '70000:80', '20000-20010:80-90', '20000-20001:80-81', '127.0.0.1:20000:80', '[::1]:20000:80', ':', '-1:80', '1-65535:1-65535/udp', ''),
);

/** Junk of any JSON shape, nested. */
const junk: fc.Arbitrary<unknown> = fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.anything({ maxDepth: 3, withObjectString: true }).map((v) => JSON.parse(JSON.stringify(v ?? null)) as unknown));
const hugeString = fc.tuple(fc.constantFrom('a', 'é', '🦀', '\u0000', '%', '/'), fc.integer({ min: 200, max: 200_000 })).map(([c, n]) => c.repeat(n));
const oddString = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 20 }), hugeString, fc.constantFrom('', ' ', '..', '/', '../../etc', 'null', 'true', '0', '-1', 'NaN', '%00', 'a\nb', 'lo'));

/** A plausible value for a string field, chosen by its name. */
function stringFor(key: string, v: Vocabulary): fc.Arbitrary<string> {
  const name = fc.constantFrom(...v.names);
  const k = key.toLowerCase();
  if (k === 'subnet' || k === 'iprange' || k === 'pool' || k === 'subpool' || k === 'dst') return fc.oneof(subnetIn, badAddr);
  if (k.includes('v6') || k === 'addressipv6') return fc.oneof(v6, badAddr);
  if (k === 'gateway' || k === 'ip' || k === 'address' || k === 'via') return fc.oneof(addrIn, addrIn.map((a) => `${a}/24`), badAddr);
  if (k === 'netns' || k === 'sandboxkey') return fc.constantFrom(...v.netnsPaths);
  if (k === 'networkid' || k === 'endpointid' || k === 'poolid') return fc.oneof(hex64, fc.constantFrom('0'.repeat(64), 'LocalDefault/198.18.40.0/24', 'cnmkit/198.18.40.0/24'));
  if (k === 'ifname' || k === 'dev') return fc.constantFrom('eth0', 'eth1', 'lo', 'x', 'a-very-long-interface-name', 'eth 0', 'e/0');
  if (k === 'mac' || k === 'macaddress') return fc.constantFrom('02:42:c6:12:00:02', 'zz:zz', '', 'ff:ff:ff:ff:ff:ff');
  if (k === 'driver') return fc.constantFrom('bridge', 'host', 'null', 'overlay', 'macvlan', 'nope');
  if (k === 'name' || k === 'sandbox') return name;
  return oddString;
}

/** A value for schema at key: mostly well typed and plausible, valid=false adds the wrong ones. */
function valueFor(schema: Schema, key: string, v: Vocabulary, defs: Record<string, SchemaNode>, depth: number): fc.Arbitrary<unknown> {
  if (schema.$ref) {
    const def = defs[schema.$ref.replace(/^.*#\/definitions\//, '')];
    return def ? valueFor(def, key, v, defs, depth) : junk;
  }
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if (schema.oneOf) return fc.oneof(...schema.oneOf.map((s) => valueFor(s, key, v, defs, depth)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (depth > 4) return fc.constant(null);
  switch (type) {
    case 'string': return stringFor(key, v);
    case 'integer': return fc.oneof(fc.integer({ min: schema.minimum ?? 0, max: schema.maximum ?? 65535 }), fc.integer());
    case 'number': return fc.double({ noNaN: true });
    case 'boolean': return fc.boolean();
    case 'array': {
      const items = schema.items ? valueFor(schema.items, key === 'ports' ? 'port' : key, v, defs, depth + 1) : junk;
      return fc.array(key === 'ports' ? portSpec : items, { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 4, 4) });
    }
    case 'object': return objectFor(schema, v, defs, depth);
    default: return junk;
  }
}

function objectFor(schema: Schema, v: Vocabulary, defs: Record<string, SchemaNode>, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const props = schema.properties ?? {};
  const keys = Object.keys(props);
  if (keys.length === 0) {
    const extra = typeof schema.additionalProperties === 'object' ? valueFor(schema.additionalProperties, 'value', v, defs, depth + 1) : junk;
    return fc.dictionary(fc.oneof(fc.constantFrom('com.docker.network.bridge.name', 'com.docker.network.driver.mtu', 'com.docker.network.bridge.enable_icc', 'net.ipv4.ip_forward', 'a'), fc.string({ maxLength: 12 })), extra, { maxKeys: 3 });
  }
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const k of keys) record[k] = valueFor(props[k] as Schema, k, v, defs, depth + 1);
  return fc.record(record, { requiredKeys: schema.required ?? [] });
}

/** Turns a body into a wrong one: a field of the wrong type, a required one missing, an unknown one, or junk in place of it. */
function broken(body: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.tuple(body, fc.nat(), junk, fc.constantFrom('wrongType', 'drop', 'extra', 'junkBody', 'nest')).map(([b, i, j, how]) => {
    if (how === 'junkBody' || b === null || typeof b !== 'object' || Array.isArray(b)) return j;
    const o = { ...(b as Record<string, unknown>) };
    const keys = Object.keys(o);
    const k = keys.length > 0 ? keys[i % keys.length]! : 'x';
    if (how === 'wrongType') o[k] = typeof o[k] === 'string' ? (i % 2 ? 0 : [o[k]]) : String(j);
    else if (how === 'drop') delete o[k];
    else if (how === 'extra') o[`unknown${i % 3}`] = j;
    else o[k] = { nested: [j, { deeper: j }] };
    return o;
  });
}

export interface Route {
  method: string;
  /** With {ref} where an object's name goes. */
  path: string;
  body?: SchemaNode;
}

/** The management API's routes and their body schemas, from its /openapi.json. */
export function routesOf(openapi: { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: SchemaNode }> } }>> }): Route[] {
  const out: Route[] = [];
  for (const [p, methods] of Object.entries(openapi.paths)) {
    for (const [m, op] of Object.entries(methods)) out.push({ method: m.toUpperCase(), path: p, ...(op.requestBody ? { body: op.requestBody.content['application/json']?.schema } : {}) });
  }
  return out;
}

/** The plugin protocol's calls of a subsystem, each with its request schema. */
function pluginCalls(subsystem: 'NetworkDriver' | 'IpamDriver'): { path: string; body: SchemaNode; defs: Record<string, SchemaNode> }[] {
  const doc = SPEC[subsystem];
  const calls = Object.keys(doc.properties).map((call) => ({ path: `/${subsystem}.${call}`, body: doc.definitions[callDefinitions(doc, call)[0]]!, defs: doc.definitions }));
  return [...calls, { path: '/Plugin.Activate', body: { type: 'object' }, defs: {} }];
}

const methods = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'get');
const refValue = (v: Vocabulary): fc.Arbitrary<string> => fc.oneof(fc.constantFrom(...v.names), fc.constantFrom('bridge', 'host', 'none'), hex64, oddString.map((s) => encodeURIComponent(s.slice(0, 300))), fc.constantFrom('%2e%2e', '..%2f', '%', '%zz', 'a?b=c', 'a#b'));

/** A well-formed HTTP request carrying body (text) to path. */
function wellFormed(target: Target, label: string, method: string, path: string, body: string | undefined): FuzzRequest {
  return { target, label, bytes: requestBytes(method, path, body), halfClose: false };
}

/** Malformed HTTP around a JSON text: truncated body or headers, a wrong Content-Length, bad JSON, wrong content types, garbage. */
function malformed(target: Target, path: fc.Arbitrary<string>, text: fc.Arbitrary<string>): fc.Arbitrary<FuzzRequest> {
  const kinds = fc.constantFrom('truncatedBody', 'longerLength', 'shorterLength', 'badJson', 'textPlain', 'truncatedHeaders', 'garbageLine', 'badHeader', 'badChunked', 'noLength', 'bigLength');
  return fc.tuple(kinds, path, text, fc.nat(), fc.uint8Array({ maxLength: 64 })).map(([kind, p, t, n, raw]): FuzzRequest => {
    const cut = t.slice(0, n % Math.max(1, t.length));
    const req = (bytes: Buffer, halfClose = false): FuzzRequest => ({ target, label: `${kind} POST ${p.slice(0, 80)}`, bytes, halfClose });
    switch (kind) {
      case 'truncatedBody': return req(requestBytes('POST', p, cut, { contentLength: Buffer.byteLength(t) + 1 }), true);
      case 'longerLength': return req(requestBytes('POST', p, t, { contentLength: Buffer.byteLength(t) + 1 + (n % 1000) }), true);
      case 'shorterLength': return req(requestBytes('POST', p, t, { contentLength: Math.max(0, Buffer.byteLength(t) - 1 - (n % 8)) }));
      case 'badJson': return req(requestBytes('POST', p, `${cut}${['{', ']', ',', '\u0000', 'nul', '"'][n % 6]}`));
      case 'textPlain': return req(requestBytes('POST', p, t, { contentType: ['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'multipart/form-data'][n % 4]! }));
      case 'truncatedHeaders': return req(requestBytes('POST', p, t).subarray(0, 5 + (n % 40)), true);
      case 'garbageLine': return req(Buffer.concat([Buffer.from(raw), Buffer.from('\r\n\r\n')]), true);
      case 'badHeader': return req(Buffer.from(`POST ${p} HTTP/1.1\r\nHost: x\r\nX-Bad\u0001: ${'v'.repeat(n % 100)}\r\nConnection: close\r\n\r\n`, 'latin1'), true);
      case 'badChunked': return req(Buffer.from(`POST ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n${t.slice(0, 20)}\r\n0\r\n\r\n`), true);
      case 'noLength': return req(Buffer.from(`POST ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n${t}`), true);
      default: return req(requestBytes('POST', p, t, { contentLength: 10_000_000_000 }), true);
    }
  });
}

/** Requests to the management API: schema-derived bodies (valid and broken), random methods and paths, malformed HTTP. */
export function managementRequests(routes: Route[], v: Vocabulary): fc.Arbitrary<FuzzRequest> {
  const withBody = routes.filter((r) => r.body);
  const fill = (r: Route): fc.Arbitrary<string> => refValue(v).map((ref) => r.path.replace('{ref}', ref));
  const schemaCall = fc.constantFrom(...withBody).chain((r) => {
    const body = objectFor(r.body as Schema, v, {}, 0);
    return fc.tuple(fill(r), fc.oneof({ weight: 3, arbitrary: body }, { weight: 2, arbitrary: broken(body) })).map(([p, b]) => wellFormed('management', `${r.method} ${r.path}`, r.method, p, JSON.stringify(b)));
  });
  const anyRoute = fc.tuple(fc.constantFrom(...routes), methods, fc.option(junk)).chain(([r, m, b]) => fill(r).map((p) => wellFormed('management', `${m} ${r.path}`, m, p, b === null ? undefined : JSON.stringify(b))));
  const randomPath = fc.tuple(methods, oddString, fc.constantFrom('/', '/v1/', '/v1/networks/', '/v2/', '//', '/v1/sandboxes/x/')).map(([m, s, pre]) =>
    wellFormed('management', `${m} random path`, m, `${pre}${encodeURIComponent(s.slice(0, 500))}`, undefined));
  const badHttp = fc.constantFrom(...withBody).chain((r) => malformed('management', fill(r), objectFor(r.body as Schema, v, {}, 0).map((b) => JSON.stringify(b))));
  return fc.oneof({ weight: 5, arbitrary: schemaCall }, { weight: 2, arbitrary: anyRoute }, { weight: 1, arbitrary: randomPath }, { weight: 2, arbitrary: badHttp });
}

/** Requests to a plugin socket (cnmkit-bridge: NetworkDriver, cnmkit-ipam: IpamDriver), same kinds. */
export function pluginRequests(target: 'bridge' | 'ipam', v: Vocabulary): fc.Arbitrary<FuzzRequest> {
  const calls = pluginCalls(target === 'bridge' ? 'NetworkDriver' : 'IpamDriver');
  const other = pluginCalls(target === 'bridge' ? 'IpamDriver' : 'NetworkDriver');
  const schemaCall = fc.constantFrom(...calls).chain((c) => {
    const body = valueFor(c.body as Schema, 'body', v, c.defs, 0);
    return fc.oneof({ weight: 3, arbitrary: body }, { weight: 2, arbitrary: broken(body) }).map((b) => wellFormed(target, `POST ${c.path}`, 'POST', c.path, JSON.stringify(b)));
  });
  const wrongSubsystem = fc.constantFrom(...other).map((c) => wellFormed(target, `POST ${c.path} (other subsystem)`, 'POST', c.path, '{}'));
  const randomCall = fc.tuple(methods, fc.constantFrom(...calls.map((c) => c.path), '/', '/NetworkDriver.', '/Plugin.Nope'), fc.option(junk)).map(([m, p, b]) =>
    wellFormed(target, `${m} ${p}`, m, p, b === null ? undefined : JSON.stringify(b)));
  const badHttp = fc.constantFrom(...calls).chain((c) => malformed(target, fc.constant(c.path), valueFor(c.body as Schema, 'body', v, c.defs, 0).map((b) => JSON.stringify(b))));
  return fc.oneof({ weight: 5, arbitrary: schemaCall }, { weight: 1, arbitrary: wrongSubsystem }, { weight: 2, arbitrary: randomCall }, { weight: 2, arbitrary: badHttp });
}

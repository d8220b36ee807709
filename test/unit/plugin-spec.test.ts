// The plugin-spec schemas and their hand-written TypeScript twins stay in sync: every definition
// has a type with exactly its keys (required and optional), every call table agrees, every $ref
// resolves, and every example in the schemas validates (with fastify's own ajv).
import fs from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  callDefinitions, SPEC, type IpamDriverCallNames, type IpamDriverDefinitions, type NetworkDriverCallNames, type NetworkDriverDefinitions,
  type PluginCallNames, type PluginDefinitions, type SchemaNode, type SpecDocument,
} from '../../plugin-spec/index.js';

// ---- type-level shapes: tsc rejects a table below that misses, adds or mislabels a key ----
type KnownKeys<T> = keyof { [K in keyof T as string extends K ? never : K]: T[K] };
type Shape<T> = { [K in KnownKeys<T>]-?: K extends keyof T ? ({} extends Pick<T, K> ? 'optional' : 'required') : never };
type Shapes<D> = { [N in keyof D]: Shape<D[N]> };
type Calls<C> = { [K in keyof C]: C[K] };

const pluginShapes: Shapes<PluginDefinitions> = {
  EmptyRequest: {},
  ActivateReply: { Implements: 'required' },
  ErrorReply: { Err: 'optional', Error: 'optional' },
};

const networkShapes: Shapes<NetworkDriverDefinitions> = {
  EmptyRequest: {},
  EmptyReply: {},
  ErrorReply: { Err: 'optional', Error: 'optional' },
  NetworkCapabilities: { Scope: 'required', ConnectivityScope: 'optional', GwAllocChecker: 'optional' },
  IPAMData: { AddressSpace: 'optional', Pool: 'optional', Gateway: 'optional', AuxAddresses: 'optional' },
  NetworkOptions: {
    'com.docker.network.generic': 'optional', 'com.docker.network.enable_ipv6': 'optional',
    'com.docker.network.enable_ipv4': 'optional', 'com.docker.network.internal': 'optional',
  },
  PortBinding: { Proto: 'optional', IP: 'optional', Port: 'optional', HostIP: 'optional', HostPort: 'optional', HostPortEnd: 'optional' },
  TransportPort: { Proto: 'optional', Port: 'optional' },
  EndpointOptions: {
    'com.docker.network.portmap': 'optional', 'com.docker.network.endpoint.exposedports': 'optional',
    'com.docker.network.endpoint.macaddress': 'optional',
  },
  CreateNetworkRequest: { NetworkID: 'required', Options: 'optional', IPv4Data: 'optional', IPv6Data: 'optional' },
  NetworkRequest: { NetworkID: 'required' },
  EndpointInterface: { Address: 'optional', AddressIPv6: 'optional', MacAddress: 'optional' },
  CreateEndpointRequest: { NetworkID: 'required', EndpointID: 'required', Interface: 'optional', Options: 'optional' },
  CreateEndpointReply: { Interface: 'optional' },
  EndpointRequest: { NetworkID: 'required', EndpointID: 'required' },
  EndpointOperInfoReply: { Value: 'required' },
  JoinRequest: { NetworkID: 'required', EndpointID: 'required', SandboxKey: 'optional', Options: 'optional' },
  InterfaceName: { SrcName: 'required', DstPrefix: 'optional', DstName: 'optional' },
  StaticRoute: { Destination: 'required', RouteType: 'required', NextHop: 'optional' },
  JoinReply: { InterfaceName: 'optional', Gateway: 'optional', GatewayIPv6: 'optional', StaticRoutes: 'optional', DisableGatewayService: 'optional' },
  ProgramExternalConnectivityRequest: { NetworkID: 'required', EndpointID: 'required', Options: 'optional' },
  DiscoveryRequest: { DiscoveryType: 'required', DiscoveryData: 'optional' },
  AllocateNetworkRequest: { NetworkID: 'required', Options: 'optional', IPv4Data: 'optional', IPv6Data: 'optional' },
  AllocateNetworkReply: { Options: 'optional' },
};

const ipamShapes: Shapes<IpamDriverDefinitions> = {
  EmptyRequest: {},
  EmptyReply: {},
  ErrorReply: { Err: 'optional', Error: 'optional' },
  IpamCapabilities: { RequiresMACAddress: 'required', RequiresRequestReplay: 'required' },
  AddressSpaces: { LocalDefaultAddressSpace: 'required', GlobalDefaultAddressSpace: 'required' },
  RequestPoolRequest: { AddressSpace: 'optional', Pool: 'optional', SubPool: 'optional', Options: 'optional', V6: 'optional' },
  RequestPoolReply: { PoolID: 'required', Pool: 'required', Data: 'optional' },
  ReleasePoolRequest: { PoolID: 'required' },
  AddressOptions: { RequestAddressType: 'optional', 'com.docker.network.endpoint.macaddress': 'optional' },
  RequestAddressRequest: { PoolID: 'required', Address: 'optional', Options: 'optional' },
  RequestAddressReply: { Address: 'required', Data: 'optional' },
  ReleaseAddressRequest: { PoolID: 'required', Address: 'required' },
};

const pluginCalls: Calls<PluginCallNames> = { Activate: ['EmptyRequest', 'ActivateReply'] };

const networkCalls: Calls<NetworkDriverCallNames> = {
  GetCapabilities: ['EmptyRequest', 'NetworkCapabilities'],
  CreateNetwork: ['CreateNetworkRequest', 'EmptyReply'],
  DeleteNetwork: ['NetworkRequest', 'EmptyReply'],
  CreateEndpoint: ['CreateEndpointRequest', 'CreateEndpointReply'],
  EndpointOperInfo: ['EndpointRequest', 'EndpointOperInfoReply'],
  DeleteEndpoint: ['EndpointRequest', 'EmptyReply'],
  Join: ['JoinRequest', 'JoinReply'],
  Leave: ['EndpointRequest', 'EmptyReply'],
  ProgramExternalConnectivity: ['ProgramExternalConnectivityRequest', 'EmptyReply'],
  RevokeExternalConnectivity: ['EndpointRequest', 'EmptyReply'],
  DiscoverNew: ['DiscoveryRequest', 'EmptyReply'],
  DiscoverDelete: ['DiscoveryRequest', 'EmptyReply'],
  AllocateNetwork: ['AllocateNetworkRequest', 'AllocateNetworkReply'],
  FreeNetwork: ['NetworkRequest', 'EmptyReply'],
};

const ipamCalls: Calls<IpamDriverCallNames> = {
  GetCapabilities: ['EmptyRequest', 'IpamCapabilities'],
  GetDefaultAddressSpaces: ['EmptyRequest', 'AddressSpaces'],
  RequestPool: ['RequestPoolRequest', 'RequestPoolReply'],
  ReleasePool: ['ReleasePoolRequest', 'EmptyReply'],
  RequestAddress: ['RequestAddressRequest', 'RequestAddressReply'],
  ReleaseAddress: ['ReleaseAddressRequest', 'EmptyReply'],
};

const documents: [string, SpecDocument, Record<string, Record<string, 'required' | 'optional'>>, Record<string, [string, string]>][] = [
  ['Plugin', SPEC.Plugin, pluginShapes, pluginCalls],
  ['NetworkDriver', SPEC.NetworkDriver, networkShapes, networkCalls],
  ['IpamDriver', SPEC.IpamDriver, ipamShapes, ipamCalls],
];

/** Every $ref in a schema tree. */
function refs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => refs(n, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

describe.each(documents)('plugin-spec %s', (_name, doc, shapes, calls) => {
  it('is a draft-07 document whose $id is its file name', () => {
    expect(doc.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(fs.existsSync(new URL(`../../plugin-spec/${doc.$id}`, import.meta.url))).toBe(true);
  });

  it('has a TypeScript type with exactly the keys of each definition', () => {
    expect(Object.keys(shapes).sort()).toEqual(Object.keys(doc.definitions).sort());
    for (const [name, shape] of Object.entries(shapes)) {
      const def = doc.definitions[name] as SchemaNode;
      const keys = Object.keys(def.properties ?? {}).sort();
      expect({ name, keys }).toEqual({ name, keys: Object.keys(shape).sort() });
      const required = [...(def.required ?? [])].sort();
      expect({ name, required }).toEqual({ name, required: Object.keys(shape).filter((k) => shape[k] === 'required').sort() });
    }
  });

  it('lists the same calls, with the same request and reply definitions, as the TypeScript call table', () => {
    expect(Object.keys(doc.properties).sort()).toEqual(Object.keys(calls).sort());
    for (const call of Object.keys(doc.properties)) expect({ call, defs: callDefinitions(doc, call) }).toEqual({ call, defs: calls[call] });
  });

  it('only refers to definitions of its own document, and uses every definition', () => {
    const all = refs(doc);
    for (const ref of all) {
      expect(ref).toMatch(/^#\/definitions\//);
      expect(doc.definitions).toHaveProperty([ref.slice('#/definitions/'.length)]);
    }
    const used = new Set(all.map((r) => r.slice('#/definitions/'.length)));
    const unused = Object.keys(doc.definitions).filter((d) => !used.has(d) && d !== 'ErrorReply');
    expect(unused).toEqual([]);
  });
});

describe('plugin-spec examples and shared definitions', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = Fastify({ ajv: { customOptions: { allowUnionTypes: true, coerceTypes: false } } });
    for (const doc of Object.values(SPEC)) app.addSchema(doc);
    app.post('/validate', async (req) => {
      const { ref, value } = req.body as { ref: string; value: unknown };
      const validate = req.compileValidationSchema({ $ref: ref });
      return { valid: validate(value), errors: validate.errors ?? null };
    });
    await app.ready();
  });

  async function check(ref: string, value: unknown): Promise<{ valid: boolean; errors: unknown }> {
    const res = await app.inject({ method: 'POST', url: '/validate', payload: { ref, value } });
    return res.json() as { valid: boolean; errors: unknown };
  }

  it('validates every example against its own definition', async () => {
    let count = 0;
    for (const doc of Object.values(SPEC)) {
      for (const [name, def] of Object.entries(doc.definitions)) {
        for (const example of def.examples ?? []) {
          count += 1;
          expect({ name, ...(await check(`${doc.$id}#/definitions/${name}`, example)) }).toEqual({ name, valid: true, errors: null });
        }
      }
    }
    expect(count).toBeGreaterThanOrEqual(12);
  });

  it('accepts what the engine really sends: unknown keys, null Options, nil slices, {} for no arguments', async () => {
    const [n, e] = ['5c1f'.repeat(16), 'e0a9'.repeat(16)];
    const ok = [
      ['network-driver.schema.json#/definitions/CreateNetworkRequest', { NetworkID: n, Options: null, IPv4Data: null, IPv6Data: null, Extra: 1 }],
      ['network-driver.schema.json#/definitions/CreateEndpointRequest', { NetworkID: n, EndpointID: e, Interface: null, Options: null }],
      ['network-driver.schema.json#/definitions/JoinRequest', { NetworkID: n, EndpointID: e, SandboxKey: '/var/run/docker/netns/0123456789ab', Options: { 'com.docker.network.portmap': null } }],
      ['ipam-driver.schema.json#/definitions/RequestAddressRequest', { PoolID: 'p', Address: '10.0.0.5', Options: null }],
      ['ipam-driver.schema.json#/definitions/RequestPoolRequest', { AddressSpace: 'LocalDefault', Pool: '', SubPool: '', Options: null, V6: false, Future: true }],
      ['ipam-driver.schema.json#/definitions/EmptyRequest', {}],
      ['plugin.schema.json#/definitions/EmptyRequest', {}],
    ] as const;
    for (const [ref, value] of ok) expect({ ref, ...(await check(ref, value)) }).toEqual({ ref, valid: true, errors: null });
  });

  it('refuses requests without the ids they act on, ids of the wrong type or shape, and replies that break the protocol', async () => {
    const n = '5c1f'.repeat(16);
    const bad = [
      ['network-driver.schema.json#/definitions/EndpointRequest', { NetworkID: n }],
      ['network-driver.schema.json#/definitions/CreateNetworkRequest', { NetworkID: '' }],
      ['network-driver.schema.json#/definitions/CreateNetworkRequest', { NetworkID: 0 }],
      ['network-driver.schema.json#/definitions/CreateNetworkRequest', { NetworkID: n.toUpperCase() }],
      ['network-driver.schema.json#/definitions/EndpointRequest', { NetworkID: n, EndpointID: n.slice(1) }],
      ['network-driver.schema.json#/definitions/PortBinding', { Proto: '6' }],
      ['ipam-driver.schema.json#/definitions/RequestPoolRequest', { V6: 'false' }],
      ['ipam-driver.schema.json#/definitions/ReleaseAddressRequest', { PoolID: 'p' }],
      ['network-driver.schema.json#/definitions/NetworkCapabilities', { Scope: 'cluster' }],
      ['network-driver.schema.json#/definitions/JoinReply', { InterfaceName: { SrcName: 'a-name-longer-than-15' } }],
      ['network-driver.schema.json#/definitions/StaticRoute', { Destination: '10.0.0.0/8', RouteType: 2 }],
      ['ipam-driver.schema.json#/definitions/RequestPoolReply', { PoolID: 'p' }],
      ['plugin.schema.json#/definitions/ActivateReply', {}],
    ] as const;
    for (const [ref, value] of bad) expect({ ref, valid: (await check(ref, value)).valid }).toEqual({ ref, valid: false });
  });

  it('defines the shared definitions identically in every document', () => {
    for (const name of ['EmptyRequest', 'ErrorReply']) {
      expect(SPEC.NetworkDriver.definitions[name]).toEqual(SPEC.Plugin.definitions[name]);
      expect(SPEC.IpamDriver.definitions[name]).toEqual(SPEC.Plugin.definitions[name]);
    }
    expect(SPEC.IpamDriver.definitions.EmptyReply).toEqual(SPEC.NetworkDriver.definitions.EmptyReply);
  });

  it('ships an example spec file naming the bridge plugin socket', () => {
    const text = fs.readFileSync(new URL('../../plugin-spec/cnmkit-bridge.spec', import.meta.url), 'utf8');
    expect(text.trim()).toBe('unix:///run/docker/plugins/cnmkit-bridge.sock');
  });
});

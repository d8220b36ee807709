// Docker's NetworkDriver calls over a backend that a driver implements (the bridge driver will).
// This layer owns the protocol's rules so that backends need not know them: the capabilities
// (local scope), teardown calls that answer success for unknown ids, EndpointOperInfo that always
// answers, and a CreateEndpoint reply that never echoes an Interface field the engine already set.
import type { FastifyBaseLogger } from 'fastify';
import { CnmkitError } from '../../errors.js';
import type {
  AllocateNetworkReply, AllocateNetworkRequest, CreateEndpointReply, CreateEndpointRequest, CreateNetworkRequest, DiscoveryRequest,
  EndpointInterface, EndpointRequest, JoinReply, JoinRequest, NetworkCapabilities, NetworkDriverCalls, NetworkRequest,
  ProgramExternalConnectivityRequest,
} from '../../../plugin-spec/index.js';
import type { Handlers } from './app.js';
import { isNotFound } from './errors.js';

type Done = Promise<void> | void;

/**
 * One method per NetworkDriver call, with the wire's own request types. Teardown methods may throw
 * a not-found CnmkitError for ids they do not know: the engine is then told "success". The swarm
 * and discovery calls are optional; without them DiscoverNew/DiscoverDelete/FreeNetwork answer {}
 * and AllocateNetwork is refused (a local-scope driver never receives it).
 */
export interface DockerNetworkBackend {
  /** Defaults to {"Scope":"local","ConnectivityScope":"local"}. */
  readonly capabilities?: NetworkCapabilities;
  createNetwork(req: CreateNetworkRequest): Done;
  deleteNetwork(req: NetworkRequest): Done;
  /** Returns only the Interface fields the request left empty (or none). */
  createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointReply> | CreateEndpointReply;
  /** Operational data for inspect; defaults to {}. */
  endpointOperInfo?(req: EndpointRequest): Promise<Record<string, unknown>> | Record<string, unknown>;
  deleteEndpoint(req: EndpointRequest): Done;
  /** log: the request's (the daemon's structured log). */
  join(req: JoinRequest, log: FastifyBaseLogger): Promise<JoinReply> | JoinReply;
  leave(req: EndpointRequest): Done;
  programExternalConnectivity(req: ProgramExternalConnectivityRequest): Done;
  revokeExternalConnectivity(req: EndpointRequest): Done;
  discoverNew?(req: DiscoveryRequest): Done;
  discoverDelete?(req: DiscoveryRequest): Done;
  allocateNetwork?(req: AllocateNetworkRequest): Promise<AllocateNetworkReply> | AllocateNetworkReply;
  freeNetwork?(req: NetworkRequest): Done;
}

export const LOCAL_CAPABILITIES: NetworkCapabilities = { Scope: 'local', ConnectivityScope: 'local' };

/** Runs a teardown step; an unknown id is success (the engine repeats teardown and ignores errors). */
async function teardown(log: FastifyBaseLogger, call: string, ids: object, step: () => Done): Promise<Record<string, never>> {
  try {
    await step();
  } catch (err) {
    if (!isNotFound(err)) throw err;
    log.info({ call, ...ids, reason: (err as Error).message }, 'teardown of an unknown object: success');
  }
  return {};
}

const INTERFACE_FIELDS = ['Address', 'AddressIPv6', 'MacAddress'] as const;

/**
 * Keeps only the fields the engine left empty: echoing one it set (even with the same value)
 * makes the engine roll the endpoint back. A differing value is dropped with a warning.
 */
export function interfaceReply(sent: EndpointInterface | null | undefined, reply: EndpointInterface | null | undefined, log?: FastifyBaseLogger): EndpointInterface | null {
  if (!reply) return null;
  const out: EndpointInterface = {};
  for (const field of INTERFACE_FIELDS) {
    const value = reply[field];
    if (value === undefined || value === '') continue;
    const given = sent?.[field];
    if (given) {
      if (given !== value) log?.warn({ field, given, reply: value }, 'CreateEndpoint: the backend changed a field the engine set; keeping the engine\'s');
      continue;
    }
    out[field] = value;
  }
  return Object.keys(out).length > 0 ? out : null;
}

export function networkHandlers(backend: DockerNetworkBackend): Handlers<NetworkDriverCalls> {
  const ids = (r: { NetworkID: string; EndpointID?: string }) => (r.EndpointID === undefined ? { networkId: r.NetworkID } : { networkId: r.NetworkID, endpointId: r.EndpointID });
  return {
    GetCapabilities: () => ({ ...(backend.capabilities ?? LOCAL_CAPABILITIES) }),
    CreateNetwork: async (req) => {
      await backend.createNetwork(req);
      return {};
    },
    DeleteNetwork: (req, log) => teardown(log, 'DeleteNetwork', ids(req), () => backend.deleteNetwork(req)),
    CreateEndpoint: async (req, log) => {
      const reply = await backend.createEndpoint(req);
      return { Interface: interfaceReply(req.Interface, reply.Interface, log) };
    },
    EndpointOperInfo: async (req, log) => {
      if (!backend.endpointOperInfo) return { Value: {} };
      try {
        return { Value: (await backend.endpointOperInfo(req)) ?? {} };
      } catch (err) {
        if (!isNotFound(err)) throw err;
        log.info({ ...ids(req) }, 'EndpointOperInfo of an unknown endpoint: empty');
        return { Value: {} };
      }
    },
    DeleteEndpoint: (req, log) => teardown(log, 'DeleteEndpoint', ids(req), () => backend.deleteEndpoint(req)),
    Join: (req, log) => backend.join(req, log),
    Leave: (req, log) => teardown(log, 'Leave', ids(req), () => backend.leave(req)),
    ProgramExternalConnectivity: async (req) => {
      await backend.programExternalConnectivity(req);
      return {};
    },
    RevokeExternalConnectivity: (req, log) => teardown(log, 'RevokeExternalConnectivity', ids(req), () => backend.revokeExternalConnectivity(req)),
    DiscoverNew: async (req) => {
      await backend.discoverNew?.(req);
      return {};
    },
    DiscoverDelete: (req, log) => teardown(log, 'DiscoverDelete', { discoveryType: req.DiscoveryType }, () => backend.discoverDelete?.(req)),
    AllocateNetwork: async (req) => {
      if (!backend.allocateNetwork) {
        throw new CnmkitError('ERR_NOT_SUPPORTED', 'bad-request', 'AllocateNetwork: this is a local-scope driver; only swarm managers ask global-scope drivers to allocate networks');
      }
      return backend.allocateNetwork(req);
    },
    FreeNetwork: (req, log) => teardown(log, 'FreeNetwork', ids(req), () => backend.freeNetwork?.(req)),
  };
}

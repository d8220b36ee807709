// One Docker NetworkDriver for every driver that declares a Docker plugin name: engine calls
// mapped onto the controller, which asks the driver. Networks and endpoints keep Docker's ids (so
// `cnmkit network ls` shows them); the engine's IPAM decides addresses; endpoints are detached
// (their container end stays in the daemon's namespace until the engine moves it) and Join
// translates the driver's JoinInfo; ports are published in ProgramExternalConnectivity, the one
// place the engine sends them for the gateway endpoint, by drivers that publish (never on an
// internal network: a Join there logs the ports the container asked for). Endpoints the
// engine forgot without telling (after an engine crash, 20.10 drops the stale endpoints of remote
// drivers without calling them) are those whose kernel object the driver says is gone: removed
// before they can hold ports, and with their network at DeleteNetwork. The engine sees only the
// objects it created (by their Docker ids): cnmkit's own are unknown to it.
import { asked, CnmkitError, ConflictError } from '../../errors.js';
import type { Controller } from '../../controller/controller.js';
import type { NetworkRecord, SubnetRecord } from '../../core/model.js';
import { shortId } from '../../core/refs.js';
import type { JoinInfo } from '../../contract/join.js';
import { formatPortSpec, parsePortBindings } from '../../portmap/index.js';
import type {
  CreateEndpointReply, CreateEndpointRequest, CreateNetworkRequest, EndpointRequest, IPAMData, JoinReply, JoinRequest,
  NetworkRequest, ProgramExternalConnectivityRequest,
} from '../../../plugin-spec/types.js';
import type { FastifyBaseLogger } from 'fastify';
import type { DockerNetworkBackend } from './network.js';

const GENERIC = 'com.docker.network.generic';

function subnets(data: IPAMData[] | null | undefined): SubnetRecord[] {
  return (data ?? []).filter((d) => d.Pool).map((d) => ({
    poolId: '',
    subnet: d.Pool!,
    ...(d.Gateway ? { gateway: d.Gateway } : {}),
    ...(d.AuxAddresses && Object.keys(d.AuxAddresses).length > 0 ? { auxAddresses: d.AuxAddresses } : {}),
  }));
}

/** `-o k=v` values arrive as JSON values; the driver's options are strings. */
function stringOptions(generic: unknown): Record<string, string> {
  if (!generic || typeof generic !== 'object') return {};
  return Object.fromEntries(Object.entries(generic as Record<string, unknown>).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
}

/** Docker sends the MAC option as base64 of its bytes. */
function macOption(b64: unknown): string | undefined {
  if (typeof b64 !== 'string' || b64 === '') return undefined;
  const bytes = Buffer.from(b64, 'base64');
  return bytes.length === 6 ? [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':') : undefined;
}

/** Docker's Join reply for a driver's JoinInfo (none: no interface). */
export function joinReply(info: JoinInfo | undefined): JoinReply {
  if (!info) return {};
  const routes = info.routes.map((r) => (r.nextHop ? { Destination: r.destination, RouteType: 0 as const, NextHop: r.nextHop } : { Destination: r.destination, RouteType: 1 as const }));
  return {
    InterfaceName: { SrcName: info.src.name, ...(info.dstName ? { DstName: info.dstName } : { DstPrefix: info.dstPrefix ?? 'eth' }) },
    ...(info.noGateway ? { DisableGatewayService: true } : {}),
    ...(info.gateway ? { Gateway: info.gateway } : {}),
    ...(info.gatewayV6 ? { GatewayIPv6: info.gatewayV6 } : {}),
    ...(routes.length > 0 ? { StaticRoutes: routes } : {}),
  };
}

const isConflict = (err: unknown): boolean => err instanceof CnmkitError && err.errorClass === 'conflict';

const PORTMAP = 'com.docker.network.portmap';

/**
 * Ports asked for a container that joins an internal network: every Join carries the container's
 * port map (the sandbox's options), but the engine publishes a container's ports only through a
 * network that is not internal (it asks no driver to program them on an internal one, and passes
 * none at CreateEndpoint there), so none goes through this one. Docker's own drivers say nothing;
 * the daemon's log says it, naming the endpoint and the network.
 */
function warnUnpublished(net: NetworkRecord, req: JoinRequest, log: FastifyBaseLogger): void {
  if (!net.internal) return;
  let ports: string[];
  try {
    ports = parsePortBindings(req.Options?.[PORTMAP], PORTMAP).map(formatPortSpec);
  } catch (err) {
    ports = [`unreadable: ${(err as Error).message}`];
  }
  if (ports.length === 0) return;
  log.warn({ network: net.name, dockerNetwork: net.dockerId, endpoint: req.EndpointID, ports },
    'ports asked for the container are not published through this internal network (the engine publishes them only through a network that is not internal)');
}

/**
 * The NetworkDriver of the registered driver named driver; scope: what GetCapabilities tells the
 * engine. globalName: for a driver of global networks, the cluster network a CreateNetwork maps
 * to (from its IPv4 pool): the local record keeps Docker's id and takes that name and the cluster's subnets.
 */
export function driverBackend(controller: Controller, driver: string, scope: 'local' | 'global' = 'local', globalName?: (pool: string | undefined) => Promise<string>): DockerNetworkBackend {
  /** Removes the Docker endpoints of this driver whose kernel object is gone; returns how many. */
  const pruneDead = (): Promise<number> => controller.pruneGoneDockerEndpoints(driver);
  return {
    capabilities: { Scope: scope, ConnectivityScope: scope },
    createNetwork: (req: CreateNetworkRequest) => asked(`create network ${shortId(req.NetworkID)}`, async () => {
      const o = req.Options ?? {};
      const common = {
        id: req.NetworkID, dockerId: req.NetworkID, driver, options: stringOptions(o[GENERIC]),
        internal: o['com.docker.network.internal'] === true, enableIPv6: o['com.docker.network.enable_ipv6'] === true,
      };
      if (globalName) {
        const v4 = req.IPv4Data?.[0]?.Pool;
        const v6 = req.IPv6Data?.[0]?.Pool;
        const name = await globalName(v4);
        const here = controller.listNetworks().find((n) => n.name === name);
        if (here) {
          const by = here.dockerId ? `the Docker network ${shortId(here.dockerId)} of this engine` : 'cnmkit\'s API on this host';
          throw new ConflictError(`overlay network ${name} is already used here by ${by}: one Docker network per overlay and engine`);
        }
        await controller.createNetwork({ ...common, name, ...(v4 ? { subnet: v4 } : {}), ...(v6 ? { subnetV6: v6 } : {}) });
        return;
      }
      await controller.createNetwork({
        ...common, name: `docker-${shortId(req.NetworkID)}`, assigned: { ipv4: subnets(req.IPv4Data), ipv6: subnets(req.IPv6Data) },
      });
    }),
    deleteNetwork: (req: NetworkRequest) => asked(`remove network ${shortId(req.NetworkID)}`, async () => {
      const net = controller.dockerNetwork(req.NetworkID);
      // The engine deletes only networks it has no endpoint on: whatever is left here is stale.
      for (const ep of controller.endpointsOf({ networkId: net.id })) await controller.deleteEndpoint(ep.id, 'docker');
      await controller.deleteNetwork(net.id, 'docker');
    }),
    async createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointReply> {
      const i = req.Interface ?? {};
      const mac = i.MacAddress || macOption(req.Options?.['com.docker.network.endpoint.macaddress']);
      const net = controller.dockerNetwork(req.NetworkID);
      await pruneDead();
      const ep = await asked(`create endpoint ${shortId(req.EndpointID)} on network ${shortId(req.NetworkID)}`, () => controller.createDetachedEndpoint(net.id, {
        id: req.EndpointID, dockerId: req.EndpointID,
        ...(i.Address ? { ipv4: i.Address } : {}), ...(i.AddressIPv6 ? { ipv6: i.AddressIPv6 } : {}), ...(mac ? { macAddress: mac } : {}),
      }));
      return { Interface: i.MacAddress ? null : { MacAddress: ep.macAddress ?? '' } };
    },
    async deleteEndpoint(req: EndpointRequest) {
      await controller.deleteEndpoint(controller.dockerEndpoint(req.EndpointID).id, 'docker');
    },
    endpointOperInfo(req: EndpointRequest) {
      const ep = controller.dockerEndpoint(req.EndpointID);
      const host = controller.hostInterface(ep);
      return { ...(host ? { hostInterface: host } : {}), macAddress: ep.macAddress ?? '', ports: ep.ports };
    },
    async join(req: JoinRequest, log: FastifyBaseLogger): Promise<JoinReply> {
      const reply = joinReply(await asked(`join endpoint ${shortId(req.EndpointID)} of network ${shortId(req.NetworkID)}`, () => controller.dockerJoin(req.EndpointID)));
      warnUnpublished(controller.dockerNetwork(req.NetworkID), req, log);
      return reply;
    },
    leave(req: EndpointRequest) {
      controller.dockerEndpoint(req.EndpointID);
    },
    async programExternalConnectivity(req: ProgramExternalConnectivityRequest) {
      const ports = parsePortBindings(req.Options?.[PORTMAP], PORTMAP);
      const ep = controller.dockerEndpoint(req.EndpointID);
      // Most containers publish nothing: then there is nothing to replace (DeleteEndpoint still unpublishes).
      if (ports.length === 0 && ep.ports.length === 0) return;
      try {
        await controller.publishPorts(ep.id, ports);
      } catch (err) {
        // A dead endpoint may hold the ports if its veth was still being destroyed at CreateEndpoint.
        if (!isConflict(err) || (await pruneDead()) === 0) throw err;
        await controller.publishPorts(ep.id, ports);
      }
    },
    async revokeExternalConnectivity(req: EndpointRequest) {
      const ep = controller.dockerEndpoint(req.EndpointID);
      if (ep.ports.length === 0) return;
      await controller.publishPorts(ep.id, []);
    },
  };
}

// The cnmkit-bridge NetworkDriver: Docker engine calls mapped onto the controller and the bridge
// driver. Networks and endpoints keep Docker's ids (so `cnmkit network ls` shows them); the
// engine's IPAM decides addresses; the container end of each veth stays in the host namespace
// until the engine moves it (Join only names it); ports are published in
// ProgramExternalConnectivity, the one place the engine sends them for the gateway endpoint.
// Endpoints the engine forgot without telling (after an engine crash, 20.10 drops the stale
// endpoints of remote drivers without calling them) are found by their missing host-side veth
// and removed before they can hold ports, and with their network at DeleteNetwork. The engine
// sees only the objects it created (by their Docker ids): cnmkit's own are unknown to it.
import fs from 'node:fs';
import { CnmkitError } from '../../errors.js';
import type { Controller } from '../../controller/controller.js';
import type { SubnetRecord } from '../../core/model.js';
import type { BridgeConfig, BridgeEndpointData } from '../../../drivers/bridge/index.js';
import { parsePortBindings } from '../../portmap/index.js';
import type {
  CreateEndpointReply, CreateEndpointRequest, CreateNetworkRequest, EndpointRequest, IPAMData, JoinReply, JoinRequest,
  NetworkRequest, ProgramExternalConnectivityRequest,
} from '../../../plugin-spec/types.js';
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

/** Link names in the daemon's own network namespace, where the host ends of the veths live. */
function hostLinkNames(): Set<string> {
  const lines = fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2);
  return new Set(lines.map((l) => l.split(':')[0]!.trim()).filter(Boolean));
}

const isConflict = (err: unknown): boolean => err instanceof CnmkitError && err.errorClass === 'conflict';

export function bridgeBackend(controller: Controller): DockerNetworkBackend {
  /**
   * Removes the Docker endpoints whose host-side veth is gone: the kernel destroyed the pair with
   * the container's namespace, so the engine no longer has them. The endpoint list is read before
   * the links, so an endpoint created in between is never taken for dead. Returns how many.
   */
  const pruneDead = async (): Promise<number> => {
    const eps = controller.endpointsOf({}).filter((e) => e.dockerId !== undefined && e.sandboxId === undefined && e.state === 'ready');
    if (eps.length === 0) return 0;
    const links = hostLinkNames();
    const dead = eps.filter((e) => !links.has((e.driverData as BridgeEndpointData).hostIfname));
    for (const ep of dead) await controller.deleteEndpoint(ep.id, 'docker').catch(() => undefined);
    return dead.length;
  };
  return {
    async createNetwork(req: CreateNetworkRequest) {
      const o = req.Options ?? {};
      await controller.createNetwork({
        id: req.NetworkID, dockerId: req.NetworkID, name: `docker-${req.NetworkID.slice(0, 12)}`, driver: 'bridge',
        options: stringOptions(o[GENERIC]), internal: o['com.docker.network.internal'] === true,
        enableIPv6: o['com.docker.network.enable_ipv6'] === true,
        assigned: { ipv4: subnets(req.IPv4Data), ipv6: subnets(req.IPv6Data) },
      });
    },
    async deleteNetwork(req: NetworkRequest) {
      const net = controller.dockerNetwork(req.NetworkID);
      // The engine deletes only networks it has no endpoint on: whatever is left here is stale.
      for (const ep of controller.endpointsOf({ networkId: net.id })) await controller.deleteEndpoint(ep.id, 'docker');
      await controller.deleteNetwork(net.id, 'docker');
    },
    async createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointReply> {
      const i = req.Interface ?? {};
      const mac = i.MacAddress || macOption(req.Options?.['com.docker.network.endpoint.macaddress']);
      const net = controller.dockerNetwork(req.NetworkID);
      await pruneDead();
      const ep = await controller.createDetachedEndpoint(net.id, {
        id: req.EndpointID, dockerId: req.EndpointID,
        ...(i.Address ? { ipv4: i.Address } : {}), ...(i.AddressIPv6 ? { ipv6: i.AddressIPv6 } : {}), ...(mac ? { macAddress: mac } : {}),
      });
      return { Interface: i.MacAddress ? null : { MacAddress: ep.macAddress ?? '' } };
    },
    async deleteEndpoint(req: EndpointRequest) {
      await controller.deleteEndpoint(controller.dockerEndpoint(req.EndpointID).id, 'docker');
    },
    endpointOperInfo(req: EndpointRequest) {
      const ep = controller.dockerEndpoint(req.EndpointID);
      const data = ep.driverData as BridgeEndpointData;
      return { hostInterface: data.hostIfname, macAddress: ep.macAddress ?? '', ports: ep.ports };
    },
    join(req: JoinRequest): JoinReply {
      const ep = controller.dockerEndpoint(req.EndpointID);
      const net = controller.dockerNetwork(ep.networkId);
      const config = net.config as BridgeConfig;
      const data = ep.driverData as BridgeEndpointData;
      const gw4 = net.ipv4[0]?.gateway?.split('/')[0];
      const gw6 = net.ipv6[0]?.gateway?.split('/')[0];
      return {
        InterfaceName: { SrcName: data.containerIfname!, DstPrefix: config.ifacePrefix },
        ...(config.internal ? { DisableGatewayService: true } : {}),
        ...(!config.internal && gw4 ? { Gateway: gw4 } : {}),
        ...(!config.internal && gw6 && ep.ipv6 ? { GatewayIPv6: gw6 } : {}),
      };
    },
    leave(req: EndpointRequest) {
      controller.dockerEndpoint(req.EndpointID);
    },
    async programExternalConnectivity(req: ProgramExternalConnectivityRequest) {
      const ports = parsePortBindings(req.Options?.['com.docker.network.portmap'], 'com.docker.network.portmap');
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

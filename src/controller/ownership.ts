// Who may change what: networks and endpoints the Docker engine created through the plugin are
// the engine's (cnmkit's API and CLI may not remove them, nor join them), the others are cnmkit's
// own (the engine may not touch them). And the one subnet check every new network passes,
// whichever front end asked: no subnet of it overlaps a subnet of another network.
import { ConflictError, NotOwnerError } from '../errors.js';
import { overlaps, parseNetwork, parsePrefix, type Prefix } from '../ip/index.js';
import type { EndpointRecord, NetworkRecord } from '../core/model.js';
import { shortId } from '../core/refs.js';

/** Who asks: cnmkit's management API (the CLI, people) or the Docker engine through the plugin. */
export type Origin = 'api' | 'docker';

export const originOf = (o: { dockerId?: string }): Origin => (o.dockerId === undefined ? 'api' : 'docker');


/** Refuses to remove a network that another front end created; the message says how its owner removes it. */
export function checkNetworkRemoval(net: NetworkRecord, origin: Origin): void {
  if (originOf(net) === origin) return;
  if (net.dockerId !== undefined) {
    throw new NotOwnerError(
      `network ${net.name} belongs to the Docker engine, which created it through the cnmkit-bridge plugin: ` +
        `remove it with \`docker network rm ${shortId(net.dockerId)}\` (docker network rm NAME-or-ID)`,
    );
  }
  throw new NotOwnerError(`network ${net.name} was created through cnmkit's API, not by the Docker engine: the engine cannot remove it`);
}

/** Refuses to remove an endpoint that another front end created. */
export function checkEndpointRemoval(ep: EndpointRecord, net: NetworkRecord | undefined, origin: Origin): void {
  if (originOf(ep) === origin) return;
  const on = net ? ` on network ${net.name}` : '';
  if (ep.dockerId !== undefined) {
    const network = net?.dockerId === undefined ? 'NETWORK' : shortId(net.dockerId);
    throw new NotOwnerError(`endpoint ${ep.name}${on} belongs to the Docker engine: disconnect its container with \`docker network disconnect ${network} CONTAINER\``);
  }
  throw new NotOwnerError(`endpoint ${ep.name}${on} was created through cnmkit's API, not by the Docker engine: the engine cannot remove it`);
}

/** cnmkit's sandboxes join only cnmkit's networks: the engine would remove its network under them. */
export function checkJoinable(net: NetworkRecord): void {
  if (net.dockerId === undefined) return;
  throw new NotOwnerError(
    `network ${net.name} belongs to the Docker engine: cnmkit sandboxes cannot join it (containers join it with \`docker network connect ${shortId(net.dockerId)} CONTAINER\`)`,
  );
}

/** Endpoints of the engine go only on the engine's networks. */
export function checkDockerNetwork(net: NetworkRecord): void {
  if (net.dockerId !== undefined) return;
  throw new NotOwnerError(`network ${net.name} was created through cnmkit's API, not by the Docker engine: the engine cannot add endpoints to it`);
}

function storedPrefix(net: NetworkRecord, subnet: string): { net: NetworkRecord; subnet: string; prefix: Prefix }[] {
  try {
    return [{ net, subnet, prefix: parseNetwork('subnet', subnet) }];
  } catch {
    return [];
  }
}

/**
 * The overlap check for every network: a subnet of net that overlaps (or equals) a subnet of
 * another network is refused, naming that network and its subnet. Stored subnets are read
 * leniently, so that one odd record cannot block every later network.
 */
export function refuseOverlaps(net: NetworkRecord, networks: readonly NetworkRecord[]): void {
  const others = networks.filter((n) => n.id !== net.id).flatMap((n) => [...n.ipv4, ...n.ipv6].flatMap((s) => storedPrefix(n, s.subnet)));
  for (const mine of [...net.ipv4, ...net.ipv6]) {
    const prefix = parsePrefix('subnet', mine.subnet);
    const hit = others.find((o) => overlaps(prefix, o.prefix));
    if (hit) {
      throw new ConflictError(`subnet: ${prefix.text} overlaps the subnet ${hit.subnet} of network ${JSON.stringify(hit.net.name)}`, { field: 'subnet' });
    }
  }
}

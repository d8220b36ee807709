// Readable names for the owner tags that lower layers keep (IPAM pools and addresses, port
// leases): "network:ID" → network "mynet", "endpoint:ID" → sandbox "web" on network "mynet", and
// the Docker IPAM plugin's "docker:…" tags → the engine's network that uses the subnet (or its
// container's endpoint). Injected into those layers by the daemon; reads the store at each call,
// which only messages make. Unknown tags give undefined (the caller shows the tag).
import type { DescribeOwner, OwnerContext } from '../ipam/index.js';
import type { Store } from '../store/index.js';
import type { EndpointRecord, NetworkRecord } from '../core/model.js';
import { shortId } from '../core/refs.js';

const quote = JSON.stringify;

export function describeNetwork(net: NetworkRecord): string {
  return `network ${quote(net.name)}`;
}

/** sandbox "web" on network "mynet"; a Docker endpoint by its short id (cnmkit never learns container names). */
export function describeEndpoint(store: Store, ep: EndpointRecord): string {
  const net = store.networks.get(ep.networkId);
  const on = net ? ` on ${describeNetwork(net)}` : '';
  const sb = ep.sandboxId === undefined ? undefined : store.sandboxes.get(ep.sandboxId);
  if (sb) return `sandbox ${quote(sb.name)}${on}`;
  if (ep.dockerId !== undefined) return `the Docker container endpoint ${shortId(ep.dockerId)}${on}`;
  return `endpoint ${quote(ep.name)}${on}`;
}

const plain = (cidr: string | undefined): string | undefined => cidr?.split('/')[0];

/** The Docker IPAM plugin's tags say only "the engine": its network is the one with the subnet, its container the endpoint with the address. */
function dockerHolder(store: Store, where: OwnerContext): string {
  const net = store.networks.list().find((n) => n.dockerId !== undefined && [...n.ipv4, ...n.ipv6].some((s) => s.subnet === where.subnet));
  if (!net) return 'a network of the Docker engine';
  const ep = where.address === undefined ? undefined
    : store.endpoints.listWhere('network_id', net.id).find((e) => plain(e.ipv4) === where.address || plain(e.ipv6) === where.address);
  return ep ? describeEndpoint(store, ep) : `the Docker engine's ${describeNetwork(net)}`;
}

/** The resolver IPAM takes: owner tag → words. */
export function ownerNames(store: Store): DescribeOwner {
  return (tag, where) => {
    const colon = tag.indexOf(':');
    const kind = tag.slice(0, colon);
    const id = tag.slice(colon + 1);
    if (kind === 'network') {
      const net = store.networks.get(id);
      return net && describeNetwork(net);
    }
    if (kind === 'endpoint') {
      const ep = store.endpoints.get(id);
      return ep && describeEndpoint(store, ep);
    }
    return kind === 'docker' ? dockerHolder(store, where) : undefined;
  };
}

/** The resolver port leases take: their owner is an endpoint id. */
export function endpointNames(store: Store): (id: string) => string | undefined {
  return (id) => {
    const ep = store.endpoints.get(id);
    return ep && describeEndpoint(store, ep);
  };
}

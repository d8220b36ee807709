// Published ports of a bridge endpoint: DNAT to the container's IPv4 address through the shared
// publisher (allocator, userland proxy, firewall). Internal networks publish nothing.
import { InvalidArgumentError } from '../../src/errors.js';
import type { EndpointRecord, NetworkRecord } from '../../src/core/model.js';
import type { PortSpec } from '../../src/portmap/index.js';
import type { PortPublisher } from '../../src/portmap/publisher.js';
import type { BridgeConfig } from './config.js';

export function publishPorts(
  ports: PortPublisher, bridge: string, net: NetworkRecord, config: BridgeConfig, ep: EndpointRecord, specs: PortSpec[],
): Promise<PortSpec[]> {
  if (config.internal) throw new InvalidArgumentError('ports', `network ${net.name} is internal: it cannot publish ports`);
  const containerIP = ep.ipv4?.split('/')[0];
  if (!containerIP) throw new InvalidArgumentError('ports', `the endpoint on network ${net.name} has no IPv4 address to publish to`);
  return ports.publish({ owner: ep.id, containerIP, bridge, defaultHostIP: config.hostBindingIPv4 }, specs);
}

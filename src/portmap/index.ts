// Port publishing outside the firewall: `-p` and PortBinding parsing, host port allocation, and
// the in-process userland proxy. Kernel DNAT rules live in src/firewall, not here.
export {
  PROTOS,
  PROTO_NUMBERS,
  canonicalIP,
  formatPortSpec,
  hostIPsOverlap,
  parsePortBinding,
  parsePortBindings,
  parsePublish,
  validatePortSpec,
  type DockerPortBinding,
  type PortSpec,
  type Proto,
} from './spec.js';
export {
  EPHEMERAL_RANGE_FILE,
  FALLBACK_EPHEMERAL_RANGE,
  PortAllocator,
  readEphemeralRange,
  type LeaseChange,
  type PortAllocatorOptions,
  type PortLease,
  type PortRange,
} from './allocator.js';
export { UserlandProxy, type ProxyMapping, type ProxyStats, type PublishedMapping, type UserlandProxyOptions } from './proxy.js';
export { proxyFlagOptions, resolveProxyLimits, type ProxyLimitOptions, type ProxyLimits } from './limits.js';
export type { Logger } from './log.js';

// The bridge driver's parse step: Docker's bridge options (PROTOCOL.md §4), and cnmkit's own
// `cnmkit.bridge.mcast_snooping`, validated into a typed config before anything touches the
// kernel. Unknown keys are refused, naming the key.
import { isIPv4 } from 'node:net';
import { InvalidArgumentError } from '../../src/errors.js';
import type { NetworkParseInput } from '../../src/contract/driver.js';
import { validateIfname } from '../../src/netns/index.js';
import { MTU_OPTION, mtuOption, refuseUnknownOptions } from '../../src/contract/options.js';

export const OPT = {
  name: 'com.docker.network.bridge.name',
  icc: 'com.docker.network.bridge.enable_icc',
  masquerade: 'com.docker.network.bridge.enable_ip_masquerade',
  hostBinding: 'com.docker.network.bridge.host_binding_ipv4',
  inhibitIPv4: 'com.docker.network.bridge.inhibit_ipv4',
  mtu: MTU_OPTION,
  ifacePrefix: 'com.docker.network.container_iface_prefix',
  hostIPv4: 'com.docker.network.host_ipv4',
  /** cnmkit's own: IGMP/MLD snooping on the bridge (default false). */
  mcastSnooping: 'cnmkit.bridge.mcast_snooping',
} as const;

export interface BridgeConfig {
  /** The bridge device; decided at creation (`br-` + 12 hex of the id) when not given. */
  bridgeName?: string;
  icc: boolean;
  masquerade: boolean;
  /** Default host address for published ports ('' = every address). */
  hostBindingIPv4: string;
  /** Do not put the gateway address on the bridge (someone else manages it). */
  inhibitIPv4: boolean;
  mtu?: number;
  /** Container interface names: PREFIX0, PREFIX1, … */
  ifacePrefix: string;
  /** SNAT source for outgoing traffic instead of MASQUERADE. */
  hostIPv4?: string;
  internal: boolean;
  enableIPv6: boolean;
  /**
   * IGMP/MLD snooping on a bridge cnmkit creates. Off by default: without a multicast querier
   * (a container network has none) snooping can stop multicast such as IPv6 neighbour discovery,
   * and it costs the kernel work on every port of the bridge each time a port is added.
   */
  mcastSnooping: boolean;
  /** Set by the plan, before any kernel change: the bridge existed before (adopted), so deleting the network keeps it. */
  adopted?: boolean;
  /** Set by the plan for an adopted bridge: the addresses it had, which deleting the network keeps. */
  keptAddresses?: string[];
}

function bool(options: Record<string, string>, key: string, dflt: boolean): boolean {
  const v = options[key];
  if (v === undefined) return dflt;
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  throw new InvalidArgumentError(key, `expected true or false, got ${JSON.stringify(v)}`);
}

function ipv4(options: Record<string, string>, key: string): string | undefined {
  const v = options[key];
  if (v === undefined || v === '') return undefined;
  if (!isIPv4(v)) throw new InvalidArgumentError(key, `expected an IPv4 address, got ${JSON.stringify(v)}`);
  return v;
}

export function parseBridgeConfig(input: NetworkParseInput): BridgeConfig {
  refuseUnknownOptions(input.options, Object.values(OPT), 'bridge');
  const o = input.options;
  const prefix = o[OPT.ifacePrefix] ?? 'eth';
  if (!/^[a-z][a-z0-9_-]{0,9}$/i.test(prefix)) throw new InvalidArgumentError(OPT.ifacePrefix, `expected 1–10 letters, digits, '_' or '-', starting with a letter, got ${JSON.stringify(prefix)}`);
  const config: BridgeConfig = {
    icc: bool(o, OPT.icc, true),
    masquerade: bool(o, OPT.masquerade, true),
    hostBindingIPv4: ipv4(o, OPT.hostBinding) ?? '',
    inhibitIPv4: bool(o, OPT.inhibitIPv4, false),
    ifacePrefix: prefix,
    internal: input.internal,
    enableIPv6: input.enableIPv6,
    mcastSnooping: bool(o, OPT.mcastSnooping, false),
  };
  if (o[OPT.name] !== undefined) config.bridgeName = validateIfname(o[OPT.name], OPT.name);
  const m = mtuOption(o, input.enableIPv6);
  if (m !== undefined) config.mtu = m;
  const snat = ipv4(o, OPT.hostIPv4);
  if (snat !== undefined) config.hostIPv4 = snat;
  return config;
}

/** Docker's name for a user bridge: `br-` and the first 12 hex digits of the network id. */
export function bridgeNameFor(networkId: string): string {
  return `br-${networkId.slice(0, 12)}`;
}

// The overlay driver's parse step: Docker's overlay options (`vxlanid_list`, the MTU) and cnmkit's
// own UDP port, checked before anything is asked of the cluster or the kernel (an empty value is
// refused, as is an MTU below IPv6's 1280 on a network with IPv6). `-o encrypted` is
// refused: this kernel has no ESP, so an encrypted overlay could not be made or tested here.
import { InvalidArgumentError } from '../../src/errors.js';
import type { NetworkParseInput } from '../../src/contract/driver.js';
import { MTU_OPTION, mtuOption, refuseUnknownOptions } from '../../src/contract/options.js';

export const OPT = {
  vni: 'com.docker.network.driver.overlay.vxlanid_list',
  mtu: MTU_OPTION,
  port: 'cnmkit.overlay.port',
  encrypted: 'encrypted',
} as const;

export const DEFAULT_PORT = 4789;
/** VXLAN over IPv4 costs 50 bytes: outer IPv4 (20), UDP (8), VXLAN (8), inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;

export interface OverlayConfig {
  /** Asked for with vxlanid_list; the cluster's choice (4096 up) is recorded after creation. */
  vni?: number;
  port: number;
  /** Given with com.docker.network.driver.mtu; otherwise the advertise interface's MTU − 50 at each host. */
  mtu?: number;
  internal: boolean;
  enableIPv6: boolean;
  /** Set when this host created the network: its devices stay while the network exists here, endpoints or not. */
  createdHere?: boolean;
}

function integer(options: Record<string, string>, key: string, min: number, max: number, what: string): number | undefined {
  const v = options[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(key, `expected ${what} between ${min} and ${max}, got ${JSON.stringify(v)}`);
  return n;
}

export function parseOverlayConfig(input: NetworkParseInput): OverlayConfig {
  const known = Object.values(OPT);
  refuseUnknownOptions(input.options, known, 'overlay', known.filter((k) => k !== OPT.encrypted));
  const o = input.options;
  if (o[OPT.encrypted] !== undefined) {
    throw new InvalidArgumentError(OPT.encrypted, 'encrypted overlays are not supported: this kernel has no IPsec ESP (nor AEAD GCM or WireGuard) to encrypt VXLAN with');
  }
  const list = o[OPT.vni];
  if (list !== undefined && list.includes(',')) throw new InvalidArgumentError(OPT.vni, `one VXLAN id per network (one subnet), got ${JSON.stringify(list)}`);
  const vni = integer(o, OPT.vni, 1, 16_777_215, 'a VXLAN id');
  const port = integer(o, OPT.port, 1, 65_535, 'a UDP port') ?? DEFAULT_PORT;
  const mtuValue = mtuOption(o, input.enableIPv6);
  return {
    ...(vni !== undefined ? { vni } : {}), port, ...(mtuValue !== undefined ? { mtu: mtuValue } : {}),
    internal: input.internal, enableIPv6: input.enableIPv6,
  };
}

/** The options the cluster compares between hosts creating the same name: the ones that change the wire. */
export function clusterOptions(config: OverlayConfig): Record<string, string> {
  return { [OPT.port]: String(config.port), ...(config.mtu !== undefined ? { [OPT.mtu]: String(config.mtu) } : {}) };
}

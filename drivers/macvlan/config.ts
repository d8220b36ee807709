// The macvlan driver's parse step: Docker's macvlan options (`parent`, `macvlan_mode`, the generic
// `com.docker.network.driver.mtu`), validated into a typed config before anything touches the
// kernel. Unknown keys are refused, naming the key; what the parent is on the host is the plan's.
import { InvalidArgumentError } from '../../src/errors.js';
import type { NetworkParseInput } from '../../src/contract/driver.js';
import { validateIfname } from '../../src/netns/index.js';
import { MTU_OPTION, mtuOption, refuseUnknownOptions } from '../../src/contract/options.js';

export const OPT = {
  parent: 'parent',
  mode: 'macvlan_mode',
  mtu: MTU_OPTION,
} as const;

export const MODES = ['bridge', 'private', 'vepa', 'passthru'] as const;
export type Mode = (typeof MODES)[number];

/** What a network's parent is, once planned: made by cnmkit (and deleted with the network) or not. */
export type ParentOrigin = 'host' | 'vlan' | 'bridge';

export interface MacvlanConfig {
  /** The host interface as given (`-o parent=`); undefined: none, cnmkit makes a bridge of its own. */
  parent?: string;
  mode: Mode;
  /** The endpoints' MTU; undefined: the parent's. */
  mtu?: number;
  internal: boolean;
  enableIPv6: boolean;
  /** Set by the plan: the device the endpoints hang from (the parent, or cnmkit's bridge `mv-` + 12 hex of the id). */
  parentName?: string;
  /** Set by the plan: 'host' (someone else's, stays), 'vlan' (an 802.1Q link cnmkit makes) or 'bridge' (cnmkit's own, no parent given). */
  origin?: ParentOrigin;
}

export function parseMacvlanConfig(input: NetworkParseInput): MacvlanConfig {
  refuseUnknownOptions(input.options, Object.values(OPT), 'macvlan');
  const o = input.options;
  const mode = o[OPT.mode] === undefined || o[OPT.mode] === '' ? 'bridge' : o[OPT.mode]!;
  if (!(MODES as readonly string[]).includes(mode)) {
    throw new InvalidArgumentError(OPT.mode, `requested macvlan mode ${JSON.stringify(mode)} is not valid (${MODES.join(', ')}; 'bridge' is the default)`);
  }
  const config: MacvlanConfig = { mode: mode as Mode, internal: input.internal, enableIPv6: input.enableIPv6 };
  const parent = o[OPT.parent];
  if (parent !== undefined && parent !== '') {
    config.parent = validateIfname(parent, OPT.parent);
    if (config.parent === 'lo') throw new InvalidArgumentError(OPT.parent, 'the loopback interface is not a valid macvlan parent');
  }
  const m = mtuOption(o, input.enableIPv6);
  if (m !== undefined) config.mtu = m;
  return config;
}

/** The bridge cnmkit makes for a network without a parent: `mv-` and 12 hex digits of the network id. */
export function ownBridgeNameFor(networkId: string): string {
  return `mv-${networkId.slice(0, 12)}`;
}

/** `eth0.10` as { base: 'eth0', id: 10 }; undefined for a name not of that form (Docker's rule). */
export function vlanOf(name: string): { base: string; id: number } | undefined {
  const parts = name.split('.');
  if (parts.length !== 2 || parts[0] === '' || !/^\d+$/.test(parts[1]!)) return undefined;
  return { base: parts[0]!, id: Number(parts[1]) };
}

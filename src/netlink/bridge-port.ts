// Settings of a bridge's port (hairpin, learning) through rtnetlink's AF_BRIDGE link messages.
// Limits: only the two flags cnmkit sets; the nested IFLA_PROTINFO is built by hand (the package does not nest it).
import { rt } from 'netlink';
import type { NetlinkHandle } from './handle.js';
import { linkIndex } from './links.js';
import { validateBoolean, type LinkRef } from './validate.js';

const AF_BRIDGE = 7;
const IFLA_PROTINFO = 12;
const IFLA_BRPORT_MODE = 4;
const IFLA_BRPORT_LEARNING = 8;
const NLA_F_NESTED = 0x8000;

/** Settings of a bridge port; what is left out is not changed. */
export interface BridgePortSpec {
  /** Hairpin mode: frames may leave by the port they came in on. */
  hairpin?: boolean;
  /** The bridge learns source MACs of frames that come in by this port. */
  learning?: boolean;
}

/**
 * Changes settings of a bridge port.
 * Equivalent to: `bridge link set dev DEV [hairpin on|off] [learning on|off]`
 */
export async function setBridgePort(h: NetlinkHandle, ref: LinkRef, spec: BridgePortSpec): Promise<void> {
  const index = await linkIndex(h, ref, 'link');
  const flags: [number, boolean][] = [];
  const hairpin = validateBoolean(spec.hairpin, 'hairpin');
  const learning = validateBoolean(spec.learning, 'learning');
  if (hairpin !== undefined) flags.push([IFLA_BRPORT_MODE, hairpin]);
  if (learning !== undefined) flags.push([IFLA_BRPORT_LEARNING, learning]);
  if (flags.length === 0) return;
  // IFLA_PROTINFO (nested) { u8 attributes, each padded to 8 bytes }, built by hand: the package does not nest it.
  const protinfo = Buffer.alloc(4 + 8 * flags.length);
  protinfo.writeUInt16LE(protinfo.length, 0);
  protinfo.writeUInt16LE(IFLA_PROTINFO | NLA_F_NESTED, 2);
  flags.forEach(([type, on], n) => {
    protinfo.writeUInt16LE(5, 4 + 8 * n);
    protinfo.writeUInt16LE(type, 6 + 8 * n);
    protinfo.writeUInt8(on ? 1 : 0, 8 + 8 * n);
  });
  const said = flags.map(([type, on]) => `${type === IFLA_BRPORT_MODE ? 'hairpin' : 'learning'} ${on ? 'on' : 'off'}`).join(' ');
  await h.request(`bridge link set ${ref} ${said}`, rt.MessageType.SETLINK, [rt.formatLink({ family: AF_BRIDGE, index }), protinfo]);
}

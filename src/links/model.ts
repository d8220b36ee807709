// Point-to-point links as stored: a veth pair whose two ends sit in two sandboxes of one daemon,
// with their names, addresses, MTU and shaping. The state says whether the kernel may hold a
// half-made pair ('creating', 'deleting'), which reconcile removes.
import type { ObjectState } from '../cnm/model.js';

export interface LinkEndRecord {
  sandboxId: string;
  /** Interface name inside that sandbox. */
  ifname: string;
  /** CIDR. */
  address?: string;
  macAddress?: string;
}

/** Shaping of both ends' egress: tbf for rate alone, netem when delay, jitter or loss are asked. */
export interface LinkShaping {
  rate?: string;
  delay?: string;
  jitter?: string;
  loss?: string;
}

export interface LinkRecord {
  id: string;
  name: string;
  ends: [LinkEndRecord, LinkEndRecord];
  mtu?: number;
  shaping: LinkShaping;
  labels: Record<string, string>;
  state: ObjectState;
  created: string;
}

// The etcd key layout, versioned under the prefix (see KEYS.md): builds keys and prefixes, and
// parses a key back into its parts. Pure; names and ids are checked so no part holds a '/'.
import { InvalidArgumentError } from '../errors.js';

export const LAYOUT_VERSION = 'v1';

/** The one place key paths are spelled. */
export class Keys {
  readonly root: string;

  constructor(prefix: string) {
    this.root = `${prefix}/${LAYOUT_VERSION}/`;
  }

  hosts(): string {
    return `${this.root}hosts/`;
  }
  host(hostId: string): string {
    return this.hosts() + part('host id', hostId);
  }
  networks(): string {
    return `${this.root}networks/`;
  }
  network(name: string): string {
    return this.networks() + part('network', name);
  }
  members(network: string): string {
    return `${this.root}members/${part('network', network)}/`;
  }
  member(network: string, hostId: string): string {
    return this.members(network) + part('host id', hostId);
  }
  vnis(): string {
    return `${this.root}vni/`;
  }
  vni(vni: number): string {
    return this.vnis() + String(vni);
  }
  pools(): string {
    return `${this.root}ipam/pools/`;
  }
  pool(poolId: string): string {
    return this.pools() + encodeCidr(poolId);
  }
  addresses(poolId: string): string {
    return `${this.root}ipam/addresses/${encodeCidr(poolId)}/`;
  }
  address(poolId: string, ip: string): string {
    return this.addresses(poolId) + part('address', ip);
  }
  /** Requests for other hosts' spare addresses (wanted.ts). */
  wanted(): string {
    return `${this.root}ipam/wanted/`;
  }
  wantedAddress(poolId: string, ip: string): string {
    return `${this.wanted()}${encodeCidr(poolId)}/${part('address', ip)}`;
  }
  /** Claims of given MACs (macs.ts). */
  macs(network: string): string {
    return `${this.root}macs/${part('network', network)}/`;
  }
  mac(network: string, mac: string): string {
    return this.macs(network) + part('mac', mac);
  }
  peers(network: string): string {
    return `${this.root}peers/${part('network', network)}/`;
  }
  hostPeers(network: string, hostId: string): string {
    return `${this.peers(network)}${part('host id', hostId)}/`;
  }
  peer(network: string, hostId: string, endpointId: string): string {
    return this.hostPeers(network, hostId) + part('endpoint id', endpointId);
  }

  /** The parts after a prefix this class built, e.g. peers/NET/ → [HOST, ENDPOINT]. */
  split(prefix: string, key: string): string[] | undefined {
    if (!key.startsWith(prefix)) return undefined;
    return key.slice(prefix.length).split('/');
  }
}

/** A pool id (CIDR) as one key segment: 198.19.0.0/24 → 198.19.0.0_24. */
export function encodeCidr(cidr: string): string {
  const [addr, len, ...rest] = cidr.split('/');
  if (!addr || len === undefined || rest.length > 0 || !/^[0-9]{1,3}$/.test(len)) throw new InvalidArgumentError('pool', `${JSON.stringify(cidr)} is not a CIDR`);
  return `${part('pool', addr)}_${len}`;
}

export function decodeCidr(segment: string): string {
  const at = segment.lastIndexOf('_');
  return `${segment.slice(0, at)}/${segment.slice(at + 1)}`;
}

/** The end of the range that holds every key starting with prefix (etcd's prefix range_end). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    const byte = end[i]!;
    if (byte < 0xff) {
      end[i] = byte + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function part(what: string, value: string): string {
  if (value === '' || value.includes('/') || value.length > 255 || /[\x00-\x1f]/.test(value)) {
    throw new InvalidArgumentError(what, `${JSON.stringify(value)} cannot be a key segment (empty, '/', control characters or too long)`);
  }
  return value;
}

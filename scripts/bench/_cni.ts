// The CNI reference bridge plugin (Debian's containernetworking-plugins) driven as a runtime does:
// one exec per ADD or DEL, config on stdin, CNI_* in the environment, run in a namespace that
// stands for the host (`nsenter --net`). IPAM is host-local with its dataDir in a temporary folder.
// CniBridge runs the bridge plugin, CniMacvlan the macvlan plugin (on a master in the host namespace,
// the gateway's default route from host-local's routes).
// Limits: bridge or macvlan + host-local only, IPv4 only, one attachment (eth0) per namespace.
import fs from 'node:fs';
import { exec } from './_procs.js';

export const CNI_DIR = '/usr/lib/cni';

export function cniMissing(plugins: string[] = ['bridge', 'host-local']): string | undefined {
  const gone = plugins.map((p) => `${CNI_DIR}/${p}`).filter((f) => !fs.existsSync(f));
  return gone.length === 0 ? undefined : `${gone.join(', ')} missing: apt-get install containernetworking-plugins (listed in scripts/setup)`;
}

export interface CniBridgeOptions {
  hostNsPath: string;
  bridge: string;
  subnet: string;
  dataDir: string;
  /** The CNI network name (host-local keeps its leases in dataDir/NAME); default cnmkit-bench. */
  network?: string;
}

/** One CNI plugin (PLUGIN) with one network config, run as a runtime runs it. */
class CniPlugin {
  constructor(readonly plugin: string, readonly opts: { hostNsPath: string }, private readonly config: string) {}

  /** Runs the plugin once; throws with its output unless it exits 0. */
  async call(command: 'ADD' | 'DEL', containerId: string, netnsPath: string): Promise<void> {
    const env = {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netnsPath,
      CNI_IFNAME: 'eth0', CNI_PATH: CNI_DIR,
    };
    const r = await exec(['nsenter', `--net=${this.opts.hostNsPath}`, '--', `${CNI_DIR}/${this.plugin}`], { input: this.config, env, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`CNI ${this.plugin} ${command} ${containerId} exited ${r.code}: ${(r.stdout.trim() || r.stderr.trim()).slice(0, 1000)}`);
  }

  /** The floor of one call: spawning nsenter into the host namespace and a trivial program. */
  async spawnFloor(): Promise<void> {
    const r = await exec(['nsenter', `--net=${this.opts.hostNsPath}`, '--', '/bin/true']);
    if (r.code !== 0) throw new Error(`nsenter /bin/true exited ${r.code}`);
  }
}

export class CniBridge extends CniPlugin {
  constructor(override readonly opts: CniBridgeOptions) {
    super('bridge', opts, JSON.stringify({
      cniVersion: '1.0.0', name: opts.network ?? 'cnmkit-bench', type: 'bridge', bridge: opts.bridge, isGateway: true, ipMasq: true,
      ipam: { type: 'host-local', subnet: opts.subnet, dataDir: opts.dataDir },
    }));
  }
}

export interface CniMacvlanOptions {
  hostNsPath: string;
  /** The parent interface in the host namespace. */
  master: string;
  subnet: string;
  gateway: string;
  dataDir: string;
}

/** The macvlan plugin in bridge mode; host-local gives the address and the default route via the gateway (as cnmkit's join). */
export class CniMacvlan extends CniPlugin {
  constructor(override readonly opts: CniMacvlanOptions) {
    super('macvlan', opts, JSON.stringify({
      cniVersion: '1.0.0', name: 'cnmkit-bench', type: 'macvlan', master: opts.master, mode: 'bridge',
      ipam: { type: 'host-local', subnet: opts.subnet, gateway: opts.gateway, routes: [{ dst: '0.0.0.0/0' }], dataDir: opts.dataDir },
    }));
  }
}

// The CNI reference bridge plugin (Debian's containernetworking-plugins) driven as a runtime does:
// one exec per ADD or DEL, config on stdin, CNI_* in the environment, run in a namespace that
// stands for the host (`nsenter --net`). IPAM is host-local with its dataDir in a temporary folder.
// Limits: bridge + host-local only, IPv4 only, one attachment (eth0) per namespace.
import fs from 'node:fs';
import { exec } from './_procs.js';

export const CNI_DIR = '/usr/lib/cni';

export function cniMissing(): string | undefined {
  const gone = ['bridge', 'host-local'].map((p) => `${CNI_DIR}/${p}`).filter((f) => !fs.existsSync(f));
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

export class CniBridge {
  private readonly config: string;

  constructor(readonly opts: CniBridgeOptions) {
    this.config = JSON.stringify({
      cniVersion: '1.0.0', name: opts.network ?? 'cnmkit-bench', type: 'bridge', bridge: opts.bridge, isGateway: true, ipMasq: true,
      ipam: { type: 'host-local', subnet: opts.subnet, dataDir: opts.dataDir },
    });
  }

  /** Runs the plugin once; throws with its output unless it exits 0. */
  async call(command: 'ADD' | 'DEL', containerId: string, netnsPath: string): Promise<void> {
    const env = {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netnsPath,
      CNI_IFNAME: 'eth0', CNI_PATH: CNI_DIR,
    };
    const r = await exec(['nsenter', `--net=${this.opts.hostNsPath}`, '--', `${CNI_DIR}/bridge`], { input: this.config, env, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`CNI bridge ${command} ${containerId} exited ${r.code}: ${(r.stdout.trim() || r.stderr.trim()).slice(0, 1000)}`);
  }

  /** The floor of one call: spawning nsenter into the host namespace and a trivial program. */
  async spawnFloor(): Promise<void> {
    const r = await exec(['nsenter', `--net=${this.opts.hostNsPath}`, '--', '/bin/true']);
    if (r.code !== 0) throw new Error(`nsenter /bin/true exited ${r.code}`);
  }
}

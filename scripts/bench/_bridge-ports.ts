// Publishing port ranges, for the bridge benchmark: cnmkit (connect with `ports`, then disconnect,
// seven times, then sandbox rm, each call timed at the API client, the daemon's RSS and process count
// read from /proc) and Docker 20.10 (`docker run -d -p RANGE`, then `docker rm -f`, with its
// docker-proxy children counted and their memory summed).
// Limits: one run per figure (the Docker side takes minutes); connect times include creating and
// joining the endpoint, so the connect without ports is measured too and subtracted where shown.
import { BenchDaemon } from './_cnmkitd.js';
import { BUSYBOX_IMAGE as IMAGE, Dockerd } from '../../test/helpers/engine.js';
import { addHostNs, checkInterrupt, childrenNamed, exec, pssKiB, quantile, rssKiB, timed } from './_procs.js';

export interface CnmkitPortRun {
  count: number;
  /** The daemon's first publish of this count (cold code paths), then the median of REPEATS. */
  firstPublishMs: number;
  publishMs: number;
  firstUnpublishMs: number;
  unpublishMs: number;
  sandboxRmMs: number;
  rssBeforeKiB: number;
  rssPublishedKiB: number;
  rssAfterKiB: number;
  listeners: number;
  processes: number;
}

export interface CnmkitPorts {
  proxy: boolean;
  firewall: string;
  /** Median connect and disconnect of an endpoint without ports (the fixed part of a publish call). */
  bareConnectMs: number;
  bareDisconnectMs: number;
  runs: CnmkitPortRun[];
}

/** Publish/unpublish cycles per count; the median is the figure, the first one is shown beside it. */
const REPEATS = 7;

const range = (count: number): string => `20000-${20000 + count - 1}:20000-${20000 + count - 1}`;

/** Listening TCP sockets on ports 20000-29999 in the namespace (the proxy's, when it is on). */
async function listenersIn(nsPath: string): Promise<number> {
  const r = await exec(['nsenter', `--net=${nsPath}`, '--', 'ss', '-Htln', 'sport >= :20000 and sport <= :29999']);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
}

/** One daemon (proxy on or off) in its own host namespace; every count in PORT_COUNTS published and removed both ways. */
export async function measureCnmkitPorts(prefix: string, proxy: boolean, counts: number[], firewall: string): Promise<CnmkitPorts> {
  const hostName = `${prefix}-ph${proxy ? 1 : 0}`;
  let daemon: BenchDaemon | undefined;
  try {
    const hostNs = await addHostNs(hostName);
    daemon = new BenchDaemon(hostNs, `${prefix}-ps`, ['--userland-proxy', String(proxy), '--firewall-backend', firewall]);
    const d = daemon;
    await d.start();
    await d.request('POST', '/v1/networks', { name: 'pubnet', subnet: '198.18.32.0/24' });
    const net = '/v1/networks/pubnet';
    const base = `${prefix}-ps-base`;
    await d.request('POST', '/v1/sandboxes', { name: base });
    const bareConnect: number[] = [];
    const bareDisconnect: number[] = [];
    for (let i = 0; i < 7; i++) {
      bareConnect.push((await timed(() => d.request('POST', `${net}/connect`, { sandbox: base }))).ms);
      bareDisconnect.push((await timed(() => d.request('POST', `${net}/disconnect`, { sandbox: base }))).ms);
    }
    await d.request('DELETE', `/v1/sandboxes/${base}`);
    const runs: CnmkitPortRun[] = [];
    for (const count of counts) {
      checkInterrupt();
      const sb = `${prefix}-ps-${count}`;
      await d.request('POST', '/v1/sandboxes', { name: sb });
      const body = { sandbox: sb, ports: [range(count)] };
      const rssBeforeKiB = d.rssKiB();
      const publish: number[] = [];
      const unpublish: number[] = [];
      let rssPublishedKiB = 0;
      let processes = 0;
      let listeners = 0;
      for (let k = 0; k < REPEATS; k++) {
        publish.push((await timed(() => d.request('POST', `${net}/connect`, body))).ms);
        if (k === 0) {
          rssPublishedKiB = d.rssKiB();
          processes = d.processCount();
          listeners = await listenersIn(hostNs);
        }
        unpublish.push((await timed(() => d.request('POST', `${net}/disconnect`, { sandbox: sb }))).ms);
        const left = await listenersIn(hostNs);
        if (left !== 0) throw new Error(`${left} listeners left on 20000-29999 after disconnect (${count} ports)`);
      }
      await d.request('POST', `${net}/connect`, body);
      const rm = await timed(() => d.request('DELETE', `/v1/sandboxes/${sb}`));
      runs.push({
        count, firstPublishMs: publish[0]!, publishMs: quantile(publish, 0.5), firstUnpublishMs: unpublish[0]!, unpublishMs: quantile(unpublish, 0.5),
        sandboxRmMs: rm.ms, rssBeforeKiB, rssPublishedKiB, rssAfterKiB: d.rssKiB(), listeners, processes,
      });
    }
    return { proxy, firewall: d.firewall, bareConnectMs: quantile(bareConnect, 0.5), bareDisconnectMs: quantile(bareDisconnect, 0.5), runs };
  } finally {
    await daemon?.cleanup();
    await exec(['ip', 'netns', 'del', hostName]);
  }
}

export interface DockerPorts {
  count: number;
  version: string;
  bareRunMs: number;
  bareRmMs: number;
  publishMs: number;
  removeMs: number;
  proxies: number;
  proxiesRssKiB: number;
  proxiesPssKiB: number;
  dockerdRssBeforeKiB: number;
  dockerdRssPublishedKiB: number;
  proxiesAfterRm: number;
}

/** Docker with its default userland proxy: a container without ports, then one publishing count ports. */
export async function measureDockerPorts(prefix: string, count: number): Promise<DockerPorts> {
  const hostName = `${prefix}-dh`;
  let engine: Dockerd | undefined;
  try {
    engine = await Dockerd.start({ path: await addHostNs(hostName) }, { args: ['--bip', '198.19.0.1/24', '--default-address-pool', 'base=198.19.128.0/17,size=24'], logLevel: 'warn' });
    const dockerd = engine;
    const pid = dockerd.pid!;
    await dockerd.buildImage();
    const version = await dockerd.dockerOk(['version', '--format', '{{.Server.Version}}']);
    const bare = await timed(() => dockerd.dockerOk(['run', '-d', IMAGE, 'sleep', '1000']));
    const bareRm = await timed(() => dockerd.dockerOk(['rm', '-f', bare.value]));
    checkInterrupt();
    const dockerdRssBeforeKiB = rssKiB(pid);
    const published = await timed(() => dockerd.dockerOk(['run', '-d', '-p', range(count), IMAGE, 'sleep', '1000'], { timeoutMs: 900_000 }));
    const proxies = childrenNamed(pid, 'docker-proxy');
    const proxiesRssKiB = proxies.reduce((sum, pid) => sum + rssKiB(pid), 0);
    const proxiesPssKiB = proxies.reduce((sum, pid) => sum + pssKiB(pid), 0);
    const dockerdRssPublishedKiB = rssKiB(pid);
    checkInterrupt();
    const removed = await timed(() => dockerd.dockerOk(['rm', '-f', published.value], { timeoutMs: 900_000 }));
    return {
      count, version, bareRunMs: bare.ms, bareRmMs: bareRm.ms, publishMs: published.ms, removeMs: removed.ms,
      proxies: proxies.length, proxiesRssKiB, proxiesPssKiB, dockerdRssBeforeKiB, dockerdRssPublishedKiB,
      proxiesAfterRm: childrenNamed(pid, 'docker-proxy').length,
    };
  } finally {
    await engine?.cleanup();
    await exec(['ip', 'netns', 'del', hostName]);
  }
}

// cnmkit's IpamDriver served in-process (an in-memory store, no daemon) to the real Docker engine
// (Debian's docker.io) in a throwaway network namespace and a private mount namespace: Docker's
// own bridge driver gets its pools, gateways, aux and container addresses from cnmkit, releases
// them on rm, re-asks when a default pool overlaps its host, replays them when restarted, and
// frees the stale ones after a crash. In the netns tier: no daemon, but the engine needs root.
// The daemon's cnmkit-ipam socket end to end is test/e2e/docker-ipam.test.ts.
import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import pino from 'pino';
import { check, run } from '../helpers/exec.js';
import type { TestNs } from '../helpers/netns.js';
import { BUSYBOX_IMAGE, describeDocker, Dockerd, dockerSkipReason, makeHostNs } from '../helpers/dockerd.js';
import { openStore, type Store } from '../../src/store/index.js';
import { Ipam, parseProcRoute } from '../../src/ipam/index.js';
import { servePlugins, type PluginServers } from '../../src/api/docker/index.js';

const skipReason = await dockerSkipReason();

let host: TestNs;
let dockerd: Dockerd;
let store: Store;
let ipam: Ipam;
let plugins: PluginServers;
const logs: string[] = [];
/** What cnmkit's IPAM believes the host's link routes are: the engine's namespace, or nothing (a lie). */
let routesSeen: 'engine' | 'none' = 'engine';

function engineRoutes(): string[] {
  const pid = dockerd.pid;
  return pid === undefined ? [] : parseProcRoute(fs.readFileSync(`/proc/${pid}/net/route`, 'utf8'));
}

const pools = () => ipam.listPools().map((p) => p.pool).sort();
const addressesOf = (poolId: string) => ipam.listAddresses(poolId).map((a) => `${a.address} ${a.kind}`).sort();
const logLines = (msg: string) => logs.filter((l) => l.includes(`"msg":"${msg}"`));

/** Polls fn until it returns true (the engine finishes some work after its API answers). */
async function until(fn: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

describeDocker('the real Docker engine with cnmkit-ipam', skipReason, () => {
  beforeAll(async () => {
    host = await makeHostNs();
    dockerd = await Dockerd.start(host);
    console.log(`dockerd 20.10 ready in ${dockerd.startMs} ms (first start)`);
    await dockerd.buildImage();
    store = openStore(':memory:');
    ipam = new Ipam(store, { environment: { linkRoutes: () => (routesSeen === 'engine' ? engineRoutes() : []), nameservers: () => [] } });
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });
    plugins = await servePlugins({ pluginDir: dockerd.pluginDir, ipam, logger, checkReplies: true });
  }, 180_000);

  afterEach(async () => {
    // Whatever a failed test left: containers, then networks (which releases their pools).
    const ids = (await dockerd.dockerOk(['ps', '-aq'])).split('\n').filter(Boolean);
    if (ids.length > 0) await dockerd.dockerOk(['rm', '-f', ...ids]);
    await dockerd.dockerOk(['network', 'prune', '-f']);
    routesSeen = 'engine';
  });

  afterAll(async () => {
    // The engine first: it still calls the plugin while it shuts down (and retries ~15 s if it is gone).
    await dockerd?.cleanup();
    await plugins?.close();
    await host?.delete();
    store?.close();
  }, 120_000);

  it('runs in its own namespaces: docker0 and its iptables rules only there, only our plugin socket visible', async () => {
    const started = performance.now();
    expect(await dockerd.docker(['run', '--rm', '--network', 'none', BUSYBOX_IMAGE, 'true'])).toMatchObject({ code: 0 });
    console.log(`docker run --rm --network none: ${Math.round(performance.now() - started)} ms`);
    expect(await host.linkNames()).toContain('docker0');
    expect((await run(['ip', 'link', 'show', 'docker0'])).code).not.toBe(0);
    expect(await host.sh(['iptables-save', '-t', 'filter'])).toContain(':DOCKER-USER');
    expect(await check(['iptables-save', '-t', 'filter'])).not.toContain('DOCKER');
    expect((await dockerd.inNamespaces(['ls', '-A', '/run/docker/plugins'])).stdout.trim()).toBe('cnmkit-ipam.sock');
    expect(fs.existsSync('/run/docker/plugins/cnmkit-ipam.sock')).toBe(false);
  });

  it('creates a bridge network on a cnmkit pool, gives containers cnmkit addresses, and releases them', async () => {
    const started = performance.now();
    const id = await dockerd.dockerOk(['network', 'create', '--ipam-driver', 'cnmkit-ipam', '--subnet', '198.18.50.0/24', 'x']);
    console.log(`docker network create --ipam-driver cnmkit-ipam (first call: activation): ${Math.round(performance.now() - started)} ms`);
    expect(logLines('incoming request').some((l) => l.includes('/Plugin.Activate'))).toBe(true);
    const [net] = await dockerd.inspect(['network', 'inspect', 'x']);
    // With an explicit --subnet, inspect shows the request (no Gateway); containers see the gateway.
    expect(net).toMatchObject({ Id: id, Driver: 'bridge', IPAM: { Driver: 'cnmkit-ipam', Config: [{ Subnet: '198.18.50.0/24' }] } });
    const poolId = 'LocalDefault/198.18.50.0/24';
    expect(addressesOf(poolId)).toEqual(['198.18.50.1/24 gateway']);

    await dockerd.dockerOk(['run', '-d', '--name', 'c1', '--network', 'x', BUSYBOX_IMAGE, 'sleep', '300']);
    const [c1] = await dockerd.inspect(['container', 'inspect', 'c1']);
    expect(c1.NetworkSettings.Networks.x).toMatchObject({ IPAddress: '198.18.50.2', IPPrefixLen: 24, Gateway: '198.18.50.1' });
    expect(await dockerd.dockerOk(['exec', 'c1', 'ip', '-4', '-o', 'addr', 'show', 'eth0'])).toContain('inet 198.18.50.2/24');
    expect(addressesOf(poolId)).toEqual(['198.18.50.1/24 gateway', '198.18.50.2/24 endpoint']);

    expect(await dockerd.dockerOk(['run', '--rm', '--network', 'x', '--ip', '198.18.50.77', BUSYBOX_IMAGE, 'ip', '-4', '-o', 'addr', 'show', 'eth0']))
      .toContain('inet 198.18.50.77/24');
    const taken = await dockerd.docker(['run', '--rm', '--network', 'x', '--ip', '198.18.50.2', BUSYBOX_IMAGE, 'true']);
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toMatch(/198\.18\.50\.2 is already allocated/);

    await dockerd.dockerOk(['rm', '-f', 'c1']);
    expect(addressesOf(poolId)).toEqual(['198.18.50.1/24 gateway']);
    await dockerd.dockerOk(['network', 'rm', 'x']);
    expect(ipam.getPool(poolId)).toBeUndefined();
  });

  it('honours --ip-range, --gateway and --aux-address (an aux request has Options null)', async () => {
    await dockerd.dockerOk(['network', 'create', '--ipam-driver', 'cnmkit-ipam', '--subnet', '198.18.51.0/24', '--ip-range', '198.18.51.128/25',
      '--gateway', '198.18.51.254', '--aux-address', 'router=198.18.51.10', 'z']);
    const poolId = 'LocalDefault/198.18.51.0/24/198.18.51.128/25';
    expect(addressesOf(poolId)).toEqual(['198.18.51.10/24 endpoint', '198.18.51.254/24 gateway']);
    const out = await dockerd.dockerOk(['run', '--rm', '--network', 'z', BUSYBOX_IMAGE, 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    const address = /inet (198\.18\.51\.(\d+))\/24/.exec(out);
    expect(Number(address?.[2])).toBeGreaterThanOrEqual(128);
    await dockerd.dockerOk(['network', 'rm', 'z']);
    expect(ipam.getPool(poolId)).toBeUndefined();
  });

  it('gives a network without --subnet a cnmkit default pool that avoids the engine\'s docker0', async () => {
    routesSeen = 'engine';
    await dockerd.dockerOk(['network', 'create', '--ipam-driver', 'cnmkit-ipam', 'y']);
    const [net] = await dockerd.inspect(['network', 'inspect', 'y']);
    expect(net.IPAM.Config).toEqual([{ Subnet: '172.18.0.0/16', Gateway: '172.18.0.1' }]);
    expect(pools()).toEqual(['172.18.0.0/16']);
    await dockerd.dockerOk(['network', 'rm', 'y']);
    expect(pools()).toEqual([]);
  });

  it('is asked again when its default pool overlaps the engine\'s host, and never offers the same pool twice', async () => {
    routesSeen = 'none';
    try {
      const before = logLines('pool allocated').length;
      await dockerd.dockerOk(['network', 'create', '--ipam-driver', 'cnmkit-ipam', 'y2']);
      const [net] = await dockerd.inspect(['network', 'inspect', 'y2']);
      expect(net.IPAM.Config).toEqual([{ Subnet: '172.18.0.0/16', Gateway: '172.18.0.1' }]);
      const offered = logLines('pool allocated').slice(before).map((l) => (JSON.parse(l) as { poolId: string }).poolId);
      expect(offered).toEqual(['LocalDefault/172.17.0.0/16', 'LocalDefault/172.18.0.0/16']);
      // The engine released the overlapping pool once it had a good one.
      expect(pools()).toEqual(['172.18.0.0/16']);
      await dockerd.dockerOk(['network', 'rm', 'y2']);
      expect(pools()).toEqual([]);
    } finally {
      routesSeen = 'engine';
    }
  });

  it('answers the engine\'s replay of pools, gateways and aux addresses when it restarts', async () => {
    await dockerd.dockerOk(['network', 'create', '--ipam-driver', 'cnmkit-ipam', '--subnet', '198.18.52.0/24', '--aux-address', 'r=198.18.52.9', 'w']);
    const poolId = 'LocalDefault/198.18.52.0/24';
    const requested = () => logLines('pool allocated').filter((l) => l.includes(poolId)).length;
    expect(requested()).toBe(1);
    await dockerd.restart();
    console.log(`dockerd ready in ${dockerd.startMs} ms (restart, with a remote IPAM network to replay)`);
    expect(requested()).toBe(2);
    expect(dockerd.log()).not.toMatch(/Failed to allocate ipam pool|Failed to reserve current address/);
    expect(addressesOf(poolId)).toEqual(['198.18.52.1/24 gateway', '198.18.52.9/24 endpoint']);
    expect(await dockerd.dockerOk(['run', '--rm', '--network', 'w', BUSYBOX_IMAGE, 'ip', '-4', '-o', 'addr', 'show', 'eth0'])).toContain('inet 198.18.52.2/24');
    await dockerd.dockerOk(['network', 'rm', 'w']);
    expect(ipam.getPool(poolId)).toBeUndefined();
  });

  it('after an engine crash, keeps the addresses of what runs again and frees the stale ones', async () => {
    await dockerd.dockerOk(['network', 'create', '--ipam-driver', 'cnmkit-ipam', '--subnet', '198.18.53.0/24', 'v']);
    const poolId = 'LocalDefault/198.18.53.0/24';
    await dockerd.dockerOk(['run', '-d', '--name', 'fixed', '--network', 'v', '--ip', '198.18.53.50', BUSYBOX_IMAGE, 'sleep', '300']);
    await dockerd.dockerOk(['run', '-d', '--name', 'gone', '--network', 'v', BUSYBOX_IMAGE, 'sleep', '300']);
    await dockerd.dockerOk(['run', '-d', '--name', 'back', '--restart', 'always', '--network', 'v', BUSYBOX_IMAGE, 'sleep', '300']);
    expect(addressesOf(poolId)).toEqual(['198.18.53.1/24 gateway', '198.18.53.2/24 endpoint', '198.18.53.3/24 endpoint', '198.18.53.50/24 endpoint']);
    await dockerd.restart({ crash: true });
    // The engine replays the endpoints it finds (cnmkit refuses the dynamic ones: harmless warnings),
    // then cleans the dead containers' endpoints up and restarts "back" on a new address.
    const running = async () => (await dockerd.docker(['inspect', '-f', '{{.State.Running}} {{.NetworkSettings.Networks.v.IPAddress}}', 'back'])).stdout.trim();
    await until(async () => /^true 198\.18\.53\.\d+$/.test(await running()));
    const backIp = (await running()).split(' ')[1];
    await until(() => addressesOf(poolId).length === 2);
    expect(addressesOf(poolId)).toEqual(['198.18.53.1/24 gateway', `${backIp}/24 endpoint`]);
    await dockerd.dockerOk(['start', 'fixed', 'gone']);
    const [fixed] = await dockerd.inspect(['container', 'inspect', 'fixed']);
    expect(fixed.NetworkSettings.Networks.v.IPAddress).toBe('198.18.53.50');
    expect(addressesOf(poolId)).toHaveLength(4);
  });
});

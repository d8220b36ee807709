// The daemon's cnmkit-ipam socket under the real Docker engine (Debian's docker.io): a real
// `cnmkit daemon` and dockerd share one throwaway "host" namespace (the daemon first, as systemd
// orders them). Networks made with `--ipam-driver cnmkit-ipam`, with and without --subnet, for
// Docker's own bridge driver and for cnmkit-bridge: containers get their addresses from the
// daemon, and `docker rm` / `docker network rm` release them. Every check is outside cnmkit's
// tables: the engine's view (docker inspect, addresses inside containers), the daemon's through its
// CLI (a released pool can be taken again, a held one cannot), and the kernel's (bridge, routes).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { BUSYBOX_IMAGE, describeDocker, Dockerd, dockerSkipReason, makeHostNs } from '../helpers/dockerd.js';

const skipReason = await dockerSkipReason();

/** The engine's own bridge and default pools, away from the daemon's (198.18.0.0/24 and 198.18.128.0/17). */
const ENGINE_ADDRESSES = ['--bip', '198.18.1.1/24', '--default-address-pool', 'base=198.18.64.0/18,size=24'];
const IMAGE = BUSYBOX_IMAGE;

let host: TestNs;
let daemon: TestDaemon;
let dockerd: Dockerd;

const docker = (args: string[]) => dockerd.dockerOk(args);

async function containerIp(name: string, network: string): Promise<string> {
  const [c] = await dockerd.inspect<any>(['container', 'inspect', name]);
  return c.NetworkSettings.Networks[network].IPAddress as string;
}

/** The IPv4 address inside the container, as its kernel has it. */
async function ipInside(name: string): Promise<string> {
  return /inet (\S+)/.exec(await docker(['exec', name, 'ip', '-4', '-o', 'addr', 'show', 'eth0']))?.[1] ?? '';
}

/** The kernel's routes of the host namespace for a subnet (`ip -j route show CIDR`). */
const routesTo = (cidr: string) => host.ipJson<{ dst: string; dev: string }[]>(['route', 'show', cidr]);
const linkExists = async (name: string) => (await host.exec(['ip', 'link', 'show', name])).code === 0;

/** Makes a cnmkit network through the daemon's CLI (the daemon's view of which pools are free); returns its subnet, or the error. */
async function cnmkitNetwork(name: string, subnet?: string): Promise<{ subnet?: string; error?: string }> {
  const r = await daemon.cmd(['network', 'create', ...(subnet ? ['--subnet', subnet] : []), name]);
  if (r.code !== 0) return { error: r.stderr.trim() };
  const [net] = JSON.parse((await daemon.cmd(['network', 'inspect', name])).stdout) as { ipv4: { subnet: string }[] }[];
  return { subnet: net!.ipv4[0]!.subnet };
}

async function cnmkitNetworkNames(): Promise<string[]> {
  return (JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as { name: string }[]).map((n) => n.name).sort();
}

describeDocker('the daemon\'s cnmkit-ipam under the real Docker engine', skipReason, () => {
  beforeAll(async () => {
    host = await makeHostNs('dkipam');
    daemon = new TestDaemon(host);
    await daemon.start();
    dockerd = await Dockerd.start(host, { args: ENGINE_ADDRESSES });
    for (const name of ['cnmkit-bridge', 'cnmkit-ipam']) {
      fs.symlinkSync(path.join(daemon.dir, 'plugins', `${name}.sock`), path.join(dockerd.pluginDir, `${name}.sock`));
    }
    await dockerd.buildImage();
  }, 180_000);

  afterEach(async () => {
    const ids = (await docker(['ps', '-aq'])).split('\n').filter(Boolean);
    if (ids.length > 0) await docker(['rm', '-f', ...ids]);
    await docker(['network', 'prune', '-f']);
    for (const name of (await cnmkitNetworkNames()).filter((n) => n.startsWith('probe'))) await daemon.cmd(['network', 'rm', name]);
    expect(await cnmkitNetworkNames()).toEqual(['bridge', 'host', 'none']);
  }, 60_000);

  afterAll(async () => {
    // The engine first: it calls the plugins while it shuts down.
    await dockerd?.cleanup();
    await daemon?.cleanup();
    await host?.delete();
  }, 120_000);

  it('gives Docker\'s bridge driver a --subnet pool and container addresses, and takes them back on rm and network rm', async () => {
    const id = await docker(['network', 'create', '--ipam-driver', 'cnmkit-ipam', '--subnet', '198.18.40.0/24', 'given']);
    const [net] = await dockerd.inspect<any>(['network', 'inspect', 'given']);
    expect(net).toMatchObject({ Driver: 'bridge', IPAM: { Driver: 'cnmkit-ipam', Config: [{ Subnet: '198.18.40.0/24' }] } });
    // The kernel: Docker's bridge carries the gateway the daemon gave, with the subnet's route.
    const bridge = `br-${id.slice(0, 12)}`;
    const [addr] = await host.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(['-4', 'addr', 'show', bridge]);
    expect(addr!.addr_info).toEqual([expect.objectContaining({ local: '198.18.40.1', prefixlen: 24 })]);
    expect(await routesTo('198.18.40.0/24')).toEqual([expect.objectContaining({ dst: '198.18.40.0/24', dev: bridge })]);
    // The daemon holds the pool: its own network cannot take that subnet now.
    expect((await cnmkitNetwork('probe1', '198.18.40.0/24')).error).toMatch(/subnet: 198\.18\.40\.0\/24 .*in use/);

    await docker(['run', '-d', '--name', 'c1', '--network', 'given', IMAGE, 'sleep', '600']);
    await docker(['run', '-d', '--name', 'c2', '--network', 'given', IMAGE, 'sleep', '600']);
    expect([await containerIp('c1', 'given'), await containerIp('c2', 'given')]).toEqual(['198.18.40.2', '198.18.40.3']);
    expect([await ipInside('c1'), await ipInside('c2')]).toEqual(['198.18.40.2/24', '198.18.40.3/24']);
    // An address is held while its container lives, and free again once it is removed.
    const taken = await dockerd.docker(['run', '--rm', '--network', 'given', '--ip', '198.18.40.2', IMAGE, 'true']);
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toMatch(/198\.18\.40\.2/);
    await docker(['rm', '-f', 'c1']);
    await docker(['run', '-d', '--name', 'c3', '--network', 'given', '--ip', '198.18.40.2', IMAGE, 'sleep', '600']);
    expect(await ipInside('c3')).toBe('198.18.40.2/24');

    await docker(['rm', '-f', 'c2', 'c3']);
    await docker(['network', 'rm', 'given']);
    expect((await dockerd.docker(['network', 'inspect', 'given'])).code).not.toBe(0);
    expect(await linkExists(bridge)).toBe(false);
    expect(await routesTo('198.18.40.0/24')).toEqual([]);
    // Released: the daemon's own network takes the subnet now (and gives it back).
    expect(await cnmkitNetwork('probe2', '198.18.40.0/24')).toEqual({ subnet: '198.18.40.0/24' });
  });

  it('gives a network without --subnet a pool of the daemon\'s defaults, and the next network that pool once it is removed', async () => {
    await docker(['network', 'create', '--ipam-driver', 'cnmkit-ipam', 'auto']);
    const [net] = await dockerd.inspect<any>(['network', 'inspect', 'auto']);
    const subnet = net.IPAM.Config[0].Subnet as string;
    // The daemon's --default-address-pool base=198.18.128.0/17,size=24 (test/helpers/daemon.ts).
    expect(subnet).toMatch(/^198\.18\.(12[89]|1[3-9]\d|2[0-5]\d)\.0\/24$/);
    expect(net.IPAM.Config[0].Gateway).toBe(subnet.replace(/0\/24$/, '1'));
    expect((await routesTo(subnet)).map((r) => r.dev)).toEqual([`br-${(net.Id as string).slice(0, 12)}`]);
    await docker(['run', '-d', '--name', 'a1', '--network', 'auto', IMAGE, 'sleep', '600']);
    expect(await ipInside('a1')).toBe(subnet.replace(/0\/24$/, '2/24'));
    // While Docker holds it, the daemon hands out another default pool.
    const other = await cnmkitNetwork('probe3');
    expect(other.subnet).toMatch(/^198\.18\.\d+\.0\/24$/);
    expect(other.subnet).not.toBe(subnet);

    await docker(['rm', '-f', 'a1']);
    await docker(['network', 'rm', 'auto']);
    expect(await routesTo(subnet)).toEqual([]);
    expect(await cnmkitNetwork('probe4', subnet)).toEqual({ subnet });
  });

  it('serves cnmkit-bridge networks too: the daemon lists the network, its bridge and route go with docker network rm, the pool is free again', async () => {
    const id = await docker(['network', 'create', '-d', 'cnmkit-bridge', '--ipam-driver', 'cnmkit-ipam', '--subnet', '198.18.41.0/24', 'both']);
    await docker(['run', '-d', '--name', 'b1', '--network', 'both', IMAGE, 'sleep', '600']);
    expect(await ipInside('b1')).toBe('198.18.41.2/24');
    const nets = JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as { dockerId?: string; ipv4: { subnet: string }[]; endpoints: { ipv4?: string }[] }[];
    const ours = nets.find((n) => n.dockerId === id);
    expect(ours).toMatchObject({ ipv4: [{ subnet: '198.18.41.0/24' }], endpoints: [{ ipv4: '198.18.41.2/24' }] });
    const bridge = `br-${id.slice(0, 12)}`;
    expect(await routesTo('198.18.41.0/24')).toEqual([expect.objectContaining({ dev: bridge })]);
    expect((await cnmkitNetwork('probe5', '198.18.41.0/24')).error).toMatch(/subnet: 198\.18\.41\.0\/24 .*in use/);

    await docker(['rm', '-f', 'b1']);
    await docker(['network', 'rm', 'both']);
    expect((JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as { dockerId?: string }[]).some((n) => n.dockerId === id)).toBe(false);
    expect(await linkExists(bridge)).toBe(false);
    expect(await routesTo('198.18.41.0/24')).toEqual([]);
    expect(await cnmkitNetwork('probe6', '198.18.41.0/24')).toEqual({ subnet: '198.18.41.0/24' });
  });
});

// cnmkit-macvlan under the real Docker engine (Debian's docker.io), in the harness of
// docker-bridge.test.ts: a real `cnmkit daemon` and dockerd share one throwaway "host" namespace
// whose veth nic0 stands for the NIC; its peer is in a "LAN" namespace with the LAN host
// 198.18.50.1 (the network's gateway). Checked outside the code under test: docker inspect and
// exec, `ip -j` in the namespaces, ip neigh on the LAN host, real pings.
// Limits: IPv4 only; the plugin socket reaches the engine's plugin folder as a symlink.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { check } from '../helpers/exec.js';
import type { TestNs } from '../helpers/netns.js';
import { fdbRows, neighRows } from '../helpers/entries.js';
import { TestDaemon } from '../helpers/daemon.js';
import { BUSYBOX_IMAGE, describeDocker, Dockerd, dockerSkipReason, makeHostNs } from '../helpers/dockerd.js';

const skipReason = await dockerSkipReason();
const ENGINE_ADDRESSES = ['--bip', '198.18.1.1/24', '--default-address-pool', 'base=198.18.64.0/18,size=24'];
const LAN_HOST = '198.18.50.1';
const IMAGE = BUSYBOX_IMAGE;
const PLUGIN = 'cnmkit-macvlan';

let host: TestNs;
let lan: TestNs;
let daemon: TestDaemon;
let dockerd: Dockerd;

const docker = (args: string[]) => dockerd.dockerOk(args);

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function ipOf(container: string, network: string): Promise<string> {
  return (await dockerd.inspect(['container', 'inspect', container]))[0].NetworkSettings.Networks[network].IPAddress as string;
}

/** The kind and mode of a container's interface, read from the host (busybox's ip has no -d). */
async function linkOf(container: string, ifname: string): Promise<{ kind?: string; mode?: string }> {
  const pid = String((await dockerd.inspect(['container', 'inspect', container]))[0].State.Pid);
  const [link] = JSON.parse(await check(['nsenter', '-t', pid, '-n', 'ip', '-d', '-j', 'link', 'show', ifname])) as { linkinfo?: { info_kind?: string; info_data?: { mode?: string } } }[];
  return { kind: link?.linkinfo?.info_kind, mode: link?.linkinfo?.info_data?.mode };
}

/** Whether `from` (a container) gets an answer from `to`. */
async function reaches(from: string, to: string): Promise<boolean> {
  return (await dockerd.docker(['exec', from, 'ping', '-c', '1', '-W', '2', to])).code === 0;
}

/** macvlan links of cnmkit's left in the host namespace (a detached endpoint's, `mv` + 12 hex). */
async function hostMacvlans(): Promise<string[]> {
  return (await host.linkNames()).filter((n) => /^mv[0-9a-f]{12}$/.test(n));
}

/** The endpoint ids cnmkit holds on the Docker network with this id (read through cnmkit's CLI). */
async function cnmkitEndpoints(dockerId: string): Promise<string[]> {
  const r = await daemon.cmd(['network', 'ls', '--format', 'json']);
  if (r.code !== 0) throw new Error(`cnmkit network ls: ${r.stderr}`);
  const nets = JSON.parse(r.stdout) as { id: string; endpoints: { id: string }[] }[];
  return (nets.find((n) => n.id === dockerId)?.endpoints ?? []).map((e) => e.id).sort();
}

async function restartDaemon(): Promise<void> {
  await daemon.stop('SIGKILL');
  await daemon.start();
  await until('plugin socket', () => fs.existsSync(path.join(daemon.dir, 'plugins', `${PLUGIN}.sock`)));
}

describeDocker('cnmkit-macvlan under the real Docker engine', skipReason, () => {
  beforeAll(async () => {
    host = await makeHostNs('dkmv');
    lan = await makeHostNs('dkln');
    await check(['ip', 'link', 'add', 'nic0', 'netns', host.name, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', lan.name]);
    await host.sh(['ip', 'link', 'set', 'nic0', 'up']);
    await lan.sh(['ip', 'addr', 'add', `${LAN_HOST}/24`, 'dev', 'lan0']);
    await lan.sh(['ip', 'link', 'set', 'lan0', 'up']);
    daemon = new TestDaemon(host);
    await daemon.start();
    dockerd = await Dockerd.start(host, { args: ENGINE_ADDRESSES });
    fs.symlinkSync(path.join(daemon.dir, 'plugins', `${PLUGIN}.sock`), path.join(dockerd.pluginDir, `${PLUGIN}.sock`));
    await dockerd.buildImage();
  }, 180_000);

  afterEach(async () => {
    const ids = (await docker(['ps', '-aq'])).split('\n').filter(Boolean);
    if (ids.length > 0) await docker(['rm', '-f', ...ids]);
    await docker(['network', 'prune', '-f']);
    expect(await hostMacvlans()).toEqual([]);
  }, 60_000);

  afterAll(async () => {
    await dockerd?.cleanup();
    await daemon?.cleanup();
    await lan?.delete();
    await host?.delete();
  }, 120_000);

  it('two containers on a cnmkit-macvlan network reach each other and the LAN host, which sees their MACs; --ip and --mac-address', async () => {
    const id = await docker(['network', 'create', '-d', PLUGIN, '-o', 'parent=nic0', '--subnet', '198.18.50.0/24', '--gateway', LAN_HOST, 'mvnet']);
    const [net] = await dockerd.inspect(['network', 'inspect', 'mvnet']);
    expect(net).toMatchObject({ Id: id, Driver: PLUGIN, IPAM: { Config: [{ Subnet: '198.18.50.0/24' }] } });
    await docker(['run', '-d', '--name', 'mva', '--network', 'mvnet', IMAGE, 'sleep', '600']);
    await docker(['run', '-d', '--name', 'mvb', '--network', 'mvnet', '--ip', '198.18.50.20', '--mac-address', '02:aa:bb:cc:dd:02', IMAGE, 'sleep', '600']);
    const ipA = await ipOf('mva', 'mvnet');
    expect(await ipOf('mvb', 'mvnet')).toBe('198.18.50.20');
    expect(await linkOf('mva', 'eth0')).toEqual({ kind: 'macvlan', mode: 'bridge' });
    expect(await docker(['exec', 'mvb', 'cat', '/sys/class/net/eth0/address'])).toBe('02:aa:bb:cc:dd:02');
    const macA = await docker(['exec', 'mva', 'cat', '/sys/class/net/eth0/address']);
    expect(await docker(['exec', 'mva', 'ip', 'route', 'show', 'default'])).toContain(`via ${LAN_HOST} dev eth0`);
    expect(await reaches('mva', '198.18.50.20')).toBe(true);
    expect(await reaches('mvb', ipA)).toBe(true);
    expect(await reaches('mva', LAN_HOST)).toBe(true);
    expect(await reaches('mvb', LAN_HOST)).toBe(true);
    const neigh = await neighRows(lan, 'lan0');
    expect(neigh).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: ipA, lladdr: macA }),
      expect.objectContaining({ dst: '198.18.50.20', lladdr: '02:aa:bb:cc:dd:02' }),
    ]));
    // The container ends were moved out of the host namespace by the engine: none is left there.
    expect(await hostMacvlans()).toEqual([]);
  });

  it('docker network connect/disconnect a running container; then the plugin SIGKILLed and restarted: containers keep working, new ones start', async () => {
    await docker(['network', 'create', '-d', PLUGIN, '-o', 'parent=nic0', '--subnet', '198.18.50.0/24', '--gateway', LAN_HOST, 'mvnet']);
    await docker(['run', '-d', '--name', 'mva', '--network', 'mvnet', IMAGE, 'sleep', '600']);
    await docker(['run', '-d', '--name', 'mover', IMAGE, 'sleep', '600']);
    await docker(['network', 'connect', 'mvnet', 'mover']);
    expect((await linkOf('mover', 'eth1')).kind).toBe('macvlan');
    const ipMover = await ipOf('mover', 'mvnet');
    expect(await reaches('mva', ipMover)).toBe(true);
    await docker(['network', 'disconnect', 'mvnet', 'mover']);
    expect(await docker(['exec', 'mover', 'ip', '-o', 'link'])).not.toContain('eth1');
    expect(await reaches('mva', ipMover)).toBe(false);
    expect(await hostMacvlans()).toEqual([]);

    await restartDaemon();
    expect(await reaches('mva', LAN_HOST)).toBe(true);
    await docker(['run', '-d', '--name', 'late', '--network', 'mvnet', IMAGE, 'sleep', '600']);
    expect(await reaches('late', await ipOf('mva', 'mvnet'))).toBe(true);
    expect(await reaches('late', LAN_HOST)).toBe(true);
    await docker(['network', 'connect', 'mvnet', 'mover']);
    expect(await reaches('mover', LAN_HOST)).toBe(true);
  });

  it('after an engine crash, the endpoints it forgot are pruned (record and macvlan) at its next CreateEndpoint; the survivor keeps its own', async () => {
    const id = await docker(['network', 'create', '-d', PLUGIN, '-o', 'parent=nic0', '--subnet', '198.18.50.0/24', '--gateway', LAN_HOST, 'mvnet']);
    // Its own MAC: the engine gives "late" the same address after its restart, hence Docker's same MAC.
    const macGone = '02:aa:bb:cc:dd:10';
    await docker(['run', '-d', '--name', 'gone', '--network', 'mvnet', '--mac-address', macGone, IMAGE, 'sleep', '600']);
    const forgotten = (await dockerd.inspect(['container', 'inspect', 'gone']))[0].NetworkSettings.Networks.mvnet.EndpointID as string;
    expect(await cnmkitEndpoints(id)).toEqual([forgotten]);
    // SIGKILL to dockerd, containerd, shims and containers: the container's namespace, and its macvlan, die
    // with them; at start the engine drops the endpoints of remote drivers without calling the plugin.
    await dockerd.restart({ crash: true });
    expect(await cnmkitEndpoints(id), 'the plugin still holds the forgotten endpoint before the engine calls it again').toEqual([forgotten]);
    await docker(['run', '-d', '--name', 'late', '--network', 'mvnet', IMAGE, 'sleep', '600']);
    const late = (await dockerd.inspect(['container', 'inspect', 'late']))[0].NetworkSettings.Networks.mvnet.EndpointID as string;
    expect(await cnmkitEndpoints(id)).toEqual([late]);
    expect(await hostMacvlans()).toEqual([]);
    // A macvlan that exists (up, in any namespace) holds its MAC among its parent's unicast addresses.
    const parentMacs = (await fdbRows(host, 'nic0')).map((f) => f.mac);
    expect(parentMacs, 'no macvlan of the dead container is left on the parent').not.toContain(macGone);
    const macLate = await docker(['exec', 'late', 'cat', '/sys/class/net/eth0/address']);
    expect(parentMacs, 'the control: the live container\'s macvlan is seen there').toContain(macLate);
    expect(await reaches('late', LAN_HOST)).toBe(true);
  }, 120_000);

  it('refuses a second network on the same parent, naming the network that holds it (the engine passes no names: cnmkit\'s docker-ID)', async () => {
    const id = await docker(['network', 'create', '-d', PLUGIN, '-o', 'parent=nic0', '--subnet', '198.18.50.0/24', 'mvnet']);
    const second = await dockerd.docker(['network', 'create', '-d', PLUGIN, '-o', 'parent=nic0', '--subnet', '198.18.51.0/24', 'again']);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain(`network docker-${id.slice(0, 12)} is already using parent interface nic0`);
  });
});

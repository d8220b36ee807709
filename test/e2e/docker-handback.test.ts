// The Docker engine's handed-back endpoints on cnmkit-bridge and cnmkit-macvlan (the overlay's are
// in docker-overlay.test.ts): a `docker stop`, `docker network disconnect` or `docker rm -f` made
// while the plugin daemon is away longer than the engine's retries (about 15 s per call) succeeds
// without it, and the engine moves the container's interface back to its own namespace (the
// daemon's; rm -f too, before it destroys the container's namespace), all four in one outage. The
// restarted daemon must drop those endpoints: their veth or macvlan, their published ports, their
// address in cnmkit-ipam. Checked outside the code under test, in the engine's namespace: `ip -j
// link`, `nft -j list ruleset` and iptables-save, a new container given the same address and
// port, and cnmkit's own records and check. A container left alone meanwhile keeps its endpoint.
// Limits: IPv4 only; one engine; one macvlan network has no parent (cnmkit's bridge with no ports),
// the other's parent is a veth in the engine's namespace.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { BUSYBOX_IMAGE, describeDocker, Dockerd, dockerSkipReason, makeHostNs } from '../helpers/dockerd.js';

const skipReason = await dockerSkipReason();
const ENGINE_ADDRESSES = ['--bip', '198.18.1.1/24', '--default-address-pool', 'base=198.18.64.0/18,size=24'];
const PLUGINS = ['cnmkit-bridge', 'cnmkit-macvlan', 'cnmkit-ipam'];
const IMAGE = BUSYBOX_IMAGE;

let host: TestNs;
let daemon: TestDaemon;
let dockerd: Dockerd;

const docker = (args: string[], timeoutMs?: number) => dockerd.dockerOk(args, timeoutMs ? { timeoutMs } : {});

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function endpointOf(container: string, network: string): Promise<{ id: string; ip: string }> {
  const n = (await dockerd.inspect(['container', 'inspect', container]))[0].NetworkSettings.Networks[network];
  return { id: n.EndpointID as string, ip: n.IPAddress as string };
}

/** The endpoint ids cnmkit holds on the Docker network with this id (its CLI). */
async function cnmkitEndpoints(dockerId: string): Promise<string[]> {
  const r = await daemon.cmd(['network', 'ls', '--format', 'json']);
  if (r.code !== 0) throw new Error(`cnmkit network ls: ${r.stderr}`);
  const nets = JSON.parse(r.stdout) as { id: string; endpoints: { id: string }[] }[];
  return (nets.find((n) => n.id === dockerId)?.endpoints ?? []).map((e) => e.id).sort();
}

/** Links in the engine's namespace named after one of these endpoints (veth, container end, macvlan). */
async function linksOf(ids: string[]): Promise<string[]> {
  const names = (JSON.parse(await host.sh(['ip', '-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname);
  return names.filter((n) => ids.some((id) => [`veth${id.slice(0, 7)}`, `c${id.slice(0, 10)}`, `mv${id.slice(0, 12)}`].includes(n)));
}

/** Whether any rule in the namespace (nft -j, iptables-save) is tagged with this owner id. */
async function rulesOf(id: string): Promise<string[]> {
  const nft = JSON.parse(await host.sh(['nft', '-j', 'list', 'ruleset'])) as { nftables: { rule?: { comment?: string } }[] };
  const tags = nft.nftables.map((i) => i.rule?.comment).filter((c): c is string => c?.startsWith('cnmkit:') === true);
  tags.push(...[...(await host.sh(['iptables-save'])).matchAll(/--comment "?(cnmkit:[^" ]+)/g)].map((m) => m[1]!));
  return tags.filter((t) => t.includes(id));
}

function webScript(port: number): string[] {
  return ['sh', '-c', `mkdir -p /w && echo port ${port} > /w/index.html && httpd -p ${port} -h /w && exec sleep 600`];
}

describeDocker('the Docker engine hands endpoints back while the plugin is away (bridge, macvlan)', skipReason, () => {
  beforeAll(async () => {
    host = await makeHostNs('dkhb');
    daemon = new TestDaemon(host);
    await daemon.start();
    dockerd = await Dockerd.start(host, { args: ENGINE_ADDRESSES });
    for (const name of PLUGINS) fs.symlinkSync(path.join(daemon.dir, 'plugins', `${name}.sock`), path.join(dockerd.pluginDir, `${name}.sock`));
    await dockerd.buildImage();
  }, 180_000);

  afterEach(async () => {
    const ids = (await docker(['ps', '-aq'])).split('\n').filter(Boolean);
    if (ids.length > 0) await docker(['rm', '-f', ...ids]);
    await docker(['network', 'prune', '-f']);
  }, 60_000);

  afterAll(async () => {
    await dockerd?.cleanup();
    await daemon?.cleanup();
    await host?.delete();
  }, 120_000);

  it('a stop (bridge, with -p), a disconnect (macvlan) and an rm -f (bridge with -p, macvlan on a parent) while the plugin is away longer than the engine retries: the restarted daemon drops their links, ports and addresses; a kept container keeps its own', async () => {
    const br = await docker(['network', 'create', '-d', 'cnmkit-bridge', '--ipam-driver', 'cnmkit-ipam', '--subnet', '198.18.20.0/24', 'hbr']);
    const mv = await docker(['network', 'create', '-d', 'cnmkit-macvlan', '--ipam-driver', 'cnmkit-ipam', '--subnet', '198.18.21.0/24', 'hmv']);
    // A macvlan network on a parent too: a veth in the engine's namespace standing for its NIC.
    await host.sh(['ip', 'link', 'add', 'nic0', 'type', 'veth', 'peer', 'name', 'nic1']);
    for (const nic of ['nic0', 'nic1']) await host.sh(['ip', 'link', 'set', nic, 'up']);
    const mvp = await docker(['network', 'create', '-d', 'cnmkit-macvlan', '--ipam-driver', 'cnmkit-ipam', '-o', 'parent=nic0', '--subnet', '198.18.22.0/24', 'hmvp']);
    await docker(['run', '-d', '--name', 'web', '--network', 'hbr', '-p', '8085:80', IMAGE, ...webScript(80)]);
    await docker(['run', '-d', '--name', 'kept', '--network', 'hbr', IMAGE, 'sleep', '600']);
    await docker(['run', '-d', '--name', 'mvc', '--network', 'hmv', IMAGE, 'sleep', '600']);
    await docker(['run', '-d', '--name', 'rmd', '--network', 'hbr', '-p', '8086:80', IMAGE, ...webScript(80)]);
    await docker(['run', '-d', '--name', 'mvrmd', '--network', 'hmvp', IMAGE, 'sleep', '600']);
    const web = await endpointOf('web', 'hbr');
    const kept = await endpointOf('kept', 'hbr');
    const mvc = await endpointOf('mvc', 'hmv');
    const rmd = await endpointOf('rmd', 'hbr');
    const mvrmd = await endpointOf('mvrmd', 'hmvp');
    for (const port of [8085, 8086]) await until(`port ${port} answers`, async () => (await host.exec(['curl', '-s', '--max-time', '2', `http://198.18.20.1:${port}/`])).stdout === 'port 80\n');
    expect(await rulesOf(web.id), 'the control: the published port is tagged with its endpoint').not.toEqual([]);
    expect(await rulesOf(rmd.id), 'the control: the published port is tagged with its endpoint').not.toEqual([]);

    await daemon.stop('SIGKILL');
    // The engine retries each plugin call for about 15 s, then goes on without the plugin (exit 0),
    // moving each container end back to its own namespace (the daemon's).
    // A `docker rm -f` (bridge, with -p; macvlan) in the same window.
    await Promise.all([docker(['stop', '-t', '1', 'web'], 120_000), docker(['network', 'disconnect', 'hmv', 'mvc'], 120_000),
      docker(['rm', '-f', 'rmd'], 120_000), docker(['rm', '-f', 'mvrmd'], 120_000)]);
    expect(await linksOf([web.id, mvc.id]), 'the control: the engine handed the container ends back').toEqual(expect.arrayContaining([`c${web.id.slice(0, 10)}`, `mv${mvc.id.slice(0, 12)}`]));
    await daemon.start();
    await until('plugin sockets', () => PLUGINS.every((n) => fs.existsSync(path.join(daemon.dir, 'plugins', `${n}.sock`))));

    // Their links and the port's rules are gone once the daemon is back; the kept one's are there.
    const gone = [web.id, mvc.id, rmd.id, mvrmd.id];
    await until('their links gone', async () => (await linksOf(gone)).length === 0, 5000).catch(async (err: Error) => {
      throw new Error(`${err.message}: have ${JSON.stringify(await linksOf(gone))}`);
    });
    expect(await linksOf([kept.id])).toEqual([`veth${kept.id.slice(0, 7)}`]);
    expect(await rulesOf(web.id)).toEqual([]);
    expect(await rulesOf(rmd.id)).toEqual([]);
    for (const port of [8085, 8086]) expect((await host.exec(['curl', '-s', '--max-time', '2', `http://198.18.20.1:${port}/`])).code).not.toBe(0);
    // cnmkit holds none of them any more, before any engine call.
    expect(await cnmkitEndpoints(br)).toEqual([kept.id]);
    expect(await cnmkitEndpoints(mv)).toEqual([]);
    expect(await cnmkitEndpoints(mvp)).toEqual([]);
    // The daemon's start-up log names each one it removed, and what it released.
    expect(daemon.log).toContain(`network docker-${br.slice(0, 12)}: removed, ${web.ip} released (the engine handed its interface back while the daemon was away)`);
    expect(daemon.log).toContain(`network docker-${mv.slice(0, 12)}: removed, ${mvc.ip} released (the engine handed its interface back while the daemon was away)`);
    expect(daemon.log).toContain(`network docker-${br.slice(0, 12)}: removed, ${rmd.ip} released (the engine handed its interface back while the daemon was away)`);
    expect(daemon.log).toContain(`network docker-${mvp.slice(0, 12)}: removed, ${mvrmd.ip} released (the engine handed its interface back while the daemon was away)`);
    const check = await daemon.cmd(['check']);
    expect(check.stdout + check.stderr).toContain('no drift');
    // Their addresses and the port are free: new containers get them.
    await docker(['run', '-d', '--name', 'web2', '--network', 'hbr', '--ip', web.ip, '-p', '8085:80', IMAGE, ...webScript(80)]);
    await until('port 8085 answers web2', async () => (await host.exec(['curl', '-s', '--max-time', '2', 'http://198.18.20.1:8085/'])).stdout === 'port 80\n');
    await docker(['run', '-d', '--name', 'mvc2', '--network', 'hmv', '--ip', mvc.ip, IMAGE, 'sleep', '600']);
    await docker(['run', '-d', '--name', 'rmd2', '--network', 'hbr', '--ip', rmd.ip, '-p', '8086:80', IMAGE, ...webScript(80)]);
    await until('port 8086 answers rmd2', async () => (await host.exec(['curl', '-s', '--max-time', '2', 'http://198.18.20.1:8086/'])).stdout === 'port 80\n');
    await docker(['run', '-d', '--name', 'mvrmd2', '--network', 'hmvp', '--ip', mvrmd.ip, IMAGE, 'sleep', '600']);
    // cnmkit's records are the engine's: the handed-back and removed ones are gone.
    expect(await cnmkitEndpoints(br)).toEqual([kept.id, (await endpointOf('web2', 'hbr')).id, (await endpointOf('rmd2', 'hbr')).id].sort());
    expect(await cnmkitEndpoints(mv)).toEqual([(await endpointOf('mvc2', 'hmv')).id]);
    expect(await cnmkitEndpoints(mvp)).toEqual([(await endpointOf('mvrmd2', 'hmvp')).id]);
    expect((await dockerd.docker(['exec', 'web2', 'ping', '-c', '1', '-W', '2', kept.ip])).code).toBe(0);
  }, 240_000);
});

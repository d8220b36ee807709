// cnmkit-bridge under the real Docker engine (Debian's docker.io 20.10): a real `cnmkit daemon`
// and dockerd share one throwaway "host" namespace; the daemon starts first, as systemd orders it
// (Before=docker.service), so it is the one that turns forwarding on and Docker leaves the
// FORWARD policy alone. Everything is checked outside the code under test: docker inspect,
// `ip -j` and the rulesets in the namespace, real packets from the host, from a client on an
// underlay and between containers. After every test all containers and networks are removed
// and no veth, bridge, endpoint or cnmkit-tagged rule may be left.
// Limits: IPv4 only; the plugin sockets reach the engine's plugin folder as symlinks (the harness
// creates that folder when it starts dockerd, after our daemon).
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { check } from '../helpers/exec.js';
import { underlay, type TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { BUSYBOX_IMAGE, describeDocker, Dockerd, dockerSkipReason, makeHostNs } from '../helpers/dockerd.js';

const skipReason = await dockerSkipReason();

/** The engine's own bridge and default pools, inside the benchmarking range (cnmkit's are 198.18.0.0/24 and 198.18.128.0/17). */
const ENGINE_ADDRESSES = ['--bip', '198.18.1.1/24', '--default-address-pool', 'base=198.18.64.0/18,size=24'];
const HOST_UL = '198.19.2.1';
const CLIENT_UL = '198.19.2.2';
const IMAGE = BUSYBOX_IMAGE;

let host: TestNs;
let client: TestNs;
let daemon: TestDaemon;
let dockerd: Dockerd;
/** Ids of cnmkit's predefined networks (none, host, bridge): the only rule owners allowed between tests. */
let predefined: Set<string>;

interface CnmkitNetwork { id: string; name: string; dockerId?: string; options: Record<string, string>; ipv4: { subnet: string; gateway?: string }[]; endpoints: { id: string; ipv4?: string }[] }

async function cnmkitNetworks(): Promise<CnmkitNetwork[]> {
  const r = await daemon.cmd(['network', 'ls', '--format', 'json']);
  if (r.code !== 0) throw new Error(`cnmkit network ls: ${r.stderr}`);
  return JSON.parse(r.stdout) as CnmkitNetwork[];
}

/** Links in the host namespace that cnmkit's Docker endpoints and networks may leave: veth ends and bridges. */
async function leftoverLinks(): Promise<string[]> {
  return (await host.linkNames()).filter((n) => /^(veth|c[0-9a-f]{10}$|br-|cnmtest)/.test(n));
}

/** Owner ids of every cnmkit-tagged rule in the namespace: nftables (nft -j) and iptables (iptables-save). */
async function ruleOwners(): Promise<Set<string>> {
  const owners = new Set<string>();
  const add = (tag: string) => owners.add(tag.slice('cnmkit:'.length).split('/')[0]!);
  const nft = JSON.parse(await host.sh(['nft', '-j', 'list', 'ruleset'])) as { nftables: { rule?: { comment?: string } }[] };
  for (const item of nft.nftables) if (item.rule?.comment?.startsWith('cnmkit:')) add(item.rule.comment);
  for (const m of (await host.sh(['iptables-save'])).matchAll(/--comment "?(cnmkit:[^" ]+)/g)) add(m[1]!);
  return owners;
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

const docker = (args: string[]) => dockerd.dockerOk(args);
const curl = (ns: TestNs, url: string) => ns.exec(['curl', '-s', '--max-time', '4', url]);
const ping = (ns: TestNs, to: string) => ns.exec(['ping', '-c', '1', '-W', '1', to]);

async function inspect(container: string): Promise<any> {
  return (await dockerd.inspect(['container', 'inspect', container]))[0];
}

async function ipOf(container: string, network: string): Promise<string> {
  return (await inspect(container)).NetworkSettings.Networks[network].IPAddress as string;
}

/** A container serving "port P" over HTTP on each port given (busybox httpd), then sleeping. */
function webScript(ports: number[]): string[] {
  const setup = ports.map((p) => `mkdir -p /w${p} && echo port ${p} > /w${p}/index.html && httpd -p ${p} -h /w${p}`).join(' && ');
  return ['sh', '-c', `${setup} && exec sleep 600`];
}

/** A server run by the test inside a container's network namespace (socat is not in the image). */
function inContainer(pid: number, argv: string[]): ChildProcess {
  return spawn('nsenter', ['-t', String(pid), '-n', '--', ...argv], { stdio: 'ignore' });
}

async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((c) => {
    if (c.exitCode !== null || c.signalCode !== null) return undefined;
    const exited = new Promise((res) => c.once('exit', res));
    c.kill('SIGKILL');
    return exited;
  }));
}

/** Stops the plugin daemon with `signal` and starts it again on the same state; waits for its plugin sockets. */
async function restartDaemon(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  await daemon.stop(signal);
  const started = performance.now();
  await daemon.start();
  // The management API answers a moment before the plugin sockets are served.
  await until('plugin sockets', () => ['cnmkit-bridge', 'cnmkit-ipam'].every((n) => fs.existsSync(path.join(daemon.dir, 'plugins', `${n}.sock`))));
  console.log(`cnmkit daemon back after ${signal} in ${Math.round(performance.now() - started)} ms`);
}

describeDocker('cnmkit-bridge under the real Docker engine (cnmkit first, nftables)', skipReason, () => {
  beforeAll(async () => {
    host = await makeHostNs('dkbr');
    client = await makeHostNs('dkcl');
    await underlay(host, client, HOST_UL, CLIENT_UL);
    daemon = new TestDaemon(host);
    await daemon.start();
    dockerd = await Dockerd.start(host, { args: ENGINE_ADDRESSES });
    for (const name of ['cnmkit-bridge', 'cnmkit-ipam']) {
      fs.symlinkSync(path.join(daemon.dir, 'plugins', `${name}.sock`), path.join(dockerd.pluginDir, `${name}.sock`));
    }
    await dockerd.buildImage();
    predefined = new Set((await cnmkitNetworks()).map((n) => n.id));
  }, 180_000);

  afterEach(async () => {
    const ids = (await docker(['ps', '-aq'])).split('\n').filter(Boolean);
    if (ids.length > 0) await docker(['rm', '-f', ...ids]);
    await docker(['network', 'prune', '-f']);
    // Teardown is complete: no endpoint, network, veth, bridge or rule of cnmkit's is left.
    const nets = await cnmkitNetworks();
    expect(nets.filter((n) => !predefined.has(n.id)).map((n) => n.name)).toEqual([]);
    expect(nets.flatMap((n) => n.endpoints)).toEqual([]);
    expect(await leftoverLinks()).toEqual([]);
    expect([...(await ruleOwners())].filter((o) => !predefined.has(o))).toEqual([]);
  }, 60_000);

  afterAll(async () => {
    // The engine first: it calls the plugin while it shuts down.
    await dockerd?.cleanup();
    await daemon?.cleanup();
    await client?.delete();
    await host?.delete();
  }, 120_000);

  it('runs the engine next to the daemon: Docker left FORWARD accepting, our sockets are its plugins, cnmkit chose nftables', async () => {
    expect(await host.sh(['iptables', '-S', 'FORWARD'])).toMatch(/^-P FORWARD ACCEPT/);
    expect((await dockerd.inNamespaces(['ls', '-A', '/run/docker/plugins'])).stdout.trim().split('\n').sort()).toEqual(['cnmkit-bridge.sock', 'cnmkit-ipam.sock']);
    expect(daemon.log).toMatch(/firewall backend: nftables/);
  });

  it('creates a network with --subnet under the Docker id: bridge with the gateway, rules tagged with the id, listed by cnmkit', async () => {
    const started = performance.now();
    const id = await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.10.0/24', 'sub']);
    console.log(`docker network create -d cnmkit-bridge (first call: activation): ${Math.round(performance.now() - started)} ms`);
    const [net] = await dockerd.inspect(['network', 'inspect', 'sub']);
    expect(net).toMatchObject({ Id: id, Driver: 'cnmkit-bridge', Scope: 'local', IPAM: { Driver: 'default', Config: [{ Subnet: '198.18.10.0/24' }] } });
    const ours = (await cnmkitNetworks()).find((n) => n.id === id);
    expect(ours).toMatchObject({ id, dockerId: id, ipv4: [{ subnet: '198.18.10.0/24', gateway: '198.18.10.1/24' }], endpoints: [] });
    const bridge = `br-${id.slice(0, 12)}`;
    const [link] = await host.ipJson<{ flags: string[]; linkinfo: { info_kind: string } }[]>(['-d', 'link', 'show', bridge]);
    expect(link!.linkinfo.info_kind).toBe('bridge');
    expect(link!.flags).toContain('UP');
    const [addr] = await host.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(['-4', 'addr', 'show', bridge]);
    expect(addr!.addr_info).toEqual([expect.objectContaining({ local: '198.18.10.1', prefixlen: 24 })]);
    expect(await ruleOwners()).toContain(id);
    // Docker needs no gateway bridge of its own: Join returns the gateway.
    expect(await host.linkNames()).not.toContain('docker_gwbridge');
  });

  it('takes subnets from the engine\'s default IPAM and from cnmkit-ipam, honours -o name/ICC/MTU, and --internal', async () => {
    const auto = await docker(['network', 'create', '-d', 'cnmkit-bridge', 'auto']);
    const [autoNet] = await dockerd.inspect(['network', 'inspect', 'auto']);
    const autoSubnet = autoNet.IPAM.Config[0].Subnet as string;
    expect(autoSubnet).toMatch(/^198\.18\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.0\/24$/);
    expect((await cnmkitNetworks()).find((n) => n.id === auto)!.ipv4[0]!.subnet).toBe(autoSubnet);

    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--ipam-driver', 'cnmkit-ipam', 'ipam1']);
    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--ipam-driver', 'cnmkit-ipam', '--subnet', '198.18.11.0/24', 'ipam2']);
    const [ipam1] = await dockerd.inspect(['network', 'inspect', 'ipam1']);
    expect(ipam1.IPAM).toMatchObject({ Driver: 'cnmkit-ipam', Config: [{ Subnet: expect.stringMatching(/^198\.18\.(12[89]|1[3-9]\d|2[0-4]\d|25[0-5])\.0\/24$/) }] });
    const out = await docker(['run', '--rm', '--network', 'ipam2', IMAGE, 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    expect(out).toContain('inet 198.18.11.2/24');

    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.12.0/24', '-o', 'com.docker.network.bridge.name=cnmtest0',
      '-o', 'com.docker.network.bridge.enable_icc=false', '-o', 'com.docker.network.driver.mtu=1400', 'opts']);
    const [bridge] = await host.ipJson<{ mtu: number }[]>(['link', 'show', 'cnmtest0']);
    expect(bridge!.mtu).toBe(1400);
    await docker(['run', '-d', '--name', 'icc1', '--network', 'opts', IMAGE, 'sleep', '600']);
    await docker(['run', '-d', '--name', 'icc2', '--network', 'opts', IMAGE, 'sleep', '600']);
    expect(await docker(['exec', 'icc1', 'cat', '/sys/class/net/eth0/mtu'])).toBe('1400');
    const ports = await host.ipJson<{ ifname: string; mtu: number }[]>(['link', 'show', 'master', 'cnmtest0']);
    expect(ports.map((p) => p.mtu)).toEqual([1400, 1400]);
    // Positive control: icc2 answers the same probe from the host (its gateway); icc1 reaches the gateway, not icc2.
    expect((await ping(host, await ipOf('icc2', 'opts'))).code).toBe(0);
    expect((await dockerd.docker(['exec', 'icc1', 'ping', '-c', '1', '-W', '1', await ipOf('icc2', 'opts')])).code).not.toBe(0);
    expect((await dockerd.docker(['exec', 'icc1', 'ping', '-c', '1', '-W', '1', '198.18.12.1'])).code).toBe(0);

    // A bad option fails the create with cnmkit's reason, and leaves nothing behind.
    const linksBefore = await host.linkNames();
    const bad = await dockerd.docker(['network', 'create', '-d', 'cnmkit-bridge', '-o', 'com.docker.network.bridge.enable_icc=maybe', 'bad']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/enable_icc.*expected true or false/);
    expect((await dockerd.docker(['network', 'inspect', 'bad'])).code).not.toBe(0);
    expect(await host.linkNames()).toEqual(linksBefore);

    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--internal', '--subnet', '198.18.13.0/24', 'inner']);
    const inside = await docker(['run', '--rm', '--network', 'inner', IMAGE, 'sh', '-c', 'ip -o link | grep -c eth; ip route']);
    // One interface, no default route, and no docker_gwbridge leg (DisableGatewayService).
    expect(inside.split('\n').map((l) => l.trim())).toEqual(['1', '198.18.13.0/24 dev eth0 scope link  src 198.18.13.2']);
    expect(await host.linkNames()).not.toContain('docker_gwbridge');
  });

  it('-p on an --internal network: the container runs with nothing published, as on Docker\'s own bridge (the engine never asks to program it), and the daemon logs a warning naming the endpoint and the network', async () => {
    const id = await docker(['network', 'create', '-d', 'cnmkit-bridge', '--internal', '--subnet', '198.18.24.0/24', 'sealed']);
    await docker(['run', '-d', '--name', 'sealedweb', '--network', 'sealed', '-p', '8087:80', IMAGE, ...webScript([80])]);
    const ep = (await inspect('sealedweb')).NetworkSettings.Networks.sealed.EndpointID as string;
    // The control: the server answers inside the container (so the probes below find nothing published, not a server not yet up).
    await until('the server answers inside the container', async () => (await dockerd.docker(['exec', 'sealedweb', 'wget', '-qO-', 'http://127.0.0.1:80/'])).stdout === 'port 80\n');
    // Nothing published: no rule of the endpoint's, no answer on the host's address or loopback.
    expect([...(await ruleOwners())]).not.toContain(ep);
    expect((await curl(client, `http://${HOST_UL}:8087/`)).code).not.toBe(0);
    expect((await curl(host, 'http://127.0.0.1:8087/')).code).not.toBe(0);
    // The daemon's structured log says so, naming the endpoint and the network (cnmkit's name and Docker's id).
    const warned = () => daemon.records().some((r) => {
      const o = r as { level?: number; endpoint?: string; network?: string; dockerNetwork?: string; ports?: string[] };
      return o.level === 40 && o.endpoint === ep && o.network === `docker-${id.slice(0, 12)}` && o.dockerNetwork === id && o.ports?.length === 1 && o.ports[0]!.endsWith('8087:80/tcp');
    });
    await until('the warning in the daemon\'s log', warned, 5000);
  });

  it("keeps the engine's network from cnmkit's CLI: rm is refused, prune skips it, and the engine's next container still runs on it", async () => {
    const id = await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.23.0/24', 'owned']);
    const name = `docker-${id.slice(0, 12)}`;
    for (const ref of [name, id]) {
      const rm = await daemon.cmd(['network', 'rm', ref]);
      expect({ ref, code: rm.code }).toEqual({ ref, code: 1 });
      expect(rm.stderr).toContain(`remove it with \`docker network rm ${id.slice(0, 12)}\``);
    }
    const prune = await daemon.cmd(['network', 'prune']);
    expect(prune.code).toBe(0);
    expect(prune.stdout).toContain(`Skipped network ${name}: belongs to the Docker engine`);
    // The engine still lists it, and it still works: a container on it reaches its gateway.
    expect((await dockerd.inspect(['network', 'inspect', 'owned']))[0].Id).toBe(id);
    expect((await cnmkitNetworks()).some((n) => n.id === id)).toBe(true);
    expect(await docker(['run', '--rm', '--network', 'owned', IMAGE, 'ping', '-c', '1', '-W', '2', '198.18.23.1'])).toContain('1 packets received');
  });

  it('refuses a subnet another network holds, from either side, naming that network and its subnet', async () => {
    const id = await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.23.0/24', 'owned']);
    const name = `docker-${id.slice(0, 12)}`;
    // The engine's IPAM assigns the default bridge's subnet: refused, one route stays (on cnmkit0).
    const clash = await dockerd.docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.0.0/24', 'clash']);
    expect(clash.code).not.toBe(0);
    expect(clash.stderr).toContain('subnet: 198.18.0.0/24 overlaps the subnet 198.18.0.0/24 of network "bridge"');
    expect((await dockerd.docker(['network', 'inspect', 'clash'])).code).not.toBe(0);
    const routes = await host.ipJson<{ dst: string; dev: string }[]>(['-4', 'route', 'show', 'exact', '198.18.0.0/24']);
    expect(routes.map((r) => r.dev)).toEqual(['cnmkit0']);
    // And cnmkit's CLI refuses the engine's subnet, naming the engine's network.
    const mine = await daemon.cmd(['network', 'create', '--subnet', '198.18.23.128/25', 'mine']);
    expect(mine.code).toBe(1);
    expect(mine.stderr).toContain(`subnet: 198.18.23.128/25 overlaps 198.18.23.0/24, in use by network "${name}"`);
    expect(await host.ipJson<unknown[]>(['-4', 'route', 'show', 'exact', '198.18.23.128/25'])).toEqual([]);
    expect((await cnmkitNetworks()).map((n) => n.name)).not.toContain('mine');
  });

  it('lets two containers ping each other by address and by name (the engine\'s embedded DNS)', async () => {
    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.14.0/24', 'pair']);
    await docker(['run', '-d', '--name', 'one', '--network', 'pair', IMAGE, 'sleep', '600']);
    await docker(['run', '-d', '--name', 'two', '--network', 'pair', IMAGE, 'sleep', '600']);
    const one = await inspect('one');
    expect(one.NetworkSettings.Networks.pair).toMatchObject({ IPAddress: '198.18.14.2', IPPrefixLen: 24, Gateway: '198.18.14.1', MacAddress: '02:42:c6:12:0e:02' });
    expect(await docker(['exec', 'one', 'ip', 'route'])).toContain('default via 198.18.14.1 dev eth0');
    expect(await docker(['exec', 'one', 'ping', '-c', '1', '-W', '2', '198.18.14.3'])).toContain('1 packets received');
    expect(await docker(['exec', 'two', 'ping', '-c', '1', '-W', '2', 'one'])).toMatch(/PING one \(198\.18\.14\.2\)[\s\S]*1 packets received/);
    // The endpoints cnmkit holds are the engine's: same ids, addresses, and veth ends on the bridge.
    const net = (await cnmkitNetworks()).find((n) => n.id === one.NetworkSettings.Networks.pair.NetworkID)!;
    expect(net.endpoints.map((e) => e.id).sort()).toEqual([one.NetworkSettings.Networks.pair.EndpointID, (await inspect('two')).NetworkSettings.Networks.pair.EndpointID].sort());
    const onBridge = await host.ipJson<{ ifname: string }[]>(['link', 'show', 'master', `br-${net.id.slice(0, 12)}`]);
    expect(onBridge.map((l) => l.ifname).sort()).toEqual(net.endpoints.map((e) => `veth${e.id.slice(0, 7)}`).sort());
    expect((await ping(host, '198.18.14.2')).code).toBe(0);
  });

  it('publishes -p 8080:80, a 1:1 port range and UDP: from the host (127.0.0.1, gateway, underlay), an underlay client (source kept) and a neighbour', async () => {
    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.15.0/24', 'pub']);
    await docker(['run', '-d', '--name', 'web', '--network', 'pub', '-p', '8080:80', '-p', '9000-9002:9000-9002', '-p', '9090:90', '-p', '9191:91/udp',
      IMAGE, ...webScript([80, 9000, 9001, 9002])]);
    const ip = await ipOf('web', 'pub');
    await until('httpd answers', async () => (await curl(host, `http://${ip}/`)).stdout === 'port 80\n');
    for (const url of ['http://127.0.0.1:8080/', 'http://198.18.15.1:8080/', `http://${HOST_UL}:8080/`]) expect((await curl(host, url)).stdout).toBe('port 80\n');
    expect((await curl(client, `http://${HOST_UL}:8080/`)).stdout).toBe('port 80\n');
    for (const p of [9000, 9001, 9002]) {
      expect((await curl(client, `http://${HOST_UL}:${p}/`)).stdout).toBe(`port ${p}\n`);
      expect((await curl(host, `http://127.0.0.1:${p}/`)).stdout).toBe(`port ${p}\n`);
    }
    await docker(['run', '-d', '--name', 'neighbour', '--network', 'pub', IMAGE, 'sleep', '600']);
    // Hairpin: a neighbour on the same bridge through the host's address (busybox wget crashes here: nc).
    const hairpin = await docker(['exec', 'neighbour', 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc ${HOST_UL} 8080`]);
    expect(hairpin).toMatch(/^HTTP\/1\.[01] 200 OK[\s\S]*\nport 80$/);
    const pid = (await inspect('web')).State.Pid as number;
    const servers = [
      inContainer(pid, ['socat', 'TCP-LISTEN:90,reuseaddr,fork', 'SYSTEM:echo $SOCAT_PEERADDR']),
      inContainer(pid, ['socat', 'UDP-RECVFROM:91,fork', 'SYSTEM:echo udp-$SOCAT_PEERADDR']),
    ];
    try {
      const listening = async (proto: string, hex: string) => (await check(['nsenter', '-t', String(pid), '-n', 'cat', `/proc/net/${proto}`])).includes(`:${hex} `);
      await until('socat listens', async () => (await listening('tcp', '005A')) && listening('udp', '005B'));
      expect((await client.exec(['socat', '-T', '3', '-', `TCP:${HOST_UL}:9090`], { input: '' })).stdout.trim()).toBe(CLIENT_UL);
      expect((await client.exec(['socat', '-T', '3', '-', `UDP:${HOST_UL}:9191`], { input: 'x\n' })).stdout.trim()).toBe(`udp-${CLIENT_UL}`);
    } finally {
      await stopAll(servers);
    }
    // The ports go with the container.
    await docker(['rm', '-f', 'web']);
    expect((await curl(client, `http://${HOST_UL}:8080/`)).code).not.toBe(0);
    expect((await curl(host, 'http://127.0.0.1:9001/')).code).not.toBe(0);
  });

  it('connects and disconnects a running container; its published ports follow the gateway endpoint', async () => {
    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.16.0/24', 'second']);
    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.17.0/24', 'first']);
    await docker(['run', '-d', '--name', 'mover', '--network', 'second', '-p', '8081:80', IMAGE, ...webScript([80])]);
    await until('port 8081 answers', async () => (await curl(client, `http://${HOST_UL}:8081/`)).stdout === 'port 80\n');
    const linksBefore = (await leftoverLinks()).filter((l) => l.startsWith('veth'));
    expect(linksBefore).toHaveLength(1);
    // "first" sorts before "second": the engine moves the gateway (Revoke, then Program on the new endpoint).
    await docker(['network', 'connect', 'first', 'mover']);
    expect(await docker(['exec', 'mover', 'ip', '-4', '-o', 'addr', 'show', 'eth1'])).toContain('inet 198.18.17.2/24');
    expect(await docker(['exec', 'mover', 'ip', 'route', 'show', 'default'])).toContain('via 198.18.17.1 dev eth1');
    expect((await curl(client, `http://${HOST_UL}:8081/`)).stdout).toBe('port 80\n');
    expect((await leftoverLinks()).filter((l) => l.startsWith('veth'))).toHaveLength(2);
    expect((await ping(host, '198.18.17.2')).code).toBe(0);
    await docker(['network', 'disconnect', 'first', 'mover']);
    expect(await docker(['exec', 'mover', 'ip', '-o', 'link'])).not.toContain('eth1');
    expect(await docker(['exec', 'mover', 'ip', 'route', 'show', 'default'])).toContain('via 198.18.16.1 dev eth0');
    expect((await curl(client, `http://${HOST_UL}:8081/`)).stdout).toBe('port 80\n');
    expect((await leftoverLinks()).filter((l) => l.startsWith('veth') || /^c[0-9a-f]{10}$/.test(l))).toEqual(linksBefore);
    // docker stop: Leave and DeleteEndpoint; the veth and the ports go, the network stays.
    await docker(['stop', '-t', '1', 'mover']);
    await until('the veth is gone', async () => (await leftoverLinks()).every((l) => l.startsWith('br-')));
    expect((await curl(client, `http://${HOST_UL}:8081/`)).code).not.toBe(0);
    await docker(['start', 'mover']);
    await until('port 8081 answers again', async () => (await curl(client, `http://${HOST_UL}:8081/`)).stdout === 'port 80\n');
    await docker(['rm', '-f', 'mover']);
    await docker(['network', 'rm', 'first', 'second']);
    expect(await leftoverLinks()).toEqual([]);
  });

  it('keeps working when the plugin daemon is restarted (SIGTERM) and killed (SIGKILL) between steps', async () => {
    const id = await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.18.0/24', 'sturdy']);
    await docker(['run', '-d', '--name', 'first', '--network', 'sturdy', '-p', '8082:80', IMAGE, ...webScript([80])]);
    await until('port 8082 answers', async () => (await curl(client, `http://${HOST_UL}:8082/`)).stdout === 'port 80\n');

    await restartDaemon('SIGTERM');
    expect((await cnmkitNetworks()).find((n) => n.id === id)!.endpoints).toHaveLength(1);
    expect((await curl(host, 'http://127.0.0.1:8082/')).stdout).toBe('port 80\n');
    await docker(['run', '-d', '--name', 'second', '--network', 'sturdy', IMAGE, 'sleep', '600']);
    expect(await docker(['exec', 'second', 'ping', '-c', '1', '-W', '2', 'first'])).toContain('1 packets received');

    await restartDaemon('SIGKILL');
    expect((await cnmkitNetworks()).find((n) => n.id === id)!.endpoints).toHaveLength(2);
    expect((await curl(client, `http://${HOST_UL}:8082/`)).stdout).toBe('port 80\n');
    expect((await curl(host, 'http://127.0.0.1:8082/')).stdout).toBe('port 80\n');
    expect(await docker(['exec', 'second', 'ping', '-c', '1', '-W', '2', 'first'])).toContain('1 packets received');
    // Teardown by the restarted daemon: stop (Revoke, Leave, DeleteEndpoint), rm, network rm.
    await docker(['stop', '-t', '1', 'first']);
    await until('the veth of "first" is gone', async () => (await leftoverLinks()).filter((l) => l.startsWith('veth')).length === 1);
    expect((await curl(client, `http://${HOST_UL}:8082/`)).code).not.toBe(0);
    await docker(['rm', '-f', 'first', 'second']);
    await docker(['network', 'rm', 'sturdy']);
    expect(await leftoverLinks()).toEqual([]);
  });

  it('survives an engine restart: a --restart always container comes back with its address and ports', async () => {
    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.19.0/24', 'kept']);
    await docker(['run', '-d', '--name', 'always', '--restart', 'always', '--stop-timeout', '1', '--network', 'kept', '-p', '8083:80', IMAGE, ...webScript([80])]);
    await until('port 8083 answers', async () => (await curl(client, `http://${HOST_UL}:8083/`)).stdout === 'port 80\n');
    await dockerd.restart();
    console.log(`dockerd ready in ${dockerd.startMs} ms (restart with a cnmkit-bridge network)`);
    await until('the container runs again', async () => (await inspect('always')).State.Running === true);
    await until('port 8083 answers again', async () => (await curl(client, `http://${HOST_UL}:8083/`)).stdout === 'port 80\n');
    const [net] = await dockerd.inspect(['network', 'inspect', 'kept']);
    const eps = (await cnmkitNetworks()).find((n) => n.id === net.Id)!.endpoints;
    expect(eps.map((e) => e.id)).toEqual([(await inspect('always')).NetworkSettings.Networks.kept.EndpointID]);
    expect((await leftoverLinks()).filter((l) => l.startsWith('veth'))).toHaveLength(1);
  }, 90_000);

  it('after an engine crash, network rm removes the endpoints the engine forgot (veth, ports, rules)', async () => {
    const id = await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.22.0/24', 'orphan']);
    await docker(['run', '-d', '--name', 'lonely', '--network', 'orphan', '-p', '8086:80', IMAGE, ...webScript([80])]);
    await until('port 8086 answers', async () => (await curl(client, `http://${HOST_UL}:8086/`)).stdout === 'port 80\n');
    const [stale] = (await cnmkitNetworks()).find((n) => n.id === id)!.endpoints;
    // At start, 20.10 drops the stale endpoints of remote drivers without a call: cnmkit still holds this one.
    await dockerd.restart({ crash: true });
    expect((await cnmkitNetworks()).find((n) => n.id === id)!.endpoints.map((e) => e.id)).toEqual([stale!.id]);
    expect(await ruleOwners()).toContain(stale!.id);
    await docker(['rm', 'lonely']);
    await docker(['network', 'rm', 'orphan']);
    expect((await cnmkitNetworks()).some((n) => n.id === id)).toBe(false);
    expect(await ruleOwners()).not.toContain(stale!.id);
    expect(await leftoverLinks()).toEqual([]);
    expect((await curl(host, 'http://127.0.0.1:8086/')).code).not.toBe(0);
  }, 90_000);

  it('survives an engine crash: endpoints it forgot are removed, a restarted container gets its ports back, network rm cleans all', async () => {
    const id = await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.20.0/24', 'crashed']);
    await docker(['run', '-d', '--name', 'back', '--restart', 'always', '--network', 'crashed', '-p', '8084:80', IMAGE, ...webScript([80])]);
    await docker(['run', '-d', '--name', 'gone', '--network', 'crashed', '-p', '8085:80', IMAGE, ...webScript([80])]);
    await until('port 8084 answers', async () => (await curl(client, `http://${HOST_UL}:8084/`)).stdout === 'port 80\n');
    const before = (await cnmkitNetworks()).find((n) => n.id === id)!.endpoints.map((e) => e.id);
    expect(before).toHaveLength(2);
    // SIGKILL to dockerd, containerd, shims and containers. At start, 20.10 drops the stale
    // endpoints of remote drivers without calling them; their veths died with the namespaces.
    await dockerd.restart({ crash: true });
    await until('"back" runs again', async () => (await inspect('back')).State.Running === true, 30_000);
    await until('port 8084 answers again', async () => (await curl(client, `http://${HOST_UL}:8084/`)).stdout === 'port 80\n');
    const after = (await cnmkitNetworks()).find((n) => n.id === id)!.endpoints.map((e) => e.id);
    expect(after).toEqual([(await inspect('back')).NetworkSettings.Networks.crashed.EndpointID]);
    const owners = await ruleOwners();
    for (const old of before) expect(owners.has(old)).toBe(false);
    expect((await curl(client, `http://${HOST_UL}:8085/`)).code).not.toBe(0);
    await docker(['rm', '-f', 'back', 'gone']);
    await docker(['network', 'rm', 'crashed']);
    expect(await leftoverLinks()).toEqual([]);
  }, 120_000);

  it('gives 30 containers started in parallel 30 distinct addresses, each reachable', async () => {
    const id = await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.21.0/24', 'crowd']);
    const names = Array.from({ length: 30 }, (_, i) => `crowd${i}`);
    const started = performance.now();
    await Promise.all(names.map((n) => dockerd.dockerOk(['run', '-d', '--name', n, '--network', 'crowd', IMAGE, 'sleep', '600'], { timeoutMs: 120_000 })));
    console.log(`30 containers started in parallel on cnmkit-bridge: ${Math.round(performance.now() - started)} ms`);
    const ips = await Promise.all(names.map((n) => ipOf(n, 'crowd')));
    expect(new Set(ips).size).toBe(30);
    for (const ip of ips) expect(ip).toMatch(/^198\.18\.21\.\d+$/);
    const ours = (await cnmkitNetworks()).find((n) => n.id === id)!;
    expect(ours.endpoints.map((e) => e.ipv4!.split('/')[0]).sort()).toEqual([...ips].sort());
    expect(await host.ipJson<unknown[]>(['link', 'show', 'master', `br-${id.slice(0, 12)}`])).toHaveLength(30);
    for (const ip of ips) expect((await ping(host, ip)).code).toBe(0);
    // Removed one at a time: 30 parallel `rm -f` hit the engine's own race (its endpoint count of the
    // network stays above 0 with no endpoint left, so `network rm` fails "has active endpoints"),
    // seen with the engine's built-in bridge driver and no cnmkit as well.
    const removed = performance.now();
    for (const n of names) await dockerd.dockerOk(['rm', '-f', n], { timeoutMs: 120_000 });
    console.log(`30 containers removed one at a time: ${Math.round(performance.now() - removed)} ms`);
  }, 180_000);
});

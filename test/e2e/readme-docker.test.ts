// The README's Docker bridge options, each through `docker network create -d cnmkit-bridge -o …`
// on the real engine (Debian's docker.io) next to a real cnmkit daemon in one throwaway "host"
// namespace: enable_ip_masquerade, host_ipv4, host_binding_ipv4, inhibit_ipv4,
// container_iface_prefix, and an IPv6 network's published port. Checked outside the code under
// test: the ruleset, `ip -j`, tcpdump on the underlay client, real connections.
// Limits: nftables backend only (the daemon's auto choice here); IPv6 clients of a published
// port are served by the userland proxy (the port forwards to the container's IPv4 address).
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { underlay, type TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { BUSYBOX_IMAGE, describeDocker, Dockerd, dockerSkipReason, makeHostNs } from '../helpers/dockerd.js';

const skipReason = await dockerSkipReason();

const ENGINE_ADDRESSES = ['--bip', '198.18.1.1/24', '--default-address-pool', 'base=198.18.64.0/18,size=24'];
const HOST_UL = '198.19.5.1';
/** A second address of the host namespace, on the same underlay link. */
const HOST_UL_2 = '198.19.5.3';
const CLIENT_UL = '198.19.5.2';
const HOST_UL6 = 'fd00:198:19:5::1';
const CLIENT_UL6 = 'fd00:198:19:5::2';
const IMAGE = BUSYBOX_IMAGE;
const OPT = 'com.docker.network.bridge.';

let host: TestNs;
let client: TestNs;
let daemon: TestDaemon;
let dockerd: Dockerd;

const docker = (args: string[]) => dockerd.dockerOk(args);
const curl = (ns: TestNs, url: string) => ns.exec(['curl', '-g', '-s', '--max-time', '4', url]);

async function until(what: string, fn: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** `docker network create -d cnmkit-bridge`; returns the network id. */
function createNetwork(name: string, args: string[]): Promise<string> {
  return docker(['network', 'create', '-d', 'cnmkit-bridge', ...args, name]);
}

/** The bridge device of a network cnmkit made for Docker. */
const bridgeOf = (id: string) => `br-${id.slice(0, 12)}`;

async function bridgeIPv4(id: string): Promise<string[]> {
  const [link] = await host.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(['-4', 'addr', 'show', 'dev', bridgeOf(id)]);
  return (link?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
}

/** The source address of the first ICMP echo request the client sees on its underlay link while `send` runs. */
async function echoSourceSeen(send: () => Promise<unknown>): Promise<string> {
  const dump = spawn('ip', ['netns', 'exec', client.name, 'timeout', '10', 'tcpdump', '-n', '-l', '-c', '1', '-i', 'ul1', 'icmp[icmptype] == icmp-echo'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  dump.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => dump.once('exit', res));
  await new Promise<void>((res, rej) => {
    dump.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening on')) res();
    });
    void exited.then(() => rej(new Error(`tcpdump exited before listening: ${err}`)));
  });
  await send();
  expect(await exited).toBe(0);
  const m = /IP (\S+) > (\S+): ICMP echo request/.exec(out);
  if (!m) throw new Error(`no echo request in tcpdump's output: ${out}`);
  expect(m[2]).toBe(CLIENT_UL);
  return m[1]!;
}

/** A container that pings the client once (the reply may never come back: only the request matters). */
async function pingClientFrom(network: string): Promise<void> {
  await dockerd.docker(['run', '--rm', '--network', network, IMAGE, 'ping', '-c', '1', '-W', '2', CLIENT_UL]);
}

/** A container serving "port 80" over HTTP (busybox httpd), then sleeping. */
const WEB = ['sh', '-c', 'echo port 80 > /var/www/index.html && httpd -p 80 -h /var/www && exec sleep 600'];

describeDocker('README: Docker bridge options through cnmkit-bridge', skipReason, () => {
  beforeAll(async () => {
    host = await makeHostNs('rdhost');
    client = await makeHostNs('rdcl');
    await underlay(host, client, HOST_UL, CLIENT_UL);
    await host.sh(['ip', 'addr', 'add', `${HOST_UL_2}/24`, 'dev', 'ul0']);
    await host.sh(['ip', '-6', 'addr', 'add', `${HOST_UL6}/64`, 'dev', 'ul0', 'nodad']);
    await client.sh(['ip', '-6', 'addr', 'add', `${CLIENT_UL6}/64`, 'dev', 'ul1', 'nodad']);
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
  }, 60_000);

  afterAll(async () => {
    // The engine first: it calls the plugin while it shuts down.
    await dockerd?.cleanup();
    await daemon?.cleanup();
    await client?.delete();
    await host?.delete();
  }, 120_000);

  it('enable_ip_masquerade=false keeps the container\'s source and adds no NAT rule; true and host_ipv4 rewrite it (tcpdump on the underlay)', async () => {
    await createNetwork('nomasq', ['--subnet', '198.18.41.0/24', '-o', `${OPT}enable_ip_masquerade=false`]);
    await createNetwork('masq', ['--subnet', '198.18.42.0/24', '-o', `${OPT}enable_ip_masquerade=true`]);
    await createNetwork('snat', ['--subnet', '198.18.43.0/24', '-o', `com.docker.network.host_ipv4=${HOST_UL_2}`]);
    const nft = await host.sh(['nft', 'list', 'table', 'inet', 'cnmkit']);
    const natOf = (subnet: string) => nft.split('\n').filter((l) => l.includes(`ip saddr ${subnet} `) && /masquerade|snat/.test(l)).map((l) => l.trim().replace(/ comment .*/, ''));
    expect(natOf('198.18.41.0/24')).toEqual([]);
    expect(natOf('198.18.42.0/24')).toEqual([expect.stringMatching(/^ip saddr 198\.18\.42\.0\/24 oifname != "br-[0-9a-f]{12}" masquerade$/)]);
    expect(natOf('198.18.43.0/24')).toEqual([expect.stringMatching(new RegExp(`^ip saddr 198\\.18\\.43\\.0/24 oifname != "br-[0-9a-f]{12}" snat ip to ${HOST_UL_2.replaceAll('.', '\\.')}$`))]);
    expect((await host.sh(['iptables-save'])).includes('198.18.41.')).toBe(false);

    expect(await echoSourceSeen(() => pingClientFrom('nomasq'))).toBe('198.18.41.2');
    expect(await echoSourceSeen(() => pingClientFrom('masq'))).toBe(HOST_UL);
    expect(await echoSourceSeen(() => pingClientFrom('snat'))).toBe(HOST_UL_2);
    // The rewritten packets are answered (conntrack maps the replies back); the kept source is not routed back.
    expect((await dockerd.docker(['run', '--rm', '--network', 'masq', IMAGE, 'ping', '-c', '1', '-W', '2', CLIENT_UL])).code).toBe(0);
    expect((await dockerd.docker(['run', '--rm', '--network', 'snat', IMAGE, 'ping', '-c', '1', '-W', '2', CLIENT_UL])).code).toBe(0);
    expect((await dockerd.docker(['run', '--rm', '--network', 'nomasq', IMAGE, 'ping', '-c', '1', '-W', '1', CLIENT_UL])).code).not.toBe(0);
  }, 120_000);

  it('host_binding_ipv4: -p binds only that host address (reached there, refused on the host\'s other addresses)', async () => {
    await createNetwork('bound', ['--subnet', '198.18.44.0/24', '-o', `${OPT}host_binding_ipv4=${HOST_UL_2}`]);
    await createNetwork('open', ['--subnet', '198.18.45.0/24']);
    await docker(['run', '-d', '--name', 'boundweb', '--network', 'bound', '-p', '8090:80', IMAGE, ...WEB]);
    await docker(['run', '-d', '--name', 'openweb', '--network', 'open', '-p', '8091:80', IMAGE, ...WEB]);
    await until('port 8090 answers on the bound address', async () => (await curl(client, `http://${HOST_UL_2}:8090/`)).stdout === 'port 80\n');
    // Positive control: without the option the port is on every address.
    for (const ip of [HOST_UL, HOST_UL_2]) expect((await curl(client, `http://${ip}:8091/`)).stdout).toBe('port 80\n');
    expect((await curl(host, 'http://127.0.0.1:8091/')).stdout).toBe('port 80\n');
    const refused = await curl(client, `http://${HOST_UL}:8090/`);
    expect(refused.code).toBe(7);
    expect((await curl(host, 'http://127.0.0.1:8090/')).code).toBe(7);
    expect((await curl(host, `http://${HOST_UL_2}:8090/`)).stdout).toBe('port 80\n');
  }, 90_000);

  it('inhibit_ipv4 leaves the gateway address off the bridge', async () => {
    const inhibited = await createNetwork('inhibited', ['--subnet', '198.18.46.0/24', '-o', `${OPT}inhibit_ipv4=true`]);
    const plain = await createNetwork('plain', ['--subnet', '198.18.47.0/24']);
    expect(await bridgeIPv4(plain)).toEqual(['198.18.47.1/24']);
    expect(await bridgeIPv4(inhibited)).toEqual([]);
    const [link] = await host.ipJson<{ linkinfo: { info_kind: string } }[]>(['-d', 'link', 'show', bridgeOf(inhibited)]);
    expect(link!.linkinfo.info_kind).toBe('bridge');
    // Nobody answers for the gateway of the inhibited network; the plain one's does.
    expect((await dockerd.docker(['run', '--rm', '--network', 'plain', IMAGE, 'ping', '-c', '1', '-W', '1', '198.18.47.1'])).code).toBe(0);
    expect((await dockerd.docker(['run', '--rm', '--network', 'inhibited', IMAGE, 'ping', '-c', '1', '-W', '1', '198.18.46.1'])).code).not.toBe(0);
  }, 90_000);

  it('container_iface_prefix names the container\'s interface PREFIX0', async () => {
    await createNetwork('prefixed', ['--subnet', '198.18.48.0/24', '-o', 'com.docker.network.container_iface_prefix=cnm']);
    await createNetwork('unprefixed', ['--subnet', '198.18.49.0/24']);
    const links = async (net: string) => (await docker(['run', '--rm', '--network', net, IMAGE, 'ls', '/sys/class/net'])).split(/\s+/).sort();
    expect(await links('prefixed')).toEqual(['cnm0', 'lo']);
    expect(await links('unprefixed')).toEqual(['eth0', 'lo']);
    expect(await docker(['run', '--rm', '--network', 'prefixed', IMAGE, 'ip', '-4', '-o', 'addr', 'show', 'cnm0'])).toContain('inet 198.18.48.2/24');
  }, 90_000);

  it('publishes -p on an IPv6 network (--ipv6 --subnet fd..): reached over IPv6 from the underlay client and on ::1', async () => {
    await createNetwork('v6', ['--ipv6', '--subnet', '198.18.50.0/24', '--subnet', 'fd00:198:18:50::/64']);
    await docker(['run', '-d', '--name', 'v6web', '--network', 'v6', '-p', '8092:80', IMAGE, ...WEB]);
    const [c] = await dockerd.inspect(['container', 'inspect', 'v6web']);
    expect(c.NetworkSettings.Networks.v6).toMatchObject({ IPAddress: '198.18.50.2', GlobalIPv6Address: 'fd00:198:18:50::2', GlobalIPv6PrefixLen: 64 });
    expect(await docker(['exec', 'v6web', 'ip', '-6', '-o', 'addr', 'show', 'eth0'])).toContain('inet6 fd00:198:18:50::2/64');
    await until('port 8092 answers over IPv6', async () => (await curl(client, `http://[${HOST_UL6}]:8092/`)).stdout === 'port 80\n');
    expect((await curl(client, `http://${HOST_UL}:8092/`)).stdout).toBe('port 80\n');
    expect((await curl(host, 'http://[::1]:8092/')).stdout).toBe('port 80\n');
    // Negative control: a port nobody published is refused over IPv6.
    expect((await curl(client, `http://[${HOST_UL6}]:8093/`)).code).toBe(7);
    await docker(['rm', '-f', 'v6web']);
    expect((await curl(client, `http://[${HOST_UL6}]:8092/`)).code).toBe(7);
  }, 90_000);
});

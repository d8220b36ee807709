// cnmkit-bridge added to a host where the Docker engine already runs: dockerd starts first in a
// fresh namespace, turns forwarding on itself and so sets the FORWARD policy to DROP. cnmkit's
// iptables backend puts its chains in the same tables, so its networks work under that policy,
// next to a container on Docker's own bridge. Checked with iptables-save, ip -j and real packets.
// Limits: iptables backend only; cnmkit's nftables table cannot override a drop verdict of the
// iptables FORWARD chain (see docker-bridge.test.ts for the order in which nftables works).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { underlay, type TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { BUSYBOX_IMAGE, describeDocker, Dockerd, dockerSkipReason, makeHostNs } from '../helpers/dockerd.js';

const skipReason = await dockerSkipReason();

const ENGINE_ADDRESSES = ['--bip', '198.18.1.1/24', '--default-address-pool', 'base=198.18.64.0/18,size=24'];
const HOST_UL = '198.19.3.1';
const CLIENT_UL = '198.19.3.2';
const IMAGE = BUSYBOX_IMAGE;

let host: TestNs;
let client: TestNs;
let dockerd: Dockerd;
let daemon: TestDaemon;

const docker = (args: string[]) => dockerd.dockerOk(args);
const curl = (ns: TestNs, url: string) => ns.exec(['curl', '-s', '--max-time', '4', url]);
/**
 * iptables-save without comments and counters, sorted: the engine moves its DOCKER-USER jump back
 * to the head of FORWARD whenever a network is created, so only the order may change.
 */
const saved = async () => (await host.sh(['iptables-save'])).split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '')).sort().join('\n');

async function until(what: string, fn: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

describeDocker('cnmkit-bridge next to an engine that started first (FORWARD DROP, iptables backend)', skipReason, () => {
  beforeAll(async () => {
    host = await makeHostNs('dkipt');
    client = await makeHostNs('dkiptcl');
    await underlay(host, client, HOST_UL, CLIENT_UL);
    dockerd = await Dockerd.start(host, { args: ENGINE_ADDRESSES });
    daemon = new TestDaemon(host, ['--firewall-backend', 'iptables', '--plugin-dir', dockerd.pluginDir]);
    await daemon.start();
    await dockerd.buildImage();
  }, 180_000);

  afterAll(async () => {
    await dockerd?.cleanup();
    await daemon?.cleanup();
    await client?.delete();
    await host?.delete();
  }, 120_000);

  it('serves ping by name, ICC off and published ports under the DROP policy, beside Docker\'s bridge, and removes every rule', async () => {
    expect(await host.sh(['iptables', '-S', 'FORWARD'])).toMatch(/^-P FORWARD DROP/);
    const rulesBefore = await saved();
    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.30.0/24', 'cnm']);
    await docker(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.31.0/24', '-o', 'com.docker.network.bridge.enable_icc=false', 'noicc']);
    await docker(['run', '-d', '--name', 'web', '--network', 'cnm', '-p', '8080:80', IMAGE, 'sh', '-c', 'echo hi > /var/www/index.html && httpd -p 80 -h /var/www && exec sleep 600']);
    await docker(['run', '-d', '--name', 'peer', '--network', 'cnm', IMAGE, 'sleep', '600']);
    expect(await docker(['exec', 'peer', 'ping', '-c', '1', '-W', '2', 'web'])).toContain('1 packets received');
    await until('port 8080 answers the underlay client', async () => (await curl(client, `http://${HOST_UL}:8080/`)).stdout === 'hi\n');
    expect((await curl(host, 'http://127.0.0.1:8080/')).stdout).toBe('hi\n');
    // A container on both Docker's own bridge and a cnmkit network: both legs carry traffic.
    await docker(['run', '-d', '--name', 'both', '--network', 'bridge', IMAGE, 'sleep', '600']);
    await docker(['network', 'connect', 'cnm', 'both']);
    const webIp = await docker(['inspect', '-f', '{{.NetworkSettings.Networks.cnm.IPAddress}}', 'web']);
    expect(await docker(['exec', 'both', 'ping', '-c', '1', '-W', '2', webIp])).toContain('1 packets received');
    expect(await docker(['exec', 'both', 'ping', '-c', '1', '-W', '2', '198.18.1.1'])).toContain('1 packets received');
    // ICC off: the two containers reach their gateway, not each other.
    await docker(['run', '-d', '--name', 'i1', '--network', 'noicc', IMAGE, 'sleep', '600']);
    await docker(['run', '-d', '--name', 'i2', '--network', 'noicc', IMAGE, 'sleep', '600']);
    // Positive control: i2 (198.18.31.3) answers the same probe from the host, its gateway.
    expect(await docker(['inspect', '-f', '{{.NetworkSettings.Networks.noicc.IPAddress}}', 'i2'])).toBe('198.18.31.3');
    expect((await host.exec(['ping', '-c', '1', '-W', '1', '198.18.31.3'])).code).toBe(0);
    expect((await dockerd.docker(['exec', 'i1', 'ping', '-c', '1', '-W', '1', '198.18.31.3'])).code).not.toBe(0);
    expect((await dockerd.docker(['exec', 'i1', 'ping', '-c', '1', '-W', '1', '198.18.31.1'])).code).toBe(0);
    // Every cnmkit rule sits in cnmkit's chains, tagged; the network's own carry its Docker id.
    const ids = [await docker(['network', 'inspect', '-f', '{{.Id}}', 'cnm']), await docker(['network', 'inspect', '-f', '{{.Id}}', 'noicc'])];
    const rules = await host.sh(['iptables-save']);
    for (const id of ids) expect(rules).toContain(`cnmkit:${id}`);
    expect(rules.split('\n').filter((l) => l.includes('cnmkit') && !/^-A (CNMKIT[-A-Z0-9]*|FORWARD|PREROUTING|OUTPUT|POSTROUTING) /.test(l) && !l.startsWith(':'))).toEqual([]);

    await docker(['rm', '-f', 'web', 'peer', 'both', 'i1', 'i2']);
    await docker(['network', 'rm', 'cnm', 'noicc']);
    expect(await saved()).toBe(rulesBefore);
    expect((await host.linkNames()).filter((n) => /^(veth|c[0-9a-f]{10}$|br-)/.test(n))).toEqual([]);
    expect((await curl(client, `http://${HOST_UL}:8080/`)).code).not.toBe(0);
  }, 90_000);
});

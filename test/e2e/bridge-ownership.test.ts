// Nothing cnmkit does may destroy a network it does not own: a bridge it adopted survives a
// SIGKILL at any instant of the create (and of a start on `--bridge-name`), and one bridge device
// never serves two networks. A real daemon in a throwaway "host" namespace, checked with ip -j.
import fs from 'node:fs';
import http from 'node:http';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const OPT_NAME = 'com.docker.network.bridge.name';

/** One management API request, sent without waiting for the CLI to start; resolves with the status (0: no answer). */
function request(socketPath: string, method: string, urlPath: string, body?: unknown): Promise<number> {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath, path: urlPath, method, headers: data ? { 'content-type': 'application/json' } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(data);
  });
}

interface LinkJson { ifname: string; master?: string; linkinfo?: { info_kind: string } }
interface AddrJson { addr_info: { local: string; prefixlen: number }[] }

/** The user's bridge as ip sees it: kind, addresses, ports. */
async function userBridge(host: TestNs, name: string): Promise<{ kind?: string; addresses: string[]; ports: string[] }> {
  const link = await host.exec(['ip', '-d', '-j', 'link', 'show', name]);
  if (link.code !== 0) return { addresses: [], ports: [] };
  const kind = (JSON.parse(link.stdout) as LinkJson[])[0]?.linkinfo?.info_kind;
  const addrs = await host.ipJson<AddrJson[]>(['-4', 'addr', 'show', name]);
  const ports = await host.ipJson<LinkJson[]>(['link', 'show', 'master', name]);
  return { kind, addresses: (addrs[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`).sort(), ports: ports.map((p) => p.ifname) };
}

/** A bridge cnmkit never made, with two addresses and a port of its own. */
async function makeUserBridge(host: TestNs, name: string, addresses: string[]): Promise<void> {
  await host.sh(['ip', 'link', 'add', name, 'type', 'bridge']);
  for (const a of addresses) await host.sh(['ip', 'addr', 'add', a, 'dev', name]);
  await host.sh(['ip', 'link', 'add', 'usrport0', 'type', 'veth', 'peer', 'name', 'usrport1']);
  await host.sh(['ip', 'link', 'set', 'usrport0', 'master', name]);
}

describeRoot('bridges cnmkit does not own', () => {
  let host: TestNs;
  let daemon: TestDaemon;

  beforeEach(async () => {
    host = await makeNs('host');
  });
  afterEach(async () => {
    await daemon.cleanup();
  });

  it('keeps an adopted bridge, its addresses and its port whatever instant a SIGKILL hits the network create', async () => {
    const own = ['198.18.45.1/24', '198.18.46.1/24'];
    await makeUserBridge(host, 'usrbr0', own);
    const expected = { kind: 'bridge', addresses: own, ports: ['usrport0'] };
    daemon = new TestDaemon(host);
    await daemon.start();
    const create = { name: 'adopt', subnet: '198.18.46.0/24', options: { [OPT_NAME]: 'usrbr0' } };
    // How long one create takes here, so that the kills spread over it.
    let t = performance.now();
    expect(await request(daemon.socket, 'POST', '/v1/networks', create)).toBe(201);
    const createMs = performance.now() - t;
    expect(await request(daemon.socket, 'DELETE', '/v1/networks/adopt')).toBe(204);
    expect(await userBridge(host, 'usrbr0')).toEqual(expected);
    let interrupted = 0;
    for (let i = 0; i < 20; i++) {
      const pending = request(daemon.socket, 'POST', '/v1/networks', create);
      await sleep(Math.random() * createMs * 1.2);
      await daemon.stop('SIGKILL');
      await pending;
      const before = daemon.log.length;
      t = performance.now();
      await daemon.start();
      if (daemon.log.slice(before).includes('network adopt: removed (interrupted while creating)')) interrupted++;
      expect(await userBridge(host, 'usrbr0'), `after kill ${i}`).toEqual(expected);
      const ls = JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as { name: string; state: string }[];
      const net = ls.find((n) => n.name === 'adopt');
      if (net) {
        expect(net.state).toBe('ready');
        expect(await request(daemon.socket, 'DELETE', '/v1/networks/adopt')).toBe(204);
        expect(await userBridge(host, 'usrbr0'), `after rm ${i}`).toEqual(expected);
      }
    }
    // The campaign must have hit the create in flight, or it proves nothing.
    expect(interrupted).toBeGreaterThan(0);
  }, 240_000);

  it('keeps the bridge named by --bridge-name whatever instant a SIGKILL hits the daemon\'s first start', async () => {
    const own = '198.18.47.1/24';
    await makeUserBridge(host, 'usrbr1', [own]);
    daemon = new TestDaemon(host, ['--bridge-name', 'usrbr1']);
    let interrupted = 0;
    for (let i = 0; i < 8; i++) {
      // A first start each time: no state, and the bridge as the user left it.
      fs.rmSync(daemon.stateDir, { recursive: true, force: true });
      await host.exec(['ip', 'addr', 'del', '198.18.0.1/24', 'dev', 'usrbr1']);
      const from = daemon.log.length;
      const starting = daemon.start().catch(() => undefined);
      // The default bridge network is created right after `host`: kill within its create.
      for (let n = 0; n < 400 && !/"network":"host".*"msg":"network created"/.test(daemon.log.slice(from)); n++) await sleep(5);
      await sleep(Math.random() * 40);
      await daemon.stop('SIGKILL');
      await starting;
      const restart = daemon.log.length;
      await daemon.start();
      if (daemon.log.slice(restart).includes('network bridge: removed (interrupted while creating)')) interrupted++;
      const seen = await userBridge(host, 'usrbr1');
      expect(seen, `after kill ${i}`).toMatchObject({ kind: 'bridge', ports: ['usrport0'] });
      expect(seen.addresses, `after kill ${i}`).toContain(own);
      await daemon.stop('SIGTERM');
    }
    expect(interrupted).toBeGreaterThan(0);
    await daemon.start();
  }, 240_000);

  it('refuses a second network on a bridge device another network has, naming that network (the default cnmkit0 too)', async () => {
    daemon = new TestDaemon(host);
    await daemon.start();
    expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.48.0/24', '-o', `${OPT_NAME}=brown0`, 'first'])).code).toBe(0);
    const second = await daemon.cmd(['network', 'create', '--subnet', '198.18.49.0/24', '-o', `${OPT_NAME}=brown0`, 'second']);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/bridge brown0 is already the device of network first/);
    const onDefault = await daemon.cmd(['network', 'create', '--subnet', '198.18.50.0/24', '-o', `${OPT_NAME}=cnmkit0`, 'third']);
    expect(onDefault.code).toBe(1);
    expect(onDefault.stderr).toMatch(/bridge cnmkit0 is already the device of network bridge/);
    const names = (JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as { name: string }[]).map((n) => n.name);
    expect(names.sort()).toEqual(['bridge', 'first', 'host', 'none']);
    expect((await userBridge(host, 'brown0')).addresses).toEqual(['198.18.48.1/24']);
    expect((await userBridge(host, 'cnmkit0')).addresses).toEqual(['198.18.0.1/24']);
    expect((await daemon.cmd(['network', 'rm', 'first'])).code).toBe(0);
    expect((await host.exec(['ip', 'link', 'show', 'brown0'])).code).not.toBe(0);
    expect((await userBridge(host, 'cnmkit0')).kind).toBe('bridge');
  });
});

// The README's claims about the daemon and the CLI, each checked against a real daemon in a
// throwaway namespace with iproute2, the rulesets, stat and real packets: the default `bridge`
// network on cnmkit0, JSON logs, the sockets' mode, --bridge-name and --bip, repeated
// --default-address-pool, CNMKIT_SOCKET, connect --ip.
// Limits: the default paths (/run/cnmkit, /run/docker/plugins) are not used: every daemon here
// has its own folder, so only the modes and owners are checked, not the default locations.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { CLI, TestDaemon } from '../helpers/daemon.js';
import { check, run } from '../helpers/exec.js';

interface AddrInfo { family: string; local: string; prefixlen: number }
interface Link { ifname: string; flags: string[]; linkinfo?: { info_kind: string } }

const daemons: TestDaemon[] = [];

async function startDaemon(host: TestNs, args: string[] = []): Promise<TestDaemon> {
  const d = new TestDaemon(host, args);
  daemons.push(d);
  await d.start();
  return d;
}

/** A named sandbox the daemon's cleanup removes through the CLI (and fails if it cannot). */
const sandbox = (d: TestDaemon): Promise<string> => d.sandbox();

/** IPv4 addresses of a device, as `ip -j addr` shows them ([] when it has none). */
async function ipv4Of(ns: string, dev: string): Promise<string[]> {
  const out = JSON.parse(await check(['ip', '-n', ns, '-j', '-4', 'addr', 'show', 'dev', dev])) as { addr_info: AddrInfo[] }[];
  return out.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}

const ping = (ns: string, to: string) => run(['ip', 'netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', to]);

/** The CLI with the given environment and no --socket flag unless the args carry one. */
const cli = (args: string[], env: NodeJS.ProcessEnv) => run([process.execPath, CLI, ...args], { env });

function withoutSocketVar(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.CNMKIT_SOCKET;
  return env;
}

describeRoot('README: the daemon and the CLI', () => {
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.cleanup();
  });

  it('starts with the default bridge network on cnmkit0, adds its masquerade rule and forwarding; a sandbox connects and pings the gateway', async () => {
    const host = await makeNs('host');
    // A fresh namespace forwards nothing: the daemon is what turns it on.
    expect((await host.sh(['cat', '/proc/sys/net/ipv4/ip_forward'])).trim()).toBe('0');
    const d = await startDaemon(host);
    const [net] = JSON.parse((await d.cmd(['network', 'inspect', 'bridge'])).stdout) as { driver: string; ipv4: { subnet: string; gateway: string }[]; options: Record<string, string> }[];
    expect(net).toMatchObject({ driver: 'bridge', ipv4: [{ subnet: '198.18.0.0/24', gateway: '198.18.0.1/24' }] });
    const [link] = await host.ipJson<Link[]>(['-d', 'link', 'show', 'cnmkit0']);
    expect(link!.linkinfo!.info_kind).toBe('bridge');
    expect(link!.flags).toContain('UP');
    expect(await ipv4Of(host.name, 'cnmkit0')).toEqual(['198.18.0.1/24']);
    expect((await host.sh(['cat', '/proc/sys/net/ipv4/ip_forward'])).trim()).toBe('1');
    expect(await host.sh(['nft', 'list', 'table', 'inet', 'cnmkit'])).toMatch(/ip saddr 198\.18\.0\.0\/24 oifname != "cnmkit0" masquerade/);
    // Logs are JSON (pino), one object per line. TestDaemon.log holds stderr too: Node's own
    // process warnings, which go there, are left out.
    const lines = d.log.trim().split('\n').filter((l) => !/^\(node:\d+\) |^\(Use `node --trace-warnings/.test(l));
    expect(lines.map((l) => Object.keys(JSON.parse(l) as object))).toEqual(lines.map(() => expect.arrayContaining(['level', 'time', 'msg'])));
    expect(lines.some((l) => (JSON.parse(l) as { msg: string }).msg === 'cnmkit daemon ready')).toBe(true);

    const sb = await sandbox(d);
    const c = await d.cmd(['connect', '--format', 'json', 'bridge', sb]);
    expect(c.stderr).toBe('');
    const ep = JSON.parse(c.stdout) as { ipv4: string; ifname: string };
    expect(ep.ipv4).toMatch(/^198\.18\.0\.(\d+)\/24$/);
    expect(await ipv4Of(sb, ep.ifname)).toEqual([ep.ipv4]);
    const ports = await host.ipJson<Link[]>(['link', 'show', 'master', 'cnmkit0']);
    expect(ports).toHaveLength(1);
    expect((await ping(sb, '198.18.0.1')).code).toBe(0);
    // Negative control: once disconnected, the same ping fails.
    expect((await d.cmd(['disconnect', 'bridge', sb])).code).toBe(0);
    expect((await ping(sb, '198.18.0.1')).code).not.toBe(0);
  });

  it('serves the management socket and every plugin socket with mode 0660, owned by root: root gets answers, another user is refused', async () => {
    const host = await makeNs('host');
    const d = await startDaemon(host);
    // The test's folder is 0700: open it so that only each socket's own mode decides who connects.
    fs.chmodSync(d.dir, 0o755);
    const plugins = path.join(d.dir, 'plugins');
    expect(fs.statSync(plugins).mode & 0o777).toBe(0o755);
    const sockets: [string, string, string[]][] = [
      [d.socket, '/v1/networks', []],
      [path.join(plugins, 'cnmkit-bridge.sock'), '/Plugin.Activate', ['-X', 'POST']],
      [path.join(plugins, 'cnmkit-macvlan.sock'), '/Plugin.Activate', ['-X', 'POST']],
      [path.join(plugins, 'cnmkit-ipam.sock'), '/Plugin.Activate', ['-X', 'POST']],
    ];
    const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];
    for (const [sock, url, method] of sockets) {
      const st = fs.lstatSync(sock);
      expect(st.isSocket()).toBe(true);
      expect({ sock, mode: (st.mode & 0o777).toString(8), uid: st.uid, gid: st.gid }).toEqual({ sock, mode: '660', uid: 0, gid: 0 });
      const curl = ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--unix-socket', sock, ...method, `http://cnmkit${url}`];
      expect((await run(curl)).stdout).toBe('200');
      const refused = await run([...asNobody, ...curl]);
      expect(refused.code).toBe(7);
      expect(refused.stdout).toBe('000');
    }
    const denied = await run([...asNobody, process.execPath, CLI, 'network', 'ls', '--socket', d.socket]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain(`permission denied on ${d.socket}: the daemon's socket is for root`);
  });

  it('--bridge-name and --bip make the default bridge that device with that gateway, and no cnmkit0', async () => {
    const host = await makeNs('host');
    // TestDaemon passes --bip 198.18.0.1/24 first; the later flag wins.
    const d = await startDaemon(host, ['--bridge-name', 'docker0', '--bip', '198.18.4.1/23']);
    const links = await host.linkNames();
    expect(links).toContain('docker0');
    expect(links).not.toContain('cnmkit0');
    const [link] = await host.ipJson<Link[]>(['-d', 'link', 'show', 'docker0']);
    expect(link!.linkinfo!.info_kind).toBe('bridge');
    expect(await ipv4Of(host.name, 'docker0')).toEqual(['198.18.4.1/23']);
    const [net] = JSON.parse((await d.cmd(['network', 'inspect', 'bridge'])).stdout) as { ipv4: { subnet: string; gateway: string }[] }[];
    expect(net!.ipv4).toEqual([expect.objectContaining({ subnet: '198.18.4.0/23', gateway: '198.18.4.1/23' })]);
    expect(await host.sh(['nft', 'list', 'table', 'inet', 'cnmkit'])).toMatch(/ip saddr 198\.18\.4\.0\/23 oifname != "docker0" masquerade/);
    const sb = await sandbox(d);
    const ep = JSON.parse((await d.cmd(['connect', '--format', 'json', 'bridge', sb])).stdout) as { ipv4: string; ifname: string };
    expect(ep.ipv4).toBe('198.18.4.2/23');
    expect(await ipv4Of(sb, ep.ifname)).toEqual(['198.18.4.2/23']);
    expect(await host.ipJson<Link[]>(['link', 'show', 'master', 'docker0'])).toHaveLength(1);
    expect((await ping(sb, '198.18.4.1')).code).toBe(0);
    expect((await ping(sb, '198.18.0.1')).code).not.toBe(0);

    // A --bip that is not a gateway address with a prefix stops the daemon, naming the flag.
    const other = await makeNs('badbip');
    const bad = new TestDaemon(other, ['--bip', '198.18.6.1']);
    daemons.push(bad);
    await expect(bad.start()).rejects.toThrow(/bip: expected an IPv4 gateway address with a prefix length/);
    expect(await other.linkNames()).toEqual(['lo']);
    expect((await other.sh(['nft', 'list', 'ruleset'])).trim()).toBe('');
    expect((await other.sh(['cat', '/proc/sys/net/ipv4/ip_forward'])).trim()).toBe('0');
  });

  it('--default-address-pool is repeatable: networks without --subnet take the pools in order', async () => {
    const host = await makeNs('host');
    // TestDaemon's own pool (198.18.128.0/17) comes first: a link route over it makes the IPAM skip it, as it skips any pool the host uses.
    await host.sh(['ip', 'link', 'add', 'poolta', 'up', 'type', 'veth', 'peer', 'name', 'pooltb']);
    await host.sh(['ip', 'link', 'set', 'pooltb', 'up']);
    await host.sh(['ip', 'addr', 'add', '198.18.128.1/17', 'dev', 'poolta']);
    expect(await host.ipJson(['route', 'show', '198.18.128.0/17'])).toEqual([expect.objectContaining({ dst: '198.18.128.0/17', scope: 'link' })]);
    const d = await startDaemon(host, ['--default-address-pool', 'base=198.18.100.0/24,size=24', '--default-address-pool', 'base=198.18.110.0/23,size=24']);
    const subnets: string[] = [];
    for (const name of ['pool1', 'pool2', 'pool3']) {
      expect((await d.cmd(['network', 'create', name])).stderr).toBe('');
      subnets.push((JSON.parse((await d.cmd(['network', 'inspect', name])).stdout) as { ipv4: { subnet: string }[] }[])[0]!.ipv4[0]!.subnet);
    }
    expect(subnets).toEqual(['198.18.100.0/24', '198.18.110.0/24', '198.18.111.0/24']);
    const full = await d.cmd(['network', 'create', 'pool4']);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/could not find an available, non-overlapping IPv4 address pool/);
  });

  it('CNMKIT_SOCKET picks the daemon when --socket is not given, and --socket wins over it', async () => {
    const a = await startDaemon(await makeNs('hosta'));
    const b = await startDaemon(await makeNs('hostb'));
    expect((await a.cmd(['network', 'create', '--driver', 'null', 'only-on-a'])).code).toBe(0);
    const names = async (args: string[], env: NodeJS.ProcessEnv): Promise<string[]> => {
      const r = await cli(['network', 'ls', '--format', 'json', ...args], env);
      expect(r.stderr).toBe('');
      return (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name);
    };
    expect(await names([], { ...process.env, CNMKIT_SOCKET: a.socket })).toContain('only-on-a');
    expect(await names([], { ...process.env, CNMKIT_SOCKET: b.socket })).not.toContain('only-on-a');
    expect(await names(['--socket', a.socket], { ...process.env, CNMKIT_SOCKET: b.socket })).toContain('only-on-a');
    expect(await names(['--socket', b.socket], { ...process.env, CNMKIT_SOCKET: a.socket })).not.toContain('only-on-a');
    const nowhere = path.join(a.dir, 'nobody-listens.sock');
    const missing = await cli(['network', 'ls'], { ...process.env, CNMKIT_SOCKET: nowhere });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`cannot reach the cnmkit daemon at ${nowhere}`);
    // Without either, the CLI goes to the default socket (no daemon of this machine serves it).
    const dflt = await cli(['network', 'ls'], withoutSocketVar());
    expect(dflt.code).toBe(1);
    expect(dflt.stderr).toContain('cannot reach the cnmkit daemon at /run/cnmkit/cnmkit.sock');
  });

  it('connect NET SB --ip puts that address on the sandbox\'s interface; a taken or foreign address is refused and leaves nothing', async () => {
    const host = await makeNs('host');
    const d = await startDaemon(host);
    expect((await d.cmd(['network', 'create', '--subnet', '198.18.5.0/24', 'mynet'])).code).toBe(0);
    const lab = await sandbox(d);
    const c = await d.cmd(['connect', 'mynet', lab, '--ip', '198.18.5.50']);
    expect(c.stderr).toBe('');
    expect(c.stdout.trim()).toBe('eth0 198.18.5.50/24');
    expect(await ipv4Of(lab, 'eth0')).toEqual(['198.18.5.50/24']);
    expect((await ping(lab, '198.18.5.1')).code).toBe(0);
    // Without --ip the next sandbox gets the first free address, not the one asked for.
    const next = await sandbox(d);
    expect((await d.cmd(['connect', 'mynet', next])).stdout.trim()).toBe('eth0 198.18.5.2/24');
    expect((await ping(next, '198.18.5.50')).code).toBe(0);

    const other = await sandbox(d);
    const taken = await d.cmd(['connect', 'mynet', other, '--ip', '198.18.5.50']);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/198\.18\.5\.50/);
    const outside = await d.cmd(['connect', 'mynet', other, '--ip', '198.18.7.9']);
    expect(outside.code).toBe(1);
    expect(outside.stderr).toMatch(/198\.18\.7\.9/);
    expect((await check(['ip', '-n', other, '-j', 'link'])).includes('eth0')).toBe(false);
    expect(await check(['ip', '-n', lab, '-j', 'link'])).toContain('"eth0"');
    expect(await host.ipJson<Link[]>(['link', 'show', 'master', 'br-' + (await netId(d, 'mynet')).slice(0, 12)])).toHaveLength(2);
  });
});

async function netId(d: TestDaemon, name: string): Promise<string> {
  return (JSON.parse((await d.cmd(['network', 'inspect', name])).stdout) as { id: string }[])[0]!.id;
}
